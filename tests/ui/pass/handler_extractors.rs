//! Handlers with 0, 1 and several extractors of every built-in kind, plus a custom one, in routers
//! with and without state.
#![deny(warnings)]

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;

#[derive(Clone)]
struct Db;

#[derive(Deserialize)]
struct NewUser {
    name: String,
}

struct Tenant(String);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let tenant = parts
            .headers
            .get("x-tenant")
            .ok_or(StatusCode::BAD_REQUEST)?;
        Ok(Tenant(
            tenant
                .to_str()
                .map_err(|_| StatusCode::BAD_REQUEST)?
                .to_owned(),
        ))
    }
}

#[hypertrace::handler]
async fn zero() -> &'static str {
    "ok"
}

#[hypertrace::handler]
async fn one(Path(id): Path<u32>) -> String {
    id.to_string()
}

#[hypertrace::handler]
async fn state_and_json(
    State(_db): State<Db>,
    Json(user): Json<NewUser>,
) -> Result<Json<String>, StatusCode> {
    Ok(Json(user.name))
}

#[hypertrace::handler]
async fn several(
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    Path((a, b)): Path<(String, u32)>,
    body: Bytes,
) -> impl IntoResponse {
    (
        StatusCode::ACCEPTED,
        format!(
            "{tenant} {} {query:?} {a} {b} {}",
            headers.len(),
            body.len()
        ),
    )
}

#[hypertrace::handler]
async fn text(body: String) -> String {
    body
}

#[hypertrace::handler]
async fn form(Form(fields): Form<HashMap<String, String>>) -> String {
    format!("{fields:?}")
}

#[hypertrace::handler]
async fn request_last(State(_db): State<Db>, headers: HeaderMap, req: Request) -> String {
    format!("{} {}", headers.len(), req.uri())
}

#[hypertrace::handler]
async fn parts_last(Tenant(tenant): Tenant) -> String {
    tenant
}

fn main() {
    let _stateful: Router = Router::new()
        .route("/", get(zero))
        .route("/users/{id}", get(one))
        .route("/users", post(state_and_json))
        .route("/raw", post(request_last))
        .with_state(Db);
    let _stateless: Router = Router::new()
        .route("/", get(zero))
        .route("/t/{a}/{b}", post(several))
        .route("/text", post(text).put(form))
        .route("/tenant", get(parts_last))
        .fallback(zero);
    // axum's `Handler` methods work on the generated struct.
    let _service = state_and_json.with_state(Db);
}
