#[hypertrace::handler]
async fn health(body: String, _rest: ...) -> String {
    body
}

fn main() {}
