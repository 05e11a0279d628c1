//! What `#[hypertrace::main]` runs before the user's body, and the shutdown signal.

use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry::KeyValue;

use crate::agent::{Agent, Guard};
use crate::config::ConfigBuilder;

/// EX_CONFIG from sysexits.h: the exit status for an invalid configuration.
pub(crate) const EXIT_CONFIG: i32 = 78;

/// The options of `#[hypertrace::main(...)]`, as the macro resolved them.
#[derive(Clone, Debug)]
pub struct MainOptions {
    /// `service_name = "..."`: the default service name (the config file and `HT_SERVICE_NAME` win).
    pub service_name: Option<&'static str>,
    /// `config = "..."`: the agent-config file, as `HT_CONFIG_FILE`.
    pub config_file: Option<&'static str>,
    /// `tracing_subscriber = false` turns off the global subscriber the agent installs.
    pub tracing_subscriber: bool,
    /// The binary's cargo package name, the default service name.
    pub package_name: &'static str,
    /// `flavor = "..."`: the tokio runtime to build.
    pub flavor: Flavor,
    /// `worker_threads = N`, with the multi-threaded runtime only.
    pub worker_threads: Option<usize>,
    /// Whether to watch SIGINT/SIGTERM for an app that does not handle them (see `signal_watcher`):
    /// `signal_watcher = ...` when given, else `false` when `main`'s body handles signals itself.
    pub signal_watcher: bool,
    /// `filters = path`: the agent's blocking filters, built once at start.
    pub filters: Option<fn() -> crate::filter::Filters>,
}

/// The tokio runtime flavor `#[hypertrace::main]` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `flavor = "multi_thread"` (the default), as `#[tokio::main]`.
    MultiThread,
    /// `flavor = "current_thread"`: everything on the main thread.
    CurrentThread,
}

/// Loads the config, installs exporter, propagators and (unless turned off) the subscriber.
/// An invalid config prints one line to stderr and exits with status 78.
pub fn init_main(opts: &MainOptions) -> Guard {
    match try_init(opts) {
        Ok(guard) => guard,
        Err(msg) => {
            eprintln!("hypertrace: {msg}");
            std::process::exit(EXIT_CONFIG);
        }
    }
}

fn try_init(opts: &MainOptions) -> Result<Guard, String> {
    let mut builder = ConfigBuilder::new(opts.package_name);
    if let Some(name) = opts.service_name {
        builder = builder.service_name(name);
    }
    if let Some(file) = opts.config_file {
        builder = builder.config_file(file);
    }
    let (config, warnings) = builder.load().map_err(|e| e.to_string())?;
    for w in &warnings {
        eprintln!("hypertrace: warning: {w}");
    }
    let startup_span = config.enabled && config.telemetry.startup_span_enabled;
    let mut agent =
        Agent::from_config(config).map_err(|e| format!("invalid configuration: {e}"))?;
    if let Some(filters) = opts.filters {
        agent = agent.filters(&filters());
    }
    let guard = agent.install();
    if opts.tracing_subscriber {
        if crate::subscriber::install() {
            hint_on_second_subscriber();
        } else {
            eprintln!("hypertrace: warning: a tracing subscriber was already installed; add `hypertrace::otel_layer()` to it, or use `#[hypertrace::main(tracing_subscriber = false)]`");
        }
    }
    if startup_span {
        let agent = guard.agent();
        let mut span = agent.tracer.start("hypertrace.agent.startup");
        span.set_attribute(KeyValue::new(
            "hypertrace.agent.version",
            env!("CARGO_PKG_VERSION"),
        ));
        span.set_attribute(KeyValue::new(
            "hypertrace.reporting.trace_reporter_type",
            format!("{:?}", agent.config.reporting.trace_reporter_type),
        ));
        span.end();
    }
    Ok(guard)
}

/// The app's own `tracing_subscriber::fmt::init()` (or `set_global_default`), when `main`'s body
/// doesn't show it to the macro (it is in a helper function), panics with a message that names
/// neither hypertrace nor the fix; this adds the fix after that panic's usual report. Every other
/// panic is reported exactly as before.
fn hint_on_second_subscriber() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_second_subscriber_panic(payload) {
            eprintln!("hypertrace: #[hypertrace::main] had already installed the global tracing subscriber; to keep your own, use `#[hypertrace::main(tracing_subscriber = false)]` and add `hypertrace::otel_layer()` to your subscriber");
        }
    }));
}

fn is_second_subscriber_panic(message: &str) -> bool {
    message.contains("SetGlobalDefaultError")
        || message.contains("global default trace dispatcher has already been set")
}

/// Resolves on Ctrl-C or SIGTERM: pass it to axum's `with_graceful_shutdown`.
///
/// The handlers are installed when this is called, not when the future is first polled, so a
/// signal that arrives between the call and the server's first poll is not lost (nor does it kill
/// the process with the default action). Call it inside the tokio runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (int, term) = (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        );
        // While this future lives (and once it has fired), the app handles the signals itself: the
        // agent's signal watcher leaves them alone.
        let handled = crate::signal_watcher::AppHandlesSignals::new();
        async move {
            let recv = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = recv(int) => {},
                _ = recv(term) => {},
            }
            handled.fired();
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_second_subscriber_panics_only() {
        // tracing-subscriber's `init()` and tracing's `set_global_default(..).expect(..)`.
        assert!(is_second_subscriber_panic(
            "Unable to install global subscriber: SetGlobalDefaultError { _no_construct: () }"
        ));
        assert!(is_second_subscriber_panic(
            "setting default subscriber failed: a global default trace dispatcher has already been set"
        ));
        assert!(!is_second_subscriber_panic("index out of bounds"));
    }
}
