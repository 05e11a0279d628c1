//! What blocking filters cost per request, in one process: the `POST /echo` of `overhead.rs`
//! (1 KiB JSON body, 10 headers, everything captured) behind `hypertrace::layer()` with
//!
//! - no filter (the baseline),
//! - one header-only filter (a denied-address check on `x-forwarded-for`): it runs in the layer's
//!   `call`, nothing is buffered;
//! - one body filter (a substring scan of the JSON body for injection patterns): the layer reads
//!   the 1 KiB body ahead of the handler (one frame here), hands it to the filter, then replays it.
//!
//! - one body filter that does not look at the body: the read-ahead alone, without the scan.
//!
//! Every filter lets the request through, so the handler and the capture run as in the baseline.
//!
//!     cargo bench --bench filters        # from benches/; BENCHMARKS.md, "Filters"
//!
//! On a loaded machine wall-clock time is noisy; instructions are not. `FILTERS_COUNT="<variant>
//! <n>"` makes the binary serve 50 warm-up requests and then `n` requests of one variant and
//! exit, for callgrind: per request = (Ir(n) − Ir(0)) / n on the main thread (BENCHMARKS.md says
//! how it was run).

use std::hint::black_box;
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use criterion::{criterion_group, BatchSize, Criterion};
use hypertrace::{Agent, Config, Decision, Filter, FilterRequest};
use hypertrace_benches::{call, json_body, request, EncodingExporter};
use serde_json::Value;

/// A denied-address rule on the forwarded client address.
struct DeniedAddress;

impl Filter for DeniedAddress {
    fn name(&self) -> &str {
        "denied-address"
    }
    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        let denied = req
            .headers()
            .get("x-forwarded-for")
            .is_some_and(|v| v.as_bytes() == b"198.51.100.9");
        if denied {
            Decision::block()
        } else {
            Decision::Continue
        }
    }
}

/// An injection rule on the body.
struct Injection;

impl Filter for Injection {
    fn name(&self) -> &str {
        "injection"
    }
    fn wants_body(&self) -> bool {
        true
    }
    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        let body = req.body().unwrap_or_default();
        let hit = [&b"' or 1=1"[..], b"; drop table", b"union select"]
            .iter()
            .any(|p| body.windows(p.len()).any(|w| w.eq_ignore_ascii_case(p)));
        if hit {
            Decision::block()
        } else {
            Decision::Continue
        }
    }
}

/// A body filter that reads nothing of the body: what the read-ahead itself costs.
struct BodyNoop;

impl Filter for BodyNoop {
    fn name(&self) -> &str {
        "body-noop"
    }
    fn wants_body(&self) -> bool {
        true
    }
    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        black_box(req.body());
        Decision::Continue
    }
}

async fn echo(Json(v): Json<Value>) -> Json<Value> {
    Json(v)
}

fn app(layer: hypertrace::HypertraceLayer) -> Router {
    Router::new().route("/echo", post(echo)).layer(layer)
}

/// The variants: the layer with no filter, one header-only filter, one body filter.
fn variants() -> [(&'static str, hypertrace::HypertraceLayer); 4] {
    [
        ("a-none", hypertrace::layer()),
        ("b-header", hypertrace::layer().filter(DeniedAddress)),
        ("c-body", hypertrace::layer().filter(Injection)),
        ("d-body-noop", hypertrace::layer().filter(BodyNoop)),
    ]
}

/// `FILTERS_COUNT="<variant> <n>"`: serves 50 + `n` requests of that variant, flushes, exits.
fn count(spec: &str) {
    let (variant, n) = spec
        .split_once(' ')
        .expect("FILTERS_COUNT=\"<variant> <n>\"");
    let n: usize = n.parse().expect("a number of requests");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = json_body();
    let guard = Agent::with_exporter(Config::defaults("bench"), EncodingExporter::new()).install();
    let (_, layer) = variants()
        .into_iter()
        .find(|(name, _)| *name == variant)
        .expect("a-none, b-header, c-body or d-body-noop");
    let app = app(layer);
    for _ in 0..50 + n {
        let (status, _) = rt.block_on(call(app.clone(), request(&body)));
        assert_eq!(status, 200);
    }
    guard.flush();
}

fn filters(c: &mut Criterion) {
    let rt = hypertrace_benches::bench_runtime();
    let body = json_body();
    let _guard = Agent::with_exporter(Config::defaults("bench"), EncodingExporter::new()).install();
    let mut group = c.benchmark_group("filters");
    for (name, layer) in variants() {
        let app = app(layer);
        let (status, len) = rt.block_on(call(app.clone(), request(&body)));
        assert_eq!((status, len), (200, body.len()), "{name}");
        group.bench_function(name, |b| {
            b.iter_batched(
                || request(&body),
                |req| black_box(rt.block_on(call(app.clone(), req))),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .sample_size(60)
        .noise_threshold(0.03)
}

criterion_group! { name = benches; config = config(); targets = filters }

fn main() {
    if let Ok(spec) = std::env::var("FILTERS_COUNT") {
        return count(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
