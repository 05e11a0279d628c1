//! End to end through a real OpenTelemetry collector: `examples/server.rs` exports with the
//! OTLP/gRPC and then the OTLP/HTTP reporter into `rotel` (installed by
//! `scripts/install-collector.sh`), which forwards over OTLP (HTTP/protobuf) to a receiver inside this test.
//! The spans must arrive with their headers, bodies, resource and parent links intact, and the
//! credentials only as `[REDACTED]`, in what the collector forwarded and in what it logged.
//!
//! Needs: `cargo build --example server` and `scripts/install-collector.sh` (or `ROTEL_BIN`).
//! With `CI=true` a missing collector is a failure; elsewhere the tests say how to install it and pass.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span as ProtoSpan};
use support::receivers::{
    collector_restart_under_load, free_port, hex, pattr, pattr_str, pump_lines, say, signal,
    user_ids, wait_listening, wait_until, Collector, CollectorKind, DemoServer,
};

/// The collector binary: `ROTEL_BIN`, else `.venv/lib/python3*/site-packages/rotel/rotel-agent`;
/// `Err` says what was looked for.
fn find_rotel() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ROTEL_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("ROTEL_BIN={} is not a file", p.display()))
        };
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
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

/// The binary, or `None` after saying how to install it. Under `CI=true`, missing is a failure.
fn rotel_or_skip(test: &str) -> Option<PathBuf> {
    let why = match find_rotel() {
        Ok(p) => return Some(p),
        Err(why) => why,
    };
    let how = "install it with `scripts/install-collector.sh` (creates .venv/ and pip-installs rotel), or set ROTEL_BIN to a rotel-agent binary";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and the rotel collector is missing ({why}): {how}");
    }
    say(&format!(
        "\n*** {test}: SKIPPED, NOT RUN: the rotel collector is missing ({why}); {how}. ***\n"
    ));
    None
}

/// A rotel process: OTLP/gRPC and OTLP/HTTP receivers on loopback, forwarding over OTLP/gRPC to
/// `forward` over OTLP/HTTP, printing what it receives (`--debug-log traces --debug-log-verbosity detailed`).
struct Rotel {
    bin: PathBuf,
    grpc: SocketAddr,
    http: SocketAddr,
    forward: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Its stdout and stderr, across restarts.
    out: Arc<Mutex<Vec<u8>>>,
}

impl Rotel {
    fn start(bin: PathBuf, forward: SocketAddr) -> Rotel {
        let mut r = Rotel {
            bin,
            grpc: SocketAddr::from(([127, 0, 0, 1], free_port())),
            http: SocketAddr::from(([127, 0, 0, 1], free_port())),
            forward,
            dir: tempfile::tempdir().unwrap(),
            child: None,
            out: Arc::default(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("start")
            .args(["--otlp-grpc-endpoint", &self.grpc.to_string()])
            .args(["--otlp-http-endpoint", &self.http.to_string()])
            .args(["--exporter", "otlp"])
            .args([
                "--otlp-exporter-endpoint",
                &format!("http://{}", self.forward),
            ])
            // OTLP/HTTP to the next hop: rotel 0.0.1a15 gzips its gRPC exports even with
            // `--otlp-exporter-compression none`, and our tonic receiver has no gzip; the HTTP
            // receiver undoes `Content-Encoding: gzip`.
            .args(["--otlp-exporter-protocol", "http"])
            .args(["--batch-timeout", "100ms"])
            .args(["--debug-log", "traces", "--debug-log-verbosity", "detailed"])
            .args(["--log-format", "text"])
            .arg("--pid-file")
            .arg(self.dir.path().join("rotel.pid"))
            .arg("--log-file")
            .arg(self.dir.path().join("rotel.log"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ROTEL_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        pump_lines(child.stdout.take().unwrap(), self.out.clone());
        pump_lines(child.stderr.take().unwrap(), self.out.clone());
        self.child = Some(child);
        let up = wait_listening(self.grpc, Duration::from_secs(20))
            && wait_listening(self.http, Duration::from_secs(20));
        assert!(
            up,
            "rotel did not start listening on {} / {}; output:\n{}",
            self.grpc,
            self.http,
            self.output()
        );
    }

    /// SIGKILL: the collector dies with whatever it held.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "KILL");
            let _ = c.wait();
        }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// 32 random hex digits (no rand crate: time and a counter through splitmix64).
fn random_hex(len: usize) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ (N.fetch_add(1, Ordering::Relaxed) << 32);
    let mut s = String::new();
    while s.len() < len {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        s.push_str(&format!("{:016x}", z ^ (z >> 31)));
    }
    s.truncate(len);
    s
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn res_str(r: &ProtoResource, k: &str) -> Option<String> {
    pattr_str(&r.attributes, k)
}

/// The spans whose resource carries `test.run = run`.
fn spans_of(got: &support::receivers::Got, run: &str) -> Vec<(ProtoResource, ProtoSpan)> {
    got.spans()
        .into_iter()
        .filter(|(r, _)| res_str(r, "test.run").as_deref() == Some(run))
        .collect()
}

/// Secrets sent by the client in one run; none may leave the application.
struct Secrets {
    authorization: String,
    cookie: String,
    api_key: String,
    token: String,
    otlp_header: String,
}

impl Secrets {
    fn new() -> Secrets {
        Secrets {
            authorization: format!("Bearer authz-{}", random_hex(24)),
            cookie: format!("session=cookie-{}", random_hex(24)),
            api_key: format!("apikey-{}", random_hex(24)),
            token: format!("token-{}", random_hex(24)),
            otlp_header: format!("hdr-{}", random_hex(24)),
        }
    }

    fn all(&self) -> [&str; 5] {
        [
            &self.authorization,
            &self.cookie,
            &self.api_key,
            &self.token,
            &self.otlp_header,
        ]
    }

    /// The distinctive part of each secret (what a leak would contain).
    fn needles(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|s| s.rsplit(['-', ' ', '=']).next().unwrap().to_string())
            .collect()
    }
}

/// One full run: the demo server exports through rotel with `reporter` to `endpoint`.
fn run_through_collector(reporter: &str, endpoint: String, rotel: &Rotel, recv: &Collector) {
    let run = format!("{reporter}-{}", random_hex(8));
    let secrets = Secrets::new();
    let mut server = DemoServer::start(&[
        ("HT_REPORTING_TRACE_REPORTER_TYPE", reporter.to_string()),
        ("HT_REPORTING_ENDPOINT", endpoint),
        ("HT_REPORTING_TOKEN", secrets.token.clone()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("x-team-key={}", secrets.otlp_header),
        ),
        ("HT_PROPAGATION_FORMATS", "TRACECONTEXT,B3".into()),
        (
            "HT_RESOURCE_ATTRIBUTES",
            format!("deployment.environment=e2e,test.run={run}"),
        ),
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "100".into()),
    ]);
    let base = server.base();
    let c = client();

    // 1. JSON in and out, credentials, a W3C parent.
    let (trace, parent) = (random_hex(32), random_hex(16));
    let body = format!(r#"{{"name":"Ada","reporter":"{reporter}","n":1}}"#);
    let resp = c
        .post(format!("{base}/json"))
        .header("content-type", "application/json; charset=utf-8")
        .header("authorization", &secrets.authorization)
        .header("cookie", &secrets.cookie)
        .header("x-api-key", &secrets.api_key)
        .header("x-request-id", format!("req-{run}"))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp_body = resp.text().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&resp_body).unwrap()["echo"]["name"],
        "Ada"
    );

    // 2. A B3 parent (single header).
    let (b3_trace, b3_parent) = (random_hex(32), random_hex(16));
    let resp = c
        .get(format!("{base}/users/42"))
        .header("b3", format!("{b3_trace}-{b3_parent}-1"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // 3. A server error; 4. no parent at all.
    assert_eq!(c.get(format!("{base}/error")).send().unwrap().status(), 500);
    assert_eq!(c.get(format!("{base}/")).send().unwrap().status(), 200);

    let (status, took) = server.stop(Duration::from_secs(15));
    assert!(
        status.success(),
        "server exit {status}; stderr:\n{}",
        server.stderr()
    );
    let stopped = took;

    let t = Instant::now();
    let arrived = wait_until(Duration::from_secs(20), || {
        spans_of(&recv.got, &run).len() >= 4
    });
    let spans = spans_of(&recv.got, &run);
    assert!(
        arrived,
        "{reporter}: {} of 4 spans reached the receiver through rotel; rotel output:\n{}",
        spans.len(),
        tail(&rotel.output(), 4000)
    );
    let delivered = t.elapsed();
    assert_eq!(spans.len(), 4, "{reporter}: exactly the 4 request spans");
    let find = |name: &str| {
        spans
            .iter()
            .find(|(_, s)| s.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "{reporter}: no span {name}: {:?}",
                    spans.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()
                )
            })
    };

    // The resource, intact through the collector.
    let (res, json) = find("POST /json");
    assert_eq!(
        res_str(res, "service.name").as_deref(),
        Some("hypertrace-demo")
    );
    assert_eq!(
        res_str(res, "telemetry.sdk.name").as_deref(),
        Some("hypertrace")
    );
    assert_eq!(
        res_str(res, "telemetry.sdk.language").as_deref(),
        Some("rust")
    );
    assert_eq!(
        res_str(res, "telemetry.sdk.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        res_str(res, "deployment.environment").as_deref(),
        Some("e2e")
    );
    assert!(
        res_str(res, "service.instance.id").is_some_and(|s| s.len() == 36),
        "{res:?}"
    );
    assert!(res_str(res, "host.name").is_some_and(|s| !s.is_empty()));
    assert_eq!(
        pattr(&res.attributes, "process.pid"),
        Some(AnyValue::IntValue(i64::from(server.pid())))
    );

    // The JSON span: parent link, kind, headers, bodies, the handler's event.
    assert_eq!(
        hex(&json.trace_id),
        trace,
        "{reporter}: trace id from traceparent"
    );
    assert_eq!(
        hex(&json.parent_span_id),
        parent,
        "{reporter}: parent span id from traceparent"
    );
    assert_eq!(
        json.kind,
        opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32
    );
    let a = &json.attributes;
    assert_eq!(pattr_str(a, "http.method").as_deref(), Some("POST"));
    assert_eq!(pattr_str(a, "http.route").as_deref(), Some("/json"));
    assert_eq!(pattr(a, "http.status_code"), Some(AnyValue::IntValue(200)));
    assert_eq!(
        pattr_str(a, "http.request.header.content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        pattr_str(a, "http.request.header.x-request-id"),
        Some(format!("req-{run}"))
    );
    for h in ["authorization", "cookie", "x-api-key"] {
        assert_eq!(
            pattr_str(a, &format!("http.request.header.{h}")).as_deref(),
            Some("[REDACTED]"),
            "{reporter}: {h}"
        );
    }
    assert_eq!(pattr_str(a, "http.request.body"), Some(body));
    assert_eq!(
        pattr_str(a, "http.response.header.x-demo-header").as_deref(),
        Some("hypertrace")
    );
    assert_eq!(pattr_str(a, "http.response.body"), Some(resp_body));
    assert!(
        json.events.iter().any(|e| e.name == "echoing a JSON body"),
        "{:?}",
        json.events
    );

    let (_, user) = find("GET /users/{id}");
    assert_eq!(
        hex(&user.trace_id),
        b3_trace,
        "{reporter}: trace id from b3"
    );
    assert_eq!(
        hex(&user.parent_span_id),
        b3_parent,
        "{reporter}: parent span id from b3"
    );
    assert_eq!(
        pattr_str(&user.attributes, "http.target").as_deref(),
        Some("/users/42")
    );
    assert_eq!(
        pattr_str(&user.attributes, "http.response.body").as_deref(),
        Some(r#"{"id":42,"name":"user-42"}"#)
    );

    let (_, err) = find("GET /error");
    assert_eq!(
        err.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert_eq!(
        pattr(&err.attributes, "http.status_code"),
        Some(AnyValue::IntValue(500))
    );

    let (_, root) = find("GET /");
    assert!(
        root.parent_span_id.is_empty(),
        "no incoming context: a root span"
    );

    // No credential anywhere: not in what rotel forwarded, not in what it logged, not in the
    // server's own logs (the token and the OTLP header were sent to rotel, never printed).
    // rotel logs what it received (its output is read by another thread: wait for this run's).
    wait_until(Duration::from_secs(5), || {
        rotel.output().contains(&format!("req-{run}"))
    });
    let rotel_out = rotel.output();
    assert!(
        rotel_out.contains(&format!("req-{run}")) && rotel_out.contains("[REDACTED]"),
        "rotel's debug log shows the span:\n{}",
        tail(&rotel_out, 3000)
    );
    let server_logs = format!("{}\n{}", server.stdout(), server.stderr());
    for needle in secrets.needles() {
        assert!(
            !recv.got.raw_contains(needle.as_bytes()),
            "{reporter}: {needle} reached the receiver"
        );
        assert!(
            !rotel_out.contains(&needle),
            "{reporter}: {needle} in rotel's debug log"
        );
        assert!(
            !server_logs.contains(&needle),
            "{reporter}: {needle} in the server's output:\n{server_logs}"
        );
    }
    say(&format!(
        "e2e {reporter} -> rotel -> receiver: 4/4 spans, headers, bodies, resource, W3C and B3 parents intact, no secret past the app; \
         server exit {stopped:?} after SIGTERM, spans at the receiver {delivered:?} later"
    ));
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[test]
fn spans_arrive_through_rotel_over_grpc_and_http() {
    let Some(bin) = rotel_or_skip("spans_arrive_through_rotel_over_grpc_and_http") else {
        return;
    };
    let recv = Collector::start(CollectorKind::Http);
    let rotel = Rotel::start(bin, recv.addr);
    run_through_collector("OTLP", format!("http://{}", rotel.grpc), &rotel, &recv);
    run_through_collector(
        "OTLP_HTTP",
        format!("http://{}/v1/traces", rotel.http),
        &rotel,
        &recv,
    );
}

/// The collector is killed (SIGKILL) under load and restarted on the same ports: no request fails,
/// latency stays where it was, and export resumes (every span sent after the restart arrives).
#[test]
fn rotel_killed_under_load_and_restarted() {
    let Some(bin) = rotel_or_skip("rotel_killed_under_load_and_restarted") else {
        return;
    };
    let recv = Collector::start(CollectorKind::Http);
    let mut rotel = Rotel::start(bin, recv.addr);
    let run = format!("restart-{}", random_hex(8));
    let mut server = DemoServer::start(&[
        ("HT_REPORTING_ENDPOINT", format!("http://{}", rotel.grpc)),
        ("HT_RESOURCE_ATTRIBUTES", format!("test.run={run}")),
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "100".into()),
        ("HT_RUSTAGENT_EXPORT_TIMEOUT_MS", "1000".into()),
    ]);
    let report = collector_restart_under_load(
        "rotel",
        &mut server,
        Duration::from_millis(5),
        &mut rotel,
        |_| user_ids(&spans_of(&recv.got, &run)),
        Rotel::kill,
        Rotel::spawn,
    );
    say(&format!("rotel_killed_under_load_and_restarted:\n{report}"));
}

/// The standard OpenTelemetry variables alone choose the protocol, compression and batching:
/// `OTEL_EXPORTER_OTLP_PROTOCOL` (grpc, then http/protobuf against rotel's matching port),
/// `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` (rotel decodes it; the in-test collectors of
/// `export_wire` show the requests are gzipped), `OTEL_BSP_SCHEDULE_DELAY` (the span arrives while
/// the server still runs). A 64 KiB JSON body arrives byte for byte.
#[test]
fn otel_variables_gzip_through_rotel() {
    let Some(bin) = rotel_or_skip("otel_variables_gzip_through_rotel") else {
        return;
    };
    let recv = Collector::start(CollectorKind::Http);
    let rotel = Rotel::start(bin, recv.addr);
    for (protocol, port) in [("grpc", rotel.grpc), ("http/protobuf", rotel.http)] {
        let run = format!("gzip-{}", random_hex(8));
        let server = DemoServer::start(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{port}")),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
            ("OTEL_RESOURCE_ATTRIBUTES", format!("test.run={run}")),
        ]);
        let body = format!(r#"{{"pad":"{}"}}"#, "z".repeat(65_536));
        let resp = client()
            .post(format!("{}/json", server.base()))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let arrived = wait_until(Duration::from_secs(10), || {
            !spans_of(&recv.got, &run).is_empty()
        });
        assert!(
            arrived,
            "{protocol}: no span through rotel while the server runs\nserver: {}\nrotel: {}",
            server.stderr(),
            tail(&rotel.output(), 3000)
        );
        let spans = spans_of(&recv.got, &run);
        let got = pattr_str(&spans[0].1.attributes, "http.request.body");
        assert_eq!(got.as_deref(), Some(body.as_str()), "{protocol}");
        say(&format!(
            "OTEL_* only, {protocol} + gzip -> rotel: span with its 64 KiB body arrived"
        ));
        drop(server);
    }
}
