//! The batch span processor: a queue bounded in spans and in bytes, drained by one OS thread that
//! retries transient export failures.
//!
//! Why our own and not the SDK's `BatchSpanProcessor`: the agent promises dropped spans counted
//! and the count logged at a bounded rate, and a shutdown that gives up at a deadline even when the
//! exporter hangs. The SDK's processor logs a drop once, blocks in shutdown for as long as the
//! exporter does, bounds only the span count (a queue of large captured bodies can hold hundreds of
//! MiB) and drops a batch whose export failed. Export runs on this thread with
//! `futures_executor::block_on`, so exporters must not need a reactor of their own (tonic's channel
//! runs on the agent's export runtime; reqwest is the blocking client).
//!
//! The exporter borrows each batch ([`BatchExporter`]): the batch stays with the worker, so a retry
//! needs no copy of it, and the agent's OTLP exporters encode straight from the borrowed spans. An
//! SDK `SpanExporter` (LOGGING, Zipkin, the application's own) gets a copy per attempt ([`Owned`]).
//!
//! Body-field redaction happens here ([`BatchSettings::redaction`], `capture::deferred`): each batch
//! is redacted as it leaves the queue, before its first attempt, so no exporter sees a body that
//! was captured unredacted; a batch whose redaction panicked is dropped, not exported.
//!
//! Retries: a batch whose export failed for a transient reason ([`retry::classify`]) is tried again
//! after an exponential, jittered backoff (at least the server's `Retry-After`), for as long as the
//! queue behind it has room. Once a span had to be dropped because the queue was full, the batch is
//! given up (counted and logged) and the worker moves on to the oldest queued spans, so a long outage
//! keeps the newest spans rather than the oldest. Each attempt is bounded by the exporter's own
//! timeout (`rustagent.export_timeout`); at shutdown each batch gets one last attempt.
//!
//! Exported spans go back to the threads that end spans, to be freed there ([`State::spent`]):
//! a span is allocated where it is served, and with glibc's malloc a free on another thread takes
//! the allocating thread's arena lock, so an export thread freeing whole batches contends with the
//! serving thread's every allocation. Each `on_end` frees at most two spent spans, after it has
//! queued its own, outside the lock: the cost is spread evenly over requests, and in the usual
//! single-worker server every span is freed on the thread that allocated it. The spent batch is
//! held beyond the byte budget (it is one batch, at most a sixteenth of it), and only while
//! requests come: a worker that wakes with nothing to export frees what is left itself. With
//! `rustagent.free_spans_where_served: false` the worker frees every batch itself (better with
//! an allocator whose remote frees are cheap, such as jemalloc).
//!
//! The agent's own span records are the exception: the worker itself frees their `KeyValue`
//! attributes after export (`Record::release_attributes`). The bodies and headers they hold as
//! texts are encoded here without a `KeyValue`, so those are few: redacted bodies (allocated on
//! this thread), and what else stays a `KeyValue` in a record (empty arrays, gRPC messages).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use super::finished::{FinishedSpan, Record, Repr};
use super::retry::{self, Retry};
use super::size::finished_bytes;
use crate::capture::deferred::Redaction;

/// How often at most the drop count, and a failed export, is written to stderr.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// An exporter that borrows each batch, run on the agent's export thread behind its bounded batch
/// processor ([`Agent::with_batch_exporter`](crate::Agent::with_batch_exporter)).
///
/// Borrowing is what makes a retry free: the processor keeps the batch and hands it again, with no
/// copy. The agent's own OTLP exporters are of this kind: they encode straight from the borrowed
/// spans. An SDK `SpanExporter` takes the spans by value, so behind this processor it gets a copy
/// per attempt.
///
/// The borrowed spans are in the processor's own form ([`FinishedSpan`]): the agent's server spans
/// hold most of their attributes encoded already, and a request's headers as one packed
/// attribute. [`TraceEncoder`](crate::TraceEncoder) encodes them as they are; an exporter of its
/// own kind reads each as the SDK's `SpanData` with [`FinishedSpan::to_span_data`].
pub trait BatchExporter: Send + 'static {
    /// Exports `batch`. Runs on the export thread under `futures_executor::block_on`: the future
    /// must not need a tokio reactor of its own.
    fn export(&self, batch: &[FinishedSpan]) -> impl Future<Output = OTelSdkResult>;

    /// Called once, when the processor shuts down.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    /// The resource the spans belong to, set once before the first export.
    fn set_resource(&mut self, _resource: &opentelemetry_sdk::Resource) {}
}

/// An SDK [`SpanExporter`] (the application's own, LOGGING, Zipkin), given a copy of the batch per
/// attempt, as `SpanData` ([`FinishedSpan::to_span_data`]): such an exporter sees each attribute,
/// each header included, as a `KeyValue` of its own.
#[derive(Debug)]
pub(crate) struct Owned<E>(pub E);

impl<E: SpanExporter + 'static> BatchExporter for Owned<E> {
    fn export(&self, batch: &[FinishedSpan]) -> impl Future<Output = OTelSdkResult> {
        self.0
            .export(batch.iter().map(FinishedSpan::to_span_data).collect())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

/// The batch processor's limits.
#[derive(Clone, Debug)]
pub(crate) struct BatchSettings {
    /// Spans waiting for export at most (`rustagent.max_queue_size`).
    pub max_queue_size: usize,
    /// Spans per export at most (`rustagent.max_export_batch_size`).
    pub max_export_batch_size: usize,
    /// How long a partial batch waits before it is exported (`rustagent.scheduled_delay_ms`).
    pub scheduled_delay: Duration,
    /// How long shutdown and flush wait for the exporter (`rustagent.shutdown_timeout_ms`).
    pub shutdown_timeout: Duration,
    /// Bytes ([`span_bytes`]) the spans held may take at most, those queued and those being
    /// exported or retried (`rustagent.max_queue_bytes`). A batch takes at most a sixteenth of it,
    /// so that the copies an export makes (the retry copy, the protobuf message, its encoding)
    /// stay a few MiB beyond the budget.
    pub max_queue_bytes: usize,
    /// Where the spans go (`OTLP http://collector:4317`), for log lines.
    pub destination: String,
    /// Exported spans are freed by the threads that end spans (`rustagent.free_spans_where_served`;
    /// see the module documentation).
    pub free_where_served: bool,
    /// The body-field redaction left to this thread (`capture::deferred`), done on each batch
    /// as it leaves the queue, before any exporter sees it.
    pub redaction: Redaction,
}

impl BatchSettings {
    /// The settings of `config.rustagent`, for the reporter at `destination`.
    pub(crate) fn from_config(config: &crate::config::Config, destination: String) -> Self {
        let r = &config.rustagent;
        BatchSettings {
            max_queue_size: r.max_queue_size,
            max_export_batch_size: r.max_export_batch_size,
            scheduled_delay: r.scheduled_delay,
            shutdown_timeout: r.shutdown_timeout,
            max_queue_bytes: r.max_queue_bytes,
            destination,
            free_where_served: r.free_spans_where_served,
            redaction: Redaction::of(config),
        }
    }

    fn max_batch_bytes(&self) -> usize {
        (self.max_queue_bytes / 16).max(1)
    }

    /// Records kept for reuse at most: two batches, what is in flight while the next fills.
    fn pool_size(&self) -> usize {
        2 * self.max_export_batch_size.min(self.max_queue_size)
    }
}

/// Counters shared with the application (tests and the `Agent` handle read them).
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Spans waiting in the queue now.
    pub queued: AtomicU64,
    /// Bytes held now: the queued spans and the batch being exported or retried (not the last
    /// exported batch, which waits to be freed by the threads that end spans: at most one batch).
    pub queued_bytes: AtomicU64,
    /// Spans refused because the queue was full, in spans or in bytes, or shut down.
    pub dropped: AtomicU64,
    /// Of `dropped`, those refused by the byte budget.
    pub dropped_over_bytes: AtomicU64,
    /// Spans exported.
    pub exported: AtomicU64,
    /// Export attempts that failed (each retry counts).
    pub failed_exports: AtomicU64,
    /// Spans whose export was given up: a permanent error, a full queue during retries, shutdown,
    /// the exporter panicking, or their body-field redaction panicking.
    pub failed_spans: AtomicU64,
    /// Attempts that were retries of a failed one.
    pub retries: AtomicU64,
    /// Exports during which the exporter panicked (the worker goes on).
    pub exporter_panics: AtomicU64,
    /// Spans a collector rejected while accepting the rest of their export (an OTLP partial
    /// success); they are counted in `exported` too, as the export itself succeeded.
    pub rejected_spans: AtomicU64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(FinishedSpan, usize)>,
    /// Bytes of the spans in `queue`.
    queue_bytes: usize,
    /// Bytes of the batch the worker is exporting or retrying.
    inflight_bytes: usize,
    /// The last exported batch, freed a little at a time by `on_end` (see the module
    /// documentation). At most one batch: a new one replaces what is left of the old, which the
    /// worker then frees itself.
    spent: Vec<FinishedSpan>,
    /// Exported records of the agent's own spans, for new spans to take ([`SpanSink::record`]);
    /// at most [`BatchSettings::pool_size`], each cleared by the thread that takes it.
    // Boxed: a record moves from the pool to a span, the queue and back as one pointer.
    #[allow(clippy::vec_box)]
    pool: Vec<Box<Record>>,
    /// Flush requests waiting for the worker to empty the queue.
    flush_waiters: Vec<mpsc::Sender<()>>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Set when the processor shuts down, read without the lock by [`SpanSink::is_shut_down`].
    closed: std::sync::atomic::AtomicBool,
    wake: Condvar,
    settings: BatchSettings,
    stats: Arc<ExportStats>,
    /// The drop count last written to stderr (by the worker, or by a shutdown that gave up).
    logged_drops: AtomicU64,
}

/// The span processor: see the module documentation.
pub(crate) struct BatchProcessor {
    shared: Arc<Shared>,
    /// Receives once when the worker thread has exported its last batch.
    done: Mutex<Option<mpsc::Receiver<()>>>,
}

impl std::fmt::Debug for BatchProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProcessor")
            .field("settings", &self.shared.settings)
            .finish()
    }
}

impl BatchProcessor {
    /// Starts the export thread for an SDK `exporter`.
    #[cfg(test)]
    pub(crate) fn new<E: SpanExporter + 'static>(
        exporter: E,
        settings: BatchSettings,
        stats: Arc<ExportStats>,
    ) -> Self {
        Self::borrowing(Owned(exporter), settings, stats)
    }

    /// Starts the export thread for `exporter`, which borrows each batch.
    pub(crate) fn borrowing<E: BatchExporter>(
        exporter: E,
        settings: BatchSettings,
        stats: Arc<ExportStats>,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            closed: Default::default(),
            wake: Condvar::new(),
            settings,
            stats,
            logged_drops: AtomicU64::new(0),
        });
        let (done_tx, done_rx) = mpsc::channel();
        let worker = shared.clone();
        thread::Builder::new()
            .name("hypertrace-export".into())
            .spawn(move || {
                // What the exporter does (HTTP clients, tonic, their `tracing` spans) must not become
                // spans to export: that would feed itself. As the SDK's own processors do.
                let _suppressed = Context::enter_telemetry_suppressed_scope();
                run_worker(&worker, exporter);
                let _ = done_tx.send(());
            })
            .expect("hypertrace: cannot spawn the export thread");
        BatchProcessor {
            shared,
            done: Mutex::new(Some(done_rx)),
        }
    }

    /// The handle the agent's own spans end into.
    pub(crate) fn sink(&self) -> SpanSink {
        SpanSink {
            shared: self.shared.clone(),
        }
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    // A panic while holding this lock can only come from our own code; the queue is still usable.
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// `now + d`, or `None` when that is past what `Instant` can hold (a delay of `u64::MAX` ms).
fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// Waits on the condition variable until `deadline` (forever when `None`) or until `done` holds.
fn wait_until<'a>(
    shared: &'a Shared,
    mut st: std::sync::MutexGuard<'a, State>,
    deadline: Option<Instant>,
    done: impl Fn(&State) -> bool,
) -> std::sync::MutexGuard<'a, State> {
    while !done(&st) {
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if left.is_zero() {
            break;
        }
        st = shared
            .wake
            .wait_timeout(st, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    st
}

fn run_worker<E: BatchExporter>(shared: &Shared, exporter: E) {
    let settings = &shared.settings;
    let mut log = FailureLog::default();
    let mut last_drop_log: Option<Instant> = None;
    loop {
        let (mut batch, waiters, shutting_down) = {
            let st = lock(shared);
            let st = wait_until(shared, st, deadline_after(settings.scheduled_delay), |st| {
                st.shutdown
                    || !st.flush_waiters.is_empty()
                    || st.queue.len() >= settings.max_export_batch_size
                    || st.queue_bytes >= settings.max_batch_bytes()
            });
            let mut st = st;
            let mut bytes = 0;
            let mut n = 0;
            for (_, b) in st.queue.iter().take(settings.max_export_batch_size) {
                if n > 0 && bytes + b > settings.max_batch_bytes() {
                    break;
                }
                bytes += b;
                n += 1;
            }
            let batch: Vec<FinishedSpan> = st.queue.drain(..n).map(|(s, _)| s).collect();
            st.queue_bytes -= bytes;
            st.inflight_bytes = bytes;
            // Under the lock, as in `on_end`: the counter never goes below zero.
            shared.stats.queued.fetch_sub(n as u64, Ordering::Relaxed);
            let waiters = if st.queue.is_empty() {
                std::mem::take(&mut st.flush_waiters)
            } else {
                Vec::new()
            };
            (batch, waiters, st.shutdown && st.queue.is_empty())
        };
        if !batch.is_empty() {
            // Outside the lock; before the first attempt, so that retries send the same bytes.
            // A batch that could not be redacted is never exported.
            if redact(shared, &mut batch, &mut log) {
                export_with_retries(shared, &exporter, &batch, &mut log);
            }
            let (records, rest) = recycle(settings, batch);
            let mut st = lock(shared);
            st.inflight_bytes = 0;
            let room = settings.pool_size().saturating_sub(st.pool.len());
            let mut records = records.into_iter();
            st.pool.extend(records.by_ref().take(room));
            let rest = rest
                .into_iter()
                .chain(records.map(|r| FinishedSpan(Repr::Agent(r))))
                .collect();
            let older = if settings.free_where_served {
                std::mem::replace(&mut st.spent, rest)
            } else {
                rest
            };
            shared
                .stats
                .queued_bytes
                .store(st.queue_bytes as u64, Ordering::Relaxed);
            drop(st);
            // What the serving threads had not freed yet.
            drop(older);
        } else {
            // Nothing to export: no request is being served to free the spent spans, and none
            // would contend with this thread for the allocator now.
            let (spent, pool) = {
                let mut st = lock(shared);
                (std::mem::take(&mut st.spent), std::mem::take(&mut st.pool))
            };
            drop((spent, pool));
        }
        let log_due = last_drop_log.is_none_or(|t| t.elapsed() >= LOG_INTERVAL);
        if (log_due || shutting_down) && log_drops(shared) {
            last_drop_log = Some(Instant::now());
        }
        for w in waiters {
            let _ = w.send(());
        }
        if shutting_down {
            log.finish();
            let shut = catch_unwind(AssertUnwindSafe(|| {
                exporter.shutdown_with_timeout(settings.shutdown_timeout)
            }));
            if shut.is_err() {
                eprintln!("hypertrace: the exporter panicked while shutting down");
            }
            return;
        }
    }
}

/// Does the capture work deferred to this thread: writes the gRPC messages kept as bytes as JSON
/// (`grpc::deferred`), redacts the bodies that wait for it (`capture::deferred`), and encodes the
/// texts the agent's spans hold in their records, redacted the same way (`Record::encode_texts`).
/// `false`, with the batch counted as failed, if that panicked: the export thread goes on,
/// without exporting those spans.
fn redact(shared: &Shared, batch: &mut [FinishedSpan], log: &mut FailureLog) -> bool {
    let redaction = &shared.settings.redaction;
    let deferred = |batch: &mut [FinishedSpan]| {
        for span in batch.iter_mut() {
            let attributes = &mut span.data_mut().attributes;
            #[cfg(feature = "grpc")]
            crate::grpc::deferred::render_all(attributes);
            redaction.apply(attributes);
            span.encode_texts(redaction);
        }
    };
    match catch_unwind(AssertUnwindSafe(|| deferred(batch))) {
        Ok(()) => true,
        Err(_) => {
            let n = batch.len() as u64;
            shared.stats.failed_spans.fetch_add(n, Ordering::Relaxed);
            log.always(format!(
                "hypertrace: redacting a batch of {n} spans panicked; they are dropped, export goes on"
            ));
            false
        }
    }
}

/// Why one attempt failed.
enum Failure {
    Error(OTelSdkError),
    /// The exporter panicked; the message of the panic.
    Panicked(String),
}

fn attempt<E: BatchExporter>(exporter: &E, batch: &[FinishedSpan]) -> Result<(), Failure> {
    match catch_unwind(AssertUnwindSafe(|| {
        futures_executor::block_on(exporter.export(batch))
    })) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::Error(e)),
        Err(panic) => Err(Failure::Panicked(
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into()),
        )),
    }
}

/// Exports `batch`, retrying transient failures (see the module documentation).
fn export_with_retries<E: BatchExporter>(
    shared: &Shared,
    exporter: &E,
    batch: &[FinishedSpan],
    log: &mut FailureLog,
) {
    let stats = &shared.stats;
    let dest = &shared.settings.destination;
    let n = batch.len() as u64;
    let dropped_at_start = stats.dropped.load(Ordering::Relaxed);
    let mut tries: u32 = 0;
    loop {
        let last_chance = lock(shared).shutdown;
        if tries > 0 {
            stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        let err = match attempt(exporter, batch) {
            Ok(()) => {
                stats.exported.fetch_add(n, Ordering::Relaxed);
                if tries > 0 {
                    log.recovered(n, dest, tries);
                }
                return;
            }
            Err(Failure::Panicked(msg)) => {
                stats.failed_exports.fetch_add(1, Ordering::Relaxed);
                stats.exporter_panics.fetch_add(1, Ordering::Relaxed);
                stats.failed_spans.fetch_add(n, Ordering::Relaxed);
                log.always(format!(
                    "hypertrace: the exporter panicked exporting {n} spans to {dest} ({msg}); they are dropped, export goes on"
                ));
                return;
            }
            Err(Failure::Error(e)) => e,
        };
        stats.failed_exports.fetch_add(1, Ordering::Relaxed);
        let give_up = match retry::classify(&err) {
            Retry::No => Some("not retryable, dropped"),
            _ if last_chance => Some("shutting down, dropped"),
            _ if stats.dropped.load(Ordering::Relaxed) > dropped_at_start => {
                Some("the queue filled up meanwhile, dropped to make room")
            }
            Retry::After(hint) => {
                let wait = retry::backoff(tries, hint, retry::random());
                log.failure(format!(
                    "hypertrace: export of {n} spans to {dest} failed: {err}; retrying in {wait:?}"
                ));
                tries = tries.saturating_add(1);
                let st = lock(shared);
                drop(wait_until(shared, st, deadline_after(wait), |st| {
                    st.shutdown
                }));
                None
            }
        };
        if let Some(why) = give_up {
            stats.failed_spans.fetch_add(n, Ordering::Relaxed);
            log.failure(format!(
                "hypertrace: export of {n} spans to {dest} failed: {err}; {why}"
            ));
            return;
        }
    }
}

/// Failure lines at most once per [`LOG_INTERVAL`]; the ones held back are counted in the next.
#[derive(Default)]
struct FailureLog {
    last: Option<Instant>,
    held_back: u64,
}

impl FailureLog {
    fn failure(&mut self, line: String) {
        if self.last.is_some_and(|t| t.elapsed() < LOG_INTERVAL) {
            self.held_back += 1;
            return;
        }
        self.always(line);
    }

    fn always(&mut self, line: String) {
        if self.held_back > 0 {
            eprintln!(
                "{line} ({} more failure lines held back since the last one)",
                self.held_back
            );
        } else {
            eprintln!("{line}");
        }
        self.held_back = 0;
        self.last = Some(Instant::now());
    }

    /// After failures, the first success says so at once (the end of an outage matters).
    fn recovered(&mut self, n: u64, dest: &str, tries: u32) {
        self.always(format!(
            "hypertrace: export to {dest} works again: {n} spans sent after {tries} retries"
        ));
    }

    fn finish(&mut self) {
        if self.held_back > 0 {
            eprintln!(
                "hypertrace: {} export failure lines were held back (at most one per {LOG_INTERVAL:?})",
                self.held_back
            );
            self.held_back = 0;
        }
    }
}

/// Writes the drop count to stderr if it grew since it was last written; true if it did.
fn log_drops(shared: &Shared) -> bool {
    let dropped = shared.stats.dropped.load(Ordering::Relaxed);
    // `fetch_max` makes the worker and a shutdown that gave up never write the same count twice.
    if shared.logged_drops.fetch_max(dropped, Ordering::Relaxed) >= dropped {
        return false;
    }
    let over_bytes = shared.stats.dropped_over_bytes.load(Ordering::Relaxed);
    eprintln!(
        "hypertrace: export queue full (max_queue_size {}, max_queue_bytes {}): {} spans dropped so far ({} of them over the byte budget)",
        shared.settings.max_queue_size, shared.settings.max_queue_bytes, dropped, over_bytes
    );
    true
}

/// The records of an exported batch, to be pooled (cleared first when the worker frees spans
/// itself), apart from the rest.
#[allow(clippy::vec_box)] // the records stay boxed: see `State::pool`
fn recycle(
    settings: &BatchSettings,
    batch: Vec<FinishedSpan>,
) -> (Vec<Box<Record>>, Vec<FinishedSpan>) {
    let mut records = Vec::new();
    let mut rest = Vec::new();
    for span in batch {
        match span.0 {
            Repr::Agent(mut r) if r.keep() => {
                if settings.free_where_served {
                    r.release_attributes();
                } else {
                    r.clear();
                }
                records.push(r);
            }
            repr => rest.push(FinishedSpan(repr)),
        }
    }
    (records, rest)
}

/// Queues a finished, sampled span: the span processor's `on_end`, and [`SpanSink::end`].
fn enqueue(shared: &Shared, span: FinishedSpan) {
    let stats = &shared.stats;
    // A full queue refuses the span without sizing it or locking (a burst must stay cheap to
    // drop); `queued` is the queue's length, kept under the lock. The size is taken outside it.
    if stats.queued.load(Ordering::Relaxed) >= shared.settings.max_queue_size as u64 {
        stats.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let bytes = finished_bytes(&span);
    let mut st = lock(shared);
    if st.shutdown || st.queue.len() >= shared.settings.max_queue_size {
        drop(st);
        stats.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let held = st.queue_bytes + st.inflight_bytes;
    if held.saturating_add(bytes) > shared.settings.max_queue_bytes {
        drop(st);
        stats.dropped.fetch_add(1, Ordering::Relaxed);
        stats.dropped_over_bytes.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // Counted before the span is visible to the worker, which subtracts it under this lock.
    stats.queued.fetch_add(1, Ordering::Relaxed);
    st.queue_bytes += bytes;
    stats
        .queued_bytes
        .store((held + bytes) as u64, Ordering::Relaxed);
    st.queue.push_back((span, bytes));
    let wake = st.queue.len() == shared.settings.max_export_batch_size
        || (st.queue_bytes >= shared.settings.max_batch_bytes()
            && st.queue_bytes < shared.settings.max_batch_bytes() + bytes);
    let spent = [st.spent.pop(), st.spent.pop()];
    // The record the next span started on this thread will take, fetched under this lock.
    let next = NEXT_RECORD.with(|n| {
        let mine = n.take();
        if mine.is_none() {
            st.pool.pop()
        } else {
            mine
        }
    });
    drop(st);
    if wake {
        shared.wake.notify_one();
    }
    NEXT_RECORD.with(|n| n.set(next));
    // Freed here, on the serving thread, outside the lock (see the module documentation).
    drop(spent);
}

thread_local! {
    /// A pooled record, taken while the queue's lock was held anyway, for this thread's next span.
    static NEXT_RECORD: std::cell::Cell<Option<Box<Record>>> = const { std::cell::Cell::new(None) };
}

/// Where the agent's own spans (`span::record`) get their record and go when they end: the batch
/// processor's queue, without the SDK.
#[derive(Clone)]
pub(crate) struct SpanSink {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SpanSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpanSink")
    }
}

impl SpanSink {
    /// Whether the processor was shut down: spans started now are not recorded.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }

    /// A cleared record for a new span: an exported one when there is one (cleared here, so
    /// that what the serving thread allocated is freed where it was allocated), else a new one.
    pub(crate) fn record(&self) -> Box<Record> {
        let pooled = NEXT_RECORD
            .with(|n| n.take())
            .or_else(|| lock(&self.shared).pool.pop());
        match pooled {
            Some(mut r) => {
                r.clear();
                r
            }
            None => Record::new(),
        }
    }

    /// A record taken with [`record`](Self::record) and not used (the sampler dropped its span):
    /// kept for this thread's next span when it has none waiting, else freed.
    pub(crate) fn give_back(&self, record: Box<Record>) {
        NEXT_RECORD.with(|n| match n.take() {
            None => n.set(Some(record)),
            waiting => n.set(waiting),
        });
    }

    /// Queues an ended span's record (dropped, as the processor drops an SDK span, when it is not
    /// sampled).
    pub(crate) fn end(&self, record: Box<Record>) {
        if record.data.span_context.is_sampled() {
            enqueue(&self.shared, FinishedSpan(Repr::Agent(record)));
        }
    }
}

impl SpanProcessor for BatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            enqueue(&self.shared, span.into());
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let (tx, rx) = mpsc::channel();
        {
            let mut st = lock(&self.shared);
            if st.shutdown {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            st.flush_waiters.push(tx);
        }
        self.shared.wake.notify_one();
        rx.recv_timeout(self.shared.settings.shutdown_timeout)
            .map_err(|_| OTelSdkError::Timeout(self.shared.settings.shutdown_timeout))
    }

    // The provider passes its own default; the configured deadline is the one users set.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        let timeout = self.shared.settings.shutdown_timeout;
        {
            let mut st = lock(&self.shared);
            if st.shutdown {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            st.shutdown = true;
        }
        self.shared.closed.store(true, Ordering::Relaxed);
        // All waiters: the worker may be in its batch wait or in a retry's backoff.
        self.shared.wake.notify_all();
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner()).take();
        match done.map(|rx| rx.recv_timeout(timeout)) {
            Some(Ok(())) | Some(Err(mpsc::RecvTimeoutError::Disconnected)) | None => Ok(()),
            Some(Err(mpsc::RecvTimeoutError::Timeout)) => {
                let left = lock(&self.shared).queue.len();
                eprintln!("hypertrace: shutdown deadline of {timeout:?} passed with the exporter still busy; {left} queued spans not sent");
                // The worker is stuck in the export and will not get to write the final count.
                log_drops(&self.shared);
                Err(OTelSdkError::Timeout(timeout))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use std::sync::atomic::AtomicBool;

    #[derive(Debug, Clone, Default)]
    struct Recorder {
        spans: Arc<Mutex<Vec<String>>>,
        hang: Arc<AtomicBool>,
    }
    impl SpanExporter for Recorder {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            while self.hang.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(5));
            }
            self.spans
                .lock()
                .unwrap()
                .extend(batch.into_iter().map(|s| s.name.into_owned()));
            Ok(())
        }
    }

    fn settings(queue: usize) -> BatchSettings {
        BatchSettings {
            max_queue_size: queue,
            max_export_batch_size: 4,
            scheduled_delay: Duration::from_secs(60),
            shutdown_timeout: Duration::from_millis(300),
            max_queue_bytes: usize::MAX,
            destination: "test".into(),
            free_where_served: true,
            redaction: Redaction::of(&crate::config::Config::defaults("test")),
        }
    }

    fn provider(exp: Recorder, queue: usize) -> (SdkTracerProvider, Arc<ExportStats>) {
        let stats = Arc::new(ExportStats::default());
        let p = SdkTracerProvider::builder()
            .with_span_processor(BatchProcessor::new(exp, settings(queue), stats.clone()))
            .build();
        (p, stats)
    }

    /// Waits, up to 5 s, for `done` to hold; fails saying `what` did not happen.
    fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// A sampled span holding a clone of `tag`: `Arc::strong_count(tag)` counts those alive.
    fn tagged(tag: &Arc<str>) -> SpanData {
        use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId};
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1),
                SpanId::from(1),
                TraceFlags::SAMPLED,
                false,
                Default::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "GET /x".into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: vec![opentelemetry::KeyValue::new(
                "k",
                opentelemetry::Value::from(tag.clone()),
            )],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[test]
    fn exported_spans_are_freed_by_later_span_ends_then_by_an_idle_worker() {
        let exp = Recorder::default();
        let mut s = settings(100);
        s.scheduled_delay = Duration::from_millis(100);
        let p = BatchProcessor::new(exp.clone(), s, Arc::default());
        let tag: Arc<str> = Arc::from("tag");
        // A full batch: the worker exports it, then keeps it for the span ends to free.
        for _ in 0..4 {
            p.on_end(tagged(&tag));
        }
        eventually("the batch was not exported", || {
            lock(&p.shared).spent.len() >= 4
        });
        assert_eq!(exp.spans.lock().unwrap().len(), 4);
        assert_eq!(Arc::strong_count(&tag), 5, "the worker freed none of them");
        // Each span end frees two of them, on the calling thread, before it returns.
        let other: Arc<str> = Arc::from("other");
        p.on_end(tagged(&other));
        assert_eq!(Arc::strong_count(&tag), 3);
        p.on_end(tagged(&other));
        assert_eq!(Arc::strong_count(&tag), 1);
        // Those two are exported at the scheduled delay; with no span ending after that, the
        // worker's next wake-up, with nothing to export, frees them itself.
        eventually("the idle worker kept the spent spans", || {
            Arc::strong_count(&other) == 1
        });
        assert_eq!(exp.spans.lock().unwrap().len(), 6);
        p.shutdown_with_timeout(Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn the_worker_frees_exported_spans_itself_when_told_to() {
        let exp = Recorder::default();
        let mut s = settings(100);
        s.free_where_served = false;
        let p = BatchProcessor::new(exp.clone(), s, Arc::default());
        let tag: Arc<str> = Arc::from("tag");
        for _ in 0..4 {
            p.on_end(tagged(&tag));
        }
        eventually("the worker kept the exported spans", || {
            Arc::strong_count(&tag) == 1
        });
        assert_eq!(exp.spans.lock().unwrap().len(), 4);
        assert!(lock(&p.shared).spent.is_empty());
        p.shutdown_with_timeout(Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn shutdown_flushes_everything_queued() {
        let exp = Recorder::default();
        let (p, stats) = provider(exp.clone(), 100);
        let t = p.tracer("t");
        for i in 0..10 {
            t.start(format!("s{i}"));
        }
        p.shutdown().unwrap();
        assert_eq!(exp.spans.lock().unwrap().len(), 10);
        assert_eq!(stats.exported.load(Ordering::Relaxed), 10);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let exp = Recorder::default();
        exp.hang.store(true, Ordering::Relaxed);
        let (p, stats) = provider(exp.clone(), 8);
        let t = p.tracer("t");
        for i in 0..100 {
            t.start(format!("s{i}"));
        }
        // The worker may hold one batch (4) in its hung export; the rest beyond the queue is dropped.
        let dropped = stats.dropped.load(Ordering::Relaxed);
        assert!((88..=92).contains(&dropped), "dropped {dropped}");
        exp.hang.store(false, Ordering::Relaxed);
        p.shutdown().unwrap();
        assert_eq!(exp.spans.lock().unwrap().len() as u64 + dropped, 100);
    }

    #[test]
    fn shutdown_gives_up_at_the_deadline_when_export_hangs() {
        let exp = Recorder::default();
        exp.hang.store(true, Ordering::Relaxed);
        let (p, _) = provider(exp.clone(), 8);
        p.tracer("t").start("x");
        let start = Instant::now();
        assert!(p.shutdown().is_err());
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
        exp.hang.store(false, Ordering::Relaxed);
    }

    #[test]
    fn force_flush_waits_for_export() {
        let exp = Recorder::default();
        let (p, _) = provider(exp.clone(), 100);
        p.tracer("t").start("a");
        p.force_flush().unwrap();
        assert_eq!(*exp.spans.lock().unwrap(), vec!["a".to_string()]);
        p.shutdown().unwrap();
    }

    fn with(
        exp: impl SpanExporter + 'static,
        edit: impl FnOnce(&mut BatchSettings),
    ) -> (SdkTracerProvider, Arc<ExportStats>) {
        let stats = Arc::new(ExportStats::default());
        let mut s = settings(1000);
        edit(&mut s);
        let p = SdkTracerProvider::builder()
            .with_span_processor(BatchProcessor::new(exp, s, stats.clone()))
            .build();
        (p, stats)
    }

    fn load(stats: &ExportStats, f: fn(&ExportStats) -> &AtomicU64) -> u64 {
        f(stats).load(Ordering::Relaxed)
    }

    /// Fails the first `fail` attempts with `error`, then records.
    #[derive(Debug, Clone)]
    struct Flaky {
        fail: Arc<AtomicU64>,
        error: &'static str,
        attempts: Arc<AtomicU64>,
        spans: Arc<Mutex<Vec<String>>>,
    }
    impl Flaky {
        fn new(fail: u64, error: &'static str) -> Self {
            Flaky {
                fail: Arc::new(AtomicU64::new(fail)),
                error,
                attempts: Arc::default(),
                spans: Arc::default(),
            }
        }
    }
    impl SpanExporter for Flaky {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            if self
                .fail
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(OTelSdkError::InternalFailure(self.error.into()));
            }
            self.spans
                .lock()
                .unwrap()
                .extend(batch.into_iter().map(|s| s.name.into_owned()));
            Ok(())
        }
    }

    #[test]
    fn transient_failures_are_retried_until_the_batch_is_delivered() {
        let exp = Flaky::new(4, "HTTP export failed with status code: 503");
        let (p, stats) = with(exp.clone(), |s| {
            s.shutdown_timeout = Duration::from_secs(10)
        });
        let t = p.tracer("t");
        for i in 0..3 {
            t.start(format!("s{i}"));
        }
        let start = Instant::now();
        p.force_flush().unwrap();
        // 4 failures, then the backoff waits (50–100, 100–200, 200–400, 400–800 ms).
        assert!(
            start.elapsed() >= Duration::from_millis(750),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(*exp.spans.lock().unwrap(), ["s0", "s1", "s2"]);
        assert_eq!(exp.attempts.load(Ordering::Relaxed), 5);
        assert_eq!(load(&stats, |s| &s.retries), 4);
        assert_eq!(load(&stats, |s| &s.failed_exports), 4);
        assert_eq!(load(&stats, |s| &s.failed_spans), 0);
        assert_eq!(load(&stats, |s| &s.exported), 3);
        p.shutdown().unwrap();
    }

    #[test]
    fn permanent_failures_are_dropped_and_counted_at_once() {
        let exp = Flaky::new(1, "HTTP export failed with status code: 400");
        let (p, stats) = with(exp.clone(), |_| {});
        p.tracer("t").start("bad");
        p.force_flush().unwrap();
        p.tracer("t").start("good");
        p.force_flush().unwrap();
        assert_eq!(exp.attempts.load(Ordering::Relaxed), 2);
        assert_eq!(*exp.spans.lock().unwrap(), ["good"]);
        assert_eq!(load(&stats, |s| &s.failed_spans), 1);
        assert_eq!(load(&stats, |s| &s.retries), 0);
        p.shutdown().unwrap();
    }

    #[test]
    fn retrying_stops_when_the_queue_fills_and_keeps_the_newest() {
        let exp = Flaky::new(u64::MAX, "gRPC code: Unavailable");
        let (p, stats) = with(exp.clone(), |s| s.max_queue_size = 8);
        let t = p.tracer("t");
        for i in 0..4 {
            t.start(format!("old{i}"));
        }
        // The worker takes the full batch and keeps retrying it while the queue has room.
        assert!(wait_for(|| exp.attempts.load(Ordering::Relaxed) >= 2));
        assert_eq!(load(&stats, |s| &s.failed_spans), 0);
        for i in 0..9 {
            t.start(format!("new{i}"));
        }
        // The ninth new span found the queue full: the retried batch is given up.
        assert!(wait_for(|| load(&stats, |s| &s.failed_spans) >= 4));
        assert_eq!(load(&stats, |s| &s.dropped), 1);
        exp.fail.store(0, Ordering::Relaxed);
        p.force_flush().unwrap();
        let got = exp.spans.lock().unwrap().clone();
        assert_eq!(got, (0..8).map(|i| format!("new{i}")).collect::<Vec<_>>());
        p.shutdown().unwrap();
    }

    #[test]
    fn shutdown_ends_a_retry_with_one_last_attempt() {
        let exp = Flaky::new(u64::MAX, "HTTP export failed: network error");
        let (p, stats) = with(exp.clone(), |_| {});
        p.tracer("t").start("a");
        let _ = p.force_flush();
        let start = Instant::now();
        p.shutdown().unwrap();
        assert!(
            start.elapsed() < Duration::from_millis(250),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(load(&stats, |s| &s.failed_spans), 1);
        assert_eq!(load(&stats, |s| &s.exported), 0);
    }

    fn wait_for(f: impl Fn() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if f() {
                return true;
            }
            thread::sleep(Duration::from_millis(2));
        }
        false
    }

    /// Panics on spans named "boom".
    #[derive(Debug, Clone, Default)]
    struct Panicky(Recorder);
    impl SpanExporter for Panicky {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            if batch.iter().any(|s| s.name == "boom") {
                panic!("exporter bug");
            }
            self.0.export(batch).await
        }
    }

    #[test]
    fn a_panicking_exporter_loses_its_batch_not_the_pipeline() {
        let exp = Panicky::default();
        // Printing the panic (and its backtrace, under RUST_BACKTRACE) takes a while in debug.
        let (p, stats) = with(exp.clone(), |s| {
            s.shutdown_timeout = Duration::from_secs(30)
        });
        let t = p.tracer("t");
        t.start("boom");
        p.force_flush().unwrap();
        t.start("after");
        p.force_flush().unwrap();
        assert_eq!(*exp.0.spans.lock().unwrap(), ["after"]);
        assert_eq!(load(&stats, |s| &s.exporter_panics), 1);
        assert_eq!(load(&stats, |s| &s.failed_spans), 1);
        assert_eq!(load(&stats, |s| &s.exported), 1);
        p.shutdown().unwrap();
    }

    /// A span whose JSON request body waits for the export thread's redaction.
    fn span_with_marked_body(t: &opentelemetry_sdk::trace::SdkTracer, name: &'static str) {
        use opentelemetry::trace::Span as _;
        let mut s = t.start(name);
        let key = crate::capture::deferred::marked_key(
            &opentelemetry::Key::from_static_str("http.request.body"),
            crate::capture::redact::Syntax::Json,
        );
        s.set_attribute(opentelemetry::KeyValue::new(
            key,
            r#"{"token":"s3cr3t","a":1}"#,
        ));
    }

    /// A span's attributes as (key, value) text.
    type Attrs = Vec<(String, String)>;

    #[derive(Debug, Clone, Default)]
    struct Attributes(Arc<Mutex<Vec<Attrs>>>);
    impl SpanExporter for Attributes {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let spans = batch.iter().map(|s| {
                s.attributes
                    .iter()
                    .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                    .collect()
            });
            self.0.lock().unwrap().extend(spans);
            Ok(())
        }
    }

    #[test]
    fn bodies_are_redacted_before_the_exporter_sees_them() {
        let exp = Attributes::default();
        let (p, _) = with(exp.clone(), |_| {});
        span_with_marked_body(&p.tracer("t"), "a");
        p.force_flush().unwrap();
        let want = vec![(
            "http.request.body".to_string(),
            r#"{"token":"[REDACTED]","a":1}"#.to_string(),
        )];
        assert_eq!(*exp.0.lock().unwrap(), [want]);
        p.shutdown().unwrap();
    }

    #[test]
    fn a_batch_whose_redaction_panics_is_never_exported() {
        let exp = Recorder::default();
        let (p, stats) = with(exp.clone(), |s| {
            s.redaction.panics = true;
            s.shutdown_timeout = Duration::from_secs(30);
        });
        span_with_marked_body(&p.tracer("t"), "secret");
        p.force_flush().unwrap();
        assert!(exp.spans.lock().unwrap().is_empty());
        assert_eq!(load(&stats, |s| &s.failed_spans), 1);
        assert_eq!(load(&stats, |s| &s.exported), 0);
        p.shutdown().unwrap();
    }

    fn big_span(t: &opentelemetry_sdk::trace::SdkTracer, name: String, body: usize) {
        use opentelemetry::trace::Span as _;
        let mut s = t.start(name);
        s.set_attribute(opentelemetry::KeyValue::new(
            "http.request.body",
            "x".repeat(body),
        ));
    }

    #[test]
    fn the_byte_budget_drops_and_counts_and_frees_on_export() {
        let exp = Recorder::default();
        exp.hang.store(true, Ordering::Relaxed);
        let (p, stats) = with(exp.clone(), |s| {
            s.max_queue_bytes = 1 << 20;
            s.max_export_batch_size = 1000;
        });
        let t = p.tracer("t");
        for i in 0..40 {
            big_span(&t, format!("s{i}"), 100_000);
        }
        // ~100 KiB each: 10 fit in 1 MiB (queued or in the hung export), 30 are dropped.
        let dropped = load(&stats, |s| &s.dropped);
        assert_eq!(dropped, 30);
        assert_eq!(load(&stats, |s| &s.dropped_over_bytes), 30);
        let held = load(&stats, |s| &s.queued_bytes);
        assert!((1_000_000..=1 << 20).contains(&held), "held {held}");
        exp.hang.store(false, Ordering::Relaxed);
        p.force_flush().unwrap();
        assert_eq!(exp.spans.lock().unwrap().len(), 10);
        assert_eq!(load(&stats, |s| &s.queued_bytes), 0);
        // Room again once exported.
        big_span(&t, "later".into(), 100_000);
        p.force_flush().unwrap();
        assert_eq!(exp.spans.lock().unwrap().len(), 11);
        p.shutdown().unwrap();
    }

    #[test]
    fn queued_never_dips_below_zero_or_above_the_queue() {
        let exp = Recorder::default();
        let (p, stats) = with(exp.clone(), |s| {
            s.max_queue_size = 64;
            s.max_export_batch_size = 1;
            s.scheduled_delay = Duration::from_micros(1);
        });
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (stats, stop) = (stats.clone(), stop.clone());
            thread::spawn(move || {
                let mut max = 0;
                while !stop.load(Ordering::Relaxed) {
                    max = max.max(stats.queued.load(Ordering::Relaxed));
                }
                max
            })
        };
        thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    let t = p.tracer("t");
                    for _ in 0..100_000 {
                        t.start("s");
                    }
                });
            }
        });
        stop.store(true, Ordering::Relaxed);
        let max = watcher.join().unwrap();
        assert!(max <= 64, "queued reached {max} (a wrap below zero)");
        p.shutdown().unwrap();
        assert_eq!(load(&stats, |s| &s.queued), 0);
    }

    #[test]
    fn largest_delays_do_not_overflow_the_clock() {
        let exp = Recorder::default();
        let (p, _) = with(exp.clone(), |s| s.scheduled_delay = Duration::MAX);
        p.tracer("t").start("a");
        p.force_flush().unwrap();
        assert_eq!(exp.spans.lock().unwrap().len(), 1);
        p.shutdown().unwrap();
    }

    /// Starts a span of the same provider from inside each export, as an instrumented HTTP client
    /// under the exporter would.
    #[derive(Debug, Clone, Default)]
    struct SelfTracing {
        tracer: Arc<Mutex<Option<opentelemetry_sdk::trace::SdkTracer>>>,
        inner: Recorder,
    }
    impl SpanExporter for SelfTracing {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            if let Some(t) = self.tracer.lock().unwrap().as_ref() {
                t.start("from-the-exporter");
            }
            self.inner.export(batch).await
        }
    }

    #[test]
    fn the_export_thread_does_not_trace_itself() {
        let exp = SelfTracing::default();
        let (p, _) = with(exp.clone(), |_| {});
        *exp.tracer.lock().unwrap() = Some(p.tracer("t"));
        p.tracer("t").start("app");
        p.force_flush().unwrap();
        p.force_flush().unwrap();
        p.tracer("t").start("app2");
        p.force_flush().unwrap();
        assert_eq!(*exp.inner.spans.lock().unwrap(), ["app", "app2"]);
        p.shutdown().unwrap();
    }
}
