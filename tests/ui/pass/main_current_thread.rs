#[hypertrace::main(
    service_name = "ui-pass",
    tracing_subscriber = false,
    flavor = "current_thread"
)]
async fn main() {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread
    );
}
