use std::error::Error;

#[hypertrace::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let port: u16 = "3000".parse()?;
    assert_eq!(port, 3000);
    Ok(())
}
