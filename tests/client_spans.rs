//! Outgoing HTTP (docs/behaviour.md §7.1): the CLIENT spans of `hypertrace::client`, over real HTTP on
//! 127.0.0.1, and one trace across three hops (client → API → upstream) for W3C, B3 and a mix.
//!
//! The servers of the capture tests are plain axum (no agent on them), so the only span exported is
//! the client's.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use hypertrace::client::{self, HypertraceMiddleware, Route};
use hypertrace::config::PropagationFormat;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::SpanData;
use serde_json::{json, Value as JsonValue};
use support::*;

/// Echoes the body with its content type and encoding, and the request headers as JSON under
/// `x-seen` (so tests see what was sent on the wire), plus a response header.
async fn echo(headers: HeaderMap, body: Bytes) -> Response {
    let seen: serde_json::Map<String, JsonValue> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                JsonValue::from(v.to_str().unwrap_or("?")),
            )
        })
        .collect();
    let mut resp = Response::new(Body::from(body));
    for h in ["content-type", "content-encoding"] {
        if let Some(v) = headers.get(h) {
            resp.headers_mut().insert(h, v.clone());
        }
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
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
}

fn http() -> client::Client {
    client::instrumented(support::client())
}

fn seen(resp: &reqwest::Response) -> JsonValue {
    serde_json::from_str(resp.headers()["x-seen"].to_str().unwrap()).unwrap()
}

async fn post_json(
    addr: SocketAddr,
    ct: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    http()
        .post(format!("http://{addr}/echo"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn client_span(t: &TestAgent) -> SpanData {
    let s = t.one_span();
    assert_eq!(s.span_kind, SpanKind::Client, "{}", s.name);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_span_attributes_headers_and_bodies() {
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    let resp = http()
        .post(format!("http://{addr}/echo?x=1"))
        .header("content-type", "application/json; charset=utf-8")
        .header("X-Custom-Thing", "v1")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .header("authorization", "Bearer secret")
        .header("cookie", "session=secret")
        .body(r#"{"joke":"why"}"#)
        .send()
        .await
        .unwrap();
    let sent = seen(&resp);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"joke":"why"}"#,
        "the caller reads the body unchanged"
    );
    let s = client_span(&t);
    assert_eq!(s.name, "POST");
    assert_eq!(s.parent_span_id, SpanId::INVALID, "no current span: a root");
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
        attr_str(&s, "http.request.header.content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        attr_str(&s, "http.request.header.x-custom-thing").as_deref(),
        Some("v1")
    );
    assert_eq!(
        attr_str(&s, "http.request.header.x-multi[0]").as_deref(),
        Some("a")
    );
    assert_eq!(
        attr_str(&s, "http.request.header.x-multi[1]").as_deref(),
        Some("b")
    );
    assert_eq!(
        attr_str(&s, "http.request.header.authorization").as_deref(),
        Some("[REDACTED]")
    );
    assert_eq!(
        attr_str(&s, "http.request.header.cookie").as_deref(),
        Some("[REDACTED]")
    );
    assert!(!s
        .attributes
        .iter()
        .any(|kv| kv.value.as_str().contains("Bearer secret")
            && kv.key.as_str() != "http.response.header.x-seen"));
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
    // The propagation header went out carrying this span, and the span shows it as sent.
    let tp = format!(
        "00-{}-{}-01",
        s.span_context.trace_id(),
        s.span_context.span_id()
    );
    assert_eq!(sent["traceparent"], JsonValue::from(tp.clone()));
    assert_eq!(attr_str(&s, "http.request.header.traceparent"), Some(tp));
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
        attr_str(&s, "http.url"),
        Some(format!("http://{addr}/items/7"))
    );
    assert_eq!(
        attr_str(&s, "http.response.body").as_deref(),
        Some(r#"{"id":7}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_follows_the_config() {
    let t = agent(|c| c.rustagent.redact_headers = vec!["x-tenant".into()]);
    let addr = serve(plain_app()).await;
    http()
        .post(format!("http://{addr}/echo"))
        .header("authorization", "Bearer abc")
        .header("x-tenant", "acme")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let s = client_span(&t);
    assert_eq!(
        attr_str(&s, "http.request.header.authorization").as_deref(),
        Some("Bearer abc")
    );
    assert_eq!(
        attr_str(&s, "http.request.header.x-tenant").as_deref(),
        Some("[REDACTED]")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_rules() {
    let cases = [
        (Some("application/json"), true),
        (Some("Application/JSON"), true),
        (Some("application/vnd.api+json"), true),
        (Some("application/x-www-form-urlencoded"), true),
        (Some("text/plain"), false),
        (None, false),
    ];
    for (ct, captured) in cases {
        let t = agent(|_| {});
        let addr = serve(plain_app()).await;
        let mut req = http()
            .post(format!("http://{addr}/echo"))
            .body(r#"{"a":1}"#);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send().await.unwrap().text().await.unwrap();
        let s = client_span(&t);
        assert_eq!(
            has(&s, "http.request.body"),
            captured,
            "request body for {ct:?}"
        );
        assert_eq!(
            has(&s, "http.response.body"),
            captured,
            "response body for {ct:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_truncated_at_the_limit() {
    let t = agent(|c| c.data_capture.body_max_size_bytes = 16);
    let addr = serve(plain_app()).await;
    let body = format!("{}é and more", "a".repeat(15)); // é straddles the limit
    let echoed = post_json(addr, "application/json", body.clone())
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(echoed, body, "the caller sees the whole body");
    let s = client_span(&t);
    for key in ["http.request.body", "http.response.body"] {
        assert_eq!(attr_str(&s, key), Some("a".repeat(15)), "{key}");
        assert_eq!(
            attr(&s, &format!("{key}.truncated")),
            Some(Value::Bool(true)),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_and_gzip_bodies() {
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    let bin = vec![0xff, 0x00, 0xfe, 0x01];
    assert_eq!(
        post_json(addr, "application/json", bin.clone())
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        &bin[..]
    );
    let s = client_span(&t);
    assert_eq!(
        attr_str(&s, "http.request.body.base64").as_deref(),
        Some("/wD+AQ")
    );
    assert_eq!(
        attr_str(&s, "http.response.body.base64").as_deref(),
        Some("/wD+AQ")
    );
    drop(t);

    let t = agent(|_| {});
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(br#"{"zipped":true}"#).unwrap();
    let gz = enc.finish().unwrap();
    let got = http()
        .post(format!("http://{addr}/echo"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        got.as_ref(),
        &gz[..],
        "the caller gets the compressed bytes"
    );
    let s = client_span(&t);
    assert_eq!(
        attr_str(&s, "http.request.body").as_deref(),
        Some(r#"{"zipped":true}"#)
    );
    assert_eq!(
        attr_str(&s, "http.response.body").as_deref(),
        Some(r#"{"zipped":true}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_capture_switches_and_client_overrides_turn_capture_off() {
    type Edit = fn(&mut hypertrace::config::Config);
    type Ov = fn(HypertraceMiddleware) -> HypertraceMiddleware;
    let all = [
        "http.request.header.x-h",
        "http.response.header.x-resp",
        "http.request.body",
        "http.response.body",
    ];
    let by_config: [(Edit, &str); 4] = [
        (|c| c.data_capture.http_headers.request = false, all[0]),
        (|c| c.data_capture.http_headers.response = false, all[1]),
        (|c| c.data_capture.http_body.request = false, all[2]),
        (|c| c.data_capture.http_body.response = false, all[3]),
    ];
    let by_client: [(Ov, &str); 4] = [
        (|m| m.request_headers(false), all[0]),
        (|m| m.response_headers(false), all[1]),
        (|m| m.request_body(false), all[2]),
        (|m| m.response_body(false), all[3]),
    ];
    let cases = by_config.iter().map(|(e, k)| (*e, None, *k)).chain(
        by_client
            .iter()
            .map(|(o, k)| ((|_| {}) as Edit, Some(*o), *k)),
    );
    for (edit, ov, key) in cases {
        let t = agent(edit);
        let addr = serve(plain_app()).await;
        let mw = ov.map_or(HypertraceMiddleware::new(), |o| {
            o(HypertraceMiddleware::new())
        });
        let c = client::reqwest_middleware::ClientBuilder::new(support::client())
            .with(mw)
            .build();
        c.post(format!("http://{addr}/echo"))
            .header("x-h", "1")
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let s = client_span(&t);
        assert!(!has(&s, key), "{key} should be off");
        for other in all.iter().filter(|k| **k != key) {
            assert!(
                has(&s, other),
                "{other} should still be on when {key} is off"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_stripped_from_http_url() {
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    // Through the request builder: reqwest turns the userinfo into a (redacted) authorization header.
    http()
        .post(format!("http://ada:s3cret@{addr}/echo"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let s = client_span(&t);
    assert_eq!(
        attr_str(&s, "http.url"),
        Some(format!("http://{addr}/echo"))
    );
    assert_eq!(
        attr_str(&s, "http.request.header.authorization").as_deref(),
        Some("[REDACTED]")
    );
    drop(t);

    // A hand-built request keeps its userinfo: the span still must not.
    let t = agent(|_| {});
    let req = reqwest::Request::new(
        reqwest::Method::POST,
        format!("http://ada:s3cret@{addr}/echo").parse().unwrap(),
    );
    http().execute(req).await.unwrap().bytes().await.unwrap();
    let s = client_span(&t);
    assert_eq!(
        attr_str(&s, "http.url"),
        Some(format!("http://{addr}/echo"))
    );
    assert!(!s
        .attributes
        .iter()
        .any(|kv| kv.value.as_str().contains("s3cret")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_an_error_with_its_message() {
    let t = agent(|_| {});
    // A port nobody listens on: bind, note it, close.
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
    assert_eq!(s.name, "GET");
    assert!(!has(&s, "http.status_code"));
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
        .any(|kv| kv.key.as_str() == "exception.message"
            && kv.value.as_str() == description.as_ref()));
    assert!(ev
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "exception.type" && kv.value.as_str() == "reqwest::Error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_an_error() {
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    let err = http()
        .get(format!("http://{addr}/slow"))
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let s = client_span(&t);
    assert!(
        matches!(&s.status, Status::Error { description } if description.contains("timed out")),
        "{:?}",
        s.status
    );
    assert!(s.events.events.iter().any(|e| e.name == "exception"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_5xx_and_4xx_are_errors_on_a_client_span() {
    for (code, error) in [
        (500u16, true),
        (503, true),
        (404, true),
        (400, true),
        (204, false),
        (302, false),
    ] {
        let t = agent(|_| {});
        let addr = serve(plain_app()).await;
        let c = client::instrumented(
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        );
        let resp = c
            .get(format!("http://{addr}/status/{code}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), code);
        resp.bytes().await.unwrap();
        let s = client_span(&t);
        assert_eq!(
            attr(&s, "http.status_code"),
            Some(Value::I64(i64::from(code)))
        );
        assert_eq!(
            s.status,
            if error {
                Status::error("")
            } else {
                Status::Unset
            },
            "{code}"
        );
    }
}

/// `/stream`: one JSON line every 20 ms, forever (a chunked body; JSON so that it is captured).
fn streaming_app() -> Router {
    Router::new().route(
        "/stream",
        get(|| async {
            let stream = futures_util::stream::unfold(0u32, |n| async move {
                if n > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Some((
                    Ok::<_, std::convert::Infallible>(Bytes::from(format!("{{\"n\":{n}}}\n"))),
                    n + 1,
                ))
            });
            (
                [("content-type", "application/json")],
                Body::from_stream(stream),
            )
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_response_is_captured_as_read_and_span_ends_on_drop() {
    let t = agent(|_| {});
    let addr = serve(streaming_app()).await;
    let mut resp = http()
        .get(format!("http://{addr}/stream"))
        .send()
        .await
        .unwrap();
    let mut read = Vec::new();
    for _ in 0..3 {
        read.extend_from_slice(&resp.chunk().await.unwrap().unwrap());
    }
    // Still reading: the span is open.
    tokio::time::sleep(Duration::from_millis(100)).await;
    t.guard.flush();
    assert!(
        t.spans.0.lock().unwrap().is_empty(),
        "span ended before the response was finished"
    );
    drop(resp);
    let s = client_span(&t);
    assert!(
        s.end_time.duration_since(s.start_time).unwrap() >= Duration::from_millis(100),
        "the span covers the reading"
    );
    assert_eq!(
        attr_str(&s, "http.response.body"),
        Some(String::from_utf8(read).unwrap()),
        "what the caller read, and only that"
    );
    assert!(!has(&s, "http.response.body.truncated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_response_past_the_limit_is_truncated_and_ends_when_read() {
    let t = agent(|c| c.data_capture.body_max_size_bytes = 20);
    let app = Router::new().route(
        "/lines",
        get(|| async {
            let stream = futures_util::stream::iter((0..50).map(|n| {
                Ok::<_, std::convert::Infallible>(Bytes::from(format!("{{\"n\":{n}}}\n")))
            }));
            (
                [("content-type", "application/json")],
                Body::from_stream(stream),
            )
        }),
    );
    let addr = serve(app).await;
    let body = http()
        .get(format!("http://{addr}/lines"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body.lines().count(), 50, "the caller gets every line");
    let s = client_span(&t);
    assert_eq!(
        attr_str(&s, "http.response.body"),
        Some(body[..20].to_owned())
    );
    assert_eq!(
        attr(&s, "http.response.body.truncated"),
        Some(Value::Bool(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_request_body_is_sent_whole_and_not_captured() {
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    let chunks = futures_util::stream::iter(
        ["{\"a\":", "1}"].map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c.as_bytes()))),
    );
    let echoed = http()
        .post(format!("http://{addr}/echo"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(echoed, r#"{"a":1}"#);
    let s = client_span(&t);
    assert!(
        !has(&s, "http.request.body"),
        "a streamed request body is not buffered for capture"
    );
    assert_eq!(
        attr_str(&s, "http.response.body").as_deref(),
        Some(r#"{"a":1}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_semconv_keys() {
    let t = agent(|c| c.semconv = support::semconv_from_env("http/dup"));
    let addr = serve(plain_app()).await;
    http()
        .get(format!("http://{addr}/items/1"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let s = client_span(&t);
    assert_eq!(attr_str(&s, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attr_str(&s, "url.full"),
        Some(format!("http://{addr}/items/1"))
    );
    assert_eq!(attr_str(&s, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(&s, "server.port"),
        Some(Value::I64(i64::from(addr.port())))
    );
    assert_eq!(attr(&s, "http.response.status_code"), Some(Value::I64(200)));
    assert_eq!(
        attr(&s, "http.status_code"),
        Some(Value::I64(200)),
        "http/dup keeps the old keys"
    );
}

const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const S: &str = "00f067aa0ba902b7";

fn remote_parent() -> Context {
    let sc = SpanContext::new(
        TraceId::from_hex(T).unwrap(),
        SpanId::from_hex(S).unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    Context::new().with_remote_span_context(sc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_agent_no_span_but_context_still_propagates() {
    let t = agent(|c| c.enabled = false);
    let addr = serve(plain_app()).await;
    let resp = http()
        .post(format!("http://{addr}/echo"))
        .send()
        .with_context(remote_parent())
        .await
        .unwrap();
    assert_eq!(
        seen(&resp)["traceparent"],
        JsonValue::from(format!("00-{T}-{S}-01"))
    );
    resp.bytes().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    t.guard.flush();
    assert!(t.spans.0.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agent_no_span_but_context_still_propagates() {
    // Installs one (which sets the global propagator, as `#[hypertrace::main]` or an app's own
    // OpenTelemetry set-up would), then uninstalls it, keeping the test serialised.
    let t = agent(|_| {});
    let TestAgent { guard, spans, .. } = t;
    drop(guard);
    assert!(hypertrace::current_agent().is_none());
    let addr = serve(plain_app()).await;
    let resp = http()
        .post(format!("http://{addr}/echo"))
        .send()
        .with_context(remote_parent())
        .await
        .unwrap();
    assert_eq!(
        seen(&resp)["traceparent"],
        JsonValue::from(format!("00-{T}-{S}-01"))
    );
    resp.bytes().await.unwrap();
    assert!(spans.0.lock().unwrap().is_empty());
}

// ---- One trace across services: client → jokes API → upstream joke service ----

#[derive(Clone)]
struct Api {
    http: client::Client,
    upstream: String,
}

/// The upstream "joke service".
#[hypertrace::handler]
async fn upstream_joke(Path(id): Path<u32>) -> Json<JsonValue> {
    Json(
        json!({ "id": id, "setup": "Why do programmers prefer dark mode?", "punchline": "Because light attracts bugs." }),
    )
}

/// The jokes API: calls the upstream with the instrumented client, inside its own server span.
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

/// Starts the upstream and the API (whose client injects `api_formats`, or the agent's when
/// `None`); returns the API's address.
async fn three_hop_services(api_formats: Option<&[PropagationFormat]>) -> SocketAddr {
    let upstream = serve(Router::new().route("/jokes/{id}", get(upstream_joke))).await;
    let mw = api_formats.map_or(HypertraceMiddleware::new(), |f| {
        HypertraceMiddleware::new().propagation_formats(f)
    });
    let http = client::reqwest_middleware::ClientBuilder::new(support::client())
        .with(mw)
        .build();
    let api = Api {
        http,
        upstream: format!("http://{upstream}"),
    };
    serve(
        Router::new()
            .route("/api/jokes/{id}", get(api_joke))
            .with_state(api),
    )
    .await
}

/// The client side: one call to the API inside a parent span; returns the parent's span id.
async fn call_api(
    t: &TestAgent,
    api: SocketAddr,
    client_formats: Option<&[PropagationFormat]>,
) -> SpanId {
    let tracer = t.guard.agent().tracer_provider().tracer("jokes-client");
    let root = tracer.start("fetch a joke");
    let root_id = root.span_context().span_id();
    let cx = Context::new().with_span(root);
    let mw = client_formats.map_or(HypertraceMiddleware::new(), |f| {
        HypertraceMiddleware::new().propagation_formats(f)
    });
    let c = client::reqwest_middleware::ClientBuilder::new(support::client())
        .with(mw)
        .build();
    let body = async {
        c.get(format!("http://{api}/api/jokes/7"))
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
    root_id
}

fn find<'a>(spans: &'a [SpanData], name: &str, kind: SpanKind) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name && s.span_kind == kind)
        .unwrap_or_else(|| {
            panic!(
                "no {kind:?} span {name}: {:?}",
                spans
                    .iter()
                    .map(|s| (&s.name, &s.span_kind))
                    .collect::<Vec<_>>()
            )
        })
}

/// Five spans, one trace: root → CLIENT → API SERVER → CLIENT → upstream SERVER.
fn assert_one_trace(spans: &[SpanData], root_id: SpanId) {
    assert_eq!(
        spans.len(),
        5,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let root = spans
        .iter()
        .find(|s| s.span_context.span_id() == root_id)
        .expect("the client's parent span");
    let c1 = find(spans, "GET /api/jokes/{id}", SpanKind::Client);
    let s1 = find(spans, "GET /api/jokes/{id}", SpanKind::Server);
    let c2 = find(spans, "GET /jokes/{id}", SpanKind::Client);
    let s2 = find(spans, "GET /jokes/{id}", SpanKind::Server);
    let trace = root.span_context.trace_id();
    for s in spans {
        assert_eq!(
            s.span_context.trace_id(),
            trace,
            "{} {:?} is in another trace",
            s.name,
            s.span_kind
        );
    }
    assert_eq!(root.parent_span_id, SpanId::INVALID);
    assert_eq!(c1.parent_span_id, root_id);
    assert_eq!(s1.parent_span_id, c1.span_context.span_id());
    assert!(s1.parent_span_is_remote);
    assert_eq!(c2.parent_span_id, s1.span_context.span_id());
    assert!(!c2.parent_span_is_remote);
    assert_eq!(s2.parent_span_id, c2.span_context.span_id());
    assert!(s2.parent_span_is_remote);
    // The payloads of every hop are on its spans.
    assert!(attr_str(c2, "http.response.body")
        .unwrap()
        .contains("light attracts bugs"));
    assert!(attr_str(s1, "http.response.body")
        .unwrap()
        .contains("jokes-api"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hops_one_trace_w3c() {
    let t = agent(|_| {});
    let api = three_hop_services(None).await;
    let root = call_api(&t, api, None).await;
    let spans = t.wait_spans(5);
    assert_one_trace(&spans, root);
    let s2 = find(&spans, "GET /jokes/{id}", SpanKind::Server);
    assert!(has(s2, "http.request.header.traceparent"));
    assert!(!has(s2, "http.request.header.b3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hops_one_trace_b3() {
    let t = agent(|c| c.propagation_formats = vec![PropagationFormat::B3]);
    let api = three_hop_services(None).await;
    let root = call_api(&t, api, None).await;
    let spans = t.wait_spans(5);
    assert_one_trace(&spans, root);
    for name in ["GET /api/jokes/{id}", "GET /jokes/{id}"] {
        let s = find(&spans, name, SpanKind::Server);
        assert!(
            has(s, "http.request.header.b3") && has(s, "http.request.header.x-b3-traceid"),
            "{name}"
        );
        assert!(!has(s, "http.request.header.traceparent"), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hops_one_trace_mixed_b3_client_w3c_and_b3_servers() {
    // The servers accept both; the first client injects B3 only, the API's client W3C only.
    let t = agent(|c| {
        c.propagation_formats = vec![PropagationFormat::TraceContext, PropagationFormat::B3]
    });
    let api = three_hop_services(Some(&[PropagationFormat::TraceContext])).await;
    let root = call_api(&t, api, Some(&[PropagationFormat::B3])).await;
    let spans = t.wait_spans(5);
    assert_one_trace(&spans, root);
    let s1 = find(&spans, "GET /api/jokes/{id}", SpanKind::Server);
    assert!(
        has(s1, "http.request.header.b3") && !has(s1, "http.request.header.traceparent"),
        "the API got B3 only"
    );
    let s2 = find(&spans, "GET /jokes/{id}", SpanKind::Server);
    assert!(
        has(s2, "http.request.header.traceparent") && !has(s2, "http.request.header.b3"),
        "the upstream got W3C only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracing_span_is_the_parent() {
    use tracing::Instrument as _;
    init_tracing();
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    async {
        http()
            .get(format!("http://{addr}/items/1"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }
    .instrument(tracing::info_span!("load_item"))
    .await;
    let spans = t.wait_spans(2);
    let outer = spans
        .iter()
        .find(|s| s.name == "load_item")
        .expect("the tracing span");
    let c = find(&spans, "GET", SpanKind::Client);
    assert_eq!(c.span_context.trace_id(), outer.span_context.trace_id());
    assert_eq!(c.parent_span_id, outer.span_context.span_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_and_instrumented_build_working_clients() {
    let t = agent(|_| {});
    let addr = serve(plain_app()).await;
    let r = client::new()
        .get(format!("http://{addr}/items/3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.url().as_str(),
        format!("http://{addr}/items/3"),
        "the response keeps its URL through the wrapping"
    );
    assert!(r.remote_addr().is_some(), "and its connection info");
    assert_eq!(r.text().await.unwrap(), r#"{"id":3}"#);
    client_span(&t);
}
