#[hypertrace::handler]
async fn echo(body: &str) -> String {
    body.to_owned()
}

fn main() {}
