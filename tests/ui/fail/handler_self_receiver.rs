struct Api;

impl Api {
    #[hypertrace::handler]
    async fn health(&self) -> &'static str {
        "ok"
    }
}

fn main() {}
