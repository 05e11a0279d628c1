//! The HTTP side of a SERVER span: what its *start* phase records from the request (name, attributes,
//! request headers, the request-body tee) and what its *finish* phase records from the response
//! (status, response headers, the failure rule, the response-body tee). The lifecycle itself is the
//! protocol-agnostic `span::server`.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::MatchedPath;
use http::{Request, Response};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::Context;

use super::{attributes, failure};
use crate::agent::Agent;
use crate::capture::body::BodyCapture;
use crate::capture::headers::record_headers_scoped;
use crate::capture::policy::{CaptureControl, CapturePolicy, HeaderScope, Overrides};
use crate::capture::AttributeSink;
use crate::metrics::ServerTimer;
use crate::span::body::{expects_continue, EndSpan, RecordRequestBody, Tee};
use crate::span::record::{Attributes, SpanName};
use crate::span::server::{surely_unsampled, unsampled_context, ServerSpan, Shared};
use crate::span::OnSpan;

/// The body of a response that went through the layer or an annotated handler.
pub type ResponseBody<B> = Tee<B, EndSpan>;

/// The incoming trace context of a request, or an empty one: never the context current here, which
/// may hold a span an app's own middleware opened around the request (the SERVER span is the entry
/// span of this service, not that span's child).
pub(crate) fn parent_context<B>(agent: &Agent, req: &Request<B>) -> Context {
    crate::propagation::extract_incoming(
        &agent.propagator,
        &agent.config.propagation_formats,
        req.headers(),
    )
}

/// Where a request is served: under a span, or, when no span would record anything, only under a
/// context that the calls made inside hand on.
pub(crate) enum Serve {
    /// Start a span under this parent (the caller's context).
    Span(Context),
    /// No span: the agent is disabled (this is the caller's context), or the sampler surely drops
    /// the request and nothing else needs its span (no blocking filter, no metrics: the span's
    /// timer records the request's duration), so the SDK's non-recording span is not started
    /// (see [`unsampled_context`]).
    Spanless(Context),
}

/// Decides [`Serve`] for a request; `filters`: the entry point has blocking filters of its own.
/// The caller's context is extracted once, whatever the outcome.
pub(crate) fn serve<B>(agent: &Agent, req: &Request<B>, filters: bool) -> Serve {
    let parent = parent_context(agent, req);
    if !agent.config.enabled {
        return Serve::Spanless(parent);
    }
    let spanless = agent.metrics.is_none()
        && !filters
        && agent.filters.is_empty()
        && surely_unsampled(agent, &parent);
    if spanless {
        Serve::Spanless(unsampled_context(&parent))
    } else {
        Serve::Span(parent)
    }
}

/// `"{METHOD} {route}"`, `"{METHOD}"` for an unmatched request, or the handler's `name`.
fn span_name<'a>(
    method: &'a http::Method,
    route: Option<&'a str>,
    name: Option<&'static str>,
) -> SpanName<'a> {
    match (name, route) {
        (Some(n), _) => SpanName::Given(Cow::Borrowed(n)),
        (None, Some(r)) => SpanName::Joined(method.as_str(), r),
        (None, None) => SpanName::Copied(method.as_str()),
    }
}

/// The *start* phase for an HTTP request: the span, then the request wrapped so that its body is
/// captured as the handler reads it.
pub(crate) fn start<B>(
    agent: &Agent,
    ov: &Overrides,
    parent: Context,
    req: Request<B>,
) -> (ServerSpan, Request<Body>)
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let cfg = &agent.config;
    let dc = &cfg.data_capture;
    // A clone of the extension is an `Arc` increment, not a copy of the template.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map(MatchedPath::as_str);
    // An unsampled span records nothing: its name is not built, and its attributes are written
    // only for a span that records.
    let name = if surely_unsampled(agent, &parent) {
        SpanName::Given(Cow::Borrowed(""))
    } else {
        span_name(req.method(), route, ov.name)
    };
    let attrs = |out: &mut Attributes<'_>| attributes::request(&req, route, cfg.semconv.http, out);
    // The caller's `tracestate` (extracted with its `traceparent`) may ask for less or more.
    let control = CaptureControl::of(cfg, parent.span().span_context().trace_state());
    let policy = CapturePolicy::resolve(CapturePolicy::http(dc), control, ov);
    let timer = agent.metrics.as_ref().map(|m| {
        let https = req.uri().scheme() == Some(&http::uri::Scheme::HTTPS);
        ServerTimer::start(m, req.method(), https, route)
    });
    let mut span = ServerSpan::start(agent, &parent, name, attrs, policy, timer);
    let policy = span.policy();
    let req = capture_request(agent, &mut span, policy, req.map(Body::new));
    (span, req)
}

/// Request headers and the request-body tee, for what `wanted` asks. The headers are deferred:
/// a handler behind the layer may still turn them off.
fn capture_request(
    agent: &Agent,
    span: &mut ServerSpan,
    wanted: CapturePolicy,
    req: Request<Body>,
) -> Request<Body> {
    if wanted.request_headers {
        request_headers(agent, wanted.headers, &req, &mut span.deferred_headers());
    }
    if wanted.request_body {
        tee_request_body(agent, span.context(), span.shared(), req)
    } else {
        req
    }
}

/// The request headers `scope` keeps, as attributes, into `out`.
pub(crate) fn request_headers<B>(
    agent: &Agent,
    scope: HeaderScope,
    req: &Request<B>,
    out: &mut impl AttributeSink,
) {
    record_headers_scoped(
        "http.request.header.",
        req.headers(),
        &agent.config,
        scope,
        out,
    );
}

/// The response headers `scope` keeps, as attributes, into `out`: a server's response, or the
/// response to an outgoing call.
pub(crate) fn response_headers(
    cfg: &crate::config::Config,
    scope: HeaderScope,
    headers: &http::HeaderMap,
    out: &mut impl AttributeSink,
) {
    record_headers_scoped("http.response.header.", headers, cfg, scope, out);
}

/// The request with its body captured on the side as it is read, when its content type is one
/// that is captured.
pub(crate) fn tee_request_body(
    agent: &Agent,
    cx: &Context,
    shared: &Arc<Shared>,
    req: Request<Body>,
) -> Request<Body> {
    let Some(capture) = BodyCapture::for_request(&agent.config, req.headers()) else {
        return req;
    };
    let done = RecordRequestBody {
        cx: cx.clone(),
        shared: shared.clone(),
        key: "http.request.body",
    };
    // A body the handler never reads is still captured as far as it has arrived, unless the client
    // waits for `100 Continue` before sending it.
    let ready_on_drop = !expects_continue(req.headers());
    req.map(|b| Body::new(Tee::new(b, Some(capture), done).read_ready_on_drop(ready_on_drop)))
}

/// The *finish* phase for an HTTP response: status and response headers on the span, the failure
/// rule, and the body wrapped so that the span ends with it.
pub(crate) fn finish<B: http_body::Body<Data = bytes::Bytes>>(
    agent: &Agent,
    span: ServerSpan,
    resp: Response<B>,
) -> Response<ResponseBody<B>> {
    let cfg = &agent.config;
    let policy = span.policy();
    let status = resp.status();
    let sampled = span.sampled();
    let capture = if policy.response_body {
        BodyCapture::for_response(cfg, resp.headers(), status)
    } else {
        None
    };
    let respond = |out: &mut OnSpan<'_>| {
        if sampled {
            attributes::status(status.as_u16(), cfg.semconv.http, out);
        }
        if policy.response_headers {
            response_headers(cfg, policy.headers, resp.headers(), out);
        }
    };
    let end = span.finish(
        status.as_u16(),
        respond,
        failure::server(status),
        "http.response.body",
    );
    resp.map(|b| Tee::new(b, capture, end))
}
