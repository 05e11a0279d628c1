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
use opentelemetry::trace::TraceContextExt as _;

use super::future::ResponseFuture;
use super::server::{self, Serve};
use crate::agent;
use crate::capture::policy::Overrides;
use crate::filter::run::{Blocked, Chain, Evaluation};
use crate::filter::{self, Filters};
use crate::span::server::{InFlight, ServerSpan};
use crate::span::OnSpan;

/// A request the agent's filters blocked, answered (and its span finished) by the same response
/// future as the layer's.
async fn blocked_response(
    blocked: Blocked,
    agent: std::sync::Arc<crate::agent::Agent>,
    span: ServerSpan,
) -> Response {
    let fut = ResponseFuture::<std::future::Ready<Result<Response, Infallible>>>::blocked(
        blocked, agent, span,
    );
    match fut.await {
        Ok(resp) => resp.map(Body::new),
        Err(never) => match never {},
    }
}

/// Per-handler options from `#[hypertrace::handler(...)]`; `None` means "as the config says".
pub type HandlerOptions = Overrides;

/// Behind the layer: the handler's options apply to the layer's span, and what they turn on that the
/// layer did not capture is captured here.
fn refine(in_flight: &InFlight, opts: &'static HandlerOptions, req: Request) -> Request {
    let more = in_flight.refine(opts);
    if !more.request_headers && !more.request_body {
        return req;
    }
    let Some(agent) = agent::current() else {
        return req;
    };
    if more.request_headers {
        let mut span = OnSpan(in_flight.context().span());
        server::request_headers(&agent, more.headers, &req, &mut span);
    }
    if more.request_body {
        server::tee_request_body(&agent, in_flight.context(), in_flight.shared(), req)
    } else {
        req
    }
}

/// Runs the handler body `inner` inside the request's SERVER span.
pub async fn run_handler<F, Fut>(opts: &'static HandlerOptions, req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response> + Send,
{
    if let Some(in_flight) = req.extensions().get::<InFlight>().cloned() {
        let req = refine(&in_flight, opts, req);
        // Attached again: the handler may be polled outside the layer's poll (a spawned task).
        return inner(req).with_context(in_flight.context().clone()).await;
    }
    let Some(agent) = agent::current() else {
        return inner(req).await;
    };
    let parent = match server::serve(&agent, &req, false) {
        Serve::Span(parent) => parent,
        // No span, but the trace context still reaches outgoing calls made inside.
        Serve::Spanless(cx) => return inner(req).with_context(cx).await,
    };
    let (span, req) = server::start(&agent, opts, parent, req);
    // The agent's filters, with the same code as the layer's; the layer in front already ran them.
    let req = match Chain::new(&agent.filters, Filters::none()) {
        None => req,
        Some(chain) => {
            let cx = span.context().clone();
            let ev = Evaluation::new(chain, &agent.config);
            let limit = agent.config.data_capture.body_max_processing_size_bytes;
            match filter::http::check(ev, req, limit, &cx).await {
                Ok(req) => req,
                Err(blocked) => return blocked_response(blocked, agent, span).await,
            }
        }
    };
    let fut = async move { Ok::<_, Infallible>(inner(req).await) };
    match ResponseFuture::with_span(fut, agent, span).await {
        Ok(resp) => resp.map(Body::new),
        Err(never) => match never {},
    }
}
