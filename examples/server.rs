//! `cargo run --example server`: serves the demo app for use with a real collector.
//! Listens on `DEMO_ADDR` (default 127.0.0.1:8080); configure export with `HT_*` variables,
//! e.g. `HT_REPORTING_ENDPOINT=http://localhost:4317`. Stops cleanly on Ctrl-C or SIGTERM,
//! flushing every finished span.

mod app;

use std::net::SocketAddr;

#[hypertrace::main(service_name = "hypertrace-demo")]
async fn main() {
    // Signal handlers first: a SIGTERM right after start-up still shuts down cleanly.
    let shutdown = hypertrace::shutdown_signal();
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .expect("bind DEMO_ADDR");
    eprintln!("server: listening on {}", listener.local_addr().unwrap());
    axum::serve(
        listener,
        app::router().into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .expect("server");
}
