//! The span at the seams between the pieces: a handler behind the layer, nested routers, an app's
//! own middleware span, a request dropped before it answers, a panic, HTTP/1.0 and IPv6 hosts,
//! unmatched routes. Each runs a real axum server on 127.0.0.1 driven by a real client.

mod support;

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use opentelemetry::trace::{SpanId, Status};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Instrument;

use support::{agent, attr, attr_str, client, get_text, has, init_tracing, serve};

#[hypertrace::handler(request_body = false)]
async fn login(Json(v): Json<Value>) -> Json<Value> {
    Json(json!({ "user": v["user"] }))
}

#[hypertrace::handler(response_body = false)]
async fn token(Json(_): Json<Value>) -> Json<Value> {
    Json(json!({ "access": "granted" }))
}

#[hypertrace::handler(request_headers = false)]
async fn quiet_in() -> &'static str {
    "ok"
}

#[hypertrace::handler(response_headers = false)]
async fn quiet_out() -> ([(&'static str, &'static str); 1], &'static str) {
    ([("x-out", "1")], "ok")
}

#[hypertrace::handler(name = "renamed")]
async fn named(Path(id): Path<u32>) -> String {
    id.to_string()
}

#[hypertrace::handler(request_body = true)]
async fn body_back_on(body: Bytes) -> Bytes {
    body
}

/// Every handler option, each behind the layer.
fn options_app() -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/token", post(token))
        .route("/in", get(quiet_in))
        .route("/out", get(quiet_out))
        .route("/named/{id}", get(named))
        .route("/echo", post(body_back_on))
        .layer(hypertrace::layer().request_body(false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_behind_the_layer_refines_its_span_for_each_option() {
    let t = agent(|_| {});
    let addr = serve(options_app()).await;
    let http = client();
    let base = format!("http://{addr}");
    let send_json = |path: &str| {
        http.post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(r#"{"user":"ada","password":"hunter2"}"#)
            .send()
    };
    send_json("/login").await.unwrap().text().await.unwrap();
    send_json("/token").await.unwrap().text().await.unwrap();
    http.get(format!("{base}/in"))
        .header("x-in", "1")
        .send()
        .await
        .unwrap();
    http.get(format!("{base}/out")).send().await.unwrap();
    http.get(format!("{base}/named/7")).send().await.unwrap();
    http.post(format!("{base}/echo"))
        .header("content-type", "application/json")
        .body(r#"{"back":"on"}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let spans = t.wait_spans(6);
    assert_eq!(spans.len(), 6, "one span per request, not two");
    let span = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}"))
    };

    // request_body = false: the password never reaches the span.
    let s = span("POST /login");
    assert!(!has(s, "http.request.body"), "{:?}", s.attributes);
    assert!(has(s, "http.response.body"));
    // response_body = false (the layer's request_body(false) applies too: not turned back on).
    let s = span("POST /token");
    assert!(!has(s, "http.response.body"));
    assert!(!has(s, "http.request.body"));
    assert!(has(s, "http.response.header.content-type"));
    // request_headers = false.
    let s = span("GET /in");
    assert!(!has(s, "http.request.header.x-in"));
    assert!(has(s, "http.response.header.content-type"));
    // response_headers = false.
    let s = span("GET /out");
    assert!(!has(s, "http.response.header.x-out"));
    assert!(has(s, "http.request.header.host"));
    // name.
    let s = span("renamed");
    assert_eq!(attr_str(s, "http.route").as_deref(), Some("/named/{id}"));
    // request_body = true beats the layer's request_body(false).
    let s = span("POST /echo");
    assert_eq!(
        attr_str(s, "http.request.body").as_deref(),
        Some(r#"{"back":"on"}"#)
    );
}

#[hypertrace::handler]
async fn user(Path(id): Path<u32>) -> String {
    format!("user {id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_is_the_uri_the_client_sent_under_nest_and_nest_service() {
    let t = agent(|c| {
        c.semconv = support::semconv_from_env("http/dup");
    });
    let api = Router::new().route("/users/{id}", get(user));
    let app = Router::new()
        .nest("/api", api.clone())
        .nest_service("/svc", api.clone())
        .nest("/layered", api.layer(hypertrace::layer()));
    let addr = serve(app).await;
    for path in ["/api/users/1?x=1", "/svc/users/2", "/layered/users/3"] {
        let body = get_text(format!("http://{addr}{path}")).await;
        assert!(body.starts_with("user "), "{body}");
    }
    let spans = t.wait_spans(3);
    for (path, url_path) in [
        ("/api/users/1?x=1", "/api/users/1"),
        ("/svc/users/2", "/svc/users/2"),
        ("/layered/users/3", "/layered/users/3"),
    ] {
        let s = spans
            .iter()
            .find(|s| attr_str(s, "http.target").as_deref() == Some(path))
            .unwrap_or_else(|| {
                panic!(
                    "no span with http.target {path}: {:?}",
                    spans
                        .iter()
                        .map(|s| attr_str(s, "http.target"))
                        .collect::<Vec<_>>()
                )
            });
        assert_eq!(attr_str(s, "url.path").as_deref(), Some(url_path));
    }
}

#[hypertrace::handler]
async fn traced() -> &'static str {
    tracing::info!("handled");
    tracing::info_span!("inner work").in_scope(|| tracing::info!("inside inner"));
    "ok"
}

/// What tower-http's `TraceLayer` does: a `tracing` span around the rest of the stack.
async fn app_middleware_span(req: Request, next: Next) -> Response {
    next.run(req)
        .instrument(tracing::info_span!("app middleware"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_span_is_the_entry_span_even_inside_an_app_middleware_span() {
    init_tracing();
    for layered in [false, true] {
        let t = agent(|_| {});
        let mut app = Router::new().route("/t", get(traced));
        if layered {
            app = app.layer(hypertrace::layer());
        }
        let app = app.layer(middleware::from_fn(app_middleware_span));
        let addr = serve(app).await;
        get_text(format!("http://{addr}/t")).await;
        let spans = t.wait_spans(3);
        let find = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
        let server = find("GET /t");
        let outer = find("app middleware");
        let inner = find("inner work");
        assert_eq!(server.parent_span_id, SpanId::INVALID, "layered: {layered}");
        assert_ne!(
            server.span_context.trace_id(),
            outer.span_context.trace_id(),
            "the server span is not the middleware span's child (layered: {layered})"
        );
        assert_eq!(inner.parent_span_id, server.span_context.span_id());
        let names = |s: &opentelemetry_sdk::trace::SpanData| {
            s.events
                .events
                .iter()
                .map(|e| e.name.to_string())
                .collect::<Vec<_>>()
        };
        assert!(
            names(server).contains(&"handled".to_string()),
            "event on the server span (layered: {layered}): server {:?}, middleware {:?}",
            names(server),
            names(outer)
        );
        assert!(!names(outer).contains(&"handled".to_string()));
        assert!(names(inner).contains(&"inside inner".to_string()));
    }
}

#[hypertrace::handler]
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}

#[hypertrace::handler]
async fn panics() -> &'static str {
    panic!("handler exploded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_before_it_answers_ends_its_span_as_cancelled() {
    for layered in [false, true] {
        let t = agent(|_| {});
        let mut app = Router::new().route("/slow", get(slow));
        if layered {
            app = app.layer(hypertrace::layer());
        }
        let addr = serve(app).await;
        let err = client()
            .get(format!("http://{addr}/slow"))
            .timeout(Duration::from_millis(200))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        let s = t.one_span();
        match &s.status {
            Status::Error { description } => {
                assert!(description.contains("cancelled"), "{description}")
            }
            other => panic!("status {other:?} (layered: {layered})"),
        }
        assert!(!has(&s, "http.status_code"));
        assert!(has(&s, "http.request.header.host"), "request headers kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_records_its_location_as_the_stacktrace() {
    for layered in [false, true] {
        let t = agent(|_| {});
        let mut app = Router::new().route("/p", get(panics));
        if layered {
            app = app.layer(hypertrace::layer());
        }
        let addr = serve(app).await;
        // The connection's task dies with the panic: no response.
        assert!(client()
            .get(format!("http://{addr}/p"))
            .send()
            .await
            .is_err());
        let s = t.one_span();
        let ev = s
            .events
            .events
            .iter()
            .find(|e| e.name == "exception")
            .expect("exception event");
        let get = |k: &str| {
            ev.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.as_str().into_owned())
        };
        assert_eq!(
            get("exception.message").as_deref(),
            Some("handler exploded")
        );
        let trace = get("exception.stacktrace").expect("exception.stacktrace");
        assert!(
            trace.starts_with("at tests/capture_seams.rs:"),
            "stacktrace {trace:?} (layered: {layered})"
        );
    }
}

async fn raw_request(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_and_bracketed_ipv6_hosts() {
    let t = agent(|c| c.semconv = support::semconv_from_env("http/dup"));
    let addr = serve(Router::new().route("/users/{id}", get(user))).await;
    let resp = raw_request(addr, "GET /users/1 HTTP/1.0\r\nHost: [::1]:8080\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp}");
    let resp = raw_request(
        addr,
        "GET /users/2 HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let spans = t.wait_spans(2);
    let by_target = |t: &str| {
        spans
            .iter()
            .find(|s| attr_str(s, "http.target").as_deref() == Some(t))
            .unwrap()
    };
    let s = by_target("/users/1");
    assert_eq!(attr_str(s, "http.flavor").as_deref(), Some("1.0"));
    assert_eq!(
        attr_str(s, "network.protocol.version").as_deref(),
        Some("1.0")
    );
    assert_eq!(attr_str(s, "http.host").as_deref(), Some("[::1]:8080"));
    assert_eq!(attr_str(s, "server.address").as_deref(), Some("::1"));
    assert_eq!(attr(s, "server.port"), Some(8080i64.into()));
    assert_eq!(attr(s, "net.host.port"), Some(8080i64.into()));
    let s = by_target("/users/2");
    assert_eq!(attr_str(s, "server.address").as_deref(), Some("::1"));
    assert_eq!(attr(s, "server.port"), Some(80i64.into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_records_unmatched_routes() {
    let t = agent(|_| {});
    let app = Router::new()
        .route("/users/{id}", get(user))
        .layer(hypertrace::layer());
    let addr = serve(app).await;
    let resp = client()
        .get(format!("http://{addr}/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let s = t.one_span();
    assert_eq!(s.name, "GET");
    assert_eq!(attr(&s, "http.status_code"), Some(404i64.into()));
    assert!(!has(&s, "http.route"), "no route template for a 404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_crates_whose_names_start_like_export_crates_are_traced() {
    init_tracing();
    #[hypertrace::handler]
    async fn h() -> &'static str {
        tracing::info_span!(target: "hyperloop::engine", "hyperloop work").in_scope(|| {});
        tracing::info_span!(target: "hyper::proto", "hyper internals").in_scope(|| {});
        "ok"
    }
    let t = agent(|_| {});
    let addr = serve(Router::new().route("/h", get(h))).await;
    get_text(format!("http://{addr}/h")).await;
    let spans = t.wait_spans(2);
    assert!(spans.iter().any(|s| s.name == "hyperloop work"));
    std::thread::sleep(Duration::from_millis(100));
    let spans = t.wait_spans(2);
    assert!(!spans.iter().any(|s| s.name == "hyper internals"));
}
