//! `rpc.server.call.duration` and `rpc.client.call.duration` over real HTTP/2 on 127.0.0.1: a
//! tonic server and client, both with `hypertrace::grpc`'s layers, under an agent whose metrics go
//! by OTLP/gRPC to a receiver in this test, which decodes them with the official proto types.

mod grpc_support;
#[path = "support/otlp_metrics.rs"]
mod otlp_metrics;
mod support;

use std::time::Duration;

use grpc_support::echo::{EchoReply, EchoRequest, Mode};
use grpc_support::*;
use hypertrace::grpc::{client_layer, server_layer};
use otlp_metrics::{
    bucket_of, histogram, keys, one_series, otlp_metrics_to, MetricsReceiver, SEMCONV_BUCKETS,
};
use support::agent_with;
use tonic::Code;

const SERVICE: &str = "hypertrace.test.v1.Echo";
const SERVER: &str = "rpc.server.call.duration";
const CLIENT: &str = "rpc.client.call.duration";

/// An agent with metrics to a new receiver.
async fn agent_with_metrics() -> (support::TestAgent, MetricsReceiver) {
    let (addr, recv) = MetricsReceiver::start().await;
    let agent = agent_with(otlp_metrics_to(addr), |a| {
        a.with_metrics_from_config().expect("metrics")
    });
    assert!(agent.guard.agent().meter_provider().is_some());
    (agent, recv)
}

/// Exports what was recorded (the flush blocks this worker; the receiver runs on the other).
fn flush(
    agent: &support::TestAgent,
    recv: &MetricsReceiver,
) -> Vec<opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest> {
    tokio::task::block_in_place(|| agent.guard.flush());
    recv.requests()
}

fn failing(code: Code) -> EchoRequest {
    EchoRequest {
        mode: Mode::Fail as i32,
        fail_code: code as i32,
        fail_message: "no".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_record_server_and_client_durations_in_seconds_with_their_status() {
    let (agent, recv) = agent_with_metrics().await;
    let addr = serve_instrumented().await;
    let mut client = instrumented_client(addr, client_layer().descriptors(descriptors())).await;
    // 30 ms in the handler: the duration lands in the (0.025, 0.05] bucket, in seconds.
    let slow = EchoRequest {
        message: "slow".into(),
        mode: Mode::Slow as i32,
        delay_ms: 30,
        ..Default::default()
    };
    client.unary(slow).await.unwrap();
    // NOT_FOUND is the client's error but not the server's; INTERNAL is both's.
    assert_eq!(
        client
            .unary(failing(Code::NotFound))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .unary(failing(Code::Internal))
            .await
            .unwrap_err()
            .code(),
        Code::Internal
    );
    let reqs = flush(&agent, &recv);

    for name in [SERVER, CLIENT] {
        let ok = one_series(&reqs, name, &[("rpc.grpc.status_code", "0")]);
        assert_eq!(ok.unit, "s", "{name}");
        assert_eq!(ok.bounds, SEMCONV_BUCKETS.to_vec(), "{name}");
        assert_eq!(
            keys(&ok),
            [
                "rpc.grpc.status_code",
                "rpc.method",
                "rpc.service",
                "rpc.system"
            ],
            "{name}: the bounded keys only, no metadata or message"
        );
        assert_eq!(ok.attributes["rpc.system"], "grpc");
        assert_eq!(ok.attributes["rpc.service"], SERVICE);
        assert_eq!(ok.attributes["rpc.method"], "Unary");
        assert_eq!(ok.count, 1, "{name}");
        assert!(ok.sum >= 0.030 && ok.sum < 5.0, "{name}: {} s", ok.sum);
        // The one value is in the bucket its seconds belong to (a loaded machine may take longer
        // than the 30 ms, so the bucket follows the sum).
        assert_eq!(
            ok.bucket_counts[bucket_of(&ok.bounds, ok.sum)],
            1,
            "{name}: {ok:?}"
        );

        let internal = one_series(&reqs, name, &[("rpc.grpc.status_code", "13")]);
        assert_eq!(internal.attributes["error.type"], "INTERNAL", "{name}");
        assert_eq!(internal.count, 1);
        assert!(internal.sum < 5.0);
    }
    let not_found = one_series(&reqs, SERVER, &[("rpc.grpc.status_code", "5")]);
    assert!(
        !not_found.attributes.contains_key("error.type"),
        "NOT_FOUND is no server error: {not_found:?}"
    );
    let not_found = one_series(&reqs, CLIENT, &[("rpc.grpc.status_code", "5")]);
    assert_eq!(not_found.attributes["error.type"], "NOT_FOUND");
    assert_eq!(histogram(&reqs, SERVER).len(), 3);
    assert_eq!(histogram(&reqs, CLIENT).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_timed_until_its_end() {
    let (agent, recv) = agent_with_metrics().await;
    let addr = serve_instrumented().await;
    let mut client = instrumented_client(addr, client_layer()).await;
    // Four replies 40 ms apart: the call lasts at least 160 ms, which only its end can tell.
    let mut stream = client
        .server_stream(EchoRequest {
            message: "tick".into(),
            count: 4,
            delay_ms: 40,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(r) = stream.message().await.unwrap() {
        let _: EchoReply = r;
        n += 1;
    }
    assert_eq!(n, 4);
    drop(stream);
    let reqs = flush(&agent, &recv);
    for name in [SERVER, CLIENT] {
        let s = one_series(&reqs, name, &[("rpc.method", "ServerStream")]);
        assert_eq!(s.count, 1, "{name}");
        assert_eq!(s.attributes["rpc.grpc.status_code"], "0");
        assert!(s.sum >= 0.160 && s.sum < 5.0, "{name}: {} s", s.sum);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_no_descriptor_knows_share_one_series() {
    let (agent, recv) = agent_with_metrics().await;
    let addr = serve_with(server_layer().descriptors(descriptors())).await;
    let mut grpc = tonic::client::Grpc::new(channel(addr).await);
    for i in 0..50 {
        grpc.ready().await.unwrap();
        let path = format!("/{SERVICE}/Probe{i}");
        let err = grpc
            .unary::<EchoRequest, EchoReply, _>(
                tonic::Request::new(req("?")),
                axum::http::uri::PathAndQuery::try_from(path).unwrap(),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
    }
    let reqs = flush(&agent, &recv);
    let all = histogram(&reqs, SERVER);
    assert_eq!(all.len(), 1, "50 made-up methods, one series: {all:#?}");
    assert_eq!(all[0].attributes["rpc.method"], "_OTHER");
    assert_eq!(all[0].attributes["rpc.grpc.status_code"], "12");
    assert_eq!(all[0].attributes["error.type"], "UNIMPLEMENTED");
    assert_eq!(all[0].count, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metrics_nothing_is_recorded() {
    // The same calls under an agent whose metrics are off: no provider, and nothing reaches the
    // receiver even when flushed.
    let (addr, recv) = MetricsReceiver::start().await;
    let agent = agent_with(
        |c| {
            otlp_metrics_to(addr)(c);
            c.telemetry.metrics_enabled = false;
        },
        |a| a.with_metrics_from_config().expect("metrics"),
    );
    assert!(agent.guard.agent().meter_provider().is_none());
    let server = serve_instrumented().await;
    let mut client = instrumented_client(server, client_layer()).await;
    client.unary(req("hi")).await.unwrap();
    tokio::task::block_in_place(|| agent.guard.flush());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(recv.requests().is_empty(), "{:?}", recv.requests());
    // The spans are there all the same.
    assert_eq!(agent.wait_spans(2).len(), 2);
}
