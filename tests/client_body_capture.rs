//! Outgoing HTTP through `hypertrace::client`: secrets in JSON and form bodies are redacted on the
//! CLIENT span (request and response), and a `text/plain` error body says why a call failed.
//! Real HTTP against a plain axum server on 127.0.0.1 (no agent on it: the only span is the
//! client's).

mod support;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use hypertrace::client;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use support::*;

async fn echo(headers: HeaderMap, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    if let Some(ct) = headers.get("content-type") {
        resp.headers_mut().insert("content-type", ct.clone());
    }
    resp
}

const TOKEN_RESPONSE: &str =
    r#"{"access_token":"eyJhbGciOiJIUzI1NiJ9.e30.sig","refresh_token":"r-123","expires_in":3600}"#;

fn upstream() -> Router {
    Router::new()
        .route("/echo", post(echo))
        .route(
            "/oauth/token",
            post(|| async { ([("content-type", "application/json")], TOKEN_RESPONSE) }),
        )
        .route(
            "/reject",
            get(|| async { (StatusCode::UNPROCESSABLE_ENTITY, "missing field `name`") }),
        )
}

fn client_span(t: &TestAgent) -> SpanData {
    let s = t.one_span();
    assert_eq!(s.span_kind, SpanKind::Client, "{}", s.name);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_request_and_response_secrets_are_redacted() {
    let addr = serve(upstream()).await;
    let http = client::instrumented(support::client());

    let t = agent(|_| {});
    let form = "grant_type=client_credentials&client_id=app&client_secret=s3cr3t";
    let got = http
        .post(format!("http://{addr}/echo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(got, form, "sent and received as written");
    let s = client_span(&t);
    let redacted = "grant_type=client_credentials&client_id=app&client_secret=[REDACTED]";
    assert_eq!(attr_str(&s, "http.request.body").as_deref(), Some(redacted));
    assert_eq!(
        attr_str(&s, "http.response.body").as_deref(),
        Some(redacted)
    );
    drop(t);

    let t = agent(|_| {});
    let got = http
        .post(format!("http://{addr}/oauth/token"))
        .header("content-type", "application/json")
        .body(r#"{"username":"ada","password":"hunter2"}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(got, TOKEN_RESPONSE);
    let s = client_span(&t);
    assert_eq!(
        attr_str(&s, "http.request.body").as_deref(),
        Some(r#"{"username":"ada","password":"[REDACTED]"}"#)
    );
    assert_eq!(
        attr_str(&s, "http.response.body").as_deref(),
        Some(r#"{"access_token":"[REDACTED]","refresh_token":"[REDACTED]","expires_in":3600}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_redaction_off_with_an_empty_list() {
    let addr = serve(upstream()).await;
    let http = client::instrumented(support::client());
    let t = agent(|c| c.rustagent.redact_body_fields = Vec::<String>::new().into());
    http.post(format!("http://{addr}/oauth/token"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let s = client_span(&t);
    assert_eq!(
        attr_str(&s, "http.response.body").as_deref(),
        Some(TOKEN_RESPONSE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_captures_a_text_plain_error_body_unless_switched_off() {
    let addr = serve(upstream()).await;
    let http = client::instrumented(support::client());
    for on in [true, false] {
        let t = agent(|c| c.rustagent.capture_error_text_bodies = on);
        let r = http
            .get(format!("http://{addr}/reject"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        assert_eq!(r.text().await.unwrap(), "missing field `name`");
        let s = client_span(&t);
        assert_eq!(
            attr_str(&s, "http.response.body").as_deref(),
            on.then_some("missing field `name`"),
            "capture_error_text_bodies = {on}"
        );
    }
}
