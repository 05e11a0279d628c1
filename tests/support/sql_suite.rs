//! The SQL span tests, written once and expanded for each database by `sql_suite!` (in
//! `sql_postgres.rs` and `sql_mysql.rs`): what differs is the sqlx database type, the `db.system`
//! value, how to connect, the placeholder syntax, a few DDL words and the error codes.
//!
//! Every test talks to the real server started by `scripts/start-databases.sh`; without one it
//! says "SKIPPED, NOT RUN" (and fails under `CI=true`).

/// Expands into the test functions. Parameters:
/// - `db`: the sqlx database type; `system`: the expected `db.system`;
/// - `which`, `prefix`: the server's name in messages and its variables in `.databases/env`;
/// - `options`: `fn(&Server) -> ConnectOptions`;
/// - `ph`: `fn(&str) -> String` turning `$1` placeholders into the database's own;
/// - `serial`: the DDL of an auto-increment primary key;
/// - `syntax_sqlstate`, `unique_sqlstate`, `unique_status`: the codes the server reports;
/// - `leaky_failure`: a statement that fails with the literal `leaky-secret` quoted in the message.
// `crate::` on purpose: the items are the calling test crate's (`databases`, `support`).
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! sql_suite {
    (
        db: $db:ty,
        system: $system:literal,
        which: $which:literal,
        prefix: $prefix:literal,
        options: $options:expr,
        ph: $ph:expr,
        serial: $serial:literal,
        syntax_sqlstate: $syntax:literal,
        unique_sqlstate: $unique:literal,
        unique_status: $unique_status:literal,
        leaky_failure: $leaky:literal,
    ) => {
        use std::time::Duration;

        use futures_util::StreamExt as _;
        use hypertrace::config::StatementCapture;
        use hypertrace::sqlx::sqlx::{self, Row as _};
        use hypertrace::sqlx::Pool;
        use opentelemetry::context::FutureExt as _;
        use opentelemetry::trace::{
            SpanId, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
        };
        use opentelemetry::Context;
        use opentelemetry_sdk::trace::SpanData;
        use tracing::Instrument as _;

        use crate::databases::{
            agent, attr_i64, attr_str, logs, named, names, one, server_or_skip, span_text, Server,
        };

        type Db = $db;

        fn server(test: &str) -> Option<Server> {
            server_or_skip(test, $which, $prefix)
        }

        fn ph(sql: &str) -> String {
            ($ph)(sql)
        }

        async fn pool_with(server: &Server, opt_in: Option<&str>) -> Pool<Db> {
            Pool::<Db>::connect_with(($options)(server))
                .await
                .unwrap_or_else(|e| panic!("cannot connect to the {} test server: {e}", $which))
                .with_semconv_opt_in(opt_in)
        }

        async fn pool(server: &Server) -> Pool<Db> {
            pool_with(server, None).await
        }

        /// Runs DDL (before the spans a test looks at; they are cleared after).
        async fn run(pool: &Pool<Db>, sqls: &[&str]) {
            for sql in sqls {
                sqlx::raw_sql(sql)
                    .execute(pool.inner())
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }

        fn recreate(table: &str, columns: &str) -> [String; 2] {
            [
                format!("DROP TABLE IF EXISTS {table}"),
                format!("CREATE TABLE {table} ({columns})"),
            ]
        }

        async fn setup(pool: &Pool<Db>, table: &str, columns: &str) {
            let [drop, create] = recreate(table, columns);
            run(pool, &[&drop, &create]).await;
        }

        fn kind_is_client(s: &SpanData) {
            assert_eq!(s.span_kind, SpanKind::Client, "{}", s.name);
        }

        fn is_error(s: &SpanData) -> String {
            match &s.status {
                Status::Error { description } => description.to_string(),
                other => panic!("{}: status {other:?}, expected Error", s.name),
            }
        }

        fn exception(s: &SpanData) -> (String, String) {
            let ev = s
                .events
                .iter()
                .find(|e| e.name == "exception")
                .unwrap_or_else(|| panic!("{}: no exception event", s.name));
            let get = |k: &str| {
                ev.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == k)
                    .map(|kv| kv.value.as_str().into_owned())
                    .unwrap_or_default()
            };
            (get("exception.type"), get("exception.message"))
        }

        /// Each statement's span: name, kind, the connection keys, the statement as written
        /// (placeholders, never the bound value), the operation, rows returned and affected.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn select_insert_update_delete_get_client_spans() {
            let Some(server) = server("select_insert_update_delete_get_client_spans") else {
                return;
            };
            let pool = pool(&server).await;
            let a = agent(|_| {});
            setup(
                &pool,
                "ht_crud",
                concat!("id ", $serial, ", name VARCHAR(100) NOT NULL"),
            )
            .await;
            a.clear();

            let insert = ph("INSERT INTO ht_crud (name) VALUES ($1)");
            for name in ["bound-secret-1", "bound-secret-2"] {
                let r = sqlx::query(&insert)
                    .bind(name)
                    .execute(&pool)
                    .await
                    .unwrap();
                assert_eq!(r.rows_affected(), 1);
            }
            let all = "SELECT id, name FROM ht_crud ORDER BY id";
            let rows = sqlx::query(all).fetch_all(&pool).await.unwrap();
            let got: Vec<String> = rows.iter().map(|r| r.get::<String, _>("name")).collect();
            assert_eq!(got, ["bound-secret-1", "bound-secret-2"]);
            let by_name = ph("SELECT name FROM ht_crud WHERE name = $1");
            let row = sqlx::query(&by_name)
                .bind("bound-secret-2")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(row.get::<String, _>(0), "bound-secret-2");
            let missing = ph("SELECT name FROM ht_crud WHERE name <> $1 AND name = $2");
            let none = sqlx::query(&missing)
                .bind("x")
                .bind("nobody")
                .fetch_optional(&pool)
                .await
                .unwrap();
            assert!(none.is_none());
            let update = ph("UPDATE ht_crud SET name = $1 WHERE name = $2");
            let r = sqlx::query(&update)
                .bind("renamed")
                .bind("bound-secret-1")
                .execute(&pool)
                .await
                .unwrap();
            assert_eq!(r.rows_affected(), 1);
            let delete = "DELETE FROM ht_crud";
            assert_eq!(
                sqlx::query(delete)
                    .execute(&pool)
                    .await
                    .unwrap()
                    .rows_affected(),
                2
            );

            let spans = a.wait_named("DELETE ht_crud");
            let inserts = named(&spans, "INSERT ht_crud");
            assert_eq!(inserts.len(), 2, "{:?}", names(&spans));
            for s in &inserts {
                kind_is_client(s);
                assert_eq!(attr_str(s, "db.system").as_deref(), Some($system));
                assert_eq!(attr_str(s, "db.statement"), Some(insert.clone()));
                assert_eq!(attr_str(s, "db.operation").as_deref(), Some("INSERT"));
                assert_eq!(attr_str(s, "db.sql.table").as_deref(), Some("ht_crud"));
                assert_eq!(attr_str(s, "db.name"), Some(server.database.clone()));
                assert_eq!(attr_str(s, "db.user"), Some(server.user.clone()));
                assert_eq!(attr_str(s, "net.peer.name").as_deref(), Some("127.0.0.1"));
                assert_eq!(attr_i64(s, "net.peer.port"), Some(i64::from(server.port)));
                assert_eq!(attr_i64(s, "db.rows_affected"), Some(1));
                assert_eq!(attr_i64(s, "db.response.returned_rows"), Some(0));
                assert_eq!(s.status, Status::Unset);
                // No request around these calls: each span starts a trace of its own.
                assert_eq!(s.parent_span_id, SpanId::INVALID);
                // The old keys only, by default.
                assert_eq!(attr_str(s, "db.system.name"), None);
            }
            let selects = named(&spans, "SELECT ht_crud");
            assert_eq!(selects.len(), 3, "{:?}", names(&spans));
            let returned = |sql: &str| {
                let s = selects
                    .iter()
                    .find(|s| attr_str(s, "db.statement").as_deref() == Some(sql))
                    .unwrap_or_else(|| panic!("no span for {sql}"));
                kind_is_client(s);
                assert_eq!(attr_str(s, "db.operation").as_deref(), Some("SELECT"));
                attr_i64(s, "db.response.returned_rows")
            };
            assert_eq!(returned(all), Some(2));
            assert_eq!(returned(&by_name), Some(1));
            assert_eq!(returned(&missing), Some(0));
            let up = one(&spans, "UPDATE ht_crud");
            assert_eq!(attr_str(up, "db.statement"), Some(update.clone()));
            assert_eq!(attr_i64(up, "db.rows_affected"), Some(1));
            let del = one(&spans, "DELETE ht_crud");
            assert_eq!(attr_i64(del, "db.rows_affected"), Some(2));
            assert_eq!(attr_str(del, "db.operation").as_deref(), Some("DELETE"));
            for s in &spans {
                assert!(
                    !span_text(s).contains("bound-secret"),
                    "a bound value on {s:?}"
                );
            }
        }

        /// A syntax error: status Error with the server's message, its SQLSTATE, an exception
        /// event; the application gets the very error sqlx gives without the wrapper.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn syntax_error_is_an_error_span_with_the_sqlstate() {
            let Some(server) = server("syntax_error_is_an_error_span_with_the_sqlstate") else {
                return;
            };
            let pool = pool(&server).await;
            let a = agent(|_| {});
            let bad = "SELEC name FROM nowhere";
            let err = sqlx::query(bad).fetch_all(&pool).await.unwrap_err();
            let plain = sqlx::query(bad).fetch_all(pool.inner()).await.unwrap_err();
            assert_eq!(err.to_string(), plain.to_string());
            let db_err = err.as_database_error().expect("a database error");
            assert_eq!(db_err.code().as_deref(), Some($syntax));

            let spans = a.wait_named("SELEC");
            let s = one(&spans, "SELEC");
            kind_is_client(s);
            let msg = is_error(s);
            assert_eq!(msg, db_err.message());
            assert!(msg.to_lowercase().contains("syntax"), "{msg}");
            assert_eq!(attr_str(s, "db.sqlstate").as_deref(), Some($syntax));
            assert_eq!(attr_str(s, "db.statement").as_deref(), Some(bad));
            let (ty, emsg) = exception(s);
            assert_eq!(ty, "sqlx::Error::Database");
            assert_eq!(emsg, msg);
        }

        /// A unique violation, with the stable keys next to the old ones (`database/dup`):
        /// the SQLSTATE, `db.response.status_code` and `error.type`.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn unique_violation_carries_sqlstate_and_stable_keys() {
            let Some(server) = server("unique_violation_carries_sqlstate_and_stable_keys") else {
                return;
            };
            let pool = pool_with(&server, Some("database/dup")).await;
            let a = agent(|_| {});
            setup(&pool, "ht_unique", "email VARCHAR(100) NOT NULL UNIQUE").await;
            a.clear();
            let insert = ph("INSERT INTO ht_unique (email) VALUES ($1)");
            sqlx::query(&insert)
                .bind("ada@example.com")
                .execute(&pool)
                .await
                .unwrap();
            let err = sqlx::query(&insert)
                .bind("ada@example.com")
                .execute(&pool)
                .await
                .unwrap_err();
            assert!(err.as_database_error().unwrap().is_unique_violation());

            let spans = a.wait_for("two inserts", |s| {
                s.iter().filter(|s| s.name == "INSERT ht_unique").count() == 2
            });
            let failed: Vec<_> = named(&spans, "INSERT ht_unique")
                .into_iter()
                .filter(|s| matches!(s.status, Status::Error { .. }))
                .collect();
            assert_eq!(failed.len(), 1, "{:?}", names(&spans));
            let s = failed[0];
            assert_eq!(attr_str(s, "db.sqlstate").as_deref(), Some($unique));
            assert_eq!(
                attr_str(s, "db.response.status_code").as_deref(),
                Some($unique_status)
            );
            assert_eq!(attr_str(s, "error.type").as_deref(), Some($unique_status));
            assert_eq!(exception(s).0, "sqlx::Error::Database");
            for (old, stable) in [
                ("db.system", "db.system.name"),
                ("db.statement", "db.query.text"),
                ("db.operation", "db.operation.name"),
                ("db.name", "db.namespace"),
                ("net.peer.name", "server.address"),
                ("db.sql.table", "db.collection.name"),
            ] {
                assert!(attr_str(s, old).is_some(), "{old}");
                assert_eq!(attr_str(s, old), attr_str(s, stable), "{old} / {stable}");
            }
            assert_eq!(attr_i64(s, "server.port"), Some(i64::from(server.port)));
            assert_eq!(
                attr_str(s, "db.query.summary").as_deref(),
                Some("INSERT ht_unique")
            );

            // `database` alone: the stable keys only.
            let stable = pool_with(&server, Some("database")).await;
            a.clear();
            sqlx::query("SELECT email FROM ht_unique")
                .fetch_all(&stable)
                .await
                .unwrap();
            let spans = a.wait_named("SELECT ht_unique");
            let s = one(&spans, "SELECT ht_unique");
            assert_eq!(
                attr_str(s, "db.query.text").as_deref(),
                Some("SELECT email FROM ht_unique")
            );
            assert_eq!(attr_str(s, "db.system.name").as_deref(), Some($system));
            assert_eq!(attr_i64(s, "db.response.returned_rows"), Some(1));
            for old in [
                "db.system",
                "db.statement",
                "db.operation",
                "db.name",
                "db.user",
                "net.peer.name",
                "net.peer.port",
            ] {
                assert_eq!(attr_str(s, old), None, "{old} under `database`");
            }
        }

        /// BEGIN, the statements, COMMIT (or ROLLBACK): each a span, all children of the
        /// context the transaction ran in; what was committed stays, what was rolled back
        /// (explicitly or by dropping the transaction) does not.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn committed_and_rolled_back_transactions() {
            let Some(server) = server("committed_and_rolled_back_transactions") else {
                return;
            };
            let pool = pool(&server).await;
            let a = agent(|_| {});
            setup(&pool, "ht_tx", "name VARCHAR(100) NOT NULL").await;
            a.clear();
            let tracer = a.guard.agent().tracer_provider().tracer("test");
            let parent = Context::current_with_span(tracer.start("request"));
            let parent_id = parent.span().span_context().span_id();
            let insert = ph("INSERT INTO ht_tx (name) VALUES ($1)");
            async {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(&insert)
                    .bind("kept")
                    .execute(&mut tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();

                let mut tx = pool.begin().await.unwrap();
                sqlx::query(&insert)
                    .bind("rolled back")
                    .execute(&mut tx)
                    .await
                    .unwrap();
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ht_tx")
                    .fetch_one(&mut tx)
                    .await
                    .unwrap();
                assert_eq!(n, 2, "the transaction sees its own insert");
                tx.rollback().await.unwrap();

                let mut conn = pool.acquire().await.unwrap();
                let mut tx = conn.begin().await.unwrap();
                sqlx::query(&insert)
                    .bind("dropped")
                    .execute(&mut tx)
                    .await
                    .unwrap();
                drop(tx);
            }
            .with_context(parent.clone())
            .await;
            parent.span().end();
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ht_tx")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(n, 1);
            let names_left: Vec<String> = sqlx::query_scalar("SELECT name FROM ht_tx")
                .fetch_all(&pool)
                .await
                .unwrap();
            assert_eq!(names_left, ["kept"]);

            let spans = a.wait_for("the transaction spans", |s| {
                s.iter().any(|s| s.name == "ROLLBACK") && s.iter().any(|s| s.name == "request")
            });
            let trace = parent.span().span_context().trace_id();
            let under: Vec<&SpanData> = spans
                .iter()
                .filter(|s| s.parent_span_id == parent_id)
                .collect();
            let mut got: Vec<(std::time::SystemTime, String)> = under
                .iter()
                .map(|s| (s.start_time, s.name.to_string()))
                .collect();
            got.sort();
            let order: Vec<&str> = got.iter().map(|(_, n)| n.as_str()).collect();
            assert_eq!(
                order,
                [
                    "BEGIN",
                    "INSERT ht_tx",
                    "COMMIT",
                    "BEGIN",
                    "INSERT ht_tx",
                    "SELECT ht_tx",
                    "ROLLBACK",
                    "BEGIN",
                    "INSERT ht_tx"
                ],
                "{:?}",
                names(&spans)
            );
            for s in &under {
                kind_is_client(s);
                assert_eq!(s.span_context.trace_id(), trace);
                assert_eq!(s.status, Status::Unset, "{}", s.name);
            }
            for op in ["BEGIN", "COMMIT", "ROLLBACK"] {
                let s = named(&spans, op)[0];
                assert_eq!(attr_str(s, "db.operation").as_deref(), Some(op));
                assert_eq!(attr_str(s, "db.system").as_deref(), Some($system));
                assert_eq!(attr_str(s, "db.statement"), None);
            }
        }

        /// A streamed fetch: the span stays open while rows are read and ends when the stream is
        /// dropped, with the rows read so far; read to the end, it has them all.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn streamed_fetch_span_ends_when_dropped_early() {
            let Some(server) = server("streamed_fetch_span_ends_when_dropped_early") else {
                return;
            };
            let pool = pool(&server).await;
            let a = agent(|_| {});
            setup(&pool, "ht_stream", "n INT NOT NULL").await;
            let values: Vec<String> = (1..=50).map(|i| format!("({i})")).collect();
            let fill = format!("INSERT INTO ht_stream (n) VALUES {}", values.join(", "));
            run(&pool, &[&fill]).await;
            a.clear();

            let sql = "SELECT n FROM ht_stream ORDER BY n";
            let mut rows = sqlx::query(sql).fetch(&pool);
            for want in 1..=3 {
                let row = rows.next().await.unwrap().unwrap();
                assert_eq!(row.get::<i32, _>(0), want);
            }
            // Still open: nothing exported for it yet.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(named(&a.exported(), "SELECT ht_stream").is_empty());
            drop(rows);
            let spans = a.wait_named("SELECT ht_stream");
            let s = one(&spans, "SELECT ht_stream");
            assert_eq!(attr_i64(s, "db.response.returned_rows"), Some(3));
            assert_eq!(s.status, Status::Unset);
            assert!(s.end_time > s.start_time);

            a.clear();
            let n = sqlx::query(sql).fetch(&pool).count().await;
            assert_eq!(n, 50);
            let spans = a.wait_named("SELECT ht_stream");
            assert_eq!(
                attr_i64(one(&spans, "SELECT ht_stream"), "db.response.returned_rows"),
                Some(50)
            );
        }

        /// 100 queries at once over a pool of 5 connections, each under its own parent: each
        /// span has its own statement and the right parent.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn hundred_concurrent_queries_each_get_their_own_span() {
            let Some(server) = server("hundred_concurrent_queries_each_get_their_own_span") else {
                return;
            };
            let pool = Pool::<Db>::from(
                sqlx::pool::PoolOptions::<Db>::new()
                    .max_connections(5)
                    .connect_with(($options)(&server))
                    .await
                    .unwrap(),
            )
            .with_semconv_opt_in(None);
            let a = agent(|c| c.rustagent.max_queue_size = 4096);
            let tracer = a.guard.agent().tracer_provider().tracer("test");
            let mut tasks = Vec::new();
            for i in 0..100 {
                let parent = Context::current_with_span(tracer.start(format!("req-{i}")));
                let pool = pool.clone();
                tasks.push(tokio::spawn(
                    async move {
                        let sql = format!("SELECT {i} AS n");
                        let rows = sqlx::query(&sql).fetch_all(&pool).await.unwrap();
                        assert_eq!(rows.len(), 1);
                        Context::current().span().end();
                    }
                    .with_context(parent),
                ));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let spans = a.wait_for("100 SQL spans and their parents", |s| s.len() >= 200);
            let sql: Vec<&SpanData> = spans
                .iter()
                .filter(|s| s.span_kind == SpanKind::Client)
                .collect();
            assert_eq!(sql.len(), 100);
            let mut seen = std::collections::HashSet::new();
            for s in sql {
                let stmt = attr_str(s, "db.statement").unwrap();
                let i: u32 = stmt
                    .trim_start_matches("SELECT ")
                    .trim_end_matches(" AS n")
                    .parse()
                    .unwrap();
                assert!(seen.insert(i), "statement {i} twice");
                let parent = spans
                    .iter()
                    .find(|p| p.span_context.span_id() == s.parent_span_id)
                    .expect("the parent was exported");
                assert_eq!(parent.name, format!("req-{i}"));
                assert_eq!(parent.span_context.trace_id(), s.span_context.trace_id());
            }
            assert_eq!(seen.len(), 100);
        }

        /// `rustagent.sql.statement`: `full` keeps the text, `sanitized` (here from
        /// `HT_RUSTAGENT_SQL_STATEMENT`) replaces literals by `?` and strips quoted values from
        /// the error message, `off` records no text; the span name is the same in all three.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn statement_capture_modes() {
            let Some(server) = server("statement_capture_modes") else {
                return;
            };
            let pool = pool(&server).await;
            let sql = ph("SELECT name FROM ht_modes WHERE name = 'literal-secret' AND id > $1");
            let from_env = hypertrace::ConfigBuilder::new("sql-test")
                .env_vars([(
                    "HT_RUSTAGENT_SQL_STATEMENT".to_string(),
                    "sanitized".to_string(),
                )])
                .load()
                .unwrap()
                .0
                .rustagent
                .sql
                .statement;
            assert_eq!(from_env, StatementCapture::Sanitized);
            for mode in [StatementCapture::Full, from_env, StatementCapture::Off] {
                let a = agent(|c| c.rustagent.sql.statement = mode);
                setup(
                    &pool,
                    "ht_modes",
                    concat!("id ", $serial, ", name VARCHAR(100)"),
                )
                .await;
                a.clear();
                sqlx::query(&sql).bind(0i32).fetch_all(&pool).await.unwrap();
                let err = sqlx::query($leaky).fetch_all(&pool).await.unwrap_err();
                let db_msg = err.as_database_error().unwrap().message().to_owned();
                assert!(
                    db_msg.contains("leaky-secret"),
                    "the server quotes it: {db_msg}"
                );
                let spans = a.wait_for("both statements", |s| s.len() >= 2);
                let s = one(&spans, "SELECT ht_modes");
                assert_eq!(attr_str(s, "db.operation").as_deref(), Some("SELECT"));
                let failed = spans
                    .iter()
                    .find(|s| matches!(s.status, Status::Error { .. }))
                    .expect("the failed statement's span");
                let msg = is_error(failed);
                match mode {
                    StatementCapture::Full => {
                        assert_eq!(attr_str(s, "db.statement"), Some(sql.clone()));
                        assert_eq!(msg, db_msg);
                    }
                    StatementCapture::Sanitized => {
                        assert_eq!(
                            attr_str(s, "db.statement"),
                            Some(ph("SELECT name FROM ht_modes WHERE name = ? AND id > $1"))
                        );
                        assert!(!msg.contains("leaky-secret"), "{msg}");
                        assert!(!span_text(failed).contains("leaky-secret"), "{failed:?}");
                    }
                    StatementCapture::Off => {
                        assert_eq!(attr_str(s, "db.statement"), None);
                        assert_eq!(attr_str(failed, "db.statement"), None);
                        assert!(!span_text(failed).contains("leaky-secret"), "{failed:?}");
                    }
                }
                for s in &spans {
                    if mode != StatementCapture::Full {
                        assert!(!span_text(s).contains("literal-secret"), "{s:?}");
                    }
                }
                drop(a);
            }
        }

        /// The password is on no span and in no log line: the spans read the typed connect
        /// options (never a URL), the pool's Debug shows none, and neither do sqlx's messages
        /// when a connection is refused for a wrong password.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn credentials_never_on_a_span_or_in_a_log() {
            let Some(server) = server("credentials_never_on_a_span_or_in_a_log") else {
                return;
            };
            let a = agent(|_| {});
            let pool = pool(&server).await;
            let debug = format!("{pool:?}");
            assert!(debug.contains("127.0.0.1"), "{debug}");
            sqlx::query("SELECT 1").fetch_all(&pool).await.unwrap();
            let _ = sqlx::query("SELEC broken")
                .fetch_all(&pool)
                .await
                .unwrap_err();
            let tx = pool.begin().await.unwrap();
            tx.commit().await.unwrap();
            let mut wrong = server.clone();
            wrong.password = "wrong-password-0123456789".into();
            let err = Pool::<Db>::connect_with(($options)(&wrong))
                .await
                .unwrap_err();
            let spans = a.wait_named("COMMIT");
            assert!(spans.len() >= 4, "{:?}", names(&spans));
            let log = logs().text();
            assert!(log.contains("sqlx::query"), "the log capture works: {log}");
            for secret in [server.password.as_str(), wrong.password.as_str()] {
                assert!(!debug.contains(secret));
                assert!(!err.to_string().contains(secret), "{err}");
                assert!(!log.contains(secret), "the password is in the log");
                for s in &spans {
                    assert!(!span_text(s).contains(secret), "{s:?}");
                    assert!(!format!("{s:?}").contains(secret), "{s:?}");
                }
            }
        }

        /// sqlx logs every statement as a `sqlx::query` event (here at INFO, and as a slow
        /// statement at WARN); none of them may come back as an event of our spans or of the
        /// spans around them.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sqlx_query_events_are_not_reported_again_as_span_events() {
            let Some(server) = server("sqlx_query_events_are_not_reported_again_as_span_events")
            else {
                return;
            };
            use sqlx::ConnectOptions as _;
            let options = ($options)(&server)
                .log_statements(log::LevelFilter::Info)
                .log_slow_statements(log::LevelFilter::Warn, Duration::ZERO);
            let pool = Pool::<Db>::connect_with(options)
                .await
                .unwrap()
                .with_semconv_opt_in(None);
            let a = agent(|_| {});
            let tracer = a.guard.agent().tracer_provider().tracer("test");
            let before = logs().text().matches("sqlx::query").count();
            // In an OpenTelemetry context (as inside an annotated handler) ...
            let parent = Context::current_with_span(tracer.start("request"));
            async {
                sqlx::query("SELECT 1 AS in_context")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                // ... and inside a `tracing` span.
                async {
                    sqlx::query("SELECT 2 AS in_tracing_span")
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                }
                .instrument(tracing::info_span!("work"))
                .await;
            }
            .with_context(parent.clone())
            .await;
            parent.span().end();
            let spans = a.wait_for("request, work and two SELECTs", |s| {
                s.iter().any(|s| s.name == "request")
                    && s.iter().any(|s| s.name == "work")
                    && s.iter().filter(|s| s.name == "SELECT").count() == 2
            });
            let after = logs().text().matches("sqlx::query").count();
            assert!(after >= before + 2, "sqlx logged the statements");
            for s in &spans {
                for e in s.events.iter() {
                    let text = format!("{e:?}");
                    assert!(
                        !text.contains("sqlx::query")
                            && !text.contains("in_context")
                            && !text.contains("in_tracing_span"),
                        "{}: {text}",
                        s.name
                    );
                }
            }
            let work = one(&spans, "work");
            let select2 = spans
                .iter()
                .find(|s| {
                    attr_str(s, "db.statement").as_deref() == Some("SELECT 2 AS in_tracing_span")
                })
                .unwrap();
            assert_eq!(select2.parent_span_id, work.span_context.span_id());
        }

        #[hypertrace::handler]
        async fn todo_handler(
            axum::extract::State(pool): axum::extract::State<Pool<Db>>,
            axum::extract::Path(id): axum::extract::Path<i64>,
        ) -> String {
            // Directly in the handler: a child of the server span.
            let name: String = sqlx::query_scalar(&ph("SELECT name FROM ht_handler WHERE id = $1"))
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            let count = count_in_a_tracing_span(&pool).await;
            // A task spawned with the current context: a child of the server span too.
            let p = pool.clone();
            let other: i64 = tokio::spawn(
                async move {
                    sqlx::query_scalar(&ph("SELECT id FROM ht_handler WHERE name = $1"))
                        .bind("second")
                        .fetch_one(&p)
                        .await
                        .unwrap()
                }
                .with_current_context(),
            )
            .await
            .unwrap();
            format!("{name} {count} {other}")
        }

        /// Under `#[tracing::instrument]`: a child of this function's span, and so is the query
        /// of the task it spawns with `.in_current_span()`.
        #[tracing::instrument(skip_all)]
        async fn count_in_a_tracing_span(pool: &Pool<Db>) -> i64 {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ht_handler")
                .fetch_one(pool)
                .await
                .unwrap();
            let p = pool.clone();
            let all: Vec<String> = tokio::spawn(
                async move {
                    sqlx::query_scalar("SELECT name FROM ht_handler ORDER BY id")
                        .fetch_all(&p)
                        .await
                        .unwrap()
                }
                .in_current_span(),
            )
            .await
            .unwrap();
            assert_eq!(all.len() as i64, n);
            n
        }

        /// An annotated axum handler that queries, called over HTTP; the agent exports over
        /// OTLP/HTTP to a real receiver. The trace: SERVER → CLIENT (SQL) for the handler's own
        /// query and the one of a task spawned with the context; SERVER → the `tracing` span →
        /// CLIENT for the instrumented function's query and its spawned task's.
        #[test]
        fn query_in_an_annotated_handler_is_a_child_of_the_server_span() {
            use crate::support::receivers::{hex, pattr_str, wait_until, Collector, CollectorKind};
            use opentelemetry_proto::tonic::trace::v1::span::SpanKind as ProtoKind;
            let Some(server) =
                server("query_in_an_annotated_handler_is_a_child_of_the_server_span")
            else {
                return;
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let _serial = crate::databases::serial();
            let pool = rt.block_on(async {
                let pool = pool(&server).await;
                setup(
                    &pool,
                    "ht_handler",
                    concat!("id ", $serial, ", name VARCHAR(100)"),
                )
                .await;
                run(
                    &pool,
                    &["INSERT INTO ht_handler (name) VALUES ('first'), ('second')"],
                )
                .await;
                pool
            });
            let recv = Collector::start(CollectorKind::Http);
            let mut config = hypertrace::Config::defaults("sql-handler-test");
            config.reporting.trace_reporter_type = hypertrace::config::TraceReporterType::OtlpHttp;
            config.reporting.endpoint = Some(format!("http://{}/v1/traces", recv.addr));
            config.rustagent.scheduled_delay = Duration::from_millis(20);
            let guard = hypertrace::Agent::from_config(config).unwrap().install();

            let body = rt.block_on(async {
                let app = axum::Router::new()
                    .route("/todos/{id}", axum::routing::get(todo_handler))
                    .with_state(pool.clone());
                let addr = crate::support::serve(app).await;
                crate::support::client()
                    .get(format!("http://{addr}/todos/1"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            });
            assert_eq!(body, "first 2 2");
            let arrived = wait_until(Duration::from_secs(10), || {
                guard.flush();
                recv.got.spans().len() >= 6
            });
            let spans: Vec<_> = recv.got.spans().into_iter().map(|(_, s)| s).collect();
            assert!(
                arrived,
                "{:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
            let find = |name: &str| {
                spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
                    panic!(
                        "no {name}: {:?}",
                        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                    )
                })
            };
            let by_stmt = |sql: &str| {
                spans
                    .iter()
                    .find(|s| pattr_str(&s.attributes, "db.statement").as_deref() == Some(sql))
                    .unwrap_or_else(|| panic!("no span for {sql}"))
            };
            let srv = find("GET /todos/{id}");
            assert_eq!(srv.kind, ProtoKind::Server as i32);
            let func = find("count_in_a_tracing_span");
            assert_eq!(hex(&func.parent_span_id), hex(&srv.span_id));
            let expect = [
                (ph("SELECT name FROM ht_handler WHERE id = $1"), srv),
                (ph("SELECT id FROM ht_handler WHERE name = $1"), srv),
                ("SELECT COUNT(*) FROM ht_handler".to_string(), func),
                ("SELECT name FROM ht_handler ORDER BY id".to_string(), func),
            ];
            for (sql, parent) in &expect {
                let s = by_stmt(sql);
                assert_eq!(s.kind, ProtoKind::Client as i32, "{sql}");
                assert_eq!(s.name, "SELECT ht_handler");
                assert_eq!(hex(&s.trace_id), hex(&srv.trace_id), "{sql}");
                assert_eq!(
                    hex(&s.parent_span_id),
                    hex(&parent.span_id),
                    "{sql}: parent {}",
                    parent.name
                );
                assert_eq!(
                    pattr_str(&s.attributes, "db.system").as_deref(),
                    Some($system)
                );
            }
            drop(guard);
            drop(rt);
        }

        /// With `enabled: false`: the queries and transactions work as without the agent, and
        /// no span is recorded.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn disabled_agent_records_nothing_and_queries_still_work() {
            let Some(server) = server("disabled_agent_records_nothing_and_queries_still_work")
            else {
                return;
            };
            let pool = pool(&server).await;
            let a = agent(|c| c.enabled = false);
            setup(&pool, "ht_disabled", "name VARCHAR(100)").await;
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&ph("INSERT INTO ht_disabled (name) VALUES ($1)"))
                .bind("x")
                .execute(&mut tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let n = sqlx::query("SELECT name FROM ht_disabled")
                .fetch(&pool)
                .count()
                .await;
            assert_eq!(n, 1);
            let err = sqlx::query("SELEC x").fetch_all(&pool).await.unwrap_err();
            assert!(err.as_database_error().is_some());
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(a.exported().is_empty(), "{:?}", names(&a.exported()));
        }
    };
}
