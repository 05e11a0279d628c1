//! `cargo run --example grpc --features grpc`: a tonic service and its client, instrumented with
//! `hypertrace::grpc`, printing one trace.
//!
//! The service is the test service of `tests/proto/echo.proto` (committed generated code and
//! descriptor set), of which this example serves a unary method (`Unary`) and a server-streaming
//! one (`ServerStream`). The client makes one call of each inside a parent span. The LOGGING
//! reporter (`examples/grpc.yaml`) prints every span as one JSON line on stdout: the parent, two
//! CLIENT spans and two SERVER spans, with metadata, status and the messages as JSON. Then a
//! summary line says whether the server ran inside the client's trace.

use std::error::Error;
use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};

mod echo {
    include!("../tests/proto/echo.rs");
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("../tests/proto/echo.bin");
}
use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};
use echo::{EchoReply, EchoRequest};

/// Answers with the trace id it runs in, so the client can tell that the trace went through.
struct Greeter;

fn trace_id() -> String {
    opentelemetry::Context::current()
        .span()
        .span_context()
        .trace_id()
        .to_string()
}

type Replies = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for Greeter {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let name = request.into_inner().message;
        Ok(Response::new(EchoReply {
            message: format!("hello, {name} (trace {})", trace_id()),
            ..Default::default()
        }))
    }

    type ServerStreamStream = Replies;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Replies>, Status> {
        let req = request.into_inner();
        let trace = trace_id();
        let replies = (0..req.count).map(move |i| {
            Ok(EchoReply {
                message: format!("greeting #{i} for {} (trace {trace})", req.message),
                index: i,
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(futures_util::stream::iter(replies))))
    }

    async fn client_stream(
        &self,
        _: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this example"))
    }

    type BidiStream = Replies;

    async fn bidi(&self, _: Request<Streaming<EchoRequest>>) -> Result<Response<Replies>, Status> {
        Err(Status::unimplemented("not in this example"))
    }
}

#[hypertrace::main(config = "examples/grpc.yaml")]
async fn main() -> Result<(), Box<dyn Error>> {
    let descriptors = hypertrace::grpc::Descriptors::new(&[echo::FILE_DESCRIPTOR_SET])?;

    // The server: the agent's layer on tonic's server builder.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server_layer = hypertrace::grpc::server_layer().descriptors(descriptors.clone());
    tokio::spawn(
        Server::builder()
            .layer(server_layer)
            .add_service(EchoServer::new(Greeter))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    eprintln!("grpc: server on {addr}; spans follow on stdout");

    // The client: the agent's layer around the channel.
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let channel = tower::ServiceBuilder::new()
        .layer(hypertrace::grpc::client_layer().descriptors(descriptors))
        .service(channel);
    let mut client = EchoClient::new(channel);

    // Both calls inside one parent span, so that they are one trace.
    let tracer = opentelemetry::global::tracer("grpc-example");
    let cx = opentelemetry::Context::current_with_span(tracer.start("greet twice"));
    let root_trace = cx.span().span_context().trace_id().to_string();
    let replies = async {
        let mut replies = vec![
            client
                .unary(EchoRequest {
                    message: "Ada".into(),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .message,
        ];
        let mut stream = client
            .server_stream(EchoRequest {
                message: "Grace".into(),
                count: 2,
                ..Default::default()
            })
            .await?
            .into_inner();
        while let Some(r) = stream.message().await? {
            replies.push(r.message);
        }
        Ok::<_, Status>(replies)
    }
    .with_context(cx.clone())
    .await?;
    cx.span().end();
    for r in &replies {
        eprintln!("grpc: {r}");
    }

    // Print the spans now (a server span ends just after its stream is sent), then the summary.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some(agent) = hypertrace::current_agent() {
        let _ = agent.tracer_provider().force_flush();
    }
    if replies.len() == 3 && replies.iter().all(|r| r.contains(&root_trace)) {
        println!("grpc: one trace across the gRPC client and server: {root_trace}");
        Ok(())
    } else {
        Err(
            format!("the server did not run in the client's trace {root_trace}: {replies:?}")
                .into(),
        )
    }
}
