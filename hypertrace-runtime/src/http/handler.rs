//! The entry point that `#[hypertrace::handler]` expands into.
//!
//! Behind `hypertrace::layer()` the handler refines the layer's span (its `name` and capture options
//! apply to it); on its own it runs the same phases as the layer, through the same future.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use opentelemetry::context::{FutureExt as _, WithContext};

use super::future::ResponseFuture;
use super::server::{self, Serve};
use crate::agent;
use crate::capture::policy::Overrides;
use crate::filter::run::{Blocked, Chain, Evaluation};
use crate::filter::{self, Filters};
use crate::span::server::{InFlight, ServerSpan};

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
    served(fut.await)
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
        let mut span = in_flight.on_span();
        server::request_headers(&agent, more.headers, &req, &mut span);
    }
    if more.request_body {
        server::tee_request_body(&agent, in_flight.context(), in_flight.shared(), req)
    } else {
        req
    }
}

/// Runs the handler body `inner` inside the request's SERVER span.
///
/// The work before the handler runs is done here, synchronously; what is left (the handler, then
/// the finish phase) is a `HandlerFuture`. A named future rather than an `async fn`: the axum
/// `Handler` impl boxes it per request, and an `async fn` with the layer's, the spanless and the
/// filtered paths as separate await points was laid out as their sum (2.7 KiB beside a 0.9 KiB
/// handler), which made that box a slow-path allocation and a large copy for every request.
/// As with the layer, the span therefore starts when axum calls the handler; a future dropped
/// before its first poll ends its span as cancelled.
pub fn run_handler<F, Fut>(
    opts: &'static HandlerOptions,
    req: Request,
    inner: F,
) -> HandlerFuture<Fut>
where
    F: FnOnce(Request) -> Fut + Send + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    if let Some(in_flight) = req.extensions().get::<InFlight>().cloned() {
        let req = refine(&in_flight, opts, req);
        // Attached again: the handler may be polled outside the layer's poll (a spawned task).
        return HandlerFuture::in_context(inner(req), in_flight.context().clone());
    }
    let Some(agent) = agent::current() else {
        return HandlerFuture {
            kind: Kind::Plain { inner: inner(req) },
        };
    };
    let parent = match server::serve(&agent, &req, false) {
        Serve::Span(parent) => parent,
        // No span, but the trace context still reaches outgoing calls made inside.
        Serve::Spanless(cx) => return HandlerFuture::in_context(inner(req), cx),
    };
    let (span, req) = server::start(&agent, opts, parent, req);
    // The agent's filters, with the same code as the layer's; the layer in front already ran them.
    if let Some(chain) = Chain::new(&agent.filters, Filters::none()) {
        let filtered = async move {
            let cx = span.context().clone();
            let ev = Evaluation::new(chain, &agent.config);
            let limit = agent.config.data_capture.body_max_processing_size_bytes;
            match filter::http::check(ev, req, limit, &cx).await {
                Ok(req) => served(
                    ResponseFuture::with_span(Infallibly { inner: inner(req) }, agent, span).await,
                ),
                Err(blocked) => blocked_response(blocked, agent, span).await,
            }
        };
        return HandlerFuture {
            kind: Kind::Filtered {
                inner: Box::pin(filtered),
            },
        };
    }
    HandlerFuture {
        kind: Kind::Span {
            inner: ResponseFuture::with_span(Infallibly { inner: inner(req) }, agent, span),
        },
    }
}

/// The response of the span's future, as axum's `Response`.
fn served(out: Result<http::Response<server::ResponseBody<Body>>, Infallible>) -> Response {
    match out {
        Ok(resp) => resp.map(Body::new),
        Err(never) => match never {},
    }
}

pin_project_lite::pin_project! {
    /// The future [`run_handler`] returns: the handler, run inside its span's context, and the
    /// span's finish phase when the response is ready.
    pub struct HandlerFuture<Fut> {
        #[pin]
        kind: Kind<Fut>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<Fut> {
        /// Behind the layer (its span's context), or with no span (the incoming context).
        InContext { #[pin] inner: WithContext<Fut> },
        /// No agent is installed.
        Plain { #[pin] inner: Fut },
        /// The handler's own span, finished by the layer's response future.
        Span { #[pin] inner: ResponseFuture<Infallibly<Fut>> },
        /// The agent has blocking filters: they run first. Boxed, as the filter phases make it
        /// large and few services have filters.
        Filtered { inner: std::pin::Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<Fut> HandlerFuture<Fut> {
    fn in_context(inner: Fut, cx: opentelemetry::Context) -> Self {
        HandlerFuture {
            kind: Kind::InContext {
                inner: inner.with_context(cx),
            },
        }
    }
}

impl<Fut: Future<Output = Response>> Future for HandlerFuture<Fut> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match self.project().kind.project() {
            KindProj::InContext { inner } => inner.poll(cx),
            KindProj::Plain { inner } => inner.poll(cx),
            KindProj::Span { inner } => inner.poll(cx).map(served),
            KindProj::Filtered { inner } => inner.as_mut().poll(cx),
        }
    }
}

pin_project_lite::pin_project! {
    /// The handler's future with the `Result` the layer's response future expects.
    struct Infallibly<Fut> {
        #[pin]
        inner: Fut,
    }
}

impl<Fut: Future> Future for Infallibly<Fut> {
    type Output = Result<Fut::Output, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::{FromRequest, Request};
    use axum::response::IntoResponse;

    static OPTIONS: super::HandlerOptions = super::HandlerOptions {
        name: None,
        request_headers: None,
        response_headers: None,
        request_body: None,
        response_body: None,
    };

    /// The agent's share of a handler's future (which axum boxes per request) stays a few
    /// pointers: the span's state is boxed, the filtered path too, so that a handler whose own
    /// future fits an allocator's per-thread cache still fits with the agent around it.
    #[test]
    fn the_handler_future_grows_by_a_few_words_only() {
        let handler = |req: Request| async move {
            match <String as FromRequest<()>>::from_request(req, &()).await {
                Ok(text) => text.into_response(),
                Err(rejection) => rejection.into_response(),
            }
        };
        let alone = std::mem::size_of_val(&handler(Request::default()));
        let wrapped =
            std::mem::size_of_val(&super::run_handler(&OPTIONS, Request::default(), handler));
        assert!(
            wrapped <= alone + 64,
            "the handler's future is {alone} bytes, {wrapped} with the agent"
        );
    }
}
