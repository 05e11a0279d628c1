//! The HTTP metrics' attributes and the per-request timer of the server side.
//!
//! Cardinality is bounded by construction, whatever the clients send: the method is one of the
//! nine standard ones or `_OTHER`, the scheme `http` or `https`, the route the template axum
//! matched (never the raw path; absent when nothing matched, so a scanner probing 10,000 paths adds
//! no series), the status code one of the codes `http` accepts, and `error.type` a status code or
//! one of a few fixed words.
//!
//! Per request the server side costs two relaxed atomic additions (the in-flight gauge) and one
//! histogram record; the attribute values are static strings or the interned route, so nothing is
//! allocated.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

use http::Method;
use opentelemetry::metrics::AsyncInstrument;
use opentelemetry::{Key, KeyValue, Value};

use super::Metrics;

const METHOD: Key = Key::from_static_str("http.request.method");
const SCHEME: Key = Key::from_static_str("url.scheme");
const STATUS: Key = Key::from_static_str("http.response.status_code");
const ROUTE: Key = Key::from_static_str("http.route");
const ERROR_TYPE: Key = Key::from_static_str("error.type");
#[cfg_attr(
    not(any(feature = "reqwest", feature = "reqwest012")),
    allow(dead_code)
)] // the outgoing-call integrations
const SERVER_ADDRESS: Key = Key::from_static_str("server.address");
#[cfg_attr(
    not(any(feature = "reqwest", feature = "reqwest012")),
    allow(dead_code)
)]
const SERVER_PORT: Key = Key::from_static_str("server.port");

/// `error.type` of a handler that panicked.
pub(crate) const PANIC: &str = "panic";
/// `error.type` of a request dropped before it was answered (client gone, an outer timeout).
pub(crate) const CANCELLED: &str = "cancelled";
/// `error.type` of anything else without a more precise class (the conventions' fallback).
pub(crate) const OTHER: &str = "_OTHER";

/// The methods the conventions name; any other is recorded as `_OTHER`.
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", OTHER,
];

/// The index of `m` in [`METHODS`].
fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::PATCH => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

fn method_value(i: usize) -> Value {
    Value::from(METHODS[i])
}

fn scheme_value(https: bool) -> Value {
    Value::from(if https { "https" } else { "http" })
}

/// The text of status codes 400–599, for `error.type` without an allocation per request.
static STATUS_TEXT: LazyLock<Vec<String>> =
    LazyLock::new(|| (400..600).map(|c: u16| c.to_string()).collect());

/// `error.type` for a status code that is a failure.
fn status_error(code: u16) -> &'static str {
    match STATUS_TEXT.get(usize::from(code).wrapping_sub(400)) {
        Some(s) => s.as_str(),
        None => OTHER,
    }
}

/// At most this many distinct route templates get their own value; beyond (an app generating
/// routes at run time), the route is left off, which merges those requests' series.
const MAX_ROUTES: usize = 1024;

/// Route templates as shared attribute values: looked up, not copied, per request.
#[derive(Debug, Default)]
pub(crate) struct Routes(RwLock<HashMap<Box<str>, Value>>);

impl Routes {
    fn value(&self, route: &str) -> Option<Value> {
        if let Some(v) = self.0.read().unwrap_or_else(|p| p.into_inner()).get(route) {
            return Some(v.clone());
        }
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ROUTES && !map.contains_key(route) {
            return None;
        }
        let shared: Arc<str> = Arc::from(route);
        Some(
            map.entry(route.into())
                .or_insert(Value::from(shared))
                .clone(),
        )
    }
}

/// `http.server.active_requests`, kept in atomics per (method, scheme) and reported by an
/// observable instrument: two relaxed additions per request instead of two recordings.
#[derive(Debug, Default)]
pub(crate) struct ActiveRequests {
    counts: [[AtomicI64; 2]; METHODS.len()],
    /// Set once a pair has been seen, so that it is reported (also when back at 0).
    seen: [[AtomicBool; 2]; METHODS.len()],
}

impl ActiveRequests {
    fn add(&self, method: usize, https: bool, delta: i64) {
        let s = usize::from(https);
        if !self.seen[method][s].load(Ordering::Relaxed) {
            self.seen[method][s].store(true, Ordering::Relaxed);
        }
        self.counts[method][s].fetch_add(delta, Ordering::Relaxed);
    }

    /// The observable instrument's callback.
    pub(crate) fn observe(&self, observer: &dyn AsyncInstrument<i64>) {
        for (m, row) in self.counts.iter().enumerate() {
            for (s, count) in row.iter().enumerate() {
                if self.seen[m][s].load(Ordering::Relaxed) {
                    observer.observe(
                        count.load(Ordering::Relaxed),
                        &[
                            KeyValue::new(METHOD, method_value(m)),
                            KeyValue::new(SCHEME, scheme_value(s == 1)),
                        ],
                    );
                }
            }
        }
    }
}

/// One HTTP request being served: counted in flight from [`ServerTimer::start`] until it is
/// answered ([`ServerTimer::respond`]), fails ([`ServerTimer::fail`]) or is dropped unanswered
/// (recorded with `error.type = cancelled`).
#[derive(Debug)]
pub(crate) struct ServerTimer {
    metrics: Arc<Metrics>,
    start: Instant,
    method: usize,
    https: bool,
    route: Option<Value>,
    done: bool,
}

impl ServerTimer {
    /// The request arrived: `route` is the template axum matched, if any.
    pub(crate) fn start(
        metrics: Arc<Metrics>,
        method: &Method,
        https: bool,
        route: Option<&str>,
    ) -> ServerTimer {
        let method = method_index(method);
        metrics.active.add(method, https, 1);
        let route = route.and_then(|r| metrics.routes.value(r));
        ServerTimer {
            metrics,
            start: Instant::now(),
            method,
            https,
            route,
            done: false,
        }
    }

    /// The response head is ready: a 5xx is an error (`error.type` = the code), as on the span.
    pub(crate) fn respond(mut self, status: u16) {
        let error = (status >= 500).then(|| status_error(status));
        self.record(Some(status), error);
    }

    /// The handler panicked, or the request went otherwise unanswered: `error_type` says why.
    pub(crate) fn fail(mut self, error_type: &'static str) {
        self.record(None, Some(error_type));
    }

    fn record(&mut self, status: Option<u16>, error: Option<&'static str>) {
        self.done = true;
        self.metrics.active.add(self.method, self.https, -1);
        let secs = self.start.elapsed().as_secs_f64();
        let h = &self.metrics.instruments.http_server_duration;
        let m = KeyValue::new(METHOD, method_value(self.method));
        let s = KeyValue::new(SCHEME, scheme_value(self.https));
        let st = status.map(|c| KeyValue::new(STATUS, i64::from(c)));
        let e = error.map(|e| KeyValue::new(ERROR_TYPE, e));
        let r = self.route.take().map(|r| KeyValue::new(ROUTE, r));
        // Fixed-size arrays, one per shape, in one attribute order: no allocation, and the SDK
        // finds the series on its first lookup (it tries the order given before sorting).
        match (r, st, e) {
            (Some(r), Some(st), None) => h.record(secs, &[m, s, r, st]),
            (Some(r), Some(st), Some(e)) => h.record(secs, &[m, s, r, st, e]),
            (Some(r), None, Some(e)) => h.record(secs, &[m, s, r, e]),
            (None, Some(st), None) => h.record(secs, &[m, s, st]),
            (None, Some(st), Some(e)) => h.record(secs, &[m, s, st, e]),
            (None, None, Some(e)) => h.record(secs, &[m, s, e]),
            (Some(r), None, None) => h.record(secs, &[m, s, r]),
            (None, None, None) => h.record(secs, &[m, s]),
        }
    }
}

impl Drop for ServerTimer {
    fn drop(&mut self) {
        if !self.done {
            self.record(None, Some(CANCELLED));
        }
    }
}

/// What an outgoing HTTP call is recorded with.
#[cfg_attr(
    not(any(feature = "reqwest", feature = "reqwest012")),
    allow(dead_code)
)] // used by the outgoing-call integrations
#[derive(Debug)]
pub(crate) struct ClientCall<'a> {
    /// The request's method.
    pub method: &'a Method,
    /// `true` for an `https` URL.
    pub https: bool,
    /// The peer's host name or address.
    pub host: Option<&'a str>,
    /// The peer's port (the scheme's default when the URL has none).
    pub port: Option<u16>,
}

#[cfg_attr(
    not(any(feature = "reqwest", feature = "reqwest012")),
    allow(dead_code)
)]
impl Metrics {
    /// Records one outgoing HTTP call: `status` when a response arrived (a 4xx or 5xx is an error,
    /// as on the CLIENT span), else `error_type` says what failed (`timeout`, `connect`, ...).
    pub(crate) fn http_client_call(
        &self,
        call: &ClientCall<'_>,
        elapsed: Duration,
        status: Option<u16>,
        error_type: Option<&'static str>,
    ) {
        let mut attrs = Vec::with_capacity(6);
        attrs.push(KeyValue::new(
            METHOD,
            method_value(method_index(call.method)),
        ));
        attrs.push(KeyValue::new(SCHEME, scheme_value(call.https)));
        if let Some(h) = call.host {
            attrs.push(KeyValue::new(SERVER_ADDRESS, h.to_owned()));
        }
        if let Some(p) = call.port {
            attrs.push(KeyValue::new(SERVER_PORT, i64::from(p)));
        }
        if let Some(c) = status {
            attrs.push(KeyValue::new(STATUS, i64::from(c)));
        }
        let error = match status {
            Some(c) if c >= 400 => Some(status_error(c)),
            _ => error_type,
        };
        if let Some(e) = error {
            attrs.push(KeyValue::new(ERROR_TYPE, e));
        }
        self.instruments
            .http_client_duration
            .record(elapsed.as_secs_f64(), &attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        assert_eq!(METHODS[method_index(&Method::GET)], "GET");
        assert_eq!(METHODS[method_index(&Method::TRACE)], "TRACE");
        let odd = Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(METHODS[method_index(&odd)], "_OTHER");
    }

    #[test]
    fn status_errors_are_their_code_or_other() {
        assert_eq!(status_error(500), "500");
        assert_eq!(status_error(404), "404");
        assert_eq!(status_error(599), "599");
        assert_eq!(status_error(600), OTHER);
        assert_eq!(status_error(200), OTHER);
    }

    #[test]
    fn routes_are_interned_and_bounded() {
        let routes = Routes::default();
        let a = routes.value("/users/{id}").unwrap();
        assert_eq!(a.as_str(), "/users/{id}");
        assert_eq!(routes.value("/users/{id}").unwrap(), a);
        for i in 0..MAX_ROUTES * 2 {
            let _ = routes.value(&format!("/r{i}"));
        }
        assert_eq!(routes.0.read().unwrap().len(), MAX_ROUTES);
        assert!(routes.value("/one-more").is_none());
        assert!(routes.value("/users/{id}").is_some(), "known routes stay");
    }
}
