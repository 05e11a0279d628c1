//! The JSON-echo app of one variant on a real socket, for the throughput and memory scripts.
//!
//!     server <variant> <addr> [otlp=http://127.0.0.1:4317 | encode]
//!
//! Prints `listening <addr>` once bound. On SIGTERM/SIGINT: stops, flushes every span, prints one
//! line with what was exported, exits 0. Worker threads: `WORKERS`, else the CPUs this process may
//! run on (1 under `taskset -c 0`).

use std::net::SocketAddr;

use hypertrace_benches::{router, Export, Telemetry};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (variant, addr, export) = match &args[..] {
        [_, v, a] => (v.clone(), a.clone(), Export::Encode),
        [_, v, a, e] => (
            v.clone(),
            a.clone(),
            match e.strip_prefix("otlp=") {
                Some(url) => Export::Otlp(url.to_owned()),
                None if e == "encode" => Export::Encode,
                None => panic!("export: otlp=URL or encode"),
            },
        ),
        _ => {
            eprintln!("usage: server <variant> <addr> [otlp=URL|encode]");
            std::process::exit(2);
        }
    };
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let telemetry = Telemetry::new(&variant, &export, None);
    telemetry.install_global();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        println!("listening {}", listener.local_addr().unwrap());
        let app = router(&variant);
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).unwrap();
            tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
        })
        .await
        .unwrap();
    });
    drop(rt);
    println!("{}", telemetry.finish());
}
