//! The capture core shared by `#[hypertrace::handler]` and the tower layer: one SERVER span per
//! request, its attributes, header and body capture, panic and status handling, and the span's end
//! when the response body is finished or dropped.

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use futures_util::FutureExt as _;
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

use super::attributes;
use super::body::{OnBodyDone, Tee};
use crate::agent::{self, Agent};
use crate::capture::body::BodyCapture;
use crate::capture::content_type::{capture_kind, content_encoding};
use crate::capture::headers::record_headers_limited;

/// Per-handler overrides of the `data_capture` switches; `None` follows the config.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub name: Option<&'static str>,
    pub request_headers: Option<bool>,
    pub response_headers: Option<bool>,
    pub request_body: Option<bool>,
    pub response_body: Option<bool>,
}

/// The four capture switches as builder methods on a type with an `overrides: Overrides` field
/// (the layer and the reqwest middleware), so both offer the same API from one definition.
macro_rules! override_setters {
    // The empty call first: the list arm also matches an empty list.
    () => {
        $crate::http::server_span::override_setters! {
            /// Request headers on or off for these requests, whatever the config says.
            request_headers;
            /// Response headers on or off, whatever the config says.
            response_headers;
            /// The request body on or off, whatever the config says.
            request_body;
            /// The response body on or off, whatever the config says.
            response_body;
        }
    };
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, on: bool) -> Self {
                self.overrides.$name = Some(on);
                self
            }
        )*
    };
}
pub(crate) use override_setters;

/// Marks a request already instrumented by the layer, so an annotated handler behind it does not
/// open a second span.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Instrumented;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

/// The propagation headers looked up on every request, parsed once (a `&str` key is parsed into a
/// header name on each lookup).
static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");
static BAGGAGE: http::HeaderName = http::HeaderName::from_static("baggage");

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = match key {
            "traceparent" => self.0.get(&TRACEPARENT),
            "tracestate" => self.0.get(&TRACESTATE),
            "baggage" => self.0.get(&BAGGAGE),
            _ => self.0.get(key),
        };
        value.and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

fn parent_context(agent: &Agent, req: &Request) -> Context {
    agent.propagator.extract(&HeaderExtractor(req.headers()))
}

/// Runs `inner` for `req` inside a SERVER span, capturing per the installed agent's config.
pub async fn serve<F, Fut>(ov: &Overrides, req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response> + Send,
{
    if req.extensions().get::<Instrumented>().is_some() {
        return inner(req).await;
    }
    let Some(agent) = agent::current() else {
        return inner(req).await;
    };
    if !agent.config.enabled {
        // No span, but the caller's trace context still reaches outgoing calls made inside.
        let parent = parent_context(&agent, &req);
        return inner(req).with_context(parent).await;
    }
    serve_with(&agent, ov, req, inner).await
}

async fn serve_with<F, Fut>(
    agent: &Arc<Agent>,
    ov: &Overrides,
    mut req: Request,
    inner: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response> + Send,
{
    let cfg = &agent.config;
    let dc = &cfg.data_capture;
    let parent = parent_context(agent, &req);
    // A clone of the extension is an `Arc` increment, not a copy of the template.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map(MatchedPath::as_str);

    let name: Cow<'static, str> = match (ov.name, route) {
        (Some(n), _) => Cow::Borrowed(n),
        (None, Some(r)) => {
            let m = req.method().as_str();
            let mut name = String::with_capacity(m.len() + 1 + r.len());
            name.push_str(m);
            name.push(' ');
            name.push_str(r);
            Cow::Owned(name)
        }
        (None, None) => Cow::Owned(req.method().as_str().to_owned()),
    };
    let mut attrs = Vec::with_capacity(32);
    attributes::request(&req, route, agent.semconv, &mut attrs);
    if ov.request_headers.unwrap_or(dc.http_headers.request) {
        record_headers_limited(
            "http.request.header.",
            req.headers(),
            &cfg.rustagent.redact_headers,
            cfg.rustagent.max_header_value_bytes,
            &mut attrs,
        );
    }
    let span = agent
        .tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attrs)
        .start_with_context(&agent.tracer, &parent);
    let cx = parent.with_span(span);

    if ov.request_body.unwrap_or(dc.http_body.request) {
        if let Some(kind) = capture_kind(
            req.headers().get(http::header::CONTENT_TYPE),
            &dc.allowed_content_types,
        ) {
            let capture = BodyCapture::new(
                dc.body_max_size_bytes,
                kind,
                content_encoding(req.headers()),
            );
            let done = RequestBodyDone { cx: cx.clone() };
            req = req.map(|b| Body::new(Tee::new(b, Some(capture), done)));
        }
    }

    let result = AssertUnwindSafe(inner(req))
        .catch_unwind()
        .with_context(cx.clone())
        .await;
    let resp = match result {
        Ok(resp) => resp,
        Err(panic) => {
            record_panic(&cx, panic.as_ref());
            std::panic::resume_unwind(panic);
        }
    };

    let status = resp.status();
    let mut attrs = Vec::with_capacity(16);
    attributes::status(status.as_u16(), agent.semconv, &mut attrs);
    if ov.response_headers.unwrap_or(dc.http_headers.response) {
        record_headers_limited(
            "http.response.header.",
            resp.headers(),
            &cfg.rustagent.redact_headers,
            cfg.rustagent.max_header_value_bytes,
            &mut attrs,
        );
    }
    let span = cx.span();
    span.set_attributes(attrs);
    if status.is_server_error() {
        span.set_status(Status::error(""));
    }
    let capture = if ov.response_body.unwrap_or(dc.http_body.response) {
        capture_kind(
            resp.headers().get(http::header::CONTENT_TYPE),
            &dc.allowed_content_types,
        )
        .map(|kind| {
            BodyCapture::new(
                dc.body_max_size_bytes,
                kind,
                content_encoding(resp.headers()),
            )
        })
    } else {
        None
    };
    let done = ResponseBodyDone { cx };
    resp.map(|b| Body::new(Tee::new(b, capture, done)))
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".into())
}

fn record_panic(cx: &Context, panic: &(dyn Any + Send)) {
    record_exception(cx, "panic", panic_message(panic));
    cx.span().end();
}

/// An `exception` event and status Error with its message: a panicking handler here, a failed
/// call on the client side.
pub(crate) fn record_exception(cx: &Context, ty: &'static str, msg: String) {
    let span = cx.span();
    span.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", ty),
            KeyValue::new("exception.message", msg.clone()),
        ],
    );
    span.set_status(Status::error(msg));
}

struct RequestBodyDone {
    cx: Context,
}

impl OnBodyDone for RequestBodyDone {
    fn done(self, capture: Option<BodyCapture>, _complete: bool) {
        if let Some(c) = capture {
            let mut attrs = Vec::with_capacity(2);
            c.finish("http.request.body", &mut attrs);
            if !attrs.is_empty() {
                self.cx.span().set_attributes(attrs);
            }
        }
    }
}

/// Ends the span when the response body is finished or dropped, with the captured body on it.
/// Server and client spans alike.
pub(crate) struct ResponseBodyDone {
    pub(crate) cx: Context,
}

impl OnBodyDone for ResponseBodyDone {
    fn done(self, capture: Option<BodyCapture>, _complete: bool) {
        let span = self.cx.span();
        if let Some(c) = capture {
            let mut attrs = Vec::with_capacity(2);
            c.finish("http.response.body", &mut attrs);
            if !attrs.is_empty() {
                span.set_attributes(attrs);
            }
        }
        span.end();
    }
}
