//! The agent configuration: one typed model of the Hypertrace agent-config schema
//! (`hypertrace.agent.config.v1.AgentConfig`) plus the Rust agent's own `rustagent` section.
//!
//! Sources, lowest precedence first: built-in defaults < code (macro options,
//! [`ConfigBuilder`]) < config file < `HT_*` environment variables. `OTEL_*` variables fill in only
//! where no `HT_*` setting exists.

mod env;
mod error;
mod fields;
mod file;
mod load;
mod semconv;
#[cfg(test)]
mod testutil;

pub use error::{ConfigError, ConfigSource, ConfigWarning, Problem};
pub use file::check_file_permissions;
pub use load::ConfigBuilder;
pub use semconv::{Semconv, SemconvOptIn};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// W3C `traceparent`/`tracestate` (+ baggage) or B3 (single and multi header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PropagationFormat {
    /// W3C `traceparent` / `tracestate`, with W3C `baggage`.
    TraceContext,
    /// Zipkin's B3, single (`b3`) and multi (`X-B3-*`) header.
    B3,
}

/// How finished spans leave the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceReporterType {
    /// OTLP over gRPC.
    Otlp,
    /// OTLP over HTTP with protobuf bodies.
    OtlpHttp,
    /// Zipkin v2 JSON over HTTP.
    Zipkin,
    /// One JSON object per span on stdout.
    Logging,
    /// Spans are created but go nowhere.
    None,
}

/// How metrics leave the process (`reporting.metric_reporter_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricReporterType {
    /// OTLP to `reporting.metric_endpoint`.
    Otlp,
    /// A Prometheus text exposition endpoint.
    Prometheus,
    /// One JSON line per export on stdout.
    Logging,
    /// No metrics are exported.
    None,
}

/// A request/response pair of capture switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    /// Capture on the request side.
    pub request: bool,
    /// Capture on the response side.
    pub response: bool,
}

impl Default for Switch {
    fn default() -> Self {
        Switch {
            request: true,
            response: true,
        }
    }
}

/// The whole configuration in force: the agent-config schema's fields and the `rustagent` section.
/// Build it with [`ConfigBuilder`] (defaults, code, file, environment) or start from
/// [`Config::defaults`].
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `service.name` of every span's resource.
    pub service_name: String,
    /// `false`: no span is created and nothing is captured; propagation still works.
    pub enabled: bool,
    /// The trace-context formats extracted from requests and injected into calls.
    pub propagation_formats: Vec<PropagationFormat>,
    /// Extra resource attributes of every span.
    pub resource_attributes: BTreeMap<String, String>,
    /// Where and how spans (and metrics) are sent.
    pub reporting: Reporting,
    /// What is captured from requests and responses.
    pub data_capture: DataCapture,
    /// The agent's own telemetry.
    pub telemetry: Telemetry,
    /// Settings of this agent that the shared schema does not have.
    pub rustagent: RustAgent,
    /// `OTEL_SEMCONV_STABILITY_OPT_IN`: which semantic-convention keys the spans carry.
    pub semconv: SemconvOptIn,
}

/// The `reporting` section: where spans and metrics go.
#[derive(Clone, PartialEq)]
pub struct Reporting {
    /// `None`: the default endpoint of the reporter type ([`Reporting::effective_endpoint`]).
    pub endpoint: Option<String>,
    /// How spans leave the process.
    pub trace_reporter_type: TraceReporterType,
    /// TLS to the endpoint (also implied by an `https://` endpoint).
    pub secure: bool,
    /// A PEM file of the CA certificates that the endpoint's certificate is checked against.
    pub cert_file: Option<PathBuf>,
    /// Sent as `authorization: Bearer <token>` with every export, unless `OTEL_EXPORTER_OTLP_HEADERS`
    /// already sets `authorization`.
    pub token: Option<String>,
    /// Where metrics go (`None`: the trace endpoint).
    pub metric_endpoint: Option<String>,
    /// How metrics leave the process.
    pub metric_reporter_type: MetricReporterType,
    /// Accepted for compatibility with the other agents.
    pub enable_grpc_loadbalancing: bool,
    /// Extra export headers from `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, values URL-decoded).
    pub headers: Vec<(String, String)>,
}

// Hand-written so that the token and header values never reach a log line.
impl std::fmt::Debug for Reporting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporting")
            .field("endpoint", &self.endpoint)
            .field("trace_reporter_type", &self.trace_reporter_type)
            .field("secure", &self.secure)
            .field("cert_file", &self.cert_file)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("metric_endpoint", &self.metric_endpoint)
            .field("metric_reporter_type", &self.metric_reporter_type)
            .field("enable_grpc_loadbalancing", &self.enable_grpc_loadbalancing)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| (k.as_str(), "[REDACTED]"))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Reporting {
    /// The configured endpoint, or the default for the reporter type.
    pub fn effective_endpoint(&self) -> String {
        if let Some(e) = &self.endpoint {
            return e.clone();
        }
        match self.trace_reporter_type {
            TraceReporterType::OtlpHttp => "http://localhost:4318/v1/traces".into(),
            TraceReporterType::Zipkin => "http://localhost:9411/api/v2/spans".into(),
            _ => "http://localhost:4317".into(),
        }
    }
}

/// The `data_capture` section: what is recorded from requests and responses.
#[derive(Clone, Debug, PartialEq)]
pub struct DataCapture {
    /// HTTP request and response headers.
    pub http_headers: Switch,
    /// HTTP request and response bodies.
    pub http_body: Switch,
    /// gRPC request and response metadata.
    pub rpc_metadata: Switch,
    /// gRPC request and response messages.
    pub rpc_body: Switch,
    /// At most this many bytes of a body are recorded; longer ones are cut and marked `.truncated`.
    pub body_max_size_bytes: usize,
    /// At most this many bytes of a body are read for processing (filters).
    pub body_max_processing_size_bytes: usize,
    /// Lower-cased substrings matched against the `Content-Type` header.
    pub allowed_content_types: Vec<String>,
}

/// The `telemetry` section: the agent's own telemetry.
#[derive(Clone, Debug, PartialEq)]
pub struct Telemetry {
    /// A `hypertrace.agent.startup` span when the agent starts.
    pub startup_span_enabled: bool,
    /// Metrics on or off.
    pub metrics_enabled: bool,
}

/// The `rustagent` section: settings of this agent that the shared schema does not have.
#[derive(Clone, Debug, PartialEq)]
pub struct RustAgent {
    /// Header names (lower-case) whose values are recorded as `[REDACTED]`. Empty: capture everything.
    pub redact_headers: Vec<String>,
    /// Keys whose values are redacted in JSON and form bodies (`capture::redact`): matched
    /// as substrings, ignoring ASCII case and `_`, `-`, `.`, space. Empty: redact nothing.
    /// Shared, so that each captured body holds the list without copying it.
    pub redact_body_fields: std::sync::Arc<[String]>,
    /// Capture `text/plain` response bodies of 4xx/5xx responses (the reason of a rejection)
    /// even when `text/plain` is not in `allowed_content_types`.
    pub capture_error_text_bodies: bool,
    /// Spans waiting for export at most; beyond it spans are dropped and counted.
    pub max_queue_size: usize,
    /// Spans sent in one export at most.
    pub max_export_batch_size: usize,
    /// How long the batch processor waits for a batch to fill before it exports.
    pub scheduled_delay: Duration,
    /// How long one export may take.
    pub export_timeout: Duration,
    /// How long shutdown may wait for the last export before giving up.
    pub shutdown_timeout: Duration,
    /// Bytes the spans waiting for export (and the batch being exported) may hold at most, counting
    /// attribute bytes; beyond it spans are dropped and counted.
    pub max_queue_bytes: usize,
    /// A captured header value longer than this is cut (on a UTF-8 boundary) and marked.
    pub max_header_value_bytes: usize,
    /// Which spans are recorded and exported (`OTEL_TRACES_SAMPLER`).
    pub traces_sampler: TracesSampler,
    /// The ratio of the `traceidratio` samplers, 0 to 1 (`OTEL_TRACES_SAMPLER_ARG`).
    pub traces_sampler_arg: f64,
    /// Compression of OTLP export requests (`OTEL_EXPORTER_OTLP_COMPRESSION`).
    pub compression: Compression,
    /// The SQL spans (`hypertrace::sqlx`).
    pub sql: Sql,
    /// How often metrics are exported (OTLP, LOGGING) or collected for the Prometheus page
    /// between scrapes (`OTEL_METRIC_EXPORT_INTERVAL`).
    pub metric_export_interval: Duration,
    /// Honour the `hypertrace=cap:0|1` member of an incoming `tracestate` (capture less, or
    /// everything the code allows, for that request and the calls it makes). `false`: capture as
    /// configured whatever callers send, for a service facing callers it does not trust.
    pub tracestate_capture_control: bool,
    /// How long one blocking filter may take; one that takes longer counts as failed
    /// (`filter_failure_mode` decides what then happens).
    pub filter_budget: Duration,
    /// What a filter that panicked or overran its budget means for the request.
    pub filter_failure_mode: FilterFailureMode,
    /// Exported spans are freed by the threads that end spans (two per span end) rather than by
    /// the export thread. With glibc's malloc a free on another thread contends for the
    /// allocating thread's arena, so this makes requests faster; with jemalloc or mimalloc, whose
    /// remote frees are cheap, `false` leaves that work to the export thread's core.
    pub free_spans_where_served: bool,
}

/// `rustagent.filter_failure_mode`: what a blocking filter that failed (panicked, or took longer
/// than `rustagent.filter_budget_ms`) means for the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FilterFailureMode {
    /// The failed filter is skipped: the request goes on to the next filter and the handler.
    #[default]
    Open,
    /// The request is blocked with 403, as if the failed filter had blocked it.
    Closed,
}

/// The `rustagent.sql` section: what the SQL spans record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sql {
    /// Whether and how the statement text goes on the span (`db.statement` / `db.query.text`).
    pub statement: StatementCapture,
}

/// `rustagent.sql.statement`: how much of a SQL statement a span records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StatementCapture {
    /// The statement as the application wrote it: with its `$1`/`?` placeholders, never the values
    /// bound to them; literals written into the text are kept.
    #[default]
    Full,
    /// Literals (strings, numbers) replaced by `?`, comments dropped: for applications that write
    /// values into the SQL text. The quoted parts of the database's error message are replaced
    /// by `?` too (MySQL quotes the offending value there).
    Sanitized,
    /// No statement text (the span name and `db.operation` still come from it); the database's
    /// error message loses its quoted parts, as for `Sanitized`.
    Off,
}

/// The sampler of the tracer provider: the names of `OTEL_TRACES_SAMPLER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TracesSampler {
    /// Every span.
    AlwaysOn,
    /// No span (context still propagates, marked not sampled).
    AlwaysOff,
    /// A fixed ratio of traces, decided from the trace id.
    TraceIdRatio,
    /// The parent's decision (the incoming sampled flag); root spans always. The default.
    ParentBasedAlwaysOn,
    /// The parent's decision; root spans never.
    ParentBasedAlwaysOff,
    /// The parent's decision; root spans by ratio.
    ParentBasedTraceIdRatio,
}

/// Compression of export requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Sent as is.
    None,
    /// gzip (`content-encoding: gzip` over HTTP, `grpc-encoding: gzip` over gRPC).
    Gzip,
}

/// Default of `data_capture.body_max_size_bytes` (128 KiB).
pub const DEFAULT_BODY_MAX_SIZE_BYTES: usize = 131_072;
/// Default of `data_capture.body_max_processing_size_bytes` (1 MiB).
pub const DEFAULT_BODY_MAX_PROCESSING_SIZE_BYTES: usize = 1_048_576;
/// `rustagent.max_queue_bytes`: 32 MiB.
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// `rustagent.filter_budget_ms`: 100 ms.
pub const DEFAULT_FILTER_BUDGET: Duration = Duration::from_millis(100);
/// `rustagent.max_header_value_bytes`: 8 KiB.
pub const DEFAULT_MAX_HEADER_VALUE_BYTES: usize = 8192;
/// Default of `data_capture.allowed_content_types`.
pub const DEFAULT_ALLOWED_CONTENT_TYPES: [&str; 4] =
    ["json", "graphql", "xml", "x-www-form-urlencoded"];
/// Default of `rustagent.redact_headers`.
pub const DEFAULT_REDACT_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];
/// Substrings of the body keys whose values are redacted by default. `_` in them is ignored
/// when matching: `api_key` covers `apiKey` and `api-key`, `private_key` covers `privateKey`.
pub const DEFAULT_REDACT_BODY_FIELDS: [&str; 12] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "access_key",
    "authorization",
    "credential",
    "private_key",
    "session",
    "cookie",
];

impl Config {
    /// The built-in defaults, with `service_name` as given (the binary's package name).
    pub fn defaults(service_name: &str) -> Config {
        Config {
            service_name: service_name.to_owned(),
            enabled: true,
            propagation_formats: vec![PropagationFormat::TraceContext],
            resource_attributes: BTreeMap::new(),
            reporting: Reporting {
                endpoint: None,
                trace_reporter_type: TraceReporterType::Otlp,
                secure: false,
                cert_file: None,
                token: None,
                metric_endpoint: None,
                metric_reporter_type: MetricReporterType::Otlp,
                enable_grpc_loadbalancing: true,
                headers: Vec::new(),
            },
            data_capture: DataCapture {
                http_headers: Switch::default(),
                http_body: Switch::default(),
                rpc_metadata: Switch::default(),
                rpc_body: Switch::default(),
                body_max_size_bytes: DEFAULT_BODY_MAX_SIZE_BYTES,
                body_max_processing_size_bytes: DEFAULT_BODY_MAX_PROCESSING_SIZE_BYTES,
                allowed_content_types: DEFAULT_ALLOWED_CONTENT_TYPES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            },
            telemetry: Telemetry {
                startup_span_enabled: false,
                metrics_enabled: true,
            },
            rustagent: RustAgent {
                redact_headers: DEFAULT_REDACT_HEADERS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                redact_body_fields: DEFAULT_REDACT_BODY_FIELDS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                capture_error_text_bodies: true,
                max_queue_size: 2048,
                // Not the OpenTelemetry SDK's 512: a batch of captured spans (≈ 5 KiB each)
                // is then 2.5 MiB in flight plus its encoding, which evicts the application's
                // own data from the caches. With 64, a server that exports every span over
                // OTLP/gRPC on the core it serves from spends ≈ 5 µs less CPU per request and
                // halves its p99 (BENCHMARKS.md, "Batch size"); 8 times as many export calls.
                max_export_batch_size: 64,
                scheduled_delay: Duration::from_millis(1000),
                export_timeout: Duration::from_secs(10),
                shutdown_timeout: Duration::from_secs(5),
                max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
                max_header_value_bytes: DEFAULT_MAX_HEADER_VALUE_BYTES,
                traces_sampler: TracesSampler::ParentBasedAlwaysOn,
                traces_sampler_arg: 1.0,
                compression: Compression::None,
                sql: Sql {
                    statement: StatementCapture::Full,
                },
                metric_export_interval: Duration::from_secs(60),
                tracestate_capture_control: true,
                filter_budget: DEFAULT_FILTER_BUDGET,
                filter_failure_mode: FilterFailureMode::Open,
                free_spans_where_served: true,
            },
            semconv: SemconvOptIn::default(),
        }
    }
}
