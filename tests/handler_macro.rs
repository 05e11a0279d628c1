//! Behaviour of `#[hypertrace::handler]` on a real axum server: extractors and state keep working,
//! per-handler options override the config, a rejected body is still captured, and code inside the
//! handler sees its span as current.

mod support;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use opentelemetry::trace::SpanId;
use serde::Deserialize;
use serde_json::{json, Value};
use support::*;

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
}

#[hypertrace::handler]
async fn create_user(
    State(st): State<AppState>,
    Json(u): Json<NewUser>,
) -> Result<Json<Value>, StatusCode> {
    if u.name.is_empty() {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok(Json(
        json!({ "msg": format!("{} {}", st.greeting, u.name) }),
    ))
}

/// A login handler opts out of body capture whatever the config says.
#[hypertrace::handler(name = "login", request_body = false, response_body = false)]
async fn login(Json(v): Json<Value>) -> Json<Value> {
    Json(v)
}

/// Options can also turn capture on where the config turned it off.
#[hypertrace::handler(request_headers = true)]
async fn headers_on(
    Path(id): Path<u32>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> String {
    format!("{id}:{}", q.len())
}

#[tracing::instrument]
async fn load_user(id: u32) -> u32 {
    tracing::info!(id, "loading");
    id * 2
}

#[hypertrace::handler]
async fn nested(Path(id): Path<u32>) -> String {
    tracing::info!("inside the handler, no tracing span open");
    load_user(id).await.to_string()
}

fn app() -> Router {
    Router::new()
        .route("/users", post(create_user))
        .route("/login", post(login))
        .route("/h/{id}", get(headers_on))
        .route("/nested/{id}", get(nested))
        .with_state(AppState { greeting: "hello" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractors_and_state_work_and_everything_is_captured() {
    let t = agent(|_| {});
    let addr = serve(app()).await;
    let r = client()
        .post(format!("http://{addr}/users"))
        .header("content-type", "application/json")
        .body(r#"{"name":"ada"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"msg":"hello ada"}"#);
    let s = t.one_span();
    assert_eq!(s.name, "POST /users");
    assert_eq!(
        attr_str(&s, "http.request.body").as_deref(),
        Some(r#"{"name":"ada"}"#)
    );
    assert_eq!(
        attr_str(&s, "http.response.body").as_deref(),
        Some(r#"{"msg":"hello ada"}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_body_is_still_captured() {
    let t = agent(|_| {});
    let addr = serve(app()).await;
    let r = client()
        .post(format!("http://{addr}/users"))
        .header("content-type", "application/json")
        .body(r#"{"nom":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        422,
        "the extractor's rejection is returned as axum would"
    );
    let s = t.one_span();
    assert_eq!(
        attr_str(&s, "http.request.body").as_deref(),
        Some(r#"{"nom":1}"#)
    );
    assert_eq!(
        attr(&s, "http.status_code"),
        Some(opentelemetry::Value::I64(422))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_options_override_the_config() {
    let t = agent(|c| c.data_capture.http_headers.request = false);
    let addr = serve(app()).await;
    client()
        .post(format!("http://{addr}/login"))
        .header("content-type", "application/json")
        .body(r#"{"password":"x"}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    client()
        .get(format!("http://{addr}/h/3?a=1"))
        .header("x-seen", "yes")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let spans = t.wait_spans(2);
    let login_span = spans
        .iter()
        .find(|s| s.name == "login")
        .expect("span named by the option");
    assert!(!has(login_span, "http.request.body") && !has(login_span, "http.response.body"));
    assert!(
        !has(login_span, "http.request.header.content-type"),
        "config turned request headers off"
    );
    assert!(has(login_span, "http.response.header.content-type"));
    let h = spans.iter().find(|s| s.name == "GET /h/{id}").unwrap();
    assert_eq!(
        attr_str(h, "http.request.header.x-seen").as_deref(),
        Some("yes"),
        "option turned request headers back on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_instrument_span_and_events_join_the_handler_span() {
    init_tracing();
    let t = agent(|_| {});
    let addr = serve(app()).await;
    assert_eq!(
        client()
            .get(format!("http://{addr}/nested/21"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "42"
    );
    let spans = t.wait_spans(2);
    let server = spans
        .iter()
        .find(|s| s.name == "GET /nested/{id}")
        .expect("server span");
    let child = spans
        .iter()
        .find(|s| s.name == "load_user")
        .expect("#[instrument] span");
    assert_eq!(
        child.span_context.trace_id(),
        server.span_context.trace_id()
    );
    assert_eq!(child.parent_span_id, server.span_context.span_id());
    assert_ne!(server.parent_span_id, child.span_context.span_id());
    assert_eq!(server.parent_span_id, SpanId::INVALID);
    assert!(
        server
            .events
            .events
            .iter()
            .any(|e| e.name == "inside the handler, no tracing span open"),
        "event on the handler span"
    );
    assert!(
        child.events.events.iter().any(|e| e.name == "loading"),
        "event on the child span"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_agent_creates_no_span_and_the_handler_still_works() {
    let t = agent(|c| c.enabled = false);
    let addr = serve(app()).await;
    let r = client()
        .post(format!("http://{addr}/users"))
        .header("content-type", "application/json")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"msg":"hello x"}"#);
    std::thread::sleep(std::time::Duration::from_millis(100));
    t.guard.flush();
    assert!(t.spans.0.lock().unwrap().is_empty());
}
