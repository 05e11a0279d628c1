//! Per-query cost of `hypertrace::sqlx` next to plain sqlx, against a real PostgreSQL server on
//! loopback (`scripts/start-databases.sh postgres`, or `DATABASE_URL`):
//!
//!     cargo bench --features sql --bench sql
//!
//! One connection, one statement per iteration (`SELECT $1::int4`, `fetch_one`, on a current-thread
//! runtime), in four variants, one after the other in the same process:
//! - `a-plain`: `sqlx::PgPool`, no agent;
//! - `b-hypertrace`: `hypertrace::sqlx::PgPool`, agent enabled: a CLIENT span per query, exported
//!   through the agent's batch processor into an exporter that encodes OTLP protobuf with the
//!   agent's own encoder, borrowing each batch (what its OTLP reporters send), and drops it;
//! - `c-hypertrace-disabled`: the same pool with `enabled: false`;
//! - `d-hypertrace-sanitized`: as `b`, with `rustagent.sql.statement: sanitized`.
//!
//! The round trip to the server dominates and varies with the machine's load: compare the variants
//! of one run (BENCHMARKS.md gives the differences and ratios), never numbers of different runs.
//!
//! Instructions do not vary: `SQL_COUNT="<variant> <n>"` makes the binary run 50 warm-up queries
//! and then `n` queries of one variant (`a-plain`, `b-hypertrace`, `c-hypertrace-disabled`), flush
//! and exit, for `benches/callgrind-sql.sh`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use hypertrace::sqlx::sqlx::{self, postgres::PgConnectOptions, postgres::PgPoolOptions};
use hypertrace::sqlx::PgPool;
use hypertrace_benches::EncodingExporter;

const SQL: &str = "SELECT $1::int4 AS n";

fn options() -> Option<PgConnectOptions> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Some(url.parse().expect("DATABASE_URL"));
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.databases/env");
    let text = std::fs::read_to_string(path).ok()?;
    let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    Some(
        PgConnectOptions::new()
            .host(vars.get("HT_TEST_PG_HOST")?)
            .port(vars.get("HT_TEST_PG_PORT")?.parse().ok()?)
            .username(vars.get("HT_TEST_PG_USER")?)
            .password(vars.get("HT_TEST_PG_PASSWORD")?)
            .database(vars.get("HT_TEST_PG_DATABASE")?),
    )
}

/// A current-thread runtime, one connection to the server, and the same pool wrapped by the agent.
fn connect(options: PgConnectOptions) -> (tokio::runtime::Runtime, sqlx::PgPool, PgPool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plain: sqlx::PgPool = rt
        .block_on(
            PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options),
        )
        .expect("connect");
    let instrumented = PgPool::from(plain.clone()).with_semconv_opt_in(None);
    (rt, plain, instrumented)
}

fn sql(c: &mut Criterion) {
    let Some(options) = options() else {
        eprintln!("sql bench: SKIPPED, NOT RUN: no PostgreSQL server; run scripts/start-databases.sh postgres (or set DATABASE_URL)");
        return;
    };
    let (rt, plain, instrumented) = connect(options);
    let mut group = c.benchmark_group("sql");

    group.bench_function("a-plain", |b| {
        b.iter(|| {
            let n: i32 = rt
                .block_on(sqlx::query_scalar(SQL).bind(7).fetch_one(&plain))
                .unwrap();
            black_box(n)
        })
    });

    for (name, enabled, sanitized) in [
        ("b-hypertrace", true, false),
        ("c-hypertrace-disabled", false, false),
        ("d-hypertrace-sanitized", true, true),
    ] {
        let mut config = hypertrace::Config::defaults("bench");
        config.enabled = enabled;
        if sanitized {
            config.rustagent.sql.statement = hypertrace::config::StatementCapture::Sanitized;
        }
        let exporter = EncodingExporter::direct();
        let stats = exporter.stats.clone();
        let guard = hypertrace::Agent::with_batch_exporter(config, exporter).install();
        group.bench_function(name, |b| {
            b.iter(|| {
                let n: i32 = rt
                    .block_on(sqlx::query_scalar(SQL).bind(7).fetch_one(&instrumented))
                    .unwrap();
                black_box(n)
            })
        });
        guard.flush();
        let exported = stats.spans.load(std::sync::atomic::Ordering::Relaxed);
        let dropped = guard.agent().stats();
        eprintln!("  {name}: {exported} spans exported; {dropped:?}");
        assert_eq!(enabled, exported > 0, "{name}: spans only when enabled");
        drop(guard);
    }
    group.finish();
    interleaved(&rt, &plain, &instrumented);
}

/// The same comparison, robust to a loaded machine ([`hypertrace_benches::interleaved`]): rounds
/// of `N` queries per variant, each variant with a fresh agent installed for its block and flushed
/// at its end.
fn interleaved(rt: &tokio::runtime::Runtime, plain: &sqlx::PgPool, instrumented: &PgPool) {
    const N: u32 = 1000;
    let variants = ["a-plain", "b-hypertrace", "c-hypertrace-disabled"];
    let agent = |v: usize| {
        (v > 0).then(|| {
            let mut config = hypertrace::Config::defaults("bench");
            config.enabled = variants[v] == "b-hypertrace";
            hypertrace::Agent::with_batch_exporter(config, EncodingExporter::direct()).install()
        })
    };
    hypertrace_benches::interleaved("query", 15, N, &variants, agent, |v, guard| {
        rt.block_on(async {
            for i in 0..N {
                let q = sqlx::query_scalar(SQL).bind(i as i32);
                let n: i32 = if v == 0 {
                    q.fetch_one(plain).await
                } else {
                    q.fetch_one(instrumented).await
                }
                .unwrap();
                black_box(n);
            }
        });
        if let Some(g) = guard {
            g.flush();
        }
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .sample_size(60)
        .noise_threshold(0.03)
}

/// `SQL_COUNT="<variant> <n>"`: 50 + `n` queries of that variant on one connection, then a flush.
fn count(spec: &str) {
    let (variant, n) = spec.split_once(' ').expect("SQL_COUNT=\"<variant> <n>\"");
    let n: u32 = n.parse().expect("a number of queries");
    let options = options().expect("a PostgreSQL server: scripts/start-databases.sh postgres");
    let (rt, plain, instrumented) = connect(options);
    let enabled = match variant {
        "a-plain" => None,
        "b-hypertrace" => Some(true),
        "c-hypertrace-disabled" => Some(false),
        _ => panic!("a-plain, b-hypertrace or c-hypertrace-disabled"),
    };
    let guard = enabled.map(|enabled| {
        // The `HT_*` variables apply (callgrind-sql.sh sets where spent spans are freed).
        let (mut config, _) = hypertrace::config::ConfigBuilder::new("bench")
            .load()
            .expect("HT_* configuration");
        config.enabled = enabled;
        hypertrace::Agent::with_batch_exporter(config, EncodingExporter::direct()).install()
    });
    rt.block_on(async {
        for i in 0..50 + n {
            let q = sqlx::query_scalar(SQL).bind(i as i32);
            let v: i32 = if enabled.is_none() {
                q.fetch_one(&plain).await
            } else {
                q.fetch_one(&instrumented).await
            }
            .unwrap();
            black_box(v);
        }
    });
    if let Some(g) = guard {
        g.flush();
    }
}

criterion_group! { name = benches; config = config(); targets = sql }

fn main() {
    if let Ok(spec) = std::env::var("SQL_COUNT") {
        return count(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
