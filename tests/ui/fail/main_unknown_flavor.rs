#[hypertrace::main(flavor = "local")]
async fn main() {}
