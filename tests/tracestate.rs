//! Capture control by the caller's W3C `tracestate` (`hypertrace=cap:0` / `cap:1`) on incoming HTTP,
//! over real HTTP on 127.0.0.1: through the layer and through `#[hypertrace::handler]` alone, the
//! precedence against the config and code-level options, malformed values, the config switch that
//! ignores it, and what the client receives (unchanged by any of it).

mod support;

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use support::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const CAP0: &str = "congo=t61rcWkgMzE,hypertrace=cap:0";
const CAP1: &str = "hypertrace=cap:1,rojo=00f067aa0ba902b7";
const BODY: &str = r#"{"user":"ada","password":"s3cret","note":"hello"}"#;

/// Echoes the JSON body with a response header of its own.
async fn echo(body: Bytes) -> Response {
    (
        [
            ("content-type", "application/json"),
            ("x-served-by", "echo"),
        ],
        body,
    )
        .into_response()
}

#[hypertrace::handler]
async fn annotated(body: Bytes) -> Response {
    echo(body).await
}

/// Asks for both bodies in code: `cap:0` still wins, since it only ever takes away.
#[hypertrace::handler(request_body = true, response_body = true)]
async fn wants_bodies(body: Bytes) -> Response {
    echo(body).await
}

/// A login opts out of request-body capture in code: no caller can turn it back on.
#[hypertrace::handler(request_body = false)]
async fn login(body: Bytes) -> Response {
    echo(body).await
}

/// Turns request headers back on behind a layer that turned them off.
#[hypertrace::handler(request_headers = true)]
async fn headers_on(body: Bytes) -> Response {
    echo(body).await
}

fn layered() -> Router {
    Router::new()
        .route("/echo", post(echo))
        .route("/login", post(login))
        .layer(hypertrace::layer())
}

fn layered_without_response_body() -> Router {
    Router::new()
        .route("/echo", post(echo))
        .layer(hypertrace::layer().response_body(false))
}

fn macro_only() -> Router {
    Router::new()
        .route("/echo", post(annotated))
        .route("/wants-bodies", post(wants_bodies))
        .route("/login", post(login))
}

/// What a client sees of a response: status, headers but `date`, body.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

/// POSTs `BODY` to `path` with a `traceparent`, the given `tracestate` (none for `None`) and a few
/// headers that capture would record.
async fn call(addr: SocketAddr, path: &str, tracestate: Option<&str>) -> Seen {
    let mut req = client()
        .post(format!("http://{addr}{path}"))
        .header("traceparent", TRACEPARENT)
        .header("content-type", "application/json")
        .header("user-agent", "tracestate-test/1")
        .header("authorization", "Bearer secret")
        .header("x-request-id", "r-42");
    if let Some(ts) = tracestate {
        req = req.header("tracestate", ts);
    }
    let resp = req.body(BODY).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let body = resp.bytes().await.unwrap();
    Seen {
        status,
        headers,
        body,
    }
}

/// The keys of `span` that start with `prefix`, sorted.
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

/// The SERVER span of the request, which is the only span here.
fn server_span(t: &TestAgent) -> SpanData {
    let s = t.one_span();
    assert_eq!(s.span_kind, SpanKind::Server);
    assert_eq!(
        s.span_context.trace_id().to_string(),
        TRACE,
        "the caller's trace"
    );
    s
}

/// `cap:0`: only content-type and user-agent among the request headers, content-type among the
/// response's, no bodies; everything else about the span as usual.
fn assert_minimal(s: &SpanData) {
    assert_eq!(
        keys(s, "http.request.header."),
        [
            "http.request.header.content-type",
            "http.request.header.user-agent"
        ],
        "{:#?}",
        s.attributes
    );
    assert_eq!(
        attr_str(s, "http.request.header.user-agent").as_deref(),
        Some("tracestate-test/1")
    );
    assert_eq!(
        keys(s, "http.response.header."),
        ["http.response.header.content-type"]
    );
    assert!(
        keys(s, "http.request.body").is_empty(),
        "{:#?}",
        s.attributes
    );
    assert!(
        keys(s, "http.response.body").is_empty(),
        "{:#?}",
        s.attributes
    );
    // Not capture: the request's own attributes are all still there.
    assert_eq!(attr_str(s, "http.method").as_deref(), Some("POST"));
    assert_eq!(attr(s, "http.status_code"), Some(200i64.into()));
    assert!(has(s, "http.user_agent"));
}

/// Everything: all the headers (redacted as configured) and both bodies.
fn assert_everything(s: &SpanData) {
    for h in ["content-type", "user-agent", "x-request-id", "traceparent"] {
        assert!(
            has(s, &format!("http.request.header.{h}")),
            "{h}: {:#?}",
            s.attributes
        );
    }
    assert_eq!(
        attr_str(s, "http.request.header.authorization").as_deref(),
        Some("[REDACTED]")
    );
    assert_eq!(
        attr_str(s, "http.response.header.x-served-by").as_deref(),
        Some("echo")
    );
    let redacted = r#"{"user":"ada","password":"[REDACTED]","note":"hello"}"#;
    assert_eq!(attr_str(s, "http.request.body").as_deref(), Some(redacted));
    assert_eq!(attr_str(s, "http.response.body").as_deref(), Some(redacted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_0_through_the_layer_keeps_content_type_and_user_agent_only() {
    let t = agent(|_| {});
    let addr = serve(layered()).await;
    let seen = call(addr, "/echo", Some(CAP0)).await;
    let s = server_span(&t);
    assert_minimal(&s);
    // The span's context carries the caller's tracestate unchanged: its own calls pass it on.
    assert_eq!(s.span_context.trace_state().header(), CAP0);

    // What the client got is what it gets without the control, and without the agent.
    t.spans.0.lock().unwrap().clear();
    assert_eq!(call(addr, "/echo", None).await, seen);
    let plain = serve(Router::new().route("/echo", post(echo))).await;
    assert_eq!(call(plain, "/echo", Some(CAP0)).await, seen);
    assert_eq!(seen.body, BODY.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_0_through_the_macro_alone() {
    let t = agent(|_| {});
    let addr = serve(macro_only()).await;
    call(addr, "/echo", Some(CAP0)).await;
    assert_minimal(&server_span(&t));

    // A handler that asks for the bodies in code does not get them under `cap:0`.
    t.spans.0.lock().unwrap().clear();
    let seen = call(addr, "/wants-bodies", Some("hypertrace=cap:0")).await;
    assert_eq!(seen.body, BODY.as_bytes());
    assert_minimal(&server_span(&t));

    // Without the control the same handlers capture everything.
    t.spans.0.lock().unwrap().clear();
    call(addr, "/echo", None).await;
    assert_everything(&server_span(&t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_0_holds_for_headers_a_handler_turns_back_on_behind_the_layer() {
    let t = agent(|_| {});
    let app = Router::new()
        .route("/echo", post(headers_on))
        .layer(hypertrace::layer().request_headers(false));
    let addr = serve(app).await;
    call(addr, "/echo", Some(CAP0)).await;
    assert_minimal(&server_span(&t));
    t.spans.0.lock().unwrap().clear();
    call(addr, "/echo", None).await;
    assert_everything(&server_span(&t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_0_never_turns_on_headers_the_config_turned_off() {
    let t = agent(|c| c.data_capture.http_headers.request = false);
    let addr = serve(layered()).await;
    call(addr, "/echo", Some(CAP0)).await;
    let s = server_span(&t);
    assert!(
        keys(&s, "http.request.header.").is_empty(),
        "{:#?}",
        s.attributes
    );
    assert_eq!(
        keys(&s, "http.response.header."),
        ["http.response.header.content-type"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_1_turns_on_what_the_config_left_off() {
    let t = agent(|c| {
        c.data_capture.http_body.request = false;
        c.data_capture.http_body.response = false;
        c.data_capture.http_headers.request = false;
        c.data_capture.http_headers.response = false;
    });
    for app in [layered(), macro_only()] {
        let addr = serve(app).await;
        t.spans.0.lock().unwrap().clear();
        call(addr, "/echo", Some(CAP1)).await;
        let s = server_span(&t);
        assert_everything(&s);
        assert_eq!(s.span_context.trace_state().header(), CAP1);

        // As configured without it: nothing.
        t.spans.0.lock().unwrap().clear();
        call(addr, "/echo", None).await;
        let s = server_span(&t);
        assert!(keys(&s, "http.request.")
            .iter()
            .all(|k| !k.contains("header") && !k.contains("body")));
        assert!(keys(&s, "http.response.").is_empty(), "{:#?}", s.attributes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_1_never_captures_what_code_turned_off() {
    let t = agent(|_| {});
    // `#[hypertrace::handler(request_body = false)]`, behind the layer and on its own.
    for app in [layered(), macro_only()] {
        let addr = serve(app).await;
        t.spans.0.lock().unwrap().clear();
        call(addr, "/login", Some(CAP1)).await;
        let s = server_span(&t);
        assert!(!has(&s, "http.request.body"), "{:#?}", s.attributes);
        assert!(
            s.attributes
                .iter()
                .all(|kv| !kv.value.as_str().contains("s3cret")),
            "the password is on no attribute: {:#?}",
            s.attributes
        );
        // What the code left on is still there, redacted.
        assert!(has(&s, "http.response.body"));
        assert_eq!(
            attr_str(&s, "http.request.header.authorization").as_deref(),
            Some("[REDACTED]")
        );
    }
    // A layer's opt-out holds too.
    let addr = serve(layered_without_response_body()).await;
    t.spans.0.lock().unwrap().clear();
    call(addr, "/echo", Some(CAP1)).await;
    let s = server_span(&t);
    assert!(has(&s, "http.request.body"));
    assert!(!has(&s, "http.response.body"), "{:#?}", s.attributes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_malformed_controls_capture_as_configured() {
    let t = agent(|_| {});
    let addr = serve(layered()).await;
    for ts in [
        "hypertrace=cap:2",
        "hypertrace=cap:0;cap:1",
        "hypertrace=cap",
        "hypertrace=CAP:0",
        "hypertrace=cap:0,hypertrace=cap:0",
        "congo=cap:0",
        "t@hypertrace=cap:0",
        // Not a valid tracestate at all (a key with capitals): the whole header is dropped.
        "Hypertrace=cap:0,hypertrace=cap:0",
        "",
    ] {
        t.spans.0.lock().unwrap().clear();
        let seen = call(addr, "/echo", Some(ts)).await;
        assert_eq!(seen.status, 200, "{ts:?}");
        assert_everything(&server_span(&t));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracestate_without_a_traceparent_is_ignored() {
    let t = agent(|_| {});
    let addr = serve(layered()).await;
    let resp = client()
        .post(format!("http://{addr}/echo"))
        .header("tracestate", "hypertrace=cap:0")
        .header("content-type", "application/json")
        .header("x-request-id", "r-42")
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), BODY);
    let s = t.one_span();
    assert_ne!(s.span_context.trace_id().to_string(), TRACE);
    assert!(has(&s, "http.request.header.x-request-id"));
    assert!(has(&s, "http.request.body"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_switch_ignores_the_callers_control() {
    let t = agent(|c| c.rustagent.tracestate_capture_control = false);
    for app in [layered(), macro_only()] {
        let addr = serve(app).await;
        t.spans.0.lock().unwrap().clear();
        call(addr, "/echo", Some(CAP0)).await;
        let s = server_span(&t);
        assert_everything(&s);
        // Ignored for capture, still propagated.
        assert_eq!(s.span_context.trace_state().header(), CAP0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b3_only_services_have_no_tracestate_to_read() {
    let t = agent(|c| c.propagation_formats = vec![hypertrace::config::PropagationFormat::B3]);
    let addr = serve(layered()).await;
    let resp = client()
        .post(format!("http://{addr}/echo"))
        .header("b3", format!("{TRACE}-00f067aa0ba902b7-1"))
        .header("tracestate", "hypertrace=cap:0")
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), BODY);
    let s = server_span(&t);
    assert!(has(&s, "http.request.body"));
    assert!(has(&s, "http.request.header.tracestate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_1_does_not_make_an_unsampled_request_sampled() {
    let t = agent(|_| {});
    let addr = serve(layered()).await;
    let resp = client()
        .post(format!("http://{addr}/echo"))
        .header("traceparent", TRACEPARENT.replace("-01", "-00"))
        .header("tracestate", CAP1)
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), BODY);
    std::thread::sleep(std::time::Duration::from_millis(100));
    t.guard.flush();
    assert!(
        t.spans.0.lock().unwrap().is_empty(),
        "not sampled: not exported"
    );
}

/// What a handler sees of the headers is not changed by the control either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_sees_the_request_as_sent() {
    #[hypertrace::handler]
    async fn headers(h: HeaderMap, body: Bytes) -> String {
        format!(
            "{}|{}|{}",
            h.get("tracestate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            h.get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            body.len()
        )
    }
    let _t = agent(|_| {});
    let addr = serve(Router::new().route("/h", post(headers))).await;
    let text = client()
        .post(format!("http://{addr}/h"))
        .header("traceparent", TRACEPARENT)
        .header("tracestate", CAP0)
        .header("authorization", "Bearer secret")
        .body(BODY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, format!("{CAP0}|Bearer secret|{}", BODY.len()));
}
