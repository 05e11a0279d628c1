//! Outgoing HTTP with reqwest 0.12 (`hypertrace::client::reqwest012`): the same CLIENT spans as the
//! reqwest 0.13 client, over real HTTP on 127.0.0.1: attributes, header and body capture,
//! injection, errors, streamed bodies, what the caller sees, and one trace across three hops.

mod support;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use hypertrace::client::reqwest012::{self as client, reqwest, HypertraceMiddleware};
use hypertrace::client::Route;
use hypertrace::config::PropagationFormat;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{
    Span as _, SpanId, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::SpanData;
use serde_json::{json, Value as JsonValue};
use support::*;

/// Echoes the body with its content type, and the request headers as JSON under `x-seen`.
async fn echo(headers: HeaderMap, body: Bytes) -> Response {
    let seen: serde_json::Map<String, JsonValue> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").into()))
        .collect();
    let mut resp = Response::new(Body::from(body));
    if let Some(v) = headers.get("content-type") {
        resp.headers_mut().insert("content-type", v.clone());
    }
    resp.headers_mut().insert("x-resp", "yes".parse().unwrap());
    resp.headers_mut().insert(
        "x-seen",
        JsonValue::Object(seen).to_string().parse().unwrap(),
    );
    resp
}

fn plain_app() -> Router {
    Router::new()
        .route("/echo", post(echo))
        .route(
            "/items/{id}",
            get(|Path(id): Path<u32>| async move {
                (
                    [("content-type", "application/json")],
                    format!(r#"{{"id":{id}}}"#),
                )
            }),
        )
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>| async move {
                (
                    StatusCode::from_u16(code).unwrap(),
                    [("content-type", "application/json")],
                    r#"{"error":"nope"}"#,
                )
            }),
        )
        // JSON lines, so that the body is captured (text/plain is not, by default).
        .route(
            "/stream",
            get(|| async {
                let chunks = futures_util::stream::unfold(0u32, |i| async move {
                    if i == 5 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(format!("{{\"n\":{i}}}\n"))),
                        i + 1,
                    ))
                });
                (
                    [("content-type", "application/json")],
                    Body::from_stream(chunks),
                )
            }),
        )
}

/// A plain reqwest 0.12 client (no proxy from the environment: the servers are local).
fn plain() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn http() -> client::Client {
    client::instrumented(plain())
}

fn client_span(t: &TestAgent) -> SpanData {
    let s = t.one_span();
    assert_eq!(s.span_kind, SpanKind::Client, "{}", s.name);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_span_attributes_headers_bodies_and_injection() {
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    let resp = http()
        .post(format!("http://{addr}/echo?x=1"))
        .header("content-type", "application/json")
        .header("x-custom-thing", "v1")
        .header("authorization", "Bearer secret")
        .body(r#"{"joke":"why"}"#)
        .send()
        .await
        .unwrap();
    let sent: JsonValue = serde_json::from_str(resp.headers()["x-seen"].to_str().unwrap()).unwrap();
    assert_eq!(resp.text().await.unwrap(), r#"{"joke":"why"}"#);
    let s = client_span(&t);
    assert_eq!(s.name, "POST");
    assert_eq!(attr_str(&s, "http.method").as_deref(), Some("POST"));
    assert_eq!(
        attr_str(&s, "http.url"),
        Some(format!("http://{addr}/echo?x=1"))
    );
    assert_eq!(attr_str(&s, "net.peer.name").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(&s, "net.peer.port"),
        Some(Value::I64(i64::from(addr.port())))
    );
    assert_eq!(attr(&s, "http.status_code"), Some(Value::I64(200)));
    assert_eq!(attr_str(&s, "http.flavor").as_deref(), Some("1.1"));
    assert_eq!(s.status, Status::Unset);
    assert_eq!(
        attr_str(&s, "http.request.header.x-custom-thing").as_deref(),
        Some("v1")
    );
    assert_eq!(
        attr_str(&s, "http.request.header.authorization").as_deref(),
        Some("[REDACTED]")
    );
    assert_eq!(
        attr_str(&s, "http.response.header.x-resp").as_deref(),
        Some("yes")
    );
    assert_eq!(
        attr_str(&s, "http.request.body").as_deref(),
        Some(r#"{"joke":"why"}"#)
    );
    assert_eq!(
        attr_str(&s, "http.response.body").as_deref(),
        Some(r#"{"joke":"why"}"#)
    );
    let tp = format!(
        "00-{}-{}-01",
        s.span_context.trace_id(),
        s.span_context.span_id()
    );
    assert_eq!(
        sent["traceparent"],
        JsonValue::from(tp.clone()),
        "injected on the wire"
    );
    assert_eq!(attr_str(&s, "http.request.header.traceparent"), Some(tp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_sees_what_an_uninstrumented_client_sees() {
    let _t = agent(|_| {});
    let addr = serve(plain_app()).await;
    for path in ["/items/3", "/status/503", "/stream"] {
        let url = format!("http://{addr}{path}");
        let a = plain().get(&url).send().await.unwrap();
        let b = http().get(&url).send().await.unwrap();
        assert_eq!(a.status(), b.status(), "{path}");
        assert_eq!(a.version(), b.version(), "{path}");
        assert_eq!(
            b.url().as_str(),
            url,
            "the response keeps its URL through the wrapping"
        );
        assert_eq!(b.remote_addr(), Some(addr), "and its connection info");
        let strip_date = |h: &reqwest::header::HeaderMap| {
            let mut h = h.clone();
            h.remove("date");
            h
        };
        assert_eq!(strip_date(a.headers()), strip_date(b.headers()), "{path}");
        assert_eq!(a.bytes().await.unwrap(), b.bytes().await.unwrap(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_extension_names_the_span() {
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    let body = http()
        .get(format!("http://{addr}/items/7"))
        .with_extension(Route("/items/{id}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, r#"{"id":7}"#);
    let s = client_span(&t);
    assert_eq!(s.name, "GET /items/{id}");
    assert_eq!(
        attr_str(&s, "http.response.body").as_deref(),
        Some(r#"{"id":7}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_5xx_is_an_error_and_its_body_is_captured() {
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    let r = http()
        .get(format!("http://{addr}/status/503"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    r.bytes().await.unwrap();
    let s = client_span(&t);
    assert_eq!(attr(&s, "http.status_code"), Some(Value::I64(503)));
    assert!(matches!(s.status, Status::Error { .. }), "{:?}", s.status);
    assert_eq!(
        attr_str(&s, "http.response.body").as_deref(),
        Some(r#"{"error":"nope"}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_an_error_with_its_message() {
    let t = agent(|_| {});
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = http()
        .get(format!("http://127.0.0.1:{port}/nothing"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let s = client_span(&t);
    let Status::Error { description } = &s.status else {
        panic!("status {:?}", s.status)
    };
    assert!(
        description.to_lowercase().contains("connection refused"),
        "{description}"
    );
    let ev = s
        .events
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("exception event");
    assert!(ev
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "exception.type" && kv.value.as_str() == "reqwest::Error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_response_is_captured_as_read_and_span_ends_on_drop() {
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    let mut resp = http()
        .get(format!("http://{addr}/stream"))
        .send()
        .await
        .unwrap();
    let mut read = Vec::new();
    for _ in 0..2 {
        read.extend_from_slice(&resp.chunk().await.unwrap().unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    t.guard.flush();
    assert!(
        t.spans.0.lock().unwrap().is_empty(),
        "span ended before the response was finished"
    );
    drop(resp);
    let s = client_span(&t);
    assert_eq!(
        attr_str(&s, "http.response.body"),
        Some(String::from_utf8(read).unwrap()),
        "what the caller read, and only that"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agent_no_span_but_context_still_propagates() {
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    let tracer = t.guard.agent().tracer_provider().tracer("caller");
    let cx = Context::new().with_span(tracer.start("outer"));
    let trace = cx.span().span_context().trace_id();
    let disabled = agent_disabled_after(t);
    let resp = http()
        .post(format!("http://{addr}/echo"))
        .send()
        .with_context(cx)
        .await
        .unwrap();
    let sent: JsonValue = serde_json::from_str(resp.headers()["x-seen"].to_str().unwrap()).unwrap();
    let tp = sent["traceparent"].as_str().expect("traceparent sent");
    assert!(tp.contains(&trace.to_string()), "{tp}");
    disabled.guard.flush();
    assert!(
        disabled.spans.0.lock().unwrap().is_empty(),
        "no span with enabled: false"
    );
}

/// Replaces the installed agent by a disabled one (the global propagator stays set).
fn agent_disabled_after(t: TestAgent) -> TestAgent {
    drop(t);
    agent(|c| c.enabled = false)
}

// ---- One trace across services, every hop through reqwest 0.12 ----

#[derive(Clone)]
struct Api {
    http: client::Client,
    upstream: String,
}

#[hypertrace::handler]
async fn upstream_joke(Path(id): Path<u32>) -> Json<JsonValue> {
    Json(json!({ "id": id, "punchline": "Because light attracts bugs." }))
}

#[hypertrace::handler]
async fn api_joke(
    State(api): State<Api>,
    Path(id): Path<u32>,
) -> Result<Json<JsonValue>, StatusCode> {
    let resp = api
        .http
        .get(format!("{}/jokes/{id}", api.upstream))
        .with_extension(Route("/jokes/{id}"))
        .send()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let bytes = resp.bytes().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    let joke: JsonValue = serde_json::from_slice(&bytes).map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok(Json(json!({ "joke": joke, "served_by": "jokes-api" })))
}

async fn three_hops(formats: &[PropagationFormat]) {
    let t = agent(|c| c.propagation_formats = formats.to_vec());
    let upstream = serve(Router::new().route("/jokes/{id}", get(upstream_joke))).await;
    let api = Api {
        http: client::reqwest_middleware::ClientBuilder::new(plain())
            .with(HypertraceMiddleware::new())
            .build(),
        upstream: format!("http://{upstream}"),
    };
    let api = serve(
        Router::new()
            .route("/api/jokes/{id}", get(api_joke))
            .with_state(api),
    )
    .await;

    let tracer = t.guard.agent().tracer_provider().tracer("jokes-client");
    let root = tracer.start("fetch a joke");
    let root_id = root.span_context().span_id();
    let cx = Context::new().with_span(root);
    let body = async {
        http()
            .get(format!("http://{api}/api/jokes/7"))
            .with_extension(Route("/api/jokes/{id}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }
    .with_context(cx.clone())
    .await;
    let body: JsonValue = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["joke"]["id"], json!(7));
    cx.span().end();

    let spans = t.wait_spans(5);
    assert_eq!(
        spans.len(),
        5,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let find = |name: &str, kind: SpanKind| {
        spans
            .iter()
            .find(|s| s.name == name && s.span_kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} span {name}"))
    };
    let c1 = find("GET /api/jokes/{id}", SpanKind::Client);
    let s1 = find("GET /api/jokes/{id}", SpanKind::Server);
    let c2 = find("GET /jokes/{id}", SpanKind::Client);
    let s2 = find("GET /jokes/{id}", SpanKind::Server);
    let trace = c1.span_context.trace_id();
    assert!(
        spans.iter().all(|s| s.span_context.trace_id() == trace),
        "one trace"
    );
    assert_eq!(c1.parent_span_id, root_id);
    assert_eq!(s1.parent_span_id, c1.span_context.span_id());
    assert!(s1.parent_span_is_remote);
    assert_eq!(c2.parent_span_id, s1.span_context.span_id());
    assert_eq!(s2.parent_span_id, c2.span_context.span_id());
    assert!(s2.parent_span_is_remote);
    assert_ne!(root_id, SpanId::INVALID);
    assert!(attr_str(c2, "http.response.body")
        .unwrap()
        .contains("light attracts bugs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hops_one_trace_w3c() {
    three_hops(&[PropagationFormat::TraceContext]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hops_one_trace_b3() {
    three_hops(&[PropagationFormat::B3]).await;
}
