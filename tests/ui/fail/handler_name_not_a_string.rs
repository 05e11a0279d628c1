#[hypertrace::handler(name = 3)]
async fn health() -> &'static str {
    "ok"
}

fn main() {}
