//! The demo app shared by the `quickstart` and `server` examples: the Flask app of the Hypertrace
//! Python agent's docs, in axum.

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// GET /: a plain greeting.
#[hypertrace::handler]
pub async fn index() -> &'static str {
    "Hello from hypertrace-rs!"
}

/// POST /json: echoes the JSON body, with a custom response header.
#[hypertrace::handler]
pub async fn echo_json(Json(body): Json<Value>) -> impl IntoResponse {
    tracing::info!(
        fields = body.as_object().map_or(0, |o| o.len()),
        "echoing a JSON body"
    );
    let mut headers = HeaderMap::new();
    headers.insert("x-demo-header", "hypertrace".parse().unwrap());
    (headers, Json(json!({ "echo": body })))
}

/// GET /users/{id}: a route with a path parameter.
#[hypertrace::handler]
pub async fn get_user(Path(id): Path<u64>) -> Json<Value> {
    Json(json!({ "id": id, "name": format!("user-{id}") }))
}

/// GET /error: a server error (the span's status becomes Error).
#[hypertrace::handler]
pub async fn error() -> impl IntoResponse {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": "something broke" })),
    )
}

pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/json", post(echo_json))
        .route("/users/{id}", get(get_user))
        .route("/error", get(error))
        // A span for every request, a 404 included; the annotated handlers refine it.
        .layer(hypertrace::layer())
}
