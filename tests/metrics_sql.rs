//! `db.client.operation.duration` against real PostgreSQL and MariaDB servers
//! (`scripts/start-databases.sh`), through `hypertrace::sqlx`'s pool, under an agent whose metrics
//! go by OTLP/gRPC to a receiver in this test, which decodes them with the official proto types.
//!
//! `cargo test --features sqlx-postgres,sqlx-mysql --test metrics_sql`, after
//! `scripts/start-databases.sh`. With `CI=true` a missing server is a failure; elsewhere the test
//! says how to start it and returns.

#[path = "support/databases.rs"]
mod databases;
#[path = "support/otlp_metrics.rs"]
mod otlp_metrics;
mod support;

use databases::{server_or_skip, Server};
use hypertrace::config::Config;
use hypertrace::sqlx::{sqlx, Pool};
use hypertrace::{Agent, Guard};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use otlp_metrics::{
    bucket_of, histogram, keys, one_series, otlp_metrics_to, MetricsReceiver, DB_BUCKETS,
};

const NAME: &str = "db.client.operation.duration";

/// What differs between the two servers.
struct Dialect {
    system: &'static str,
    /// A statement that takes 30 ms.
    sleep: &'static str,
    /// A query with one bind value.
    select_where: &'static str,
    /// The status code (`db.response.status_code`) of a syntax error.
    syntax_status: &'static str,
}

/// An agent with the metrics `config` sets (spans to memory), installed for the test.
fn install(config: impl FnOnce(&mut Config)) -> Guard {
    let mut c = Config::defaults("metrics-sql-test");
    config(&mut c);
    Agent::with_exporter(c, support::Spans::default())
        .with_metrics_from_config()
        .expect("metrics")
        .install()
}

/// The one series of `name` with `want` and without `absent`.
fn series_without(
    reqs: &[ExportMetricsServiceRequest],
    want: &[(&str, &str)],
    absent: &str,
) -> otlp_metrics::Series {
    let all = histogram(reqs, NAME);
    let found: Vec<_> = all
        .iter()
        .filter(|s| {
            !s.attributes.contains_key(absent)
                && want
                    .iter()
                    .all(|(k, v)| s.attributes.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{want:?} without {absent}: {all:#?}");
    found[0].clone()
}

/// The test, for one database type (sqlx's traits differ per driver: a macro, not a generic).
macro_rules! operations_are_recorded {
    ($db:ty, $server:expr, $options:expr, $d:expr) => {{
        let (server, d): (&Server, &Dialect) = ($server, $d);
        let _serial = databases::serial();
        let (addr, recv) = MetricsReceiver::start().await;
        let guard = install(otlp_metrics_to(addr));
        let pool = Pool::<$db>::connect_with($options)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the {} test server: {e}", d.system));
        // Set up outside the instrumentation: only what follows is measured.
        for sql in [
            "DROP TABLE IF EXISTS ht_metrics",
            "CREATE TABLE ht_metrics (n INT NOT NULL, secret VARCHAR(100))",
            "INSERT INTO ht_metrics (n, secret) VALUES (1, 'bind-value-secret')",
        ] {
            sqlx::raw_sql(sql).execute(pool.inner()).await.unwrap();
        }

        for _ in 0..3 {
            let rows = sqlx::query("SELECT n FROM ht_metrics")
                .fetch_all(&pool)
                .await
                .unwrap();
            assert_eq!(rows.len(), 1);
        }
        let rows = sqlx::query(d.select_where)
            .bind("bind-value-secret")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        sqlx::query("UPDATE ht_metrics SET n = 2")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(d.sleep).execute(&pool).await.unwrap();
        let err = sqlx::query("SELEC n FROM ht_metrics")
            .fetch_all(&pool)
            .await;
        assert!(err.is_err());
        tokio::task::block_in_place(|| guard.flush());
        let reqs = recv.requests();
        check(&reqs, server, d);
        drop(guard);
    }};
}

fn check(reqs: &[ExportMetricsServiceRequest], server: &Server, d: &Dialect) {
    let port = server.port.to_string();
    let select = one_series(
        reqs,
        NAME,
        &[
            ("db.operation.name", "SELECT"),
            ("db.collection.name", "ht_metrics"),
        ],
    );
    assert_eq!(select.unit, "s");
    assert_eq!(select.bounds, DB_BUCKETS.to_vec());
    assert_eq!(
        keys(&select),
        [
            "db.collection.name",
            "db.namespace",
            "db.operation.name",
            "db.system.name",
            "server.address",
            "server.port"
        ],
        "the bounded keys only: no statement, no bind value"
    );
    assert_eq!(select.attributes["db.system.name"], d.system);
    assert_eq!(select.attributes["db.namespace"], server.database);
    assert_eq!(select.attributes["server.address"], server.host);
    assert_eq!(select.attributes["server.port"], port);
    // Three plain ones and the one with a bind value share the series: 4.
    assert_eq!(select.count, 4);
    assert!(select.sum > 0.0 && select.sum < 5.0, "{} s", select.sum);

    let update = one_series(reqs, NAME, &[("db.operation.name", "UPDATE")]);
    assert_eq!(update.count, 1);

    // 30 ms, in seconds, and in the bucket those seconds belong to.
    let sleep = series_without(
        reqs,
        &[("db.operation.name", "SELECT")],
        "db.collection.name",
    );
    assert_eq!(sleep.count, 1);
    assert!(sleep.sum >= 0.030 && sleep.sum < 5.0, "{} s", sleep.sum);
    assert_eq!(
        sleep.bucket_counts[bucket_of(&sleep.bounds, sleep.sum)],
        1,
        "{sleep:?}"
    );

    let failed = one_series(reqs, NAME, &[("error.type", d.syntax_status)]);
    assert_eq!(
        failed.attributes["db.response.status_code"],
        d.syntax_status
    );
    assert_eq!(failed.count, 1);

    let all = histogram(reqs, NAME);
    assert_eq!(
        all.len(),
        4,
        "SELECT on the table, UPDATE, the sleep, the error: {all:#?}"
    );
    let text = format!("{reqs:?}");
    assert!(
        !text.contains("bind-value-secret") && !text.contains("ht_metrics SET"),
        "no statement or bind value in the export"
    );
}

/// PostgreSQL's sleep, `$1` placeholders, SQLSTATEs.
const POSTGRES: Dialect = Dialect {
    system: "postgresql",
    sleep: "SELECT pg_sleep(0.03)",
    select_where: "SELECT n FROM ht_metrics WHERE secret = $1",
    syntax_status: "42601",
};

/// MySQL's sleep, `?` placeholders, error numbers.
const MYSQL: Dialect = Dialect {
    system: "mysql",
    sleep: "SELECT SLEEP(0.03)",
    select_where: "SELECT n FROM ht_metrics WHERE secret = ?",
    syntax_status: "1064",
};

// The serial lock is held across the awaits on purpose: the agent is process-wide.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_operations_record_their_durations() {
    let Some(s) = server_or_skip(
        "postgres_operations_record_their_durations",
        "PostgreSQL",
        "HT_TEST_PG",
    ) else {
        return;
    };
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(&s.host)
        .port(s.port)
        .username(&s.user)
        .password(&s.password)
        .database(&s.database);
    operations_are_recorded!(sqlx::Postgres, &s, options, &POSTGRES);
}

// The serial lock is held across the awaits on purpose: the agent is process-wide.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_operations_record_their_durations() {
    let Some(s) = server_or_skip(
        "mariadb_operations_record_their_durations",
        "MariaDB",
        "HT_TEST_MYSQL",
    ) else {
        return;
    };
    let options = sqlx::mysql::MySqlConnectOptions::new()
        .host(&s.host)
        .port(s.port)
        .username(&s.user)
        .password(&s.password)
        .database(&s.database);
    operations_are_recorded!(sqlx::MySql, &s, options, &MYSQL);
}
