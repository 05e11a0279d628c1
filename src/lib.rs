//! # hypertrace
//!
//! The Rust agent for Hypertrace-style API observability: every request handled by an axum handler
//! annotated with [`handler`], or by a router with [`layer()`], becomes an OpenTelemetry span carrying
//! the request and response headers and bodies (bounded, redacted where they hold credentials).
//! [`main`] sets up the whole pipeline from the Hypertrace agent-config (file, `HT_*` variables,
//! `OTEL_*` fallbacks).
//!
//! This crate only re-exports: the behaviour lives in `hypertrace-runtime`, the code generation in
//! `hypertrace-macros`. See the README for the quickstart and the configuration table.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub use hypertrace_macros::{handler, main};

/// An exporter that borrows each batch ([`Agent::with_batch_exporter`]).
pub use hypertrace_runtime::BatchExporter;
/// What [`TraceEncoder::encode`] accepts: `SpanData` or [`FinishedSpan`].
pub use hypertrace_runtime::Encodable;
/// A finished span as the batch processor holds it, borrowed by a [`BatchExporter`].
pub use hypertrace_runtime::FinishedSpan;
/// Spans straight to OTLP protobuf bytes, for an exporter of the application's own.
pub use hypertrace_runtime::TraceEncoder;

/// Packed attributes: a request's headers, carried on the span as one attribute. A
/// [`BatchExporter`] of the application's own that reads attributes one by one reads them through
/// [`unpacked`](packed::unpacked).
pub mod packed {
    pub use hypertrace_runtime::capture::packed::{unpacked, Packed, Packer, PACKED_KEY};
}
pub use hypertrace_runtime::{
    current_agent, layer, otel_layer, shutdown_signal, Agent, Config, ConfigBuilder, ConfigError,
    ExportError, ExportStats, Guard, HypertraceLayer,
};

/// The configuration model: [`Config`] and the types of its sections.
pub mod config {
    pub use hypertrace_runtime::config::{
        check_file_permissions, Compression, Config, ConfigBuilder, ConfigError, ConfigSource,
        ConfigWarning, DataCapture, FilterFailureMode, MetricReporterType, Problem,
        PropagationFormat, Reporting, RustAgent, Semconv, SemconvOptIn, Sql, StatementCapture,
        Switch, Telemetry, TraceReporterType, TracesSampler, DEFAULT_ALLOWED_CONTENT_TYPES,
        DEFAULT_BODY_MAX_PROCESSING_SIZE_BYTES, DEFAULT_BODY_MAX_SIZE_BYTES, DEFAULT_FILTER_BUDGET,
        DEFAULT_MAX_HEADER_VALUE_BYTES, DEFAULT_MAX_QUEUE_BYTES, DEFAULT_REDACT_BODY_FIELDS,
        DEFAULT_REDACT_HEADERS,
    };
}

pub use hypertrace_runtime::{Block, Decision, Filter, FilterRequest, Filters, Protocol};

/// Blocking filters: the [`Filter`] trait and its types, and the span attributes that record
/// what the filters decided.
pub mod filter {
    pub use hypertrace_runtime::filter::{
        Block, Decision, Filter, FilterRequest, Filters, Protocol, DECISION, FAILURE,
        FAILURE_FILTER, FAILURE_MESSAGE, FAILURE_MODE, NAME,
    };
}

/// The propagators of `propagation_formats`, for an app that sets up OpenTelemetry itself.
pub mod propagation {
    pub use hypertrace_runtime::propagation::{build, B3Propagator};
}

/// The types of the layer's service, future and response body, for code that names them.
pub mod http {
    pub use hypertrace_runtime::http::future::ResponseFuture;
    pub use hypertrace_runtime::http::layer::HypertraceService;
    pub use hypertrace_runtime::http::ResponseBody;
}

#[cfg(any(feature = "reqwest", feature = "reqwest012"))]
pub use hypertrace_runtime::client;

#[cfg(any(feature = "sqlx-postgres", feature = "sqlx-mysql"))]
pub use hypertrace_runtime::sqlx;

#[cfg(feature = "grpc")]
pub use hypertrace_runtime::grpc;

/// Metrics: the app-mounted Prometheus page, the recording calls of the integrations that time
/// their own calls, and the instrument names.
pub mod metrics {
    pub use hypertrace_runtime::metrics::{
        db_client_operation, prometheus_handler, rpc_client_call, rpc_server_call,
        DB_CLIENT_DURATION, DB_DURATION_BUCKETS, DEFAULT_PROMETHEUS_ENDPOINT, DURATION_BUCKETS,
        HTTP_CLIENT_DURATION, HTTP_SERVER_ACTIVE, HTTP_SERVER_DURATION, PROCESS_CPU_TIME,
        PROCESS_MEMORY_USAGE, PROMETHEUS_CONTENT_TYPE, RPC_CLIENT_DURATION, RPC_SERVER_DURATION,
        SPANS_DROPPED, SPANS_EXPORTED,
    };
}

/// The pure capture rules, exposed for the property tests; not a stable API.
#[doc(hidden)]
pub use hypertrace_runtime::capture;

/// Used by the code that the macros generate; not a public API.
#[doc(hidden)]
pub use hypertrace_runtime::__private;
