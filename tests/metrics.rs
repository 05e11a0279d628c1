//! Metrics over real protocols: the Prometheus page scraped over HTTP (and checked by `promtool`,
//! installed by `scripts/install-promtool.sh`), OTLP/gRPC and OTLP/HTTP exports decoded with the
//! official proto types by receivers in this test, OTLP through the rotel collector
//! (`scripts/install-collector.sh`), and the LOGGING reporter's lines on the demo server's stdout
//! (`cargo build --example server`). Every metric setting is set through the config's environment
//! source and shown to take effect.
//!
//! With `CI=true` a missing promtool or collector is a failure; elsewhere those tests say how to
//! install it and return.

mod support;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::Router;
use hypertrace::{Agent, ConfigBuilder, Guard};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, HistogramDataPoint};
use prost::Message as _;
use support::receivers::{
    free_port, pattr_str, pump_lines, say, tokio_stream_from, wait_listening, wait_until,
    DemoServer, GrpcReceiver,
};

const SEMCONV_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

// ---------------------------------------------------------------------------------------------
// Set-up: one agent per test (it is process-wide), a real server, a blocking client.

static SERIAL: Mutex<()> = Mutex::new(());

struct Installed {
    guard: Option<Guard>,
    _serial: MutexGuard<'static, ()>,
}

impl Installed {
    fn agent(&self) -> &Agent {
        self.guard.as_ref().unwrap().agent()
    }
    fn prometheus(&self) -> SocketAddr {
        self.agent()
            .prometheus_address()
            .expect("the agent serves Prometheus metrics")
    }
    /// Drops the guard: the last export happens now.
    fn shut_down(&mut self) {
        self.guard.take();
    }
}

/// An agent from the config's sources with these variables (spans go nowhere unless they say).
fn install(env: &[(&str, &str)]) -> Installed {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut vars: Vec<(String, String)> =
        vec![("HT_REPORTING_TRACE_REPORTER_TYPE".into(), "NONE".into())];
    vars.retain(|(k, _)| !env.iter().any(|(e, _)| e == k));
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let (config, warnings) = ConfigBuilder::new("metrics-test")
        .env_vars(vars)
        .load()
        .expect("config");
    assert!(warnings.is_empty(), "{warnings:?}");
    let guard = Agent::from_config(config).expect("agent").install();
    Installed {
        guard: Some(guard),
        _serial: serial,
    }
}

fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route(
            "/fail",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                "slow"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("handler panicked on purpose");
                }
                "never"
            }),
        )
        .route(
            "/status/{code}",
            axum::routing::any(
                |axum::extract::Path(code): axum::extract::Path<u16>| async move {
                    axum::http::StatusCode::from_u16(code).unwrap()
                },
            ),
        )
        .route("/metrics", get(hypertrace::metrics::prometheus_handler))
        .layer(hypertrace::layer().exclude("/metrics"))
}

/// A runtime serving `app` (its workers keep serving while the test thread blocks).
fn serve(app: Router) -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = rt.block_on(support::serve(app));
    (rt, format!("http://{addr}"))
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn get_status(c: &reqwest::blocking::Client, url: &str) -> u16 {
    match c.get(url).send() {
        Ok(r) => {
            let s = r.status().as_u16();
            let _ = r.bytes();
            s
        }
        Err(_) => 0,
    }
}

fn scrape(url: &str) -> (String, String) {
    let r = client().get(url).send().expect("scrape");
    assert_eq!(r.status().as_u16(), 200, "{url}");
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (ct, r.text().unwrap())
}

/// `name{labels} value` lines of a page.
fn samples(page: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect(l);
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut map = BTreeMap::new();
            // Test values hold no `,` or `"`: a split is enough here.
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').expect(pair);
                map.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect(v),
            };
            (name.to_owned(), map, value)
        })
        .collect()
}

/// The value of the series `name` whose labels include all of `want`.
fn value(page: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples(page)
        .into_iter()
        .find(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
}

/// `http.server.active_requests` for GET on the page.
fn gets_in_flight(page: &str) -> Option<f64> {
    value(
        page,
        "http_server_active_requests",
        &[("http_request_method", "GET")],
    )
}

fn series(page: &str, name: &str) -> Vec<BTreeMap<String, String>> {
    samples(page)
        .into_iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, l, _)| l)
        .collect()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

// ---------------------------------------------------------------------------------------------
// PROMETHEUS

const COUNT: &str = "http_server_request_duration_seconds_count";

#[test]
fn prometheus_page_has_every_instrument_with_bounded_attributes() {
    let agent = install(&[
        (
            "HT_REPORTING_METRIC_REPORTER_TYPE",
            "METRIC_REPORTER_TYPE_PROMETHEUS",
        ),
        ("HT_REPORTING_METRIC_ENDPOINT", "http://127.0.0.1:0/prom"),
    ]);
    let (_rt, base) = serve(app());
    let c = client();
    for id in [1, 2, 3, 1] {
        assert_eq!(get_status(&c, &format!("{base}/users/{id}")), 200);
    }
    assert_eq!(get_status(&c, &format!("{base}/fail")), 500);
    assert_eq!(get_status(&c, &format!("{base}/slow")), 200);
    assert_eq!(get_status(&c, &format!("{base}/no/such/path")), 404);
    assert_eq!(
        get_status(&c, &format!("{base}/panic")),
        0,
        "a panic closes the connection"
    );

    let addr = agent.prometheus();
    let (ct, page) = scrape(&format!("http://{addr}/prom"));
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    let ok = [
        ("http_request_method", "GET"),
        ("url_scheme", "http"),
        ("http_route", "/users/{id}"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(value(&page, COUNT, &ok), Some(4.0), "{page}");
    let failed = [("http_route", "/fail"), ("error_type", "500")];
    assert_eq!(value(&page, COUNT, &failed), Some(1.0), "{page}");
    // Unmatched: no route label at all (never the raw path).
    let unmatched: Vec<_> = series(&page, COUNT)
        .into_iter()
        .filter(|l| l.get("http_response_status_code").map(String::as_str) == Some("404"))
        .collect();
    assert_eq!(unmatched.len(), 1, "{page}");
    assert!(!unmatched[0].contains_key("http_route"), "{unmatched:?}");
    assert!(
        !page.contains("/no/such/path"),
        "raw path on the page:\n{page}"
    );
    let panicked = [("http_route", "/panic"), ("error_type", "panic")];
    assert_eq!(value(&page, COUNT, &panicked), Some(1.0), "{page}");
    assert!(
        !series(&page, COUNT)
            .iter()
            .any(
                |l| l.get("http_route").map(String::as_str) == Some("/panic")
                    && l.contains_key("http_response_status_code")
            ),
        "a panic has no status code"
    );

    // The conventions' buckets, in seconds; the slow request lands above 25 ms.
    let slow: Vec<(f64, f64)> = samples(&page)
        .into_iter()
        .filter(|(n, l, _)| {
            n == "http_server_request_duration_seconds_bucket"
                && l.get("http_route").map(String::as_str) == Some("/slow")
        })
        .map(|(_, l, v)| {
            let le = l["le"].as_str();
            (
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                },
                v,
            )
        })
        .collect();
    let bounds: Vec<f64> = slow.iter().map(|(b, _)| *b).collect();
    let mut want = SEMCONV_BUCKETS.to_vec();
    want.push(f64::INFINITY);
    assert_eq!(bounds, want);
    assert_eq!(slow[2], (0.025, 0.0), "30 ms is not under 25 ms: {slow:?}");
    assert_eq!(slow.last().unwrap().1, 1.0);
    let sum = value(
        &page,
        "http_server_request_duration_seconds_sum",
        &[("http_route", "/slow")],
    );
    assert!(sum.is_some_and(|s| (0.03..5.0).contains(&s)), "{sum:?}");

    // Nothing in flight now; the panicked and answered requests were all counted back.
    assert_eq!(gets_in_flight(&page), Some(0.0), "{page}");
    // The export counters, the process, the resource.
    assert!(
        value(&page, "hypertrace_agent_spans_exported_total", &[]).is_some(),
        "{page}"
    );
    assert!(
        value(&page, "hypertrace_agent_spans_dropped_total", &[]).is_some(),
        "{page}"
    );
    let cpu = value(
        &page,
        "process_cpu_time_seconds_total",
        &[("cpu_mode", "user")],
    );
    assert!(cpu.is_some_and(|c| c > 0.0), "{page}");
    let rss = value(&page, "process_memory_usage_bytes", &[]);
    assert!(rss.is_some_and(|r| r > 1e6), "{page}");
    assert_eq!(
        value(&page, "target_info", &[("service_name", "metrics-test")]),
        Some(1.0),
        "{page}"
    );
    promtool_check(
        &page,
        "prometheus_page_has_every_instrument_with_bounded_attributes",
    );
}

/// One route, many outcomes: each (method, status) pair is its own series with its own count,
/// past the handles a route keeps bound (32) too, where recordings take the SDK's unbound path.
/// The duration recorded for a request is its span's, to the nanosecond (the timer and the span
/// share their two clock reads), and it runs until the response body ends: a body that streams
/// for 40 ms after its head is inside it, and the request is in flight until then.
#[test]
fn the_duration_is_the_spans_and_covers_the_streamed_body() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut config = hypertrace::Config::defaults("metrics-test");
    config.reporting.metric_reporter_type = hypertrace::config::MetricReporterType::Prometheus;
    config.reporting.metric_endpoint = Some("127.0.0.1:0".into());
    config.rustagent.scheduled_delay = Duration::from_millis(20);
    let spans = support::Spans::default();
    let guard = Agent::with_exporter(config, spans.clone())
        .with_metrics_from_config()
        .expect("metrics")
        .install();
    let prometheus = guard.agent().prometheus_address().expect("a page");
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let started_tx = Arc::new(Mutex::new(started_tx));
    let app = Router::new()
        .route(
            "/stream",
            get(move || {
                let started = started_tx.clone();
                async move {
                    let chunks = futures_util::stream::unfold(0u8, move |i| {
                        let started = started.clone();
                        async move {
                            match i {
                                0 => Some((Ok::<_, std::io::Error>(Bytes::from("head ")), 1)),
                                1 => {
                                    let _ = started.lock().unwrap().send(());
                                    tokio::time::sleep(Duration::from_millis(40)).await;
                                    Some((Ok(Bytes::from("tail")), 2))
                                }
                                _ => None,
                            }
                        }
                    });
                    axum::body::Body::from_stream(chunks)
                }
            }),
        )
        .layer(hypertrace::layer());
    let (_rt, base) = serve(app);
    let url = format!("{base}/stream");
    let fetch = std::thread::spawn(move || client().get(url).send().unwrap().text().unwrap());
    // Mid-body: the head was sent long ago, the request is still in flight and not yet counted.
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the body started");
    let (_, page) = scrape(&format!("http://{prometheus}/metrics"));
    let in_flight = gets_in_flight(&page);
    assert_eq!(in_flight, Some(1.0), "{page}");
    let route = [("http_route", "/stream")];
    assert_eq!(
        value(&page, "http_server_request_duration_seconds_count", &route),
        None,
        "{page}"
    );
    assert_eq!(fetch.join().unwrap(), "head tail");

    assert!(
        wait_until(Duration::from_secs(10), || {
            guard.flush();
            !spans.0.lock().unwrap().is_empty()
        }),
        "the request's span"
    );
    let span = spans.0.lock().unwrap()[0].clone();
    let span_secs = span
        .end_time
        .duration_since(span.start_time)
        .unwrap()
        .as_secs_f64();
    let (_, page) = scrape(&format!("http://{prometheus}/metrics"));
    assert_eq!(
        value(&page, "http_server_request_duration_seconds_count", &route),
        Some(1.0),
        "{page}"
    );
    let sum = value(&page, "http_server_request_duration_seconds_sum", &route).unwrap();
    assert!(
        sum >= 0.04,
        "the streamed body is inside the duration: {sum}"
    );
    assert_eq!(sum, span_secs, "the span's duration exactly");
    assert_eq!(gets_in_flight(&page), Some(0.0), "{page}");
}

#[test]
fn each_method_and_status_of_a_route_is_counted_apart() {
    let agent = install(&[
        ("HT_REPORTING_METRIC_REPORTER_TYPE", "PROMETHEUS"),
        ("HT_REPORTING_METRIC_ENDPOINT", "127.0.0.1:0"),
    ]);
    let (_rt, base) = serve(app());
    let c = client();
    let codes: Vec<u16> = (200..=240).chain([404, 500, 503]).collect();
    for (i, code) in codes.iter().enumerate() {
        // Code i is requested i % 3 + 1 times, so that no two neighbours share a count.
        for _ in 0..i % 3 + 1 {
            assert_eq!(get_status(&c, &format!("{base}/status/{code}")), *code);
        }
    }
    let r = c.delete(format!("{base}/status/204")).send().unwrap();
    assert_eq!(r.status().as_u16(), 204);

    let (_, page) = scrape(&format!("http://{}/metrics", agent.prometheus()));
    let route = ("http_route", "/status/{code}");
    for (i, code) in codes.iter().enumerate() {
        let code_text = code.to_string();
        let want = [
            route,
            ("http_request_method", "GET"),
            ("http_response_status_code", code_text.as_str()),
        ];
        assert_eq!(
            value(&page, COUNT, &want),
            Some((i % 3 + 1) as f64),
            "GET {code}: {page}"
        );
    }
    let delete = [
        route,
        ("http_request_method", "DELETE"),
        ("http_response_status_code", "204"),
    ];
    assert_eq!(value(&page, COUNT, &delete), Some(1.0), "{page}");
    let all: Vec<_> = series(&page, COUNT)
        .into_iter()
        .filter(|l| l.get("http_route").map(String::as_str) == Some("/status/{code}"))
        .collect();
    assert_eq!(all.len(), codes.len() + 1, "{all:?}");
    for l in &all {
        let code: u16 = l["http_response_status_code"].parse().unwrap();
        assert_eq!(
            l.get("error_type").map(String::as_str),
            (code >= 500).then_some(l["http_response_status_code"].as_str()),
            "{l:?}"
        );
    }
}

#[test]
fn spans_counters_follow_the_batch_processor() {
    // Spans exported for real (to NONE: discarded after the batch processor counted them), and
    // a queue of 1 that a burst overflows.
    let agent = install(&[
        ("HT_REPORTING_METRIC_REPORTER_TYPE", "PROMETHEUS"),
        ("HT_REPORTING_METRIC_ENDPOINT", "127.0.0.1:0"),
        ("HT_RUSTAGENT_MAX_QUEUE_SIZE", "1"),
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "5000"),
        ("HT_RUSTAGENT_MAX_EXPORT_BATCH_SIZE", "1000"),
    ]);
    let (_rt, base) = serve(app());
    let c = client();
    for i in 0..20 {
        assert_eq!(get_status(&c, &format!("{base}/users/{i}")), 200);
    }
    agent.guard.as_ref().unwrap().flush();
    let stats = agent.agent().stats();
    let dropped = stats.dropped.load(std::sync::atomic::Ordering::Relaxed);
    let exported = stats.exported.load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped > 0 && exported > 0, "{dropped} {exported}");
    let (_, page) = scrape(&format!("http://{}/metrics", agent.prometheus()));
    assert_eq!(
        value(&page, "hypertrace_agent_spans_dropped_total", &[]),
        Some(dropped as f64)
    );
    assert_eq!(
        value(&page, "hypertrace_agent_spans_exported_total", &[]),
        Some(exported as f64)
    );
}

#[test]
fn a_scan_of_10000_unmatched_paths_adds_one_series() {
    let agent = install(&[
        ("HT_REPORTING_METRIC_REPORTER_TYPE", "PROMETHEUS"),
        ("HT_REPORTING_METRIC_ENDPOINT", "http://127.0.0.1:0/metrics"),
    ]);
    let (_rt, base) = serve(app());
    let prom = format!("http://{}/metrics", agent.prometheus());
    let c = client();
    assert_eq!(get_status(&c, &format!("{base}/users/1")), 200);
    let before = series(&scrape(&prom).1, COUNT).len();
    // Four clients, as a scanner would: 10,000 distinct paths, odd methods among them.
    let probes: Vec<std::thread::JoinHandle<()>> = (0..4)
        .map(|t| {
            let base = base.clone();
            std::thread::spawn(move || {
                let c = client();
                for i in (t..10_000).step_by(4) {
                    let url = format!("{base}/wp-admin/{i}/x{}.php?id={i}", i * 7919);
                    let status = if i % 100 == 0 {
                        let m = reqwest::Method::from_bytes(format!("SCAN{i}").as_bytes()).unwrap();
                        c.request(m, &url).send().unwrap().status().as_u16()
                    } else {
                        get_status(&c, &url)
                    };
                    assert_eq!(status, 404, "{url}");
                }
            })
        })
        .collect();
    for p in probes {
        p.join().unwrap();
    }
    let page = scrape(&prom).1;
    let after = series(&page, COUNT);
    // One series for GET 404 and one for the odd methods, recorded as `_OTHER`.
    assert_eq!(after.len(), before + 2, "{after:#?}");
    let total: f64 = samples(&page)
        .iter()
        .filter(|(n, l, _)| {
            n == COUNT && l.get("http_response_status_code").map(String::as_str) == Some("404")
        })
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(total, 10_000.0);
    assert_eq!(
        value(&page, COUNT, &[("http_request_method", "_OTHER")]),
        Some(100.0)
    );
    assert!(!page.contains("wp-admin") && !page.contains("SCAN"));
    assert!(
        page.len() < 64 * 1024,
        "the page grew to {} bytes",
        page.len()
    );
}

#[test]
fn app_mounted_handler_serves_the_page_and_a_path_alone_starts_no_server() {
    let agent = install(&[
        ("HT_REPORTING_METRIC_REPORTER_TYPE", "PROMETHEUS"),
        ("HT_REPORTING_METRIC_ENDPOINT", "/metrics"),
    ]);
    assert_eq!(agent.agent().prometheus_address(), None);
    let (_rt, base) = serve(app());
    let c = client();
    assert_eq!(get_status(&c, &format!("{base}/users/9")), 200);
    let (ct, page) = scrape(&format!("{base}/metrics"));
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert_eq!(
        value(&page, COUNT, &[("http_route", "/users/{id}")]),
        Some(1.0)
    );
    // The layer excludes the scrape route: scrapes are not measured.
    let (_, page) = scrape(&format!("{base}/metrics"));
    assert!(!page.contains("http_route=\"/metrics\""), "{page}");
    promtool_check(&page, "app_mounted_handler");
}

#[test]
fn the_agent_endpoint_honours_the_configured_port_and_path() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}/custom/path");
    let agent = install(&[
        ("HT_REPORTING_METRIC_REPORTER_TYPE", "PROMETHEUS"),
        ("HT_REPORTING_METRIC_ENDPOINT", &endpoint),
    ]);
    assert_eq!(agent.prometheus().port(), port);
    let (_, page) = scrape(&endpoint);
    assert!(page.contains("# TYPE target_info gauge"), "{page}");
    let other = client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);
}

#[test]
fn metrics_off_by_each_switch() {
    let port = free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let prom = ("HT_REPORTING_METRIC_REPORTER_TYPE", "PROMETHEUS");
    let at = ("HT_REPORTING_METRIC_ENDPOINT", endpoint.as_str());
    let cases: [&[(&str, &str)]; 5] = [
        &[prom, at, ("HT_TELEMETRY_METRICS_ENABLED", "false")],
        &[prom, at, ("HT_ENABLED", "false")],
        &[
            (
                "HT_REPORTING_METRIC_REPORTER_TYPE",
                "METRIC_REPORTER_TYPE_NONE",
            ),
            at,
        ],
        &[("OTEL_METRICS_EXPORTER", "none"), at],
        // An OTLP reporter with spans going elsewhere has no endpoint to default to.
        &[("HT_REPORTING_TRACE_REPORTER_TYPE", "ZIPKIN")],
    ];
    for env in cases {
        let agent = install(env);
        assert!(agent.agent().meter_provider().is_none(), "{env:?}");
        assert!(agent.agent().prometheus_address().is_none(), "{env:?}");
        assert!(
            !wait_listening(
                SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(100)
            ),
            "{env:?}"
        );
        let (_rt, base) = serve(app());
        let r = client().get(format!("{base}/metrics")).send().unwrap();
        assert_eq!(
            r.status().as_u16(),
            404,
            "{env:?}: the mounted handler has nothing"
        );
    }
    // And OTEL_METRICS_EXPORTER alone turns Prometheus on.
    let agent = install(&[("OTEL_METRICS_EXPORTER", "prometheus"), at]);
    assert_eq!(agent.prometheus().port(), port);
}

#[test]
fn an_occupied_port_is_a_warning_not_a_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("127.0.0.1:{}", taken.local_addr().unwrap().port());
    let agent = install(&[
        ("HT_REPORTING_METRIC_REPORTER_TYPE", "PROMETHEUS"),
        ("HT_REPORTING_METRIC_ENDPOINT", &endpoint),
    ]);
    assert!(agent.agent().prometheus_address().is_none());
    assert!(agent.agent().meter_provider().is_some());
    let (_rt, base) = serve(app());
    assert_eq!(get_status(&client(), &format!("{base}/users/1")), 200);
    let (_, page) = scrape(&format!("{base}/metrics"));
    assert_eq!(
        value(&page, COUNT, &[("http_route", "/users/{id}")]),
        Some(1.0)
    );
}

#[test]
fn integrations_record_rpc_and_db_durations_without_unbounded_keys() {
    let agent = install(&[
        ("HT_REPORTING_METRIC_REPORTER_TYPE", "PROMETHEUS"),
        ("HT_REPORTING_METRIC_ENDPOINT", "127.0.0.1:0"),
    ]);
    hypertrace::metrics::rpc_server_call(
        Duration::from_millis(12),
        &[
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", "demo.Greeter"),
            KeyValue::new("rpc.method", "SayHello"),
            KeyValue::new("rpc.grpc.status_code", 0),
            KeyValue::new("rpc.request.metadata.authorization", "secret"),
        ],
    );
    hypertrace::metrics::rpc_client_call(
        Duration::from_millis(3),
        &[
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("server.port", 50051),
        ],
    );
    hypertrace::metrics::db_client_operation(
        Duration::from_micros(800),
        &[
            KeyValue::new("db.system.name", "postgresql"),
            KeyValue::new("db.operation.name", "SELECT"),
            KeyValue::new(
                "db.query.text",
                "SELECT * FROM users WHERE email = 'ada@example.com'",
            ),
        ],
    );
    let (_, page) = scrape(&format!("http://{}/metrics", agent.prometheus()));
    assert_eq!(
        value(
            &page,
            "rpc_server_call_duration_seconds_count",
            &[("rpc_method", "SayHello"), ("rpc_grpc_status_code", "0")]
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            "rpc_client_call_duration_seconds_count",
            &[("server_port", "50051")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &page,
            "db_client_operation_duration_seconds_bucket",
            &[("db_system_name", "postgresql"), ("le", "0.001")]
        ),
        Some(1.0),
        "0.8 ms is in the database conventions' first bucket: {page}"
    );
    assert!(
        !page.contains("secret") && !page.contains("ada@example.com"),
        "{page}"
    );
}

#[cfg(feature = "reqwest")]
#[test]
fn the_instrumented_client_records_http_client_durations() {
    let agent = install(&[
        ("HT_REPORTING_METRIC_REPORTER_TYPE", "PROMETHEUS"),
        ("HT_REPORTING_METRIC_ENDPOINT", "127.0.0.1:0"),
    ]);
    let (rt, base) = serve(app());
    let closed = format!("http://127.0.0.1:{}/x", free_port());
    rt.block_on(async {
        let http = hypertrace::client::instrumented(reqwest::Client::new());
        let r = http.get(format!("{base}/users/5")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let r = http.get(format!("{base}/fail")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 500);
        assert!(http.get(&closed).send().await.is_err());
    });
    let (_, page) = scrape(&format!("http://{}/metrics", agent.prometheus()));
    let name = "http_client_request_duration_seconds_count";
    let port = base.rsplit(':').next().unwrap();
    assert_eq!(
        value(
            &page,
            name,
            &[
                ("server_address", "127.0.0.1"),
                ("server_port", port),
                ("http_response_status_code", "200")
            ]
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(value(&page, name, &[("error_type", "500")]), Some(1.0));
    assert_eq!(
        value(&page, name, &[("error_type", "connect")]),
        Some(1.0),
        "{page}"
    );
}

// ---------------------------------------------------------------------------------------------
// promtool

fn find_promtool() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return Ok(PathBuf::from(p));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/promtool");
    if local.is_file() {
        return Ok(local);
    }
    match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(PathBuf::from("promtool")),
        _ => Err(format!("no {} and no promtool on PATH", local.display())),
    }
}

/// `promtool check metrics` must accept `page`, lint included.
fn promtool_check(page: &str, test: &str) {
    let bin = match find_promtool() {
        Ok(b) => b,
        Err(why) => {
            let how = "run `scripts/install-promtool.sh` (unpacks promtool from Debian's prometheus package into .tools/), or set PROMTOOL";
            assert!(!in_ci(), "CI=true and promtool is missing ({why}): {how}");
            say(&format!(
                "\n*** {test}: promtool check SKIPPED, NOT RUN: {why}; {how}. ***\n"
            ));
            return;
        }
    };
    let mut child = Command::new(&bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}\n{}{}\npage:\n{page}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_rejects_a_broken_page() {
    // The checker itself is live: a counter without `_total` and a malformed line fail it.
    let Ok(bin) = find_promtool() else {
        assert!(
            !in_ci(),
            "CI=true and promtool is missing: run scripts/install-promtool.sh"
        );
        say("\n*** promtool_rejects_a_broken_page: SKIPPED, NOT RUN: promtool missing; run `scripts/install-promtool.sh`. ***\n");
        return;
    };
    for bad in ["# HELP x y\n# TYPE x counter\nx 1\n", "x{a=\"1\" 2\n"] {
        let mut child = Command::new(&bin)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(bad.as_bytes())
            .unwrap();
        assert!(!child.wait().unwrap().success(), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// OTLP receivers in this test

#[derive(Clone, Default)]
struct MetricsReceiver {
    got: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl MetricsService for MetricsReceiver {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.got.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

impl MetricsReceiver {
    fn requests(&self) -> Vec<ExportMetricsServiceRequest> {
        self.got.lock().unwrap().clone()
    }
}

/// The data points of histogram `name` over every request, with the resource's `service.name`.
fn histogram_points(
    reqs: &[ExportMetricsServiceRequest],
    name: &str,
) -> Vec<(Option<String>, HistogramDataPoint)> {
    let mut out = Vec::new();
    for r in reqs {
        for rm in &r.resource_metrics {
            let svc = rm
                .resource
                .as_ref()
                .and_then(|res| pattr_str(&res.attributes, "service.name"));
            for sm in &rm.scope_metrics {
                for m in sm.metrics.iter().filter(|m| m.name == name) {
                    assert_eq!(m.unit, "s");
                    if let Some(Data::Histogram(h)) = &m.data {
                        for p in &h.data_points {
                            out.push((svc.clone(), p.clone()));
                        }
                    }
                }
            }
        }
    }
    out
}

fn names(reqs: &[ExportMetricsServiceRequest]) -> std::collections::BTreeSet<String> {
    reqs.iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| m.name.clone())
        .collect()
}

fn route_count(points: &[(Option<String>, HistogramDataPoint)], route: &str) -> u64 {
    // Cumulative: the newest point of the series holds the total.
    points
        .iter()
        .filter(|(_, p)| pattr_str(&p.attributes, "http.route").as_deref() == Some(route))
        .map(|(_, p)| p.count)
        .max()
        .unwrap_or(0)
}

/// An OTLP/gRPC receiver of metrics and spans on `rt`.
fn grpc_metrics_receiver(
    rt: &tokio::runtime::Runtime,
) -> (SocketAddr, MetricsReceiver, GrpcReceiver) {
    let metrics = MetricsReceiver::default();
    let traces = GrpcReceiver::default();
    let (m, t) = (metrics.clone(), traces.clone());
    let addr = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(MetricsServiceServer::new(m))
                .add_service(TraceServiceServer::new(t))
                .serve_with_incoming(tokio_stream_from(listener))
                .await
                .unwrap();
        });
        addr
    });
    (addr, metrics, traces)
}

/// An OTLP/HTTP receiver at `/v1/metrics` (protobuf, gzip undone) on `rt`.
fn http_metrics_receiver(rt: &tokio::runtime::Runtime) -> (SocketAddr, MetricsReceiver) {
    let recv = MetricsReceiver::default();
    let got = recv.got.clone();
    let app = Router::new().route(
        "/v1/metrics",
        post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let got = got.clone();
            async move {
                let mut bytes = body.to_vec();
                if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(&bytes[..])
                        .read_to_end(&mut out)
                        .unwrap();
                    bytes = out;
                }
                match ExportMetricsServiceRequest::decode(&bytes[..]) {
                    Ok(req) => {
                        got.lock().unwrap().push(req);
                        (
                            axum::http::StatusCode::OK,
                            ExportMetricsServiceResponse {
                                partial_success: None,
                            }
                            .encode_to_vec(),
                        )
                    }
                    Err(_) => (axum::http::StatusCode::BAD_REQUEST, Vec::new()),
                }
            }
        }),
    );
    let addr = rt.block_on(support::serve(app));
    (addr, recv)
}

#[test]
fn otlp_grpc_exports_at_the_configured_interval() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, recv, _) = grpc_metrics_receiver(&rt);
    let endpoint = format!("http://{addr}");
    let agent = install(&[
        ("HT_REPORTING_METRIC_ENDPOINT", &endpoint),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ]);
    let (_rt, base) = serve(app());
    let c = client();
    for id in 0..3 {
        assert_eq!(get_status(&c, &format!("{base}/users/{id}")), 200);
    }
    // No flush: the 200 ms interval alone brings the exports, one after the other.
    let arrived = wait_until(Duration::from_secs(10), || {
        let reqs = recv.requests();
        reqs.len() >= 2
            && route_count(
                &histogram_points(&reqs, "http.server.request.duration"),
                "/users/{id}",
            ) == 3
    });
    assert!(
        arrived,
        "{} exports: {:?}",
        recv.requests().len(),
        names(&recv.requests())
    );
    let points = histogram_points(&recv.requests(), "http.server.request.duration");
    let (svc, p) = points.last().unwrap();
    assert_eq!(svc.as_deref(), Some("metrics-test"));
    assert_eq!(p.explicit_bounds, SEMCONV_BUCKETS.to_vec());
    assert_eq!(p.bucket_counts.len(), SEMCONV_BUCKETS.len() + 1);
    assert_eq!(
        pattr_str(&p.attributes, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        pattr_str(&p.attributes, "url.scheme").as_deref(),
        Some("http")
    );
    let all = names(&recv.requests());
    for n in [
        "http.server.request.duration",
        "http.server.active_requests",
        "hypertrace.agent.spans.exported",
        "hypertrace.agent.spans.dropped",
        "process.cpu.time",
        "process.memory.usage",
    ] {
        assert!(all.contains(n), "{n} missing from {all:?}");
    }
    drop(agent);
}

#[test]
fn otlp_defaults_to_the_trace_endpoint_and_shares_the_resource() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, metrics, traces) = grpc_metrics_receiver(&rt);
    let endpoint = format!("http://{addr}");
    let mut agent = install(&[
        ("HT_REPORTING_TRACE_REPORTER_TYPE", "OTLP"),
        ("HT_REPORTING_ENDPOINT", &endpoint),
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "50"),
    ]);
    let (_rt, base) = serve(app());
    assert_eq!(get_status(&client(), &format!("{base}/users/1")), 200);
    // The default interval is 60 s: the exit flushes (the Guard's drop), as for spans.
    agent.shut_down();
    let points = histogram_points(&metrics.requests(), "http.server.request.duration");
    assert_eq!(
        route_count(&points, "/users/{id}"),
        1,
        "{:?}",
        names(&metrics.requests())
    );
    let span_ids: Vec<String> = support::receivers::otlp_spans(&traces.got.lock().unwrap())
        .iter()
        .filter_map(|(res, _)| pattr_str(&res.attributes, "service.instance.id"))
        .collect();
    let metric_ids: Vec<String> = metrics
        .requests()
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .filter_map(|rm| pattr_str(&rm.resource.as_ref()?.attributes, "service.instance.id"))
        .collect();
    assert!(!span_ids.is_empty() && !metric_ids.is_empty());
    assert!(
        metric_ids.iter().all(|id| *id == span_ids[0]),
        "{span_ids:?} {metric_ids:?}"
    );
}

#[test]
fn otlp_http_is_chosen_by_the_endpoint_shape() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, recv) = http_metrics_receiver(&rt);
    let endpoint = format!("http://{addr}/v1/metrics");
    let mut agent = install(&[
        ("HT_REPORTING_METRIC_REPORTER_TYPE", "OTLP"),
        ("HT_REPORTING_METRIC_ENDPOINT", &endpoint),
        ("HT_RUSTAGENT_METRIC_EXPORT_INTERVAL_MS", "3600000"),
    ]);
    let (_rt, base) = serve(app());
    assert_eq!(get_status(&client(), &format!("{base}/fail")), 500);
    assert!(
        recv.requests().is_empty(),
        "nothing before the interval or the exit"
    );
    agent.shut_down();
    let points = histogram_points(&recv.requests(), "http.server.request.duration");
    let p = &points.last().expect("exported on exit").1;
    assert_eq!(
        pattr_str(&p.attributes, "error.type").as_deref(),
        Some("500")
    );
}

// ---------------------------------------------------------------------------------------------
// Through the rotel collector

fn find_rotel() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ROTEL_BIN") {
        return Ok(PathBuf::from(p));
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/rotel/rotel-agent"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        format!(
            "no {}/python3*/site-packages/rotel/rotel-agent",
            lib.display()
        )
    })
}

#[test]
fn otlp_through_rotel() {
    let bin = match find_rotel() {
        Ok(b) => b,
        Err(why) => {
            let how = "install it with `scripts/install-collector.sh`, or set ROTEL_BIN";
            assert!(
                !in_ci(),
                "CI=true and the rotel collector is missing ({why}): {how}"
            );
            say(&format!("\n*** otlp_through_rotel: SKIPPED, NOT RUN: the rotel collector is missing ({why}); {how}. ***\n"));
            return;
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (forward, recv) = http_metrics_receiver(&rt);
    let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(&bin);
    cmd.arg("start")
        .args(["--otlp-grpc-endpoint", &grpc.to_string()])
        .args(["--otlp-http-endpoint", &http.to_string()])
        .args(["--exporter", "otlp"])
        .args(["--otlp-exporter-endpoint", &format!("http://{forward}")])
        .args(["--otlp-exporter-protocol", "http"])
        .args(["--batch-timeout", "100ms"])
        .args([
            "--debug-log",
            "metrics",
            "--debug-log-verbosity",
            "detailed",
        ])
        .args(["--log-format", "text"])
        .arg("--pid-file")
        .arg(dir.path().join("rotel.pid"))
        .arg("--log-file")
        .arg(dir.path().join("rotel.log"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ROTEL_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().unwrap();
    let out: Arc<Mutex<Vec<u8>>> = Arc::default();
    pump_lines(child.stdout.take().unwrap(), out.clone());
    pump_lines(child.stderr.take().unwrap(), out.clone());
    let output = || String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    assert!(
        wait_listening(grpc, Duration::from_secs(20))
            && wait_listening(http, Duration::from_secs(20)),
        "rotel did not listen: {}",
        output()
    );
    // gRPC into rotel, then OTLP/HTTP into it: both transports of the reporter.
    for (endpoint, route) in [
        (format!("http://{grpc}"), "/users/{id}"),
        (format!("http://{http}/v1/metrics"), "/fail"),
    ] {
        let mut agent = install(&[
            ("HT_REPORTING_METRIC_ENDPOINT", &endpoint),
            ("OTEL_METRIC_EXPORT_INTERVAL", "3600000"),
        ]);
        let (_srv, base) = serve(app());
        let path = route.replace("{id}", "7");
        get_status(&client(), &format!("{base}{path}"));
        agent.shut_down();
        let arrived = wait_until(Duration::from_secs(20), || {
            route_count(
                &histogram_points(&recv.requests(), "http.server.request.duration"),
                route,
            ) >= 1
        });
        assert!(
            arrived,
            "{endpoint}: nothing forwarded; rotel said:\n{}",
            output()
        );
    }
    let points = histogram_points(&recv.requests(), "http.server.request.duration");
    assert!(points
        .iter()
        .all(|(svc, p)| svc.as_deref() == Some("metrics-test")
            && p.explicit_bounds == SEMCONV_BUCKETS.to_vec()));
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------
// LOGGING, on the demo server's stdout

#[test]
fn logging_writes_a_json_line_per_export_to_stdout() {
    let mut server = DemoServer::start(&[
        ("HT_REPORTING_TRACE_REPORTER_TYPE", "NONE".into()),
        ("HT_REPORTING_METRIC_REPORTER_TYPE", "LOGGING".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300".into()),
    ]);
    let c = client();
    assert_eq!(get_status(&c, &format!("{}/users/7", server.base())), 200);
    let lines = |s: &DemoServer| -> Vec<serde_json::Value> {
        s.stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let count = |v: &serde_json::Value| -> u64 {
        let mut n = 0;
        for sm in v["scope_metrics"].as_array().unwrap() {
            for m in sm["metrics"].as_array().unwrap() {
                if m["name"] == "http.server.request.duration" {
                    assert_eq!(m["unit"], "s");
                    assert_eq!(m["type"], "histogram");
                    for p in m["data_points"].as_array().unwrap() {
                        if p["attributes"]["http.route"] == "/users/{id}" {
                            assert_eq!(p["bounds"], serde_json::json!(SEMCONV_BUCKETS));
                            n += p["count"].as_u64().unwrap();
                        }
                    }
                }
            }
        }
        n
    };
    assert!(
        wait_until(Duration::from_secs(10), || lines(&server)
            .iter()
            .any(|l| count(l) == 1)),
        "stdout:\n{}",
        server.stdout()
    );
    let before = lines(&server).len();
    assert!(before >= 1);
    server.stop(Duration::from_secs(10));
    let all = lines(&server);
    assert!(all.len() > before, "a last line on exit");
    let last = all.last().unwrap();
    assert_eq!(last["resource"]["service.name"], "hypertrace-demo");
    assert_eq!(count(last), 1);
}
