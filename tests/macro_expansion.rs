//! The code the macros generate, compiled and run: handlers annotated with `#[hypertrace::handler]`
//! answer through real axum routers (with state and without) exactly as the plain functions would,
//! including extractor rejections; `#[hypertrace::main]`'s generated `fn main` runs its body on the
//! runtime and returns its value.
//!
//! The compile-fail side (misuse is an error on the right token) is `tests/ui.rs`.
//!
//! Under clippy (`.ci/run` runs `cargo clippy --test macro_expansion`), annotated handlers get no
//! more lints than the same plain functions: `hello` below has no `.await`, which
//! `clippy::unused_async` does not flag on a plain axum handler (it is used as a value) and must
//! not flag here either.
#![deny(clippy::unused_async)]

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};

#[derive(Clone)]
struct AppState {
    greeting: String,
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
}

#[derive(Serialize)]
struct User {
    id: u32,
    name: String,
}

/// A custom extractor: the `x-tenant` header, required.
struct Tenant(String);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(|v| Tenant(v.to_owned()))
            .ok_or((StatusCode::BAD_REQUEST, "missing x-tenant"))
    }
}

#[hypertrace::handler]
async fn hello() -> &'static str {
    "hello"
}

/// Greets by name, with the greeting from the state.
#[hypertrace::handler(name = "greet", request_body = false)]
pub async fn greet(State(state): State<AppState>, Path(name): Path<String>) -> String {
    format!("{}, {name}", state.greeting)
}

#[hypertrace::handler]
async fn create_user(
    State(_state): State<AppState>,
    Json(user): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), (StatusCode, String)> {
    if user.name.is_empty() {
        return Err((StatusCode::UNPROCESSABLE_ENTITY, "empty name".into()));
    }
    Ok((
        StatusCode::CREATED,
        Json(User {
            id: 7,
            name: user.name,
        }),
    ))
}

#[hypertrace::handler]
async fn inspect(
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> impl IntoResponse {
    let agent = headers
        .get("x-agent")
        .map(|v| v.to_str().unwrap().to_owned());
    format!("{tenant} {agent:?} {:?} {body}", query.get("q"))
}

#[hypertrace::handler]
async fn bytes_len(body: Bytes) -> String {
    body.len().to_string()
}

#[hypertrace::handler]
async fn form(Form(form): Form<HashMap<String, String>>) -> String {
    form.get("a").cloned().unwrap_or_default()
}

#[hypertrace::handler]
async fn raw(State(state): State<AppState>, req: Request) -> String {
    format!("{} {}", state.greeting, req.uri().path())
}

#[hypertrace::handler(
    name = "all options",
    request_headers = true,
    response_headers = false,
    request_body = true,
    response_body = false
)]
async fn all_options() -> StatusCode {
    StatusCode::NO_CONTENT
}

fn stateful_router() -> Router {
    Router::new()
        .route("/greet/{name}", get(greet))
        .route("/users", post(create_user))
        .route("/raw/{*rest}", get(raw))
        .with_state(AppState {
            greeting: "hi".into(),
        })
}

fn stateless_router() -> Router {
    Router::new()
        .route("/", get(hello))
        .route("/inspect", post(inspect))
        .route("/len", post(bytes_len))
        .route("/form", post(form))
        .route("/none", get(all_options))
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A minimal HTTP/1.1 client (one request per connection), to depend on nothing but tokio.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, payload) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(payload)
        } else {
            payload.to_owned()
        },
    )
}

fn dechunk(mut payload: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, rest) = payload.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&rest[..size]);
        payload = &rest[size + 2..];
    }
}

#[tokio::test]
async fn handlers_answer_through_a_router_with_state() {
    let addr = serve(stateful_router()).await;
    assert_eq!(
        send(addr, "GET", "/greet/ada", &[], "").await,
        (200, "hi, ada".into())
    );
    assert_eq!(
        send(
            addr,
            "POST",
            "/users",
            &[("content-type", "application/json")],
            r#"{"name":"ada"}"#
        )
        .await,
        (201, r#"{"id":7,"name":"ada"}"#.into())
    );
    // The handler's own error.
    assert_eq!(
        send(
            addr,
            "POST",
            "/users",
            &[("content-type", "application/json")],
            r#"{"name":""}"#
        )
        .await,
        (422, "empty name".into())
    );
    // `Request` as the last extractor, after `State`.
    assert_eq!(
        send(addr, "GET", "/raw/a/b", &[], "").await,
        (200, "hi /raw/a/b".into())
    );
}

#[tokio::test]
async fn extractor_rejections_are_axums_responses() {
    let addr = serve(stateful_router()).await;
    // `Json` without a JSON content type: 415, as with a plain axum handler.
    let (status, _) = send(addr, "POST", "/users", &[], r#"{"name":"ada"}"#).await;
    assert_eq!(status, 415);
    // Malformed JSON: 400.
    let (status, _) = send(
        addr,
        "POST",
        "/users",
        &[("content-type", "application/json")],
        "{",
    )
    .await;
    assert_eq!(status, 400);

    let addr = serve(stateless_router()).await;
    // The custom extractor's rejection.
    assert_eq!(
        send(addr, "POST", "/inspect", &[], "").await,
        (400, "missing x-tenant".into())
    );
}

#[tokio::test]
async fn handlers_answer_through_a_stateless_router() {
    let addr = serve(stateless_router()).await;
    assert_eq!(send(addr, "GET", "/", &[], "").await, (200, "hello".into()));
    assert_eq!(
        send(
            addr,
            "POST",
            "/inspect?q=x",
            &[("x-tenant", "acme"), ("x-agent", "t")],
            "payload"
        )
        .await,
        (200, r#"acme Some("t") Some("x") payload"#.into())
    );
    assert_eq!(
        send(addr, "POST", "/len", &[], "12345").await,
        (200, "5".into())
    );
    assert_eq!(
        send(
            addr,
            "POST",
            "/form",
            &[("content-type", "application/x-www-form-urlencoded")],
            "a=1&b=2"
        )
        .await,
        (200, "1".into())
    );
    assert_eq!(
        send(addr, "GET", "/none", &[], "").await,
        (204, String::new())
    );
}

#[tokio::test]
async fn the_handler_struct_can_be_called_through_axums_handler_trait() {
    let request = Request::builder()
        .uri("/")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = Handler::call(hello, request, ()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"hello");
}

/// Handlers stay callable for the app's own tests.
#[tokio::test]
async fn handlers_are_called_directly_in_unit_tests() {
    // Private handlers: called as the plain function was.
    assert_eq!(hello().await, "hello");
    assert_eq!(bytes_len(Bytes::from_static(b"abc")).await, "3");
    assert_eq!(
        create_user(
            State(AppState {
                greeting: "hi".into()
            }),
            Json(NewUser { name: "".into() })
        )
        .await
        .err(),
        Some((StatusCode::UNPROCESSABLE_ENTITY, "empty name".to_owned()))
    );
    // Any handler, `pub` ones included: `direct`.
    assert_eq!(
        greet::direct(
            State(AppState {
                greeting: "hello".into()
            }),
            Path("ada".into())
        )
        .await,
        "hello, ada"
    );
    let response = inspect::direct(
        Tenant("acme".into()),
        HeaderMap::new(),
        Query(HashMap::new()),
        "body".into(),
    )
    .await
    .into_response();
    assert_eq!(response.status(), StatusCode::OK);
}

mod app {
    /// A program's `main` in a module, so that the test can call the generated `fn main`.
    #[hypertrace::main(
        service_name = "macro-expansion-test",
        tracing_subscriber = false,
        flavor = "current_thread"
    )]
    pub async fn main() -> Result<u32, String> {
        // The body runs on the runtime that the attribute built.
        let handle = tokio::runtime::Handle::current();
        assert_eq!(
            handle.runtime_flavor(),
            tokio::runtime::RuntimeFlavor::CurrentThread
        );
        let answer: u32 = "41".parse().map_err(|e| format!("{e}"))?;
        tokio::task::yield_now().await;
        Ok(answer + 1)
    }
}

/// Compiled, not run: the `config` option and the multi-threaded runtime with a worker count.
#[allow(dead_code)]
mod configured {
    #[hypertrace::main(config = "tests/agent-config.yaml", worker_threads = 2)]
    pub async fn main() {}
}

#[test]
fn main_runs_its_body_on_the_runtime_and_returns_its_value() {
    assert_eq!(app::main(), Ok(42));
}
