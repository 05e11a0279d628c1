//! Cost of the gRPC layers per unary call, next to plain tonic in the same run: a tonic client
//! and server in one process over HTTP/2 on 127.0.0.1, one `Unary` call per iteration (a
//! 256-byte message each way, 3 custom metadata entries).
//!
//! - `a-plain`: plain tonic, no layer.
//! - `b-hypertrace`: `server_layer()` and `client_layer()` with the descriptors, default config:
//!   two spans per call (CLIENT and SERVER), metadata and both messages as JSON on each, exported
//!   through the agent's batch processor into an exporter that encodes OTLP and discards it.
//! - `c-disabled`: the same layers with `enabled: false` (context still propagated).
//!
//!     cargo bench --bench grpc          # from benches/

use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::Stream;
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

async fn channel(addr: SocketAddr) -> Channel {
    // No Nagle on either side: otherwise each call waits for a delayed ACK (≈ 40 ms).
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap()
}

fn grpc(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let descriptors = hypertrace::grpc::Descriptors::new(&[echo::FILE_DESCRIPTOR_SET]).unwrap();
    let mut group = c.benchmark_group("grpc-unary");

    // The plain pair stays up through the run: the layers are all the agent touches, so the
    // installed agent does not change it.
    let plain_addr = rt.block_on(server(None));
    let mut plain = EchoClient::new(rt.block_on(channel(plain_addr)));
    group.bench_function("a-plain", |b| {
        b.iter(|| black_box(rt.block_on(plain.unary(request())).unwrap()))
    });

    for (name, enabled) in [("b-hypertrace", true), ("c-disabled", false)] {
        let exporter = hypertrace_benches::EncodingExporter::new();
        let stats = exporter.stats.clone();
        let mut config = hypertrace::Config::defaults("bench");
        config.enabled = enabled;
        let guard = hypertrace::Agent::with_exporter(config, exporter).install();
        let layer = hypertrace::grpc::server_layer().descriptors(descriptors.clone());
        let addr = rt.block_on(server(Some(layer)));
        let ch = rt.block_on(channel(addr));
        let svc = tower::ServiceBuilder::new()
            .layer(hypertrace::grpc::client_layer().descriptors(descriptors.clone()))
            .service(ch);
        let mut client = EchoClient::new(svc);
        group.bench_function(name, |b| {
            b.iter(|| black_box(rt.block_on(client.unary(request())).unwrap()))
        });
        guard.flush();
        let spans = stats.spans.load(std::sync::atomic::Ordering::Relaxed);
        let bytes = stats.bytes.load(std::sync::atomic::Ordering::Relaxed);
        let attrs = stats
            .last_span_attributes
            .load(std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "  {name}: {spans} spans exported, {} OTLP bytes/span, {attrs} attributes on the last",
            bytes.checked_div(spans).unwrap_or(0)
        );
        drop(guard);
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .sample_size(60)
}

criterion_group! { name = benches; config = config(); targets = grpc }
criterion_main!(benches);
