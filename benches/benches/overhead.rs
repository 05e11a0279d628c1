//! In-process cost per request of each variant: one `POST /echo` with a 1 KiB
//! JSON body and 10 headers, driven through the `Router` with `tower::ServiceExt::oneshot`, the
//! whole response body read. Instrumented variants export through their batch processor into an
//! exporter that encodes OTLP protobuf and discards it.
//!
//!     cargo bench --bench overhead                          # all variants, in one process
//!     VARIANTS=hypertrace cargo bench --bench overhead      # one variant (run-all.sh runs each in
//!                                                           # its own process: no heap left behind
//!                                                           # by the previous one)

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use hypertrace_benches::{call, json_body, letter, request, router, Export, Telemetry, VARIANTS};

fn overhead(c: &mut Criterion) {
    let rt = hypertrace_benches::bench_runtime();
    let body = json_body();
    let mut group = c.benchmark_group("request");
    // The peers (scoped tracing subscriber) go last, so that their thread-local dispatcher is not
    // in place while the others run.
    let only = std::env::var("VARIANTS").ok();
    for variant in VARIANTS {
        if only
            .as_deref()
            .is_some_and(|o| !o.split_whitespace().any(|x| x == variant))
        {
            continue;
        }
        let telemetry = Telemetry::new(variant, &Export::Encode, None);
        let scoped = telemetry.set_thread_default();
        let app = router(variant);
        // Preflight: the app answers, and the instrumented ones export.
        let (status, len) = rt.block_on(call(app.clone(), request(&body)));
        assert_eq!((status, len), (200, body.len()), "{variant}");
        let mut requests = 1u64;
        group.bench_function(format!("{}-{variant}", letter(variant)), |b| {
            b.iter_batched(
                || request(&body),
                |req| {
                    requests += 1;
                    black_box(rt.block_on(call(app.clone(), req)))
                },
                BatchSize::SmallInput,
            )
        });
        drop(scoped);
        let info = format!("{requests} requests; {}", telemetry.finish());
        eprintln!("  {info}");
        // What was exported (and dropped, if the export thread fell behind), for report.py.
        let home = std::env::var("CRITERION_HOME").unwrap_or_else(|_| "target/criterion".into());
        let dir = std::path::Path::new(&home)
            .join("request")
            .join(format!("{}-{variant}", letter(variant)));
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join("spans.txt"), info + "\n");
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .sample_size(60)
        .noise_threshold(0.03)
}

criterion_group! { name = benches; config = config(); targets = overhead }
criterion_main!(benches);
