//! The instrumented pool: a `sqlx::Pool` plus what its spans share.

use std::sync::Arc;

use sqlx::pool::PoolOptions;
use sqlx::{ConnectOptions, Connection};

use super::driver::InstrumentedDatabase;
use super::instrument::{instrumented_executor, transaction_call};
use super::semconv::{self, DbSemconv};
use super::span::Meta;
use super::{PoolConnection, Transaction};

/// A `sqlx::Pool` whose queries get CLIENT spans. Cheap to clone (two `Arc`s), like the sqlx pool;
/// use `&pool` wherever sqlx takes an executor (`query(..).fetch_all(&pool)`).
///
/// Build one with [`Pool::connect`] / [`Pool::connect_with`] or wrap an existing pool with
/// [`Pool::from`]. The sqlx pool's other methods (`close`, `size`, `options`, ...) are reached
/// through `Deref`; note that `&*pool` is the bare sqlx pool, whose queries have no spans.
pub struct Pool<DB: InstrumentedDatabase> {
    inner: sqlx::Pool<DB>,
    meta: Arc<Meta>,
}

impl<DB: InstrumentedDatabase> Clone for Pool<DB> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
            meta: self.meta.clone(),
        }
    }
}

// The connection details only (the password is not even read), never the connect options.
impl<DB: InstrumentedDatabase> std::fmt::Debug for Pool<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("hypertrace::sqlx::Pool")
            .field("system", &self.meta.system)
            .field("endpoint", &self.meta.endpoint)
            .field("size", &self.inner.size())
            .field("is_closed", &self.inner.is_closed())
            .finish()
    }
}

impl<DB: InstrumentedDatabase> From<sqlx::Pool<DB>> for Pool<DB> {
    /// Wraps `pool`. The connection details for the spans are read from its connect options now;
    /// `OTEL_SEMCONV_STABILITY_OPT_IN` is read now too.
    fn from(pool: sqlx::Pool<DB>) -> Self {
        Pool::with_semconv(pool, semconv::current())
    }
}

impl<DB: InstrumentedDatabase> std::ops::Deref for Pool<DB> {
    type Target = sqlx::Pool<DB>;
    fn deref(&self) -> &sqlx::Pool<DB> {
        &self.inner
    }
}

impl<DB: InstrumentedDatabase> Pool<DB> {
    fn with_semconv(pool: sqlx::Pool<DB>, semconv: DbSemconv) -> Self {
        let endpoint = DB::endpoint(&pool.connect_options());
        Pool {
            meta: Arc::new(Meta::new::<DB>(endpoint, semconv)),
            inner: pool,
        }
    }

    /// `sqlx::Pool::connect(url)`, instrumented. The URL is parsed by sqlx only; the spans read
    /// the parsed, typed options.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        Ok(sqlx::Pool::<DB>::connect(url).await?.into())
    }

    /// `sqlx::Pool::connect_with(options)`, instrumented.
    pub async fn connect_with(
        options: <DB::Connection as Connection>::Options,
    ) -> Result<Self, sqlx::Error> {
        Ok(sqlx::Pool::<DB>::connect_with(options).await?.into())
    }

    /// `pool_options.connect_with(options)` (`PgPoolOptions::new().max_connections(5)`), instrumented.
    pub async fn connect_with_pool_options(
        pool_options: PoolOptions<DB>,
        options: <DB::Connection as Connection>::Options,
    ) -> Result<Self, sqlx::Error>
    where
        <DB::Connection as Connection>::Options: ConnectOptions,
    {
        Ok(pool_options.connect_with(options).await?.into())
    }

    /// Overrides what `OTEL_SEMCONV_STABILITY_OPT_IN` said for this pool's spans: `"database"`
    /// (stable keys), `"database/dup"` (both), or `None` (the keys the Hypertrace backend reads).
    pub fn with_semconv_opt_in(self, value: Option<&str>) -> Self {
        Pool::with_semconv(self.inner, semconv::parse(value))
    }

    /// The sqlx pool inside. Queries made on it directly have no spans.
    pub fn inner(&self) -> &sqlx::Pool<DB> {
        &self.inner
    }

    /// Unwraps the sqlx pool.
    pub fn into_inner(self) -> sqlx::Pool<DB> {
        self.inner
    }

    /// Starts a transaction on a connection from the pool, with a `BEGIN` span. The statements run
    /// through `&mut tx` get spans; `tx.commit()` and `tx.rollback()` too.
    pub async fn begin(&self) -> Result<Transaction<'static, DB>, sqlx::Error> {
        let tx = transaction_call(&self.meta, "BEGIN", self.inner.begin()).await?;
        Ok(Transaction::new(tx, self.meta.clone()))
    }

    /// A connection from the pool, for several statements on one session. No span of its own (the
    /// wait for a connection is part of the first statement's span only when run on the pool).
    pub async fn acquire(&self) -> Result<PoolConnection<DB>, sqlx::Error> {
        let conn = self.inner.acquire().await?;
        Ok(PoolConnection::new(conn, self.meta.clone()))
    }
}

instrumented_executor!(impl<'p> Executor<'p> for &'p Pool<DB>, |p| (&p.meta, &p.inner));
