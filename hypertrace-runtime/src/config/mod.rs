//! The agent configuration: one typed model of the Hypertrace agent-config schema
//! (`hypertrace.agent.config.v1.AgentConfig`) plus the Rust agent's own `rustagent` section.
//!
//! Sources, lowest precedence first (CONTRACT §5.1): built-in defaults < code (macro options,
//! [`ConfigBuilder`]) < config file < `HT_*` environment variables. `OTEL_*` variables fill in only
//! where no `HT_*` setting exists.

mod env;
mod error;
mod fields;
mod file;
mod load;
#[cfg(test)]
mod testutil;

pub use error::{ConfigError, ConfigSource, ConfigWarning, Problem};
pub use file::check_file_permissions;
pub use load::ConfigBuilder;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// W3C `traceparent`/`tracestate` (+ baggage) or B3 (single and multi header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PropagationFormat {
    TraceContext,
    B3,
}

/// How finished spans leave the process (CONTRACT §6).
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricReporterType {
    Otlp,
    Prometheus,
    Logging,
    None,
}

/// A request/response pair of capture switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    pub request: bool,
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

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub service_name: String,
    pub enabled: bool,
    pub propagation_formats: Vec<PropagationFormat>,
    pub resource_attributes: BTreeMap<String, String>,
    pub reporting: Reporting,
    pub data_capture: DataCapture,
    pub telemetry: Telemetry,
    pub rustagent: RustAgent,
}

#[derive(Clone, PartialEq)]
pub struct Reporting {
    /// `None`: the default endpoint of the reporter type ([`Reporting::effective_endpoint`]).
    pub endpoint: Option<String>,
    pub trace_reporter_type: TraceReporterType,
    pub secure: bool,
    pub cert_file: Option<PathBuf>,
    /// Sent as `authorization: Bearer <token>` with every export, unless `OTEL_EXPORTER_OTLP_HEADERS`
    /// already sets `authorization`.
    pub token: Option<String>,
    pub metric_endpoint: Option<String>,
    pub metric_reporter_type: MetricReporterType,
    pub enable_grpc_loadbalancing: bool,
    /// Extra export headers from `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, values URL-decoded).
    pub headers: Vec<(String, String)>,
}

// Hand-written so that the token and header values never reach a log line (security, issue 4).
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
    /// The configured endpoint, or the default for the reporter type (CONTRACT §5.2).
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

#[derive(Clone, Debug, PartialEq)]
pub struct DataCapture {
    pub http_headers: Switch,
    pub http_body: Switch,
    pub rpc_metadata: Switch,
    pub rpc_body: Switch,
    pub body_max_size_bytes: usize,
    pub body_max_processing_size_bytes: usize,
    /// Lower-cased substrings matched against the `Content-Type` header.
    pub allowed_content_types: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Telemetry {
    pub startup_span_enabled: bool,
    pub metrics_enabled: bool,
}

/// The `rustagent` section: settings of this agent that the shared schema does not have.
#[derive(Clone, Debug, PartialEq)]
pub struct RustAgent {
    /// Header names (lower-case) whose values are recorded as `[REDACTED]`. Empty: capture everything.
    pub redact_headers: Vec<String>,
    /// Spans waiting for export at most; beyond it spans are dropped and counted.
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
    pub scheduled_delay: Duration,
    pub export_timeout: Duration,
    /// How long shutdown may wait for the last export before giving up.
    pub shutdown_timeout: Duration,
    /// The SQL spans (`hypertrace::sqlx`).
    pub sql: Sql,
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

pub const DEFAULT_BODY_MAX_SIZE_BYTES: usize = 131_072;
pub const DEFAULT_BODY_MAX_PROCESSING_SIZE_BYTES: usize = 1_048_576;
pub const DEFAULT_ALLOWED_CONTENT_TYPES: [&str; 4] =
    ["json", "graphql", "xml", "x-www-form-urlencoded"];
pub const DEFAULT_REDACT_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

impl Config {
    /// Defaults of CONTRACT §5.2, with `service_name` as given (the binary's package name).
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
                max_queue_size: 2048,
                max_export_batch_size: 512,
                scheduled_delay: Duration::from_millis(1000),
                export_timeout: Duration::from_secs(10),
                shutdown_timeout: Duration::from_secs(5),
                sql: Sql {
                    statement: StatementCapture::Full,
                },
            },
        }
    }
}
