use axum::extract::State;

#[hypertrace::handler]
async fn health<S: Clone>(State(_s): State<S>) -> &'static str {
    "ok"
}

fn main() {}
