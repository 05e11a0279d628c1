const NAME: &str = "health";

#[hypertrace::handler(name = NAME)]
async fn health() -> &'static str {
    "ok"
}

fn main() {}
