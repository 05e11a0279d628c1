#[hypertrace::handler]
async fn health() -> String {
    let n: u32 = 5;
    n
}

fn main() {}
