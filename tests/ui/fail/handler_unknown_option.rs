#[hypertrace::handler(span_name = "health")]
async fn health() -> &'static str {
    "ok"
}

fn main() {}
