//! Cost of the gRPC layers per unary call, next to plain tonic in the same run: a tonic client
//! and server in one process over HTTP/2 on 127.0.0.1, one `Unary` call per iteration (a
//! 256-byte message each way, 3 custom metadata entries).
//!
//! - `a-plain`: plain tonic, no layer.
//! - `b-hypertrace`: `server_layer()` and `client_layer()` with the descriptors, default config:
//!   two spans per call (CLIENT and SERVER), metadata and both messages as JSON on each, exported
//!   through the agent's batch processor into an exporter that encodes OTLP with the agent's own
//!   encoder (what its OTLP reporters send) and discards it.
//! - `c-disabled`: the same layers with `enabled: false` (context still propagated).
//! - `d-tower-http`: the usual way to trace tonic without the agent, the peer: tower-http's
//!   `TraceLayer::new_for_grpc()` on the server and on the client's channel, its `tracing` spans
//!   turned into OpenTelemetry spans by `tracing-opentelemetry` and exported through the SDK's
//!   `BatchSpanProcessor` into the same encoding exporter. Two spans per call, method, URI and
//!   version only: no metadata, no messages, no propagation between the two.
//!
//! Criterion runs the variants one after the other; then they run interleaved (15 rounds of 2,000
//! calls, the order rotating), which reports the median wall time per call of the rounds and the
//! process's CPU time per call (both ends and the export threads), each against plain tonic,
//! and writes them to `results/grpc.json` (for `report.py`).
//!
//!     cargo bench --bench grpc          # from benches/; ~2 min
//!
//! Instructions do not vary with the machine's load: `GRPC_COUNT="<variant> <n>"` makes the binary
//! make 50 warm-up calls and then `n` calls of one variant (`a-plain`, `b-hypertrace`,
//! `c-disabled`, `d-tower-http`), flush and exit, for `benches/callgrind-grpc.sh`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use futures_util::Stream;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};

mod echo {
    include!("../../tests/proto/echo.rs");
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("../../tests/proto/echo.bin");
}
use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};
use echo::{EchoReply, EchoRequest};

struct Svc;

type Replies = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for Svc {
    async fn unary(&self, r: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let r = r.into_inner();
        Ok(Response::new(EchoReply {
            message: r.message,
            index: 1,
            big: r.big,
            payload: Default::default(),
        }))
    }
    type ServerStreamStream = Replies;
    async fn server_stream(&self, _: Request<EchoRequest>) -> Result<Response<Replies>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn client_stream(
        &self,
        _: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented(""))
    }
    type BidiStream = Replies;
    async fn bidi(&self, _: Request<Streaming<EchoRequest>>) -> Result<Response<Replies>, Status> {
        Err(Status::unimplemented(""))
    }
}

fn request() -> Request<EchoRequest> {
    let mut r = Request::new(EchoRequest {
        message: "x".repeat(256),
        big: 42,
        tags: vec!["bench".into()],
        ..Default::default()
    });
    for (k, v) in [
        ("x-tenant", "acme"),
        ("x-request-id", "0123456789abcdef"),
        ("authorization", "Bearer t"),
    ] {
        r.metadata_mut().insert(k, v.parse().unwrap());
    }
    r
}

async fn server(layer: Option<hypertrace::grpc::ServerLayer>) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let incoming = TcpIncoming::from(l).with_nodelay(Some(true));
    match layer {
        Some(layer) => tokio::spawn(
            Server::builder()
                .tcp_nodelay(true)
                .layer(layer)
                .add_service(EchoServer::new(Svc))
                .serve_with_incoming(incoming),
        ),
        None => tokio::spawn(
            Server::builder()
                .tcp_nodelay(true)
                .add_service(EchoServer::new(Svc))
                .serve_with_incoming(incoming),
        ),
    };
    addr
}

/// The server of `d-tower-http`.
async fn traced_server() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let incoming = TcpIncoming::from(l).with_nodelay(Some(true));
    tokio::spawn(
        Server::builder()
            .tcp_nodelay(true)
            .layer(tower_http::trace::TraceLayer::new_for_grpc())
            .add_service(EchoServer::new(Svc))
            .serve_with_incoming(incoming),
    );
    addr
}

async fn channel(addr: SocketAddr) -> Channel {
    // No Nagle on either side: otherwise each call waits for a delayed ACK (≈ 40 ms).
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap()
}

/// The `tracing` subscriber of `d-tower-http`, the process's default from the start (the other
/// variants make no `tower_http` spans). Only tower-http's spans become OpenTelemetry spans: h2
/// and tonic have `tracing` spans of their own, which a service tracing its calls would filter
/// out too.
fn install_tower_http_tracing(exporter: hypertrace_benches::EncodingExporter) -> SdkTracerProvider {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .build();
    let only_tower_http =
        tracing_subscriber::filter::Targets::new().with_target("tower_http", tracing::Level::TRACE);
    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("bench"))
            .with_filter(only_tower_http),
    );
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per process");
    provider
}

/// An agent for `b-hypertrace` (`enabled`) or `c-disabled`, exporting into `exporter` (made with
/// `EncodingExporter::direct()`: the agent's own encoder, borrowing each batch, as its OTLP
/// reporters do; the peer's spans go through `transform` + prost, as opentelemetry-otlp's). The
/// `HT_*` variables apply, so that pieces can be switched off one at a time
/// (`HT_DATA_CAPTURE_RPC_BODY_REQUEST=false`, ...).
fn agent(enabled: bool, exporter: hypertrace_benches::EncodingExporter) -> hypertrace::Guard {
    let (mut config, _) = hypertrace::config::ConfigBuilder::new("bench")
        .load()
        .expect("HT_* configuration");
    config.enabled = enabled;
    hypertrace::Agent::with_batch_exporter(config, exporter).install()
}

fn report(name: &str, stats: &hypertrace_benches::EncodeStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let spans = stats.spans.load(Relaxed);
    eprintln!(
        "  {name}: {spans} spans exported, {} OTLP bytes/span, {} attributes on the first",
        stats.bytes.load(Relaxed).checked_div(spans).unwrap_or(0),
        stats.span_attributes.load(Relaxed)
    );
}

/// The runtime both ends run on (two workers), and the echo service's descriptors.
fn runtime_and_descriptors() -> (tokio::runtime::Runtime, hypertrace::grpc::Descriptors) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let descriptors = hypertrace::grpc::Descriptors::new(&[echo::FILE_DESCRIPTOR_SET]).unwrap();
    (rt, descriptors)
}

fn grpc(c: &mut Criterion) {
    let (rt, descriptors) = runtime_and_descriptors();
    let peer_exporter = hypertrace_benches::EncodingExporter::new();
    let peer_stats = peer_exporter.stats.clone();
    let peer = install_tower_http_tracing(peer_exporter);

    // Every pair stays up through the run. The hypertrace layers follow the agent installed
    // when a call is made: one pair serves `b` and `c`.
    let mut plain = EchoClient::new(rt.block_on(channel(rt.block_on(server(None)))));
    let layer = hypertrace::grpc::server_layer().descriptors(descriptors.clone());
    let ch = rt.block_on(channel(rt.block_on(server(Some(layer)))));
    let mut layered = EchoClient::new(
        tower::ServiceBuilder::new()
            .layer(hypertrace::grpc::client_layer().descriptors(descriptors.clone()))
            .service(ch),
    );
    let mut traced = EchoClient::new(
        tower::ServiceBuilder::new()
            .layer(tower_http::trace::TraceLayer::new_for_grpc())
            .service(rt.block_on(channel(rt.block_on(traced_server())))),
    );

    let mut group = c.benchmark_group("grpc-unary");
    group.bench_function("a-plain", |b| {
        b.iter(|| black_box(rt.block_on(plain.unary(request())).unwrap()))
    });
    for (name, enabled) in [("b-hypertrace", true), ("c-disabled", false)] {
        let exporter = hypertrace_benches::EncodingExporter::direct();
        let stats = exporter.stats.clone();
        let guard = agent(enabled, exporter);
        group.bench_function(name, |b| {
            b.iter(|| black_box(rt.block_on(layered.unary(request())).unwrap()))
        });
        guard.flush();
        report(name, &stats);
    }
    group.bench_function("d-tower-http", |b| {
        b.iter(|| black_box(rt.block_on(traced.unary(request())).unwrap()))
    });
    peer.force_flush().unwrap();
    report("d-tower-http", &peer_stats);
    group.finish();

    // The same variants interleaved, with the CPU time of every thread (both ends, the export
    // threads' encoding included: each block flushes its spans before it ends).
    const N: u32 = 2000;
    let names = ["a-plain", "b-hypertrace", "c-disabled", "d-tower-http"];
    let prepare = |v: usize| {
        (v == 1 || v == 2).then(|| agent(v == 1, hypertrace_benches::EncodingExporter::direct()))
    };
    let results = hypertrace_benches::interleaved("call", 15, N, &names, prepare, |v, guard| {
        rt.block_on(async {
            for _ in 0..N {
                let reply = match v {
                    0 => plain.unary(request()).await,
                    1 | 2 => layered.unary(request()).await,
                    _ => traced.unary(request()).await,
                };
                black_box(reply.unwrap());
            }
        });
        if let Some(g) = guard {
            g.flush();
        }
        if v == 3 {
            peer.force_flush().unwrap();
        }
    });
    let _ = peer.shutdown();
    // For `report.py` (the gRPC row of BENCHMARKS.md's targets table).
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/results/grpc.json");
    let doc = serde_json::json!({ "bench": "grpc-unary", "interleaved": results });
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap() + "\n")
        .expect("results/grpc.json");
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .sample_size(60)
}

/// `GRPC_COUNT="<variant> <n>"`: 50 + `n` calls of that variant, then a flush of its spans.
fn count(spec: &str) {
    let (variant, n) = spec.split_once(' ').expect("GRPC_COUNT=\"<variant> <n>\"");
    let n: u32 = n.parse().expect("a number of calls");
    let (rt, descriptors) = runtime_and_descriptors();
    let mut guard = None;
    let mut peer = None;
    let ch = match variant {
        "a-plain" => rt.block_on(channel(rt.block_on(server(None)))),
        "b-hypertrace" | "c-disabled" => {
            guard = Some(agent(
                variant == "b-hypertrace",
                hypertrace_benches::EncodingExporter::direct(),
            ));
            let layer = hypertrace::grpc::server_layer().descriptors(descriptors.clone());
            rt.block_on(channel(rt.block_on(server(Some(layer)))))
        }
        "d-tower-http" => {
            peer = Some(install_tower_http_tracing(
                hypertrace_benches::EncodingExporter::new(),
            ));
            rt.block_on(channel(rt.block_on(traced_server())))
        }
        _ => panic!("a-plain, b-hypertrace, c-disabled or d-tower-http"),
    };
    // One loop per client type (each layer makes its own service type).
    macro_rules! calls {
        ($service:expr) => {{
            let mut client = EchoClient::new($service);
            rt.block_on(async {
                for _ in 0..50 + n {
                    black_box(client.unary(request()).await.unwrap());
                }
            })
        }};
    }
    match variant {
        "a-plain" => calls!(ch),
        "d-tower-http" => calls!(tower::ServiceBuilder::new()
            .layer(tower_http::trace::TraceLayer::new_for_grpc())
            .service(ch)),
        _ => calls!(tower::ServiceBuilder::new()
            .layer(hypertrace::grpc::client_layer().descriptors(descriptors))
            .service(ch)),
    }
    if let Some(g) = guard {
        g.flush();
    }
    if let Some(p) = peer {
        p.force_flush().unwrap();
    }
}

criterion_group! { name = benches; config = config(); targets = grpc }

fn main() {
    if let Ok(spec) = std::env::var("GRPC_COUNT") {
        return count(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
