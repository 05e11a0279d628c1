//! The SIGINT/SIGTERM watcher of `#[hypertrace::main]`, for apps that don't handle those signals.
//!
//! Such an app dies of the signal's default action, which would take the spans still queued for
//! export with it. The watcher takes over SIGINT and SIGTERM; when one arrives and the app does not
//! handle it itself, it flushes the finished spans (bounded by `rustagent.shutdown_timeout_ms`), then
//! restores the default action and raises the signal again, so the process ends exactly as it would
//! have without the agent: killed by that signal (status 130 or 143 in a shell). A second signal
//! during the flush ends the process at once.
//!
//! An app that handles the signal itself must never be cut short, so the watcher stands aside when:
//! - a [`crate::shutdown_signal`] future is alive, or has fired (counted here at run time);
//! - `main`'s body shows its own handling (`with_graceful_shutdown`, `tokio::signal`, `ctrl_c`, ...):
//!   the macro then does not start the watcher at all;
//! - `#[hypertrace::main(signal_watcher = false)]` says so.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// `shutdown_signal()` futures alive and not fired.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Set once a `shutdown_signal()` future has fired: the app is shutting down gracefully, and a
/// signal that arrives meanwhile (the same one, seen by the watcher a moment later) is the app's.
static FIRED: AtomicBool = AtomicBool::new(false);

/// Held by each `shutdown_signal()` future: while it lives, and once it has fired, the app handles
/// SIGINT/SIGTERM itself.
pub(crate) struct AppHandlesSignals {
    fired: bool,
}

impl AppHandlesSignals {
    pub(crate) fn new() -> Self {
        LIVE.fetch_add(1, Ordering::SeqCst);
        AppHandlesSignals { fired: false }
    }

    /// The signal arrived: the app now shuts down on its own (set before the future is dropped,
    /// so the watcher never sees a gap).
    pub(crate) fn fired(mut self) {
        FIRED.store(true, Ordering::SeqCst);
        self.fired = true;
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for AppHandlesSignals {
    fn drop(&mut self) {
        if !self.fired {
            LIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Whether the app handles SIGINT/SIGTERM itself, as far as the run time can tell.
pub(crate) fn app_handles_signals() -> bool {
    LIVE.load(Ordering::SeqCst) > 0 || FIRED.load(Ordering::SeqCst)
}

/// Exports every finished span the installed agent still holds, and the LOGGING reporter's output.
fn flush_finished_spans() {
    if let Some(agent) = crate::agent::current() {
        let _ = agent.tracer_provider().force_flush();
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// Starts the watcher thread. Failing to register the signals (which leaves their default action
/// in place) is reported and otherwise ignored: the app runs as it would without the watcher.
#[cfg(unix)]
pub(crate) fn start() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("hypertrace: warning: cannot watch SIGINT/SIGTERM ({err}); spans still queued when the process is killed by them are lost");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("hypertrace-signals".into())
        .spawn(move || {
            let exiting = std::sync::Arc::new(AtomicBool::new(false));
            for signal in signals.forever() {
                if exiting.load(Ordering::SeqCst) {
                    // A second signal while flushing: the user means it.
                    die_of(signal);
                }
                if app_handles_signals() {
                    continue;
                }
                exiting.store(true, Ordering::SeqCst);
                // On its own thread, so that this loop still sees a second signal.
                let _ = std::thread::Builder::new()
                    .name("hypertrace-signal-flush".into())
                    .spawn(move || {
                        flush_finished_spans();
                        die_of(signal);
                    });
            }
        });
    if let Err(err) = spawned {
        eprintln!("hypertrace: warning: cannot start the signal watcher thread ({err})");
    }
}

/// Without signals to watch (not unix), there is nothing to do.
#[cfg(not(unix))]
pub(crate) fn start() {}

/// Ends the process with the signal's default action, as if the watcher had never been there.
#[cfg(unix)]
fn die_of(signal: i32) -> ! {
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    // Only reached if the default action could not be restored: the shell's convention.
    std::process::exit(128 + signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test, as the counters are process-wide.
    #[test]
    fn shutdown_signal_futures_are_counted_until_dropped_and_fired_sticks() {
        assert!(!app_handles_signals());
        let a = AppHandlesSignals::new();
        let b = AppHandlesSignals::new();
        assert!(app_handles_signals());
        drop(a);
        assert!(app_handles_signals());
        drop(b);
        assert!(
            !app_handles_signals(),
            "dropped without firing: not handled"
        );
        AppHandlesSignals::new().fired();
        assert!(
            app_handles_signals(),
            "fired: the app is shutting down itself"
        );
    }
}
