#[hypertrace::main(service_name = "svc")]
async fn main() {
    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::set_global_default(subscriber).expect("setting default subscriber failed");
}
