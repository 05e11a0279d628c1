//! Shared by the gRPC tests: the test service (`tests/proto/echo.proto`) and real tonic servers on
//! 127.0.0.1, with or without the agent's layer.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use opentelemetry::trace::TraceContextExt as _;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};

/// The generated code and descriptor set of `tests/proto/echo.proto`.
pub mod echo {
    include!("../proto/echo.rs");
    /// As tonic-reflection takes it.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("../proto/echo.bin");
}

use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};
use echo::{EchoReply, EchoRequest, Mode};

/// The service: each reply says what it answers; `"whoami"` answers with the trace id current in
/// the handler, `"traceparent"` with that metadata as received (to check propagation).
#[derive(Clone, Default)]
pub struct EchoService;

fn reply(req: &EchoRequest, index: i32) -> EchoReply {
    let message = if req.message == "whoami" {
        opentelemetry::Context::current()
            .span()
            .span_context()
            .trace_id()
            .to_string()
    } else {
        format!("echo: {}", req.message)
    };
    EchoReply {
        message,
        index,
        big: req.big,
        payload: req.payload.clone(),
    }
}

fn status(req: &EchoRequest) -> Status {
    Status::new(tonic::Code::from(req.fail_code), req.fail_message.clone())
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

/// Where the `"call-down"` request makes its HTTP call (with the trace context injected).
pub static DOWNSTREAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn call_down() -> String {
    let mut headers = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&opentelemetry::Context::current(), &mut headers)
    });
    let mut r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(DOWNSTREAM.get().expect("DOWNSTREAM set"));
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r.send().await.unwrap().text().await.unwrap()
}

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let traceparent = request
            .metadata()
            .get("traceparent")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        let mut req = request.into_inner();
        if req.message == "traceparent" {
            req.message = traceparent.unwrap_or_default();
        }
        if req.message == "call-down" {
            req.message = call_down().await;
        }
        match req.mode() {
            Mode::Fail => return Err(status(&req)),
            Mode::Slow => tokio::time::sleep(Duration::from_millis(req.delay_ms.into())).await,
            _ => {}
        }
        let mut resp = Response::new(reply(&req, 0));
        resp.metadata_mut()
            .insert("x-served-by", "echo".parse().unwrap());
        Ok(resp)
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let req = request.into_inner();
        if req.mode() == Mode::Fail {
            return Err(status(&req));
        }
        let delay = Duration::from_millis(req.delay_ms.into());
        let count = req.count;
        let fail = (req.mode() == Mode::FailAfter).then(|| status(&req));
        let replies = futures_util::stream::iter(0..count).then(move |i| {
            let r = reply(&req, i);
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(r)
            }
        });
        let tail = futures_util::stream::iter(fail.map(Err));
        Ok(Response::new(Box::pin(replies.chain(tail))))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        let mut stream = request.into_inner();
        let mut all = Vec::new();
        while let Some(req) = stream.message().await? {
            all.push(req.message);
        }
        Ok(Response::new(EchoReply {
            message: all.join("+"),
            index: all.len() as i32,
            ..Default::default()
        }))
    }

    type BidiStream = ReplyStream;

    async fn bidi(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let stream = request.into_inner();
        let out = stream
            .enumerate()
            .map(|(i, req)| req.map(|r| reply(&r, i as i32)));
        Ok(Response::new(Box::pin(out)))
    }
}

/// The service as mounted, gzip accepted and sent when asked for.
pub fn echo_server() -> EchoServer<EchoService> {
    EchoServer::new(EchoService)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
}

/// The agent's descriptors for the test service.
pub fn descriptors() -> hypertrace::grpc::Descriptors {
    hypertrace::grpc::Descriptors::new(&[echo::FILE_DESCRIPTOR_SET]).unwrap()
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// A tonic server with `layer` (ours) on it.
pub async fn serve_with(layer: hypertrace::grpc::ServerLayer) -> SocketAddr {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_service(echo_server())
            .serve_with_incoming(TcpIncoming::from(l))
            .await
            .unwrap();
    });
    addr
}

/// A tonic server with the agent's layer and the test descriptors.
pub async fn serve_instrumented() -> SocketAddr {
    serve_with(hypertrace::grpc::server_layer().descriptors(descriptors())).await
}

/// The same server without the agent.
pub async fn serve_plain() -> SocketAddr {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        Server::builder()
            .add_service(echo_server())
            .serve_with_incoming(TcpIncoming::from(l))
            .await
            .unwrap();
    });
    addr
}

pub async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A plain tonic client.
pub async fn plain_client(addr: SocketAddr) -> EchoClient<Channel> {
    EchoClient::new(channel(addr).await)
}

/// A tonic client with the agent's client layer.
pub async fn instrumented_client(
    addr: SocketAddr,
    layer: hypertrace::grpc::ClientLayer,
) -> EchoClient<hypertrace::grpc::ClientService<Channel>> {
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .service(channel(addr).await);
    EchoClient::new(svc)
}

pub fn req(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.into(),
        ..Default::default()
    }
}
