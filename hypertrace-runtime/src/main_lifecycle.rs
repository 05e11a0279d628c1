//! What `#[hypertrace::main]` runs: the generated `fn main` is one call to [`run_main`], so that the
//! lifecycle is ordinary Rust, tested here.
//!
//! Order: build the tokio runtime; start the agent inside it (config, exporter, propagators,
//! subscriber; an invalid config exits with status 78); start the signal watcher unless the app
//! handles SIGINT/SIGTERM itself; run `main`'s body; then drop the agent's guard, which flushes the
//! finished spans, before the runtime. That last step holds on every way out of the body: a return,
//! an `Err` return (which `main` then reports as usual), and a panic (the guard is dropped while
//! unwinding, then the panic goes on).

use std::future::Future;

use tokio::runtime::{Builder, Runtime};

use crate::init::{init_main, Flavor, MainOptions};

/// Runs `main`'s body (`main`, the future of the user's `async fn main`) with the agent around it,
/// and returns its output (`()`, a `Result`, or never for `-> !`).
pub fn run_main<F: Future>(opts: MainOptions, main: F) -> F::Output {
    let runtime = build_runtime(opts.flavor, opts.worker_threads);
    let guard = {
        let _enter = runtime.enter();
        init_main(&opts)
    };
    if opts.signal_watcher {
        crate::signal_watcher::start();
    }
    Lifecycle {
        _guard: guard,
        runtime,
    }
    .run(main)
}

fn build_runtime(flavor: Flavor, worker_threads: Option<usize>) -> Runtime {
    let mut builder = match flavor {
        Flavor::MultiThread => Builder::new_multi_thread(),
        Flavor::CurrentThread => Builder::new_current_thread(),
    };
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("hypertrace: failed to build the tokio runtime: {err}"))
}

/// The guard and the runtime, in the order they must go: struct fields are dropped in declaration
/// order, so the guard (flushing the export) always goes first, on unwinding too, while the runtime
/// that the app's spans were recorded on still exists.
struct Lifecycle<G> {
    _guard: G,
    runtime: Runtime,
}

impl<G> Lifecycle<G> {
    fn run<F: Future>(self, main: F) -> F::Output {
        let output = self.runtime.block_on(main);
        drop(self);
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records its drop in a shared log.
    struct Logs(Arc<Mutex<Vec<&'static str>>>, &'static str);
    impl Drop for Logs {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(self.1);
        }
    }

    /// The body's output, the drop order (the guard, then the tasks of the runtime as it shuts
    /// down), for a body that returns or panics.
    fn run_body(panics: bool) -> (std::thread::Result<u32>, Vec<&'static str>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let lifecycle = Lifecycle {
            _guard: Logs(log.clone(), "guard"),
            runtime: build_runtime(Flavor::CurrentThread, None),
        };
        let task_log = log.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lifecycle.run(async move {
                // A task still pending when the body ends: dropped when the runtime is.
                let held = Logs(task_log, "runtime");
                tokio::spawn(async move {
                    let _held = held;
                    std::future::pending::<()>().await;
                });
                tokio::task::yield_now().await;
                assert!(!panics, "panicked on purpose");
                41 + 1
            })
        }));
        let order = log.lock().unwrap().clone();
        (result, order)
    }

    #[test]
    fn the_guard_goes_before_the_runtime_on_return() {
        let (result, order) = run_body(false);
        assert_eq!(result.unwrap(), 42);
        assert_eq!(order, ["guard", "runtime"]);
    }

    #[test]
    fn the_guard_goes_before_the_runtime_on_panic_and_the_panic_goes_on() {
        let (result, order) = run_body(true);
        let payload = result.unwrap_err();
        assert_eq!(
            payload.downcast_ref::<&str>().copied(),
            Some("panicked on purpose")
        );
        assert_eq!(order, ["guard", "runtime"]);
    }

    #[test]
    fn builds_the_runtime_flavor_asked_for() {
        let rt = build_runtime(Flavor::CurrentThread, None);
        assert_eq!(
            rt.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::CurrentThread
        );
        let rt = build_runtime(Flavor::MultiThread, Some(2));
        assert_eq!(
            rt.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread
        );
        assert_eq!(rt.metrics().num_workers(), 2);
    }
}
