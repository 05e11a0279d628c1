//! The environment: `HT_*` variables (one per field of the table) and the OpenTelemetry fallbacks.
//!
//! An `OTEL_*` variable is used only where the corresponding `HT_*` variable is absent, and it is applied
//! before the `HT_*` variables, so: file < `OTEL_*` < `HT_*`. An empty (blank) variable counts as unset.
//!
//! | OpenTelemetry variable | used for |
//! |---|---|
//! | `OTEL_SERVICE_NAME` | `service_name` |
//! | `OTEL_RESOURCE_ATTRIBUTES` (`k=v,...`, values percent-decoded) | merged into `resource_attributes`; `HT_RESOURCE_ATTRIBUTES` keys win |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | `reporting.endpoint`, as is |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | `reporting.endpoint`, a base URL: `/v1/traces` is appended for OTLP_HTTP |
//! | `OTEL_SEMCONV_STABILITY_OPT_IN` (`http`, `http/dup`, `database`, `rpc`, ...) | `semconv`: which semantic-convention keys the spans carry |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, then `OTEL_EXPORTER_OTLP_TRACES_HEADERS` | `reporting.headers` (keys lower-cased, values percent-decoded) |
//! | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL` | `reporting.trace_reporter_type`: `grpc` is OTLP, `http/protobuf` OTLP_HTTP (not over a non-OTLP type set in code or the file) |
//! | [`OTEL_FALLBACKS`]: compression, timeouts, the batch processor's `OTEL_BSP_*`, the sampler | the `rustagent` field each names, parsed as its `HT_*` variable would be |
//! | `OTEL_METRICS_EXPORTER` (`otlp`, `prometheus`, `console`, `logging`, `none`; one of them) | `reporting.metric_reporter_type` |
//! | `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds) | `rustagent.metric_export_interval_ms` |
//!
//! The endpoint and protocol variables are resolved by the loader ([`OtelEndpoint`]), once the
//! reporter type is known.
//!
//! `service.name`: `HT_SERVICE_NAME`, else `OTEL_SERVICE_NAME`, wins over a `service.name` in the
//! resource attributes; without either, such an attribute is the service name (as the
//! OpenTelemetry SDKs read `OTEL_RESOURCE_ATTRIBUTES=service.name=...`).

use super::error::{ConfigError, ConfigSource, ConfigWarning, REDACTED};
use super::fields::{self, env_var_of, Raw, FIELDS, FOREIGN_SECTIONS};
use super::{Config, TraceReporterType};
use std::collections::{BTreeMap, BTreeSet};

/// The variable naming the config file.
pub(crate) const CONFIG_FILE_VAR: &str = "HT_CONFIG_FILE";

/// `HT_*` variables of other agents (outside their own `HT_<AGENT>_` prefix), accepted silently.
const FOREIGN_VARS: &[&str] = &[
    "HT_LOG_LEVEL",
    "HT_SKIP_MODULES",
    "HT_ENABLE_CONSOLE_SPAN_EXPORTER",
];

/// The variables that matter to the agent (`HT_*`, `OTEL_*`). A blank one counts as unset, except
/// for a list: `HT_RUSTAGENT_REDACT_HEADERS=` is an empty list (redact nothing).
pub(crate) struct EnvVars(BTreeMap<String, String>);

impl EnvVars {
    pub(crate) fn from_pairs(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        EnvVars(
            vars.into_iter()
                .filter(|(k, _)| k.starts_with("HT_") || k.starts_with("OTEL_"))
                .collect(),
        )
    }

    /// The process environment (non-UTF-8 names are skipped, values converted lossily).
    pub(crate) fn from_process() -> Self {
        Self::from_pairs(
            std::env::vars_os().filter_map(|(k, v)| {
                Some((k.into_string().ok()?, v.to_string_lossy().into_owned()))
            }),
        )
    }

    /// The value, unless the variable is unset or blank.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.get_even_blank(name).filter(|v| !v.trim().is_empty())
    }

    /// The value, also when blank.
    pub(crate) fn get_even_blank(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// `OTEL_*` variables that stand in for a `rustagent` field when its `HT_*` variable is absent, the
/// first one set winning: (variables, field path).
pub(crate) const OTEL_FALLBACKS: &[(&[&str], &str)] = &[
    (
        &[
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ],
        "rustagent.compression",
    ),
    (
        &[
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_BSP_EXPORT_TIMEOUT",
        ],
        "rustagent.export_timeout_ms",
    ),
    (&["OTEL_BSP_MAX_QUEUE_SIZE"], "rustagent.max_queue_size"),
    (&["OTEL_BSP_SCHEDULE_DELAY"], "rustagent.scheduled_delay_ms"),
    (
        &["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"],
        "rustagent.max_export_batch_size",
    ),
    (&["OTEL_TRACES_SAMPLER"], "rustagent.traces_sampler"),
    (&["OTEL_TRACES_SAMPLER_ARG"], "rustagent.traces_sampler_arg"),
];

/// An OpenTelemetry endpoint variable, to be applied by the loader once the reporter type is final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OtelEndpoint {
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the full URL, used as is.
    Traces(String),
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL.
    Base(String),
}

/// What the loader needs to know after the environment was applied.
#[derive(Debug, Default)]
pub(crate) struct EnvOutcome {
    /// The paths of the fields set by `HT_*` variables.
    pub applied: Vec<&'static str>,
    /// Set only when `HT_REPORTING_ENDPOINT` is absent.
    pub otel_endpoint: Option<OtelEndpoint>,
    /// `OTEL_EXPORTER_OTLP_*PROTOCOL`, set only when `HT_REPORTING_TRACE_REPORTER_TYPE` is absent.
    pub otel_protocol: Option<TraceReporterType>,
}

/// Applies the `OTEL_*` fallbacks, then the `HT_*` variables; warns about unknown `HT_*` variables.
pub(crate) fn apply(
    env: &EnvVars,
    cfg: &mut Config,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<EnvOutcome, ConfigError> {
    let mut outcome = EnvOutcome {
        otel_endpoint: apply_otel(env, cfg)?,
        otel_protocol: otel_protocol(env)?,
        ..EnvOutcome::default()
    };
    apply_otel_fallbacks(env, cfg)?;
    for field in FIELDS {
        let var = field.env_var();
        let value = if field.is_list() {
            env.get_even_blank(&var)
        } else {
            env.get(&var)
        };
        if let Some(value) = value {
            if field.apply(cfg, Raw::Env(value), || ConfigSource::Env {
                var: var.clone(),
            })? {
                outcome.applied.push(field.path);
            }
        }
    }
    service_name_over_resource(env, cfg);
    warnings.extend(
        unknown_vars(env)
            .into_iter()
            .map(|var| ConfigWarning::UnknownEnvVar { var }),
    );
    Ok(outcome)
}

fn apply_otel(env: &EnvVars, cfg: &mut Config) -> Result<Option<OtelEndpoint>, ConfigError> {
    let ht_absent = |path: &str| env.get(&env_var_of(path)).is_none();
    if ht_absent("service_name") {
        if let Some(name) = env.get("OTEL_SERVICE_NAME") {
            cfg.service_name = name.trim().to_owned();
        }
    }
    if let Some(opt_in) = env.get("OTEL_SEMCONV_STABILITY_OPT_IN") {
        cfg.semconv = super::SemconvOptIn::parse(Some(opt_in));
    }
    if let Some(attrs) = env.get("OTEL_RESOURCE_ATTRIBUTES") {
        cfg.resource_attributes
            .extend(otel_pairs("OTEL_RESOURCE_ATTRIBUTES", attrs, false)?);
    }
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        for (key, value) in env
            .get(var)
            .map(|v| otel_pairs(var, v, true))
            .transpose()?
            .unwrap_or_default()
        {
            let key = key.to_lowercase();
            cfg.reporting.headers.retain(|(k, _)| *k != key);
            cfg.reporting.headers.push((key, value));
        }
    }
    if let Some(v) = env.get("OTEL_METRICS_EXPORTER") {
        cfg.reporting.metric_reporter_type = otel_metrics_exporter(v)?;
    }
    if let Some(v) = env.get("OTEL_METRIC_EXPORT_INTERVAL") {
        cfg.rustagent.metric_export_interval = otel_millis("OTEL_METRIC_EXPORT_INTERVAL", v)?;
    }
    if !ht_absent("reporting.endpoint") {
        return Ok(None);
    }
    let traces = env
        .get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .map(|e| OtelEndpoint::Traces(e.trim().to_owned()));
    Ok(traces.or_else(|| {
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|e| OtelEndpoint::Base(e.trim().to_owned()))
    }))
}

/// [`OTEL_FALLBACKS`], each through its field's parser (errors name the `OTEL_*` variable).
fn apply_otel_fallbacks(env: &EnvVars, cfg: &mut Config) -> Result<(), ConfigError> {
    for (vars, path) in OTEL_FALLBACKS {
        if env.get(&env_var_of(path)).is_some() {
            continue;
        }
        let Some((var, value)) = vars.iter().find_map(|v| Some((*v, env.get(v)?))) else {
            continue;
        };
        let field = FIELDS
            .iter()
            .find(|f| f.path == *path)
            .expect("every fallback names a field of the table");
        field.apply(cfg, Raw::Env(value), || ConfigSource::Env {
            var: var.to_owned(),
        })?;
    }
    Ok(())
}

/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, unless
/// `HT_REPORTING_TRACE_REPORTER_TYPE` is set.
fn otel_protocol(env: &EnvVars) -> Result<Option<TraceReporterType>, ConfigError> {
    if env
        .get(&env_var_of("reporting.trace_reporter_type"))
        .is_some()
    {
        return Ok(None);
    }
    let found = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .into_iter()
    .find_map(|v| Some((v, env.get(v)?)));
    let Some((var, value)) = found else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "grpc" => Ok(Some(TraceReporterType::Otlp)),
        "http/protobuf" => Ok(Some(TraceReporterType::OtlpHttp)),
        _ => Err(ConfigError::value(
            ConfigSource::Env {
                var: var.to_owned(),
            },
            format!("{:?}", value.trim()),
            "grpc or http/protobuf (http/json is not supported)",
        )),
    }
}

/// See the module documentation: the service name variables beat a `service.name` resource
/// attribute, which otherwise becomes the service name.
fn service_name_over_resource(env: &EnvVars, cfg: &mut Config) {
    let by_variable =
        env.get(&env_var_of("service_name")).is_some() || env.get("OTEL_SERVICE_NAME").is_some();
    if let Some(name) = cfg.resource_attributes.remove("service.name") {
        if !by_variable && !name.is_empty() {
            cfg.service_name = name;
        }
    }
}

/// `k=v,...` with percent-decoded, trimmed values. `secret`: values (export headers) are never shown.
fn otel_pairs(var: &str, value: &str, secret: bool) -> Result<Vec<(String, String)>, ConfigError> {
    let pairs = fields::split_pairs(value).map_err(|item| {
        let got = if secret {
            REDACTED.to_owned()
        } else {
            format!("{item:?}")
        };
        ConfigError::value(
            ConfigSource::Env {
                var: var.to_owned(),
            },
            got,
            "comma-separated key=value pairs",
        )
    })?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k, percent_decode(&v).trim().to_owned()))
        .collect())
}

/// Decodes `%XX` escapes (W3C baggage style); a `%` not followed by two hex digits is kept as is.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `HT_*` variables that neither the table, nor `HT_CONFIG_FILE`, nor another agent knows.
fn unknown_vars(env: &EnvVars) -> Vec<String> {
    let known: BTreeSet<String> = FIELDS.iter().map(|f| f.env_var()).collect();
    let foreign_prefixes: Vec<String> = FOREIGN_SECTIONS
        .iter()
        .map(|s| format!("{}_", env_var_of(s)))
        .collect();
    env.0
        .keys()
        .filter(|var| var.starts_with("HT_"))
        .filter(|var| {
            !known.contains(*var)
                && *var != CONFIG_FILE_VAR
                && !FOREIGN_VARS.contains(&var.as_str())
        })
        .filter(|var| !foreign_prefixes.iter().any(|p| var.starts_with(p.as_str())))
        .cloned()
        .collect()
}

/// The metric reporter an `OTEL_METRICS_EXPORTER` value names (`console` is the logging one).
fn otel_metrics_exporter(value: &str) -> Result<super::MetricReporterType, ConfigError> {
    use super::MetricReporterType as T;
    Ok(match value.trim().to_ascii_lowercase().as_str() {
        "otlp" => T::Otlp,
        "prometheus" => T::Prometheus,
        "console" | "logging" => T::Logging,
        "none" => T::None,
        _ => {
            return Err(ConfigError::value(
                ConfigSource::Env {
                    var: "OTEL_METRICS_EXPORTER".into(),
                },
                format!("{value:?}"),
                "one of otlp, prometheus, console, none (a single exporter)",
            ))
        }
    })
}

/// A whole number of milliseconds greater than 0.
fn otel_millis(var: &str, value: &str) -> Result<std::time::Duration, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(std::time::Duration::from_millis(ms)),
        _ => Err(ConfigError::value(
            ConfigSource::Env {
                var: var.to_owned(),
            },
            format!("{value:?}"),
            "a whole number of milliseconds greater than 0",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{expected_config, load_with, CASES, SVC};
    use super::*;

    /// Every field of the table, set by its `HT_*` variable.
    #[test]
    fn every_field_takes_effect_from_its_env_var() {
        for case in CASES {
            let var = env_var_of(case.path);
            let (cfg, warnings) =
                load_with(None, &[(&var, case.env)]).unwrap_or_else(|e| panic!("{var}: {e}"));
            assert!(warnings.is_empty(), "{var}: {warnings:?}");
            assert_eq!(cfg, expected_config(case), "{var}={}", case.env);
            assert_ne!(cfg, Config::defaults(SVC), "{var}");
        }
    }

    #[test]
    fn blank_variables_are_unset_except_lists_which_become_empty() {
        let vars: Vec<(String, &str)> = FIELDS
            .iter()
            .filter(|f| !f.is_list())
            .map(|f| (f.env_var(), "  "))
            .collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            load_with(None, &vars).unwrap(),
            (Config::defaults(SVC), vec![])
        );
        let (cfg, _) = load_with(None, &[("HT_RUSTAGENT_REDACT_HEADERS", "")]).unwrap();
        assert!(
            cfg.rustagent.redact_headers.is_empty(),
            "empty: redact nothing"
        );
        let (cfg, _) = load_with(None, &[("HT_DATA_CAPTURE_ALLOWED_CONTENT_TYPES", " ")]).unwrap();
        assert!(cfg.data_capture.allowed_content_types.is_empty());
    }

    /// (variable, value, fragments the error must contain)
    const ENV_ERRORS: &[(&str, &str, &[&str])] = &[
        ("HT_ENABLED", "nope", &["invalid configuration: environment variable HT_ENABLED: got \"nope\", expected true or false"]),
        ("HT_DATA_CAPTURE_HTTP_BODY_RESPONSE", "1", &["HT_DATA_CAPTURE_HTTP_BODY_RESPONSE: got \"1\", expected true or false"]),
        ("HT_DATA_CAPTURE_BODY_MAX_SIZE_BYTES", "-5", &["HT_DATA_CAPTURE_BODY_MAX_SIZE_BYTES: got \"-5\", expected a whole number"]),
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "1s", &["HT_RUSTAGENT_SCHEDULED_DELAY_MS: got \"1s\"", "milliseconds"]),
        ("HT_REPORTING_TRACE_REPORTER_TYPE", "jaeger", &["got \"jaeger\", expected one of OTLP, OTLP_HTTP, ZIPKIN, LOGGING, NONE"]),
        ("HT_REPORTING_METRIC_REPORTER_TYPE", "statsd", &["got \"statsd\"", "METRIC_REPORTER_TYPE_PROMETHEUS", "PROMETHEUS"]),
        ("HT_PROPAGATION_FORMATS", "B3,jaeger", &["HT_PROPAGATION_FORMATS: got \"jaeger\", expected one of TRACECONTEXT, B3"]),
        ("HT_RESOURCE_ATTRIBUTES", "a=1,b", &["HT_RESOURCE_ATTRIBUTES: got \"b\"", "key=value"]),
        ("OTEL_RESOURCE_ATTRIBUTES", "a=1,b", &["environment variable OTEL_RESOURCE_ATTRIBUTES: got \"b\"", "key=value"]),
        ("OTEL_METRICS_EXPORTER", "otlp,prometheus", &["OTEL_METRICS_EXPORTER: got \"otlp,prometheus\"", "a single exporter"]),
        ("OTEL_METRIC_EXPORT_INTERVAL", "10s", &["OTEL_METRIC_EXPORT_INTERVAL: got \"10s\"", "milliseconds"]),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0", &["OTEL_METRIC_EXPORT_INTERVAL: got \"0\""]),
    ];

    #[test]
    fn env_errors_name_the_variable_value_and_expectation() {
        for (var, value, wanted) in ENV_ERRORS {
            let err = load_with(None, &[(var, value)]).unwrap_err();
            let msg = err.to_string();
            assert_eq!(
                err.source,
                ConfigSource::Env {
                    var: var.to_string()
                }
            );
            for w in *wanted {
                assert!(msg.contains(w), "{var}: {msg:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn header_values_never_appear_in_errors() {
        for var in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            let err = load_with(
                None,
                &[(var, "x-honeycomb-team=hc-s3cr3t,Bearer hc-s3cr3t")],
            )
            .unwrap_err();
            for shown in [err.to_string(), format!("{err:?}")] {
                assert!(!shown.contains("s3cr3t"), "{shown}");
                assert!(shown.contains(var) && shown.contains(REDACTED), "{shown}");
            }
        }
    }

    #[test]
    fn otel_fallbacks_apply_only_where_ht_is_absent() {
        let otel = [
            ("OTEL_SERVICE_NAME", "from-otel"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod%20eu,team=a%2Cb,k= v ",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://api.honeycomb.io:443",
            ),
        ];
        let cfg = load_with(None, &otel).unwrap().0;
        assert_eq!(cfg.service_name, "from-otel");
        let attrs: Vec<(&str, &str)> = cfg
            .resource_attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            attrs,
            [
                ("deployment.environment", "prod eu"),
                ("k", "v"),
                ("team", "a,b")
            ]
        );
        assert_eq!(
            cfg.reporting.endpoint.as_deref(),
            Some("https://api.honeycomb.io:443")
        );

        let mut both = otel.to_vec();
        both.extend([
            ("HT_SERVICE_NAME", "from-ht"),
            ("HT_RESOURCE_ATTRIBUTES", "team=ht"),
            ("HT_REPORTING_ENDPOINT", "http://ht:4317"),
        ]);
        let cfg = load_with(None, &both).unwrap().0;
        assert_eq!(cfg.service_name, "from-ht");
        assert_eq!(cfg.resource_attributes["team"], "ht");
        assert_eq!(cfg.resource_attributes["deployment.environment"], "prod eu");
        assert_eq!(cfg.reporting.endpoint.as_deref(), Some("http://ht:4317"));
    }

    #[test]
    fn otel_headers_are_lowercased_decoded_and_traces_specific_win() {
        let vars = [
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                " X-Honeycomb-Team = abc%3D%3D , X-Dataset=all",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-dataset=traces"),
        ];
        let cfg = load_with(None, &vars).unwrap().0;
        let want = [
            ("x-honeycomb-team".to_owned(), "abc==".to_owned()),
            ("x-dataset".to_owned(), "traces".to_owned()),
        ];
        assert_eq!(cfg.reporting.headers, want);
        assert!(
            !format!("{cfg:?}").contains("abc=="),
            "header values must not reach Debug"
        );
    }

    #[test]
    fn otel_metric_variables_apply_unless_ht_sets_the_field() {
        use crate::config::MetricReporterType as T;
        use std::time::Duration;
        for (value, want) in [
            ("prometheus", T::Prometheus),
            ("CONSOLE", T::Logging),
            ("logging", T::Logging),
            ("none", T::None),
            ("otlp", T::Otlp),
        ] {
            let cfg = load_with(None, &[("OTEL_METRICS_EXPORTER", value)])
                .unwrap()
                .0;
            assert_eq!(cfg.reporting.metric_reporter_type, want, "{value}");
        }
        let cfg = load_with(None, &[("OTEL_METRIC_EXPORT_INTERVAL", "1500")])
            .unwrap()
            .0;
        assert_eq!(
            cfg.rustagent.metric_export_interval,
            Duration::from_millis(1500)
        );
        let both = [
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            (
                "HT_REPORTING_METRIC_REPORTER_TYPE",
                "METRIC_REPORTER_TYPE_LOGGING",
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
            ("HT_RUSTAGENT_METRIC_EXPORT_INTERVAL_MS", "250"),
        ];
        let cfg = load_with(None, &both).unwrap().0;
        assert_eq!(cfg.reporting.metric_reporter_type, T::Logging);
        assert_eq!(
            cfg.rustagent.metric_export_interval,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn percent_decoding() {
        let cases = [
            ("a%20b", "a b"),
            ("100%", "100%"),
            ("%zz%4", "%zz%4"),
            ("%C3%A9t%C3%A9", "été"),
            ("plain", "plain"),
        ];
        for (raw, want) in cases {
            assert_eq!(percent_decode(raw), want);
        }
    }

    #[test]
    fn unknown_ht_variables_warn_and_others_are_silent() {
        let vars = [
            ("HT_SERVICE_NAME", "s"),
            ("HT_SERVICE_NAM", "typo"),
            ("HT_DATA_CAPTURE_HTTP_HEADER_REQUEST", "false"),
            ("HT_CONFIG_FILE", ""),
            ("HT_GOAGENT_USE_CUSTOM_BSP", "true"),
            ("HT_JAVAAGENT_FILTER_JAR_PATHS", "a.jar"),
            ("HT_REPORTING_OPA_ENABLED", "true"),
            ("HT_LOG_LEVEL", "debug"),
            ("OTEL_SOMETHING", "x"),
            ("PATH", "/bin"),
        ];
        let (cfg, warnings) = load_with(None, &vars).unwrap();
        assert_eq!(cfg.service_name, "s");
        let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "unknown environment variable HT_DATA_CAPTURE_HTTP_HEADER_REQUEST (ignored)",
                "unknown environment variable HT_SERVICE_NAM (ignored)",
            ]
        );
        assert!(!shown.concat().contains("typo"), "values are not shown");
    }

    /// Each OpenTelemetry fallback sets its field; its `HT_*` variable, when set, wins.
    #[test]
    fn otel_fallbacks_for_rustagent_settings() {
        use super::super::{Compression, TracesSampler};
        type Check = fn(&Config) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip", |c| {
                c.rustagent.compression == Compression::Gzip
            }),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "GZIP", |c| {
                c.rustagent.compression == Compression::Gzip
            }),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500", |c| {
                c.rustagent.export_timeout == std::time::Duration::from_millis(2500)
            }),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500", |c| {
                c.rustagent.export_timeout == std::time::Duration::from_millis(2500)
            }),
            ("OTEL_BSP_EXPORT_TIMEOUT", "2500", |c| {
                c.rustagent.export_timeout == std::time::Duration::from_millis(2500)
            }),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "77", |c| {
                c.rustagent.max_queue_size == 77
            }),
            ("OTEL_BSP_SCHEDULE_DELAY", "40", |c| {
                c.rustagent.scheduled_delay == std::time::Duration::from_millis(40)
            }),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "33", |c| {
                c.rustagent.max_export_batch_size == 33
            }),
            ("OTEL_TRACES_SAMPLER", "always_off", |c| {
                c.rustagent.traces_sampler == TracesSampler::AlwaysOff
            }),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1", |c| {
                c.rustagent.traces_sampler_arg == 0.1
            }),
        ];
        for (var, value, check) in cases {
            let cfg = load_with(None, &[(var, value)]).unwrap().0;
            assert!(check(&cfg), "{var}={value}: {:?}", cfg.rustagent);
            let path = OTEL_FALLBACKS
                .iter()
                .find(|(vars, _)| vars.contains(var))
                .unwrap()
                .1;
            let ht = env_var_of(path);
            let ht_value = match path {
                "rustagent.compression" => "none",
                "rustagent.traces_sampler" => "always_on",
                "rustagent.traces_sampler_arg" => "1",
                _ => "9",
            };
            let cfg = load_with(None, &[(var, value), (&ht, ht_value)]).unwrap().0;
            assert!(!check(&cfg), "{ht} must win over {var}");
        }
        // The signal-specific variable wins over the general one.
        let cfg = load_with(
            None,
            &[
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2000"),
                ("OTEL_BSP_EXPORT_TIMEOUT", "3000"),
            ],
        )
        .unwrap()
        .0;
        assert_eq!(
            cfg.rustagent.export_timeout,
            std::time::Duration::from_millis(2000)
        );
        assert_eq!(
            load_with(None, &[]).unwrap().0.rustagent.traces_sampler,
            TracesSampler::ParentBasedAlwaysOn
        );
    }

    #[test]
    fn otel_fallback_errors_name_the_otel_variable() {
        for (var, value, wanted) in [
            (
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                "zstd",
                "expected one of gzip, none",
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "5s", "milliseconds"),
            (
                "OTEL_TRACES_SAMPLER",
                "jaeger_remote",
                "parentbased_traceidratio",
            ),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5", "a number from 0 to 1"),
            ("OTEL_TRACES_SAMPLER_ARG", "half", "a number from 0 to 1"),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/json",
                "grpc or http/protobuf",
            ),
        ] {
            let msg = load_with(None, &[(var, value)]).unwrap_err().to_string();
            assert!(
                msg.contains(&format!("environment variable {var}: got")) && msg.contains(wanted),
                "{var}={value}: {msg}"
            );
        }
    }

    #[test]
    fn otel_protocol_picks_the_otlp_reporter() {
        let ty = |vars: &[(&str, &str)]| load_with(None, vars).unwrap().0.reporting;
        let r = ty(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]);
        assert_eq!(r.trace_reporter_type, TraceReporterType::OtlpHttp);
        let r = ty(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ]);
        assert_eq!(r.endpoint.as_deref(), Some("http://c:4318/v1/traces"));
        let r = ty(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ]);
        assert_eq!(r.trace_reporter_type, TraceReporterType::Otlp);
        let r = ty(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("HT_REPORTING_TRACE_REPORTER_TYPE", "OTLP_HTTP"),
        ]);
        assert_eq!(r.trace_reporter_type, TraceReporterType::OtlpHttp);
        // Not over a Zipkin reporter chosen in code.
        let (cfg, _) = super::super::ConfigBuilder::new(SVC)
            .with(|c| c.reporting.trace_reporter_type = TraceReporterType::Zipkin)
            .env_vars([("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "grpc".into())])
            .load()
            .unwrap();
        assert_eq!(cfg.reporting.trace_reporter_type, TraceReporterType::Zipkin);
    }

    #[test]
    fn service_name_variables_beat_a_service_name_resource_attribute() {
        let name = |vars: &[(&str, &str)]| {
            let c = load_with(None, vars).unwrap().0;
            assert!(!c.resource_attributes.contains_key("service.name"));
            c.service_name
        };
        let attr = ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attr,team=a");
        assert_eq!(name(&[attr]), "from-attr");
        assert_eq!(name(&[attr, ("OTEL_SERVICE_NAME", "otel")]), "otel");
        assert_eq!(name(&[attr, ("HT_SERVICE_NAME", "ht")]), "ht");
        assert_eq!(
            name(&[
                ("HT_RESOURCE_ATTRIBUTES", "service.name=x"),
                ("HT_SERVICE_NAME", "ht")
            ]),
            "ht"
        );
    }
}
