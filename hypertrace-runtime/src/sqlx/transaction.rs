//! A transaction and a pooled connection from an instrumented [`Pool`](super::Pool): executors
//! like the pool, with spans for `begin`, `commit` and `rollback`.
//!
//! Neither dereferences to the sqlx connection: `&mut *tx` (the sqlx idiom) does not compile, so
//! no statement slips past the spans unnoticed; pass `&mut tx` instead.

use std::sync::Arc;

use sqlx::Connection;

use super::driver::InstrumentedDatabase;
use super::instrument::{instrumented_executor, transaction_call};
use super::span::Meta;

/// A transaction (or a savepoint, when begun inside another) whose statements get spans: run them
/// with `&mut tx`. Dropped without [`commit`](Transaction::commit), it is rolled back, as in sqlx.
pub struct Transaction<'c, DB: InstrumentedDatabase> {
    inner: sqlx::Transaction<'c, DB>,
    meta: Arc<Meta>,
}

impl<DB: InstrumentedDatabase> std::fmt::Debug for Transaction<'_, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("hypertrace::sqlx::Transaction")
            .field("system", &self.meta.system)
            .finish_non_exhaustive()
    }
}

impl<'c, DB: InstrumentedDatabase> Transaction<'c, DB> {
    pub(crate) fn new(inner: sqlx::Transaction<'c, DB>, meta: Arc<Meta>) -> Self {
        Transaction { inner, meta }
    }

    /// Commits, with a `COMMIT` span.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        transaction_call(&self.meta, "COMMIT", self.inner.commit()).await
    }

    /// Rolls back, with a `ROLLBACK` span.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        transaction_call(&self.meta, "ROLLBACK", self.inner.rollback()).await
    }

    /// A savepoint inside this transaction (sqlx's nested transaction), with a `BEGIN` span.
    pub async fn begin(&mut self) -> Result<Transaction<'_, DB>, sqlx::Error> {
        let meta = self.meta.clone();
        let tx = transaction_call(&meta, "BEGIN", self.inner.begin()).await?;
        Ok(Transaction::new(tx, meta))
    }

    /// The sqlx transaction inside, for what this wrapper does not offer. Statements run on it
    /// directly have no spans.
    pub fn inner_mut(&mut self) -> &mut sqlx::Transaction<'c, DB> {
        &mut self.inner
    }
}

instrumented_executor!(impl<'t, 'c> Executor<'t> for &'t mut Transaction<'c, DB>, |t| (&t.meta, &mut *t.inner));

/// A connection taken from an instrumented pool ([`Pool::acquire`](super::Pool::acquire)), returned
/// to it when dropped. Statements run with `&mut conn` get spans.
pub struct PoolConnection<DB: InstrumentedDatabase> {
    inner: sqlx::pool::PoolConnection<DB>,
    meta: Arc<Meta>,
}

impl<DB: InstrumentedDatabase> std::fmt::Debug for PoolConnection<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("hypertrace::sqlx::PoolConnection")
            .field("system", &self.meta.system)
            .finish_non_exhaustive()
    }
}

impl<DB: InstrumentedDatabase> PoolConnection<DB> {
    pub(crate) fn new(inner: sqlx::pool::PoolConnection<DB>, meta: Arc<Meta>) -> Self {
        PoolConnection { inner, meta }
    }

    /// Starts a transaction on this connection, with a `BEGIN` span.
    pub async fn begin(&mut self) -> Result<Transaction<'_, DB>, sqlx::Error> {
        let meta = self.meta.clone();
        let tx = transaction_call(&meta, "BEGIN", self.inner.begin()).await?;
        Ok(Transaction::new(tx, meta))
    }

    /// The sqlx connection inside. Statements run on it directly have no spans.
    pub fn inner_mut(&mut self) -> &mut sqlx::pool::PoolConnection<DB> {
        &mut self.inner
    }
}

instrumented_executor!(impl<'c> Executor<'c> for &'c mut PoolConnection<DB>, |c| (&c.meta, &mut *c.inner));
