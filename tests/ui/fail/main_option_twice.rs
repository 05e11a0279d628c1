#[hypertrace::main(service_name = "a", service_name = "b")]
async fn main() {}
