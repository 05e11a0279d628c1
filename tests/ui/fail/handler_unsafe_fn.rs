#[hypertrace::handler]
async unsafe fn health() -> &'static str {
    "ok"
}

fn main() {}
