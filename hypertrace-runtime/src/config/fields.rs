//! The one table of configuration fields, shared by the file and the environment sources.
//!
//! Each [`Field`] has its snake_case dotted path (`data_capture.http_body.request`), a [`Kind`] that says
//! how a raw value is parsed, and a setter. The environment variable is derived from the path
//! ([`Field::env_var`]), and the file walker looks keys up by path, so adding a field is one line here.
//!
//! Value rules (both sources):
//! - a JSON/YAML `null`, or an empty (blank) string, means "not set";
//! - booleans: `true`/`false` in any case (a YAML/JSON bool or such a string); anything else is an error;
//! - unsigned integers: a number or a numeric string that fits `usize`, and is greater than 0;
//! - lists: a sequence of strings or a comma-separated string; items trimmed, empty items dropped,
//!   duplicates dropped; a configured list (even an empty one) replaces the previous value;
//! - maps: a mapping of strings (scalars are stringified) or `k=v,k2=v2`; entries are merged into the
//!   previous value, a configured key wins;
//! - enums: the names of the agent-config proto, case-insensitive.

use super::error::REDACTED;
use super::{
    Compression, Config, ConfigError, ConfigSource, FilterFailureMode, MetricReporterType,
    PropagationFormat, StatementCapture, TraceReporterType, TracesSampler,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The value of an enum-typed field, before it is stored in the typed model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EnumValue {
    Propagation(PropagationFormat),
    Trace(TraceReporterType),
    Metric(MetricReporterType),
    Sampler(TracesSampler),
    Compression(Compression),
    SqlStatement(StatementCapture),
    FilterFailure(FilterFailureMode),
}

impl EnumValue {
    fn propagation(self) -> Option<PropagationFormat> {
        match self {
            EnumValue::Propagation(p) => Some(p),
            _ => None,
        }
    }
}

/// The accepted names of an enum (for error messages) and its case-insensitive parser.
#[derive(Clone, Copy)]
pub(crate) struct EnumSpec {
    pub accepted: &'static str,
    pub parse: fn(&str) -> Option<EnumValue>,
}

pub(crate) const PROPAGATION_FORMAT: EnumSpec = EnumSpec {
    accepted: "TRACECONTEXT, B3",
    parse: |s| match s.to_ascii_uppercase().as_str() {
        "TRACECONTEXT" => Some(EnumValue::Propagation(PropagationFormat::TraceContext)),
        "B3" => Some(EnumValue::Propagation(PropagationFormat::B3)),
        _ => None,
    },
};

pub(crate) const TRACE_REPORTER_TYPE: EnumSpec = EnumSpec {
    accepted: "OTLP, OTLP_HTTP, ZIPKIN, LOGGING, NONE",
    parse: |s| {
        let t = match s.to_ascii_uppercase().as_str() {
            "OTLP" => TraceReporterType::Otlp,
            "OTLP_HTTP" => TraceReporterType::OtlpHttp,
            "ZIPKIN" => TraceReporterType::Zipkin,
            "LOGGING" => TraceReporterType::Logging,
            "NONE" => TraceReporterType::None,
            _ => return None,
        };
        Some(EnumValue::Trace(t))
    },
};

pub(crate) const METRIC_REPORTER_TYPE: EnumSpec = EnumSpec {
    accepted:
        "METRIC_REPORTER_TYPE_OTLP, METRIC_REPORTER_TYPE_PROMETHEUS, METRIC_REPORTER_TYPE_LOGGING, \
               METRIC_REPORTER_TYPE_NONE (or OTLP, PROMETHEUS, LOGGING, NONE)",
    parse: |s| {
        let upper = s.to_ascii_uppercase();
        let short = upper
            .strip_prefix("METRIC_REPORTER_TYPE_")
            .unwrap_or(&upper);
        let t = match short {
            "OTLP" => MetricReporterType::Otlp,
            "PROMETHEUS" => MetricReporterType::Prometheus,
            "LOGGING" => MetricReporterType::Logging,
            "NONE" => MetricReporterType::None,
            _ => return None,
        };
        Some(EnumValue::Metric(t))
    },
};

pub(crate) const TRACES_SAMPLER: EnumSpec = EnumSpec {
    accepted:
        "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, \
               parentbased_traceidratio",
    parse: |s| {
        let t = match s.to_ascii_lowercase().as_str() {
            "always_on" => TracesSampler::AlwaysOn,
            "always_off" => TracesSampler::AlwaysOff,
            "traceidratio" => TracesSampler::TraceIdRatio,
            "parentbased_always_on" => TracesSampler::ParentBasedAlwaysOn,
            "parentbased_always_off" => TracesSampler::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => TracesSampler::ParentBasedTraceIdRatio,
            _ => return None,
        };
        Some(EnumValue::Sampler(t))
    },
};

pub(crate) const COMPRESSION: EnumSpec = EnumSpec {
    accepted: "gzip, none",
    parse: |s| match s.to_ascii_lowercase().as_str() {
        "gzip" => Some(EnumValue::Compression(Compression::Gzip)),
        "none" => Some(EnumValue::Compression(Compression::None)),
        _ => None,
    },
};

pub(crate) const SQL_STATEMENT: EnumSpec = EnumSpec {
    accepted: "full, sanitized, off",
    parse: |s| {
        let c = match s.to_ascii_lowercase().as_str() {
            "full" => StatementCapture::Full,
            "sanitized" => StatementCapture::Sanitized,
            "off" => StatementCapture::Off,
            _ => return None,
        };
        Some(EnumValue::SqlStatement(c))
    },
};

pub(crate) const FILTER_FAILURE_MODE: EnumSpec = EnumSpec {
    accepted: "open, closed",
    parse: |s| match s.to_ascii_lowercase().as_str() {
        "open" => Some(EnumValue::FilterFailure(FilterFailureMode::Open)),
        "closed" => Some(EnumValue::FilterFailure(FilterFailureMode::Closed)),
        _ => None,
    },
};

/// How a raw value is parsed.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Bool,
    /// A `usize` greater than 0.
    UInt,
    Str,
    Path,
    List {
        lowercase: bool,
    },
    /// A list whose items are names of the enum.
    EnumList(EnumSpec),
    Map,
    Enum(EnumSpec),
    /// A number of milliseconds greater than 0.
    DurationMs,
    /// A number from 0 to 1.
    Ratio,
}

impl Kind {
    fn expected(self) -> String {
        match self {
            Kind::Bool => "true or false".into(),
            Kind::UInt => format!("a whole number from 1 to {}", usize::MAX),
            Kind::Str => "a string".into(),
            Kind::Path => "a file path".into(),
            Kind::List { .. } => "a list of strings or a comma-separated string".into(),
            Kind::EnumList(spec) => {
                format!("a list (or comma-separated string) of {}", spec.accepted)
            }
            Kind::Map => "a mapping of strings, or comma-separated key=value pairs".into(),
            Kind::Enum(spec) => format!("one of {}", spec.accepted),
            Kind::DurationMs => format!("a number of milliseconds from 1 to {}", u64::MAX),
            Kind::Ratio => "a number from 0 to 1".into(),
        }
    }
}

/// A parsed value, handed to a field's setter.
pub(crate) enum ParsedValue {
    Bool(bool),
    UInt(usize),
    Str(String),
    Path(PathBuf),
    List(Vec<String>),
    EnumList(Vec<EnumValue>),
    Map(BTreeMap<String, String>),
    Enum(EnumValue),
    Duration(Duration),
    Ratio(f64),
}

/// A raw value: a node of the parsed config file, or the text of an environment variable.
#[derive(Clone, Copy)]
pub(crate) enum Raw<'a> {
    File(&'a Value),
    Env(&'a str),
}

/// Why a raw value was rejected: what was seen (quoted, or described) and what was expected.
#[derive(Debug, PartialEq)]
pub(crate) struct Invalid {
    pub got: String,
    pub expected: String,
}

/// How a field stores its value: a setter typed by what it takes, so that a setter that does not
/// fit the field's type is a compile error. The parser follows from it ([`Setter::kind`]).
#[derive(Clone, Copy)]
pub(crate) enum Setter {
    Bool(fn(&mut Config, bool)),
    /// A `usize` greater than 0.
    UInt(fn(&mut Config, usize)),
    Str(fn(&mut Config, String)),
    Path(fn(&mut Config, PathBuf)),
    List {
        lowercase: bool,
        set: fn(&mut Config, Vec<String>),
    },
    Map(fn(&mut Config, BTreeMap<String, String>)),
    /// A number of milliseconds greater than 0.
    DurationMs(fn(&mut Config, Duration)),
    Propagations(fn(&mut Config, Vec<PropagationFormat>)),
    TraceReporter(fn(&mut Config, TraceReporterType)),
    MetricReporter(fn(&mut Config, MetricReporterType)),
    Sampler(fn(&mut Config, TracesSampler)),
    Compression(fn(&mut Config, Compression)),
    SqlStatement(fn(&mut Config, StatementCapture)),
    FilterFailure(fn(&mut Config, FilterFailureMode)),
    /// A number from 0 to 1.
    Ratio(fn(&mut Config, f64)),
}

impl Setter {
    /// The parser of the values this setter takes.
    pub(crate) fn kind(self) -> Kind {
        match self {
            Setter::Bool(_) => Kind::Bool,
            Setter::UInt(_) => Kind::UInt,
            Setter::Str(_) => Kind::Str,
            Setter::Path(_) => Kind::Path,
            Setter::List { lowercase, .. } => Kind::List { lowercase },
            Setter::Map(_) => Kind::Map,
            Setter::DurationMs(_) => Kind::DurationMs,
            Setter::Propagations(_) => Kind::EnumList(PROPAGATION_FORMAT),
            Setter::TraceReporter(_) => Kind::Enum(TRACE_REPORTER_TYPE),
            Setter::MetricReporter(_) => Kind::Enum(METRIC_REPORTER_TYPE),
            Setter::Sampler(_) => Kind::Enum(TRACES_SAMPLER),
            Setter::Compression(_) => Kind::Enum(COMPRESSION),
            Setter::SqlStatement(_) => Kind::Enum(SQL_STATEMENT),
            Setter::FilterFailure(_) => Kind::Enum(FILTER_FAILURE_MODE),
            Setter::Ratio(_) => Kind::Ratio,
        }
    }

    /// Stores what the parser of [`kind`](Self::kind) produced.
    fn store(self, cfg: &mut Config, value: ParsedValue) {
        use ParsedValue as V;
        match (self, value) {
            (Setter::Bool(set), V::Bool(b)) => set(cfg, b),
            (Setter::UInt(set), V::UInt(n)) => set(cfg, n),
            (Setter::Str(set), V::Str(s)) => set(cfg, s),
            (Setter::Path(set), V::Path(p)) => set(cfg, p),
            (Setter::List { set, .. }, V::List(l)) => set(cfg, l),
            (Setter::Map(set), V::Map(m)) => set(cfg, m),
            (Setter::DurationMs(set), V::Duration(d)) => set(cfg, d),
            (Setter::Propagations(set), V::EnumList(l)) => set(
                cfg,
                l.into_iter().filter_map(EnumValue::propagation).collect(),
            ),
            (Setter::TraceReporter(set), V::Enum(EnumValue::Trace(t))) => set(cfg, t),
            (Setter::MetricReporter(set), V::Enum(EnumValue::Metric(t))) => set(cfg, t),
            (Setter::Sampler(set), V::Enum(EnumValue::Sampler(t))) => set(cfg, t),
            (Setter::Compression(set), V::Enum(EnumValue::Compression(t))) => set(cfg, t),
            (Setter::SqlStatement(set), V::Enum(EnumValue::SqlStatement(t))) => set(cfg, t),
            (Setter::FilterFailure(set), V::Enum(EnumValue::FilterFailure(t))) => set(cfg, t),
            (Setter::Ratio(set), V::Ratio(r)) => set(cfg, r),
            // `kind` pairs each setter with the parser of its type; the unit test
            // `every_setter_takes_what_its_parser_produces` checks every field.
            _ => unreachable!("a setter was handed a value of another type"),
        }
    }
}

/// One configuration field: its dotted path and its typed setter.
pub(crate) struct Field {
    pub path: &'static str,
    pub set: Setter,
}

impl Field {
    /// `HT_` + the path upper-cased, `.` replaced by `_`.
    pub(crate) fn env_var(&self) -> String {
        env_var_of(self.path)
    }

    /// Whether the value must never be shown (errors, warnings, `Debug`).
    pub(crate) fn is_secret(&self) -> bool {
        self.path == "reporting.token"
    }

    /// Whether the value is a list (an empty environment variable is then an empty list).
    pub(crate) fn is_list(&self) -> bool {
        matches!(self.kind(), Kind::List { .. } | Kind::EnumList(_))
    }

    /// How a raw value of this field is parsed.
    pub(crate) fn kind(&self) -> Kind {
        self.set.kind()
    }

    /// Stores a value that [`parse`](Self::parse) produced.
    pub(crate) fn store(&self, cfg: &mut Config, value: ParsedValue) {
        self.set.store(cfg, value)
    }

    /// Parses `raw`; `Ok(None)` when it means "not set" (null, blank).
    pub(crate) fn parse(&self, raw: Raw<'_>) -> Result<Option<ParsedValue>, Invalid> {
        parse_kind(self.kind(), raw).map_err(|e| {
            if self.is_secret() {
                Invalid {
                    got: REDACTED.into(),
                    ..e
                }
            } else {
                e
            }
        })
    }

    /// Parses `raw` and stores it in `cfg`. Returns whether a value was set.
    pub(crate) fn apply(
        &self,
        cfg: &mut Config,
        raw: Raw<'_>,
        source: impl FnOnce() -> ConfigSource,
    ) -> Result<bool, ConfigError> {
        match self.parse(raw) {
            Ok(Some(value)) => {
                self.store(cfg, value);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(Invalid { got, expected }) => Err(ConfigError::value(source(), got, expected)),
        }
    }
}

pub(crate) fn env_var_of(path: &str) -> String {
    format!("HT_{}", path.to_ascii_uppercase().replace('.', "_"))
}

/// `field!(path, Setter, |config, value| ...)`: the closure's `value` has the setter's type.
macro_rules! field {
    ($path:literal, List { lowercase: $lc:literal }, |$c:ident, $v:ident| $body:expr) => {
        Field {
            path: $path,
            set: Setter::List {
                lowercase: $lc,
                set: |$c, $v| $body,
            },
        }
    };
    ($path:literal, $setter:ident, |$c:ident, $v:ident| $body:expr) => {
        Field {
            path: $path,
            set: Setter::$setter(|$c, $v| $body),
        }
    };
}

/// Every field of the model.
#[rustfmt::skip]
pub(crate) static FIELDS: &[Field] = &[
    field!("service_name", Str, |c, s| c.service_name = s),
    field!("enabled", Bool, |c, b| c.enabled = b),
    field!("propagation_formats", Propagations, |c, l| c.propagation_formats = l),
    field!("resource_attributes", Map, |c, m| c.resource_attributes.extend(m)),
    field!("reporting.endpoint", Str, |c, s| c.reporting.endpoint = Some(s)),
    field!("reporting.trace_reporter_type", TraceReporter, |c, e| c.reporting.trace_reporter_type = e),
    field!("reporting.secure", Bool, |c, b| c.reporting.secure = b),
    field!("reporting.cert_file", Path, |c, p| c.reporting.cert_file = Some(p)),
    field!("reporting.token", Str, |c, s| c.reporting.token = Some(s)),
    field!("reporting.metric_endpoint", Str, |c, s| c.reporting.metric_endpoint = Some(s)),
    field!("reporting.metric_reporter_type", MetricReporter, |c, e| c.reporting.metric_reporter_type = e),
    field!("reporting.enable_grpc_loadbalancing", Bool, |c, b| c.reporting.enable_grpc_loadbalancing = b),
    field!("data_capture.http_headers.request", Bool, |c, b| c.data_capture.http_headers.request = b),
    field!("data_capture.http_headers.response", Bool, |c, b| c.data_capture.http_headers.response = b),
    field!("data_capture.http_body.request", Bool, |c, b| c.data_capture.http_body.request = b),
    field!("data_capture.http_body.response", Bool, |c, b| c.data_capture.http_body.response = b),
    field!("data_capture.rpc_metadata.request", Bool, |c, b| c.data_capture.rpc_metadata.request = b),
    field!("data_capture.rpc_metadata.response", Bool, |c, b| c.data_capture.rpc_metadata.response = b),
    field!("data_capture.rpc_body.request", Bool, |c, b| c.data_capture.rpc_body.request = b),
    field!("data_capture.rpc_body.response", Bool, |c, b| c.data_capture.rpc_body.response = b),
    field!("data_capture.body_max_size_bytes", UInt, |c, n| c.data_capture.body_max_size_bytes = n),
    field!("data_capture.body_max_processing_size_bytes", UInt, |c, n| c.data_capture.body_max_processing_size_bytes = n),
    field!("data_capture.allowed_content_types", List { lowercase: true }, |c, l| c.data_capture.allowed_content_types = l),
    field!("telemetry.startup_span_enabled", Bool, |c, b| c.telemetry.startup_span_enabled = b),
    field!("telemetry.metrics_enabled", Bool, |c, b| c.telemetry.metrics_enabled = b),
    field!("rustagent.redact_headers", List { lowercase: true }, |c, l| c.rustagent.redact_headers = l),
    field!("rustagent.redact_body_fields", List { lowercase: true }, |c, l| c.rustagent.redact_body_fields = l.into()),
    field!("rustagent.capture_error_text_bodies", Bool, |c, b| c.rustagent.capture_error_text_bodies = b),
    field!("rustagent.max_queue_size", UInt, |c, n| c.rustagent.max_queue_size = n),
    field!("rustagent.max_export_batch_size", UInt, |c, n| c.rustagent.max_export_batch_size = n),
    field!("rustagent.scheduled_delay_ms", DurationMs, |c, d| c.rustagent.scheduled_delay = d),
    field!("rustagent.export_timeout_ms", DurationMs, |c, d| c.rustagent.export_timeout = d),
    field!("rustagent.shutdown_timeout_ms", DurationMs, |c, d| c.rustagent.shutdown_timeout = d),
    field!("rustagent.max_queue_bytes", UInt, |c, n| c.rustagent.max_queue_bytes = n),
    field!("rustagent.max_header_value_bytes", UInt, |c, n| c.rustagent.max_header_value_bytes = n),
    field!("rustagent.traces_sampler", Sampler, |c, t| c.rustagent.traces_sampler = t),
    field!("rustagent.traces_sampler_arg", Ratio, |c, r| c.rustagent.traces_sampler_arg = r),
    field!("rustagent.compression", Compression, |c, t| c.rustagent.compression = t),
    field!("rustagent.sql.statement", SqlStatement, |c, t| c.rustagent.sql.statement = t),
    field!("rustagent.metric_export_interval_ms", DurationMs, |c, d| c.rustagent.metric_export_interval = d),
    field!("rustagent.tracestate_capture_control", Bool, |c, b| c.rustagent.tracestate_capture_control = b),
    field!("rustagent.filter_budget_ms", DurationMs, |c, d| c.rustagent.filter_budget = d),
    field!("rustagent.filter_failure_mode", FilterFailure, |c, m| c.rustagent.filter_failure_mode = m),
    field!("rustagent.free_spans_where_served", Bool, |c, b| c.rustagent.free_spans_where_served = b),
];

/// Sections of other agents (and removed parts of the schema) that are accepted and ignored.
pub(crate) const FOREIGN_SECTIONS: &[&str] = &[
    "goagent",
    "javaagent",
    "pythonagent",
    "nodeagent",
    "reporting.opa",
];

/// The field with this snake_case dotted path.
pub(crate) fn lookup(path: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.path == path)
}

/// Whether `path` is a section (`reporting`, `data_capture.http_body`) holding fields.
pub(crate) fn is_section(path: &str) -> bool {
    FIELDS.iter().any(|f| {
        f.path
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// How a raw value is shown in a message: strings quoted, other nodes described.
pub(crate) fn describe(raw: Raw<'_>) -> String {
    match raw {
        Raw::Env(s) => format!("{s:?}"),
        Raw::File(Value::String(s)) => format!("{s:?}"),
        Raw::File(Value::Array(_)) => "a list".into(),
        Raw::File(Value::Object(_)) => "a mapping".into(),
        Raw::File(v) => v.to_string(),
    }
}

/// The text of an environment variable or of a string node of the file.
fn text(raw: Raw<'_>) -> Option<&str> {
    match raw {
        Raw::Env(s) => Some(s),
        Raw::File(Value::String(s)) => Some(s),
        Raw::File(_) => None,
    }
}

/// A scalar, or `None` when the value means "not set".
enum Scalar<'a> {
    Text(&'a str),
    Bool(bool),
    Number(&'a serde_json::Number),
}

fn scalar(raw: Raw<'_>) -> Result<Option<Scalar<'_>>, ()> {
    if let Some(s) = text(raw) {
        let t = s.trim();
        return Ok((!t.is_empty()).then_some(Scalar::Text(t)));
    }
    match raw {
        Raw::File(Value::Bool(b)) => Ok(Some(Scalar::Bool(*b))),
        Raw::File(Value::Number(n)) => Ok(Some(Scalar::Number(n))),
        Raw::File(Value::Array(_) | Value::Object(_)) => Err(()),
        // `null` (strings were handled above).
        _ => Ok(None),
    }
}

fn scalar_string(s: Scalar<'_>) -> String {
    match s {
        Scalar::Text(t) => t.to_owned(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Number(n) => n.to_string(),
    }
}

/// A positive whole number that fits `max`.
fn positive(s: &Scalar<'_>, max: u64) -> Option<u64> {
    let n = match s {
        Scalar::Number(n) => n.as_u64()?,
        Scalar::Text(t) => t.parse::<u64>().ok()?,
        Scalar::Bool(_) => return None,
    };
    (n > 0 && n <= max).then_some(n)
}

/// Splits a comma-separated string: items trimmed, empty items dropped.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `k=v,k2=v2`: keys and values trimmed, empty items dropped. `Err` holds the first item that is
/// not a `key=value` pair (no `=`, or an empty key).
pub(crate) fn split_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    split_list(s)
        .into_iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(item),
        })
        .collect()
}

/// The items of a list value, or `None` when not set.
fn list_items(raw: Raw<'_>) -> Result<Option<Vec<String>>, Invalid> {
    let invalid = |got: String| Invalid {
        got,
        expected: Kind::List { lowercase: false }.expected(),
    };
    match raw {
        // Set but empty: the empty list (unset variables never get here).
        Raw::Env(s) => return Ok(Some(split_list(s))),
        Raw::File(Value::String(s)) => return Ok((!s.trim().is_empty()).then(|| split_list(s))),
        Raw::File(_) => {}
    }
    match raw {
        Raw::File(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match scalar(Raw::File(item)) {
                Ok(s) => s.map(|s| Ok(scalar_string(s))),
                Err(()) => Some(Err(invalid(format!(
                    "a list containing {}",
                    describe(Raw::File(item))
                )))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Raw::File(Value::Null) => Ok(None),
        _ => Err(invalid(describe(raw))),
    }
}

/// Drops later duplicates, keeping the order.
fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn parse_map(raw: Raw<'_>) -> Result<Option<BTreeMap<String, String>>, Invalid> {
    let invalid = |got: String| Invalid {
        got,
        expected: Kind::Map.expected(),
    };
    if let Some(s) = text(raw) {
        if s.trim().is_empty() {
            return Ok(None);
        }
        return split_pairs(s)
            .map(|pairs| Some(pairs.into_iter().collect()))
            .map_err(|item| invalid(format!("{item:?}")));
    }
    match raw {
        Raw::File(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| match scalar(Raw::File(v)) {
                Ok(s) => s.map(|s| Ok((k.clone(), scalar_string(s)))),
                Err(()) => Some(Err(invalid(format!(
                    "{} for key {k:?}",
                    describe(Raw::File(v))
                )))),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(Some),
        Raw::File(Value::Null) => Ok(None),
        _ => Err(invalid(describe(raw))),
    }
}

fn parse_kind(kind: Kind, raw: Raw<'_>) -> Result<Option<ParsedValue>, Invalid> {
    let invalid = || Invalid {
        got: describe(raw),
        expected: kind.expected(),
    };
    match kind {
        Kind::List { lowercase } => Ok(list_items(raw)?.map(|items| {
            let items = if lowercase {
                items.into_iter().map(|i| i.to_lowercase()).collect()
            } else {
                items
            };
            ParsedValue::List(dedup(items))
        })),
        Kind::EnumList(spec) => {
            let Some(items) = list_items(raw)? else {
                return Ok(None);
            };
            let values = items
                .iter()
                .map(|i| {
                    (spec.parse)(i).ok_or_else(|| Invalid {
                        got: format!("{i:?}"),
                        expected: format!("one of {}", spec.accepted),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(ParsedValue::EnumList(dedup(values))))
        }
        Kind::Map => Ok(parse_map(raw)?.map(ParsedValue::Map)),
        _ => {
            let Some(s) = scalar(raw).map_err(|()| invalid())? else {
                return Ok(None);
            };
            let value = match kind {
                Kind::Bool => match s {
                    Scalar::Bool(b) => ParsedValue::Bool(b),
                    Scalar::Text(t) if t.eq_ignore_ascii_case("true") => ParsedValue::Bool(true),
                    Scalar::Text(t) if t.eq_ignore_ascii_case("false") => ParsedValue::Bool(false),
                    _ => return Err(invalid()),
                },
                Kind::UInt => {
                    let n = positive(&s, usize::MAX as u64).ok_or_else(invalid)?;
                    ParsedValue::UInt(usize::try_from(n).map_err(|_| invalid())?)
                }
                Kind::DurationMs => ParsedValue::Duration(Duration::from_millis(
                    positive(&s, u64::MAX).ok_or_else(invalid)?,
                )),
                Kind::Enum(spec) => match s {
                    Scalar::Text(t) => ParsedValue::Enum((spec.parse)(t).ok_or_else(invalid)?),
                    _ => return Err(invalid()),
                },
                Kind::Ratio => {
                    let r: f64 = scalar_string(s).trim().parse().map_err(|_| invalid())?;
                    if !(0.0..=1.0).contains(&r) {
                        return Err(invalid());
                    }
                    ParsedValue::Ratio(r)
                }
                Kind::Str => ParsedValue::Str(scalar_string(s)),
                Kind::Path => ParsedValue::Path(PathBuf::from(scalar_string(s))),
                Kind::List { .. } | Kind::EnumList(_) | Kind::Map => unreachable!("handled above"),
            };
            Ok(Some(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The one run-time pairing of the table (`Setter::kind` with `Setter::store`), for every field:
    /// a valid value of each field's kind parses and is stored.
    #[test]
    fn every_setter_takes_what_its_parser_produces() {
        for f in FIELDS {
            let raw = match f.kind() {
                Kind::Bool => "true",
                Kind::UInt | Kind::DurationMs => "7",
                Kind::Str | Kind::Path => "x",
                Kind::List { .. } => "a,b",
                Kind::EnumList(_) => "B3",
                Kind::Map => "k=v",
                Kind::Enum(spec) => spec.accepted.split(',').next().unwrap().trim(),
                Kind::Ratio => "0.5",
            };
            let mut cfg = Config::defaults("svc");
            let v = f.parse(Raw::Env(raw)).unwrap().unwrap();
            f.store(&mut cfg, v);
        }
    }

    fn field(path: &str) -> &'static Field {
        lookup(path).unwrap_or_else(|| panic!("no field {path}"))
    }

    /// The outcome of parsing, in a comparable form (ParsedValue has no Debug, on purpose).
    fn outcome(path: &str, raw: Raw<'_>) -> Result<Option<String>, Invalid> {
        let mut cfg = Config::defaults("svc");
        let before = format!("{cfg:?}");
        match field(path).parse(raw)? {
            None => Ok(None),
            Some(v) => {
                field(path).store(&mut cfg, v);
                let after = format!("{cfg:?}");
                assert_ne!(before, after, "{path}: setter had no effect");
                Ok(Some(after))
            }
        }
    }

    fn is_err(path: &str, raw: Raw<'_>) -> bool {
        outcome(path, raw).is_err()
    }

    #[test]
    fn env_var_names_are_derived_from_paths() {
        assert_eq!(
            field("data_capture.http_headers.request").env_var(),
            "HT_DATA_CAPTURE_HTTP_HEADERS_REQUEST"
        );
        assert_eq!(
            field("rustagent.redact_headers").env_var(),
            "HT_RUSTAGENT_REDACT_HEADERS"
        );
        assert_eq!(
            field("reporting.trace_reporter_type").env_var(),
            "HT_REPORTING_TRACE_REPORTER_TYPE"
        );
    }

    #[test]
    fn table_has_unique_paths_and_sections() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert!(
                FIELDS[i + 1..].iter().all(|g| g.path != f.path),
                "duplicate {}",
                f.path
            );
            assert!(
                !is_section(f.path),
                "{} is both a field and a section",
                f.path
            );
        }
        for s in [
            "reporting",
            "data_capture",
            "data_capture.http_body",
            "telemetry",
            "rustagent",
        ] {
            assert!(is_section(s), "{s}");
        }
        for s in ["report", "data_capture.http", "enabled", "goagent"] {
            assert!(!is_section(s), "{s}");
        }
    }

    #[test]
    fn booleans_any_case_and_nothing_else() {
        let (t, f, zero, list) = (json!(true), json!("fAlSe"), json!(0), json!(["true"]));
        let ok = [
            (Raw::Env("TRUE"), true),
            (Raw::Env(" False "), false),
            (Raw::File(&t), true),
            (Raw::File(&f), false),
        ];
        for (raw, want) in ok {
            assert!(
                matches!(field("enabled").parse(raw), Ok(Some(ParsedValue::Bool(b))) if b == want)
            );
        }
        for raw in [
            Raw::Env("yes"),
            Raw::Env("1"),
            Raw::Env("f"),
            Raw::File(&zero),
            Raw::File(&list),
        ] {
            let e = outcome("enabled", raw).unwrap_err();
            assert_eq!(e.expected, "true or false");
        }
    }

    #[test]
    fn unset_values() {
        let blank = json!("");
        for raw in [
            Raw::Env(""),
            Raw::Env("  "),
            Raw::File(&Value::Null),
            Raw::File(&blank),
        ] {
            for f in FIELDS {
                let parsed = f.parse(raw);
                if f.is_list() && matches!(raw, Raw::Env(_)) {
                    // A list variable set but empty is the empty list.
                    assert!(matches!(parsed, Ok(Some(_))), "{}", f.path);
                } else {
                    assert!(matches!(parsed, Ok(None)), "{}", f.path);
                }
            }
        }
    }

    #[test]
    fn unsigned_integers() {
        let p = "data_capture.body_max_size_bytes";
        assert!(outcome(p, Raw::Env("42")).unwrap().is_some());
        assert!(outcome(p, Raw::File(&json!(42))).unwrap().is_some());
        assert!(outcome(p, Raw::File(&json!("42"))).unwrap().is_some());
        let too_big = format!("{}0", u64::MAX);
        for raw in [
            Raw::Env("0"),
            Raw::Env("-1"),
            Raw::Env("1.5"),
            Raw::Env("12kb"),
            Raw::Env(&too_big),
        ] {
            assert!(is_err(p, raw));
        }
        for v in [json!(0), json!(-3), json!(2.5), json!(true)] {
            assert!(is_err(p, Raw::File(&v)));
        }
        assert!(is_err("rustagent.export_timeout_ms", Raw::Env("0")));
        assert!(is_err("rustagent.export_timeout_ms", Raw::Env("1s")));
    }

    #[test]
    fn lists_are_trimmed_lowercased_and_deduplicated() {
        let mut cfg = Config::defaults("svc");
        let list = json!(["JSON", "", "text/Plain", null, "json"]);
        let raws = [Raw::Env(" JSON, ,text/Plain,json,"), Raw::File(&list)];
        for raw in raws {
            field("data_capture.allowed_content_types").store(
                &mut cfg,
                field("data_capture.allowed_content_types")
                    .parse(raw)
                    .unwrap()
                    .unwrap(),
            );
            assert_eq!(
                cfg.data_capture.allowed_content_types,
                ["json", "text/plain"]
            );
        }
        assert!(is_err(
            "data_capture.allowed_content_types",
            Raw::File(&json!({"a": 1}))
        ));
        assert!(is_err(
            "data_capture.allowed_content_types",
            Raw::File(&json!([["nested"]]))
        ));
    }

    #[test]
    fn enums_case_insensitive_and_errors_list_accepted_names() {
        let ok = [
            ("reporting.trace_reporter_type", "otlp_http"),
            ("reporting.metric_reporter_type", "prometheus"),
            (
                "reporting.metric_reporter_type",
                "metric_reporter_type_logging",
            ),
            ("propagation_formats", "b3"),
        ];
        for (path, v) in ok {
            assert!(outcome(path, Raw::Env(v)).unwrap().is_some(), "{path}={v}");
        }
        let e = outcome("reporting.trace_reporter_type", Raw::Env("JAEGER")).unwrap_err();
        assert_eq!(
            e,
            Invalid {
                got: "\"JAEGER\"".into(),
                expected: "one of OTLP, OTLP_HTTP, ZIPKIN, LOGGING, NONE".into()
            }
        );
        let e = outcome("propagation_formats", Raw::Env("B3,W3C")).unwrap_err();
        assert_eq!(
            e,
            Invalid {
                got: "\"W3C\"".into(),
                expected: "one of TRACECONTEXT, B3".into()
            }
        );
        let e = outcome("reporting.metric_reporter_type", Raw::File(&json!(1))).unwrap_err();
        assert!(
            e.expected.contains("METRIC_REPORTER_TYPE_PROMETHEUS"),
            "{e:?}"
        );
    }

    #[test]
    fn sql_statement_modes() {
        let f = field("rustagent.sql.statement");
        assert_eq!(f.env_var(), "HT_RUSTAGENT_SQL_STATEMENT");
        for (raw, want) in [
            ("full", StatementCapture::Full),
            ("SANITIZED", StatementCapture::Sanitized),
            (" Off ", StatementCapture::Off),
        ] {
            let mut cfg = Config::defaults("svc");
            f.store(&mut cfg, f.parse(Raw::Env(raw)).unwrap().unwrap());
            assert_eq!(cfg.rustagent.sql.statement, want, "{raw:?}");
        }
        assert_eq!(
            Config::defaults("svc").rustagent.sql.statement,
            StatementCapture::Full
        );
        let e = outcome("rustagent.sql.statement", Raw::Env("obfuscated")).unwrap_err();
        assert_eq!(
            e,
            Invalid {
                got: "\"obfuscated\"".into(),
                expected: "one of full, sanitized, off".into()
            }
        );
        assert!(is_err("rustagent.sql.statement", Raw::File(&json!(true))));
    }

    #[test]
    fn maps() {
        assert_eq!(
            split_pairs(" a = 1 ,, b=x=y ").unwrap(),
            [("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert_eq!(split_pairs("a=1,oops").unwrap_err(), "oops");
        assert_eq!(split_pairs("=v").unwrap_err(), "=v");
        assert!(is_err("resource_attributes", Raw::Env("a=1,b")));
        assert!(is_err(
            "resource_attributes",
            Raw::File(&json!({"a": {"b": 1}}))
        ));
        assert!(is_err("resource_attributes", Raw::File(&json!(["a=1"]))));
        assert!(outcome(
            "resource_attributes",
            Raw::File(&json!({"a": 1, "b": true, "c": null}))
        )
        .unwrap()
        .is_some());
    }

    #[test]
    fn token_value_never_in_invalid() {
        let secret = "s3cr3t-token";
        for v in [json!({ "x": secret }), json!([secret])] {
            let e = outcome("reporting.token", Raw::File(&v)).unwrap_err();
            assert_eq!(e.got, REDACTED);
            assert!(!format!("{e:?}").contains(secret));
        }
    }
}
