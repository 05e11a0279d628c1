#[hypertrace::main]
async fn start() {}

fn main() {}
