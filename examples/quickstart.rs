//! `cargo run --example quickstart`: starts the demo app on a free port of 127.0.0.1, sends it a
//! few requests, and exits. Each request's span, with its headers and bodies, is printed as one
//! JSON line on stdout by the LOGGING reporter (see `examples/quickstart.yaml`).

mod app;

use std::net::SocketAddr;

#[hypertrace::main(config = "examples/quickstart.yaml")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        // With connect info, spans also carry the client's address (net.peer.ip / net.peer.port).
        axum::serve(
            listener,
            app::router().into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let client = reqwest::Client::builder().no_proxy().build()?;
    let base = format!("http://{addr}");
    eprintln!("quickstart: demo app on {base}; spans follow on stdout");
    client.get(format!("{base}/")).send().await?.text().await?;
    client
        .post(format!("{base}/json"))
        .header("content-type", "application/json; charset=utf-8")
        .header("authorization", "Bearer not-for-your-traces")
        .body(r#"{"name":"Ada","language":"rust"}"#)
        .send()
        .await?
        .text()
        .await?;
    client
        .get(format!("{base}/users/42"))
        .send()
        .await?
        .text()
        .await?;
    client
        .get(format!("{base}/error"))
        .send()
        .await?
        .text()
        .await?;
    // Returning flushes: every span above is printed before the process exits.
    Ok(())
}
