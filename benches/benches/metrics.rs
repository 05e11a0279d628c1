//! What the HTTP server metrics cost per request: the same app with metrics off and on, in one
//! process, one after the other. "On" is the PROMETHEUS reporter (its server on a port of its own,
//! a collection interval of one hour, so that no collection runs during the measurement): what a
//! request pays is the in-flight gauge's two atomic additions and one histogram record.
//!
//! Two requests:
//! - `GET /users/{id}` behind `hypertrace::layer()`, a plain-text handler: the smallest request the
//!   agent instruments, so that the metrics' share is the easiest to see;
//! - the `POST /echo` of `overhead.rs` (1 KiB JSON, 10 headers, everything captured).
//!
//!     cargo bench --bench metrics        # from benches/; BENCHMARKS.md, "Metrics"
//!
//! With `HT_BENCH_REQUESTS="<off|on> <n>"` the binary runs `n` `GET /users/{id}` requests of one
//! side instead and exits: `benches/callgrind-metrics.sh` counts their instructions, a figure that
//! does not move with the machine's load. With `HT_BENCH_AB=<pairs>` it times alternating blocks of
//! requests with metrics off and on, and prints the median difference (see [`ab`]).

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, BatchSize, Criterion};
use hypertrace::config::MetricReporterType;
use hypertrace::{Agent, Config, Guard};
use hypertrace_benches::{call, json_body, request, router, EncodingExporter};

fn agent(metrics: bool) -> Guard {
    agent_freeing(metrics, true)
}

/// `free_where_served`: `rustagent.free_spans_where_served`.
fn agent_freeing(metrics: bool, free_where_served: bool) -> Guard {
    let mut config = Config::defaults("bench");
    config.rustagent.free_spans_where_served = free_where_served;
    let agent = if metrics {
        config.reporting.metric_reporter_type = MetricReporterType::Prometheus;
        config.reporting.metric_endpoint = Some("127.0.0.1:0".into());
        config.rustagent.metric_export_interval = Duration::from_secs(3600);
        Agent::with_exporter(config, EncodingExporter::new())
            .with_metrics_from_config()
            .expect("metrics")
    } else {
        // The same span pipeline, without metrics.
        Agent::with_exporter(config, EncodingExporter::new())
    };
    agent.install()
}

fn users() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .layer(hypertrace::layer())
}

fn get_user() -> Request {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = http::Uri::from_static("/users/42");
    req
}

fn metrics(c: &mut Criterion) {
    let rt = hypertrace_benches::bench_runtime();
    let body = json_body();
    let mut group = c.benchmark_group("metrics");
    for (name, app, make) in [
        (
            "get-user",
            users(),
            Box::new(get_user) as Box<dyn Fn() -> Request>,
        ),
        (
            "post-echo",
            router("hypertrace"),
            Box::new(move || request(&body)) as Box<dyn Fn() -> Request>,
        ),
    ] {
        for on in [false, true] {
            let guard = agent(on);
            assert_eq!(guard.agent().meter_provider().is_some(), on);
            let (status, _) = rt.block_on(call(app.clone(), make()));
            assert_eq!(status, 200, "{name}");
            let label = format!("{name}-{}", if on { "on" } else { "off" });
            let sent = std::cell::Cell::new(1u64);
            group.bench_function(&label, |b| {
                b.iter_batched(
                    &make,
                    |req| {
                        sent.set(sent.get() + 1);
                        black_box(rt.block_on(call(app.clone(), req)))
                    },
                    BatchSize::SmallInput,
                )
            });
            if let Some(addr) = guard.agent().prometheus_address() {
                // Every request sent was recorded, once: the page counts them all.
                let page = scrape(addr);
                let counted = page
                    .lines()
                    .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>();
                eprintln!("  {label}: {counted} requests on the Prometheus page");
                assert_eq!(counted, sent.get() as f64, "{page}");
            }
            drop(guard);
        }
    }
    sdk_record(&mut group);
    group.finish();
}

/// The OpenTelemetry SDK's part: one `record` on a histogram with the four attributes of a
/// matched 200, unbound (the SDK hashes the attributes to find the series) and through a handle
/// bound to them (what `get-user-on` records per request), against `Instant::now()` twice, the
/// timer's other fixed cost.
fn sdk_record(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::KeyValue;
    use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

    #[derive(Debug)]
    struct Discard;
    impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for Discard {
        async fn export(
            &self,
            _: &opentelemetry_sdk::metrics::data::ResourceMetrics,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
            opentelemetry_sdk::metrics::Temporality::Cumulative
        }
    }
    let provider = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(Discard)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let h = provider
        .meter("bench")
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .with_boundaries(hypertrace::metrics::DURATION_BUCKETS.to_vec())
        .build();
    let route: std::sync::Arc<str> = "/users/{id}".into();
    group.bench_function("sdk-histogram-record", |b| {
        b.iter(|| {
            h.record(
                black_box(0.0042),
                &[
                    KeyValue::new("http.request.method", "GET"),
                    KeyValue::new("url.scheme", "http"),
                    KeyValue::new("http.route", route.clone()),
                    KeyValue::new("http.response.status_code", 200i64),
                ],
            )
        })
    });
    // The same record through a handle bound to those attributes once, as the agent records.
    let bound = h.bind(&[
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("url.scheme", "http"),
        KeyValue::new("http.route", route.clone()),
        KeyValue::new("http.response.status_code", 200i64),
    ]);
    group.bench_function("sdk-bound-histogram-record", |b| {
        b.iter(|| bound.record(black_box(0.0042)))
    });
    group.bench_function("instant-now-twice", |b| {
        b.iter(|| {
            let t = std::time::Instant::now();
            black_box(t.elapsed())
        })
    });
    let _ = provider.shutdown();
}

/// A GET over a plain TCP connection (the bench has no HTTP client of its own).
fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .sample_size(60)
        .noise_threshold(0.03)
}

/// `HT_BENCH_REQUESTS` mode: warm-up requests, then `n` more, on one side.
fn requests(spec: &str) {
    let (side, n) = spec
        .split_once(' ')
        .expect("HT_BENCH_REQUESTS=\"<off|on> <n>\"");
    let on = match side {
        "on" => true,
        "off" => false,
        other => panic!("HT_BENCH_REQUESTS: {other:?} is neither off nor on"),
    };
    let n: u64 = n.parse().expect("HT_BENCH_REQUESTS: a number of requests");
    let rt = hypertrace_benches::bench_runtime();
    // Exported spans freed by the export thread on both sides: under callgrind the threads run one
    // at a time, and which of them frees the spans would depend on when the export thread gets to
    // run (the metrics side has more threads), not on the metrics.
    let guard = agent_freeing(on, false);
    let app = users();
    // The same warm-up on both sides and for n = 0: routes, series and buffers exist before.
    for _ in 0..50 + n {
        let (status, _) = rt.block_on(call(app.clone(), get_user()));
        assert_eq!(status, 200);
    }
    if let Some(addr) = guard.agent().prometheus_address() {
        let page = scrape(addr);
        assert!(
            page.contains(&format!("http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_response_status_code=\"200\",http_route=\"/users/{{id}}\",url_scheme=\"http\"}} {}\n", 50 + n)),
            "{page}"
        );
    }
    drop(guard);
}

/// `HT_BENCH_AB` mode: `blocks` pairs of blocks of `GET /users/{id}` with metrics on and off
/// ([`hypertrace_benches::alternate`]), each block under a freshly installed agent, timed alone.
/// Prints the medians per request and that of the differences with a 95% confidence interval.
fn ab(blocks: usize) {
    const PER_BLOCK: u32 = 5000;
    let rt = hypertrace_benches::bench_runtime();
    let app = users();
    let block = |on: bool| -> f64 {
        let guard = agent(on);
        // The agent's threads (batch processor, metric reader, Prometheus server) settle first.
        std::thread::sleep(Duration::from_millis(20));
        for _ in 0..200 {
            rt.block_on(call(app.clone(), get_user()));
        }
        let t = std::time::Instant::now();
        for _ in 0..PER_BLOCK {
            black_box(rt.block_on(call(app.clone(), get_user())));
        }
        let ns = t.elapsed().as_nanos() as f64 / f64::from(PER_BLOCK);
        drop(guard);
        ns
    };
    let p = hypertrace_benches::alternate(blocks, block);
    println!(
        "GET /users/{{id}}, {blocks} pairs of {PER_BLOCK}: off {:.0} ns, on {:.0} ns per request (medians); \
         on - off: median {:.0} ns, 95% CI {:.0}..{:.0} ns",
        p.off, p.on, p.diff, p.lo, p.hi
    );
}

criterion_group! { name = benches; config = config(); targets = metrics }

fn main() {
    if let Ok(spec) = std::env::var("HT_BENCH_REQUESTS") {
        requests(&spec);
        return;
    }
    if let Ok(blocks) = std::env::var("HT_BENCH_AB") {
        ab(blocks
            .parse()
            .expect("HT_BENCH_AB: a number of block pairs"));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
