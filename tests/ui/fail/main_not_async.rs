#[hypertrace::main]
fn main() {}
