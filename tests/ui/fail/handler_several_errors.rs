#[hypertrace::handler(request_body = 1, bogus = true)]
fn health<T>(_t: T) -> &'static str {
    "ok"
}

fn main() {}
