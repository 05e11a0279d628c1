//! gRPC (feature `grpc`): tower layers for tonic servers and clients. One SERVER or CLIENT span
//! per call, named `package.Service/Method`, with the metadata, the status (from the trailers, or
//! from the headers of a trailers-only response) and the messages as proto3 JSON.
//!
//! ```ignore
//! let descriptors = hypertrace::grpc::Descriptors::new(&[echo::FILE_DESCRIPTOR_SET])?;
//! Server::builder().layer(hypertrace::grpc::server_layer().descriptors(descriptors)) /* ... */;
//! let client = EchoClient::new(ServiceBuilder::new().layer(hypertrace::grpc::client_layer()).service(channel));
//! ```
//!
//! The span ends when the response stream ends (or is dropped: a cancellation), so it covers
//! streaming calls and sees the status sent in the trailers. What the application and its peer
//! exchange is untouched: frames pass through as they are; capture copies at most
//! `data_capture.body_max_size_bytes` of each direction on the side.
//!
//! Files: `frame.rs` (message framing), `message.rs` (messages as JSON or bytes),
//! `deferred.rs` (the messages' JSON, written on the export thread), `descriptors.rs`, `metadata.rs`, `status.rs` (status rules), `span.rs` (span start and end),
//! `start.rs` (the layers' prelude), `future.rs` / `body.rs` (the response future and the body
//! wrappers), `server.rs` / `client.rs` (the layers), `propagate.rs`, `options.rs`.

mod body;
mod client;
pub(crate) mod deferred;
mod descriptors;
mod frame;
mod future;
pub(crate) mod message;
mod metadata;
mod options;
mod propagate;
mod server;
mod span;
mod start;
mod status;

pub use body::{RequestBody, ResponseBody};
pub use client::{ClientLayer, ClientService};
pub use descriptors::{DescriptorError, Descriptors};
pub use future::ResponseFuture;
pub use server::{ServerLayer, ServerService};
pub use span::RpcSemconv;

/// The server layer: `tonic::transport::Server::builder().layer(hypertrace::grpc::server_layer())`,
/// or `Router::layer` on tonic services mounted in axum. Under `tonic_web::GrpcWebLayer` (that
/// is, added before it) it also covers grpc-web calls.
pub fn server_layer() -> ServerLayer {
    ServerLayer::default()
}

/// The client layer, around a tonic `Channel`:
/// `ServiceBuilder::new().layer(hypertrace::grpc::client_layer()).service(channel)`.
pub fn client_layer() -> ClientLayer {
    ClientLayer::default()
}
