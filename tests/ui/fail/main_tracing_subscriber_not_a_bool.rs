#[hypertrace::main(tracing_subscriber = "no")]
async fn main() {}
