//! Shared by the benches and the bench binaries: the JSON-echo app in each variant, the request
//! the benches send, an exporter that really encodes OTLP protobuf and discards it, and the set-up
//! of each variant's telemetry pipeline.
//!
//! Variants:
//! - `plain`: axum alone.
//! - `hypertrace`: `#[hypertrace::handler]`, capturing everything (headers and bodies) through the
//!   agent's own batch processor.
//! - `hypertrace-disabled`: the same handler with `enabled: false`.
//! - `hypertrace-unsampled`: the same handler, enabled, with the `always_off` sampler: no span is
//!   recorded, the trace context still propagates.
//! - `otel-axum`: `axum-tracing-opentelemetry`'s `OtelAxumLayer` (no headers or bodies).
//! - `tower-http`: tower-http's `TraceLayer::new_for_http()` with the `tracing-opentelemetry` layer.
//! - `floor`: not an agent, the least work capturing everything can be (see [`floor`]); run only
//!   when asked for by name.
//! - `plain-spin`: plain axum that also burns `BENCH_SPIN_NS` nanoseconds of CPU a request (default
//!   10,000) and does nothing else: how the loopback harness charges a server that is slower by a
//!   known amount of pure computation; run only when asked for by name.
//!
//! Both peers export through the OpenTelemetry SDK's `BatchSpanProcessor`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use opentelemetry_sdk::Resource;
use prost::Message as _;
use serde_json::Value;

pub use hypertrace;

pub mod floor;

/// The variants, in the order the reports list them.
pub const VARIANTS: [&str; 6] = [
    "plain",
    "hypertrace",
    "hypertrace-disabled",
    "otel-axum",
    "tower-http",
    "hypertrace-unsampled",
];

/// The one-letter label of each variant in the tables.
pub fn letter(variant: &str) -> &'static str {
    match variant {
        "plain" => "a",
        "hypertrace" => "b",
        "hypertrace-disabled" => "c",
        "otel-axum" => "d",
        "tower-http" => "e",
        "hypertrace-unsampled" => "f",
        "floor" => "z",
        "plain-spin" => "y",
        _ => "?",
    }
}

/// The request body's size when `BODY_BYTES` is not set.
pub const BODY_LEN: usize = 1024;

/// The request body's size: `BODY_BYTES` (to see how the cost grows with the body), else
/// [`BODY_LEN`].
pub fn body_len() -> usize {
    std::env::var("BODY_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BODY_LEN)
}

/// A JSON object of exactly [`body_len`] bytes (1 KiB by default).
pub fn json_body() -> Bytes {
    let len = body_len();
    // Grown a batch of items at a time: re-serialising after every item is quadratic.
    let step = (len / 40 / 64).max(1);
    let mut items = Vec::new();
    let mut s = String::new();
    let item = |i: usize| serde_json::json!({"sku": format!("SKU-{i:05}"), "qty": i % 7 + 1, "price": 1999 + i});
    let doc = |items: &[Value]| {
        serde_json::to_string(&serde_json::json!({"order_id": "ord-7f3c2a9e", "customer": {"id": 48213, "name": "Ada Lovelace", "email": "ada@example.com"}, "items": items, "note": ""})).unwrap()
    };
    let mut i = 0;
    loop {
        let mut more = items.clone();
        more.extend((i..i + step).map(item));
        let t = doc(&more);
        if t.len() > len {
            break;
        }
        (items, s, i) = (more, t, i + step);
    }
    // Then one item at a time, up to the size.
    loop {
        items.push(item(i));
        let t = doc(&items);
        if t.len() > len {
            break;
        }
        (s, i) = (t, i + 1);
    }
    // Pad the note so that the body is exactly `len` bytes.
    let pad = len - s.len();
    let s = s.replacen(
        "\"note\":\"\"",
        &format!("\"note\":\"{}\"", "x".repeat(pad)),
        1,
    );
    assert_eq!(s.len(), len);
    Bytes::from(s)
}

/// The 10 request headers every request carries (wrk sends the same set); `content-length` is the
/// 1 KiB body's, [`request`] sets the real one.
pub const HEADERS: [(&str, &str); 10] = [
    ("host", "bench.local:8080"),
    ("user-agent", "hypertrace-bench/1.0"),
    ("accept", "application/json"),
    ("accept-language", "en-GB,en;q=0.8"),
    ("content-type", "application/json"),
    ("content-length", "1024"),
    (
        "authorization",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl",
    ),
    ("x-request-id", "5b8e2a4c-1f0d-4c1e-9a57-2f4e6d8c0b13"),
    ("x-forwarded-for", "203.0.113.7"),
    (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ),
];

/// `POST /echo` with the 1 KiB JSON body and the 10 headers.
pub fn request(body: &Bytes) -> Request {
    let mut req = Request::new(Body::from(body.clone()));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = http::Uri::from_static("/echo");
    let h = req.headers_mut();
    for (k, v) in HEADERS {
        h.insert(k, HeaderValue::from_static(v));
    }
    if body.len() != BODY_LEN {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    req
}

// ---------------------------------------------------------------------------------------------
// The app: the same handlers in every variant.

async fn echo(Json(v): Json<Value>) -> Json<Value> {
    Json(v)
}

#[hypertrace::handler]
async fn ht_echo(Json(v): Json<Value>) -> Json<Value> {
    Json(v)
}

/// Reads the streamed upload to the end without keeping it; answers with the byte count.
async fn upload(body: Body) -> Response {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut n: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(e) => return (http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    }
    Json(serde_json::json!({ "bytes": n })).into_response()
}

#[hypertrace::handler]
async fn ht_upload(body: Body) -> Response {
    upload(body).await
}

/// `GET /download?mib=N` (default 1024): streams N MiB as `application/json`, 64 KiB per frame.
async fn download(req: Request) -> Response {
    let mib: u64 = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("mib="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let frames = mib * 16;
    let stream = futures_util::stream::iter(
        (0..frames).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CONTENT_LENGTH,
        HeaderValue::from_str(&(frames * 64 * 1024).to_string()).unwrap(),
    );
    resp
}

#[hypertrace::handler]
async fn ht_download(req: Request) -> Response {
    download(req).await
}

/// The router of `variant`: `POST /echo`, `POST /upload`, `GET /download`.
pub fn router(variant: &str) -> Router {
    match variant {
        "plain" => Router::new()
            .route("/echo", post(echo))
            .route("/upload", post(upload))
            .route("/download", get(download)),
        "hypertrace" | "hypertrace-disabled" | "hypertrace-unsampled" => Router::new()
            .route("/echo", post(ht_echo))
            .route("/upload", post(ht_upload))
            .route("/download", get(ht_download)),
        "otel-axum" => {
            router("plain").layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default())
        }
        "tower-http" => router("plain").layer(tower_http::trace::TraceLayer::new_for_http()),
        "floor" => router("plain").layer(floor::FloorLayer),
        "plain-spin" => {
            let spin = Duration::from_nanos(
                std::env::var("BENCH_SPIN_NS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(10_000),
            );
            router("plain").layer(axum::middleware::map_request(
                move |req: Request| async move {
                    let t = std::time::Instant::now();
                    while t.elapsed() < spin {
                        std::hint::spin_loop();
                    }
                    req
                },
            ))
        }
        other => panic!("unknown variant {other:?}; one of {VARIANTS:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The exporter: OTLP protobuf, as the OTLP exporters would send it, then discarded.

#[derive(Debug, Default)]
pub struct EncodeStats {
    pub spans: AtomicU64,
    pub bytes: AtomicU64,
    pub batches: AtomicU64,
    /// Attributes and events on the first span exported (what a span of this variant carries;
    /// the benches send one kind of request). Counted once: for the agent's spans counting means
    /// decoding the whole span, work that no exporter does and that a bench must not measure (a
    /// large body copied again on the export thread).
    pub span_attributes: AtomicUsize,
    pub span_events: AtomicUsize,
    pub counted: std::sync::atomic::AtomicBool,
}

/// Encodes every batch to an OTLP `ExportTraceServiceRequest`, counts, and drops it: as an SDK
/// exporter with `opentelemetry_proto::transform` and prost for the peers (what opentelemetry-otlp's
/// exporters do); as a `hypertrace::BatchExporter` with `hypertrace::TraceEncoder` for hypertrace
/// (what its OTLP exporters do).
#[derive(Debug, Clone)]
pub struct EncodingExporter {
    resource: Arc<ResourceAttributesWithSchema>,
    /// hypertrace's own encoder and its reused buffer; `None`: transform + prost.
    direct: Option<Arc<std::sync::Mutex<(hypertrace::TraceEncoder, Vec<u8>)>>>,
    pub stats: Arc<EncodeStats>,
}

impl EncodingExporter {
    /// transform + prost (the peers).
    pub fn new() -> Self {
        EncodingExporter {
            resource: Arc::new(ResourceAttributesWithSchema::from(
                &Resource::builder_empty().build(),
            )),
            direct: None,
            stats: Arc::new(EncodeStats::default()),
        }
    }

    /// hypertrace's encoder, as its OTLP exporters use it.
    pub fn direct() -> Self {
        EncodingExporter {
            direct: Some(Arc::default()),
            ..Self::new()
        }
    }
}

impl Default for EncodingExporter {
    fn default() -> Self {
        Self::new()
    }
}

impl SpanExporter for EncodingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        // Diagnosis only: `BENCH_EXPORT=discard` drops the spans unencoded (what the export
        // thread's encoding costs the request path, through the shared core, caches and allocator).
        // `BENCH_EXPORT=leak` never frees them (what the frees on this thread cost the request
        // path: with glibc's malloc, the arena lock they take is the one the request thread needs).
        match std::env::var_os("BENCH_EXPORT") {
            Some(v) if v == "discard" => {
                drop(std::hint::black_box(batch));
                self.stats.spans.fetch_add(n, Ordering::Relaxed);
                return Ok(());
            }
            Some(v) if v == "leak" => {
                std::mem::forget(batch);
                self.stats.spans.fetch_add(n, Ordering::Relaxed);
                return Ok(());
            }
            _ => {}
        }
        if let Some(first) = batch
            .first()
            .filter(|_| !self.stats.counted.swap(true, Ordering::Relaxed))
        {
            self.stats.span_attributes.store(
                hypertrace::packed::unpacked(&first.attributes).len(),
                Ordering::Relaxed,
            );
            self.stats
                .span_events
                .store(first.events.len(), Ordering::Relaxed);
        }
        let req = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        let buf = req.encode_to_vec();
        self.stats
            .bytes
            .fetch_add(std::hint::black_box(buf).len() as u64, Ordering::Relaxed);
        self.stats.spans.fetch_add(n, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = Arc::new(ResourceAttributesWithSchema::from(resource));
    }
}

/// hypertrace's OTLP exporters borrow each batch and encode it with `TraceEncoder`; so does this.
impl hypertrace::BatchExporter for EncodingExporter {
    async fn export(&self, batch: &[hypertrace::FinishedSpan]) -> OTelSdkResult {
        // Diagnosis only, as for the SDK exporters above: `BENCH_EXPORT=discard` does not encode
        // (the spans are still freed where the agent frees them).
        if std::env::var_os("BENCH_EXPORT").is_some_and(|v| v == "discard") {
            self.stats
                .spans
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            return Ok(());
        }
        let d = self.direct.as_ref().expect("EncodingExporter::direct");
        let len = {
            let mut d = d.lock().unwrap();
            let (encoder, buf) = &mut *d;
            encoder.encode(batch, buf);
            std::hint::black_box(&buf).len()
        };
        let first = batch
            .first()
            .filter(|_| !self.stats.counted.swap(true, Ordering::Relaxed));
        if let Some(first) = first.map(hypertrace::FinishedSpan::to_span_data) {
            self.stats
                .span_attributes
                .store(first.attributes.len(), Ordering::Relaxed);
            self.stats
                .span_events
                .store(first.events.len(), Ordering::Relaxed);
        }
        self.stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.stats
            .spans
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(d) = &self.direct {
            d.lock().unwrap().0.set_resource(resource);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Telemetry set-up per variant.

/// Where spans go.
#[derive(Clone, Debug)]
pub enum Export {
    /// [`EncodingExporter`], in-process.
    Encode,
    /// OTLP/gRPC to this endpoint (`http://127.0.0.1:4317`), with `opentelemetry-otlp`'s tonic exporter.
    Otlp(String),
}

/// Keeps a variant's pipeline alive; [`Telemetry::finish`] flushes and shuts it down.
pub struct Telemetry {
    pub variant: String,
    pub encode: Option<Arc<EncodeStats>>,
    guard: Option<hypertrace::Guard>,
    provider: Option<SdkTracerProvider>,
    /// For the peers' subscriber: set as the global default ([`Telemetry::install_global`]) or
    /// scoped to the current thread ([`Telemetry::set_thread_default`]).
    dispatch: Option<tracing::Dispatch>,
    /// The runtime that drives the peers' tonic channel (hypertrace has its own, inside the agent).
    _export_runtime: Option<tokio::runtime::Runtime>,
    floor: Option<floor::Floor>,
}

/// Large enough that no span is dropped in a bounded run (the callgrind bin); `None`: the defaults.
pub type QueueSize = Option<usize>;

impl Telemetry {
    pub fn new(variant: &str, export: &Export, queue: QueueSize) -> Telemetry {
        let mut t = Telemetry {
            variant: variant.to_owned(),
            encode: None,
            guard: None,
            provider: None,
            dispatch: None,
            _export_runtime: None,
            floor: None,
        };
        match variant {
            "plain" | "plain-spin" => {}
            "floor" => {
                t.floor = Some(floor::Floor::start(match export {
                    Export::Encode => None,
                    Export::Otlp(url) => Some(url.clone()),
                }));
            }
            "hypertrace" | "hypertrace-disabled" | "hypertrace-unsampled" => {
                // `HT_*` variables apply, so that pieces can be switched off one at a time to
                // see what each costs (`HT_DATA_CAPTURE_HTTP_HEADERS_REQUEST=false`, ...).
                let (mut config, _) = hypertrace::config::ConfigBuilder::new("bench")
                    .load()
                    .expect("HT_* configuration");
                config.enabled = variant != "hypertrace-disabled";
                if variant == "hypertrace-unsampled" {
                    config.rustagent.traces_sampler = hypertrace::config::TracesSampler::AlwaysOff;
                }
                if let Some(q) = queue {
                    config.rustagent.max_queue_size = q;
                }
                let agent = match export {
                    Export::Encode => {
                        // Borrowing each batch, as the agent's own OTLP exporters do.
                        let exp = EncodingExporter::direct();
                        t.encode = Some(exp.stats.clone());
                        hypertrace::Agent::with_batch_exporter(config, exp)
                    }
                    Export::Otlp(endpoint) => {
                        config.reporting.endpoint = Some(endpoint.clone());
                        hypertrace::Agent::from_config(config).expect("hypertrace agent")
                    }
                };
                t.guard = Some(agent.install());
            }
            "otel-axum" | "tower-http" => {
                let mut cfg = BatchConfigBuilder::default();
                if let Some(q) = queue {
                    cfg = cfg.with_max_queue_size(q);
                }
                let resource = Resource::builder().with_service_name("bench").build();
                let provider = match export {
                    Export::Encode => {
                        let exp = EncodingExporter::new();
                        t.encode = Some(exp.stats.clone());
                        let bsp = BatchSpanProcessor::builder(exp)
                            .with_batch_config(cfg.build())
                            .build();
                        SdkTracerProvider::builder()
                            .with_resource(resource)
                            .with_span_processor(bsp)
                            .build()
                    }
                    Export::Otlp(endpoint) => {
                        use opentelemetry_otlp::WithExportConfig as _;
                        let rt = tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(1)
                            .thread_name("peer-grpc")
                            .enable_all()
                            .build()
                            .unwrap();
                        let exp = {
                            let _enter = rt.enter();
                            opentelemetry_otlp::SpanExporter::builder()
                                .with_tonic()
                                .with_endpoint(endpoint.clone())
                                .with_timeout(Duration::from_secs(10))
                                .build()
                                .expect("otlp exporter")
                        };
                        t._export_runtime = Some(rt);
                        let bsp = BatchSpanProcessor::builder(exp)
                            .with_batch_config(cfg.build())
                            .build();
                        SdkTracerProvider::builder()
                            .with_resource(resource)
                            .with_span_processor(bsp)
                            .build()
                    }
                };
                // axum-tracing-opentelemetry reads the parent from the global propagator.
                opentelemetry::global::set_text_map_propagator(
                    opentelemetry_sdk::propagation::TraceContextPropagator::new(),
                );
                let tracer = provider.tracer("bench");
                use tracing_subscriber::layer::SubscriberExt as _;
                let subscriber = tracing_subscriber::registry()
                    .with(tracing_opentelemetry::layer().with_tracer(tracer));
                t.dispatch = Some(tracing::Dispatch::new(subscriber));
                t.provider = Some(provider);
            }
            other => panic!("unknown variant {other:?}; one of {VARIANTS:?}"),
        }
        t
    }

    /// Makes the peers' subscriber the process-wide default (servers).
    pub fn install_global(&self) {
        if let Some(d) = &self.dispatch {
            tracing::dispatcher::set_global_default(d.clone()).expect("one subscriber per process");
        }
    }

    /// Makes the peers' subscriber the default of this thread until the guard drops (in-process
    /// benches on a current-thread runtime).
    pub fn set_thread_default(&self) -> Option<tracing::dispatcher::DefaultGuard> {
        self.dispatch.as_ref().map(tracing::dispatcher::set_default)
    }

    /// hypertrace's own counters (queued, dropped, exported), when this is a hypertrace variant.
    pub fn agent_stats(&self) -> Option<(u64, u64, u64)> {
        self.guard.as_ref().map(|g| {
            let s = g.agent().stats();
            (
                s.queued.load(Ordering::Relaxed),
                s.dropped.load(Ordering::Relaxed),
                s.exported.load(Ordering::Relaxed),
            )
        })
    }

    /// Exports everything queued so far.
    pub fn flush(&self) {
        if let Some(g) = &self.guard {
            g.flush();
        }
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
        }
    }

    /// Flushes, shuts down, and says what was exported.
    pub fn finish(mut self) -> String {
        self.flush();
        let agent = self.agent_stats();
        drop(self.guard.take());
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
        let mut out = format!("variant={}", self.variant);
        if let Some(f) = self.floor.take() {
            out += &f.finish();
        }
        if let Some((_, dropped, exported)) = agent {
            out += &format!(" agent.exported={exported} agent.dropped={dropped}");
        }
        if let Some(s) = &self.encode {
            let spans = s.spans.load(Ordering::Relaxed);
            let bytes = s.bytes.load(Ordering::Relaxed);
            out += &format!(
                " encoded.spans={spans} encoded.bytes_per_span={} span.attributes={} span.events={}",
                bytes.checked_div(spans).unwrap_or(0),
                s.span_attributes.load(Ordering::Relaxed),
                s.span_events.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// The runtime the in-process benches serve requests on: a current-thread tokio runtime, in a
/// process made multi-threaded first ([`multi_threaded_process`]).
pub fn bench_runtime() -> tokio::runtime::Runtime {
    multi_threaded_process();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Starts one idle thread, once. A server process always has several threads; without this the
/// in-process runs of the variants that start no thread of their own (plain axum on a current-thread
/// runtime) would be single-threaded, and glibc's malloc skips its arena locks in a single-threaded
/// process: plain axum would get a cheaper allocator than every other variant.
pub fn multi_threaded_process() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::thread::Builder::new()
            .name("idle".into())
            .spawn(|| loop {
                std::thread::park();
            })
            .expect("spawn");
    });
}

/// CPU time of this process so far, all threads (the export threads' encoding included), in ns:
/// the first field of each thread's `/proc/self/task/*/schedstat`.
pub fn process_cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// Variants compared in one process, robust to a machine whose speed drifts: `rounds` rounds,
/// each running one block of `n` operations per variant (the first variant the baseline), the
/// order rotating from round to round so that no variant always runs first. For each block,
/// `prepare(v)` sets the variant up (an agent installed, say), untimed; `block(v, &prepared)`
/// runs it, with wall time and process CPU time taken around it (whatever it flushes before it
/// returns, an export included, is counted); what `prepare` returned is dropped untimed. Prints,
/// per variant, the median of the rounds' wall time per operation and the CPU time per
/// operation, each with its difference and ratio to the baseline, and returns them as JSON
/// (`{"rounds", "per_block", "variants": {name: {"wall_us", "cpu_us"}}}`).
pub fn interleaved<T>(
    what: &str,
    rounds: usize,
    n: u32,
    names: &[&str],
    mut prepare: impl FnMut(usize) -> T,
    mut block: impl FnMut(usize, &T),
) -> serde_json::Value {
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut cpu = vec![0u64; names.len()];
    for round in 0..rounds {
        for i in 0..names.len() {
            let v = (i + round) % names.len();
            let prepared = prepare(v);
            let (t0, c0) = (std::time::Instant::now(), process_cpu_ns());
            block(v, &prepared);
            cpu[v] += process_cpu_ns() - c0;
            wall[v].push(t0.elapsed().as_secs_f64() * 1e6 / f64::from(n));
            drop(prepared);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let total = f64::from(n) * rounds as f64;
    let base_wall = median(&mut wall[0]);
    let base_cpu = cpu[0] as f64 / total / 1000.0;
    eprintln!("interleaved: {rounds} rounds of {n} per variant, the order rotating");
    let mut variants = serde_json::Map::new();
    for (v, name) in names.iter().enumerate() {
        let w = median(&mut wall[v]);
        let c = cpu[v] as f64 / total / 1000.0;
        variants.insert(
            name.to_string(),
            serde_json::json!({ "wall_us": w, "cpu_us": c }),
        );
        eprintln!(
            "  {name:<24} wall {w:7.1} µs/{what} (median of rounds, {:+.1} µs, x{:.3})   cpu {c:6.1} µs/{what} ({:+.1} µs, x{:.3})",
            w - base_wall,
            w / base_wall,
            c - base_cpu,
            c / base_cpu
        );
    }
    serde_json::json!({ "rounds": rounds, "per_block": n, "variants": variants })
}

/// What [`alternate`] measured: the median of each side, and the median of the per-pair
/// differences (`on - off`) with a distribution-free 95% confidence interval.
#[derive(Clone, Copy, Debug)]
pub struct Paired {
    pub on: f64,
    pub off: f64,
    pub diff: f64,
    pub lo: f64,
    pub hi: f64,
}

/// `pairs` pairs of blocks, `block(true)` and `block(false)` back to back (each returns its time
/// per request), the order alternating from pair to pair. On a machine whose speed drifts, the two
/// blocks of a pair see nearly the same machine, so the median of the per-pair differences is
/// steadier than two separate runs.
pub fn alternate(pairs: usize, mut block: impl FnMut(bool) -> f64) -> Paired {
    assert!(pairs > 0, "at least one pair");
    let (mut on, mut off, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (a, b) = if i % 2 == 0 {
            let a = block(true);
            (a, block(false))
        } else {
            let b = block(false);
            (block(true), b)
        };
        on.push(a);
        off.push(b);
        diff.push(a - b);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (on, off, mid) = (median(&mut on), median(&mut off), median(&mut diff));
    // Ranks of a distribution-free 95% interval for the median of n values.
    let n = diff.len() as f64;
    let half = 1.96 * n.sqrt() / 2.0;
    let lo = ((n / 2.0 - half).floor().max(0.0)) as usize;
    let hi = ((n / 2.0 + half).ceil() as usize).min(diff.len() - 1);
    Paired {
        on,
        off,
        diff: mid,
        lo: diff[lo],
        hi: diff[hi],
    }
}

/// Sends `req` through `app` and reads the whole response body; returns the status and body length.
pub async fn call(app: Router, req: Request) -> (u16, usize) {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, body.len())
}
