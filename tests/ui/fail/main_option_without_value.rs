#[hypertrace::main(tracing_subscriber)]
async fn main() {}
