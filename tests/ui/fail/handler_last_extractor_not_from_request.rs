use axum::routing::get;
use axum::Router;

struct NotAnExtractor;

#[hypertrace::handler]
async fn health(_x: NotAnExtractor) -> &'static str {
    "ok"
}

fn main() {
    let _app: Router = Router::new().route("/health", get(health));
}
