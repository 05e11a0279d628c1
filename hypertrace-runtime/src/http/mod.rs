//! The axum/tower glue: the server span and its attributes, the body wrappers, the handler entry
//! point and the router-wide layer. All share the capture core in `server_span`.

pub mod attributes;
pub mod body;
pub mod handler;
pub mod layer;
pub mod server_span;
