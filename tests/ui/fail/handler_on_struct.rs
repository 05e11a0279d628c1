#[hypertrace::handler]
struct Health;

fn main() {}
