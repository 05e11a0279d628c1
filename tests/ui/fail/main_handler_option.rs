#[hypertrace::main(request_body = false)]
async fn main() {}
