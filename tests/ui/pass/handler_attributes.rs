//! Visibility, doc comments, other attributes and `#[tracing::instrument]` on a handler; a handler in
//! another module; every option.
#![deny(warnings, missing_docs)]

use axum::routing::{get, post};
use axum::Router;

/// The handlers.
pub mod handlers {
    use axum::extract::State;
    use axum::Json;

    /// The state.
    #[derive(Clone, Default)]
    pub struct AppState {
        /// A counter.
        pub hits: u64,
    }

    /// Creates a user.
    ///
    /// The doc comment lands on the handler.
    #[hypertrace::handler(
        name = "create user",
        request_headers = true,
        response_headers = false,
        request_body = false,
        response_body = true
    )]
    #[tracing::instrument(skip_all)]
    #[allow(clippy::unused_async)]
    pub async fn create_user(
        State(state): State<AppState>,
        Json(name): Json<String>,
    ) -> Json<String> {
        #![allow(unused_mut)]
        let mut reply = format!("{name} {}", state.hits);
        tracing::info!(%reply, "created");
        Json(reply)
    }

    /// Health.
    #[hypertrace::handler]
    pub(crate) async fn health() {}

    /// Compiled out: the struct and its `Handler` impl go with the function.
    #[hypertrace::handler]
    #[cfg(any())]
    pub async fn missing() -> NotEvenAType {}

    /// Kept.
    #[hypertrace::handler]
    #[cfg(all())]
    #[deprecated = "use `health`"]
    pub async fn old_health() {}
}

fn main() {
    // A handler declared inside a function body.
    #[hypertrace::handler]
    async fn local() -> &'static str {
        "local"
    }

    #[allow(deprecated)]
    let old = handlers::old_health;
    let _app: Router = Router::new()
        .route("/users", post(handlers::create_user))
        .route("/health", get(handlers::health).head(old))
        .route("/local", get(local))
        .with_state(handlers::AppState::default());
}
