//! SQL spans for [sqlx](https://docs.rs/sqlx/0.8) (PostgreSQL with the cargo feature
//! `sqlx-postgres`, MySQL and MariaDB with `sqlx-mysql`).
//!
//! [`Pool`] wraps a `sqlx::Pool` and is used the same way: every statement run through `&pool`,
//! a [`Transaction`] from [`Pool::begin`] or a [`PoolConnection`] from [`Pool::acquire`]
//! (`execute`, `fetch`, `fetch_all`, `fetch_one`, `fetch_optional`, `fetch_many`), and every
//! `begin`/`commit`/`rollback`, gets a CLIENT span, a child of the current context: inside an
//! annotated handler, the request's span; inside a `#[tracing::instrument]` function or a task
//! spawned with `.in_current_span()` / `.with_current_context()`, that span.
//!
//! ```ignore
//! let pool = hypertrace::sqlx::PgPool::connect(&url).await?;   // was sqlx::PgPool::connect
//! let todo: (i64, String) = sqlx::query_as("SELECT id, title FROM todos WHERE id = $1")
//!     .bind(id)
//!     .fetch_one(&pool)
//!     .await?;
//! let mut tx = pool.begin().await?;
//! sqlx::query("UPDATE todos SET done = true WHERE id = $1").bind(id).execute(&mut tx).await?;
//! tx.commit().await?;
//! ```
//!
//! A span is named `"{operation} {table}"` (`SELECT todos`) when the statement has one table,
//! else the operation (`SELECT`), else the system (`postgresql`), and holds `db.system`,
//! `db.statement` (the text as written, with its placeholders: bind values are never read),
//! `db.operation`, `db.name`, `db.user`, `net.peer.name`, `net.peer.port` (from the typed connect
//! options, never from a URL), `db.response.returned_rows`, `db.rows_affected`; on failure status
//! Error with the database's message, `db.sqlstate`, and an `exception` event.
//! `OTEL_SEMCONV_STABILITY_OPT_IN=database` switches to the stable keys (`db.system.name`,
//! `db.query.text`, `db.operation.name`, `db.namespace`, `server.address`, `server.port`,
//! `db.response.status_code`, `error.type`), `database/dup` emits both. `rustagent.sql.statement`
//! (`full`, `sanitized`, `off`) says how much of the statement is kept.
//!
//! A streaming `fetch` keeps its span open until the stream ends or is dropped. Without an enabled
//! agent, the calls go straight to sqlx.

mod described;
mod driver;
mod instrument;
mod pool;
mod semconv;
mod span;
mod statement;
mod transaction;

pub use driver::{Endpoint, InstrumentedDatabase};
pub use pool::Pool;
pub use transaction::{PoolConnection, Transaction};

/// The sqlx crate this module is built on, so an app needs no version of its own to match ours.
pub use sqlx;

/// An instrumented PostgreSQL pool (`sqlx::PgPool` with spans).
#[cfg(feature = "sqlx-postgres")]
pub type PgPool = Pool<sqlx::Postgres>;

/// An instrumented MySQL/MariaDB pool (`sqlx::MySqlPool` with spans).
#[cfg(feature = "sqlx-mysql")]
pub type MySqlPool = Pool<sqlx::MySql>;
