#[hypertrace::main]
async fn main() -> Result<(), String> {
    let port: u16 = "3000".parse().unwrap();
    port
}
