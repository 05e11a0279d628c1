//! An app that keeps its own subscriber: `tracing_subscriber = false`, and the agent's layer added to
//! it. The `init()` in the body is then accepted (without the option it is a compile error).
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[hypertrace::main(tracing_subscriber = false)]
async fn main() {
    tracing_subscriber::registry()
        .with(hypertrace::otel_layer())
        .init();
    tracing::info!("the app's own subscriber is installed");
}
