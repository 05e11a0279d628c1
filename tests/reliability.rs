//! Reliability and security: the agent never hurts the application it
//! instruments, whatever the collector does, and loses nothing on a clean stop.
//!
//! Most scenarios run `examples/server.rs` as a child process (build it first:
//! `cargo build --example server`) against collectors inside this test (support/receivers.rs);
//! the load and queue tests run the agent in this process. Each test prints its measured numbers
//! on stderr (visible in a passing run); RELIABILITY.md collects them. One test at a time: the
//! numbers are per scenario, not shared with a neighbour.
//!
//! Rerun: `cargo build --example server && cargo test --test reliability`.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Json;
use hypertrace::config::Config;
use hypertrace::Agent;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::{json, Value};
use support::receivers::{
    collector_restart_under_load, lines_with, percentile_ms, proc_memory_kib, say, user_ids,
    wait_until, BadCollector, Collector, CollectorKind, DemoServer, Load, Misbehaviour,
};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn blocking_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

const TOKEN: &str = "tok-S3CRET-reporting-token-91f2";
const OTLP_HEADER_VALUE: &str = "hdr-S3CRET-team-key-5d07";

/// Variables every child server gets: a token and an export header that must never be printed.
fn secret_env() -> Vec<(&'static str, String)> {
    vec![
        ("HT_REPORTING_TOKEN", TOKEN.into()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("x-team-key={OTLP_HEADER_VALUE}"),
        ),
    ]
}

fn endpoint(ty: &str, addr: std::net::SocketAddr) -> String {
    match ty {
        "OTLP" => format!("http://{addr}"),
        "OTLP_HTTP" => format!("http://{addr}/v1/traces"),
        "ZIPKIN" => format!("http://{addr}/api/v2/spans"),
        _ => unreachable!(),
    }
}

/// No secret, no panic in what the process printed.
fn assert_clean_output(what: &str, out: &str) {
    for secret in [TOKEN, OTLP_HEADER_VALUE, "S3CRET"] {
        assert!(
            !out.contains(secret),
            "{what}: a secret ({secret}) was printed:\n{out}"
        );
    }
    assert!(!out.contains("panicked"), "{what}: a panic:\n{out}");
}

// ---------------------------------------------------------------------------------------------
// 1. A collector that is down, silent, failing or garbled costs the requests nothing.

/// Requests against the demo server while the collector misbehaves; then SIGTERM. Defaults for
/// every export setting except the schedule (export_timeout 10 s, shutdown_timeout 5 s).
fn bad_collector_scenario(what: Misbehaviour, reporter: &str) -> String {
    let bad = BadCollector::start(what);
    let mut env = secret_env();
    env.push(("HT_REPORTING_TRACE_REPORTER_TYPE", reporter.into()));
    env.push(("HT_REPORTING_ENDPOINT", endpoint(reporter, bad.addr)));
    env.push(("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "100".into()));
    let mut server = DemoServer::start(&env);
    let c = blocking_client();
    let mut lat = Vec::new();
    for i in 0..150 {
        let t = Instant::now();
        let status = if i % 3 == 0 {
            c.post(format!("{}/json", server.base()))
                .header("content-type", "application/json")
                .body(format!(r#"{{"i":{i}}}"#))
                .send()
        } else {
            c.get(format!("{}/users/{i}", server.base())).send()
        }
        .map(|r| r.status().as_u16());
        lat.push(t.elapsed());
        assert_eq!(
            status.as_ref().ok(),
            Some(&200),
            "{what:?}/{reporter}: request {i}: {status:?}"
        );
        if i % 50 == 49 {
            // Let the exporter try (and fail) between bursts.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let (rss, _) = server.memory_kib();
    let (status, took) = server.stop(Duration::from_secs(20));
    let stderr = server.stderr();
    assert!(
        status.success(),
        "{what:?}/{reporter}: exit {status}\n{stderr}"
    );
    // The deadline is shutdown_timeout (5 s); the margin is for a loaded CI box.
    assert!(
        took < Duration::from_secs(8),
        "{what:?}/{reporter}: shutdown took {took:?}\n{stderr}"
    );
    assert_clean_output(
        &format!("{what:?}/{reporter}"),
        &format!("{}{stderr}", server.stdout()),
    );
    let failures =
        lines_with(&stderr, "export of").len() + lines_with(&stderr, "shutdown deadline").len();
    assert!(
        failures > 0,
        "{what:?}/{reporter}: the failure is reported on stderr:\n{stderr}"
    );
    assert!(
        percentile_ms(&lat, 99.0) < 250.0 && percentile_ms(&lat, 50.0) < 50.0,
        "{what:?}/{reporter}: latency {lat:?}"
    );
    format!(
        "  {:<16} {:<9}: 150/150 requests ok, p50 {:>5.2} ms, p99 {:>6.2} ms; {failures} failure lines on stderr; {} connections; RSS {rss} KiB; exit {:?} after SIGTERM",
        format!("{what:?}"),
        reporter,
        percentile_ms(&lat, 50.0),
        percentile_ms(&lat, 99.0),
        bad.connections.load(Ordering::Relaxed),
        took
    )
}

fn bad_collector(what: Misbehaviour, reporters: &[&str]) {
    let _one = one_at_a_time();
    let rows: Vec<String> = reporters
        .iter()
        .map(|r| bad_collector_scenario(what, r))
        .collect();
    say(&format!("collector {what:?}:\n{}", rows.join("\n")));
}

#[test]
fn collector_down_from_the_start() {
    bad_collector(Misbehaviour::Down, &["OTLP", "OTLP_HTTP", "ZIPKIN"]);
}

#[test]
fn collector_accepts_and_never_answers() {
    bad_collector(Misbehaviour::Silent, &["OTLP", "OTLP_HTTP", "ZIPKIN"]);
}

#[test]
fn collector_answers_500() {
    // For gRPC: an HTTP/2 500, and a well-formed gRPC UNAVAILABLE.
    bad_collector(Misbehaviour::Http500, &["OTLP", "OTLP_HTTP", "ZIPKIN"]);
    bad_collector(Misbehaviour::GrpcUnavailable, &["OTLP"]);
}

#[test]
fn collector_answers_garbage() {
    bad_collector(Misbehaviour::Garbage, &["OTLP", "OTLP_HTTP", "ZIPKIN"]);
}

// ---------------------------------------------------------------------------------------------
// 2. Collector killed under load and restarted on the same port.

fn killed_and_restarted(kind: CollectorKind, reporter: &str) -> String {
    let mut recv = Collector::start(kind);
    let mut server = DemoServer::start(&[
        ("HT_REPORTING_TRACE_REPORTER_TYPE", reporter.into()),
        ("HT_REPORTING_ENDPOINT", endpoint(reporter, recv.addr)),
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "100".into()),
        ("HT_RUSTAGENT_EXPORT_TIMEOUT_MS", "1000".into()),
    ]);
    let report = collector_restart_under_load(
        reporter,
        &mut server,
        Duration::from_millis(3),
        &mut recv,
        |recv| user_ids(&recv.got.spans()),
        Collector::kill,
        Collector::restart,
    );
    format!("{reporter}:\n{report}")
}

#[test]
fn collector_killed_under_load_and_restarted() {
    let _one = one_at_a_time();
    let a = killed_and_restarted(CollectorKind::Grpc, "OTLP");
    let b = killed_and_restarted(CollectorKind::Http, "OTLP_HTTP");
    say(&format!(
        "collector killed under load and restarted on the same port:\n{a}\n{b}"
    ));
}

// ---------------------------------------------------------------------------------------------
// 3. A burst larger than the queue.

/// An exporter stuck until released, as behind a collector that hangs.
#[derive(Debug, Clone, Default)]
struct Stuck {
    release: Arc<AtomicBool>,
    exported: Arc<AtomicUsize>,
}

impl SpanExporter for Stuck {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        while !self.release.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.exported.fetch_add(batch.len(), Ordering::Relaxed);
        Ok(())
    }
}

fn self_memory_kib() -> (u64, u64) {
    proc_memory_kib(std::process::id())
}

/// In process: 200 000 spans of 1 KiB each into a queue of 256 behind a stuck exporter. Every span
/// is accounted for (exported or dropped), the drops are counted in `Agent::stats()`, span ends
/// never wait, and memory does not grow with the burst.
#[test]
fn burst_larger_than_the_queue_in_process() {
    let _one = one_at_a_time();
    let mut cfg = Config::defaults("burst");
    cfg.rustagent.max_queue_size = 256;
    cfg.rustagent.max_export_batch_size = 64;
    cfg.rustagent.scheduled_delay = Duration::from_millis(10);
    let exp = Stuck::default();
    let agent = Agent::with_exporter(cfg, exp.clone());
    let tracer = agent.tracer_provider().tracer("burst");
    let (rss0, _) = self_memory_kib();
    const THREADS: usize = 4;
    const PER_THREAD: usize = 50_000;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let tracer = tracer.clone();
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    let mut span = tracer.start("burst");
                    // A fresh 1 KiB per span: an unbounded queue would hold ~200 MiB.
                    span.set_attribute(KeyValue::new(
                        "payload",
                        format!("{t}-{i}-{}", "x".repeat(1024)),
                    ));
                    span.end();
                }
            });
        }
    });
    let took = start.elapsed();
    let (rss1, _) = self_memory_kib();
    let total = (THREADS * PER_THREAD) as u64;
    let stats = agent.stats();
    let dropped = stats.dropped.load(Ordering::Relaxed);
    let queued = stats.queued.load(Ordering::Relaxed);
    exp.release.store(true, Ordering::Relaxed);
    agent.tracer_provider().shutdown().unwrap();
    let exported = exp.exported.load(Ordering::Relaxed) as u64;
    let grew_mib = rss1.saturating_sub(rss0) as f64 / 1024.0;
    say(&format!(
        "burst in process: {total} spans of 1 KiB in {took:?} ({:.2} µs per span end), queue 256: dropped {dropped}, queued {queued} \
         (+ at most one batch of 64 held by the stuck exporter), exported after release {exported}; RSS {rss0} -> {rss1} KiB (+{grew_mib:.1} MiB)",
        took.as_secs_f64() * 1e6 / total as f64
    ));
    assert_eq!(
        exported + dropped,
        total,
        "every span is exported or counted as dropped"
    );
    assert!(dropped >= total - 256 - 64, "dropped {dropped}");
    assert_eq!(
        stats.dropped.load(Ordering::Relaxed),
        dropped,
        "nothing dropped after the exporter came back"
    );
    // 200 MiB if the queue grew with the burst; the bound leaves room for allocator slack.
    assert!(grew_mib < 48.0, "RSS grew by {grew_mib:.1} MiB");
    // Never blocked on the exporter: a span end costs microseconds, not the export timeout.
    assert!(took < Duration::from_secs(60), "{took:?}");
}

/// The demo server with a queue of 64 behind a silent collector, hit by a burst of requests: the
/// drops are counted and logged on stderr at most every 10 s (plus once at shutdown), every request
/// succeeds, and the process stays small.
#[test]
fn burst_larger_than_the_queue_demo_server() {
    let _one = one_at_a_time();
    let bad = BadCollector::start(Misbehaviour::Silent);
    let mut server = DemoServer::start(&[
        ("HT_REPORTING_TRACE_REPORTER_TYPE", "OTLP_HTTP".into()),
        ("HT_REPORTING_ENDPOINT", endpoint("OTLP_HTTP", bad.addr)),
        ("HT_RUSTAGENT_MAX_QUEUE_SIZE", "64".into()),
        ("HT_RUSTAGENT_MAX_EXPORT_BATCH_SIZE", "16".into()),
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "50".into()),
        ("HT_RUSTAGENT_EXPORT_TIMEOUT_MS", "500".into()),
        ("HT_RUSTAGENT_SHUTDOWN_TIMEOUT_MS", "2000".into()),
    ]);
    // Warm up, then the baseline.
    let c = blocking_client();
    for i in 0..50 {
        c.get(format!("{}/users/{i}", server.base()))
            .send()
            .unwrap();
    }
    let (rss0, _) = server.memory_kib();
    let start = Instant::now();
    let load = Load::start(&server.base(), 8, Duration::ZERO);
    std::thread::sleep(Duration::from_secs(5));
    let samples = load.stop();
    let burst = start.elapsed();
    let (rss1, hwm) = server.memory_kib();
    let (status, took) = server.stop(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    let stderr = server.stderr();
    assert_clean_output("burst", &stderr);
    let failed = samples.iter().filter(|s| s.result != Ok(200)).count();
    let drop_lines = lines_with(&stderr, "spans dropped so far");
    let last: u64 = drop_lines
        .last()
        .and_then(|l| l.split("):").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let sent = samples.len() as u64 + 50;
    let lat: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    say(&format!(
        "burst demo server: {sent} requests in {burst:?} ({failed} failed, p50 {:.2} ms, p99 {:.2} ms), queue 64, collector silent: \
         {} drop-count lines on stderr, last says {last} dropped; {} export-failure lines; RSS {rss0} -> {rss1} KiB, peak {hwm} KiB; exit {took:?} after SIGTERM\n  {}",
        percentile_ms(&lat, 50.0),
        percentile_ms(&lat, 99.0),
        drop_lines.len(),
        lines_with(&stderr, "export of").len(),
        drop_lines.join("\n  ")
    ));
    assert_eq!(failed, 0);
    // One line when the drops start, then at most one per 10 s, and one at shutdown.
    let allowed = 2 + (burst.as_secs() + took.as_secs()) / 10;
    assert!(
        !drop_lines.is_empty() && drop_lines.len() as u64 <= allowed,
        "{} lines:\n{stderr}",
        drop_lines.len()
    );
    assert!(
        last >= sent * 8 / 10 && last <= sent,
        "dropped {last} of {sent}"
    );
    assert!(
        hwm < rss0 + 48 * 1024,
        "peak RSS {hwm} KiB vs {rss0} KiB before the burst"
    );
}

/// The queue is bounded in bytes (`rustagent.max_queue_bytes`, default 32 MiB) as well as in spans:
/// with the collector silent and the default settings, sustained load of requests carrying the
/// largest bodies (128 KiB in, ~128 KiB out) and a 32 KiB header (cut to 8 KiB). RSS must stay
/// within the byte budget plus a few MiB, however many such spans are sent.
#[test]
fn stalled_collector_with_largest_bodies_stays_within_the_byte_budget() {
    let _one = one_at_a_time();
    const BUDGET_MIB: u64 = 32;
    let bad = BadCollector::start(Misbehaviour::Silent);
    let mut server = DemoServer::start(&[
        ("HT_REPORTING_TRACE_REPORTER_TYPE", "OTLP_HTTP".into()),
        ("HT_REPORTING_ENDPOINT", endpoint("OTLP_HTTP", bad.addr)),
        ("HT_RUSTAGENT_EXPORT_TIMEOUT_MS", "60000".into()),
        ("HT_RUSTAGENT_SHUTDOWN_TIMEOUT_MS", "1000".into()),
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "100".into()),
    ]);
    let c = blocking_client();
    let base = server.base();
    let body = format!(r#"{{"pad":"{}"}}"#, "p".repeat(131_072));
    let header = "h".repeat(32 * 1024);
    let send = |n: usize| {
        std::thread::scope(|s| {
            for k in 0..4 {
                let (c, base, body, header) = (c.clone(), &base, &body, &header);
                s.spawn(move || {
                    for _ in 0..n / 4 {
                        let r = c
                            .post(format!("{base}/json"))
                            .header("content-type", "application/json")
                            .header("x-big", header.as_str())
                            .body(body.clone())
                            .send()
                            .unwrap();
                        assert_eq!(r.status(), 200, "client {k}");
                        r.bytes().unwrap();
                    }
                });
            }
        })
    };
    // Warm-up: the request path's own buffers and the allocator's arenas, without the queue.
    send(40);
    std::thread::sleep(Duration::from_millis(300));
    let (rss_warm, _) = server.memory_kib();
    let t = Instant::now();
    let mut samples = Vec::new();
    for _ in 0..6 {
        send(200);
        samples.push(server.memory_kib().0);
    }
    let took = t.elapsed();
    let (rss1, hwm) = server.memory_kib();
    let (status, _) = server.stop(Duration::from_secs(10));
    assert!(status.success());
    let stderr = server.stderr();
    let drops = lines_with(&stderr, "spans dropped so far")
        .last()
        .map(|l| l.to_string())
        .unwrap_or_default();
    assert!(drops.contains("over the byte budget"), "{stderr}");
    let grew = rss1.saturating_sub(rss_warm);
    let peak_grew = samples.iter().max().unwrap().saturating_sub(rss_warm);
    say(&format!(
        "stalled collector, 1 240 requests with 128 KiB bodies and a 32 KiB header in {took:?}, default settings \
         (max_queue_bytes {BUDGET_MIB} MiB): RSS after warm-up {rss_warm} KiB, after each 200 requests {samples:?} KiB, \
         final {rss1} KiB (+{} MiB; peak {hwm} KiB); {drops}",
        grew / 1024
    ));
    let bound = (BUDGET_MIB + 8) * 1024;
    assert!(
        peak_grew < bound,
        "RSS grew {peak_grew} KiB over the warm-up, bound {bound} KiB (budget + 8 MiB)"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. SIGTERM with requests in flight: every finished span is delivered.

#[test]
fn sigterm_with_requests_in_flight_delivers_every_finished_span() {
    let _one = one_at_a_time();
    let recv = Collector::start(CollectorKind::Grpc);
    let mut server = DemoServer::start(&[
        ("HT_REPORTING_ENDPOINT", endpoint("OTLP", recv.addr)),
        // Nothing leaves before the shutdown flush unless a batch fills: the flush must deliver.
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "60000".into()),
        ("HT_RUSTAGENT_MAX_QUEUE_SIZE", "100000".into()),
        ("HT_RUSTAGENT_MAX_EXPORT_BATCH_SIZE", "512".into()),
    ]);
    let load = Load::start(&server.base(), 16, Duration::ZERO);
    std::thread::sleep(Duration::from_millis(1500));
    let term_at = server.sigterm();
    let status = server
        .wait(Duration::from_secs(15))
        .expect("server exits after SIGTERM");
    let exit_after = term_at.elapsed();
    // Clients keep going until the server is gone; give them a moment to see it.
    std::thread::sleep(Duration::from_millis(200));
    let samples = load.stop();
    assert!(status.success(), "{status}\n{}", server.stderr());
    let ok: HashSet<u64> = samples
        .iter()
        .filter(|s| s.result == Ok(200))
        .map(|s| s.id)
        .collect();
    let in_flight = samples
        .iter()
        .filter(|s| s.result == Ok(200) && s.started < term_at && s.started + s.latency > term_at)
        .count();
    let errors = samples.iter().filter(|s| s.result.is_err()).count();
    let other: Vec<_> = samples
        .iter()
        .filter(|s| matches!(s.result, Ok(c) if c != 200))
        .collect();
    wait_until(Duration::from_secs(10), || {
        ok.is_subset(&user_ids(&recv.got.spans()))
    });
    let spans = recv.got.spans();
    let got = user_ids(&spans);
    let lost: Vec<_> = ok.iter().filter(|i| !got.contains(i)).collect();
    let extra = got.difference(&ok).count();
    say(&format!(
        "SIGTERM under load (16 clients): exit {exit_after:?} after SIGTERM; {} responses 200 ({in_flight} of them in flight at SIGTERM), \
         {errors} refused/closed after; spans received {} (distinct ids {}); lost {}; spans of requests without a response {extra}",
        ok.len(),
        spans.len(),
        got.len(),
        lost.len()
    ));
    assert!(other.is_empty(), "{other:?}");
    assert!(
        lost.is_empty(),
        "finished requests whose span never arrived: {lost:?}"
    );
    assert_eq!(spans.len(), got.len(), "one span per request");
    assert_eq!(got.len(), ok.len(), "count sent == count received");
    assert!(exit_after < Duration::from_secs(8), "{exit_after:?}");
}

// ---------------------------------------------------------------------------------------------
// 5. Load correctness: concurrent clients, no cross-talk, nothing lost.

#[hypertrace::handler]
async fn echo(headers: HeaderMap, Json(body): Json<Value>) -> impl IntoResponse {
    let id = headers.get("x-client-id").cloned().expect("x-client-id");
    // Interleave with the other requests on the runtime between reading and answering.
    tokio::task::yield_now().await;
    let echoed = json!({ "id": id.to_str().unwrap(), "echo": body });
    ([("x-echo-id", id)], Json(echoed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_get_their_own_responses_and_spans() {
    let _one = one_at_a_time();
    const CLIENTS: usize = 32;
    const RUN: Duration = Duration::from_secs(3);
    let agent = support::agent(|c| {
        c.rustagent.max_queue_size = 1_000_000;
        c.rustagent.max_export_batch_size = 1024;
    });
    let addr = support::serve(axum::Router::new().route("/echo", post(echo))).await;
    let url = format!("http://{addr}/echo");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let http = support::client();
            let mut sent = Vec::new();
            let mut seq = 0u64;
            while start.elapsed() < RUN {
                seq += 1;
                let id = format!("c{client}-{seq}");
                // Distinct bodies of varying size (up to ~3 KiB, under the capture limit).
                let pad =
                    "abcdefghij".repeat(((client as u64 * 7919 + seq * 104_729) % 300) as usize);
                let body = json!({ "client": client, "seq": seq, "pad": pad }).to_string();
                let resp = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-client-id", &id)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                let echo_id = resp
                    .headers()
                    .get("x-echo-id")
                    .map(|v| v.to_str().unwrap().to_string());
                let text = resp.text().await.unwrap();
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(
                    echo_id.as_deref(),
                    Some(id.as_str()),
                    "response header of another request"
                );
                assert_eq!(v["id"], id.as_str(), "response of another request");
                assert_eq!(
                    v["echo"],
                    serde_json::from_str::<Value>(&body).unwrap(),
                    "response body of another request"
                );
                sent.push((id, body, text));
            }
            sent
        }));
    }
    let mut sent: HashMap<String, (String, String)> = HashMap::new();
    for t in tasks {
        for (id, body, resp) in t.await.unwrap() {
            sent.insert(id, (body, resp));
        }
    }
    let elapsed = start.elapsed();
    let n = sent.len();
    let (spans, dropped) = tokio::task::block_in_place(|| {
        let spans = agent.wait_spans(n);
        (
            spans,
            agent.guard.agent().stats().dropped.load(Ordering::Relaxed),
        )
    });
    let mut seen = HashSet::new();
    for s in &spans {
        let id = support::attr_str(s, "http.request.header.x-client-id").expect("request header");
        let (body, resp) = sent
            .get(&id)
            .unwrap_or_else(|| panic!("span for unknown request {id}"));
        assert!(seen.insert(id.clone()), "two spans for {id}");
        assert_eq!(
            support::attr_str(s, "http.request.body").as_ref(),
            Some(body),
            "{id}: request body of another request"
        );
        assert_eq!(
            support::attr_str(s, "http.response.body").as_ref(),
            Some(resp),
            "{id}: response body of another request"
        );
        assert_eq!(
            support::attr_str(s, "http.response.header.x-echo-id").as_ref(),
            Some(&id),
            "{id}: response header of another request"
        );
        let headers = s
            .attributes
            .iter()
            .filter(|kv| {
                kv.key
                    .as_str()
                    .starts_with("http.request.header.x-client-id")
            })
            .count();
        assert_eq!(headers, 1, "{id}: exactly one x-client-id");
    }
    say(&format!(
        "load: {CLIENTS} clients for {elapsed:?}: {n} requests ({:.0}/s), every response its own; {} spans, each with exactly its own \
         request's and response's headers and bodies; dropped {dropped}",
        n as f64 / elapsed.as_secs_f64(),
        spans.len()
    ));
    assert_eq!(spans.len(), n, "one span per request, none lost");
    assert_eq!(dropped, 0);
    assert!(n >= CLIENTS * 10, "only {n} requests");
}

// ---------------------------------------------------------------------------------------------
// 6. Security.

/// Credentials sent in requests; only `[REDACTED]` may leave the application.
const CREDENTIALS: [(&str, &str); 4] = [
    ("authorization", "Bearer AUTHZ-s3cret-4b1d"),
    ("proxy-authorization", "Basic PROXY-s3cret-77aa"),
    ("cookie", "session=COOKIE-s3cret-0c9e"),
    ("x-api-key", "APIKEY-s3cret-e512"),
];

fn send_credentials(server: &DemoServer) {
    let c = blocking_client();
    let mut req = c
        .post(format!("{}/json", server.base()))
        .header("content-type", "application/json")
        .body(r#"{"user":"ada"}"#);
    for (k, v) in CREDENTIALS {
        req = req.header(k, v);
    }
    assert_eq!(req.send().unwrap().status(), 200);
}

fn assert_redacted(what: &str, exported: &str) {
    assert!(
        exported.contains("POST /json"),
        "{what}: the span was exported:\n{exported}"
    );
    assert!(
        exported.contains("[REDACTED]"),
        "{what}: redacted values present:\n{exported}"
    );
    for (k, v) in CREDENTIALS {
        let secret = v.rsplit([' ', '=']).next().unwrap();
        assert!(
            !exported.contains(secret),
            "{what}: the {k} value left the application"
        );
    }
}

#[test]
fn default_redaction_holds_with_every_exporter() {
    let _one = one_at_a_time();
    let mut rows = Vec::new();
    for (reporter, kind) in [
        ("OTLP", CollectorKind::Grpc),
        ("OTLP_HTTP", CollectorKind::Http),
        ("ZIPKIN", CollectorKind::Http),
    ] {
        let recv = Collector::start(kind);
        let mut env = secret_env();
        env.push(("HT_REPORTING_TRACE_REPORTER_TYPE", reporter.into()));
        env.push(("HT_REPORTING_ENDPOINT", endpoint(reporter, recv.addr)));
        let mut server = DemoServer::start(&env);
        send_credentials(&server);
        let (status, _) = server.stop(Duration::from_secs(10));
        assert!(status.success());
        let raw: Vec<u8> = recv.got.raw.lock().unwrap().concat();
        let exported = String::from_utf8_lossy(&raw);
        assert_redacted(reporter, &exported);
        assert_clean_output(reporter, &format!("{}{}", server.stdout(), server.stderr()));
        // The token and the OTLP header reach the collector (that is their job), as headers.
        let headers = recv.got.headers.lock().unwrap().clone();
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == &format!("Bearer {TOKEN}")),
            "{reporter}: {headers:?}"
        );
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "x-team-key" && v == OTLP_HEADER_VALUE),
            "{reporter}: {headers:?}"
        );
        rows.push(format!(
            "{reporter}: {} bytes exported, credentials only as [REDACTED]",
            raw.len()
        ));
    }
    // LOGGING: the JSON lines on stdout.
    let mut server = DemoServer::start(&[("HT_REPORTING_TRACE_REPORTER_TYPE", "LOGGING".into())]);
    send_credentials(&server);
    let (status, _) = server.stop(Duration::from_secs(10));
    assert!(status.success());
    let stdout = server.stdout();
    assert_redacted("LOGGING", &stdout);
    let line = stdout.lines().find(|l| l.contains("POST /json")).unwrap();
    let span: Value = serde_json::from_str(line).unwrap();
    for (k, _) in CREDENTIALS {
        assert_eq!(
            span["attributes"][format!("http.request.header.{k}")],
            "[REDACTED]",
            "LOGGING: {k}"
        );
    }
    rows.push(format!(
        "LOGGING: {} bytes on stdout, credentials only as [REDACTED]",
        stdout.len()
    ));
    say(&format!(
        "default redaction, every exporter:\n  {}",
        rows.join("\n  ")
    ));
}

/// With every library's logs on (`RUST_LOG=trace`), the token and the export header values appear
/// nowhere in the output, whatever the collector does; nor in start-up errors about them.
#[test]
fn token_and_export_headers_never_printed() {
    let _one = one_at_a_time();
    let mut rows = Vec::new();
    for (what, reporter) in [
        (Misbehaviour::Down, "OTLP"),
        (Misbehaviour::Http500, "OTLP"),
        (Misbehaviour::Garbage, "OTLP"),
        (Misbehaviour::Down, "OTLP_HTTP"),
        (Misbehaviour::Http500, "OTLP_HTTP"),
        (Misbehaviour::Garbage, "OTLP_HTTP"),
        (Misbehaviour::Http500, "ZIPKIN"),
        (Misbehaviour::Garbage, "ZIPKIN"),
    ] {
        let bad = BadCollector::start(what);
        let mut env = secret_env();
        env.push(("HT_REPORTING_TRACE_REPORTER_TYPE", reporter.into()));
        env.push(("HT_REPORTING_ENDPOINT", endpoint(reporter, bad.addr)));
        env.push(("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "50".into()));
        env.push(("RUST_LOG", "trace".into()));
        let mut server = DemoServer::start(&env);
        send_credentials(&server);
        std::thread::sleep(Duration::from_millis(300));
        let (status, _) = server.stop(Duration::from_secs(10));
        assert!(status.success());
        let out = format!("{}{}", server.stdout(), server.stderr());
        assert_clean_output(&format!("RUST_LOG=trace {what:?}/{reporter}"), &out);
        rows.push(format!(
            "{what:?}/{reporter}: {} lines of trace-level output, no secret",
            out.lines().count()
        ));
    }
    // Start-up errors about the secrets themselves: a token and a header value that are not valid
    // header values, and a malformed OTEL_EXPORTER_OTLP_HEADERS.
    // (reporter, variable, value, refused at start-up with exit 78)
    for (reporter, var, value, refused) in [
        (
            "OTLP",
            "HT_REPORTING_TOKEN",
            "S3CRET-with\u{7f}control",
            true,
        ),
        (
            "OTLP_HTTP",
            "HT_REPORTING_TOKEN",
            "S3CRET-with\u{7f}control",
            true,
        ),
        (
            "ZIPKIN",
            "HT_REPORTING_TOKEN",
            "S3CRET-with\u{7f}control",
            true,
        ),
        (
            "OTLP",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-key=S3CRET-value\u{7f}x",
            true,
        ),
        (
            "OTLP_HTTP",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-key=S3CRET-value\u{7f}x",
            true,
        ),
        (
            "OTLP",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "S3CRET-no-equals-sign",
            true,
        ),
        (
            "OTLP_HTTP",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "bad key=S3CRET",
            true,
        ),
        // Not valid percent-encoding: taken literally (a valid header value), not refused.
        (
            "OTLP_HTTP",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-key=S3CRET%ZZ",
            false,
        ),
    ] {
        let mut server = DemoServer::spawn(
            &[
                ("HT_REPORTING_TRACE_REPORTER_TYPE", reporter.into()),
                (var, value.into()),
            ],
            |_| {},
        );
        let status = server.wait(Duration::from_secs(10));
        let out = format!("{}{}", server.stdout(), server.stderr());
        let first = out.lines().next().unwrap_or("").to_string();
        rows.push(format!(
            "{var}={value:?} ({reporter}): exit {:?}: {first}",
            status.and_then(|s| s.code())
        ));
        if status.is_none() {
            // It accepted the value and is serving: stop it, its output must still be clean.
            let _ = server.stop(Duration::from_secs(10));
        }
        if refused {
            assert_eq!(
                status.and_then(|s| s.code()),
                Some(78),
                "{var}={value:?} ({reporter}) must stop start-up: {out}"
            );
            assert_eq!(out.trim().lines().count(), 1, "one line: {out}");
        }
        assert_clean_output(
            &format!("{var}={value:?}"),
            &format!("{}{}", server.stdout(), server.stderr()),
        );
    }
    say(&format!("secrets in output:\n  {}", rows.join("\n  ")));
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn config_file_world_writable_warns_and_unreadable_fails_clearly() {
    use std::os::unix::fs::PermissionsExt;
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // Readable by the unprivileged user the unreadable case runs as.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("agent.yaml");
    std::fs::write(&file, "reporting:\n  trace_reporter_type: NONE\n").unwrap();

    // World-writable: a warning naming the file, and the server runs.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut server = DemoServer::start(&[("HT_CONFIG_FILE", file.display().to_string())]);
    let (status, _) = server.stop(Duration::from_secs(10));
    assert!(status.success());
    let warning = lines_with(&server.stderr(), "world-writable").join("\n");
    assert!(
        warning.contains("hypertrace: warning:") && warning.contains(&file.display().to_string()),
        "{}",
        server.stderr()
    );

    // Not world-writable: no warning.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut server = DemoServer::start(&[("HT_CONFIG_FILE", file.display().to_string())]);
    server.stop(Duration::from_secs(10));
    assert!(
        !server.stderr().contains("world-writable"),
        "{}",
        server.stderr()
    );

    // Unreadable (mode 000; root reads anything, so the server runs as `nobody` then): exit 78 and
    // one line naming the file and the OS error.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let as_nobody = running_as_root();
    let mut server = DemoServer::spawn(&[("HT_CONFIG_FILE", file.display().to_string())], |cmd| {
        if as_nobody {
            use std::os::unix::process::CommandExt;
            cmd.uid(65534).gid(65534);
        }
    });
    let status = server.wait(Duration::from_secs(10)).expect("exits");
    let unreadable = server.stderr();
    assert_eq!(status.code(), Some(78), "{unreadable}");
    assert!(
        unreadable.contains(&format!(
            "invalid configuration: config file {}: cannot read it:",
            file.display()
        )) && unreadable.contains("ermission denied"),
        "{unreadable}"
    );
    assert_eq!(
        unreadable.trim().lines().count(),
        1,
        "one line: {unreadable}"
    );

    // Missing: the same, with the OS's reason.
    let missing = dir.path().join("missing.yaml");
    let mut server =
        DemoServer::spawn(&[("HT_CONFIG_FILE", missing.display().to_string())], |_| {});
    let status = server.wait(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(78));
    assert!(
        server.stderr().contains("cannot read it")
            && server.stderr().contains(&missing.display().to_string()),
        "{}",
        server.stderr()
    );
    say(&format!(
        "config file: world-writable -> {warning}\n  unreadable (mode 000{}) -> exit 78: {}\n  missing -> exit 78: {}",
        if as_nobody { ", run as nobody" } else { "" },
        unreadable.trim(),
        server.stderr().trim()
    ));
}

/// The LOGGING reporter end to end: the quickstart-style run of the server binary prints spans on
/// stdout with the credentials redacted, and its logs stay on stderr.
#[test]
fn logging_reporter_output_is_redacted_json_lines() {
    let _one = one_at_a_time();
    let mut server = DemoServer::start(&[("HT_REPORTING_TRACE_REPORTER_TYPE", "LOGGING".into())]);
    send_credentials(&server);
    let c = blocking_client();
    c.get(format!("{}/users/7", server.base()))
        .header("cookie", "a=COOKIE2-s3cret")
        .send()
        .unwrap();
    let (status, _) = server.stop(Duration::from_secs(10));
    assert!(status.success());
    let stdout = server.stdout();
    for line in stdout.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["name"].is_string() && v["resource"]["service.name"] == "hypertrace-demo",
            "{line}"
        );
    }
    assert_eq!(stdout.lines().count(), 2);
    assert!(!stdout.contains("COOKIE2-s3cret") && !stdout.contains("server: listening"));
    let user = stdout
        .lines()
        .find(|l| l.contains("GET /users/{id}"))
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(user).unwrap()["attributes"]["http.request.header.cookie"],
        "[REDACTED]"
    );
    assert_redacted("LOGGING", &stdout);
}

// ---------------------------------------------------------------------------------------------
// 8. Faults of the export path: the application keeps serving, the failure is named on stderr,
//    and export resumes once the fault is fixed.

const ROTATION_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/rotation");
const TLS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

fn read(path: String) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn kind_of(reporter: &str) -> CollectorKind {
    if reporter == "OTLP" {
        CollectorKind::Grpc
    } else {
        CollectorKind::Http
    }
}

/// `n` GETs of `/users/{id}` from `first`; all must answer 200. Returns their latencies.
fn get_users(server: &DemoServer, first: u64, n: u64) -> Vec<Duration> {
    let c = blocking_client();
    (first..first + n)
        .map(|i| {
            let t = Instant::now();
            let r = c
                .get(format!("{}/users/{i}", server.base()))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200);
            t.elapsed()
        })
        .collect()
}

/// Waits for a failure line on the server's stderr and returns it.
fn failure_line(server: &DemoServer, what: &str) -> String {
    let mut line = String::new();
    let seen = wait_until(Duration::from_secs(10), || {
        let err = server.stderr();
        match lines_with(&err, "export of").first() {
            Some(l) => {
                line = l.to_string();
                true
            }
            None => false,
        }
    });
    assert!(seen, "{what}: no failure line\n{}", server.stderr());
    line
}

/// The fault, then the fix, against one reporter: 20 requests while broken, 20 after the fix; all
/// 40 spans must arrive (the first 20 by retry). Returns (the failure line, time to resume).
fn broken_then_fixed(
    what: &str,
    reporter: &str,
    url: &str,
    extra_env: &[(&'static str, String)],
    fix: impl FnOnce() -> Collector,
    wanted: &[&str],
) -> (String, Duration, Collector) {
    let mut env = vec![
        ("HT_REPORTING_TRACE_REPORTER_TYPE", reporter.to_string()),
        ("HT_REPORTING_ENDPOINT", url.to_string()),
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "100".into()),
        ("HT_RUSTAGENT_EXPORT_TIMEOUT_MS", "2000".into()),
    ];
    env.extend(extra_env.iter().cloned());
    let mut server = DemoServer::start(&env);
    let lat = get_users(&server, 1, 20);
    let line = failure_line(&server, &format!("{what}/{reporter}"));
    let lower = line.to_lowercase();
    assert!(
        line.contains(
            url.trim_end_matches("/v1/traces")
                .trim_end_matches("/api/v2/spans")
        ),
        "{what}/{reporter}: the line names the endpoint: {line}"
    );
    assert!(
        wanted.iter().any(|w| lower.contains(w)),
        "{what}/{reporter}: the line says why ({wanted:?}): {line}"
    );
    let collector = fix();
    let fixed = Instant::now();
    get_users(&server, 21, 20);
    let all: HashSet<u64> = (1..=40).collect();
    let resumed = wait_until(Duration::from_secs(15), || {
        collector.user_ids().contains(&1)
    });
    let resume_after = fixed.elapsed();
    let complete = wait_until(Duration::from_secs(15), || {
        all.is_subset(&collector.user_ids())
    });
    let (status, took) = server.stop(Duration::from_secs(15));
    let stderr = server.stderr();
    assert!(
        status.success(),
        "{what}/{reporter}: exit {status}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}/{reporter}: {stderr}");
    assert!(
        resumed && complete,
        "{what}/{reporter}: after the fix, {} of 40 spans arrived\n{stderr}",
        collector.user_ids().intersection(&all).count()
    );
    assert!(
        percentile_ms(&lat, 99.0) < 250.0,
        "{what}/{reporter}: latency while broken {lat:?}"
    );
    say(&format!(
        "  {what:<22} {reporter:<9}: 40/40 requests ok (p99 {:.2} ms while broken), 40/40 spans arrived, the first {resume_after:?} after the fix; exit {took:?} after SIGTERM\n    stderr: {line}",
        percentile_ms(&lat, 99.0)
    ));
    (line, resume_after, collector)
}

/// A collector with an expired certificate, then one from a CA the agent does not trust; each
/// replaced by a valid certificate on the same port.
#[test]
fn tls_expired_or_untrusted_certificate_then_fixed() {
    let _one = one_at_a_time();
    let valid = || {
        (
            read(format!("{ROTATION_DIR}/valid.pem")),
            read(format!("{ROTATION_DIR}/server.key")),
        )
    };
    let cases = [
        (
            "expired certificate",
            read(format!("{ROTATION_DIR}/expired.pem")),
            read(format!("{ROTATION_DIR}/server.key")),
            &["expired"][..],
        ),
        (
            "untrusted CA",
            read(format!("{TLS_DIR}/server.pem")),
            read(format!("{TLS_DIR}/server.key")),
            &["unknownissuer", "unknown issuer"][..],
        ),
    ];
    say("TLS faults (agent trusts tests/fixtures/tls/rotation/ca.pem):");
    for (what, cert, key, wanted) in &cases {
        for (reporter, path) in [
            ("OTLP", ""),
            ("OTLP_HTTP", "/v1/traces"),
            ("ZIPKIN", "/api/v2/spans"),
        ] {
            let mut collector = Collector::start_tls(kind_of(reporter), cert.clone(), key.clone());
            let url = format!("https://localhost:{}{path}", collector.addr.port());
            let ca = format!("{ROTATION_DIR}/ca.pem");
            broken_then_fixed(
                what,
                reporter,
                &url,
                &[("HT_REPORTING_CERT_FILE", ca)],
                move || {
                    collector.tls = Some(valid());
                    collector.restart();
                    collector
                },
                wanted,
            );
        }
    }
}

/// A collector that answers 200 and breaks the response off (HTTP/1.1: the connection closes
/// mid-body; HTTP/2: the stream is reset), then a working collector on the same port.
#[test]
fn collector_cuts_the_response_off_then_fixed() {
    let _one = one_at_a_time();
    say("collector cutting its response off:");
    for reporter in ["OTLP", "OTLP_HTTP"] {
        let bad = BadCollector::start(Misbehaviour::CutMidResponse);
        let addr = bad.addr;
        broken_then_fixed(
            "response cut off",
            reporter,
            &endpoint(reporter, addr),
            &[],
            move || {
                drop(bad);
                Collector::start_on(kind_of(reporter), addr)
            },
            &[
                "network error",
                "unavailable",
                "internal",
                "unknown",
                "cancelled",
                "error",
            ],
        );
    }
}

/// The endpoint's host does not resolve. The name has a 64-byte label, which the resolver refuses
/// without sending a query, so the test stays on this machine; the agent sees the same lookup
/// error as for a name that does not exist.
#[test]
fn collector_host_does_not_resolve() {
    let _one = one_at_a_time();
    let host = format!("{}.invalid", "a".repeat(64));
    let mut rows = Vec::new();
    for (reporter, url) in [
        ("OTLP", format!("http://{host}:4317")),
        ("OTLP_HTTP", format!("http://{host}:4318/v1/traces")),
        ("ZIPKIN", format!("http://{host}:9411/api/v2/spans")),
    ] {
        let mut server = DemoServer::start(&[
            ("HT_REPORTING_TRACE_REPORTER_TYPE", reporter.to_string()),
            ("HT_REPORTING_ENDPOINT", url.clone()),
            ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "100".into()),
        ]);
        let lat = get_users(&server, 1, 40);
        let line = failure_line(&server, reporter);
        let (status, took) = server.stop(Duration::from_secs(15));
        let stderr = server.stderr();
        assert!(
            status.success() && !stderr.contains("panicked"),
            "{reporter}: {stderr}"
        );
        assert!(
            line.contains(&host),
            "{reporter}: names the endpoint: {line}"
        );
        let lower = line.to_lowercase();
        assert!(
            ["dns", "lookup", "resolve", "name or service not known"]
                .iter()
                .any(|w| lower.contains(w)),
            "{reporter}: says the name did not resolve: {line}"
        );
        assert!(
            took < Duration::from_secs(8),
            "{reporter}: exit took {took:?}"
        );
        rows.push(format!(
            "  {reporter:<9}: 40/40 requests ok (p99 {:.2} ms), exit {took:?} after SIGTERM, {} failure lines\n    stderr: {line}",
            percentile_ms(&lat, 99.0),
            lines_with(&stderr, "export of").len()
        ));
    }
    say(&format!(
        "collector host does not resolve:\n{}",
        rows.join("\n")
    ));
}

/// A collector that takes 2 s per export while 2 clients keep the demo server busy: the queue
/// fills, the surplus is dropped and counted, requests never wait, and what was queued arrives.
#[test]
fn slow_collector_with_the_queue_filling() {
    let _one = one_at_a_time();
    let recv = Collector::start(CollectorKind::Http);
    *recv.got.delay.lock().unwrap() = Duration::from_secs(2);
    let mut server = DemoServer::start(&[
        ("HT_REPORTING_TRACE_REPORTER_TYPE", "OTLP_HTTP".into()),
        ("HT_REPORTING_ENDPOINT", endpoint("OTLP_HTTP", recv.addr)),
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "100".into()),
        ("HT_RUSTAGENT_MAX_QUEUE_SIZE", "200".into()),
        ("HT_RUSTAGENT_MAX_EXPORT_BATCH_SIZE", "50".into()),
    ]);
    let load = Load::start(&server.base(), 2, Duration::from_millis(2));
    std::thread::sleep(Duration::from_secs(5));
    let samples = load.stop();
    let (rss, _) = server.memory_kib();
    // What was queued when the load stopped drains at 50 spans per 2 s.
    std::thread::sleep(Duration::from_secs(9));
    let (status, took) = server.stop(Duration::from_secs(15));
    let stderr = server.stderr();
    assert!(status.success(), "{stderr}");
    let lat: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    let failed = samples.iter().filter(|s| s.result != Ok(200)).count();
    let arrived = recv.user_ids().len();
    let drop_line = lines_with(&stderr, "spans dropped so far")
        .last()
        .map(|l| l.to_string())
        .unwrap_or_default();
    let dropped: usize = drop_line
        .split("): ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    say(&format!(
        "slow collector (2 s per export), queue 200, batch 50, 2 clients for 5 s: {} requests, {failed} failed, p50 {:.2} ms, \
         p99 {:.2} ms; {arrived} spans arrived, {dropped} dropped and counted, {} left at the shutdown deadline; RSS {rss} KiB; \
         exit {took:?} after SIGTERM",
        samples.len(),
        percentile_ms(&lat, 50.0),
        percentile_ms(&lat, 99.0),
        samples.len().saturating_sub(arrived + dropped),
    ));
    assert_eq!(failed, 0);
    assert!(percentile_ms(&lat, 99.0) < 250.0 && percentile_ms(&lat, 50.0) < 50.0);
    assert!(
        dropped > 0 && arrived >= 200,
        "arrived {arrived}, dropped {dropped}\n{stderr}"
    );
    assert!(arrived + dropped <= samples.len());
    assert!(took < Duration::from_secs(8), "{took:?}");
}

/// An exporter that panics on every other export, inside this process behind a real server: the
/// application keeps answering, each panic is logged, its spans are counted, later exports work.
#[derive(Debug, Clone, Default)]
struct PanicsEveryOther {
    calls: Arc<AtomicUsize>,
    exported: Arc<AtomicUsize>,
}

impl SpanExporter for PanicsEveryOther {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.calls.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
            panic!("exporter bug on a batch of {}", batch.len());
        }
        self.exported.fetch_add(batch.len(), Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The guard serialises the scenarios across awaits on purpose (one scenario at a time).
#[allow(clippy::await_holding_lock)]
async fn exporter_panics_on_the_export_thread() {
    let _one = one_at_a_time();
    let serial = support::agent(|_| {});
    drop(serial.guard);
    let exporter = PanicsEveryOther::default();
    let mut config = Config::defaults("panics");
    config.rustagent.scheduled_delay = Duration::from_millis(20);
    config.rustagent.shutdown_timeout = Duration::from_secs(30);
    let guard = Agent::with_exporter(config, exporter.clone()).install();
    let app = axum::Router::new()
        .route("/users/{id}", axum::routing::get(|| async { "ok" }))
        .layer(hypertrace::layer());
    let base = format!("http://{}", support::serve(app).await);
    let http = support::client();
    let mut ok = 0;
    for round in 0..6 {
        for i in 0..20 {
            let r = http
                .get(format!("{base}/users/{}", round * 20 + i))
                .send()
                .await
                .unwrap();
            ok += usize::from(r.status() == 200);
        }
        tokio::task::block_in_place(|| guard.flush());
    }
    let stats = guard.agent().stats();
    let (panics, failed, exported) = (
        stats.exporter_panics.load(Ordering::Relaxed),
        stats.failed_spans.load(Ordering::Relaxed),
        stats.exported.load(Ordering::Relaxed),
    );
    say(&format!(
        "exporter panicking on every other export: {ok}/120 requests ok; {panics} panics caught, {failed} spans counted as \
         failed, {exported} exported by the exports in between"
    ));
    assert_eq!(ok, 120);
    assert!(panics >= 3, "{panics}");
    assert_eq!(failed + exported, 120);
    assert_eq!(exported as usize, exporter.exported.load(Ordering::Relaxed));
    assert!(exported > 0);
    tokio::task::block_in_place(|| drop(guard));
}

/// A collector that accepts an OTLP export (gRPC or HTTP) only in part says how many spans it
/// rejected; the agent logs that count (the spans it accepted are not sent again).
#[test]
fn partial_success_is_logged_with_the_rejected_count() {
    let _one = one_at_a_time();
    for reporter in ["OTLP", "OTLP_HTTP"] {
        let recv = Collector::start(kind_of(reporter));
        *recv.got.partial.lock().unwrap() = Some((3, "3 spans too old".into()));
        let mut server = DemoServer::start(&[
            ("HT_REPORTING_TRACE_REPORTER_TYPE", reporter.into()),
            ("HT_REPORTING_ENDPOINT", endpoint(reporter, recv.addr)),
            ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "50".into()),
        ]);
        get_users(&server, 1, 10);
        let logged = wait_until(Duration::from_secs(10), || {
            !lines_with(&server.stderr(), "accepted the export partially").is_empty()
        });
        let (status, _) = server.stop(Duration::from_secs(10));
        let stderr = server.stderr();
        assert!(status.success() && logged, "{reporter}: {stderr}");
        let lines = lines_with(&stderr, "accepted the export partially");
        let line = lines[0].to_string();
        assert!(
            line.contains("3 spans rejected") && line.contains("3 spans too old"),
            "{reporter}: {line}"
        );
        assert!(
            line.contains(&recv.addr.to_string()),
            "{reporter}: names the endpoint: {line}"
        );
        assert!(
            lines_with(&stderr, "export of").is_empty(),
            "{reporter}: not a failure: {stderr}"
        );
        // Not resent: each request's span arrived exactly once.
        let targets: Vec<String> = recv
            .got
            .spans()
            .iter()
            .filter_map(|(_, s)| support::receivers::pattr_str(&s.attributes, "http.target"))
            .filter(|t| t.starts_with("/users/"))
            .collect();
        assert_eq!(targets.len(), 10, "{reporter}: {targets:?}");
        assert_eq!(recv.user_ids(), (1..=10).collect(), "{reporter}");
        say(&format!(
            "partial success ({reporter}): {line} ({} lines for {} exports)",
            lines.len(),
            recv.got.otlp.lock().unwrap().len()
        ));
    }
}
