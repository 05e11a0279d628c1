//! SQL spans against a real PostgreSQL server (`scripts/start-databases.sh`): the shared suite in
//! `support/sql_suite.rs`, expanded for `sqlx::Postgres`.
//!
//! `cargo test --features sqlx-postgres --test sql_postgres`, after `scripts/start-databases.sh`.

#[path = "support/databases.rs"]
mod databases;
mod support;
#[path = "support/sql_suite.rs"]
#[macro_use]
mod sql_suite;

sql_suite! {
    db: sqlx::Postgres,
    system: "postgresql",
    which: "PostgreSQL",
    prefix: "HT_TEST_PG",
    options: |s: &Server| {
        sqlx::postgres::PgConnectOptions::new()
            .host(&s.host)
            .port(s.port)
            .username(&s.user)
            .password(&s.password)
            .database(&s.database)
    },
    ph: |sql: &str| sql.to_owned(),
    serial: "BIGSERIAL PRIMARY KEY",
    syntax_sqlstate: "42601",
    unique_sqlstate: "23505",
    unique_status: "23505",
    leaky_failure: "SELECT CAST('leaky-secret' AS BIGINT)",
}
