#[derive(Debug)]
struct AppError;

#[hypertrace::main]
async fn main() -> Result<(), AppError> {
    let _port: u16 = "3000".parse()?;
    Ok(())
}
