//! The entry point that `#[hypertrace::handler]` expands into.

use std::future::Future;

use axum::extract::Request;
use axum::response::Response;

use super::server_span::{serve, Overrides};

/// Per-handler options from `#[hypertrace::handler(...)]`; `None` means "as the config says".
pub type HandlerOptions = Overrides;

/// Runs the handler body `inner` inside the request's SERVER span.
pub async fn run_handler<F, Fut>(opts: &'static HandlerOptions, req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response> + Send,
{
    serve(opts, req, inner).await
}
