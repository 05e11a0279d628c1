//! Runs `WARMUP + N` in-process requests of one variant, then flushes every span through the
//! exporter and shuts down. Made to run under callgrind: the instructions per request are
//! `(Ir(variant, WARMUP, N) - Ir(variant, WARMUP, 0)) / N`, export included.
//!
//!     requests <variant> <warmup> <n>

use hypertrace_benches::{call, json_body, request, router, Export, Telemetry};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (variant, warmup, n) = match &args[..] {
        [_, v, w, n] => (v.as_str(), w.parse::<u64>().unwrap(), n.parse::<u64>().unwrap()),
        _ => {
            eprintln!("usage: requests <variant> <warmup> <n>");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // A queue that holds every span of the run: none is dropped, all are encoded.
    let telemetry = Telemetry::new(variant, &Export::Encode, Some((warmup + n) as usize + 16));
    let _scoped = telemetry.set_thread_default();
    let app = router(variant);
    let body = json_body();
    let mut bytes = 0;
    for _ in 0..warmup + n {
        let (status, len) = rt.block_on(call(app.clone(), request(&body)));
        assert_eq!(status, 200);
        bytes += len;
    }
    drop(_scoped);
    eprintln!("{} requests, {bytes} response bytes; {}", warmup + n, telemetry.finish());
}
