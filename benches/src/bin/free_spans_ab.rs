//! What `rustagent.free_spans_where_served` changes: the capture-everything `POST /echo` of the
//! overhead bench, in-process, in alternating blocks of requests with the setting on and off (a
//! fresh agent per block, the order alternating), and the median of the per-pair differences with
//! a 95% confidence interval. Pairs of blocks a few milliseconds apart see the same machine, which
//! two separate criterion runs on a shared VM do not.
//!
//!     free_spans_ab [pairs]     # default 100; run it again under LD_PRELOAD=libjemalloc.so.2

use std::hint::black_box;

use hypertrace_benches::{call, json_body, request, router, EncodingExporter};

const PER_BLOCK: u32 = 3000;

fn main() {
    let pairs: usize = std::env::args()
        .nth(1)
        .map(|p| p.parse().expect("a number of pairs"))
        .unwrap_or(100);
    let rt = hypertrace_benches::bench_runtime();
    let app = router("hypertrace");
    let body = json_body();
    let block = |where_served: bool| -> f64 {
        let mut config = hypertrace::Config::defaults("bench");
        config.rustagent.free_spans_where_served = where_served;
        let guard =
            hypertrace::Agent::with_batch_exporter(config, EncodingExporter::direct()).install();
        for _ in 0..300 {
            rt.block_on(call(app.clone(), request(&body)));
        }
        let t = std::time::Instant::now();
        for _ in 0..PER_BLOCK {
            black_box(rt.block_on(call(app.clone(), request(&body))));
        }
        let ns = t.elapsed().as_nanos() as f64 / f64::from(PER_BLOCK);
        drop(guard);
        ns
    };
    let p = hypertrace_benches::alternate(pairs, block);
    println!(
        "POST /echo, {pairs} pairs of {PER_BLOCK}: free_spans_where_served true {:.0} ns, false {:.0} ns per request (medians); \
         true - false: median {:.0} ns, 95% CI {:.0}..{:.0} ns",
        p.on, p.off, p.diff, p.lo, p.hi
    );
}
