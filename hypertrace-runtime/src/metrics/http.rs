//! The HTTP metrics' attributes and the per-request timer of the server side.
//!
//! Cardinality is bounded by construction, whatever the clients send: the method is one of the
//! nine standard ones or `_OTHER`, the scheme `http` or `https`, the route the template axum
//! matched (never the raw path; absent when nothing matched, so a scanner probing 10,000 paths adds
//! no series), the status code one of the codes `http` accepts, and `error.type` a status code or
//! one of a few fixed words.
//!
//! Per request the server side costs two relaxed atomic additions (the in-flight gauge), the
//! route's lookup and one record through a bound handle (`bound.rs`): the attribute set is built
//! and resolved by the SDK once per series, not per request, and nothing is allocated.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use http::Method;
use opentelemetry::metrics::{AsyncInstrument, Histogram};
use opentelemetry::{Key, KeyValue, Value};

use super::bound::BoundSet;
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

/// The series of one route (or of the requests no route matched): its template and attribute
/// value, and the bound handles of the (method, scheme, outcome) combinations it has recorded.
#[derive(Debug)]
pub(crate) struct RouteSeries {
    template: Option<Arc<str>>,
    route: Option<Value>,
    histogram: Histogram<f64>,
    active: Arc<ActiveRequests>,
    bound: BoundSet,
}

impl RouteSeries {
    fn new(
        template: Option<Arc<str>>,
        histogram: &Histogram<f64>,
        active: &Arc<ActiveRequests>,
    ) -> Self {
        RouteSeries {
            route: template.clone().map(Value::from),
            template,
            histogram: histogram.clone(),
            active: active.clone(),
            bound: BoundSet::default(),
        }
    }
}

/// Slots of the routes table: a power of two, twice [`MAX_ROUTES`], so that a probe for a template
/// ends within a few slots even when the table is as full as it gets.
const ROUTE_SLOTS: usize = (MAX_ROUTES * 2).next_power_of_two();

/// A hash of a route template, for its first slot. The keys are the app's own templates (a
/// client's path never becomes a key), so a hash that resists flooding buys nothing: this one
/// takes the template 8 bytes at a time (a multiply per word, FxHash's constant) and uses the top
/// bits, the best mixed.
fn route_slot(template: &str) -> usize {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let bytes = template.as_bytes();
    let mut h = mix(0, bytes.len() as u64);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h = mix(h, u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(w));
    }
    (h >> (64 - ROUTE_SLOTS.trailing_zeros())) as usize
}

/// Route templates and their series: looked up, not copied, per request, and without a lock. The
/// table is append-only (open addressing, linear probing): a slot, once filled, never changes, so a
/// reader that meets an empty slot knows the template is not (yet) there, and only an addition
/// takes the lock.
#[derive(Debug)]
pub(crate) struct Routes {
    slots: Box<[OnceLock<Arc<RouteSeries>>]>,
    /// Serialises additions (a template is added once, to one slot); counts the templates.
    grow: Mutex<usize>,
    unmatched: Arc<RouteSeries>,
    histogram: Histogram<f64>,
    active: Arc<ActiveRequests>,
}

/// Where a template is in the routes table, or where it would go.
enum Probe<'a> {
    Found(&'a Arc<RouteSeries>),
    Empty(usize),
    /// Every slot taken by other templates (cannot happen while the table holds at most
    /// [`MAX_ROUTES`] in twice as many slots; handled all the same).
    Full,
}

impl Routes {
    /// The routes of `http.server.request.duration`, counting requests in flight in `active`.
    pub(crate) fn new(histogram: Histogram<f64>, active: Arc<ActiveRequests>) -> Routes {
        Routes {
            slots: (0..ROUTE_SLOTS).map(|_| OnceLock::new()).collect(),
            grow: Mutex::new(0),
            unmatched: Arc::new(RouteSeries::new(None, &histogram, &active)),
            histogram,
            active,
        }
    }

    fn probe(&self, template: &str, first: usize) -> Probe<'_> {
        for k in 0..ROUTE_SLOTS {
            let i = (first + k) & (ROUTE_SLOTS - 1);
            match self.slots[i].get() {
                None => return Probe::Empty(i),
                Some(s) if s.template.as_deref() == Some(template) => return Probe::Found(s),
                Some(_) => {}
            }
        }
        Probe::Full
    }

    /// The series of `route` (a template axum matched), or those without a route.
    fn series(&self, route: Option<&str>) -> Arc<RouteSeries> {
        let Some(route) = route else {
            return self.unmatched.clone();
        };
        let first = route_slot(route);
        if let Probe::Found(s) = self.probe(route, first) {
            return s.clone();
        }
        let mut count = self.grow.lock().unwrap_or_else(|p| p.into_inner());
        match self.probe(route, first) {
            Probe::Found(s) => s.clone(),
            Probe::Empty(i) if *count < MAX_ROUTES => {
                let s = Arc::new(RouteSeries::new(
                    Some(Arc::from(route)),
                    &self.histogram,
                    &self.active,
                ));
                // Only this thread, holding `grow`, fills an empty slot: `set` cannot find it filled.
                let _ = self.slots[i].set(s.clone());
                *count += 1;
                s
            }
            Probe::Empty(_) | Probe::Full => self.unmatched.clone(),
        }
    }

    /// How many templates have a series of their own.
    #[cfg(test)]
    fn len(&self) -> usize {
        *self.grow.lock().unwrap()
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

/// One HTTP request being served: counted in flight from [`ServerTimer::start`] until its response
/// body ends ([`ServerTimer::end`]), the handler fails ([`ServerTimer::fail`]) or the request is
/// dropped unanswered (recorded with `error.type = cancelled`).
///
/// The duration is the span's: the timer reads the wall clock when the request arrives and when
/// the response body ends, and the span is given the same two timestamps, so that a request with
/// metrics on reads the clock no more often than one without (each read is tens of nanoseconds on
/// a virtual machine). A wall clock stepped backwards in between gives a duration of 0, as it
/// would give the span a negative one.
#[derive(Debug)]
pub(crate) struct ServerTimer {
    series: Arc<RouteSeries>,
    start: SystemTime,
    method: usize,
    https: bool,
    /// The response's status code, once its head is ready.
    status: Option<u16>,
    done: bool,
}

/// The outcomes of a request without a status code, in the key of its series (status codes are
/// 100–999).
const OUTCOME_PANIC: u32 = 1000;
const OUTCOME_CANCELLED: u32 = 1001;

impl ServerTimer {
    /// The request arrived: `route` is the template axum matched, if any.
    pub(crate) fn start(
        metrics: &Metrics,
        method: &Method,
        https: bool,
        route: Option<&str>,
    ) -> ServerTimer {
        let method = method_index(method);
        let series = metrics.routes.series(route);
        series.active.add(method, https, 1);
        ServerTimer {
            series,
            start: SystemTime::now(),
            method,
            https,
            status: None,
            done: false,
        }
    }

    /// When the request arrived: the span's start time.
    pub(crate) fn start_time(&self) -> SystemTime {
        self.start
    }

    /// The response head is ready with `status`; the request is recorded when its body ends.
    pub(crate) fn respond(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// The response body ended (or was dropped): records the request with its status (a 5xx is an
    /// error, `error.type` = the code, as on the span) and returns the time it ended, the span's
    /// end time.
    pub(crate) fn end(mut self) -> SystemTime {
        let now = SystemTime::now();
        self.record_status(now);
        now
    }

    /// The handler panicked, or the request went otherwise unanswered: `error_type` says why.
    pub(crate) fn fail(mut self, error_type: &'static str) {
        self.record(None, Some(error_type), SystemTime::now());
    }

    fn record_status(&mut self, now: SystemTime) {
        match self.status {
            Some(status) => {
                let error = (status >= 500).then(|| status_error(status));
                self.record(Some(status), error, now);
            }
            None => self.record(None, Some(CANCELLED), now),
        }
    }

    fn record(&mut self, status: Option<u16>, error: Option<&'static str>, now: SystemTime) {
        self.done = true;
        let series = &*self.series;
        series.active.add(self.method, self.https, -1);
        let secs = now
            .duration_since(self.start)
            .unwrap_or_default()
            .as_secs_f64();
        // The error follows from the status when there is one: the status alone tells the series.
        let outcome = match (status, error) {
            (Some(code), _) => Some(u32::from(code)),
            (None, Some(PANIC)) => Some(OUTCOME_PANIC),
            (None, Some(CANCELLED)) => Some(OUTCOME_CANCELLED),
            (None, _) => None,
        };
        let attributes = || {
            let mut attrs = Vec::with_capacity(5);
            attrs.push(KeyValue::new(METHOD, method_value(self.method)));
            attrs.push(KeyValue::new(SCHEME, scheme_value(self.https)));
            if let Some(r) = &series.route {
                attrs.push(KeyValue::new(ROUTE, r.clone()));
            }
            if let Some(c) = status {
                attrs.push(KeyValue::new(STATUS, i64::from(c)));
            }
            if let Some(e) = error {
                attrs.push(KeyValue::new(ERROR_TYPE, e));
            }
            attrs
        };
        let key = outcome.map(|o| o << 5 | (self.method as u32) << 1 | u32::from(self.https));
        let bound = key.and_then(|k| {
            series
                .bound
                .get_or_bind(k, || series.histogram.bind(&attributes()))
        });
        match bound {
            Some(h) => h.record(secs),
            None => series.histogram.record(secs, &attributes()),
        }
    }
}

impl Drop for ServerTimer {
    /// Not ended: the response (if any) was dropped with it.
    fn drop(&mut self) {
        if !self.done {
            self.record_status(SystemTime::now());
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
        use opentelemetry::metrics::MeterProvider as _;
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
        let h = provider.meter("t").f64_histogram("h").build();
        let routes = Routes::new(h, Arc::default());
        let a = routes.series(Some("/users/{id}"));
        assert_eq!(a.route.as_ref().unwrap().as_str(), "/users/{id}");
        assert!(Arc::ptr_eq(&routes.series(Some("/users/{id}")), &a));
        assert!(routes.series(None).route.is_none());
        for i in 0..MAX_ROUTES * 2 {
            let _ = routes.series(Some(&format!("/r{i}")));
        }
        assert_eq!(routes.len(), MAX_ROUTES);
        let more = routes.series(Some("/one-more"));
        assert!(more.route.is_none(), "past the bound: no route");
        assert!(Arc::ptr_eq(&more, &routes.unmatched));
        assert!(
            Arc::ptr_eq(&routes.series(Some("/users/{id}")), &a),
            "known routes stay"
        );
    }
}
