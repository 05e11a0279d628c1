#[hypertrace::handler]
async extern "C" fn health() -> &'static str {
    "ok"
}

fn main() {}
