use axum::extract::State;

#[derive(Clone)]
struct Api {
    greeting: &'static str,
}

impl Api {
    fn greeting(&self) -> &'static str {
        self.greeting
    }

    #[hypertrace::handler]
    async fn hello(State(api): State<Self>) -> &'static str {
        api.greeting()
    }
}

fn main() {}
