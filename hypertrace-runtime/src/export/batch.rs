//! The batch span processor: a bounded queue drained by one OS thread.
//!
//! Why our own and not the SDK's `BatchSpanProcessor`: the contract (§6) wants dropped spans counted
//! and the count logged at a bounded rate, and a shutdown that gives up at a deadline even when the
//! exporter hangs. The SDK's processor logs a drop once and blocks in shutdown for as long as the
//! exporter does. Export runs on this thread with `futures_executor::block_on`, so exporters must
//! not need a reactor of their own (tonic's channel runs on the app's tokio runtime; reqwest is the
//! blocking client).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

/// How often at most the drop count is written to stderr.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct BatchSettings {
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
    pub scheduled_delay: Duration,
    pub shutdown_timeout: Duration,
}

/// Counters shared with the application (tests and the `Agent` handle read them).
#[derive(Debug, Default)]
pub struct ExportStats {
    pub queued: AtomicU64,
    pub dropped: AtomicU64,
    pub exported: AtomicU64,
    pub failed_exports: AtomicU64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<SpanData>,
    /// Flush requests waiting for the worker to empty the queue.
    flush_waiters: Vec<mpsc::Sender<()>>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    settings: BatchSettings,
    stats: Arc<ExportStats>,
    /// The drop count last written to stderr (by the worker, or by a shutdown that gave up).
    logged_drops: AtomicU64,
}

pub struct BatchProcessor {
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
    pub fn new<E: SpanExporter + 'static>(
        exporter: E,
        settings: BatchSettings,
        stats: Arc<ExportStats>,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
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
                run_worker(&worker, exporter);
                let _ = done_tx.send(());
            })
            .expect("hypertrace: cannot spawn the export thread");
        BatchProcessor {
            shared,
            done: Mutex::new(Some(done_rx)),
        }
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    // A panic while holding this lock can only come from our own code; the queue is still usable.
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

fn run_worker<E: SpanExporter>(shared: &Shared, exporter: E) {
    let settings = &shared.settings;
    let mut last_drop_log = Instant::now() - DROP_LOG_INTERVAL;
    loop {
        let (batch, waiters, shutting_down) = {
            let mut st = lock(shared);
            let deadline = Instant::now() + settings.scheduled_delay;
            while !st.shutdown
                && st.flush_waiters.is_empty()
                && st.queue.len() < settings.max_export_batch_size
            {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = shared
                    .wake
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            let n = st.queue.len().min(settings.max_export_batch_size);
            let batch: Vec<SpanData> = st.queue.drain(..n).collect();
            // Flush waiters are answered only once everything queued before them is out.
            let waiters = if st.queue.is_empty() {
                std::mem::take(&mut st.flush_waiters)
            } else {
                Vec::new()
            };
            (batch, waiters, st.shutdown && st.queue.is_empty())
        };
        if !batch.is_empty() {
            let n = batch.len() as u64;
            shared.stats.queued.fetch_sub(n, Ordering::Relaxed);
            match futures_executor::block_on(exporter.export(batch)) {
                Ok(()) => {
                    shared.stats.exported.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    shared.stats.failed_exports.fetch_add(1, Ordering::Relaxed);
                    eprintln!("hypertrace: export of {n} spans failed: {e}");
                }
            }
        }
        if (last_drop_log.elapsed() >= DROP_LOG_INTERVAL || shutting_down) && log_drops(shared) {
            last_drop_log = Instant::now();
        }
        for w in waiters {
            let _ = w.send(());
        }
        if shutting_down {
            let _ = exporter.shutdown_with_timeout(settings.shutdown_timeout);
            return;
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
    eprintln!(
        "hypertrace: export queue full (max_queue_size {}): {} spans dropped so far",
        shared.settings.max_queue_size, dropped
    );
    true
}

impl SpanProcessor for BatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let shared = &self.shared;
        let mut st = lock(shared);
        if st.shutdown || st.queue.len() >= shared.settings.max_queue_size {
            drop(st);
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        st.queue.push_back(span);
        let len = st.queue.len();
        drop(st);
        shared.stats.queued.fetch_add(1, Ordering::Relaxed);
        if len == shared.settings.max_export_batch_size {
            shared.wake.notify_one();
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
        self.shared.wake.notify_one();
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
        }
    }

    fn provider(exp: Recorder, queue: usize) -> (SdkTracerProvider, Arc<ExportStats>) {
        let stats = Arc::new(ExportStats::default());
        let p = SdkTracerProvider::builder()
            .with_span_processor(BatchProcessor::new(exp, settings(queue), stats.clone()))
            .build();
        (p, stats)
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
}
