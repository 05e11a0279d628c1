struct Api;

#[hypertrace::handler]
impl Api {
    async fn health() -> &'static str {
        "ok"
    }
}

fn main() {}
