//! [`ConfigBuilder`]: defaults < code < config file < `OTEL_*` variables < `HT_*` variables.

use super::env::{self, EnvVars, OtelEndpoint, CONFIG_FILE_VAR};
use super::error::ConfigSource;
use super::{file, Config, ConfigError, ConfigWarning, TraceReporterType};
use std::path::PathBuf;

/// Builds a [`Config`] from defaults, code, the config file and the environment.
///
/// ```
/// # use hypertrace_runtime::config::ConfigBuilder;
/// let (config, warnings) = ConfigBuilder::new("orders")
///     .with(|c| c.data_capture.http_body.response = false)
///     .env_vars([("HT_ENABLED".to_string(), "false".to_string())])
///     .load()
///     .unwrap();
/// assert!(!config.enabled && !config.data_capture.http_body.response && warnings.is_empty());
/// ```
pub struct ConfigBuilder {
    config: Config,
    file: Option<PathBuf>,
    env: Option<Vec<(String, String)>>,
}

impl ConfigBuilder {
    /// Starts from [`Config::defaults`] with this service name (normally the binary's package name).
    pub fn new(default_service_name: &str) -> Self {
        ConfigBuilder {
            config: Config::defaults(default_service_name),
            file: None,
            env: None,
        }
    }

    /// Sets the service name in code (the file and the environment may still override it).
    pub fn service_name(mut self, name: &str) -> Self {
        self.config.service_name = name.to_owned();
        self
    }

    /// The config file to read when `HT_CONFIG_FILE` is not set. A named file must exist and parse.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Edits the configuration in code (the file and the environment may still override it).
    pub fn with(mut self, edit: impl FnOnce(&mut Config)) -> Self {
        edit(&mut self.config);
        self
    }

    /// Uses these variables instead of the process environment (for tests and embedding).
    pub fn env_vars(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = Some(vars.into_iter().collect());
        self
    }

    /// Applies the file and the environment. Errors name the source, the bad value and what was
    /// expected; warnings (unknown keys or variables, a world-writable file) are for the caller to log.
    pub fn load(self) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        let env = match self.env {
            Some(vars) => EnvVars::from_pairs(vars),
            None => EnvVars::from_process(),
        };
        let mut cfg = self.config;
        let mut warnings = Vec::new();
        // Code counts as having set the reporter type when it changed it from the default.
        let mut type_set =
            cfg.reporting.trace_reporter_type != Config::defaults("").reporting.trace_reporter_type;
        let file = env
            .get(CONFIG_FILE_VAR)
            .map(|p| PathBuf::from(p.trim()))
            .or(self.file);
        if let Some(path) = file {
            type_set |= file::apply(&path, &mut cfg, &mut warnings)?
                .contains(&"reporting.trace_reporter_type");
        }
        let outcome = env::apply(&env, &mut cfg, &mut warnings)?;
        type_set |= outcome.applied.contains(&"reporting.trace_reporter_type");
        // `OTEL_EXPORTER_OTLP_PROTOCOL` picks between the two OTLP reporters; it does not replace a
        // Zipkin or logging reporter that code or the file chose.
        if let Some(t) = outcome.otel_protocol {
            let otlp = matches!(
                cfg.reporting.trace_reporter_type,
                TraceReporterType::Otlp | TraceReporterType::OtlpHttp
            );
            if !type_set || otlp {
                cfg.reporting.trace_reporter_type = t;
                type_set = true;
            }
        }
        resolve_endpoint(&mut cfg, type_set, outcome.otel_endpoint);
        validate_code_values(&cfg)?;
        Ok((cfg, warnings))
    }
}

/// The reporter type an endpoint's path implies: `/api/v2/spans` is Zipkin, `/v1/traces` OTLP/HTTP.
fn reporter_for_endpoint(endpoint: &str) -> Option<TraceReporterType> {
    let path = endpoint
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    if path.ends_with("/api/v2/spans") {
        Some(TraceReporterType::Zipkin)
    } else if path.ends_with("/v1/traces") {
        Some(TraceReporterType::OtlpHttp)
    } else {
        None
    }
}

/// Applies the `OTEL_EXPORTER_OTLP_*ENDPOINT` fallback and the endpoint-shape inference.
///
/// The OTLP variables are ignored when the reporter type was explicitly set to a non-OTLP one (a Zipkin
/// endpoint from the file must not be replaced by an OTLP collector's address).
fn resolve_endpoint(cfg: &mut Config, type_set: bool, otel: Option<OtelEndpoint>) {
    let reporting = &mut cfg.reporting;
    let otlp = matches!(
        reporting.trace_reporter_type,
        TraceReporterType::Otlp | TraceReporterType::OtlpHttp
    );
    if !type_set || otlp {
        match otel {
            Some(OtelEndpoint::Traces(url)) => reporting.endpoint = Some(url),
            Some(OtelEndpoint::Base(base)) => {
                reporting.endpoint = Some(match reporting.trace_reporter_type {
                    TraceReporterType::OtlpHttp => {
                        format!("{}/v1/traces", base.trim_end_matches('/'))
                    }
                    _ => base,
                });
                // A base URL says nothing about the protocol: no inference from its shape.
                return;
            }
            None => {}
        }
    }
    if !type_set {
        if let Some(t) = reporting
            .endpoint
            .as_deref()
            .and_then(reporter_for_endpoint)
        {
            reporting.trace_reporter_type = t;
        }
    }
}

/// The file and the environment only accept positive sizes and durations; a zero left at the end
/// can only come from code.
fn validate_code_values(cfg: &Config) -> Result<(), ConfigError> {
    let (dc, ra) = (&cfg.data_capture, &cfg.rustagent);
    let positive = [
        (
            "data_capture.body_max_size_bytes",
            dc.body_max_size_bytes as u128,
        ),
        (
            "data_capture.body_max_processing_size_bytes",
            dc.body_max_processing_size_bytes as u128,
        ),
        ("rustagent.max_queue_size", ra.max_queue_size as u128),
        (
            "rustagent.max_export_batch_size",
            ra.max_export_batch_size as u128,
        ),
        (
            "rustagent.scheduled_delay_ms",
            ra.scheduled_delay.as_millis(),
        ),
        ("rustagent.export_timeout_ms", ra.export_timeout.as_millis()),
        ("rustagent.max_queue_bytes", ra.max_queue_bytes as u128),
        (
            "rustagent.max_header_value_bytes",
            ra.max_header_value_bytes as u128,
        ),
        (
            "rustagent.shutdown_timeout_ms",
            ra.shutdown_timeout.as_millis(),
        ),
        (
            "rustagent.metric_export_interval_ms",
            ra.metric_export_interval.as_millis(),
        ),
        ("rustagent.filter_budget_ms", ra.filter_budget.as_millis()),
    ];
    match positive.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(ConfigError::value(
            ConfigSource::Code {
                key: key.to_string(),
            },
            "0",
            "a value greater than 0",
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{load_with, write_file, SVC};
    use super::super::{MetricReporterType, PropagationFormat};
    use super::*;
    use std::time::Duration;

    type Vars = &'static [(&'static str, &'static str)];

    fn builder(env: &[(&str, &str)]) -> ConfigBuilder {
        ConfigBuilder::new(SVC).env_vars(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_without_any_source() {
        assert_eq!(
            builder(&[]).load().unwrap(),
            (Config::defaults(SVC), vec![])
        );
    }

    #[test]
    fn code_edits_take_effect() {
        let (cfg, _) = builder(&[])
            .service_name("from-code")
            .with(|c| {
                c.enabled = false;
                c.propagation_formats = vec![PropagationFormat::B3];
                c.reporting.metric_reporter_type = MetricReporterType::None;
                c.rustagent.scheduled_delay = Duration::from_millis(5);
            })
            .load()
            .unwrap();
        assert_eq!(cfg.service_name, "from-code");
        assert!(!cfg.enabled);
        assert_eq!(cfg.propagation_formats, [PropagationFormat::B3]);
        assert_eq!(cfg.reporting.metric_reporter_type, MetricReporterType::None);
        assert_eq!(cfg.rustagent.scheduled_delay, Duration::from_millis(5));
    }

    #[test]
    fn code_zero_sizes_are_errors() {
        let err = builder(&[])
            .with(|c| c.rustagent.max_queue_size = 0)
            .load()
            .unwrap_err();
        assert_eq!(
            err.source,
            ConfigSource::Code {
                key: "rustagent.max_queue_size".into()
            }
        );
        assert!(
            err.to_string()
                .contains("field rustagent.max_queue_size: got 0"),
            "{err}"
        );
        // ...unless a later source replaces the zero.
        let ok = builder(&[("HT_RUSTAGENT_MAX_QUEUE_SIZE", "7")])
            .with(|c| c.rustagent.max_queue_size = 0)
            .load();
        assert_eq!(ok.unwrap().0.rustagent.max_queue_size, 7);
    }

    #[test]
    fn precedence_code_then_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            &dir,
            "p.yaml",
            "service_name: from-file\ndata_capture:\n  body_max_size_bytes: 200\n",
        );
        let code = |b: ConfigBuilder| {
            b.service_name("from-code")
                .with(|c| c.data_capture.body_max_size_bytes = 100)
        };
        let cases: [(Vars, bool, &str, usize); 4] = [
            (&[], false, "from-code", 100),
            (&[], true, "from-file", 200),
            (&[("HT_SERVICE_NAME", "from-env")], true, "from-env", 200),
            (
                &[
                    ("HT_DATA_CAPTURE_BODY_MAX_SIZE_BYTES", "300"),
                    ("OTEL_SERVICE_NAME", "from-otel"),
                ],
                true,
                "from-otel",
                300,
            ),
        ];
        for (env, with_file, name, size) in cases {
            let b = code(builder(env));
            let b = if with_file { b.config_file(&file) } else { b };
            let cfg = b.load().unwrap().0;
            assert_eq!(
                (
                    cfg.service_name.as_str(),
                    cfg.data_capture.body_max_size_bytes
                ),
                (name, size),
                "{env:?} {with_file}"
            );
        }
    }

    #[test]
    fn ht_config_file_wins_over_the_named_file() {
        let dir = tempfile::tempdir().unwrap();
        let named = write_file(&dir, "named.yaml", "service_name: named\n");
        let from_env = write_file(&dir, "env.json", r#"{"serviceName": "from-env-file"}"#);
        let env = [(CONFIG_FILE_VAR, from_env.to_str().unwrap())];
        assert_eq!(
            builder(&env)
                .config_file(&named)
                .load()
                .unwrap()
                .0
                .service_name,
            "from-env-file"
        );
        let missing = dir.path().join("missing.yaml");
        let env = [(CONFIG_FILE_VAR, missing.to_str().unwrap())];
        assert!(
            builder(&env).config_file(&named).load().is_err(),
            "HT_CONFIG_FILE names a missing file"
        );
    }

    /// (env, file content, expected endpoint, expected reporter type)
    const ENDPOINTS: &[(Vars, &str, Option<&str>, TraceReporterType)] = &[
        // OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: /v1/traces is appended for OTLP_HTTP, with one slash.
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://api.honeycomb.io/"),
                ("HT_REPORTING_TRACE_REPORTER_TYPE", "otlp_http"),
            ],
            "",
            Some("https://api.honeycomb.io/v1/traces"),
            TraceReporterType::OtlpHttp,
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")],
            "reporting: {trace_reporter_type: OTLP_HTTP}",
            Some("http://collector:4318/v1/traces"),
            TraceReporterType::OtlpHttp,
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")],
            "",
            Some("http://collector:4317"),
            TraceReporterType::Otlp,
        ),
        // The traces endpoint is used as is, and beats the base one; its shape picks the reporter.
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://t:4318/v1/traces",
                ),
            ],
            "",
            Some("http://t:4318/v1/traces"),
            TraceReporterType::OtlpHttp,
        ),
        // OTEL_* beats the file, HT_* beats OTEL_*.
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://otel:4317")],
            "reporting: {endpoint: 'http://file:4317'}",
            Some("http://otel:4317"),
            TraceReporterType::Otlp,
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://otel:4317"),
                ("HT_REPORTING_ENDPOINT", "http://ht:4317"),
            ],
            "",
            Some("http://ht:4317"),
            TraceReporterType::Otlp,
        ),
        // A Zipkin reporter set explicitly keeps its endpoint: the OTLP variables are not for it.
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")],
            "reporting: {trace_reporter_type: ZIPKIN, endpoint: 'http://z:9411/api/v2/spans'}",
            Some("http://z:9411/api/v2/spans"),
            TraceReporterType::Zipkin,
        ),
        // Endpoint shape inference, when no source set the reporter type.
        (
            &[("HT_REPORTING_ENDPOINT", "http://z:9411/api/v2/spans")],
            "",
            Some("http://z:9411/api/v2/spans"),
            TraceReporterType::Zipkin,
        ),
        (
            &[],
            "reporting: {endpoint: 'http://c:4318/v1/traces/'}",
            Some("http://c:4318/v1/traces/"),
            TraceReporterType::OtlpHttp,
        ),
        (
            &[("HT_REPORTING_ENDPOINT", "http://c:4317")],
            "",
            Some("http://c:4317"),
            TraceReporterType::Otlp,
        ),
        // ...but an explicit type wins over the shape.
        (
            &[
                ("HT_REPORTING_ENDPOINT", "http://c:4318/v1/traces"),
                ("HT_REPORTING_TRACE_REPORTER_TYPE", "LOGGING"),
            ],
            "",
            Some("http://c:4318/v1/traces"),
            TraceReporterType::Logging,
        ),
        (
            &[],
            "reporting: {endpoint: 'http://c/api/v2/spans', traceReporterType: otlp}",
            Some("http://c/api/v2/spans"),
            TraceReporterType::Otlp,
        ),
    ];

    #[test]
    fn endpoint_fallbacks_and_shape_inference() {
        let dir = tempfile::tempdir().unwrap();
        for (env, yaml, endpoint, reporter) in ENDPOINTS {
            let file = write_file(&dir, "e.yaml", yaml);
            let (cfg, _) = load_with(Some(&file), env).unwrap();
            assert_eq!(
                (
                    cfg.reporting.endpoint.as_deref(),
                    cfg.reporting.trace_reporter_type
                ),
                (*endpoint, *reporter),
                "env {env:?}, file {yaml:?}"
            );
        }
    }

    #[test]
    fn code_set_reporter_type_is_not_overridden_by_shape() {
        let cfg = builder(&[("HT_REPORTING_ENDPOINT", "http://z:9411/api/v2/spans")])
            .with(|c| c.reporting.trace_reporter_type = TraceReporterType::Logging)
            .load()
            .unwrap()
            .0;
        assert_eq!(
            cfg.reporting.trace_reporter_type,
            TraceReporterType::Logging
        );
    }

    #[test]
    fn redact_headers_empty_list_means_redact_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sources = [
            (
                Some(write_file(
                    &dir,
                    "r.yaml",
                    "rustagent:\n  redact_headers: []\n",
                )),
                vec![],
            ),
            (
                Some(write_file(
                    &dir,
                    "r.json",
                    r#"{"rustagent": {"redactHeaders": []}}"#,
                )),
                vec![],
            ),
            (None, vec![("HT_RUSTAGENT_REDACT_HEADERS", ",")]),
        ];
        for (file, env) in sources {
            let cfg = load_with(file.as_deref(), &env).unwrap().0;
            assert!(cfg.rustagent.redact_headers.is_empty(), "{file:?} {env:?}");
        }
    }

    #[test]
    fn token_never_appears_in_errors_warnings_or_debug() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            &dir,
            "t.yaml",
            "reporting:\n  token: s3cr3t\n  secure: maybe\n",
        );
        let err = load_with(Some(&file), &[]).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("s3cr3t"));
        let (cfg, warnings) = load_with(
            None,
            &[
                ("HT_REPORTING_TOKEN", "s3cr3t"),
                ("HT_REPORTING_TOKEN_X", "s3cr3t"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.reporting.token.as_deref(), Some("s3cr3t"));
        assert!(!format!("{cfg:?} {warnings:?}").contains("s3cr3t"));
        assert_eq!(warnings.len(), 1);
    }
}
