use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

#[derive(Clone)]
struct AppState {
    greeting: String,
}

#[hypertrace::handler]
async fn hello() -> &'static str {
    "hello"
}

#[hypertrace::handler(request_body = false, name = "greet")]
/// Greets.
pub async fn greet(State(s): State<AppState>, Path(name): Path<String>) -> String {
    format!("{}, {name}", s.greeting)
}

#[hypertrace::handler]
async fn echo(Json(v): Json<serde_json::Value>) -> Json<serde_json::Value> {
    Json(v)
}

#[test]
fn builds() {
    let _app: Router = Router::new()
        .route("/", get(hello))
        .route("/greet/{name}", get(greet))
        .route("/echo", post(echo))
        .with_state(AppState { greeting: "hi".into() });
}
