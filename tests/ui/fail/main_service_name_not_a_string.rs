#[hypertrace::main(service_name = 5)]
async fn main() {}
