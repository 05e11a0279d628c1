#[hypertrace::main]
struct App;

fn main() {}
