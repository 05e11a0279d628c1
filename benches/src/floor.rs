//! The `floor` variant: what capturing everything costs at least, measured instead of estimated.
//!
//! A hand-written tower layer that records what the `hypertrace` variant records for `POST /echo`
//! (the standard attributes, every request header and the response's, both bodies, body-field
//! redaction with the agent's own scanner, every span exported as OTLP protobuf, over OTLP/gRPC in
//! the loopback runs), doing only the work that data needs:
//!
//! - no OpenTelemetry span, no `KeyValue`, no `String` per attribute: each request takes a record
//!   from a pool, and its attributes are written into the record's buffer already in OTLP's
//!   protobuf encoding, where they are captured;
//! - the bodies are copied once, into the record, and redacted on the export thread;
//! - no allocation per request beyond axum's (its body type boxes each body wrapper): the export
//!   thread clears the records it sent and gives them back to the pool, so nothing the serving
//!   thread allocated is freed elsewhere;
//! - the batch is one protobuf message written by copying the records' bytes, handed to tonic
//!   through a pass-through codec (the agent's OTLP/gRPC reporter does the same).
//!
//! It is not an agent: no context is attached for nested spans or outgoing calls, no sampler, no
//! limits but the body's, no retries, no span-count or byte budget beyond a fixed queue length.
//! Whatever a real agent must do on top of this, it cannot cost less than this does.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::response::Response;
use bytes::{Buf, BufMut, Bytes};
use http_body::{Frame, SizeHint};
use hypertrace::capture::redact::{FieldNames, Syntax};
use hypertrace::config::DEFAULT_REDACT_BODY_FIELDS;

/// Spans per export by default, as the agent's default batch (`FLOOR_BATCH` sets another).
const BATCH: usize = 64;
/// Spans held at most; more are dropped (counted).
const MAX_QUEUE: usize = 2048;
/// The body limit, the agent's default.
const BODY_LIMIT: usize = 128 * 1024;
/// Request headers whose value is not recorded, as the agent's default list does.
const SENSITIVE: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// One request's span, pooled: the buffers keep their capacity from request to request.
#[derive(Default)]
struct Record {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    start: u64,
    end: u64,
    name: String,
    /// `Span.attributes` entries, each with its field tag and length: ready to be copied.
    attrs: Vec<u8>,
    request_body: Vec<u8>,
    response_body: Vec<u8>,
}

impl Record {
    fn clear(&mut self) {
        self.name.clear();
        self.attrs.clear();
        self.request_body.clear();
        self.response_body.clear();
    }
}

type Slot = Arc<Mutex<Record>>;

/// Pieces switched off one at a time, to see what each costs: `FLOOR_HEADERS=0` (no header is
/// recorded), `FLOOR_BODIES=0` (no body), `FLOOR_REDACT=0` (bodies recorded unredacted),
/// `FLOOR_SEND=0` (each batch encoded, not sent). One piece switched on: `FLOOR_CONTEXT=1`, an
/// OpenTelemetry `Context` holding a span (a trivial one, [`ContextSpan`]), attached while the
/// handler's future is polled, as an agent must for nested spans and outgoing calls.
#[derive(Clone, Copy)]
struct Switches {
    context: bool,
    headers: bool,
    bodies: bool,
    redact: bool,
    send: bool,
    batch: usize,
}

impl Switches {
    fn from_env() -> Switches {
        let on = |k: &str| std::env::var(k).map_or(true, |v| v != "0");
        Switches {
            context: std::env::var("FLOOR_CONTEXT").is_ok_and(|v| v == "1"),
            headers: on("FLOOR_HEADERS"),
            bodies: on("FLOOR_BODIES"),
            redact: on("FLOOR_REDACT"),
            send: on("FLOOR_SEND"),
            batch: std::env::var("FLOOR_BATCH")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(BATCH)
                .clamp(1, MAX_QUEUE),
        }
    }
}

/// What the serving threads and the export thread share.
struct Shared {
    on: Switches,
    queue: Mutex<Vec<Slot>>,
    wake: Condvar,
    pool: Mutex<Vec<Slot>>,
    stop: AtomicBool,
    spans: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn take(&self) -> Slot {
        self.pool.lock().unwrap().pop().unwrap_or_default()
    }

    fn enqueue(&self, slot: Slot) {
        let mut q = self.queue.lock().unwrap();
        if q.len() >= MAX_QUEUE {
            drop(q);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.push(slot);
        let wake = q.len() == self.on.batch;
        drop(q);
        if wake {
            self.wake.notify_one();
        }
    }
}

/// The pipeline the layer records into, while this process has one (a bench block's).
static CURRENT: RwLock<Option<Arc<Shared>>> = RwLock::new(None);

/// A running `floor` pipeline: its export thread, until [`Floor::finish`].
pub struct Floor {
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Floor {
    /// Starts the export thread: OTLP/gRPC to `otlp` (`http://host:port`), or, with `None`, each
    /// batch encoded and discarded. Makes this the pipeline the layer records into.
    pub fn start(otlp: Option<String>) -> Floor {
        let on = Switches::from_env();
        let otlp = otlp.filter(|_| on.send);
        let shared = Arc::new(Shared {
            on,
            queue: Mutex::new(Vec::with_capacity(MAX_QUEUE)),
            wake: Condvar::new(),
            pool: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            spans: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("floor-export".into())
                .spawn(move || export_loop(&shared, otlp))
                .unwrap()
        };
        *CURRENT.write().unwrap() = Some(shared.clone());
        Floor {
            shared,
            worker: Some(worker),
        }
    }

    /// Exports what is queued, stops the thread, and says what was exported.
    pub fn finish(mut self) -> String {
        *CURRENT.write().unwrap() = None;
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        let spans = self.shared.spans.load(Ordering::Relaxed);
        let bytes = self.shared.bytes.load(Ordering::Relaxed);
        format!(
            " floor.exported={spans} floor.dropped={} encoded.bytes_per_span={}",
            self.shared.dropped.load(Ordering::Relaxed),
            bytes.checked_div(spans).unwrap_or(0)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Protobuf, written by hand.

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// A length-delimited field's size: tag, length, payload.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// The size of a `KeyValue` with a string value, without its own tag and length.
fn kv_str_len(key: usize, value: usize) -> usize {
    field_len(key) + field_len(field_len(value))
}

/// A `Span.attributes` entry (field 9) with a string value; the key in parts.
fn kv_str(buf: &mut Vec<u8>, key: &[&[u8]], value: &[u8]) {
    let klen = key.iter().map(|k| k.len()).sum();
    buf.push(0x4a);
    varint(buf, kv_str_len(klen, value.len()) as u64);
    buf.push(0x0a);
    varint(buf, klen as u64);
    for k in key {
        buf.extend_from_slice(k);
    }
    buf.push(0x12);
    varint(buf, field_len(value.len()) as u64);
    buf.push(0x0a);
    varint(buf, value.len() as u64);
    buf.extend_from_slice(value);
}

/// A `Span.attributes` entry with an integer value.
fn kv_int(buf: &mut Vec<u8>, key: &[u8], value: i64) {
    let any = 1 + varint_len(value as u64);
    buf.push(0x4a);
    varint(buf, (field_len(key.len()) + field_len(any)) as u64);
    buf.push(0x0a);
    varint(buf, key.len() as u64);
    buf.extend_from_slice(key);
    buf.push(0x12);
    varint(buf, any as u64);
    buf.push(0x18);
    varint(buf, value as u64);
}

// ---------------------------------------------------------------------------------------------
// The serving thread.

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A fast per-thread generator for ids (the SDK's is a per-thread xorshift too).
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = Cell::new(now_ns() | 1));
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

fn hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if s.len() != 2 * N {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let d = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        *o = d(pair[0])? << 4 | d(pair[1])?;
    }
    Some(out)
}

/// W3C `traceparent`: the trace id and the parent's span id.
fn traceparent(v: &[u8]) -> Option<([u8; 16], [u8; 8])> {
    if v.len() != 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    Some((hex(&v[3..35])?, hex(&v[36..52])?))
}

/// The tower layer of the `floor` variant.
#[derive(Clone, Copy, Debug, Default)]
pub struct FloorLayer;

impl<S> tower::Layer<S> for FloorLayer {
    type Service = FloorService<S>;
    fn layer(&self, inner: S) -> FloorService<S> {
        FloorService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct FloorService<S> {
    inner: S,
}

impl<S> tower::Service<Request> for FloorService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let Some(shared) = CURRENT.read().unwrap().clone() else {
            return FloorFuture {
                inner: self.inner.call(req),
                open: None,
                otel: None,
            };
        };
        let slot = shared.take();
        let (parts, body) = req.into_parts();
        let otel = {
            let mut r = slot.lock().unwrap();
            r.start = now_ns();
            let h = &parts.headers;
            match h.get("traceparent").and_then(|v| traceparent(v.as_bytes())) {
                Some((trace, parent)) => {
                    r.trace_id = trace;
                    r.parent = Some(parent);
                }
                None => {
                    r.trace_id =
                        (u128::from(random_u64()) << 64 | u128::from(random_u64())).to_be_bytes();
                    r.parent = None;
                }
            }
            r.span_id = random_u64().to_be_bytes();
            let method = parts.method.as_str();
            let path = parts.uri.path();
            r.name.push_str(method);
            r.name.push(' ');
            r.name.push_str(path);
            let a = &mut r.attrs;
            kv_str(a, &[b"http.request.method"], method.as_bytes());
            kv_str(a, &[b"url.path"], path.as_bytes());
            kv_str(a, &[b"url.scheme"], b"http");
            kv_str(a, &[b"network.protocol.version"], b"1.1");
            kv_str(a, &[b"http.route"], path.as_bytes());
            if let Some(host) = h.get("host").map(|v| v.as_bytes()) {
                let (name, port) = match host.iter().rposition(|&c| c == b':') {
                    Some(i) => (&host[..i], std::str::from_utf8(&host[i + 1..]).ok()),
                    None => (host, None),
                };
                kv_str(a, &[b"server.address"], name);
                if let Some(p) = port.and_then(|p| p.parse::<i64>().ok()) {
                    kv_int(a, b"server.port", p);
                }
            }
            if let Some(ua) = h.get("user-agent") {
                kv_str(a, &[b"user_agent.original"], ua.as_bytes());
            }
            if let Some(peer) = parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            {
                use std::io::Write as _;
                let mut ip = [0u8; 48];
                let mut w = &mut ip[..];
                let _ = write!(w, "{}", peer.0.ip());
                let n = 48 - w.len();
                kv_str(a, &[b"client.address"], &ip[..n]);
            }
            for (name, value) in h.iter().filter(|_| shared.on.headers) {
                let name = name.as_str();
                let value = if SENSITIVE.contains(&name) {
                    b"[REDACTED]".as_slice()
                } else {
                    value.as_bytes()
                };
                kv_str(a, &[b"http.request.header.", name.as_bytes()], value);
            }
            shared.on.context.then(|| {
                use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags};
                opentelemetry::Context::new().with_span(ContextSpan(SpanContext::new(
                    opentelemetry::trace::TraceId::from_bytes(r.trace_id),
                    SpanId::from_bytes(r.span_id),
                    TraceFlags::SAMPLED,
                    false,
                    Default::default(),
                )))
            })
        };
        let body = if shared.on.bodies {
            Body::new(Tee {
                inner: body,
                slot: Some(slot.clone()),
                response: None,
            })
        } else {
            body
        };
        let inner = {
            let _attached = otel.as_ref().map(|cx| cx.clone().attach());
            self.inner.call(Request::from_parts(parts, body))
        };
        FloorFuture {
            inner,
            open: Some((slot, shared)),
            otel,
        }
    }
}

/// The handler's future, then the response's attributes.
pub struct FloorFuture<F> {
    inner: F,
    open: Option<(Slot, Arc<Shared>)>,
    /// `FLOOR_CONTEXT=1`: attached while `inner` is polled.
    otel: Option<opentelemetry::Context>,
}

/// The span in the `Context` of `FLOOR_CONTEXT=1`: it records nothing (the record does), it is
/// there for what a context costs: the `Arc`, the boxed span behind its mutex, attaching it.
#[derive(Debug)]
struct ContextSpan(opentelemetry::trace::SpanContext);

impl opentelemetry::trace::Span for ContextSpan {
    fn add_event_with_timestamp<T>(&mut self, _: T, _: SystemTime, _: Vec<opentelemetry::KeyValue>)
    where
        T: Into<Cow<'static, str>>,
    {
    }
    fn span_context(&self) -> &opentelemetry::trace::SpanContext {
        &self.0
    }
    fn is_recording(&self) -> bool {
        true
    }
    fn set_attribute(&mut self, _: opentelemetry::KeyValue) {}
    fn set_status(&mut self, _: opentelemetry::trace::Status) {}
    fn update_name<T>(&mut self, _: T)
    where
        T: Into<Cow<'static, str>>,
    {
    }
    fn add_link(&mut self, _: opentelemetry::trace::SpanContext, _: Vec<opentelemetry::KeyValue>) {}
    fn end_with_timestamp(&mut self, _: SystemTime) {}
}

impl<F: Future<Output = Result<Response, Infallible>> + Unpin> Future for FloorFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let attached = self.otel.as_ref().map(|cx| cx.clone().attach());
        let Ok(res) = std::task::ready!(Pin::new(&mut self.inner).poll(cx));
        drop(attached);
        let Some((slot, shared)) = self.open.take() else {
            return Poll::Ready(Ok(res));
        };
        {
            let mut r = slot.lock().unwrap();
            kv_int(
                &mut r.attrs,
                b"http.response.status_code",
                i64::from(res.status().as_u16()),
            );
            for (name, value) in res.headers().iter().filter(|_| shared.on.headers) {
                kv_str(
                    &mut r.attrs,
                    &[b"http.response.header.", name.as_str().as_bytes()],
                    value.as_bytes(),
                );
            }
        }
        let (parts, body) = res.into_parts();
        let body = Body::new(Tee {
            inner: body,
            slot: Some(slot),
            response: Some(shared),
        });
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

/// A body whose bytes are copied into the record; the response's queues the record at its end.
struct Tee {
    inner: Body,
    slot: Option<Slot>,
    /// Set on the response's body: where the record goes when it ends.
    response: Option<Arc<Shared>>,
}

impl Tee {
    fn done(&mut self) {
        if let (Some(slot), Some(shared)) = (self.slot.take(), self.response.take()) {
            slot.lock().unwrap().end = now_ns();
            shared.enqueue(slot);
        }
    }
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                let record = this.response.as_ref().is_none_or(|s| s.on.bodies);
                if let (Some(data), Some(slot), true) = (f.data_ref(), &this.slot, record) {
                    let mut r = slot.lock().unwrap();
                    let buf = if this.response.is_some() {
                        &mut r.response_body
                    } else {
                        &mut r.request_body
                    };
                    let take = data.len().min(BODY_LIMIT.saturating_sub(buf.len()));
                    buf.extend_from_slice(&data[..take]);
                }
                if this.inner.is_end_stream() {
                    this.done();
                }
            }
            _ => this.done(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.done();
    }
}

// ---------------------------------------------------------------------------------------------
// The export thread.

fn export_loop(shared: &Shared, otlp: Option<String>) {
    let fields: Vec<String> = DEFAULT_REDACT_BODY_FIELDS.map(String::from).to_vec();
    let fields = FieldNames::new(&fields).expect("names");
    let grpc = otlp.map(|url| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("floor-grpc")
            .enable_all()
            .build()
            .unwrap();
        let channel = {
            let _enter = rt.enter();
            tonic::transport::Channel::from_shared(url)
                .expect("endpoint")
                .connect_lazy()
        };
        (rt, tonic::client::Grpc::new(channel))
    });
    // Shared with tonic's encoder for the call, then written again: one buffer for every batch.
    let mut out = Arc::new(Vec::new());
    let mut lens = Vec::new();
    loop {
        let batch = {
            let mut q = shared.queue.lock().unwrap();
            while q.len() < shared.on.batch && !shared.stop.load(Ordering::Relaxed) {
                let (g, t) = shared
                    .wake
                    .wait_timeout(q, Duration::from_millis(200))
                    .unwrap();
                q = g;
                if t.timed_out() {
                    break;
                }
            }
            if q.is_empty() {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            std::mem::replace(&mut *q, Vec::with_capacity(MAX_QUEUE))
        };
        if Arc::get_mut(&mut out).is_none() {
            out = Arc::new(Vec::new()); // tonic still holds the last batch: not seen so far
        }
        let buf = Arc::get_mut(&mut out).expect("unique");
        encode(&batch, shared.on.redact.then_some(&fields), buf, &mut lens);
        shared
            .spans
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        shared.bytes.fetch_add(out.len() as u64, Ordering::Relaxed);
        // Cleared here, given back to the serving threads: nothing of theirs is freed here.
        let mut back = Vec::with_capacity(batch.len());
        for mut slot in batch {
            if let Some(r) = Arc::get_mut(&mut slot) {
                r.get_mut().unwrap().clear();
                back.push(slot);
            }
        }
        shared.pool.lock().unwrap().append(&mut back);
        if let Some((rt, grpc)) = &grpc {
            let bytes = out.clone();
            let mut grpc = grpc.clone();
            let sent = rt.block_on(async move {
                grpc.ready().await.map_err(|e| e.to_string())?;
                grpc.unary(
                    tonic::Request::new(bytes),
                    http::uri::PathAndQuery::from_static(EXPORT_PATH),
                    PassThrough,
                )
                .await
                .map_err(|e| e.to_string())
            });
            if let Err(e) = sent {
                eprintln!("floor: export failed: {e}");
            }
        }
    }
}

/// One `ExportTraceServiceRequest` for `batch`, written into `out`.
fn encode(batch: &[Slot], fields: Option<&FieldNames>, out: &mut Vec<u8>, lens: &mut Vec<usize>) {
    const SERVICE: &[u8] = b"bench";
    const SCOPE: &[u8] = b"floor";
    let records: Vec<_> = batch.iter().map(|s| s.lock().unwrap()).collect();
    // What each body records: redacted where needed (a copy only when a field was replaced),
    // and only text.
    let bodies: Vec<[Option<Cow<'_, [u8]>>; 2]> = records
        .iter()
        .map(|r| {
            [&r.request_body, &r.response_body].map(|b| {
                let v = match fields.and_then(|f| f.redact(b, Syntax::Json)) {
                    Some(redacted) => Cow::Owned(redacted),
                    None => Cow::Borrowed(b.as_slice()),
                };
                (!v.is_empty() && std::str::from_utf8(&v).is_ok()).then_some(v)
            })
        })
        .collect();
    const BODY_KEYS: [&[u8]; 2] = [b"http.request.body", b"http.response.body"];
    lens.clear();
    for (r, b) in records.iter().zip(&bodies) {
        let mut len = field_len(16) + field_len(8) + field_len(r.name.len()) + 2 + 9 + 9;
        if r.parent.is_some() {
            len += field_len(8);
        }
        len += r.attrs.len();
        for (key, v) in BODY_KEYS.iter().zip(b) {
            if let Some(v) = v {
                len += field_len(kv_str_len(key.len(), v.len()));
            }
        }
        lens.push(len);
    }
    let spans: usize = lens.iter().map(|&l| field_len(l)).sum();
    let resource = field_len(kv_str_len(b"service.name".len(), SERVICE.len()));
    let scope_spans = field_len(field_len(SCOPE.len())) + spans;
    let resource_spans = field_len(resource) + field_len(scope_spans);
    out.clear();
    out.reserve(field_len(resource_spans));
    out.push(0x0a);
    varint(out, resource_spans as u64);
    out.push(0x0a);
    varint(out, resource as u64);
    // Resource.attributes (field 1): the same bytes as a Span.attributes entry, another tag.
    let at = out.len();
    kv_str(out, &[b"service.name"], SERVICE);
    out[at] = 0x0a;
    out.push(0x12);
    varint(out, scope_spans as u64);
    out.push(0x0a);
    varint(out, field_len(SCOPE.len()) as u64);
    out.push(0x0a);
    varint(out, SCOPE.len() as u64);
    out.extend_from_slice(SCOPE);
    for ((r, b), &len) in records.iter().zip(&bodies).zip(lens.iter()) {
        out.push(0x12);
        varint(out, len as u64);
        out.push(0x0a);
        out.push(16);
        out.extend_from_slice(&r.trace_id);
        out.push(0x12);
        out.push(8);
        out.extend_from_slice(&r.span_id);
        if let Some(p) = &r.parent {
            out.push(0x22);
            out.push(8);
            out.extend_from_slice(p);
        }
        out.push(0x2a);
        varint(out, r.name.len() as u64);
        out.extend_from_slice(r.name.as_bytes());
        out.push(0x30);
        out.push(2); // SPAN_KIND_SERVER
        out.push(0x39);
        out.put_u64_le(r.start);
        out.push(0x41);
        out.put_u64_le(r.end);
        out.extend_from_slice(&r.attrs);
        for (key, v) in BODY_KEYS.iter().zip(b) {
            if let Some(v) = v {
                kv_str(out, &[key], v);
            }
        }
    }
}

/// Requests go out as their bytes; responses are not decoded.
#[derive(Clone, Copy, Default)]
struct PassThrough;

impl tonic::codec::Codec for PassThrough {
    type Encode = Arc<Vec<u8>>;
    type Decode = ();
    type Encoder = PassThrough;
    type Decoder = PassThrough;
    fn encoder(&mut self) -> PassThrough {
        PassThrough
    }
    fn decoder(&mut self) -> PassThrough {
        PassThrough
    }
}

impl tonic::codec::Encoder for PassThrough {
    type Item = Arc<Vec<u8>>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Arc<Vec<u8>>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for PassThrough {
    type Item = ();
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        let n = src.remaining();
        src.advance(n);
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;

    /// The hand-written bytes decode as the OTLP request they claim to be.
    #[test]
    fn a_batch_decodes_as_otlp() {
        let fields: Vec<String> = DEFAULT_REDACT_BODY_FIELDS.map(String::from).to_vec();
        let fields = FieldNames::new(&fields).unwrap();
        let record = || {
            let slot: Slot = Arc::default();
            let mut r = slot.lock().unwrap();
            r.trace_id = [7; 16];
            r.span_id = [9; 8];
            r.parent = Some([3; 8]);
            r.start = 10;
            r.end = 20;
            r.name.push_str("POST /echo");
            kv_str(&mut r.attrs, &[b"http.request.header.", b"host"], b"x:1");
            kv_int(&mut r.attrs, b"http.response.status_code", 200);
            r.request_body
                .extend_from_slice(br#"{"password":"hunter2","a":1}"#);
            r.response_body.extend_from_slice(&[b'x'; 300]);
            drop(r);
            slot
        };
        let (mut out, mut lens) = (Vec::new(), Vec::new());
        encode(&[record(), record()], Some(&fields), &mut out, &mut lens);
        let req = ExportTraceServiceRequest::decode(&out[..]).expect("valid protobuf");
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        let s = &spans[0];
        assert_eq!(
            (
                s.name.as_str(),
                s.start_time_unix_nano,
                s.end_time_unix_nano
            ),
            ("POST /echo", 10, 20)
        );
        assert_eq!(s.parent_span_id, vec![3; 8]);
        let attr = |k: &str| {
            s.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        assert_eq!(
            attr("http.request.header.host"),
            Some(Value::StringValue("x:1".into()))
        );
        assert_eq!(
            attr("http.response.status_code"),
            Some(Value::IntValue(200))
        );
        assert_eq!(
            attr("http.request.body"),
            Some(Value::StringValue(
                r#"{"password":"[REDACTED]","a":1}"#.into()
            ))
        );
        assert_eq!(
            attr("http.response.body"),
            Some(Value::StringValue("x".repeat(300)))
        );
        assert_eq!(
            req.resource_spans[0].resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
    }

    #[test]
    fn varint_lengths() {
        for v in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
    }
}
