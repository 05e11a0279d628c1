//! Each reporter type over its real wire protocol, into receivers inside the test: OTLP/gRPC
//! (tonic with the official opentelemetry-proto service), OTLP/HTTP (protobuf decoded with the
//! official types), Zipkin v2 JSON, plus flush-on-shutdown and a dead collector's deadline.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hypertrace::config::{Config, TraceReporterType};
use hypertrace::Agent;
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use support::receivers::{grpc_receiver, http_receiver, tokio_stream_from, GrpcReceiver};

fn config(ty: TraceReporterType, endpoint: String) -> Config {
    let mut c = Config::defaults("wire-test");
    c.reporting.trace_reporter_type = ty;
    c.reporting.endpoint = Some(endpoint);
    c.reporting.token = Some("tok-123".into());
    c.resource_attributes
        .insert("deployment.environment".into(), "test".into());
    // Long enough that only the shutdown flush can deliver: proves nothing queued is lost.
    c.rustagent.scheduled_delay = Duration::from_secs(60);
    c
}

/// Emits one SERVER span with a parent, then shuts the agent down (the flush delivers it).
fn emit_and_shutdown(config: Config) -> (String, String, String) {
    let agent = Agent::from_config(config).unwrap();
    let tracer = agent.tracer_provider().tracer("wire");
    let guard = agent.install();
    let parent = tracer.start("parent");
    let parent_cx = opentelemetry::Context::current_with_span(parent);
    let mut span = tracer
        .span_builder("GET /users/{id}")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.status_code", 200i64),
            KeyValue::new("http.request.header.x-a", "b"),
        ])
        .start_with_context(&tracer, &parent_cx);
    let ids = (
        span.span_context().trace_id().to_string(),
        span.span_context().span_id().to_string(),
        parent_cx.span().span_context().span_id().to_string(),
    );
    span.end();
    parent_cx.span().end();
    drop(guard);
    ids
}

fn check_otlp(reqs: &[ExportTraceServiceRequest], ids: &(String, String, String)) {
    let spans: Vec<_> = reqs
        .iter()
        .flat_map(|r| r.resource_spans.iter())
        .flat_map(|rs| {
            rs.scope_spans
                .iter()
                .flat_map(move |ss| ss.spans.iter().map(move |s| (rs, s)))
        })
        .collect();
    let (rs, span) = spans
        .iter()
        .find(|(_, s)| s.name == "GET /users/{id}")
        .expect("span arrived");
    assert_eq!(hex(&span.trace_id), ids.0);
    assert_eq!(hex(&span.span_id), ids.1);
    assert_eq!(hex(&span.parent_span_id), ids.2);
    assert_eq!(
        span.kind,
        opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32
    );
    let attr = |kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue], k: &str| {
        kvs.iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    };
    assert_eq!(
        attr(&span.attributes, "http.status_code"),
        Some(AnyValue::IntValue(200))
    );
    assert_eq!(
        attr(&span.attributes, "http.request.header.x-a"),
        Some(AnyValue::StringValue("b".into()))
    );
    let res = &rs.resource.as_ref().expect("resource").attributes;
    assert_eq!(
        attr(res, "service.name"),
        Some(AnyValue::StringValue("wire-test".into()))
    );
    assert_eq!(
        attr(res, "telemetry.sdk.name"),
        Some(AnyValue::StringValue("hypertrace".into()))
    );
    assert_eq!(
        attr(res, "telemetry.sdk.language"),
        Some(AnyValue::StringValue("rust".into()))
    );
    assert_eq!(
        attr(res, "deployment.environment"),
        Some(AnyValue::StringValue("test".into()))
    );
    assert!(
        attr(res, "service.instance.id").is_some()
            && attr(res, "host.name").is_some()
            && attr(res, "process.pid").is_some()
    );
    assert_eq!(spans.len(), 2, "parent and child, nothing else");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_grpc_delivers_on_shutdown() {
    let _serial = support::agent(|_| {}); // holds the per-process agent lock
    drop(_serial.guard);
    let (addr, recv) = grpc_receiver().await;
    let cfg = config(TraceReporterType::Otlp, format!("http://{addr}"));
    let ids = tokio::task::spawn_blocking(move || emit_and_shutdown(cfg))
        .await
        .unwrap();
    check_otlp(&recv.got.lock().unwrap(), &ids);
    let md = recv.metadata.lock().unwrap();
    assert!(
        md.iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer tok-123"),
        "token sent as metadata: {md:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_http_delivers_on_shutdown() {
    let _serial = support::agent(|_| {});
    drop(_serial.guard);
    let (addr, got) = http_receiver("/v1/traces").await;
    let cfg = config(
        TraceReporterType::OtlpHttp,
        format!("http://{addr}/v1/traces"),
    );
    let ids = tokio::task::spawn_blocking(move || emit_and_shutdown(cfg))
        .await
        .unwrap();
    let got = got.lock().unwrap();
    assert_eq!(
        got[0].0.get("content-type").unwrap(),
        "application/x-protobuf"
    );
    assert_eq!(got[0].0.get("authorization").unwrap(), "Bearer tok-123");
    let reqs: Vec<_> = got
        .iter()
        .map(|(_, b)| ExportTraceServiceRequest::decode(b.as_ref()).unwrap())
        .collect();
    check_otlp(&reqs, &ids);
}

#[tokio::test(flavor = "multi_thread")]
async fn zipkin_json_matches_the_v2_api() {
    let _serial = support::agent(|_| {});
    drop(_serial.guard);
    let (addr, got) = http_receiver("/api/v2/spans").await;
    let cfg = config(
        TraceReporterType::Zipkin,
        format!("http://{addr}/api/v2/spans"),
    );
    let ids = tokio::task::spawn_blocking(move || emit_and_shutdown(cfg))
        .await
        .unwrap();
    let got = got.lock().unwrap();
    assert_eq!(got[0].0.get("authorization").unwrap(), "Bearer tok-123");
    let spans: Vec<serde_json::Value> = got
        .iter()
        .flat_map(|(_, b)| serde_json::from_slice::<Vec<serde_json::Value>>(b).unwrap())
        .collect();
    assert_eq!(spans.len(), 2);
    let hexlen = |v: &serde_json::Value, n: usize| {
        v.as_str().is_some_and(|s| {
            s.len() == n
                && s.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        })
    };
    for s in &spans {
        // zipkin2-api.yaml: ids lower-case hex, times integers, tags strings, kind from the enum.
        assert!(hexlen(&s["traceId"], 32) && hexlen(&s["id"], 16), "{s}");
        assert!(s["timestamp"].is_u64() && s["duration"].as_u64().unwrap() >= 1);
        assert!(s["tags"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v.is_string()));
        assert_eq!(s["localEndpoint"]["serviceName"], "wire-test");
    }
    let child = spans
        .iter()
        .find(|s| s["name"] == "GET /users/{id}")
        .unwrap();
    assert_eq!(child["traceId"], ids.0.as_str());
    assert_eq!(child["id"], ids.1.as_str());
    assert_eq!(child["parentId"], ids.2.as_str());
    assert_eq!(child["kind"], "SERVER");
    assert_eq!(child["tags"]["http.status_code"], "200");
    let parent = spans.iter().find(|s| s["name"] == "parent").unwrap();
    assert!(parent.get("parentId").is_none() && parent.get("kind").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_collector_does_not_hang_shutdown() {
    let _serial = support::agent(|_| {});
    drop(_serial.guard);
    // A listener that accepts and never answers: the worst case (a refused port fails fast).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    for ty in [
        TraceReporterType::Otlp,
        TraceReporterType::OtlpHttp,
        TraceReporterType::Zipkin,
    ] {
        let mut cfg = config(ty, format!("http://{addr}/v1/traces"));
        cfg.rustagent.shutdown_timeout = Duration::from_millis(500);
        let start = Instant::now();
        tokio::task::spawn_blocking(move || emit_and_shutdown(cfg))
            .await
            .unwrap();
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "{ty:?}: shutdown took {took:?}"
        );
    }
    drop(silent);
}

const TLS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

fn tls_identity() -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(format!("{TLS_DIR}/server.pem")).unwrap(),
        std::fs::read(format!("{TLS_DIR}/server.key")).unwrap(),
    )
}

/// `secure: true` + `cert_file`: OTLP/gRPC over TLS to a collector with a private CA.
#[tokio::test(flavor = "multi_thread")]
async fn otlp_grpc_over_tls_with_cert_file() {
    let _serial = support::agent(|_| {});
    drop(_serial.guard);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recv = GrpcReceiver::default();
    let (cert, key) = tls_identity();
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(cert, key));
    let svc = TraceServiceServer::new(recv.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(svc)
            .serve_with_incoming(tokio_stream_from(listener))
            .await
            .unwrap();
    });
    for (cert_file, delivered) in [(Some(format!("{TLS_DIR}/ca.pem")), true), (None, false)] {
        let mut cfg = config(
            TraceReporterType::Otlp,
            format!("http://localhost:{}", addr.port()),
        );
        cfg.reporting.secure = true;
        cfg.reporting.cert_file = cert_file.map(Into::into);
        cfg.rustagent.shutdown_timeout = Duration::from_secs(2);
        recv.got.lock().unwrap().clear();
        let ids = tokio::task::spawn_blocking(move || emit_and_shutdown(cfg))
            .await
            .unwrap();
        if delivered {
            check_otlp(&recv.got.lock().unwrap(), &ids);
        } else {
            assert!(
                recv.got.lock().unwrap().is_empty(),
                "an unknown CA must not be trusted"
            );
        }
    }
}

/// The same for the HTTP reporters (OTLP/HTTP and Zipkin share one client).
#[tokio::test(flavor = "multi_thread")]
async fn otlp_http_and_zipkin_over_tls_with_cert_file() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let _serial = support::agent(|_| {});
    drop(_serial.guard);
    let (cert, key) = tls_identity();
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(&cert)
        .map(|c| c.unwrap())
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&key).unwrap();
    let server_cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let g = g.clone();
        async move {
            g.lock().unwrap().push(uri.path().to_string());
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    for (ty, path) in [
        (TraceReporterType::OtlpHttp, "/v1/traces"),
        (TraceReporterType::Zipkin, "/api/v2/spans"),
    ] {
        let mut cfg = config(ty, format!("https://localhost:{port}{path}"));
        cfg.reporting.cert_file = Some(format!("{TLS_DIR}/ca.pem").into());
        tokio::task::spawn_blocking(move || emit_and_shutdown(cfg))
            .await
            .unwrap();
        assert!(
            got.lock().unwrap().iter().any(|p| p == path),
            "{ty:?} over TLS: {:?}",
            got.lock().unwrap()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The standard OpenTelemetry variables, read through the configuration's environment source
// (`ConfigBuilder::env_vars`), each shown to change what reaches a collector.

use hypertrace::config::ConfigBuilder;
use std::sync::atomic::Ordering;
use support::receivers::{wait_until, BadCollector, Collector, CollectorKind, Misbehaviour};

/// An agent (not installed: its provider is used directly) configured from these variables only.
fn agent_from_env(vars: &[(&str, String)]) -> Agent {
    let (cfg, warnings) = ConfigBuilder::new("otel-env")
        .env_vars(vars.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .load()
        .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    Agent::from_config(cfg).unwrap()
}

fn emit(agent: &Agent, n: usize, body: &str) {
    let tracer = agent.tracer_provider().tracer("otel-env");
    for i in 0..n {
        let mut s = tracer.start(format!("span-{i}"));
        s.set_attribute(KeyValue::new("http.request.body", body.to_owned()));
        s.end();
    }
}

fn spans_per_request(c: &Collector) -> Vec<usize> {
    c.got
        .otlp
        .lock()
        .unwrap()
        .iter()
        .map(|r| support::receivers::otlp_spans(std::slice::from_ref(r)).len())
        .collect()
}

fn header_values(c: &Collector, name: &str) -> Vec<String> {
    c.got
        .headers
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL` picks gRPC or HTTP/protobuf (each collector speaks only one), and
/// `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` compresses the requests; without it they go plain.
#[test]
fn otel_protocol_and_compression_reach_the_collector() {
    let body = "compressible ".repeat(4096);
    for (kind, protocol, header) in [
        (CollectorKind::Grpc, "grpc", "grpc-encoding"),
        (CollectorKind::Http, "http/protobuf", "content-encoding"),
    ] {
        for gzip in [true, false] {
            let c = Collector::start(kind);
            let mut vars = vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", c.addr)),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
            ];
            if gzip {
                vars.push(("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()));
            }
            let agent = agent_from_env(&vars);
            emit(&agent, 3, &body);
            agent.tracer_provider().force_flush().unwrap();
            let _ = agent.tracer_provider().shutdown();
            assert_eq!(spans_per_request(&c).iter().sum::<usize>(), 3, "{protocol}");
            let raw = c.got.raw.lock().unwrap().concat();
            assert!(
                raw.len() > 3 * body.len(),
                "{protocol}: the bodies arrived decoded"
            );
            let enc = header_values(&c, header);
            if gzip {
                assert!(
                    !enc.is_empty() && enc.iter().all(|v| v == "gzip"),
                    "{protocol}: {enc:?}"
                );
            } else {
                assert!(enc.iter().all(|v| v == "identity"), "{protocol}: {enc:?}");
            }
        }
    }
}

/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` splits the export; `OTEL_BSP_MAX_QUEUE_SIZE` bounds the queue.
#[test]
fn otel_bsp_batch_and_queue_sizes() {
    let c = Collector::start(CollectorKind::Http);
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", c.addr));
    let proto = ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string());
    let agent = agent_from_env(&[
        endpoint.clone(),
        proto.clone(),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "3".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000".into()),
    ]);
    emit(&agent, 10, "x");
    agent.tracer_provider().force_flush().unwrap();
    let _ = agent.tracer_provider().shutdown();
    assert_eq!(spans_per_request(&c), [3, 3, 3, 1]);

    let c = Collector::start(CollectorKind::Http);
    let agent = agent_from_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", c.addr)),
        proto,
        ("OTEL_BSP_MAX_QUEUE_SIZE", "5".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000".into()),
    ]);
    emit(&agent, 12, "x");
    assert_eq!(agent.stats().dropped.load(Ordering::Relaxed), 7);
    agent.tracer_provider().force_flush().unwrap();
    let _ = agent.tracer_provider().shutdown();
    assert_eq!(spans_per_request(&c).iter().sum::<usize>(), 5);
}

/// `OTEL_BSP_SCHEDULE_DELAY`: a lone span leaves after the delay, not before.
#[test]
fn otel_bsp_schedule_delay() {
    for (delay, arrives) in [("50", true), ("60000", false)] {
        let c = Collector::start(CollectorKind::Grpc);
        let agent = agent_from_env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", c.addr)),
            ("OTEL_BSP_SCHEDULE_DELAY", delay.into()),
        ]);
        emit(&agent, 1, "x");
        let got = wait_until(Duration::from_millis(1500), || {
            !c.got.otlp.lock().unwrap().is_empty()
        });
        assert_eq!(got, arrives, "OTEL_BSP_SCHEDULE_DELAY={delay}");
        let _ = agent.tracer_provider().shutdown();
    }
}

/// `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` and `OTEL_BSP_EXPORT_TIMEOUT`
/// bound an attempt against a collector that never answers (the default would wait 10 s).
#[test]
fn otel_export_timeouts_bound_an_attempt() {
    let silent = BadCollector::start(Misbehaviour::Silent);
    for var in [
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_BSP_EXPORT_TIMEOUT",
    ] {
        for protocol in ["grpc", "http/protobuf"] {
            let agent = agent_from_env(&[
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!("http://{}", silent.addr),
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
                ("OTEL_BSP_SCHEDULE_DELAY", "10".into()),
                (var, "300".into()),
            ]);
            let start = Instant::now();
            emit(&agent, 1, "x");
            let failed = wait_until(Duration::from_secs(5), || {
                agent.stats().failed_exports.load(Ordering::Relaxed) >= 1
            });
            let took = start.elapsed();
            assert!(
                failed && took < Duration::from_secs(3),
                "{var} {protocol}: {took:?}"
            );
            let _ = agent.tracer_provider().shutdown();
        }
    }
}

/// A TCP relay on a free loopback port to `to`, counting the bytes that go towards `to`: what the
/// agent really puts on the wire, below HTTP/2 and TLS framing.
fn counting_relay(
    to: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::AtomicU64;

    fn pipe(mut from: TcpStream, mut to: TcpStream, count: Option<Arc<AtomicU64>>) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if let Some(c) = &count {
                        c.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let up = Arc::new(AtomicU64::new(0));
    let counter = up.clone();
    // Ends with the test process: it only ever serves this test's agent.
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = TcpStream::connect(to) else {
                continue;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let count = counter.clone();
            std::thread::spawn(move || pipe(client, server, Some(count)));
            std::thread::spawn(move || pipe(s2, c2, None));
        }
    });
    (addr, up)
}

/// `rustagent.compression: gzip` compresses what goes over the wire, for both OTLP protocols: the
/// bytes the agent sends (counted by a relay in front of the collector) shrink, and the collector
/// still gets every span with its body intact.
#[test]
fn gzip_shrinks_the_bytes_on_the_wire() {
    let body = "compressible ".repeat(4096);
    for (kind, protocol, path) in [
        (CollectorKind::Grpc, "grpc", ""),
        (CollectorKind::Http, "http/protobuf", "/v1/traces"),
    ] {
        let mut sent = Vec::new();
        for gzip in [false, true] {
            let c = Collector::start(kind);
            let (relay, up) = counting_relay(c.addr);
            let mut vars = vec![
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    format!("http://{relay}{path}"),
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
            ];
            if gzip {
                vars.push(("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip".into()));
            }
            let agent = agent_from_env(&vars);
            emit(&agent, 3, &body);
            agent.tracer_provider().force_flush().unwrap();
            let _ = agent.tracer_provider().shutdown();
            let spans = c.got.spans();
            assert_eq!(spans.len(), 3, "{protocol} gzip={gzip}");
            for (_, s) in &spans {
                assert_eq!(
                    support::receivers::pattr_str(&s.attributes, "http.request.body").as_deref(),
                    Some(body.as_str()),
                    "{protocol} gzip={gzip}: the body arrived whole"
                );
            }
            sent.push(up.load(Ordering::Relaxed));
        }
        let (plain, gz) = (sent[0], sent[1]);
        assert!(
            plain > 3 * body.len() as u64,
            "{protocol}: {plain} bytes uncompressed"
        );
        assert!(
            gz * 10 < plain,
            "{protocol}: gzip sent {gz} bytes against {plain} uncompressed"
        );
        eprintln!("{protocol}: {plain} bytes on the wire uncompressed, {gz} with gzip");
    }
}
