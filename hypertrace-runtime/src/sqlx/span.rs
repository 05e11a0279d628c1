//! The CLIENT span of one database call: its parent, name and attributes when it starts, rows and
//! errors as they come, and its end (also when the call is dropped half-way).

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue, StringValue, Value};
use sqlx::error::DatabaseError;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::described::describe;
use super::driver::{Endpoint, InstrumentedDatabase};
use super::semconv::DbSemconv;
use super::statement::{sanitize_message, Dialect};
use crate::agent::Agent;
use crate::config::StatementCapture;

/// What every span of one pool shares: the database, where it is, which keys to emit. Built once
/// per pool; the attribute values are reference-counted, so a span's copy costs no string copies.
pub(crate) struct Meta {
    pub system: &'static str,
    pub dialect: Dialect,
    pub semconv: DbSemconv,
    pub endpoint: Endpoint,
    status_code: fn(&dyn DatabaseError) -> Option<String>,
    attrs: Vec<KeyValue>,
    /// The start of every operation's `db.client.operation.duration` attributes: the system and
    /// where it runs, under the stable names whatever the spans' opt-in.
    metric: Vec<KeyValue>,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("system", &self.system)
            .field("endpoint", &self.endpoint)
            .field("semconv", &self.semconv)
            .finish()
    }
}

fn shared(s: &str) -> Value {
    Value::String(StringValue::from(Arc::<str>::from(s)))
}

impl Meta {
    pub(crate) fn new<DB: InstrumentedDatabase>(endpoint: Endpoint, semconv: DbSemconv) -> Meta {
        let mut attrs = Vec::with_capacity(10);
        let ep = &endpoint;
        if semconv.old {
            attrs.push(KeyValue::new("db.system", DB::SYSTEM));
            if let Some(db) = &ep.database {
                attrs.push(KeyValue::new("db.name", shared(db)));
            }
            attrs.push(KeyValue::new("db.user", shared(&ep.user)));
            attrs.push(KeyValue::new("net.peer.name", shared(&ep.host)));
            if let Some(p) = ep.port {
                attrs.push(KeyValue::new("net.peer.port", i64::from(p)));
            }
        }
        if semconv.stable {
            attrs.push(KeyValue::new("db.system.name", DB::SYSTEM));
            if let Some(db) = &ep.database {
                attrs.push(KeyValue::new("db.namespace", shared(db)));
            }
            attrs.push(KeyValue::new("server.address", shared(&ep.host)));
            if let Some(p) = ep.port {
                attrs.push(KeyValue::new("server.port", i64::from(p)));
            }
        }
        let mut metric = Vec::with_capacity(4);
        metric.push(KeyValue::new("db.system.name", DB::SYSTEM));
        if let Some(db) = &ep.database {
            metric.push(KeyValue::new("db.namespace", shared(db)));
        }
        metric.push(KeyValue::new("server.address", shared(&ep.host)));
        if let Some(p) = ep.port {
            metric.push(KeyValue::new("server.port", i64::from(p)));
        }
        Meta {
            system: DB::SYSTEM,
            dialect: DB::DIALECT,
            semconv,
            endpoint,
            status_code: DB::status_code,
            attrs,
            metric,
        }
    }
}

/// What a span is for: a statement (its text is read for the name), or one of the transaction
/// calls, whose statement sqlx picks (`BEGIN`, or `SAVEPOINT ..` when nested).
#[derive(Clone, Copy)]
pub(crate) enum Call<'a> {
    Statement(&'a str),
    Transaction(&'static str),
}

/// The parent of a database span: the current OpenTelemetry context when it has a span (inside an
/// annotated handler; inside an entered `tracing` span too, since tracing-opentelemetry 0.34
/// activates the context of the span it enters); else the current `tracing` span's context, for a
/// subscriber whose OpenTelemetry layer does not activate contexts; else none: a new trace.
pub(crate) fn parent_context() -> Context {
    let cx = Context::current();
    if cx.has_active_span() {
        return cx;
    }
    let current = tracing::Span::current();
    if current.is_none() {
        return cx;
    }
    let tcx = current.context();
    if tcx.span().span_context().is_valid() {
        tcx
    } else {
        cx
    }
}

/// One database call's span. Ends when [`QuerySpan::end`] is called or when dropped (a future
/// cancelled or a stream dropped before its end), with the rows counted so far.
pub(crate) struct QuerySpan {
    pub cx: Context,
    semconv: DbSemconv,
    /// Error messages lose their quoted values (statement capture other than `full`).
    sanitize_messages: bool,
    status_code: fn(&dyn DatabaseError) -> Option<String>,
    counts_rows: bool,
    returned: u64,
    affected: Option<u64>,
    ended: bool,
    /// For `db.client.operation.duration`.
    started: std::time::Instant,
    /// The metric's attributes: system, namespace, server, operation, table, and the error's code.
    metric: Vec<KeyValue>,
}

impl QuerySpan {
    /// Starts the span as a child of [`parent_context`].
    pub(super) fn start(agent: &Agent, meta: &Meta, call: Call<'_>) -> QuerySpan {
        let mode = agent.config.rustagent.sql.statement;
        let sc = meta.semconv;
        let mut attrs = Vec::with_capacity(meta.attrs.len() + 6);
        attrs.extend(meta.attrs.iter().cloned());
        // Filled only when the agent has metrics.
        let with_metric = agent.metrics.is_some();
        let mut metric = Vec::new();
        if with_metric {
            metric.reserve(meta.metric.len() + 4);
            metric.extend(meta.metric.iter().cloned());
        }
        let name: Cow<'static, str> = match call {
            Call::Statement(sql) => {
                let d = describe(sql, meta.dialect, mode);
                if with_metric {
                    if let Some(op) = &d.operation {
                        metric.push(KeyValue::new("db.operation.name", op.clone()));
                    }
                    if let Some(table) = &d.table {
                        metric.push(KeyValue::new("db.collection.name", table.clone()));
                    }
                }
                push_pair(&mut attrs, sc, ("db.statement", "db.query.text"), d.text);
                push_pair(
                    &mut attrs,
                    sc,
                    ("db.operation", "db.operation.name"),
                    d.operation,
                );
                push_pair(
                    &mut attrs,
                    sc,
                    ("db.sql.table", "db.collection.name"),
                    d.table,
                );
                match d.name {
                    Some(name) => {
                        // The SDK keeps a span's name as its own string: the one copy per span.
                        let owned = Cow::Owned(name.as_str().to_owned());
                        if sc.stable {
                            attrs.push(KeyValue::new("db.query.summary", name));
                        }
                        owned
                    }
                    None => {
                        if sc.stable {
                            attrs.push(KeyValue::new("db.query.summary", meta.system));
                        }
                        Cow::Borrowed(meta.system)
                    }
                }
            }
            Call::Transaction(op) => {
                if with_metric {
                    metric.push(KeyValue::new("db.operation.name", op));
                }
                push_pair(
                    &mut attrs,
                    sc,
                    ("db.operation", "db.operation.name"),
                    Some(StringValue::from(op)),
                );
                Cow::Borrowed(op)
            }
        };
        let parent = parent_context();
        QuerySpan {
            cx: crate::span::server::start_span(
                agent,
                SpanKind::Client,
                name,
                &parent,
                attrs,
                None,
            ),
            started: std::time::Instant::now(),
            metric,
            semconv: sc,
            sanitize_messages: mode != StatementCapture::Full,
            status_code: meta.status_code,
            counts_rows: matches!(call, Call::Statement(_)),
            returned: 0,
            affected: None,
            ended: false,
        }
    }

    pub(super) fn row(&mut self) {
        self.returned += 1;
    }

    pub(super) fn rows(&mut self, n: u64) {
        self.returned += n;
    }

    pub(super) fn affected(&mut self, n: u64) {
        *self.affected.get_or_insert(0) += n;
    }

    /// Status Error with the database's message, its codes, and an `exception` event.
    pub(super) fn error(&mut self, err: &sqlx::Error) {
        let span = self.cx.span();
        let (ty, msg) = match err {
            sqlx::Error::Database(db) => {
                let mut attrs = Vec::with_capacity(3);
                let code = (self.status_code)(db.as_ref());
                if let Some(state) = db.code() {
                    attrs.push(KeyValue::new("db.sqlstate", state.into_owned()));
                }
                if let Some(c) = code.as_ref().filter(|_| !self.metric.is_empty()) {
                    self.metric
                        .push(KeyValue::new("db.response.status_code", c.clone()));
                    self.metric.push(KeyValue::new("error.type", c.clone()));
                }
                if self.semconv.stable {
                    if let Some(c) = &code {
                        attrs.push(KeyValue::new("db.response.status_code", c.clone()));
                        attrs.push(KeyValue::new("error.type", c.clone()));
                    }
                }
                span.set_attributes(attrs);
                ("sqlx::Error::Database", db.message().to_owned())
            }
            other => {
                let ty = error_type(other);
                if !self.metric.is_empty() {
                    self.metric.push(KeyValue::new("error.type", ty));
                }
                if self.semconv.stable {
                    span.set_attribute(KeyValue::new("error.type", ty));
                }
                (ty, other.to_string())
            }
        };
        let msg = if self.sanitize_messages {
            sanitize_message(&msg)
        } else {
            msg
        };
        span.add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", ty),
                KeyValue::new("exception.message", msg.clone()),
            ],
        );
        span.set_status(Status::error(msg));
    }

    /// Records the rows and ends the span.
    pub(super) fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        let span = self.cx.span();
        if self.counts_rows {
            let returned = i64::try_from(self.returned).unwrap_or(i64::MAX);
            span.set_attribute(KeyValue::new("db.response.returned_rows", returned));
            if let Some(n) = self.affected {
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                span.set_attribute(KeyValue::new("db.rows_affected", n));
            }
        }
        span.end();
        if !self.metric.is_empty() {
            crate::metrics::db_client_operation(self.started.elapsed(), &self.metric);
        }
    }
}

impl Drop for QuerySpan {
    fn drop(&mut self) {
        self.finish();
    }
}

/// An attribute under its old key, its stable key, or both, as the opt-in says.
fn push_pair(
    out: &mut Vec<KeyValue>,
    sc: DbSemconv,
    (old, stable): (&'static str, &'static str),
    value: Option<StringValue>,
) {
    let Some(v) = value else { return };
    match (sc.old, sc.stable) {
        (true, true) => {
            out.push(KeyValue::new(old, v.clone()));
            out.push(KeyValue::new(stable, v));
        }
        (true, false) => out.push(KeyValue::new(old, v)),
        (false, _) => out.push(KeyValue::new(stable, v)),
    }
}

/// `exception.type` / `error.type` of an error that did not come from the database.
fn error_type(err: &sqlx::Error) -> &'static str {
    use sqlx::Error as E;
    match err {
        E::Configuration(_) => "sqlx::Error::Configuration",
        E::Io(_) => "sqlx::Error::Io",
        E::Tls(_) => "sqlx::Error::Tls",
        E::Protocol(_) => "sqlx::Error::Protocol",
        E::RowNotFound => "sqlx::Error::RowNotFound",
        E::TypeNotFound { .. } => "sqlx::Error::TypeNotFound",
        E::ColumnIndexOutOfBounds { .. } => "sqlx::Error::ColumnIndexOutOfBounds",
        E::ColumnNotFound(_) => "sqlx::Error::ColumnNotFound",
        E::ColumnDecode { .. } => "sqlx::Error::ColumnDecode",
        E::Encode(_) => "sqlx::Error::Encode",
        E::Decode(_) => "sqlx::Error::Decode",
        E::PoolTimedOut => "sqlx::Error::PoolTimedOut",
        E::PoolClosed => "sqlx::Error::PoolClosed",
        E::WorkerCrashed => "sqlx::Error::WorkerCrashed",
        _ => "sqlx::Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// A subscriber whose OpenTelemetry layer does not activate the contexts of the spans it
    /// enters: the current OpenTelemetry context stays empty, the `tracing` span is the parent.
    #[test]
    fn parent_is_the_tracing_span_when_its_context_is_not_activated() {
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_context_activation(false);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("work");
            let _entered = span.enter();
            assert!(!Context::current().has_active_span());
            let want = span.context().span().span_context().span_id();
            assert!(want != opentelemetry::trace::SpanId::INVALID);
            assert_eq!(parent_context().span().span_context().span_id(), want);
        });
    }

    /// An attached OpenTelemetry context (an annotated handler's) is the parent, and with no
    /// context and no span there is none.
    #[test]
    fn parent_is_the_attached_context_or_none() {
        assert!(!parent_context().has_active_span());
        let provider = SdkTracerProvider::builder().build();
        let tracer = provider.tracer("test");
        let cx = Context::current_with_span(tracer.start("request"));
        let want = cx.span().span_context().span_id();
        let _attached = cx.attach();
        assert_eq!(parent_context().span().span_context().span_id(), want);
    }
}
