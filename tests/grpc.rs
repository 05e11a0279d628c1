//! gRPC over real HTTP/2 on 127.0.0.1: tonic clients and servers with `hypertrace::grpc`'s layers,
//! each RPC shape, the status wherever it is sent, metadata, messages as JSON, the switches,
//! bad input, grpc-web, axum mounting, and one trace across HTTP and gRPC hops.

mod grpc_support;
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use grpc_support::echo::{EchoReply, EchoRequest, Mode};
use grpc_support::*;
use http_body_util::BodyExt as _;
use hypertrace::grpc::{client_layer, server_layer};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;
use prost::Message as _;
use support::*;
use tonic::codec::CompressionEncoding;
use tonic::Code;

const UNARY: &str = "hypertrace.test.v1.Echo/Unary";

fn kind(spans: &[SpanData], kind: SpanKind) -> SpanData {
    let found: Vec<_> = spans.iter().filter(|s| s.span_kind == kind).collect();
    assert_eq!(found.len(), 1, "{kind:?} spans: {spans:#?}");
    found[0].clone()
}

fn int(span: &SpanData, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(Value::I64(i)) => Some(i),
        other => panic!("{key} is not an integer: {other:?}"),
    }
}

fn json(span: &SpanData, key: &str) -> serde_json::Value {
    let text = attr_str(span, key).unwrap_or_else(|| panic!("no {key} on {span:#?}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{key} is not JSON ({e}): {text}"))
}

fn keys_with(span: &SpanData, prefix: &str) -> Vec<String> {
    span.attributes
        .iter()
        .map(|kv| kv.key.to_string())
        .filter(|k| k.starts_with(prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_span_attributes_metadata_and_json_bodies() {
    let t = agent(|_| {});
    let addr = serve_instrumented().await;
    let mut client = plain_client(addr).await;
    let mut request = tonic::Request::new(EchoRequest {
        message: "hello".into(),
        big: 1 << 40,
        tags: vec!["a".into(), "b".into()],
        ..Default::default()
    });
    let md = request.metadata_mut();
    md.insert("x-tenant", "acme".parse().unwrap());
    md.insert("authorization", "Bearer secret".parse().unwrap());
    md.insert_bin(
        "trace-proto-bin",
        tonic::metadata::MetadataValue::from_bytes(&[0, 1, 2, 255]),
    );
    let reply = client.unary(request).await.unwrap();
    assert_eq!(reply.metadata().get("x-served-by").unwrap(), "echo");
    assert_eq!(reply.into_inner().message, "echo: hello");

    let span = t.one_span();
    assert_eq!(span.name, UNARY);
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.status, Status::Unset);
    assert_eq!(attr_str(&span, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attr_str(&span, "rpc.service").as_deref(),
        Some("hypertrace.test.v1.Echo")
    );
    assert_eq!(attr_str(&span, "rpc.method").as_deref(), Some("Unary"));
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(0));

    let md = |k: &str| attr_str(&span, &format!("rpc.request.metadata.{k}"));
    assert_eq!(
        md(":path").as_deref(),
        Some("/hypertrace.test.v1.Echo/Unary")
    );
    assert_eq!(md(":authority"), Some(addr.to_string()));
    assert_eq!(md(":method").as_deref(), Some("POST"));
    assert_eq!(md(":scheme").as_deref(), Some("http"));
    assert_eq!(md("content-type").as_deref(), Some("application/grpc"));
    assert_eq!(md("x-tenant").as_deref(), Some("acme"));
    assert_eq!(md("authorization").as_deref(), Some("[REDACTED]"));
    // Binary metadata: its base64, as sent.
    assert_eq!(md("trace-proto-bin").as_deref(), Some("AAEC/w"));
    // Response metadata: the headers, and the trailers (where the status is).
    let rmd = |k: &str| attr_str(&span, &format!("rpc.response.metadata.{k}"));
    assert_eq!(rmd("x-served-by").as_deref(), Some("echo"));
    assert_eq!(rmd("content-type").as_deref(), Some("application/grpc"));
    assert_eq!(rmd("grpc-status").as_deref(), Some("0"));

    // Canonical proto3 JSON: lowerCamel names, int64 as a string, defaults left out.
    assert_eq!(
        json(&span, "rpc.request.body"),
        serde_json::json!({"message": "hello", "big": "1099511627776", "tags": ["a", "b"]})
    );
    assert_eq!(
        json(&span, "rpc.response.body"),
        serde_json::json!({"message": "echo: hello", "big": "1099511627776"})
    );
    assert!(!has(&span, "rpc.request.body.truncated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_span_lasts_until_the_stream_ends() {
    let t = agent(|_| {});
    let addr = serve_instrumented().await;
    let mut client = plain_client(addr).await;
    let mut stream = client
        .server_stream(EchoRequest {
            message: "s".into(),
            count: 3,
            delay_ms: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        got.push(r.index);
    }
    assert_eq!(got, vec![0, 1, 2]);

    let span = t.one_span();
    assert_eq!(span.name, "hypertrace.test.v1.Echo/ServerStream");
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(0));
    assert_eq!(
        json(&span, "rpc.response.body"),
        serde_json::json!([
            {"message": "echo: s"},
            {"message": "echo: s", "index": 1},
            {"message": "echo: s", "index": 2}
        ])
    );
    // The response future resolves at once; the span covers the three delayed messages.
    let took = span.end_time.duration_since(span.start_time).unwrap();
    assert!(took >= Duration::from_millis(290), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streaming_and_bidi_give_json_arrays() {
    let t = agent(|_| {});
    let addr = serve_instrumented().await;
    let mut client = plain_client(addr).await;
    let reqs = || futures_util::stream::iter(["x", "y", "z"].map(req));
    let reply = client.client_stream(reqs()).await.unwrap().into_inner();
    assert_eq!(reply.message, "x+y+z");
    let mut bidi = client.bidi(reqs()).await.unwrap().into_inner();
    let mut n = 0;
    while bidi.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);

    let spans = t.wait_spans(2);
    let cs = spans
        .iter()
        .find(|s| s.name.ends_with("/ClientStream"))
        .unwrap();
    assert_eq!(
        json(cs, "rpc.request.body"),
        serde_json::json!([{"message": "x"}, {"message": "y"}, {"message": "z"}])
    );
    assert_eq!(
        json(cs, "rpc.response.body"),
        serde_json::json!({"message": "x+y+z", "index": 3})
    );
    let bidi = spans.iter().find(|s| s.name.ends_with("/Bidi")).unwrap();
    assert_eq!(
        json(bidi, "rpc.request.body"),
        serde_json::json!([{"message": "x"}, {"message": "y"}, {"message": "z"}])
    );
    assert_eq!(json(bidi, "rpc.response.body").as_array().unwrap().len(), 3);
    assert_eq!(int(bidi, "rpc.grpc.status_code"), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_error_is_a_trailers_only_status() {
    let t = agent(|_| {});
    let addr = serve_instrumented().await;
    let mut client = plain_client(addr).await;
    let fail = |code: Code, msg: &str| EchoRequest {
        mode: Mode::Fail as i32,
        fail_code: code as i32,
        fail_message: msg.into(),
        ..Default::default()
    };
    let err = client
        .unary(fail(Code::Internal, "disk full: 100%"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    let span = t.one_span();
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(13));
    assert_eq!(span.status, Status::error("disk full: 100%"));
    // Trailers-only: the status came in the headers.
    assert_eq!(
        attr_str(&span, "rpc.response.metadata.grpc-status").as_deref(),
        Some("13")
    );
    assert!(!has(&span, "rpc.response.body"));

    // NOT_FOUND is the client's doing: not an error of the server.
    t.spans.0.lock().unwrap().clear();
    let err = client
        .unary(fail(Code::NotFound, "no such user"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let span = t.one_span();
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(5));
    assert_eq!(span.status, Status::Unset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_after_streamed_messages_comes_from_the_trailers() {
    let t = agent(|_| {});
    let addr = serve_instrumented().await;
    let mut client = plain_client(addr).await;
    let mut stream = client
        .server_stream(EchoRequest {
            message: "m".into(),
            count: 2,
            mode: Mode::FailAfter as i32,
            fail_code: Code::Unavailable as i32,
            fail_message: "backend went away".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    assert!(stream.message().await.unwrap().is_some());
    assert_eq!(
        stream.message().await.unwrap_err().code(),
        Code::Unavailable
    );

    let span = t.one_span();
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(14));
    assert_eq!(span.status, Status::error("backend went away"));
    assert_eq!(
        json(&span, "rpc.response.body").as_array().unwrap().len(),
        2
    );
    // The headers said nothing about the status; the trailers did.
    assert_eq!(
        attr_str(&span, "rpc.response.metadata.grpc-status").as_deref(),
        Some("14")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_exceeded() {
    let t = agent(|_| {});
    let addr = serve_instrumented().await;
    let mut client = plain_client(addr).await;
    let mut request = tonic::Request::new(EchoRequest {
        mode: Mode::Slow as i32,
        delay_ms: 2000,
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(100));
    let err = client.unary(request).await.unwrap_err();
    // tonic's server gives up at the deadline (and says CANCELLED, "Timeout expired").
    assert!(
        matches!(err.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{err:?}"
    );
    let span = t.one_span();
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(4));
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{:?}",
        span.status
    );
    let took = span.end_time.duration_since(span.start_time).unwrap();
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cancellation_ends_the_span_as_cancelled() {
    let t = agent(|_| {});
    let addr = serve_instrumented().await;
    let mut client = plain_client(addr).await;
    let mut stream = client
        .server_stream(EchoRequest {
            message: "long".into(),
            count: 1000,
            delay_ms: 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    drop(stream);
    drop(client);

    let span = t.one_span();
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(1));
    // CANCELLED is not a server error.
    assert_eq!(span.status, Status::Unset);
    let took = span.end_time.duration_since(span.start_time).unwrap();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(!json(&span, "rpc.response.body")
        .as_array()
        .unwrap()
        .is_empty());
}

/// A call through the generic tonic client, for paths the generated client does not have.
async fn raw_unary(addr: SocketAddr, path: &'static str) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel(addr).await);
    grpc.ready().await.unwrap();
    grpc.unary::<EchoRequest, EchoReply, _>(
        tonic::Request::new(req("?")),
        axum::http::uri::PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_is_unimplemented() {
    let t = agent(|_| {});
    let addr = serve_instrumented().await;
    let err = raw_unary(addr, "/hypertrace.test.v1.Echo/Nope").await;
    assert_eq!(err.code(), Code::Unimplemented);
    let span = t.one_span();
    assert_eq!(span.name, "hypertrace.test.v1.Echo/Nope");
    assert_eq!(attr_str(&span, "rpc.method").as_deref(), Some("Nope"));
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(12));
    assert!(matches!(span.status, Status::Error { .. }));
    // tonic answers without reading the request, and capture reads nothing by itself.
    assert!(!has(&span, "rpc.request.body.base64"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_descriptors_messages_are_base64() {
    use base64::Engine as _;
    let t = agent(|_| {});
    let addr = serve_with(server_layer()).await;
    let reply = plain_client(addr).await.unary(req("raw")).await.unwrap();
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::STANDARD_NO_PAD.encode(b);
    let span = t.one_span();
    assert_eq!(
        attr_str(&span, "rpc.request.body.base64"),
        Some(b64(req("raw").encode_to_vec()))
    );
    assert_eq!(
        attr_str(&span, "rpc.response.body.base64"),
        Some(b64(reply.into_inner().encode_to_vec()))
    );
    assert!(!has(&span, "rpc.request.body"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_compressed_messages_are_decoded_for_capture() {
    let t = agent(|_| {});
    let addr = serve_instrumented().await;
    let mut client = plain_client(addr)
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let text = "squeeze me ".repeat(50);
    let reply = client.unary(req(&text)).await.unwrap().into_inner();
    assert_eq!(reply.message, format!("echo: {text}"));
    let span = t.one_span();
    assert_eq!(
        attr_str(&span, "rpc.request.metadata.grpc-encoding").as_deref(),
        Some("gzip")
    );
    assert_eq!(
        attr_str(&span, "rpc.response.metadata.grpc-encoding").as_deref(),
        Some("gzip")
    );
    assert_eq!(
        json(&span, "rpc.request.body"),
        serde_json::json!({ "message": text })
    );
    assert_eq!(
        json(&span, "rpc.response.body"),
        serde_json::json!({ "message": format!("echo: {text}") })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_larger_than_the_limit_is_cut_on_a_char_boundary() {
    let t = agent(|c| c.data_capture.body_max_size_bytes = 64);
    let addr = serve_instrumented().await;
    let mut client = plain_client(addr).await;
    // Two-byte characters, so that the cut falls inside one at some point.
    let text = "é".repeat(5000);
    let reply = client.unary(req(&text)).await.unwrap().into_inner();
    // The application sees the whole message.
    assert_eq!(reply.message, format!("echo: {text}"));
    let span = t.one_span();
    for key in ["rpc.request.body", "rpc.response.body"] {
        let body = attr_str(&span, key).unwrap();
        assert!(body.len() <= 64, "{key}: {} bytes", body.len());
        assert!(!body.is_empty());
        assert_eq!(
            attr(&span, &format!("{key}.truncated")),
            Some(Value::Bool(true))
        );
    }
}

/// Status, headers, body bytes and trailers of a hand-made request: what a client sees.
#[derive(Debug, PartialEq)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    trailers: Vec<(String, String)>,
}

fn pairs(h: &axum::http::HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<_> = h
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
        .collect();
    v.sort();
    v
}

async fn raw_call(addr: SocketAddr, headers: &[(&str, &str)], body: Vec<u8>) -> Raw {
    use tower::Service as _;
    let mut ch = channel(addr).await;
    let mut b = axum::http::Request::post(format!("http://{addr}/{UNARY}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let request = b
        .body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from(body),
        )))
        .unwrap();
    futures_util::future::poll_fn(|cx| ch.poll_ready(cx))
        .await
        .unwrap();
    let resp = ch.call(request).await.unwrap();
    let status = resp.status().as_u16();
    let headers = pairs(resp.headers());
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().map(pairs).unwrap_or_default();
    Raw {
        status,
        headers,
        body: collected.to_bytes(),
        trailers,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_the_same_answer_as_without_the_agent() {
    let t = agent(|_| {});
    let plain = serve_plain().await;
    let instrumented = serve_instrumented().await;
    let good = req("fine").encode_to_vec();
    let mut framed_good = vec![0];
    framed_good.extend_from_slice(&(good.len() as u32).to_be_bytes());
    framed_good.extend_from_slice(&good);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>);
    let cases: Vec<Case> = vec![
        ("a frame cut short", vec![], vec![0, 0, 0, 0, 100, 1, 2, 3]),
        (
            "not protobuf",
            vec![],
            vec![0, 0, 0, 0, 3, 0xff, 0xff, 0xff],
        ),
        (
            "compressed flag, no encoding",
            vec![],
            vec![1, 0, 0, 0, 2, 8, 1],
        ),
        (
            "gzip flag, not gzip",
            vec![("grpc-encoding", "gzip")],
            vec![1, 0, 0, 0, 2, 8, 1],
        ),
        ("half a prefix", vec![], vec![0, 0, 0]),
        ("a 4 GiB claim", vec![], vec![0, 0xff, 0xff, 0xff, 0xff, 1]),
        (
            "two messages for a unary call",
            vec![],
            [framed_good.clone(), framed_good.clone()].concat(),
        ),
        ("a good one", vec![], framed_good.clone()),
    ];
    for (what, headers, body) in &cases {
        let want = raw_call(plain, headers, body.clone()).await;
        let got = raw_call(instrumented, headers, body.clone()).await;
        assert_eq!(got, want, "{what}");
    }
    // One span each, none lost to a panic.
    let spans = t.wait_spans(cases.len());
    assert_eq!(spans.len(), cases.len());
    assert!(spans.iter().all(|s| s.name == UNARY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_switches() {
    for (req_on, resp_on) in [(false, true), (true, false)] {
        let t = agent(|c| {
            c.data_capture.rpc_metadata.request = req_on;
            c.data_capture.rpc_metadata.response = resp_on;
        });
        let addr = serve_instrumented().await;
        plain_client(addr).await.unary(req("m")).await.unwrap();
        let span = t.one_span();
        assert_eq!(
            !keys_with(&span, "rpc.request.metadata.").is_empty(),
            req_on
        );
        assert_eq!(
            !keys_with(&span, "rpc.response.metadata.").is_empty(),
            resp_on
        );
        // The status is recorded either way.
        assert_eq!(int(&span, "rpc.grpc.status_code"), Some(0));
        assert!(has(&span, "rpc.request.body") && has(&span, "rpc.response.body"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_switches() {
    for (req_on, resp_on) in [(false, true), (true, false)] {
        let t = agent(|c| {
            c.data_capture.rpc_body.request = req_on;
            c.data_capture.rpc_body.response = resp_on;
        });
        let addr = serve_instrumented().await;
        plain_client(addr).await.unary(req("m")).await.unwrap();
        let span = t.one_span();
        assert_eq!(has(&span, "rpc.request.body"), req_on);
        assert_eq!(has(&span, "rpc.response.body"), resp_on);
        assert!(has(&span, "rpc.request.metadata.:path"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_opt_outs_override_the_config() {
    let t = agent(|_| {});
    let addr = serve_with(
        server_layer()
            .descriptors(descriptors())
            .request_body(false)
            .response_metadata(false)
            .exclude("/hypertrace.test.v1.Echo/ClientStream"),
    )
    .await;
    let mut client = plain_client(addr).await;
    client.unary(req("m")).await.unwrap();
    client
        .client_stream(futures_util::stream::iter([req("a")]))
        .await
        .unwrap();
    let span = t.one_span();
    assert_eq!(span.name, UNARY);
    assert!(!has(&span, "rpc.request.body"));
    assert!(has(&span, "rpc.response.body"));
    assert!(keys_with(&span, "rpc.response.metadata.").is_empty());
    assert!(!keys_with(&span, "rpc.request.metadata.").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_agent_records_nothing_but_passes_the_trace_on() {
    let t = agent(|c| c.enabled = false);
    let addr = serve_instrumented().await;
    let mut client = plain_client(addr).await;
    let mut request = tonic::Request::new(req("whoami"));
    request.metadata_mut().insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    let reply = client.unary(request).await.unwrap().into_inner();
    assert_eq!(reply.message, "4bf92f3577b34da6a3ce929d0e0e4736");
    std::thread::sleep(Duration::from_millis(100));
    t.guard.flush();
    assert!(t.spans.0.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_semconv_keys_behind_the_opt_in() {
    let t = agent(|_| {});
    for (opt_in, old, stable) in [(Some("rpc"), false, true), (Some("rpc/dup"), true, true)] {
        t.spans.0.lock().unwrap().clear();
        let addr = serve_with(server_layer().semconv_opt_in(opt_in)).await;
        plain_client(addr).await.unary(req("m")).await.unwrap();
        let span = t.one_span();
        assert_eq!(has(&span, "rpc.system"), old, "{opt_in:?}");
        assert_eq!(has(&span, "rpc.grpc.status_code"), old);
        assert_eq!(
            attr_str(&span, "rpc.system.name").as_deref(),
            stable.then_some("grpc")
        );
        assert_eq!(
            attr_str(&span, "rpc.response.status_code").as_deref(),
            stable.then_some("OK")
        );
        let method = attr_str(&span, "rpc.method").unwrap();
        assert_eq!(method, if old { "Unary" } else { UNARY });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_spans_status_and_injected_context() {
    let t = agent(|_| {});
    let addr = serve_plain().await;
    let mut client = instrumented_client(addr, client_layer().descriptors(descriptors())).await;
    let reply = client.unary(req("traceparent")).await.unwrap().into_inner();

    let span = t.one_span();
    assert_eq!(span.name, UNARY);
    assert_eq!(span.span_kind, SpanKind::Client);
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(0));
    // The server received this span as the parent.
    let sc = &span.span_context;
    let traceparent = format!("00-{}-{}-01", sc.trace_id(), sc.span_id());
    assert_eq!(reply.message, format!("echo: {traceparent}"));
    assert_eq!(
        attr_str(&span, "rpc.request.metadata.traceparent"),
        Some(traceparent)
    );
    assert_eq!(
        json(&span, "rpc.request.body"),
        serde_json::json!({"message": "traceparent"})
    );
    assert_eq!(
        json(&span, "rpc.response.body")["message"],
        serde_json::json!(reply.message)
    );

    // On the client, any non-OK code is an error.
    t.spans.0.lock().unwrap().clear();
    let err = client
        .unary(EchoRequest {
            mode: Mode::Fail as i32,
            fail_code: Code::NotFound as i32,
            fail_message: "no such thing".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let span = t.one_span();
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(5));
    assert_eq!(span.status, Status::error("no such thing"));

    // A stream dropped by the client: CANCELLED, an error on this side.
    t.spans.0.lock().unwrap().clear();
    let mut stream = client
        .server_stream(EchoRequest {
            count: 1000,
            delay_ms: 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap();
    drop(stream);
    let span = t.one_span();
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(1));
    assert!(matches!(span.status, Status::Error { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_server_spans_make_one_trace_over_b3() {
    let t = agent(|c| c.propagation_formats = vec![hypertrace::config::PropagationFormat::B3]);
    let addr = serve_instrumented().await;
    let mut client = instrumented_client(addr, client_layer()).await;
    let reply = client.unary(req("whoami")).await.unwrap().into_inner();
    let spans = t.wait_spans(2);
    let (c, s) = (
        kind(&spans, SpanKind::Client),
        kind(&spans, SpanKind::Server),
    );
    assert_eq!(s.span_context.trace_id(), c.span_context.trace_id());
    assert_eq!(s.parent_span_id, c.span_context.span_id());
    assert_eq!(reply.message, c.span_context.trace_id().to_string());
    assert!(has(&s, "rpc.request.metadata.b3"));
    assert!(!has(&s, "rpc.request.metadata.traceparent"));
}

/// HTTP handler → gRPC client → gRPC server → HTTP call: one trace, each hop the child of the one
/// before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_http_and_grpc() {
    use axum::extract::State;
    use axum::routing::get;

    #[hypertrace::handler]
    async fn front(State(grpc): State<SocketAddr>) -> String {
        let mut c = instrumented_client(grpc, client_layer()).await;
        c.unary(req("call-down"))
            .await
            .unwrap()
            .into_inner()
            .message
    }

    let t = agent(|_| {});
    let down = serve(
        axum::Router::new()
            .route("/down", get(|| async { "down here" }))
            .layer(hypertrace::layer()),
    )
    .await;
    let grpc = serve_with(server_layer().descriptors(descriptors())).await;
    DOWNSTREAM.set(format!("http://{down}/down")).ok();
    let front_addr = serve(
        axum::Router::new()
            .route("/front", get(front))
            .with_state(grpc),
    )
    .await;
    let body = client()
        .get(format!("http://{front_addr}/front"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "echo: down here");

    let spans = t.wait_spans(4);
    let by_name: HashMap<&str, &SpanData> = spans.iter().map(|s| (s.name.as_ref(), s)).collect();
    let front_span = by_name["GET /front"];
    let grpc_client = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap();
    let grpc_server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server && s.name == UNARY)
        .unwrap();
    let down = by_name["GET /down"];
    let trace = front_span.span_context.trace_id();
    for s in [grpc_client, grpc_server, down] {
        assert_eq!(s.span_context.trace_id(), trace, "{}", s.name);
    }
    assert_eq!(
        grpc_client.parent_span_id,
        front_span.span_context.span_id()
    );
    assert_eq!(
        grpc_server.parent_span_id,
        grpc_client.span_context.span_id()
    );
    assert_eq!(down.parent_span_id, grpc_server.span_context.span_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_service_mounted_in_an_axum_router() {
    use axum::routing::get;
    let t = agent(|_| {});
    let grpc = tonic::service::Routes::new(echo_server())
        .into_axum_router()
        .layer(server_layer().descriptors(descriptors()));
    let app = axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(grpc);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(tonic::service::Routes::from(app))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(l))
            .await
            .unwrap();
    });
    let reply = plain_client(addr).await.unary(req("axum")).await.unwrap();
    assert_eq!(reply.into_inner().message, "echo: axum");
    let span = t.one_span();
    assert_eq!(span.name, UNARY);
    assert_eq!(
        json(&span, "rpc.request.body"),
        serde_json::json!({"message": "axum"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_under_tonic_web() {
    let t = agent(|_| {});
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .accept_http1(true)
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(server_layer().descriptors(descriptors()))
            .add_service(echo_server())
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(l))
            .await
            .unwrap();
    });
    let msg = req("from the browser").encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(&msg);
    let resp = client()
        .post(format!("http://{addr}/{UNARY}"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    // A data frame, then the trailers frame (flag 0x80) with the status.
    let len = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
    let reply = EchoReply::decode(&bytes[5..5 + len]).unwrap();
    assert_eq!(reply.message, "echo: from the browser");
    assert_eq!(bytes[5 + len], 0x80);
    assert!(String::from_utf8_lossy(&bytes[5 + len + 5..]).contains("grpc-status:0"));

    let span = t.one_span();
    assert_eq!(span.name, UNARY);
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(0));
    assert_eq!(
        json(&span, "rpc.request.body"),
        serde_json::json!({"message": "from the browser"})
    );
    assert_eq!(
        json(&span, "rpc.response.body"),
        serde_json::json!({"message": "echo: from the browser"})
    );
}
