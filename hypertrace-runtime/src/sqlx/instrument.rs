//! The two calls every sqlx executor is built on, `fetch_many` (a stream) and `fetch_optional` (a
//! future), wrapped in a span; sqlx's `execute`, `fetch`, `fetch_all` and `fetch_one` go through
//! them. Without an enabled agent the inner executor's stream or future is returned as it is.
//!
//! The span starts when the call is first polled (so its parent is the context the caller awaits
//! in), and the call runs with the span's context attached, so what sqlx logs while it runs
//! belongs to the span.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream, StreamExt as _};
use opentelemetry::context::FutureExt as _;
use sqlx::{Database, Either, Execute, Executor};

use super::driver::InstrumentedDatabase;
use super::span::{Call, Meta, QuerySpan};
use crate::agent::{self, Agent};

/// The installed agent when it is enabled: the one check made per call when there is nothing to
/// record.
pub(crate) fn enabled_agent() -> Option<Arc<Agent>> {
    match agent::current() {
        Some(a) if a.config.enabled => Some(a),
        _ => None,
    }
}

type Step<DB> = Result<Either<<DB as Database>::QueryResult, <DB as Database>::Row>, sqlx::Error>;

/// `fetch_many` with a span that stays open until the stream has ended, failed, or been dropped.
pub(crate) fn fetch_many<'e, 'c: 'e, 'q: 'e, X, E>(
    meta: &Arc<Meta>,
    exec: X,
    query: E,
) -> BoxStream<'e, Step<X::Database>>
where
    X: Executor<'c>,
    X::Database: InstrumentedDatabase,
    E: 'q + Execute<'q, X::Database>,
{
    let Some(agent) = enabled_agent() else {
        return exec.fetch_many(query);
    };
    let sql = query.sql();
    Box::pin(SpanStream::<X::Database> {
        inner: exec.fetch_many(query),
        pending: Some((agent, meta.clone(), sql)),
        span: None,
    })
}

/// `fetch_optional` (and so `fetch_one`) with a span around it.
pub(crate) fn fetch_optional<'e, 'c: 'e, 'q: 'e, X, E>(
    meta: &Arc<Meta>,
    exec: X,
    query: E,
) -> BoxFuture<'e, Result<Option<<X::Database as Database>::Row>, sqlx::Error>>
where
    X: Executor<'c>,
    X::Database: InstrumentedDatabase,
    E: 'q + Execute<'q, X::Database>,
{
    let Some(agent) = enabled_agent() else {
        return exec.fetch_optional(query);
    };
    let sql = query.sql();
    let meta = meta.clone();
    let inner = exec.fetch_optional(query);
    Box::pin(async move {
        let mut span = QuerySpan::start(&agent, &meta, Call::Statement(sql));
        let res = inner.with_context(span.cx.clone()).await;
        match &res {
            Ok(row) => span.rows(u64::from(row.is_some())),
            Err(e) => span.error(e),
        }
        span.end();
        res
    })
}

/// `begin`, `commit` or `rollback` (`op`) with a span around it.
pub(crate) async fn transaction_call<T>(
    meta: &Meta,
    op: &'static str,
    call: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    let Some(agent) = enabled_agent() else {
        return call.await;
    };
    let mut span = QuerySpan::start(&agent, meta, Call::Transaction(op));
    let res = call.with_context(span.cx.clone()).await;
    if let Err(e) = &res {
        span.error(e);
    }
    span.end();
    res
}

struct SpanStream<'e, DB: InstrumentedDatabase> {
    inner: BoxStream<'e, Step<DB>>,
    /// What the span needs, until the first poll starts it.
    pending: Option<(Arc<Agent>, Arc<Meta>, &'e str)>,
    /// `None` before the first poll and after the end.
    span: Option<QuerySpan>,
}

impl<DB: InstrumentedDatabase> Stream for SpanStream<'_, DB> {
    type Item = Step<DB>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some((agent, meta, sql)) = this.pending.take() {
            this.span = Some(QuerySpan::start(&agent, &meta, Call::Statement(sql)));
        }
        let Some(span) = this.span.as_mut() else {
            return this.inner.poll_next_unpin(cx);
        };
        // Held only during this poll, never across one (the guard is not `Send`).
        let _attached = span.cx.clone().attach();
        let item = ready!(this.inner.poll_next_unpin(cx));
        match &item {
            Some(Ok(Either::Left(result))) => span.affected(DB::rows_affected(result)),
            Some(Ok(Either::Right(_))) => span.row(),
            Some(Err(e)) => {
                span.error(e);
                if let Some(s) = this.span.take() {
                    s.end();
                }
            }
            None => {
                if let Some(s) = this.span.take() {
                    s.end();
                }
            }
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// Implements `sqlx::Executor` for a wrapper: `$parts` turns `self` into the pool's [`Meta`] and
/// the wrapped sqlx executor; `fetch_many` and `fetch_optional` get spans, `prepare_with` and
/// `describe` (no statement is run) pass through.
macro_rules! instrumented_executor {
    (impl<$($lt:lifetime),*> Executor<$c:lifetime> for $ty:ty, |$s:ident| $parts:expr) => {
        impl<$($lt,)* DB> ::sqlx::Executor<$c> for $ty
        where
            DB: $crate::sqlx::InstrumentedDatabase,
            for<'x> &'x mut <DB as ::sqlx::Database>::Connection:
                ::sqlx::Executor<'x, Database = DB>,
        {
            type Database = DB;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> ::futures_util::stream::BoxStream<
                'e,
                Result<
                    ::sqlx::Either<
                        <DB as ::sqlx::Database>::QueryResult,
                        <DB as ::sqlx::Database>::Row,
                    >,
                    ::sqlx::Error,
                >,
            >
            where
                $c: 'e,
                E: 'q + ::sqlx::Execute<'q, DB>,
            {
                let $s = self;
                let (meta, exec) = $parts;
                $crate::sqlx::instrument::fetch_many(meta, exec, query)
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> ::futures_util::future::BoxFuture<
                'e,
                Result<Option<<DB as ::sqlx::Database>::Row>, ::sqlx::Error>,
            >
            where
                $c: 'e,
                E: 'q + ::sqlx::Execute<'q, DB>,
            {
                let $s = self;
                let (meta, exec) = $parts;
                $crate::sqlx::instrument::fetch_optional(meta, exec, query)
            }

            fn prepare_with<'e, 'q: 'e>(
                self,
                sql: &'q str,
                parameters: &'e [<DB as ::sqlx::Database>::TypeInfo],
            ) -> ::futures_util::future::BoxFuture<
                'e,
                Result<<DB as ::sqlx::Database>::Statement<'q>, ::sqlx::Error>,
            >
            where
                $c: 'e,
            {
                let $s = self;
                let (_, exec) = $parts;
                exec.prepare_with(sql, parameters)
            }

            fn describe<'e, 'q: 'e>(
                self,
                sql: &'q str,
            ) -> ::futures_util::future::BoxFuture<
                'e,
                Result<::sqlx::Describe<DB>, ::sqlx::Error>,
            >
            where
                $c: 'e,
            {
                let $s = self;
                let (_, exec) = $parts;
                exec.describe(sql)
            }
        }
    };
}
pub(crate) use instrumented_executor;
