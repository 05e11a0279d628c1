//! What `#[hypertrace::main]` runs before the user's body, and the shutdown signal.

use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry::KeyValue;

use crate::agent::{Agent, Guard};
use crate::config::ConfigBuilder;

/// EX_CONFIG from sysexits.h: the exit status for an invalid configuration (CONTRACT §4).
pub const EXIT_CONFIG: i32 = 78;

/// The options of `#[hypertrace::main(...)]`.
pub struct MainOptions {
    pub service_name: Option<&'static str>,
    pub config_file: Option<&'static str>,
    pub tracing_subscriber: bool,
    /// The binary's cargo package name, the default service name.
    pub package_name: &'static str,
}

/// Loads the config, installs exporter, propagators and (unless turned off) the subscriber.
/// An invalid config prints one line to stderr and exits with status 78.
pub fn init_main(opts: MainOptions) -> Guard {
    match try_init(&opts) {
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
    let agent = Agent::from_config(config).map_err(|e| format!("invalid configuration: {e}"))?;
    let guard = agent.install();
    if opts.tracing_subscriber && !crate::subscriber::install() {
        eprintln!("hypertrace: warning: a tracing subscriber was already installed; add `hypertrace::otel_layer()` to it, or use `#[hypertrace::main(tracing_subscriber = false)]`");
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
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    }
}
