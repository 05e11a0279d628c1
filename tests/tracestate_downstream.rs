//! Capture control by `tracestate` downstream, over real HTTP on 127.0.0.1: the CLIENT spans of
//! `hypertrace::client` follow the `hypertrace=cap:*` of the request they are made in, the
//! tracestate reaches the next service unchanged, and end to end across three services like
//! `examples/jokes.rs` (client → jokes API → joke service), every span of the trace captures per
//! the control the client sent.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use hypertrace::client::{self, Route};
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::SpanKind;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SpanData;
use serde_json::{json, Value};
use support::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Every `tracestate` line and the `traceparent` a service received, in order.
fn trace_headers(h: &HeaderMap) -> Value {
    let lines: Vec<&str> = h
        .get_all("tracestate")
        .iter()
        .map(|v| v.to_str().unwrap_or("?"))
        .collect();
    json!({
        "tracestate": lines,
        "traceparent": h.get("traceparent").and_then(|v| v.to_str().ok()),
    })
}

// ---- the joke service (B) ----

#[hypertrace::handler]
async fn random_joke(Path(id): Path<u32>, headers: HeaderMap) -> Json<Value> {
    Json(json!({
        "id": id,
        "setup": "Why do programmers prefer dark mode?",
        "punchline": "Because light attracts bugs.",
        "seen": trace_headers(&headers),
    }))
}

// ---- the jokes API (A) ----

#[derive(Clone)]
struct Api {
    http: client::Client,
    upstream: String,
}

#[hypertrace::handler]
async fn joke(State(api): State<Api>, Path(id): Path<u32>, headers: HeaderMap) -> Json<Value> {
    let upstream = api
        .http
        .get(format!("{}/jokes/{id}", api.upstream))
        .with_extension(Route("/jokes/{id}"))
        .header("x-api-key", "k-123")
        .send()
        .await
        .unwrap();
    let upstream = json_of(upstream).await;
    Json(json!({
        "joke": format!("{} {}", upstream["setup"].as_str().unwrap(), upstream["punchline"].as_str().unwrap()),
        "api_seen": trace_headers(&headers),
        "upstream_seen": upstream["seen"],
    }))
}

/// The joke service and the jokes API, both instrumented; returns the API's address.
async fn services() -> SocketAddr {
    let upstream = serve(Router::new().route("/jokes/{id}", get(random_joke))).await;
    let api = Api {
        http: client::instrumented(support::client()),
        upstream: format!("http://{upstream}"),
    };
    serve(
        Router::new()
            .route("/api/jokes/{id}", get(joke))
            .with_state(api),
    )
    .await
}

/// The context of a request that arrived with `traceparent` and `tracestate` (the jokes client
/// runs inside it, as a service that was itself called would): extracted by the W3C propagator.
fn arrived_with(tracestate: Option<&str>) -> Context {
    let mut h = HashMap::new();
    h.insert("traceparent".to_string(), TRACEPARENT.to_string());
    if let Some(ts) = tracestate {
        h.insert("tracestate".to_string(), ts.to_string());
    }
    TraceContextPropagator::new().extract_with_context(&Context::new(), &h)
}

/// The jokes client: the instrumented client, calling the API inside `cx`.
async fn tell_me_a_joke(api: SocketAddr, cx: Context) -> Value {
    let resp = client::instrumented(support::client())
        .get(format!("http://{api}/api/jokes/1"))
        .with_extension(Route("/api/jokes/{id}"))
        .header("x-client", "jokes-cli")
        .header("user-agent", "jokes-cli/1")
        .send()
        .with_context(cx.clone())
        .await
        .unwrap();
    json_of(resp).await
}

/// The response body as JSON (the client reads it to the end, so its span ends).
async fn json_of(resp: reqwest::Response) -> Value {
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

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

fn find<'a>(spans: &'a [SpanData], name: &str, kind: SpanKind) -> &'a SpanData {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name && s.span_kind == kind)
        .collect();
    assert_eq!(found.len(), 1, "{name} {kind:?} in {spans:#?}");
    found[0]
}

/// The four spans of one joke: the client's CLIENT span, the API's SERVER and CLIENT spans, the
/// joke service's SERVER span; all in the caller's trace.
fn joke_spans(t: &TestAgent) -> [SpanData; 4] {
    let spans = t.wait_spans(4);
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for s in &spans {
        assert_eq!(s.span_context.trace_id().to_string(), TRACE, "{}", s.name);
    }
    [
        find(&spans, "GET /api/jokes/{id}", SpanKind::Client).clone(),
        find(&spans, "GET /api/jokes/{id}", SpanKind::Server).clone(),
        find(&spans, "GET /jokes/{id}", SpanKind::Client).clone(),
        find(&spans, "GET /jokes/{id}", SpanKind::Server).clone(),
    ]
}

const ALLOWED: [&str; 4] = [
    "http.request.header.content-type",
    "http.request.header.user-agent",
    "http.response.header.content-type",
    "http.response.header.user-agent",
];

/// `cap:0`: headers only among content-type and user-agent (the response's content-type is always
/// there: every hop answers JSON), and no bodies.
fn assert_minimal(s: &SpanData) {
    let captured: Vec<String> = keys(s, "http.request.")
        .into_iter()
        .chain(keys(s, "http.response."))
        .collect();
    for k in &captured {
        assert!(
            ALLOWED.contains(&k.as_str()),
            "{} {:?} captured {k}",
            s.name,
            s.span_kind
        );
    }
    assert!(
        captured.contains(&"http.response.header.content-type".to_string()),
        "{} {:?}: {captured:?}",
        s.name,
        s.span_kind
    );
    assert!(!has(s, "http.request.body") && !has(s, "http.response.body"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_0_from_the_client_holds_for_every_span_and_reaches_the_last_service_unchanged() {
    let t = agent(|_| {});
    let api = services().await;
    let sent = "congo=t61rcWkgMzE,hypertrace=cap:0,rojo=00f067aa0ba902b7";
    let answer = tell_me_a_joke(api, arrived_with(Some(sent))).await;
    assert_eq!(
        answer["joke"],
        "Why do programmers prefer dark mode? Because light attracts bugs."
    );
    // On the wire, at each hop: the list as the client sent it, members and order.
    assert_eq!(answer["api_seen"]["tracestate"], json!([sent]));
    assert_eq!(answer["upstream_seen"]["tracestate"], json!([sent]));

    let spans = joke_spans(&t);
    for s in &spans {
        assert_minimal(s);
        assert_eq!(s.span_context.trace_state().header(), sent, "{}", s.name);
    }
    // What is left is there: the user agent the client sent, on its span and on the API's.
    for s in &spans[..2] {
        assert_eq!(
            attr_str(s, "http.request.header.user-agent").as_deref(),
            Some("jokes-cli/1"),
            "{} {:?}",
            s.name,
            s.span_kind
        );
    }
    // Each hop's traceparent names the span before it: the trace itself is untouched.
    let tp = |s: &SpanData| format!("00-{TRACE}-{}-01", s.span_context.span_id());
    assert_eq!(answer["api_seen"]["traceparent"], json!(tp(&spans[0])));
    assert_eq!(answer["upstream_seen"]["traceparent"], json!(tp(&spans[2])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_1_and_no_control_capture_as_the_control_and_the_config_say() {
    // Bodies off in the config: without a control no span has one; `cap:1` turns them on.
    let t = agent(|c| {
        c.data_capture.http_body.request = false;
        c.data_capture.http_body.response = false;
    });
    let api = services().await;

    tell_me_a_joke(api, arrived_with(None)).await;
    let spans = joke_spans(&t);
    for s in &spans {
        assert!(!has(s, "http.response.body"), "{}", s.name);
        assert!(has(s, "http.response.header.content-type"), "{}", s.name);
    }
    // Every header, with the configured redaction.
    assert_eq!(
        attr_str(&spans[0], "http.request.header.x-client").as_deref(),
        Some("jokes-cli")
    );
    assert_eq!(
        attr_str(&spans[2], "http.request.header.x-api-key").as_deref(),
        Some("[REDACTED]")
    );
    assert!(has(&spans[3], "http.request.header.traceparent"));

    t.spans.0.lock().unwrap().clear();
    let sent = "hypertrace=cap:1";
    let answer = tell_me_a_joke(api, arrived_with(Some(sent))).await;
    assert_eq!(answer["upstream_seen"]["tracestate"], json!([sent]));
    let spans = joke_spans(&t);
    for s in &spans {
        let body: Value = serde_json::from_str(
            &attr_str(s, "http.response.body").unwrap_or_else(|| panic!("{}: no body", s.name)),
        )
        .unwrap();
        assert!(body.is_object(), "{}", s.name);
        assert_eq!(s.span_context.trace_state().header(), sent);
    }
    // Redaction still applies under `cap:1`.
    assert_eq!(
        attr_str(&spans[2], "http.request.header.x-api-key").as_deref(),
        Some("[REDACTED]")
    );
    assert!(has(&spans[3], "http.request.header.tracestate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracestate_split_over_several_lines_reaches_downstream_whole() {
    let t = agent(|_| {});
    let api = services().await;
    // A plain client, sending two header lines (a proxy may split or add one).
    let resp = support::client()
        .get(format!("http://{api}/api/jokes/2"))
        .header("traceparent", TRACEPARENT)
        .header("tracestate", "congo=t61rcWkgMzE")
        .header("tracestate", "hypertrace=cap:0,rojo=00f067aa0ba902b7")
        .send()
        .await
        .unwrap();
    let answer = json_of(resp).await;
    assert_eq!(
        answer["api_seen"]["tracestate"],
        json!([
            "congo=t61rcWkgMzE",
            "hypertrace=cap:0,rojo=00f067aa0ba902b7"
        ])
    );
    // Passed on as one list, nothing dropped, in order; and `cap:0` from the second line counted.
    assert_eq!(
        answer["upstream_seen"]["tracestate"],
        json!(["congo=t61rcWkgMzE,hypertrace=cap:0,rojo=00f067aa0ba902b7"])
    );
    let spans = t.wait_spans(3);
    assert_eq!(spans.len(), 3, "{spans:#?}");
    for s in &spans {
        assert_minimal(s);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_off_captures_as_configured_and_still_propagates() {
    let t = agent(|c| c.rustagent.tracestate_capture_control = false);
    let api = services().await;
    let sent = "hypertrace=cap:0,congo=t61rcWkgMzE";
    let answer = tell_me_a_joke(api, arrived_with(Some(sent))).await;
    assert_eq!(answer["upstream_seen"]["tracestate"], json!([sent]));
    let spans = joke_spans(&t);
    for s in &spans {
        assert!(has(s, "http.response.body"), "{}", s.name);
    }
    assert!(has(&spans[0], "http.request.header.x-client"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_call_outside_any_request_captures_as_configured() {
    let t = agent(|_| {});
    let api = services().await;
    tell_me_a_joke(api, Context::new()).await;
    let spans = t.wait_spans(4);
    let c = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client && s.name == "GET /api/jokes/{id}")
        .unwrap();
    assert!(has(c, "http.request.header.x-client"));
    assert!(has(c, "http.response.body"));
    assert_eq!(c.span_context.trace_state().header(), "");
}
