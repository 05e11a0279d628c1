struct Api;

impl Api {
    #[hypertrace::handler]
    async fn health() -> &'static str {
        "ok"
    }
}

fn main() {}
