//! The axum/tower glue for incoming HTTP: the router-wide layer and its response future, the entry
//! point of annotated handlers, and the HTTP side of the SERVER span (its attributes, what its start
//! and finish phases record, what counts as a failure). The lifecycle they drive is `span::server`.

pub(crate) mod attributes;
pub(crate) mod failure;
pub mod future;
pub(crate) mod handler;
pub mod layer;
pub(crate) mod server;

pub use server::ResponseBody;
