//! The entry point that `#[hypertrace::handler]` expands into.
//!
//! Behind `hypertrace::layer()` the handler refines the layer's span (its `name` and capture options
//! apply to it); on its own it runs the same phases as the layer, through the same future.

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use opentelemetry::context::FutureExt as _;

use super::future::ResponseFuture;
use super::server;
use crate::agent;
use crate::capture::policy::Overrides;
use crate::span::server::InFlight;

/// Per-handler options from `#[hypertrace::handler(...)]`; `None` means "as the config says".
pub type HandlerOptions = Overrides;

/// Runs the handler body `inner` inside the request's SERVER span.
pub async fn run_handler<F, Fut>(opts: &'static HandlerOptions, req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response> + Send,
{
    if let Some(in_flight) = req.extensions().get::<InFlight>() {
        in_flight.refine(opts);
        let cx = in_flight.context().clone();
        // Attached again: the handler may be polled outside the layer's poll (a spawned task).
        return inner(req).with_context(cx).await;
    }
    let Some(agent) = agent::current() else {
        return inner(req).await;
    };
    if !agent.config.enabled {
        // No span, but the caller's trace context still reaches outgoing calls made inside.
        let parent = server::parent_context(&agent, &req);
        return inner(req).with_context(parent).await;
    }
    let (span, req) = server::start(&agent, opts, req);
    let fut = async move { Ok::<_, Infallible>(inner(req).await) };
    match ResponseFuture::with_span(fut, agent, span).await {
        Ok(resp) => resp.map(Body::new),
        Err(never) => match never {},
    }
}
