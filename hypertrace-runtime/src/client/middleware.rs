//! The CLIENT span of an outgoing reqwest call: its attributes, header and body capture (the server
//! side's rules and code: `capture::*`, `span::body::Tee`), context injection, error status, and
//! its end when the response body has been read to the end or dropped.

use std::error::Error as StdError;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{Extensions, HeaderMap};
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
// Through the parent module, not the crates by name: this file is compiled once per supported
// reqwest version (`client` for 0.13, `client::reqwest012` for 0.12), each parent naming its own
// `reqwest` and `reqwest_middleware`.
use super::reqwest::{Request, Response, ResponseBuilderExt as _, Url};
use super::reqwest_middleware::{Middleware, Next};
use super::{reqwest, reqwest_middleware, Route};
use crate::agent::{self, Agent};
use crate::capture::body::BodyCapture;
use crate::capture::content_type::{capture_kind, content_encoding};
use crate::capture::headers::record_headers_scoped;
use crate::capture::policy::{CaptureControl, CapturePolicy, Overrides};
use crate::config::{PropagationFormat, Semconv};
use crate::http::{attributes, failure};
use crate::metrics::ClientCall;
use crate::propagation::HeaderInjector;
use crate::span::body::{EndSpan, Tee};
use crate::span::exception::record_exception;

/// The `reqwest_middleware::Middleware` behind [`instrumented`](super::instrumented). Per call:
///
/// - with an enabled agent installed: a CLIENT span named `"{METHOD}"` (`"{METHOD} {route}"` with
///   a [`Route`] extension), child of the current context (inside an annotated handler, the
///   server span); `http.method`, `http.url` (without credentials), `net.peer.name`,
///   `net.peer.port`, `http.flavor`, `http.status_code`; request and response headers and bodies
///   per `data_capture` and `rustagent.redact_headers`; the propagation headers of the configured
///   formats, carrying this span;
/// - without an agent, or with `enabled: false`: no span, but the current context is still
///   injected, so the trace goes on through this service.
///
/// The builder methods override, for the calls of this client, the `data_capture` switches and
/// the propagation formats injected.
#[derive(Clone, Default)]
pub struct HypertraceMiddleware {
    overrides: Overrides,
    /// `None`: the agent's propagator (`propagation_formats`).
    propagator: Option<Arc<TextMapCompositePropagator>>,
}

impl std::fmt::Debug for HypertraceMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HypertraceMiddleware")
            .field("overrides", &self.overrides)
            .field("own_propagator", &self.propagator.is_some())
            .finish()
    }
}

impl HypertraceMiddleware {
    /// The middleware with the agent's settings.
    pub fn new() -> Self {
        Self::default()
    }
    /// Injects these formats instead of the agent's `propagation_formats`: for a peer that reads
    /// only B3 (`&[PropagationFormat::B3]`), or only W3C. Extraction on the server side is not
    /// affected.
    pub fn propagation_formats(mut self, formats: &[PropagationFormat]) -> Self {
        self.propagator = Some(Arc::new(crate::propagation::build(formats)));
        self
    }
    crate::capture::policy::override_setters!();
}

impl HypertraceMiddleware {
    /// Injects `cx` with this client's formats if it has its own, else the agent's propagator, else
    /// (no agent) the global one: an app that set up OpenTelemetry itself still propagates.
    fn inject(&self, agent: Option<&Agent>, cx: &Context, headers: &mut HeaderMap) {
        let mut injector = HeaderInjector(headers);
        match (&self.propagator, agent) {
            (Some(p), _) => p.inject_context(cx, &mut injector),
            (None, Some(a)) => a.propagator.inject_context(cx, &mut injector),
            (None, None) => opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(cx, &mut injector)
            }),
        }
    }
}

#[async_trait::async_trait]
impl Middleware for HypertraceMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        // Read when the call is first polled: inside the caller's context (an annotated handler's
        // server span, an entered `tracing` span, or an explicitly attached context).
        let parent = Context::current();
        let agent = match agent::current() {
            Some(a) if a.config.enabled => a,
            other => {
                self.inject(other.as_deref(), &parent, req.headers_mut());
                return next.run(req, extensions).await;
            }
        };
        let cfg = &agent.config;
        let dc = &cfg.data_capture;
        // Inside a request, the caller's `tracestate` rides on the current span's context: a `cap:0`
        // sent to this service also limits what its own calls capture.
        let control = CaptureControl::of(cfg, parent.span().span_context().trace_state());
        let policy = CapturePolicy::resolve(CapturePolicy::http(dc), control, &self.overrides);

        let route = extensions.get::<Route>().map(|r| r.0);
        let name = match route {
            Some(r) => format!("{} {}", req.method(), r),
            None => req.method().as_str().to_owned(),
        };
        let url = without_credentials(req.url());
        let mut attrs = Vec::with_capacity(32);
        request_attributes(&req, &url, cfg.semconv.http, &mut attrs);
        // A buffered body (`.body(String)`, `.json(..)`, `.form(..)`) is captured here, at most the
        // limit of it; a streamed one (`Body::wrap_stream`, multipart) is not: capturing it would
        // mean buffering it or wrapping a stream reqwest may need to replay.
        if policy.request_body {
            if let (Some(kind), Some(bytes)) = (
                capture_kind(req.headers().get(CONTENT_TYPE), &dc.allowed_content_types),
                req.body().and_then(|b| b.as_bytes()),
            ) {
                // As the agent's other captures: redacted on the export thread.
                let mut capture =
                    BodyCapture::configured(cfg, kind, content_encoding(req.headers()));
                capture.push(bytes);
                capture.finish("http.request.body", &mut attrs);
            }
        }
        let span = agent
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(&agent.tracer, &parent);
        let cx = parent.with_span(span);

        self.inject(Some(&agent), &cx, req.headers_mut());
        // After the injection: the span shows the headers as sent, trace context included.
        // (Headers the client adds later, its default headers and user agent, are not seen here.)
        if policy.request_headers {
            let mut attrs = Vec::new();
            record_headers_scoped(
                "http.request.header.",
                req.headers(),
                cfg,
                policy.headers,
                &mut attrs,
            );
            cx.span().set_attributes(attrs);
        }

        let raw_url = req.url().clone();
        let method = req.method().clone();
        let started = std::time::Instant::now();
        let result = next.run(req, extensions).with_context(cx.clone()).await;
        // Until the response head arrived (or the call failed); the span goes on to the body's end.
        if let Some(m) = &agent.metrics {
            let call = ClientCall {
                method: &method,
                https: url.scheme() == "https",
                host: url.host_str(),
                port: url.port_or_known_default(),
            };
            let (status, error) = match &result {
                Ok(resp) => (Some(resp.status().as_u16()), None),
                Err(e) => (None, Some(error_type(e))),
            };
            m.http_client_call(&call, started.elapsed(), status, error);
        }
        match result {
            Ok(resp) => Ok(instrument_response(&agent, policy, cx, resp)),
            Err(err) => {
                record_error(&cx, &err, &raw_url, &url);
                cx.span().end();
                Err(err)
            }
        }
    }
}

/// The URL without its userinfo (`https://user:secret@host/` → `https://host/`). reqwest moves
/// userinfo given to its request builder into an `authorization` header (redacted by default), but
/// a `Request` built by hand still carries it.
fn without_credentials(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    url
}

fn request_attributes(req: &Request, url: &Url, sc: Semconv, out: &mut Vec<KeyValue>) {
    let method = req.method().as_str().to_owned();
    let host = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned());
    let port = url.port_or_known_default().map(i64::from);
    if sc.old {
        out.push(KeyValue::new("http.method", method.clone()));
        out.push(KeyValue::new("http.url", url.as_str().to_owned()));
        if let Some(h) = &host {
            out.push(KeyValue::new("net.peer.name", h.clone()));
        }
        if let Some(p) = port {
            out.push(KeyValue::new("net.peer.port", p));
        }
    }
    if sc.stable {
        out.push(KeyValue::new("http.request.method", method));
        out.push(KeyValue::new("url.full", url.as_str().to_owned()));
        if let Some(h) = host {
            out.push(KeyValue::new("server.address", h));
        }
        if let Some(p) = port {
            out.push(KeyValue::new("server.port", p));
        }
    }
}

/// The error, then each of its sources not already in its text: reqwest's own message is only
/// "error sending request for url (...)", the cause ("Connection refused") is in the chain.
fn error_message(err: &(dyn StdError + 'static)) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

/// `error.type` of a call that got no response: a few fixed classes, never the message.
fn error_type(err: &reqwest_middleware::Error) -> &'static str {
    match err {
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(_) => "reqwest::Error",
        reqwest_middleware::Error::Middleware(_) => "reqwest_middleware::Error",
    }
}

/// No response (connection refused, timeout, a middleware's error): status Error with the message,
/// and an `exception` event, as for a panicking handler on the server side.
fn record_error(cx: &Context, err: &reqwest_middleware::Error, raw_url: &Url, url: &Url) {
    let mut msg = error_message(err);
    if raw_url != url {
        // reqwest's message quotes the URL: not its credentials.
        msg = msg.replace(raw_url.as_str(), url.as_str());
    }
    let ty = match err {
        reqwest_middleware::Error::Reqwest(_) => "reqwest::Error",
        reqwest_middleware::Error::Middleware(_) => "reqwest_middleware::Error",
    };
    record_exception(cx, ty, msg);
}

fn instrument_response(
    agent: &Agent,
    policy: CapturePolicy,
    cx: Context,
    resp: Response,
) -> Response {
    let cfg = &agent.config;
    let status = resp.status();
    let mut attrs = Vec::with_capacity(16);
    attributes::status(status.as_u16(), cfg.semconv.http, &mut attrs);
    attributes::version(resp.version(), cfg.semconv.http, &mut attrs);
    if policy.response_headers {
        crate::http::server::response_headers(cfg, policy.headers, resp.headers(), &mut attrs);
    }
    let span = cx.span();
    span.set_attributes(attrs);
    if let Some(description) = failure::client(status) {
        span.set_status(Status::error(description));
    }
    // Decompressed by reqwest (its gzip/brotli/deflate features)? Then it removed the
    // Content-Encoding header too, and the capture sees identity bytes.
    let capture = if policy.response_body {
        BodyCapture::for_response(cfg, resp.headers(), status)
    } else {
        None
    };

    // The body streams through `Tee` as the caller reads it (chunk, bytes, text, json,
    // bytes_stream): copied on the side up to the limit, never buffered. The span ends when it has
    // been read to the end, failed, or the response was dropped.
    let url = resp.url().clone();
    let (mut parts, body) = http::Response::<reqwest::Body>::from(resp).into_parts();
    // The conversion back to a `reqwest::Response` takes the URL from an extension.
    if let Ok(with_url) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(with_url.into_parts().0.extensions);
    }
    let body = reqwest::Body::wrap(Tee::new(
        body,
        capture,
        EndSpan::new(cx, "http.response.body"),
    ));
    Response::from(http::Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_the_url() {
        let u = Url::parse("https://user:s3cret@example.com:8443/a?b=c").unwrap();
        assert_eq!(
            without_credentials(&u).as_str(),
            "https://example.com:8443/a?b=c"
        );
        let u = Url::parse("http://token@example.com/").unwrap();
        assert_eq!(without_credentials(&u).as_str(), "http://example.com/");
        let u = Url::parse("http://example.com/x").unwrap();
        assert_eq!(without_credentials(&u), u);
    }

    #[test]
    fn attributes_old_and_stable_keys() {
        let req = Request::new(
            http::Method::POST,
            Url::parse("http://[::1]:9000/p?q=1").unwrap(),
        );
        let url = without_credentials(req.url());
        let mut out = Vec::new();
        request_attributes(
            &req,
            &url,
            Semconv {
                old: true,
                stable: true,
            },
            &mut out,
        );
        let get = |k: &str| {
            out.iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.clone())
        };
        assert_eq!(get("http.method"), Some("POST".into()));
        assert_eq!(get("http.url"), Some("http://[::1]:9000/p?q=1".into()));
        assert_eq!(get("net.peer.name"), Some("::1".into()));
        assert_eq!(get("net.peer.port"), Some(9000i64.into()));
        assert_eq!(get("http.request.method"), Some("POST".into()));
        assert_eq!(get("url.full"), Some("http://[::1]:9000/p?q=1".into()));
        assert_eq!(get("server.port"), Some(9000i64.into()));

        let req = Request::new(
            http::Method::GET,
            Url::parse("https://example.com/").unwrap(),
        );
        let mut out = Vec::new();
        request_attributes(
            &req,
            req.url(),
            Semconv {
                old: true,
                stable: false,
            },
            &mut out,
        );
        assert!(out
            .iter()
            .any(|kv| kv.key.as_str() == "net.peer.port" && kv.value == 443i64.into()));
        assert!(!out.iter().any(|kv| kv.key.as_str() == "url.full"));
    }

    #[test]
    fn error_message_follows_the_source_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(
            error_message(&e),
            "error sending request: Connection refused"
        );
    }
}
