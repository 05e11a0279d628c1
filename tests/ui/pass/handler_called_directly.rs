//! Annotated handlers stay testable by calling them: `add(Path((2, 3))).await` for a handler private
//! to its module, `add::direct(..)` for any handler; with `#[axum::debug_handler]` above or below.
#![deny(warnings)]

use axum::extract::{Json, Path};
use axum::http::StatusCode;
use axum::response::IntoResponse;

#[hypertrace::handler]
async fn add(Path((a, b)): Path<(u32, u32)>) -> String {
    (a + b).to_string()
}

/// A result, and an `impl Trait` return type: called through the struct, it gives the response.
#[hypertrace::handler]
async fn check(Json(n): Json<i64>) -> impl IntoResponse {
    if n < 0 {
        (StatusCode::BAD_REQUEST, "negative")
    } else {
        (StatusCode::OK, "fine")
    }
}

#[axum::debug_handler]
#[hypertrace::handler]
async fn above(Path(id): Path<u32>) -> Result<String, StatusCode> {
    if id == 0 {
        Err(StatusCode::NOT_FOUND)
    } else {
        Ok(id.to_string())
    }
}

pub mod api {
    use axum::extract::Path;

    /// Less visible than the handler (which is why a `pub` handler is called through `direct`).
    #[derive(serde::Deserialize)]
    pub(crate) struct Pair(pub(crate) u32, pub(crate) u32);

    /// Multiplies.
    #[hypertrace::handler]
    pub async fn mul(Path(Pair(a, b)): Path<Pair>) -> String {
        (a * b).to_string()
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        assert_eq!(add(Path((2, 3))).await, "5");
        assert_eq!(add::direct(Path((2, 3))).await, "5");
        // Spawnable: the future is `Send`.
        assert_eq!(tokio::spawn(add(Path((1, 1)))).await.unwrap(), "2");

        let response = check(Json(-1)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = check::direct(Json(1)).await.into_response();
        assert_eq!(response.status(), StatusCode::OK);

        assert_eq!(above(Path(0)).await, Err(StatusCode::NOT_FOUND));
        assert_eq!(above(Path(7)).await, Ok("7".to_owned()));

        assert_eq!(api::mul::direct(Path(api::Pair(6, 7))).await, "42");
    });
    // And they are still handlers.
    let _app: axum::Router = axum::Router::new()
        .route("/add/{a}/{b}", axum::routing::get(add))
        .route("/check", axum::routing::post(check))
        .route("/above/{id}", axum::routing::get(above))
        .route("/mul/{a}/{b}", axum::routing::get(api::mul));
}
