//! Blocking filters over real HTTP, through `hypertrace::layer()` and through
//! `#[hypertrace::handler]` alone: header and body filters, order, the span of a blocked request,
//! failures (panic, over budget) under both failure modes, and a 64 MiB streaming upload through
//! a body filter that reaches the handler byte-identical with bounded memory.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt as _;
use hypertrace::config::FilterFailureMode;
use hypertrace::{Block, Decision, Filter, FilterRequest};
use opentelemetry::trace::Status;
use support::*;

/// Blocks requests whose `x-attack` header is present, with a custom answer.
struct HeaderRule;

impl Filter for HeaderRule {
    fn name(&self) -> &str {
        "header-rule"
    }
    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        assert!(
            req.body().is_none(),
            "a header filter is not given the body"
        );
        if req.headers().contains_key("x-attack") {
            Block::new()
                .with_status(StatusCode::TOO_MANY_REQUESTS)
                .with_header(
                    HeaderName::from_static("retry-after"),
                    HeaderValue::from_static("7"),
                )
                .with_body("slow down")
                .into()
        } else {
            Decision::Continue
        }
    }
}

/// Blocks bodies that look like SQL injection.
struct SqlInjection;

impl Filter for SqlInjection {
    fn name(&self) -> &str {
        "sql-injection"
    }
    fn wants_body(&self) -> bool {
        true
    }
    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        let body = req.body().expect("a body filter is given the body");
        let text = String::from_utf8_lossy(body).to_ascii_lowercase();
        if text.contains("' or 1=1") || text.contains("; drop table") {
            Decision::block()
        } else {
            Decision::Continue
        }
    }
}

/// Records the body length and truncation it saw; never blocks.
#[derive(Clone, Default)]
struct Seen(Arc<std::sync::Mutex<Vec<(usize, bool)>>>);

impl Filter for Seen {
    fn name(&self) -> &str {
        "seen"
    }
    fn wants_body(&self) -> bool {
        true
    }
    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        let body = req.body().unwrap();
        self.0
            .lock()
            .unwrap()
            .push((body.len(), req.body_truncated()));
        Decision::Continue
    }
}

/// Blocks one peer address, and records the route and URI it saw.
struct DenyPeer(IpAddr);

impl Filter for DenyPeer {
    fn name(&self) -> &str {
        "deny-peer"
    }
    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        match req.peer() {
            Some(p) if p.ip() == self.0 => Block::new()
                .with_span_error(false)
                .with_body(format!("denied {} on {:?}", req.uri(), req.route()))
                .into(),
            _ => Decision::Continue,
        }
    }
}

/// Blocks everything, with this status: to see which filter wins.
struct Always(&'static str, StatusCode);

impl Filter for Always {
    fn name(&self) -> &str {
        self.0
    }
    fn evaluate(&self, _: &FilterRequest<'_>) -> Decision {
        Block::new().with_status(self.1).into()
    }
}

struct Panics;

impl Filter for Panics {
    fn name(&self) -> &str {
        "panics"
    }
    fn evaluate(&self, _: &FilterRequest<'_>) -> Decision {
        panic!("bug in a filter")
    }
}

struct Slow;

impl Filter for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn evaluate(&self, _: &FilterRequest<'_>) -> Decision {
        std::thread::sleep(Duration::from_millis(30));
        Decision::Continue
    }
}

static HANDLER_RUNS: AtomicUsize = AtomicUsize::new(0);

async fn echo(body: Bytes) -> Bytes {
    HANDLER_RUNS.fetch_add(1, Ordering::SeqCst);
    body
}

fn layer_app(layer: hypertrace::HypertraceLayer) -> Router {
    Router::new()
        .route("/echo", post(echo))
        .route("/items/{id}", get(|| async { "item" }))
        .layer(layer)
}

fn runs() -> usize {
    HANDLER_RUNS.load(Ordering::SeqCst)
}

fn int(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<i64> {
    attr(span, key).map(|v| match v {
        opentelemetry::Value::I64(i) => i,
        other => panic!("{key} = {other:?}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_filter_blocks_with_its_answer_and_the_span_says_so() {
    let t = agent(|_| {});
    let addr = serve(layer_app(hypertrace::layer().filter(HeaderRule))).await;
    let before = runs();
    let r = client()
        .post(format!("http://{addr}/echo"))
        .header("x-attack", "1")
        .header("content-type", "application/json")
        .body(r#"{"a":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(r.text().await.unwrap(), "slow down");
    assert_eq!(runs(), before, "the handler did not run");

    let span = t.one_span();
    assert_eq!(span.name, "POST /echo");
    assert_eq!(int(&span, "http.status_code"), Some(429));
    assert_eq!(
        attr_str(&span, "hypertrace.filter.decision").as_deref(),
        Some("block")
    );
    assert_eq!(
        attr_str(&span, "hypertrace.filter.name").as_deref(),
        Some("header-rule")
    );
    assert_eq!(
        span.status,
        Status::error("blocked by filter \"header-rule\"")
    );
    // Captured as for any request: the request headers, and the response header.
    assert_eq!(
        attr_str(&span, "http.request.header.x-attack").as_deref(),
        Some("1")
    );
    assert_eq!(
        attr_str(&span, "http.response.header.retry-after").as_deref(),
        Some("7")
    );
    assert!(!has(&span, "hypertrace.filter.failure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_filter_blocks_an_injection_and_passes_the_rest_byte_identical() {
    let t = agent(|_| {});
    let addr = serve(layer_app(
        hypertrace::layer().filter(HeaderRule).filter(SqlInjection),
    ))
    .await;
    let before = runs();
    let bad = r#"{"user":"admin' OR 1=1 --"}"#;
    let r = client()
        .post(format!("http://{addr}/echo"))
        .header("content-type", "application/json")
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(runs(), before, "the handler did not run");

    let good: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
    let r = client()
        .post(format!("http://{addr}/echo"))
        .header("content-type", "application/octet-stream")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), good, "the handler got every byte");
    assert_eq!(runs(), before + 1);

    let spans = t.wait_spans(2);
    let blocked = spans
        .iter()
        .find(|s| int(s, "http.status_code") == Some(403))
        .unwrap();
    assert_eq!(
        attr_str(blocked, "hypertrace.filter.name").as_deref(),
        Some("sql-injection")
    );
    // The request body of a blocked request is still captured.
    assert_eq!(attr_str(blocked, "http.request.body").as_deref(), Some(bad));
    let passed = spans
        .iter()
        .find(|s| int(s, "http.status_code") == Some(200))
        .unwrap();
    assert_eq!(
        attr_str(passed, "hypertrace.filter.decision").as_deref(),
        Some("continue")
    );
    assert_eq!(passed.status, Status::Unset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prefix_is_bounded_by_body_max_processing_size_bytes() {
    let seen = Seen::default();
    let _t = agent(|c| c.data_capture.body_max_processing_size_bytes = 1000);
    let addr = serve(layer_app(hypertrace::layer().filter(seen.clone()))).await;
    for len in [10usize, 1000, 5000] {
        let body = vec![b'x'; len];
        let r = client()
            .post(format!("http://{addr}/echo"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap(), body);
    }
    // A GET's body has ended before it is read: the filter gets it, empty, at once.
    client()
        .get(format!("http://{addr}/items/1"))
        .send()
        .await
        .unwrap();
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen, [(10, false), (1000, false), (1000, true), (0, false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_filters_run_first_then_the_layers_in_order_first_block_wins() {
    let t = agent_with(
        |_| {},
        |a| {
            a.filter(HeaderRule)
                .filter(Always("global", StatusCode::UNAUTHORIZED))
        },
    );
    let addr = serve(layer_app(
        hypertrace::layer().filter(Always("local", StatusCode::IM_A_TEAPOT)),
    ))
    .await;
    let r = client()
        .get(format!("http://{addr}/items/3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let span = t.one_span();
    assert_eq!(
        attr_str(&span, "hypertrace.filter.name").as_deref(),
        Some("global")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_address_is_blocked_and_the_filter_may_leave_the_span_unset() {
    let t = agent(|_| {});
    let app = Router::new().nest(
        "/api",
        layer_app(hypertrace::layer().filter(DenyPeer(IpAddr::V4(Ipv4Addr::LOCALHOST)))),
    );
    let addr = serve(app).await;
    let r = client()
        .get(format!("http://{addr}/api/items/9?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.text().await.unwrap(),
        "denied /api/items/9?x=1 on Some(\"/api/items/{id}\")"
    );
    let span = t.one_span();
    assert_eq!(span.status, Status::Unset);
    assert_eq!(
        attr_str(&span, "hypertrace.filter.name").as_deref(),
        Some("deny-peer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_or_slow_filter_fails_open_by_default() {
    let t = agent(|c| c.rustagent.filter_budget = Duration::from_millis(5));
    let addr = serve(layer_app(hypertrace::layer().filter(Panics))).await;
    let r = client()
        .post(format!("http://{addr}/echo"))
        .body("fine")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "fine");
    let span = t.one_span();
    assert_eq!(
        attr_str(&span, "hypertrace.filter.decision").as_deref(),
        Some("continue")
    );
    assert_eq!(
        attr_str(&span, "hypertrace.filter.failure").as_deref(),
        Some("panic")
    );
    assert_eq!(
        attr_str(&span, "hypertrace.filter.failure.filter").as_deref(),
        Some("panics")
    );
    assert_eq!(
        attr_str(&span, "hypertrace.filter.failure.message").as_deref(),
        Some("bug in a filter")
    );
    assert_eq!(
        attr_str(&span, "hypertrace.filter.failure_mode").as_deref(),
        Some("open")
    );
    drop(t);

    let t = agent(|c| c.rustagent.filter_budget = Duration::from_millis(5));
    let addr = serve(layer_app(hypertrace::layer().filter(Slow))).await;
    let r = client()
        .get(format!("http://{addr}/items/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let span = t.one_span();
    assert_eq!(
        attr_str(&span, "hypertrace.filter.failure").as_deref(),
        Some("timeout")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_blocks_a_failed_filter_with_403() {
    let t = agent(|c| {
        c.rustagent.filter_failure_mode = FilterFailureMode::Closed;
        c.rustagent.filter_budget = Duration::from_millis(5);
    });
    let before = runs();
    let addr = serve(layer_app(hypertrace::layer().filter(Slow).filter(Panics))).await;
    let r = client()
        .post(format!("http://{addr}/echo"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(runs(), before);
    let span = t.one_span();
    assert_eq!(
        attr_str(&span, "hypertrace.filter.decision").as_deref(),
        Some("block")
    );
    assert_eq!(
        attr_str(&span, "hypertrace.filter.name").as_deref(),
        Some("slow")
    );
    assert_eq!(
        attr_str(&span, "hypertrace.filter.failure").as_deref(),
        Some("timeout")
    );
    assert_eq!(
        attr_str(&span, "hypertrace.filter.failure_mode").as_deref(),
        Some("closed")
    );
    assert!(matches!(span.status, Status::Error { .. }));
}

// Through `#[hypertrace::handler]` alone: the agent's filters, the same behaviour.

#[hypertrace::handler]
async fn annotated(body: Bytes) -> Bytes {
    HANDLER_RUNS.fetch_add(1, Ordering::SeqCst);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_handler_macro_alone_header_and_body_filters_block() {
    let t = agent_with(|_| {}, |a| a.filter(HeaderRule).filter(SqlInjection));
    let addr = serve(Router::new().route("/a", post(annotated))).await;
    let before = runs();
    let r = client()
        .post(format!("http://{addr}/a"))
        .header("x-attack", "1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.text().await.unwrap(), "slow down");
    let r = client()
        .post(format!("http://{addr}/a"))
        .header("content-type", "application/json")
        .body(r#"{"q":"1; DROP TABLE users"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(runs(), before, "the handler ran for neither");
    let body = vec![7u8; 300_000];
    let r = client()
        .post(format!("http://{addr}/a"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_eq!(runs(), before + 1);

    let spans = t.wait_spans(3);
    let mut names: Vec<_> = spans
        .iter()
        .map(|s| {
            (
                int(s, "http.status_code").unwrap(),
                attr_str(s, "hypertrace.filter.decision").unwrap(),
                attr_str(s, "hypertrace.filter.name"),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            (200, "continue".into(), None),
            (403, "block".into(), Some("sql-injection".into())),
            (429, "block".into(), Some("header-rule".into())),
        ]
    );
    assert!(spans.iter().all(|s| s.name == "POST /a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_the_layer_an_annotated_handler_does_not_run_the_filters_twice() {
    let seen = Seen::default();
    let seen2 = seen.clone();
    let t = agent_with(|_| {}, move |a| a.filter(seen2));
    let app = Router::new()
        .route("/a", post(annotated))
        .layer(hypertrace::layer());
    let addr = serve(app).await;
    let r = client()
        .post(format!("http://{addr}/a"))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "abc");
    t.one_span();
    assert_eq!(seen.0.lock().unwrap().clone(), [(3, false)]);
}

/// FNV-1a, 64 bits: the same hash on both sides of the upload.
fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The peak resident set of this process so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

async fn hash_upload(body: Body) -> String {
    let mut stream = body.into_data_stream();
    let (mut h, mut n, mut chunks) = (FNV_START, 0usize, 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        h = fnv(h, &chunk);
        n += chunk.len();
        chunks += 1;
    }
    format!("{n} {h:x} {}", chunks > 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_streaming_upload_through_a_body_filter_arrives_byte_identical_in_bounded_memory()
{
    const TOTAL: usize = 64 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let seen = Seen::default();
    let t = agent(|c| c.data_capture.http_body.request = false);
    let app = Router::new()
        .route("/upload", post(hash_upload))
        .layer(hypertrace::layer().filter(seen.clone()));
    let addr = serve(app).await;
    let before = peak_rss();

    // Pseudo-random bytes (xorshift), made as they are sent: the client holds one chunk at a
    // time. The expected hash is computed by the same generator first.
    fn next_chunk(state: &mut u64) -> Vec<u8> {
        let mut c = Vec::with_capacity(CHUNK);
        while c.len() < CHUNK {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            c.extend_from_slice(&state.to_le_bytes());
        }
        c
    }
    const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut expected = FNV_START;
    let mut state = SEED;
    for _ in 0..TOTAL / CHUNK {
        expected = fnv(expected, &next_chunk(&mut state));
    }
    let body = futures_util::stream::unfold((SEED, 0usize), |(mut state, i)| async move {
        if i == TOTAL / CHUNK {
            return None;
        }
        let c = next_chunk(&mut state);
        Some((Ok::<_, std::io::Error>(Bytes::from(c)), (state, i + 1)))
    });
    let r = client()
        .post(format!("http://{addr}/upload"))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        format!("{TOTAL} {expected:x} true")
    );
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 24 * 1024 * 1024,
        "the peak resident set grew by {grown} bytes for a {TOTAL}-byte upload"
    );
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [(1024 * 1024, true)],
        "the filter saw the 1 MiB prefix"
    );
    t.one_span();
}

/// Sampling and `tracestate` decide what the span records, never whether a request is filtered:
/// a sampled-out request and one whose caller sent `hypertrace=cap:0` are blocked all the same,
/// through the layer and through the handler macro alone, and the filter still sees the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_out_and_cap0_requests_are_filtered_all_the_same() {
    let injection = r#"{"q":"' OR 1=1 --"}"#;
    let send_injection = |url: String, headers: &[(&'static str, &'static str)]| {
        let mut r = client()
            .post(url)
            .header("content-type", "application/json")
            .body(injection);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send()
    };
    let cap0 = [
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "hypertrace=cap:0"),
    ];
    for sampled_out in [true, false] {
        let t = agent_with(
            |c| {
                if sampled_out {
                    c.rustagent.traces_sampler = hypertrace::config::TracesSampler::AlwaysOff;
                }
            },
            |a| a.filter(SqlInjection),
        );
        let app = Router::new()
            .route("/a", post(annotated))
            .merge(layer_app(hypertrace::layer().filter(HeaderRule)));
        let addr = serve(app).await;
        let headers: &[(&str, &str)] = if sampled_out { &[] } else { &cap0 };
        let before = runs();
        for path in ["a", "echo"] {
            let r = send_injection(format!("http://{addr}/{path}"), headers)
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "/{path}, sampled out: {sampled_out}");
        }
        let r = client()
            .post(format!("http://{addr}/echo"))
            .header("x-attack", "1")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429, "sampled out: {sampled_out}");
        assert_eq!(
            runs(),
            before,
            "no handler ran (sampled out: {sampled_out})"
        );
        if sampled_out {
            std::thread::sleep(Duration::from_millis(100));
            t.guard.flush();
            assert!(t.spans.0.lock().unwrap().is_empty(), "nothing is exported");
        } else {
            // cap:0 kept the body off the spans, not away from the filter.
            for span in t.wait_spans(3) {
                assert!(!has(&span, "http.request.body"), "{}", span.name);
            }
        }
    }
}
