//! Runtime of the hypertrace agent. Users depend on the `hypertrace` facade, which re-exports this.
//!
//! Where things live:
//! - `config/`: the agent-config model and its sources (file, `HT_*`/`OTEL_*` variables, code).
//! - `export/`: exporters (OTLP gRPC/HTTP, Zipkin, logging), the batch processor, the resource.
//! - `propagation.rs`: W3C trace context and B3 propagators per `propagation_formats`.
//! - `capture/`: pure capture rules: headers (§3.4) and bodies (§3.5).
//! - `http/`: the axum/tower glue: the server span, its attributes (§3.3), body wrappers.
//! - `client/` (feature `reqwest`): CLIENT spans for outgoing reqwest calls, same capture rules.
//! - `grpc/` (feature `grpc`): SERVER/CLIENT spans for tonic calls: metadata, status, messages.
//! - `agent.rs`: the installed agent (config, tracer, propagator, pipeline), swappable.
//! - `init.rs`: what `#[hypertrace::main]` runs at start and at exit.

mod agent;
pub mod capture;
#[cfg(feature = "reqwest")]
pub mod client;
pub mod config;
pub mod export;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod http;
mod init;
pub mod propagation;
mod subscriber;

pub use agent::{current as current_agent, Agent, Guard};
pub use config::{Config, ConfigBuilder, ConfigError};
pub use http::layer::{layer, HypertraceLayer};
pub use init::shutdown_signal;
pub use subscriber::otel_layer;

/// Used by the code that the macros generate; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::http::handler::{run_handler, HandlerOptions};
    pub use crate::init::{init_main, MainOptions};
    pub use axum;
    pub use tokio;
}
