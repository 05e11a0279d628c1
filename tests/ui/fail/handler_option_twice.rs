#[hypertrace::handler(request_body = false, request_body = true)]
async fn login(body: String) -> String {
    body
}

fn main() {}
