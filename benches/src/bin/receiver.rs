//! A minimal OTLP/gRPC trace receiver: decodes every export, counts spans, answers OK, keeps
//! nothing. The throughput script exports the instrumented variants to it.
//!
//!     receiver <addr>        # prints `listening <addr>`; on SIGTERM/SIGINT prints the counts
//!
//! A real receiver rather than a sink that does not decode: the server's exporter pays for a real
//! gRPC round trip, the receiver pays for the decoding (on its own CPU in the script).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    spans: AtomicU64,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Counts>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = req
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0.spans.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4317".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recv = Receiver::default();
    let counts = recv.0.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        println!("listening {}", listener.local_addr().unwrap());
        let incoming = async_stream(listener);
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(recv).max_decoding_message_size(64 << 20))
            .serve_with_incoming_shutdown(incoming, async {
                use tokio::signal::unix::{signal, SignalKind};
                let mut term = signal(SignalKind::terminate()).unwrap();
                tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
            })
            .await
            .unwrap();
    });
    println!(
        "receiver: {} export requests, {} spans",
        counts.requests.load(Ordering::Relaxed),
        counts.spans.load(Ordering::Relaxed)
    );
}

/// The listener's connections as the stream tonic takes.
fn async_stream(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((r, l))
    })
}
