//! Collector stand-ins and the demo server as a child process, for the wire, end-to-end and
//! reliability tests.
//!
//! - [`grpc_receiver`] / [`http_receiver`]: receivers on the caller's tokio runtime (export_wire.rs).
//! - [`Collector`]: an OTLP/gRPC or HTTP (OTLP/HTTP + Zipkin) receiver on its own thread and runtime,
//!   that can be killed (every connection dropped at once, as when a collector crashes) and restarted
//!   on the same port.
//! - [`BadCollector`]: one that is down, silent (accepts, never answers), answers HTTP 500 (or a
//!   gRPC error), or answers garbage bytes.
//! - [`DemoServer`]: `examples/server.rs` as a child process, with its stdout and stderr collected.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue as ProtoKeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use prost::Message;

pub type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

// ---------------------------------------------------------------------------------------------
// Receivers on the caller's runtime.

#[derive(Clone, Default)]
pub struct GrpcReceiver {
    pub got: Received,
    pub metadata: Arc<Mutex<Vec<(String, String)>>>,
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let md: Vec<(String, String)> = req
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        self.metadata.lock().unwrap().extend(md);
        self.got.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

pub async fn grpc_receiver() -> (SocketAddr, GrpcReceiver) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recv = GrpcReceiver::default();
    let svc = TraceServiceServer::new(recv.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream_from(listener))
            .await
            .unwrap();
    });
    (addr, recv)
}

pub fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

/// An HTTP receiver at `path` that keeps each request's headers and body.
pub async fn http_receiver(
    path: &'static str,
) -> (SocketAddr, Arc<Mutex<Vec<(axum::http::HeaderMap, Bytes)>>>) {
    let got: Arc<Mutex<Vec<(axum::http::HeaderMap, Bytes)>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        path,
        post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((headers, body));
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    (super::serve(app).await, got)
}

// ---------------------------------------------------------------------------------------------
// OTLP data helpers.

/// Every span of the requests, with the resource it came under.
pub fn otlp_spans(reqs: &[ExportTraceServiceRequest]) -> Vec<(ProtoResource, ProtoSpan)> {
    let mut out = Vec::new();
    for r in reqs {
        for rs in &r.resource_spans {
            let res = rs.resource.clone().unwrap_or_default();
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    out.push((res.clone(), s.clone()));
                }
            }
        }
    }
    out
}

pub fn pattr(kvs: &[ProtoKeyValue], key: &str) -> Option<AnyValue> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

/// A string attribute (`None` when absent or not a string).
pub fn pattr_str(kvs: &[ProtoKeyValue], key: &str) -> Option<String> {
    match pattr(kvs, key) {
        Some(AnyValue::StringValue(s)) => Some(s),
        _ => None,
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// A collector on its own runtime, killable and restartable on the same port.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectorKind {
    /// OTLP/gRPC.
    Grpc,
    /// HTTP: OTLP/HTTP protobuf at `/v1/traces`, Zipkin v2 JSON at `/api/v2/spans`.
    Http,
}

/// What a [`Collector`] received, across restarts.
#[derive(Clone, Default)]
pub struct Got {
    /// OTLP requests (gRPC, or OTLP/HTTP decoded).
    pub otlp: Received,
    /// Zipkin spans.
    pub zipkin: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Every export request's bytes as they came over the wire (gRPC: the message re-encoded).
    pub raw: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Request headers / gRPC metadata of every export.
    pub headers: Arc<Mutex<Vec<(String, String)>>>,
    /// How long each export waits before it is answered (a slow collector); zero by default.
    pub delay: Arc<Mutex<Duration>>,
    /// A partial success to answer OTLP exports (gRPC and HTTP) with: (rejected spans, message).
    pub partial: Arc<Mutex<Option<(i64, String)>>>,
}

impl Got {
    async fn wait_delay(&self) {
        let d = *self.delay.lock().unwrap();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

impl Got {
    pub fn spans(&self) -> Vec<(ProtoResource, ProtoSpan)> {
        otlp_spans(&self.otlp.lock().unwrap())
    }

    /// Whether any raw export payload contains `needle`.
    pub fn raw_contains(&self, needle: &[u8]) -> bool {
        self.raw
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.windows(needle.len()).any(|w| w == needle))
    }
}

#[derive(Clone)]
struct GotService(Got);

#[tonic::async_trait]
impl TraceService for GotService {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let md: Vec<(String, String)> = req
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        self.0.headers.lock().unwrap().extend(md);
        self.0.wait_delay().await;
        let msg = req.into_inner();
        self.0.raw.lock().unwrap().push(msg.encode_to_vec());
        self.0.otlp.lock().unwrap().push(msg);
        let partial_success = self
            .0
            .partial
            .lock()
            .unwrap()
            .clone()
            .map(|(rejected, msg)| {
                opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: msg,
                }
            });
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}

pub struct Collector {
    pub kind: CollectorKind,
    pub addr: SocketAddr,
    pub got: Got,
    /// The certificate chain and key (PEM) it serves TLS with; `None`: plaintext.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Collector {
    /// Starts on a free port of 127.0.0.1.
    pub fn start(kind: CollectorKind) -> Collector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Collector {
            kind,
            addr,
            got: Got::default(),
            tls: None,
            rt: None,
        };
        c.run(listener);
        c
    }

    /// Starts serving TLS with this certificate chain and key (PEM); [`Collector::restart`] uses
    /// whatever `tls` holds then (a certificate rotation).
    pub fn start_tls(kind: CollectorKind, cert: Vec<u8>, key: Vec<u8>) -> Collector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Collector {
            kind,
            addr,
            got: Got::default(),
            tls: Some((cert, key)),
            rt: None,
        };
        c.run(listener);
        c
    }

    fn run(&mut self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let got = self.got.clone();
        let kind = self.kind;
        let tls = self.tls.clone();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            if let Some((cert, key)) = tls {
                serve_tls(listener, kind, got, cert, key).await;
                return;
            }
            match kind {
                CollectorKind::Grpc => {
                    // Collectors accept gzip (`OTEL_EXPORTER_OTLP_COMPRESSION=gzip`).
                    let svc = TraceServiceServer::new(GotService(got))
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
                    let _ = tonic::transport::Server::builder()
                        .add_service(svc)
                        .serve_with_incoming(tokio_stream_from(listener))
                        .await;
                }
                CollectorKind::Http => {
                    let _ = axum::serve(listener, http_app(got)).await;
                }
            }
        });
        self.rt = Some(rt);
    }

    /// Drops the runtime: the listener and every open connection close at once.
    pub fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    /// Starts (plaintext) on `addr`, which a misbehaving collector held until now.
    pub fn start_on(kind: CollectorKind, addr: SocketAddr) -> Collector {
        let mut c = Collector {
            kind,
            addr,
            got: Got::default(),
            tls: None,
            rt: None,
        };
        c.restart();
        c
    }

    /// The `/users/{id}` ids of the spans received, OTLP and Zipkin alike.
    pub fn user_ids(&self) -> std::collections::HashSet<u64> {
        let mut ids = user_ids(&self.got.spans());
        ids.extend(
            self.got
                .zipkin
                .lock()
                .unwrap()
                .iter()
                .filter_map(|s| s["tags"]["http.target"].as_str().map(str::to_owned))
                .filter_map(|t| {
                    t.strip_prefix("/users/")
                        .and_then(|i| i.parse::<u64>().ok())
                }),
        );
        ids
    }

    /// Listens again on the same address (retrying while the port is still held).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match std::net::TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.run(listener);
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The collector behind rustls (aws-lc-rs, the agent's own provider): HTTP/1.1 and HTTP/2 for the
/// HTTP routes, HTTP/2 for gRPC. A handshake the client aborts is just that connection's end.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    kind: CollectorKind,
    got: Got,
    cert: Vec<u8>,
    key: Vec<u8>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(&cert)
        .map(|c| c.unwrap())
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&key).unwrap();
    let mut cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let app = match kind {
        CollectorKind::Http => http_app(got),
        CollectorKind::Grpc => axum::Router::new().route_service(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            TraceServiceServer::new(GotService(got))
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        ),
    };
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
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
}

fn http_app(got: Got) -> axum::Router {
    let g1 = got.clone();
    let g2 = got;
    axum::Router::new()
        .route(
            "/v1/traces",
            post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let g = g1.clone();
                async move {
                    record_headers(&g, &headers);
                    g.wait_delay().await;
                    let body = decoded(&headers, body);
                    g.raw.lock().unwrap().push(body.to_vec());
                    match ExportTraceServiceRequest::decode(body.as_ref()) {
                        Ok(req) => {
                            g.otlp.lock().unwrap().push(req);
                            let partial_success = g.partial.lock().unwrap().clone().map(
                                |(rejected_spans, error_message)| {
                                    opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                                        rejected_spans,
                                        error_message,
                                    }
                                },
                            );
                            (
                                axum::http::StatusCode::OK,
                                [("content-type", "application/x-protobuf")],
                                ExportTraceServiceResponse { partial_success }.encode_to_vec(),
                            )
                        }
                        Err(_) => (
                            axum::http::StatusCode::BAD_REQUEST,
                            [("content-type", "text/plain")],
                            b"bad protobuf".to_vec(),
                        ),
                    }
                }
            }),
        )
        .route(
            "/api/v2/spans",
            post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let g = g2.clone();
                async move {
                    record_headers(&g, &headers);
                    let body = decoded(&headers, body);
                    g.raw.lock().unwrap().push(body.to_vec());
                    match serde_json::from_slice::<Vec<serde_json::Value>>(&body) {
                        Ok(spans) => {
                            g.zipkin.lock().unwrap().extend(spans);
                            axum::http::StatusCode::ACCEPTED
                        }
                        Err(_) => axum::http::StatusCode::BAD_REQUEST,
                    }
                }
            }),
        )
}

/// The body with a `Content-Encoding: gzip` undone (collectors forward compressed by default).
fn decoded(headers: &axum::http::HeaderMap, body: Bytes) -> Bytes {
    if headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"))
    {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(body.as_ref())
            .read_to_end(&mut out)
            .is_ok()
        {
            return out.into();
        }
    }
    body
}

fn record_headers(g: &Got, headers: &axum::http::HeaderMap) {
    let mut h = g.headers.lock().unwrap();
    for (k, v) in headers {
        h.push((
            k.to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Misbehaving collectors.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Nothing listens on the port: connections are refused.
    Down,
    /// Accepts connections, reads nothing, never answers.
    Silent,
    /// Answers every request with HTTP 500 (HTTP/1.1 and HTTP/2, so gRPC clients get it too).
    Http500,
    /// A gRPC server whose Export answers `UNAVAILABLE`.
    GrpcUnavailable,
    /// Answers every connection with bytes that are neither HTTP/1 nor HTTP/2, then closes.
    Garbage,
    /// Answers 200 (gRPC: with `application/grpc`), sends the start of a body, then closes the
    /// connection in the middle of the response (HTTP/1.1 and HTTP/2 alike).
    CutMidResponse,
}

pub struct BadCollector {
    pub addr: SocketAddr,
    pub what: Misbehaviour,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    _rt: Option<tokio::runtime::Runtime>,
}

impl BadCollector {
    pub fn start(what: Misbehaviour) -> BadCollector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut rt = None;
        match what {
            Misbehaviour::Down => drop(listener),
            Misbehaviour::Silent | Misbehaviour::Garbage => {
                let (conns, stop) = (connections.clone(), stop.clone());
                listener.set_nonblocking(true).unwrap();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((mut s, _)) => {
                                conns.fetch_add(1, Ordering::Relaxed);
                                if what == Misbehaviour::Garbage {
                                    let _ = s.set_nonblocking(false);
                                    let _ = s.write_all(&garbage(4096));
                                    // Read what the client sent, then close: the client sees garbage
                                    // then EOF rather than a reset before it reads.
                                    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                                    let _ = s.read(&mut [0u8; 65536]);
                                } else {
                                    held.push(s);
                                }
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                });
            }
            Misbehaviour::Http500
            | Misbehaviour::GrpcUnavailable
            | Misbehaviour::CutMidResponse => {
                let r = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap();
                listener.set_nonblocking(true).unwrap();
                let conns = connections.clone();
                r.spawn(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    if what == Misbehaviour::GrpcUnavailable {
                        let conns2 = conns.clone();
                        let incoming = futures_util::StreamExt::inspect(
                            tokio_stream_from(listener),
                            move |_| {
                                conns2.fetch_add(1, Ordering::Relaxed);
                            },
                        );
                        let _ = tonic::transport::Server::builder()
                            .add_service(TraceServiceServer::new(Unavailable))
                            .serve_with_incoming(incoming)
                            .await;
                        return;
                    }
                    let app = if what == Misbehaviour::CutMidResponse {
                        axum::Router::new().fallback(cut_mid_response)
                    } else {
                        axum::Router::new().fallback(|| async {
                            (
                                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                                "collector exploded",
                            )
                        })
                    };
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            continue;
                        };
                        conns.fetch_add(1, Ordering::Relaxed);
                        // The handler of a cut response asks for its connection to be dropped.
                        let cut = Arc::new(tokio::sync::Notify::new());
                        let app = app.clone().layer(axum::Extension(cut.clone()));
                        tokio::spawn(async move {
                            use hyper_util::rt::{TokioExecutor, TokioIo};
                            let svc = hyper_util::service::TowerToHyperService::new(app);
                            let builder =
                                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                            let conn = builder.serve_connection(TokioIo::new(tcp), svc);
                            tokio::select! {
                                _ = conn => {}
                                _ = cut.notified() => {}
                            }
                        });
                    }
                });
                rt = Some(r);
            }
        }
        BadCollector {
            addr,
            what,
            connections,
            stop,
            _rt: rt,
        }
    }
}

impl Drop for BadCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(rt) = self._rt.take() {
            rt.shutdown_background();
        }
    }
}

/// 200, then five bytes of a body that promised more, then the connection is dropped.
async fn cut_mid_response(
    axum::Extension(cut): axum::Extension<Arc<tokio::sync::Notify>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let grpc = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    // A gRPC frame header announcing 100 bytes (for HTTP, just the first bytes of a body); then,
    // once it had time to leave, the connection goes away with the response unfinished.
    let first = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(Bytes::from_static(&[0, 0, 0, 0, 100]))
    });
    let then = futures_util::stream::once(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cut.notify_one();
        std::future::pending::<Result<Bytes, std::io::Error>>().await
    });
    let body = axum::body::Body::from_stream(futures_util::StreamExt::chain(first, then));
    axum::response::Response::builder()
        .status(200)
        .header(
            "content-type",
            if grpc {
                "application/grpc"
            } else {
                "application/x-protobuf"
            },
        )
        .header("content-length", "1000")
        .body(body)
        .unwrap()
}

#[derive(Clone, Copy)]
struct Unavailable;

#[tonic::async_trait]
impl TraceService for Unavailable {
    async fn export(
        &self,
        _req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        Err(tonic::Status::unavailable("collector overloaded"))
    }
}

/// Deterministic junk (xorshift), starting with bytes no HTTP parser accepts.
pub fn garbage(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = b"\x00\xffGARBAGE\r\n\r\n".to_vec();
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out
}

/// A port of 127.0.0.1 that nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// Polls `f` every 20 ms until it is true or `timeout` passes; returns whether it became true.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// The demo server (examples/server.rs) as a child process.

/// `target/debug/examples/server`, found from the test executable (`target/debug/deps/<test>`).
/// `.ci/run` builds it with `cargo build --example server` before the tests.
pub fn demo_server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|d| d.join("examples").join("server"))
        .unwrap();
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --example server` before these tests",
        path.display()
    );
    // `cargo test --test x` does not rebuild examples: refuse to test an old binary.
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let newest = [
        "src",
        "examples",
        "hypertrace-runtime/src",
        "hypertrace-macros/src",
    ]
    .iter()
    .flat_map(|d| rs_files(&root.join(d)))
    .max_by_key(|(t, _)| *t);
    if let Some((t, file)) = newest {
        assert!(
            t <= built,
            "{} is older than {}: run `cargo build --example server` before these tests",
            path.display(),
            file.display()
        );
    }
    path
}

fn rs_files(dir: &std::path::Path) -> Vec<(std::time::SystemTime, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rs_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                out.push((t, p));
            }
        }
    }
    out
}

pub struct DemoServer {
    pub child: Child,
    pub addr: SocketAddr,
    pub started: Instant,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// `HT_*`, `OTEL_*` and `RUST_LOG` of the test's own environment are not passed on: each scenario
/// sets what it needs.
fn scrubbed(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("HT_") || k.starts_with("OTEL_") || k == "RUST_LOG" || k == "DEMO_ADDR" {
            cmd.env_remove(k);
        }
    }
}

impl DemoServer {
    /// Starts the demo server on a free port with these extra variables, and waits until it listens.
    pub fn start(envs: &[(&str, String)]) -> DemoServer {
        Self::start_with(envs, |_| {})
    }

    /// Like [`start`](Self::start), with a last touch on the command (e.g. another uid).
    pub fn start_with(envs: &[(&str, String)], touch: impl FnOnce(&mut Command)) -> DemoServer {
        let mut server = Self::spawn(envs, touch);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let err = String::from_utf8_lossy(&server.stderr.lock().unwrap()).into_owned();
            // A whole line only: the reader thread may have appended part of it so far.
            let complete = err.split_inclusive('\n').filter(|l| l.ends_with('\n'));
            if let Some(line) = complete
                .map(str::trim_end)
                .find(|l| l.starts_with("server: listening on "))
            {
                server.addr = line["server: listening on ".len()..]
                    .trim()
                    .parse()
                    .unwrap();
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                server.join_readers();
                panic!(
                    "demo server exited ({status}) before listening; stderr:\n{}",
                    server.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "demo server did not start; stderr:\n{err}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Spawns without waiting for it to listen (for start-up failures).
    pub fn spawn(envs: &[(&str, String)], touch: impl FnOnce(&mut Command)) -> DemoServer {
        let mut cmd = Command::new(demo_server_binary());
        scrubbed(&mut cmd);
        cmd.env("DEMO_ADDR", "127.0.0.1:0").env("RUST_LOG", "info");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        touch(&mut cmd);
        let started = Instant::now();
        let mut child = cmd.spawn().expect("spawn the demo server");
        let stdout: Arc<Mutex<Vec<u8>>> = Arc::default();
        let stderr: Arc<Mutex<Vec<u8>>> = Arc::default();
        let mut readers = Vec::new();
        let out = child.stdout.take().unwrap();
        let buf = stdout.clone();
        readers.push(std::thread::spawn(move || pump(out, buf)));
        let err = child.stderr.take().unwrap();
        let buf = stderr.clone();
        readers.push(std::thread::spawn(move || pump(err, buf)));
        DemoServer {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            started,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM: the demo server stops gracefully (`hypertrace::shutdown_signal()`) and flushes.
    /// Returns when the signal was sent.
    pub fn sigterm(&self) -> Instant {
        // No grace period needed: `shutdown_signal()` installs its handlers when called, before the
        // server prints its address, so even an immediate SIGTERM is a graceful one.
        let at = Instant::now();
        signal(self.pid(), "TERM");
        at
    }

    /// Waits for the exit, at most `timeout`; then the output is complete.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.join_readers();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then the time until the process has exited (panics past `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let t = self.sigterm();
        match self.wait(timeout) {
            Some(status) => (status, t.elapsed()),
            None => {
                let _ = self.child.kill();
                let _ = self.wait(Duration::from_secs(5));
                panic!(
                    "demo server still running {timeout:?} after SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// `VmRSS` and `VmHWM` (peak) of the process, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        proc_memory_kib(self.pid())
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn pump(mut from: impl Read, into: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends a signal with kill(1) (no libc in the dev-dependencies).
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -{sig} {pid} failed");
}

/// `VmRSS` and `VmHWM` of a process, in KiB (0 when unknown).
pub fn proc_memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Lines of `text` that contain `needle`.
pub fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

/// Reads lines from a child's pipe into a shared buffer (for collectors run as processes).
pub fn pump_lines(
    from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => into.lock().unwrap().extend_from_slice(&line),
            }
        }
    })
}

/// Percentile (0..=100) of durations, in milliseconds.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx.min(v.len() - 1)]
}

// ---------------------------------------------------------------------------------------------
// Load: client threads sending `GET /users/{id}` with distinct ids, in numbered phases.

#[derive(Clone, Debug)]
pub struct Sample {
    pub phase: usize,
    pub id: u64,
    /// The status, or the client's error.
    pub result: Result<u16, String>,
    pub latency: Duration,
    pub started: Instant,
}

pub struct Load {
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `clients` threads, each with its own keep-alive connection, pausing `pause` between requests.
    pub fn start(base: &str, clients: usize, pause: Duration) -> Load {
        let phase = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let threads = (0..clients)
            .map(|_| {
                let (phase, stop, samples, next, base) = (
                    phase.clone(),
                    stop.clone(),
                    samples.clone(),
                    next.clone(),
                    base.to_string(),
                );
                std::thread::spawn(move || {
                    let c = reqwest::blocking::Client::builder()
                        .no_proxy()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        let p = phase.load(Ordering::Relaxed);
                        let started = Instant::now();
                        let result = c.get(format!("{base}/users/{id}")).send().and_then(|r| {
                            let s = r.status().as_u16();
                            r.bytes().map(|_| s)
                        });
                        let result = result.map_err(|e| format!("{e:?}"));
                        samples.lock().unwrap().push(Sample {
                            phase: p,
                            id,
                            result,
                            latency: started.elapsed(),
                            started,
                        });
                        if !pause.is_zero() {
                            std::thread::sleep(pause);
                        }
                    }
                })
            })
            .collect();
        Load {
            phase,
            stop,
            samples,
            threads,
        }
    }

    pub fn set_phase(&self, p: usize) {
        self.phase.store(p, Ordering::Relaxed);
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        self.samples()
    }
}

/// The ids of `/users/{id}` in the spans' `http.target`.
pub fn user_ids(spans: &[(ProtoResource, ProtoSpan)]) -> std::collections::HashSet<u64> {
    spans
        .iter()
        .filter_map(|(_, s)| pattr_str(&s.attributes, "http.target"))
        .filter_map(|t| t.strip_prefix("/users/").and_then(|i| i.parse().ok()))
        .collect()
}

/// One line per phase: requests, failures, latency percentiles, spans that arrived.
pub fn phase_report(
    samples: &[Sample],
    names: &[&str],
    arrived: &std::collections::HashSet<u64>,
) -> String {
    let mut out = String::new();
    for (p, name) in names.iter().enumerate() {
        let of: Vec<&Sample> = samples.iter().filter(|s| s.phase == p).collect();
        let lat: Vec<Duration> = of.iter().map(|s| s.latency).collect();
        let failed = of.iter().filter(|s| s.result != Ok(200)).count();
        let got = of.iter().filter(|s| arrived.contains(&s.id)).count();
        out += &format!(
            "  phase {p} ({name}): {} requests, {failed} failed, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms; spans arrived {got}/{}\n",
            of.len(),
            percentile_ms(&lat, 50.0),
            percentile_ms(&lat, 99.0),
            percentile_ms(&lat, 100.0),
            of.len()
        );
    }
    out
}

/// Writes past libtest's output capture, so that numbers show in a passing run (and in CI's log).
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// The collector-restart scenario, shared by the in-test collector (`reliability`) and rotel
/// (`e2e_collector`): two clients load `server`; the collector is up (phase 0), killed (1), then
/// back on the same ports (2). Asserts that no request failed, that latency while it was down stayed
/// that of a request that never waits on export, that every span of a request answered while it was
/// down arrived after the restart (the batch processor retries; the queue is large enough for the
/// outage, and no drop may be reported), and that every span sent after the restart arrived.
/// Returns the report (phases, resume time, memory, shutdown time).
pub fn collector_restart_under_load<C>(
    label: &str,
    server: &mut DemoServer,
    pause: Duration,
    collector: &mut C,
    arrived: impl Fn(&C) -> std::collections::HashSet<u64>,
    kill: impl FnOnce(&mut C),
    restart: impl FnOnce(&mut C),
) -> String {
    let load = Load::start(&server.base(), 2, pause);
    std::thread::sleep(Duration::from_millis(1500));
    kill(collector);
    load.set_phase(1);
    std::thread::sleep(Duration::from_millis(2000));
    restart(collector);
    let restarted = Instant::now();
    load.set_phase(2);
    let resumed = wait_until(Duration::from_secs(30), || {
        let got = arrived(collector);
        load.samples()
            .iter()
            .any(|s| s.phase == 2 && got.contains(&s.id))
    });
    let resume_after = restarted.elapsed();
    std::thread::sleep(Duration::from_millis(1000));
    let samples = load.stop();
    let (rss, hwm) = proc_memory_kib(server.pid());
    let (status, took) = server.stop(Duration::from_secs(15));
    assert!(status.success(), "{label}: {status}");

    let ids_of = |phase: usize| -> std::collections::HashSet<u64> {
        samples
            .iter()
            .filter(|s| s.phase == phase)
            .map(|s| s.id)
            .collect()
    };
    let (down, after) = (ids_of(1), ids_of(2));
    wait_until(Duration::from_secs(10), || {
        let got = arrived(collector);
        after.is_subset(&got) && down.is_subset(&got)
    });
    let got = arrived(collector);
    let mut report = phase_report(
        &samples,
        &["collector up", "collector killed", "collector restarted"],
        &got,
    );
    report += &format!(
        "  export resumed {resume_after:?} after the restart; server RSS {rss} KiB (peak {hwm} KiB); shutdown {took:?} after SIGTERM"
    );
    let failed: Vec<_> = samples.iter().filter(|s| s.result != Ok(200)).collect();
    assert!(
        failed.is_empty(),
        "{label}: requests failed: {:?}\n{report}",
        &failed[..failed.len().min(5)]
    );
    assert!(
        resumed,
        "{label}: export did not resume within 30 s of the restart\n{report}\n{}",
        server.stderr()
    );
    let missing = after.iter().filter(|i| !got.contains(i)).count();
    assert_eq!(
        missing, 0,
        "{label}: spans sent after the restart never arrived\n{report}"
    );
    let stderr = server.stderr();
    assert!(
        lines_with(&stderr, "spans dropped so far").is_empty(),
        "{label}: the queue overflowed, the scenario no longer measures retries\n{stderr}"
    );
    let lost = down.iter().filter(|i| !got.contains(i)).count();
    assert_eq!(
        lost, 0,
        "{label}: {lost} of {} spans enqueued while the collector was down never arrived\n{report}\n{stderr}",
        down.len()
    );
    let down: Vec<Duration> = samples
        .iter()
        .filter(|s| s.phase == 1)
        .map(|s| s.latency)
        .collect();
    // Generous for a loaded 2-core box: a request that waited on the exporter would take seconds.
    assert!(
        percentile_ms(&down, 99.0) < 250.0 && percentile_ms(&down, 50.0) < 50.0,
        "{label}: latency with the collector down\n{report}"
    );
    report
}
