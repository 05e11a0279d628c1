//! Propagators per `propagation_formats`: W3C trace context (with baggage) and B3,
//! single and multi header. A malformed header yields no parent, so the request starts a new trace.

use opentelemetry::propagation::{
    text_map_propagator::FieldIter, Extractor, Injector, TextMapCompositePropagator,
    TextMapPropagator,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::config::PropagationFormat;

mod w3c;

/// The composite propagator for the configured formats. When several formats carry a parent, the
/// W3C one wins (it is listed last, and the composite lets later extractions override).
pub fn build(formats: &[PropagationFormat]) -> TextMapCompositePropagator {
    let mut list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    if formats.contains(&PropagationFormat::B3) {
        list.push(Box::new(B3Propagator::new()));
    }
    if formats.contains(&PropagationFormat::TraceContext) {
        list.push(Box::new(TraceContextPropagator::new()));
        list.push(Box::new(BaggagePropagator::new()));
    }
    TextMapCompositePropagator::new(list)
}

/// The caller's context in `headers`, extracted into an empty context: what `propagator`, built by
/// [`build`] from `formats`, extracts. For W3C alone (the default) it is read without the
/// composite, at a fraction of the cost and with the same result for every input.
pub(crate) fn extract_incoming(
    propagator: &TextMapCompositePropagator,
    formats: &[PropagationFormat],
    headers: &http::HeaderMap,
) -> Context {
    if !formats.is_empty()
        && formats
            .iter()
            .all(|f| *f == PropagationFormat::TraceContext)
    {
        w3c::extract(headers)
    } else {
        propagator.extract_with_context(&Context::new(), &HeaderExtractor::new(headers))
    }
}

const B3_SINGLE: &str = "b3";
const B3_TRACE_ID: &str = "x-b3-traceid";
const B3_SPAN_ID: &str = "x-b3-spanid";
const B3_SAMPLED: &str = "x-b3-sampled";
const B3_FLAGS: &str = "x-b3-flags";

/// B3: extracts the single `b3` header or else the multi `X-B3-*` headers; injects both forms, so
/// that peers reading either one see the parent.
#[derive(Debug)]
pub struct B3Propagator {
    fields: [String; 4],
}

impl B3Propagator {
    /// The B3 propagator (extracts single or multi header, injects both).
    pub fn new() -> Self {
        B3Propagator {
            fields: [B3_SINGLE, B3_TRACE_ID, B3_SPAN_ID, B3_SAMPLED].map(String::from),
        }
    }
}

impl Default for B3Propagator {
    fn default() -> Self {
        Self::new()
    }
}

fn trace_id(s: &str) -> Option<TraceId> {
    // 64-bit B3 trace ids are left-padded to 128 bits, as the B3 spec says.
    let ok = (s.len() == 16 || s.len() == 32) && s.bytes().all(|b| b.is_ascii_hexdigit());
    let id = if ok {
        TraceId::from_hex(s).ok()?
    } else {
        return None;
    };
    (id != TraceId::INVALID).then_some(id)
}

fn span_id(s: &str) -> Option<SpanId> {
    let ok = s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let id = if ok {
        SpanId::from_hex(s).ok()?
    } else {
        return None;
    };
    (id != SpanId::INVALID).then_some(id)
}

/// `Some(sampled)` for a valid sampling state; debug (`d`, flags `1`) counts as sampled.
fn sampled(s: &str) -> Option<bool> {
    match s {
        "1" | "d" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn context(trace: TraceId, span: SpanId, sampled: bool) -> SpanContext {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanContext::new(trace, span, flags, true, TraceState::NONE)
}

fn extract_single(v: &str) -> Option<SpanContext> {
    let mut parts = v.trim().split('-');
    let t = trace_id(parts.next()?)?;
    let s = span_id(parts.next()?)?;
    // A missing sampling state defers the decision; we record (sampled), as a root would.
    let smp = match parts.next() {
        None => true,
        Some(p) => sampled(p)?,
    };
    if let Some(parent) = parts.next() {
        span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(context(t, s, smp))
}

fn extract_multi(ex: &dyn Extractor) -> Option<SpanContext> {
    let t = trace_id(ex.get(B3_TRACE_ID)?.trim())?;
    let s = span_id(ex.get(B3_SPAN_ID)?.trim())?;
    let debug = ex.get(B3_FLAGS).map(str::trim) == Some("1");
    let smp = match ex.get(B3_SAMPLED).map(str::trim) {
        None => true,
        Some(v) => sampled(v)?,
    };
    Some(context(t, s, smp || debug))
}

impl TextMapPropagator for B3Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let smp = if sc.is_sampled() { "1" } else { "0" };
        injector.set(
            B3_SINGLE,
            format!("{}-{}-{}", sc.trace_id(), sc.span_id(), smp),
        );
        injector.set(B3_TRACE_ID, sc.trace_id().to_string());
        injector.set(B3_SPAN_ID, sc.span_id().to_string());
        injector.set(B3_SAMPLED, smp.to_string());
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let sc = match extractor.get(B3_SINGLE) {
            Some(v) => extract_single(v),
            None => extract_multi(extractor),
        };
        match sc {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// Reads propagation headers from an HTTP (or gRPC metadata) header map.
///
/// A `tracestate` sent as several header lines is one list, the lines joined in order (W3C
/// Trace Context, after RFC 9110's list rule), so that no member is lost on the way downstream:
/// joined only when there are several lines, and only when the propagator asks (the
/// `traceparent` was valid).
pub(crate) struct HeaderExtractor<'a> {
    headers: &'a http::HeaderMap,
    tracestate: std::cell::OnceCell<Option<String>>,
}

impl<'a> HeaderExtractor<'a> {
    /// An extractor over `headers`.
    pub(crate) fn new(headers: &'a http::HeaderMap) -> Self {
        HeaderExtractor {
            headers,
            tracestate: std::cell::OnceCell::new(),
        }
    }

    /// The `tracestate` lines as one list; `None` when there is none, or when a line is not
    /// visible ASCII (then the header is not a valid tracestate, and no part of it is used).
    fn tracestate(&self) -> Option<&str> {
        let mut lines = self.headers.get_all(&TRACESTATE).iter();
        let first = lines.next()?;
        if lines.next().is_none() {
            return first.to_str().ok();
        }
        self.tracestate
            .get_or_init(|| {
                let mut joined = String::new();
                for line in self.headers.get_all(&TRACESTATE) {
                    let text = line.to_str().ok()?;
                    if !joined.is_empty() {
                        joined.push(',');
                    }
                    joined.push_str(text);
                }
                Some(joined)
            })
            .as_deref()
    }
}

/// The propagation headers looked up on every request, parsed once (a `&str` key is parsed into a
/// header name on each lookup).
static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");
static BAGGAGE: http::HeaderName = http::HeaderName::from_static("baggage");

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = match key {
            "traceparent" => self.headers.get(&TRACEPARENT),
            "tracestate" => return self.tracestate(),
            "baggage" => self.headers.get(&BAGGAGE),
            _ => self.headers.get(key),
        };
        value.and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.headers.keys().map(|k| k.as_str()).collect()
    }
}

/// Writes propagation headers into an HTTP (or gRPC metadata) header map.
#[cfg_attr(
    not(any(feature = "reqwest", feature = "reqwest012")),
    allow(dead_code)
)] // used by the outgoing-call integrations
pub(crate) struct HeaderInjector<'a>(pub(crate) &'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The W3C propagator sets `tracestate` even when there is none: an empty header says nothing.
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes the configured formats the global propagator, for outgoing calls made through
/// `opentelemetry::global::get_text_map_propagator` (the agent itself keeps its own copy).
pub(crate) fn install_global(formats: &[PropagationFormat]) {
    opentelemetry::global::set_text_map_propagator(build(formats));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn extract(p: &dyn TextMapPropagator, headers: &[(&str, &str)]) -> SpanContext {
        let map: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        p.extract(&map).span().span_context().clone()
    }

    const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const S: &str = "00f067aa0ba902b7";

    #[test]
    fn b3_single_and_multi() {
        let p = B3Propagator::new();
        let sc = extract(&p, &[("b3", &format!("{T}-{S}-1"))]);
        assert_eq!(
            (
                sc.trace_id().to_string(),
                sc.span_id().to_string(),
                sc.is_sampled()
            ),
            (T.into(), S.into(), true)
        );
        let sc = extract(
            &p,
            &[
                ("x-b3-traceid", T),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "0"),
            ],
        );
        assert!(sc.is_valid() && !sc.is_sampled() && sc.is_remote());
        // 64-bit trace ids are left-padded.
        let sc = extract(&p, &[("b3", &format!("a3ce929d0e0e4736-{S}"))]);
        assert_eq!(
            sc.trace_id().to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
    }

    #[test]
    fn b3_malformed_gives_no_parent() {
        let p = B3Propagator::new();
        for bad in [
            "garbage",
            "0",
            &format!("{T}-zz"),
            &format!("{T}-{S}-x"),
            &format!("{T}-{S}-1-{S}-9"),
        ] {
            assert!(!extract(&p, &[("b3", bad)]).is_valid(), "{bad}");
        }
        assert!(!extract(&p, &[("x-b3-traceid", T)]).is_valid());
        assert!(!extract(
            &p,
            &[
                ("x-b3-traceid", "00000000000000000000000000000000"),
                ("x-b3-spanid", S)
            ]
        )
        .is_valid());
    }

    #[test]
    fn b3_inject_round_trips() {
        let p = B3Propagator::new();
        let parent = extract(&p, &[("b3", &format!("{T}-{S}-1"))]);
        let cx = Context::new().with_remote_span_context(parent);
        let mut out: HashMap<String, String> = HashMap::new();
        p.inject_context(&cx, &mut out);
        assert_eq!(out["b3"], format!("{T}-{S}-1"));
        assert_eq!(out["x-b3-traceid"], T);
        assert_eq!(out["x-b3-spanid"], S);
    }

    #[test]
    fn tracestate_lines_are_one_list_in_order() {
        let p = build(&[PropagationFormat::TraceContext]);
        let tp = format!("00-{T}-{S}-01");
        let state = |lines: &[&str]| {
            let mut h = http::HeaderMap::new();
            h.insert("traceparent", tp.parse().unwrap());
            for l in lines {
                h.append("tracestate", l.parse().unwrap());
            }
            let cx = p.extract_with_context(&Context::new(), &HeaderExtractor::new(&h));
            let sc = cx.span().span_context().clone();
            assert!(sc.is_valid());
            sc.trace_state().header()
        };
        assert_eq!(state(&[]), "");
        assert_eq!(state(&["a=1,b=2"]), "a=1,b=2");
        assert_eq!(
            state(&["a=1", "hypertrace=cap:0,b=2", "c=3"]),
            "a=1,hypertrace=cap:0,b=2,c=3"
        );
        // A line that is not visible ASCII: no tracestate at all, as for any invalid one.
        let mut h = http::HeaderMap::new();
        h.insert("traceparent", tp.parse().unwrap());
        h.append("tracestate", "a=1".parse().unwrap());
        h.append(
            "tracestate",
            http::HeaderValue::from_bytes(b"b=\xff").unwrap(),
        );
        let cx = p.extract_with_context(&Context::new(), &HeaderExtractor::new(&h));
        assert_eq!(cx.span().span_context().trace_state().header(), "");
    }

    #[test]
    fn composite_follows_formats() {
        let tp = format!("00-{T}-{S}-01");
        let b3_only = build(&[PropagationFormat::B3]);
        assert!(!extract(&b3_only, &[("traceparent", &tp)]).is_valid());
        let w3c_only = build(&[PropagationFormat::TraceContext]);
        assert!(!extract(&w3c_only, &[("b3", &format!("{T}-{S}-1"))]).is_valid());
        assert!(extract(&w3c_only, &[("traceparent", &tp)]).is_valid());
        let both = build(&[PropagationFormat::B3, PropagationFormat::TraceContext]);
        assert!(extract(&both, &[("b3", &format!("{T}-{S}-1"))]).is_valid());
        assert!(extract(&both, &[("traceparent", &tp)]).is_valid());
        // A malformed traceparent starts a new trace.
        assert!(!extract(&both, &[("traceparent", "00-xyz-01")]).is_valid());
    }
}
