#[hypertrace::handler]
fn health() -> &'static str {
    "ok"
}

fn main() {}
