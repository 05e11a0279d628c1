#[hypertrace::handler]
async fn health(body: String, ...) -> String {
    body
}

fn main() {}
