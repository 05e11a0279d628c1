#[hypertrace::handler(flavor = "current_thread")]
async fn health() -> &'static str {
    "ok"
}

fn main() {}
