//! Shared by the tests of the config sources: one case per field of the table, and helpers.

use super::{
    fields, Compression, Config, ConfigBuilder, ConfigError, ConfigWarning, MetricReporterType,
    PropagationFormat, TraceReporterType, TracesSampler,
};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) const SVC: &str = "svc";

/// One field: a value for the file (JSON text, nested under the field's path), the same value for
/// the environment variable, and the change both must make to the defaults.
pub(crate) struct Case {
    pub path: &'static str,
    pub file: &'static str,
    pub env: &'static str,
    pub expect: fn(&mut Config),
}

const fn case(
    path: &'static str,
    file: &'static str,
    env: &'static str,
    expect: fn(&mut Config),
) -> Case {
    Case {
        path,
        file,
        env,
        expect,
    }
}

/// One case for every field of [`fields::FIELDS`] (checked by `cases_cover_every_field`). File values
/// use every accepted form: native bools/numbers/lists/maps, strings, comma strings.
pub(crate) const CASES: &[Case] = &[
    case("service_name", r#""orders""#, "orders", |c| {
        c.service_name = "orders".into()
    }),
    case("enabled", "false", "False", |c| c.enabled = false),
    case(
        "propagation_formats",
        r#"["b3", "TRACECONTEXT"]"#,
        "b3, TRACECONTEXT",
        |c| c.propagation_formats = vec![PropagationFormat::B3, PropagationFormat::TraceContext],
    ),
    // Map keys are kept as written: never camelCase-normalized.
    case(
        "resource_attributes",
        r#"{"deployment.environment": "prod", "podName": 3}"#,
        "deployment.environment=prod, podName=3",
        |c| {
            c.resource_attributes = [("deployment.environment", "prod"), ("podName", "3")]
                .map(|(k, v)| (k.into(), v.into()))
                .into()
        },
    ),
    case(
        "reporting.endpoint",
        r#""http://collector:4317""#,
        "http://collector:4317",
        |c| c.reporting.endpoint = Some("http://collector:4317".into()),
    ),
    case(
        "reporting.trace_reporter_type",
        r#""zipkin""#,
        "ZIPKIN",
        |c| c.reporting.trace_reporter_type = TraceReporterType::Zipkin,
    ),
    case("reporting.secure", "true", "TRUE", |c| {
        c.reporting.secure = true
    }),
    case(
        "reporting.cert_file",
        r#""/etc/ca.pem""#,
        "/etc/ca.pem",
        |c| c.reporting.cert_file = Some("/etc/ca.pem".into()),
    ),
    case("reporting.token", r#""s3cr3t""#, "s3cr3t", |c| {
        c.reporting.token = Some("s3cr3t".into())
    }),
    case(
        "reporting.metric_endpoint",
        r#""http://m:4317""#,
        "http://m:4317",
        |c| c.reporting.metric_endpoint = Some("http://m:4317".into()),
    ),
    case(
        "reporting.metric_reporter_type",
        r#""METRIC_REPORTER_TYPE_PROMETHEUS""#,
        "prometheus",
        |c| c.reporting.metric_reporter_type = MetricReporterType::Prometheus,
    ),
    case(
        "reporting.enable_grpc_loadbalancing",
        r#""FALSE""#,
        "false",
        |c| c.reporting.enable_grpc_loadbalancing = false,
    ),
    case("data_capture.http_headers.request", "false", "false", |c| {
        c.data_capture.http_headers.request = false
    }),
    case(
        "data_capture.http_headers.response",
        r#""False""#,
        "FALSE",
        |c| c.data_capture.http_headers.response = false,
    ),
    case("data_capture.http_body.request", "false", "false", |c| {
        c.data_capture.http_body.request = false
    }),
    case("data_capture.http_body.response", "false", "false", |c| {
        c.data_capture.http_body.response = false
    }),
    case("data_capture.rpc_metadata.request", "false", "false", |c| {
        c.data_capture.rpc_metadata.request = false
    }),
    case(
        "data_capture.rpc_metadata.response",
        "false",
        "false",
        |c| c.data_capture.rpc_metadata.response = false,
    ),
    case("data_capture.rpc_body.request", "false", "false", |c| {
        c.data_capture.rpc_body.request = false
    }),
    case("data_capture.rpc_body.response", "false", "false", |c| {
        c.data_capture.rpc_body.response = false
    }),
    case("data_capture.body_max_size_bytes", "1024", "1024", |c| {
        c.data_capture.body_max_size_bytes = 1024
    }),
    case(
        "data_capture.body_max_processing_size_bytes",
        r#""2048""#,
        " 2048 ",
        |c| c.data_capture.body_max_processing_size_bytes = 2048,
    ),
    case(
        "data_capture.allowed_content_types",
        r#""JSON, text/Plain""#,
        "json,TEXT/plain,",
        |c| c.data_capture.allowed_content_types = vec!["json".into(), "text/plain".into()],
    ),
    case("telemetry.startup_span_enabled", "true", "true", |c| {
        c.telemetry.startup_span_enabled = true
    }),
    case("telemetry.metrics_enabled", "false", "false", |c| {
        c.telemetry.metrics_enabled = false
    }),
    case(
        "rustagent.redact_headers",
        r#"["X-Secret", "Authorization"]"#,
        "x-secret,AUTHORIZATION",
        |c| c.rustagent.redact_headers = vec!["x-secret".into(), "authorization".into()],
    ),
    case(
        "rustagent.redact_body_fields",
        r#"["SSN", "Password"]"#,
        "ssn,PASSWORD",
        |c| c.rustagent.redact_body_fields = vec!["ssn".into(), "password".into()].into(),
    ),
    case(
        "rustagent.capture_error_text_bodies",
        "false",
        "FALSE",
        |c| c.rustagent.capture_error_text_bodies = false,
    ),
    case("rustagent.max_queue_size", "10", "10", |c| {
        c.rustagent.max_queue_size = 10
    }),
    case("rustagent.max_export_batch_size", r#""5""#, "5", |c| {
        c.rustagent.max_export_batch_size = 5
    }),
    case("rustagent.scheduled_delay_ms", "250", "250", |c| {
        c.rustagent.scheduled_delay = Duration::from_millis(250)
    }),
    case("rustagent.export_timeout_ms", "3000", "3000", |c| {
        c.rustagent.export_timeout = Duration::from_millis(3000)
    }),
    case("rustagent.shutdown_timeout_ms", r#""1500""#, "1500", |c| {
        c.rustagent.shutdown_timeout = Duration::from_millis(1500)
    }),
    case("rustagent.max_queue_bytes", "1048576", "1048576", |c| {
        c.rustagent.max_queue_bytes = 1_048_576
    }),
    case("rustagent.max_header_value_bytes", r#""100""#, "100", |c| {
        c.rustagent.max_header_value_bytes = 100
    }),
    case(
        "rustagent.traces_sampler",
        r#""traceidratio""#,
        "TraceIdRatio",
        |c| c.rustagent.traces_sampler = TracesSampler::TraceIdRatio,
    ),
    case("rustagent.traces_sampler_arg", "0.25", "0.25", |c| {
        c.rustagent.traces_sampler_arg = 0.25
    }),
    case("rustagent.compression", r#""gzip""#, "GZIP", |c| {
        c.rustagent.compression = Compression::Gzip
    }),
    case(
        "rustagent.sql.statement",
        r#""Sanitized""#,
        "sanitized",
        |c| c.rustagent.sql.statement = super::StatementCapture::Sanitized,
    ),
    case("rustagent.metric_export_interval_ms", "5000", "5000", |c| {
        c.rustagent.metric_export_interval = Duration::from_millis(5000)
    }),
    case(
        "rustagent.tracestate_capture_control",
        "false",
        "False",
        |c| c.rustagent.tracestate_capture_control = false,
    ),
    case("rustagent.filter_budget_ms", "25", "25", |c| {
        c.rustagent.filter_budget = Duration::from_millis(25)
    }),
    case(
        "rustagent.filter_failure_mode",
        r#""Closed""#,
        "CLOSED",
        |c| c.rustagent.filter_failure_mode = super::FilterFailureMode::Closed,
    ),
    case("rustagent.free_spans_where_served", "false", "false", |c| {
        c.rustagent.free_spans_where_served = false
    }),
];

/// The defaults with the case's change applied.
pub(crate) fn expected_config(case: &Case) -> Config {
    let mut cfg = Config::defaults(SVC);
    (case.expect)(&mut cfg);
    cfg
}

/// `data_capture` → `dataCapture`.
pub(crate) fn snake_to_camel(s: &str) -> String {
    let mut parts = s.split('_');
    let first = parts.next().unwrap_or_default().to_owned();
    parts.fold(first, |mut out, p| {
        let mut chars = p.chars();
        out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
        out.extend(chars);
        out
    })
}

/// `value` nested under the dotted `path`, with camelCase keys when `camel`.
pub(crate) fn nest(path: &str, value: Value, camel: bool) -> Value {
    path.rsplit('.').fold(value, |inner, key| {
        let key = if camel {
            snake_to_camel(key)
        } else {
            key.to_owned()
        };
        Value::Object(Map::from_iter([(key, inner)]))
    })
}

pub(crate) fn write_file(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// Loads with this file (if any) and these variables, never the process environment.
pub(crate) fn load_with(
    file: Option<&Path>,
    env: &[(&str, &str)],
) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    let builder =
        ConfigBuilder::new(SVC).env_vars(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    match file {
        Some(f) => builder.config_file(f),
        None => builder,
    }
    .load()
}

#[test]
fn cases_cover_every_field() {
    let table: Vec<&str> = fields::FIELDS.iter().map(|f| f.path).collect();
    let cases: Vec<&str> = CASES.iter().map(|c| c.path).collect();
    assert_eq!(cases, table);
}

#[test]
fn nest_builds_camel_case_trees() {
    let v = nest("data_capture.http_body.request", Value::Bool(false), true);
    assert_eq!(
        v.to_string(),
        r#"{"dataCapture":{"httpBody":{"request":false}}}"#
    );
}
