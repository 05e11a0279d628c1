//! Trace context in request metadata: read on the server, written on the client, with the
//! agent's propagator (`propagation_formats`).

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::Context;

use crate::agent::Agent;

struct MetadataExtractor<'a>(&'a HeaderMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

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

/// The caller's context from the request metadata; a malformed one gives a new trace.
pub(crate) fn extract(agent: &Agent, headers: &HeaderMap) -> Context {
    agent.propagator.extract(&MetadataExtractor(headers))
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
