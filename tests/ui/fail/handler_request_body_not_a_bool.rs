#[hypertrace::handler(request_body = "no")]
async fn login(body: String) -> String {
    body
}

fn main() {}
