//! The synchronous prelude of both layers: decide whether a call is instrumented, start its span
//! with the request metadata, and prepare the request and response captures.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::Request;
use opentelemetry::{Context, KeyValue};

use super::body::Call;
use super::future::Pending;
use super::message::{Encoding, MessageCapture};
use super::metadata;
use super::options::Options;
use super::span::{self, split_path, Side};
use super::status::parse_timeout;
use crate::agent::{self, Agent};
use crate::capture::policy::{CaptureControl, CapturePolicy};
use opentelemetry::trace::TraceContextExt as _;

/// What the layer does with one request.
pub(crate) enum Start {
    /// Not a gRPC call, an excluded method, or no agent: passed through as is.
    Pass,
    /// `enabled: false`: no span, but the caller's context is current in the call.
    Context(Context),
    /// A span: its context, the shared call state, what the response head needs, and the capture
    /// policy in force.
    Span {
        cx: Context,
        call: Arc<Call>,
        pending: Pending,
        policy: CapturePolicy,
    },
}

/// A gRPC request (`content-type: application/grpc`, `application/grpc+proto`, ...).
pub(crate) fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"))
}

/// Starts the call. `parent` gives the parent context once the agent is known.
pub(crate) fn start<B>(
    opts: &Options,
    side: Side,
    req: &Request<B>,
    parent: impl FnOnce(&Agent) -> Context,
) -> Start {
    let path = req.uri().path();
    if opts.excluded(path) {
        return Start::Pass;
    }
    let Some(agent) = agent::current() else {
        return Start::Pass;
    };
    let parent = parent(&agent);
    if !agent.config.enabled {
        return Start::Context(parent);
    }
    let cfg = &agent.config;
    let semconv = opts.semconv.unwrap_or(cfg.semconv.rpc);

    let (name, service, method) = match split_path(path) {
        Some((service, method)) => (Cow::Owned(path[1..].to_owned()), service, method),
        // Not a gRPC path: the span is still there, named for what it is.
        None => (Cow::Owned(path.to_owned()), "", ""),
    };
    // Built only when the agent has metrics: it costs three allocations per call.
    let metric = if agent.metrics.is_none() {
        Vec::new()
    } else {
        vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service.to_owned()),
            // A method no descriptor knows could be anything a client made up: one series for all.
            KeyValue::new(
                "rpc.method",
                if opts.descriptors.method(path).is_some() || opts.descriptors.is_empty() {
                    method.to_owned()
                } else {
                    "_OTHER".to_owned()
                },
            ),
        ]
    };
    let mut attrs = Vec::with_capacity(16 + req.headers().len());
    span::start_attributes(service, method, semconv, &mut attrs);
    // The caller's `tracestate`: on the server from the metadata, on the client from the context
    // the call is made in (a request that arrived with `cap:0` makes its calls with `cap:0`).
    let control = CaptureControl::of(cfg, parent.span().span_context().trace_state());
    let wanted = CapturePolicy::resolve(
        CapturePolicy::rpc(&cfg.data_capture),
        control,
        &opts.overrides,
    );
    // On the client, the metadata is recorded after the injection (by the client layer).
    if side == Side::Server && wanted.request_headers {
        metadata::request(req, cfg, wanted.headers, &mut attrs);
    }
    let cx = span::start(&agent, side, name, &parent, attrs);
    // An unsampled call captures nothing more.
    let policy = if cx.span().span_context().is_sampled() {
        wanted
    } else {
        CapturePolicy::NOTHING
    };

    let types = opts.descriptors.method(path);
    let request = policy.request_body.then(|| {
        let encoding =
            Encoding::from_header(req.headers().get("grpc-encoding").map(|v| v.as_bytes()));
        MessageCapture::new(cfg, encoding, types.map(|m| m.request()))
    });
    let response_body = policy.response_body.then(|| types.map(|m| m.response()));
    let call = Arc::new(Call {
        cx: cx.clone(),
        side,
        semconv,
        agent: agent.clone(),
        response_metadata: policy.response_headers,
        metadata_scope: policy.headers,
        request: Mutex::new(request),
        deadline: req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| parse_timeout(v.as_bytes()))
            .and_then(|t| Instant::now().checked_add(t)),
        started: Instant::now(),
        metric,
    });
    let pending = Pending {
        call: call.clone(),
        response_body,
    };
    Start::Span {
        cx,
        call,
        pending,
        policy,
    }
}
