use tracing_subscriber::util::SubscriberInitExt;

#[hypertrace::main]
async fn main() {
    tracing_subscriber::registry().init();
}
