#[hypertrace::handler]
const async fn health() -> &'static str {
    "ok"
}

fn main() {}
