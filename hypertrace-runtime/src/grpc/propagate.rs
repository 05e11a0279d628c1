//! Trace context in request metadata: read on the server, written on the client, with the
//! agent's propagator (`propagation_formats`).

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::Context;

use crate::agent::Agent;
use crate::propagation::HeaderExtractor;

struct MetadataInjector<'a>(&'a mut HeaderMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The W3C propagator sets `tracestate` even when there is none: empty says nothing.
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The caller's context from the request metadata; a malformed one gives a new trace. Read as HTTP
/// headers are (a `tracestate` over several lines is one list).
pub(crate) fn extract(agent: &Agent, headers: &HeaderMap) -> Context {
    agent.propagator.extract(&HeaderExtractor::new(headers))
}

/// Writes `cx` into the request metadata: with the agent's propagator, or (no agent installed) the
/// global one, so that an app that set up OpenTelemetry itself still propagates.
pub(crate) fn inject(agent: Option<&Agent>, cx: &Context, headers: &mut HeaderMap) {
    let mut injector = MetadataInjector(headers);
    match agent {
        Some(a) => a.propagator.inject_context(cx, &mut injector),
        None => {
            opentelemetry::global::get_text_map_propagator(|p| p.inject_context(cx, &mut injector))
        }
    }
}
