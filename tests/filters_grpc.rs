//! Blocking filters on gRPC server calls over real HTTP/2: tonic servers with
//! `hypertrace::grpc::server_layer().filter(..)` and the agent's filters, tonic clients. A block is
//! a gRPC status mapped from its HTTP status; a body filter sees the first request message (as
//! JSON with descriptors, decompressed), and the call goes on unchanged when it continues.

mod grpc_support;
mod support;

use std::net::{IpAddr, Ipv4Addr};

use grpc_support::echo::EchoRequest;
use grpc_support::*;
use hypertrace::grpc::server_layer;
use hypertrace::{Block, Decision, Filter, FilterRequest, Protocol};
use opentelemetry::trace::Status;
use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;
use support::*;
use tonic::codec::CompressionEncoding;
use tonic::Code;

fn int(span: &SpanData, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(Value::I64(i)) => Some(i),
        None => None,
        other => panic!("{key}: {other:?}"),
    }
}

/// Blocks calls with `x-block` metadata, with the status it names.
struct MetadataRule;

impl Filter for MetadataRule {
    fn name(&self) -> &str {
        "metadata-rule"
    }
    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        assert_eq!(req.protocol(), Protocol::Grpc);
        assert_eq!(req.uri().path(), "/hypertrace.test.v1.Echo/Unary");
        match req.headers().get("x-block").map(|v| v.to_str().unwrap()) {
            Some(code) => Block::new()
                .with_status(axum::http::StatusCode::from_bytes(code.as_bytes()).unwrap())
                .with_body(format!("blocked: {code}"))
                .into(),
            None => Decision::Continue,
        }
    }
}

/// Blocks a first message that looks like SQL injection; records what it saw.
#[derive(Clone, Default)]
struct Injection(std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>);

impl Filter for Injection {
    fn name(&self) -> &str {
        "sql-injection"
    }
    fn wants_body(&self) -> bool {
        true
    }
    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        let body = String::from_utf8_lossy(req.body().unwrap()).into_owned();
        let bad = body.to_ascii_lowercase().contains("drop table");
        self.0.lock().unwrap().push((body, req.body_truncated()));
        if bad {
            Block::new()
                .with_status(axum::http::StatusCode::TOO_MANY_REQUESTS)
                .into()
        } else {
            Decision::Continue
        }
    }
}

struct DenyPeer(IpAddr);

impl Filter for DenyPeer {
    fn name(&self) -> &str {
        "deny-peer"
    }
    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        if req.peer().map(|p| p.ip()) == Some(self.0) {
            Block::new()
                .with_status(axum::http::StatusCode::UNAUTHORIZED)
                .into()
        } else {
            Decision::Continue
        }
    }
}

struct Panics;

impl Filter for Panics {
    fn name(&self) -> &str {
        "panics"
    }
    fn wants_body(&self) -> bool {
        true
    }
    fn evaluate(&self, _: &FilterRequest<'_>) -> Decision {
        panic!("grpc filter bug")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_filter_blocks_with_the_mapped_grpc_status() {
    let t = agent(|_| {});
    let addr = serve_with(
        server_layer()
            .descriptors(descriptors())
            .filter(MetadataRule),
    )
    .await;
    let mut client = plain_client(addr).await;
    for (http, code) in [
        ("403", Code::PermissionDenied),
        ("401", Code::Unauthenticated),
        ("429", Code::ResourceExhausted),
    ] {
        let mut r = tonic::Request::new(req("hello"));
        r.metadata_mut().insert("x-block", http.parse().unwrap());
        let err = client.unary(r).await.unwrap_err();
        assert_eq!(err.code(), code, "{http}");
        assert_eq!(err.message(), format!("blocked: {http}"));
    }
    let ok = client.unary(req("hello")).await.unwrap();
    assert_eq!(ok.into_inner().message, "echo: hello");

    let spans = t.wait_spans(4);
    let mut seen: Vec<_> = spans
        .iter()
        .map(|s| {
            (
                int(s, "rpc.grpc.status_code").unwrap(),
                attr_str(s, "hypertrace.filter.decision").unwrap(),
                attr_str(s, "hypertrace.filter.name"),
                matches!(s.status, Status::Error { .. }),
            )
        })
        .collect();
    seen.sort();
    let block = |code| {
        (
            code,
            "block".to_string(),
            Some("metadata-rule".to_string()),
            true,
        )
    };
    assert_eq!(
        seen,
        [
            (0, "continue".to_string(), None, false),
            block(7),
            block(8),
            block(16)
        ]
    );
    // The metadata of a blocked call is still captured.
    assert!(spans
        .iter()
        .all(|s| attr_str(s, "rpc.request.metadata.x-block").is_some()
            || int(s, "rpc.grpc.status_code") == Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_filter_sees_the_first_message_as_json_and_blocks_or_lets_it_through() {
    let seen = Injection::default();
    let t = agent(|_| {});
    let addr = serve_with(
        server_layer()
            .descriptors(descriptors())
            .filter(seen.clone()),
    )
    .await;
    let mut client = plain_client(addr)
        .await
        .send_compressed(CompressionEncoding::Gzip);

    let err = client
        .unary(req("x'; DROP TABLE users; --"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);

    let reply = client.unary(req("fine")).await.unwrap();
    assert_eq!(reply.into_inner().message, "echo: fine");

    // A client stream: the first message was read ahead, every message reaches the handler.
    let msgs = vec![req("a"), req("b"), req("c")];
    let reply = client
        .client_stream(futures_util::stream::iter(msgs))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "a+b+c");

    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (
                r#"{"message":"x'; DROP TABLE users; --"}"#.to_string(),
                false
            ),
            (r#"{"message":"fine"}"#.to_string(), false),
            (r#"{"message":"a"}"#.to_string(), false),
        ],
        "the first message, decompressed, as proto3 JSON"
    );
    let spans = t.wait_spans(3);
    let blocked = spans
        .iter()
        .find(|s| int(s, "rpc.grpc.status_code") == Some(8))
        .unwrap();
    assert_eq!(
        attr_str(blocked, "hypertrace.filter.name").as_deref(),
        Some("sql-injection")
    );
    let stream = spans
        .iter()
        .find(|s| s.name.ends_with("/ClientStream"))
        .unwrap();
    // The request capture saw every message too.
    assert_eq!(
        attr_str(stream, "rpc.request.body").as_deref(),
        Some(r#"[{"message":"a"},{"message":"b"},{"message":"c"}]"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_filters_apply_to_grpc_calls_and_see_the_peer() {
    let t = agent_with(
        |_| {},
        |a| a.filter(DenyPeer(IpAddr::V4(Ipv4Addr::LOCALHOST))),
    );
    let addr = serve_instrumented().await;
    let err = plain_client(addr).await.unary(req("hi")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "Unauthorized");
    let span = t.one_span();
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(16));
    assert_eq!(
        attr_str(&span, "hypertrace.filter.name").as_deref(),
        Some("deny-peer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_body_filter_fails_open() {
    let t = agent(|_| {});
    let addr = serve_with(server_layer().descriptors(descriptors()).filter(Panics)).await;
    let reply = plain_client(addr)
        .await
        .unary(EchoRequest {
            message: "still served".into(),
            payload: vec![1; 100_000],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.message, "echo: still served");
    assert_eq!(reply.payload, vec![1; 100_000]);
    let span = t.one_span();
    assert_eq!(
        attr_str(&span, "hypertrace.filter.failure").as_deref(),
        Some("panic")
    );
    assert_eq!(
        attr_str(&span, "hypertrace.filter.decision").as_deref(),
        Some("continue")
    );
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(0));
}
