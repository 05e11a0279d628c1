//! The axum/tower glue: the server span, its attributes, and the body wrappers.
pub mod handler;
