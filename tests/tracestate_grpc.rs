//! Capture control by `tracestate` (`hypertrace=cap:0` / `cap:1`) on gRPC, over real HTTP/2 on
//! 127.0.0.1: the SERVER span reads it from the request metadata, the CLIENT span from the context
//! the call is made in (an HTTP request that arrived with it), and the tracestate travels on
//! unchanged.

mod grpc_support;
mod support;

use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use grpc_support::*;
use hypertrace::grpc::{client_layer, server_layer};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use support::*;

const UNARY: &str = "hypertrace.test.v1.Echo/Unary";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn keys(span: &SpanData, prefix: &str) -> Vec<String> {
    let mut k: Vec<String> = span
        .attributes
        .iter()
        .map(|kv| kv.key.to_string())
        .filter(|k| k.starts_with(prefix))
        .collect();
    k.sort();
    k
}

/// A unary call from a plain tonic client with the caller's trace context (and a metadata entry
/// capture would record) in its metadata.
async fn unary(addr: SocketAddr, tracestate: Option<&str>) -> String {
    let mut request = tonic::Request::new(req("hello"));
    let md = request.metadata_mut();
    md.insert("traceparent", TRACEPARENT.parse().unwrap());
    md.insert("x-tenant", "acme".parse().unwrap());
    if let Some(ts) = tracestate {
        md.insert("tracestate", ts.parse().unwrap());
    }
    let reply = plain_client(addr).await.unary(request).await.unwrap();
    reply.into_inner().message
}

/// `cap:0` on a gRPC span: metadata only `content-type` and `user-agent` (no pseudo-headers), no
/// messages; the rest of the span as usual.
fn assert_minimal(s: &SpanData) {
    let captured: Vec<String> = keys(s, "rpc.request.")
        .into_iter()
        .chain(keys(s, "rpc.response."))
        .collect();
    for k in &captured {
        assert!(
            [
                "rpc.request.metadata.content-type",
                "rpc.request.metadata.user-agent",
                "rpc.response.metadata.content-type",
            ]
            .contains(&k.as_str()),
            "{:?} captured {k}: {captured:?}",
            s.span_kind
        );
    }
    assert!(captured.contains(&"rpc.response.metadata.content-type".to_string()));
    assert_eq!(attr_str(s, "rpc.method").as_deref(), Some("Unary"));
    assert_eq!(attr(s, "rpc.grpc.status_code"), Some(0i64.into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_0_on_the_server_keeps_content_type_and_user_agent_only() {
    let t = agent(|_| {});
    let addr = serve_instrumented().await;
    let sent = "congo=t61rcWkgMzE,hypertrace=cap:0";
    assert_eq!(unary(addr, Some(sent)).await, "echo: hello");
    let s = t.one_span();
    assert_eq!(s.span_kind, SpanKind::Server);
    assert_eq!(s.span_context.trace_id().to_string(), TRACE);
    assert_minimal(&s);
    assert!(
        attr_str(&s, "rpc.request.metadata.user-agent").is_some_and(|ua| ua.starts_with("tonic")),
        "{:#?}",
        s.attributes
    );
    assert_eq!(s.span_context.trace_state().header(), sent);

    // Without it, as configured: everything.
    t.spans.0.lock().unwrap().clear();
    assert_eq!(unary(addr, None).await, "echo: hello");
    let s = t.one_span();
    assert!(has(&s, "rpc.request.metadata.x-tenant") && has(&s, "rpc.request.metadata.:path"));
    assert!(has(&s, "rpc.request.body") && has(&s, "rpc.response.body"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_1_on_the_server_turns_on_what_the_config_left_off_not_what_the_layer_did() {
    let t = agent(|c| {
        c.data_capture.rpc_body.request = false;
        c.data_capture.rpc_body.response = false;
        c.data_capture.rpc_metadata.request = false;
    });
    let addr = serve_instrumented().await;
    unary(addr, None).await;
    let s = t.one_span();
    assert!(!has(&s, "rpc.request.body") && !has(&s, "rpc.response.body"));
    assert!(keys(&s, "rpc.request.metadata.").is_empty());

    t.spans.0.lock().unwrap().clear();
    unary(addr, Some("hypertrace=cap:1")).await;
    let s = t.one_span();
    assert!(has(&s, "rpc.request.body") && has(&s, "rpc.response.body"));
    assert!(has(&s, "rpc.request.metadata.x-tenant") && has(&s, "rpc.request.metadata.:path"));

    // The layer's opt-out holds under `cap:1`.
    let addr = serve_with(
        server_layer()
            .descriptors(descriptors())
            .request_body(false),
    )
    .await;
    t.spans.0.lock().unwrap().clear();
    unary(addr, Some("hypertrace=cap:1")).await;
    let s = t.one_span();
    assert!(!has(&s, "rpc.request.body"), "{:#?}", s.attributes);
    assert!(has(&s, "rpc.response.body"));
}

/// HTTP handler (arrived with `cap:0`) → gRPC client → gRPC server: both gRPC spans capture per
/// `cap:0`, and the server received the tracestate unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_calls_of_a_cap_0_request_capture_per_cap_0() {
    #[hypertrace::handler]
    async fn front(State(grpc): State<SocketAddr>) -> String {
        let mut c = instrumented_client(grpc, client_layer().descriptors(descriptors())).await;
        c.unary(req("from the front"))
            .await
            .unwrap()
            .into_inner()
            .message
    }

    let t = agent(|_| {});
    let grpc = serve_instrumented().await;
    let front_addr = serve(
        axum::Router::new()
            .route("/front", get(front))
            .with_state(grpc),
    )
    .await;
    for (sent, minimal) in [
        ("hypertrace=cap:0,rojo=00f067aa0ba902b7", true),
        ("rojo=00f067aa0ba902b7", false),
    ] {
        t.spans.0.lock().unwrap().clear();
        let body = client()
            .get(format!("http://{front_addr}/front"))
            .header("traceparent", TRACEPARENT)
            .header("tracestate", sent)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "echo: from the front");
        let spans = t.wait_spans(3);
        assert_eq!(spans.len(), 3, "{spans:#?}");
        let grpc_spans: Vec<&SpanData> = spans.iter().filter(|s| s.name == UNARY).collect();
        assert_eq!(grpc_spans.len(), 2);
        for s in spans.iter() {
            assert_eq!(s.span_context.trace_id().to_string(), TRACE);
            // The server span's tracestate came from the metadata it received.
            assert_eq!(s.span_context.trace_state().header(), sent, "{}", s.name);
        }
        for s in grpc_spans {
            if minimal {
                assert_minimal(s);
            } else {
                assert!(has(s, "rpc.request.body"), "{:?}", s.span_kind);
                assert!(has(s, "rpc.request.metadata.:path"), "{:?}", s.span_kind);
                // As sent, and as the server received it.
                assert_eq!(
                    attr_str(s, "rpc.request.metadata.tracestate").as_deref(),
                    Some(sent),
                    "{:?}",
                    s.span_kind
                );
            }
        }
    }
}
