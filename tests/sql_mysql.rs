//! SQL spans against a real MariaDB server (`scripts/start-databases.sh`; sqlx's MySQL driver):
//! the shared suite in `support/sql_suite.rs`, expanded for `sqlx::MySql`.
//!
//! `cargo test --features sqlx-mysql --test sql_mysql`, after `scripts/start-databases.sh`.

#[path = "support/databases.rs"]
mod databases;
mod support;
#[path = "support/sql_suite.rs"]
#[macro_use]
mod sql_suite;

/// `$1`, `$2`, ... → `?` (the suite writes PostgreSQL's placeholders).
fn dollar_to_question_marks(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

sql_suite! {
    db: sqlx::MySql,
    system: "mysql",
    which: "MariaDB",
    prefix: "HT_TEST_MYSQL",
    options: |s: &Server| {
        sqlx::mysql::MySqlConnectOptions::new()
            .host(&s.host)
            .port(s.port)
            .username(&s.user)
            .password(&s.password)
            .database(&s.database)
    },
    ph: dollar_to_question_marks,
    serial: "BIGINT AUTO_INCREMENT PRIMARY KEY",
    syntax_sqlstate: "42000",
    unique_sqlstate: "23000",
    unique_status: "1062",
    leaky_failure: "SELECT * FROM ht_other WHERE WHERE name = 'leaky-secret'",
}
