#[hypertrace::handler(request_body = "false")]
async fn login(body: String) -> String {
    body
}

fn main() {}
