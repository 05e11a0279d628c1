#[tokio::main]
#[hypertrace::main]
async fn main() {}
