//! `#[axum::debug_handler]` keeps working under `#[hypertrace::handler]` (placed below it, it checks
//! the user's function, which the macro keeps unchanged).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;

#[derive(Clone)]
struct AppState;

#[hypertrace::handler]
#[axum::debug_handler]
async fn user(State(_s): State<AppState>, Path(id): Path<u32>) -> String {
    id.to_string()
}

fn main() {
    let _app: Router = Router::new().route("/users/{id}", get(user)).with_state(AppState);
}
