#[hypertrace::main]
#[tokio::main]
async fn main() {}
