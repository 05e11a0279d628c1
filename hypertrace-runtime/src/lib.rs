//! Runtime of the hypertrace agent. Users depend on the `hypertrace` facade, which re-exports what
//! they name from here.
//!
//! Where things live, in the order their dependencies run (each module uses only those above it):
//! - `config/`: the agent-config model and its sources (file, `HT_*`/`OTEL_*` variables, code).
//! - `capture/`: pure capture rules: headers, bodies, content types, and the per-request
//!   [`CapturePolicy`](capture::CapturePolicy).
//! - `export/`: exporters (OTLP gRPC/HTTP, Zipkin, logging), the batch processor, the resource.
//! - `propagation.rs`: W3C trace context and B3 propagators per `propagation_formats`.
//! - `agent.rs`: the installed agent (config, tracer, propagator, pipeline), swappable.
//! - `span/`: the span lifecycle every entry point shares (server phases, body tee, exceptions).
//! - `http/`: the axum/tower glue for incoming requests: layer, response future, handler entry,
//!   HTTP attributes and failure rule.
//! - `client/` (features `reqwest`, `reqwest012`): CLIENT spans for outgoing reqwest calls (0.13, 0.12),
//!   same capture rules.
//! - `grpc/` (feature `grpc`): SERVER/CLIENT spans for tonic calls: metadata, status, messages.
//! - `sqlx/` (features `sqlx-postgres`, `sqlx-mysql`): CLIENT spans for sqlx queries.
//! - `subscriber.rs`: the tracing subscriber `#[hypertrace::main]` installs, and `otel_layer`.
//! - `init.rs`: what `#[hypertrace::main]` runs at start and at exit.
//! - `main_lifecycle.rs`: the generated `main` in one call: runtime, agent, body, flush, in order.
//! - `signal_watcher.rs`: SIGINT/SIGTERM for apps that don't handle them: flush, then die of it.
//! - `filter/`: blocking filters: the trait, running them (first block wins, failures contained),
//!   the body prefix they read, and their HTTP and gRPC glue.
//! - `metrics/`: request-duration histograms and the agent's own and the process's metrics,
//!   exported by `reporting.metric_reporter_type` (OTLP, Prometheus, logging).
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod agent;
pub mod capture;
#[cfg(any(feature = "reqwest", feature = "reqwest012"))]
pub mod client;
pub mod config;
mod export;
pub mod filter;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod http;
mod init;
mod macro_checks;
mod main_lifecycle;
pub mod metrics;
pub mod propagation;
mod signal_watcher;
pub mod span;
#[cfg(any(feature = "sqlx-postgres", feature = "sqlx-mysql"))]
pub mod sqlx;
mod subscriber;

pub use agent::{current as current_agent, Agent, Guard};
pub use config::{Config, ConfigBuilder, ConfigError};
pub use export::encode::{Encodable, TraceEncoder};
pub use export::{BatchExporter, ExportError, ExportStats, FinishedSpan};
pub use filter::{Block, Decision, Filter, FilterRequest, Filters, Protocol};
pub use http::layer::{layer, HypertraceLayer};
pub use init::shutdown_signal;
pub use subscriber::otel_layer;

/// Used by the code that the macros generate; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::http::handler::{run_handler, HandlerOptions};
    pub use crate::init::{init_main, Flavor, MainOptions};
    pub use crate::macro_checks::{assert_handler_struct, HandlerStruct};
    pub use crate::main_lifecycle::run_main;
    pub use axum;
    pub use tokio;
}
