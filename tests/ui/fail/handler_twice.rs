#[hypertrace::handler]
#[hypertrace::handler]
async fn health() -> &'static str {
    "ok"
}

fn main() {}
