//! The in-process cost of a variant as a ratio to plain axum in the same process: the overhead
//! bench's `POST /echo` (1 KiB JSON body, 10 headers, the whole response read), in alternating
//! blocks of plain and the variant (the variant's telemetry set up afresh for each block, as the
//! criterion bench sets it up once; its spans encoded to OTLP protobuf on its export thread), and
//! the median of the per-pair differences and ratios with a 95% confidence interval.
//!
//! Why next to the criterion bench: there each variant runs in a process of its own (no heap left
//! behind by another), and on a shared VM the speed of one process differs from the next by more
//! than the agent costs. Two blocks a few milliseconds apart in one process see the same machine.
//!
//!     inprocess_ab [pairs] [variants...]   # default 60 pairs; hypertrace hypertrace-disabled
//!                                          # hypertrace-unsampled otel-axum tower-http
//!
//! Run it again under `LD_PRELOAD=libjemalloc.so.2` for the jemalloc figures. The results go to
//! stdout as one JSON document (`run-all.sh` keeps it as `results/paired*.json` for `report.py`),
//! a line per variant to stderr.

use std::hint::black_box;
use std::time::Instant;

use hypertrace_benches::{call, json_body, request, router, Export, Telemetry};

/// Requests per block, after a warm-up of [`WARMUP`].
const PER_BLOCK: u32 = 2000;
const WARMUP: u32 = 200;

fn main() {
    let mut args = std::env::args().skip(1);
    let pairs: usize = args
        .next()
        .map(|p| p.parse().expect("a number of pairs"))
        .unwrap_or(60);
    let mut variants: Vec<String> = args.collect();
    if variants.is_empty() {
        variants = [
            "hypertrace",
            "hypertrace-disabled",
            "hypertrace-unsampled",
            "otel-axum",
            "tower-http",
        ]
        .map(String::from)
        .to_vec();
    }
    let rt = hypertrace_benches::bench_runtime();
    let body = json_body();
    let plain = router("plain");
    let run = |app: &axum::Router| -> f64 {
        for _ in 0..WARMUP {
            rt.block_on(call(app.clone(), request(&body)));
        }
        let t = Instant::now();
        for _ in 0..PER_BLOCK {
            black_box(rt.block_on(call(app.clone(), request(&body))));
        }
        t.elapsed().as_nanos() as f64 / f64::from(PER_BLOCK)
    };
    let mut results = serde_json::Map::new();
    for variant in &variants {
        let app = router(variant);
        let p = hypertrace_benches::alternate(pairs, |instrumented| {
            if !instrumented {
                return run(&plain);
            }
            let telemetry = Telemetry::new(variant, &Export::Encode, None);
            let scoped = telemetry.set_thread_default();
            let ns = run(&app);
            drop(scoped);
            // Flushes and shuts the pipeline down before the next block.
            black_box(telemetry.finish());
            ns
        });
        // The ratio is plain's median plus the median difference, over plain's median (and
        // the same for the difference's interval).
        let result = serde_json::json!({
            "plain_ns": p.off.round(),
            "variant_ns": p.on.round(),
            "diff_ns": p.diff.round(),
            "diff_lo_ns": p.lo.round(),
            "diff_hi_ns": p.hi.round(),
            "ratio": (p.off + p.diff) / p.off,
            "ratio_lo": (p.off + p.lo) / p.off,
            "ratio_hi": (p.off + p.hi) / p.off,
        });
        results.insert(variant.clone(), result);
        eprintln!(
            "{variant:>22}: plain {:.0} ns, {variant} {:.0} ns (medians); difference {:+.0} ns (95% CI {:+.0} … {:+.0}), ×{:.3} (×{:.3} … ×{:.3})",
            p.off,
            p.on,
            p.diff,
            p.lo,
            p.hi,
            (p.off + p.diff) / p.off,
            (p.off + p.lo) / p.off,
            (p.off + p.hi) / p.off,
        );
    }
    let doc = serde_json::json!({"pairs": pairs, "per_block": PER_BLOCK, "variants": results});
    println!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
}
