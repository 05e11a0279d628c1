//! Export: the reporter chosen by `reporting.trace_reporter_type`, behind our bounded batch
//! processor, with the resource of `resource.rs` and the sampler of `sampler.rs`.

pub(crate) mod batch;
pub(crate) mod encode;
pub(crate) mod finished;
#[cfg(any(feature = "otlp-http", feature = "zipkin"))]
pub(crate) mod http_client;
pub(crate) mod json;
pub(crate) mod logging;
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
pub(crate) mod otlp;
#[cfg(feature = "otlp-grpc")]
mod otlp_grpc;
#[cfg(feature = "otlp-http")]
mod otlp_http;
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
mod partial;
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
mod resend;
pub(crate) mod resource;
pub(crate) mod retry;
pub(crate) mod sampler;
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
mod scratch;
pub(crate) mod size;
#[cfg(feature = "zipkin")]
pub(crate) mod zipkin;

use std::fmt;
use std::sync::Arc;

use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};

use crate::config::{Config, Reporting, TraceReporterType};
pub(crate) use batch::SpanSink;
pub use batch::{BatchExporter, ExportStats};
pub use finished::FinishedSpan;

/// Why the exporter could not be built; the message never holds a token or header value.
#[derive(Debug, Clone)]
pub struct ExportError(String);

impl ExportError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        ExportError(msg.into())
    }
}
impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ExportError {}

/// The headers sent with every export: `OTEL_EXPORTER_OTLP_HEADERS`, then the reporting token as
/// `authorization: Bearer` unless those headers already carry an `authorization`.
#[cfg_attr(
    not(any(feature = "otlp-grpc", feature = "otlp-http", feature = "zipkin")),
    allow(dead_code)
)]
pub(crate) fn export_headers(reporting: &Reporting) -> Vec<(String, String)> {
    let mut h = reporting.headers.clone();
    if let Some(token) = &reporting.token {
        if !h
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            h.push(("authorization".into(), format!("Bearer {token}")));
        }
    }
    h
}

/// The export headers, checked as HTTP headers (OTLP/HTTP and Zipkin): a token or an
/// `OTEL_EXPORTER_OTLP_HEADERS` value that cannot be sent is a start-up error, as it is for gRPC,
/// not a failure of every export. The message names the header, never its value.
#[cfg(any(feature = "otlp-http", feature = "zipkin"))]
pub(crate) fn checked_http_headers(
    reporting: &Reporting,
) -> Result<Vec<(String, String)>, ExportError> {
    let headers = export_headers(reporting);
    for (k, v) in &headers {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err(ExportError::new(format!(
                "export header name {k:?} is not a valid HTTP header name"
            )));
        }
        if http::HeaderValue::from_str(v).is_err() {
            return Err(ExportError::new(format!(
                "the value of export header {k:?} is not a valid HTTP header value"
            )));
        }
    }
    Ok(headers)
}

/// The error and its sources, as one line; a source whose text the line already holds (rustls and
/// hyper repeat their cause) is left out.
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = e.source();
    }
    out
}

/// The PEM bytes of `reporting.cert_file`, read once at start-up.
#[cfg_attr(
    not(any(
        all(feature = "otlp-grpc", feature = "tls"),
        feature = "otlp-http",
        feature = "zipkin"
    )),
    allow(dead_code)
)]
pub(crate) fn read_cert(reporting: &Reporting) -> Result<Option<Vec<u8>>, ExportError> {
    match &reporting.cert_file {
        None => Ok(None),
        Some(p) => std::fs::read(p)
            .map(Some)
            .map_err(|e| ExportError::new(format!("reporting.cert_file {}: {e}", p.display()))),
    }
}

/// The installed pipeline: the provider (kept to shut it down) and the export counters.
pub(crate) struct Pipeline {
    pub provider: SdkTracerProvider,
    pub stats: Arc<ExportStats>,
    /// The spans' resource, which the metrics share (one `service.instance.id`).
    pub resource: opentelemetry_sdk::Resource,
    /// Where the agent's own server spans go, with the sampler they are sampled by; `None` when
    /// nothing is exported (`enabled: false`).
    pub spans: Option<(SpanSink, opentelemetry_sdk::trace::Sampler)>,
}

/// The pipeline around an exporter of the application's own (`Agent::with_exporter`).
pub(crate) fn with_exporter<E: SpanExporter + 'static>(exporter: E, config: &Config) -> Pipeline {
    with_exporter_to(exporter, config, "the application's exporter".into())
}

/// `"OTLP http://collector:4317"`: the reporter and where it sends, for log lines.
fn destination(config: &Config) -> String {
    format!(
        "{:?} {}",
        config.reporting.trace_reporter_type,
        config.reporting.effective_endpoint()
    )
}

fn with_exporter_to<E: SpanExporter + 'static>(
    exporter: E,
    config: &Config,
    destination: String,
) -> Pipeline {
    with_borrowing_exporter_to(batch::Owned(exporter), config, destination)
}

/// The pipeline around a [`BatchExporter`] of the application's own
/// (`Agent::with_batch_exporter`).
pub(crate) fn with_borrowing_exporter<E: BatchExporter>(exporter: E, config: &Config) -> Pipeline {
    with_borrowing_exporter_to(exporter, config, "the application's exporter".into())
}

fn with_borrowing_exporter_to<E: BatchExporter>(
    mut exporter: E,
    config: &Config,
    destination: String,
) -> Pipeline {
    let resource = resource::build(config);
    exporter.set_resource(&resource);
    with_batch_exporter(exporter, resource, config, destination, Arc::default())
}

/// The pipeline around an exporter that borrows each batch (the agent's OTLP exporters, built for
/// `resource`), with counters it already holds (it counts the spans a collector rejected in a
/// partial success).
fn with_batch_exporter<E: BatchExporter>(
    exporter: E,
    resource: opentelemetry_sdk::Resource,
    config: &Config,
    destination: String,
    stats: Arc<ExportStats>,
) -> Pipeline {
    let settings = batch::BatchSettings::from_config(config, destination);
    let processor = batch::BatchProcessor::borrowing(exporter, settings, stats.clone());
    let sink = processor.sink();
    let sampler = sampler::build(config);
    let provider = SdkTracerProvider::builder()
        // Set explicitly: the SDK would otherwise read `OTEL_TRACES_SAMPLER` from the process
        // environment behind the configuration (and `ConfigBuilder::env_vars`).
        .with_sampler(sampler.clone())
        .with_resource(resource.clone())
        .with_span_processor(processor)
        .build();
    Pipeline {
        provider,
        stats,
        resource,
        spans: Some((sink, sampler)),
    }
}

/// An exporter that discards (reporter type NONE): spans are still created and propagated.
#[derive(Debug)]
struct NoopExporter;
impl SpanExporter for NoopExporter {
    async fn export(
        &self,
        _batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

#[allow(dead_code)] // used only when a reporter's feature is off
fn missing(feature: &str, ty: TraceReporterType) -> ExportError {
    ExportError::new(format!(
        "reporting.trace_reporter_type {ty:?} needs the `{feature}` cargo feature of hypertrace, which is off"
    ))
}

/// `enabled: false`: a provider without processors, so spans are never recorded or sent.
pub(crate) fn disabled(config: &Config) -> Pipeline {
    Pipeline {
        provider: SdkTracerProvider::builder().build(),
        stats: Arc::new(ExportStats::default()),
        resource: resource::build(config),
        spans: None,
    }
}

/// Builds the pipeline for `config`. Must run inside a tokio runtime (tonic's channel needs one).
pub(crate) fn build(config: &Config) -> Result<Pipeline, ExportError> {
    let ty = config.reporting.trace_reporter_type;
    // Unused when no network reporter is built in.
    #[cfg_attr(
        not(any(feature = "otlp-grpc", feature = "otlp-http", feature = "zipkin")),
        allow(unused_variables)
    )]
    let to = destination(config);
    Ok(match ty {
        TraceReporterType::Logging => {
            with_exporter_to(logging::LoggingExporter::default(), config, "stdout".into())
        }
        TraceReporterType::None => with_exporter_to(NoopExporter, config, "nowhere".into()),
        #[cfg(feature = "otlp-grpc")]
        TraceReporterType::Otlp => {
            let (stats, resource) = (Arc::new(ExportStats::default()), resource::build(config));
            let exporter = otlp_grpc::build(config, &resource, stats.clone())?;
            with_batch_exporter(exporter, resource, config, to, stats)
        }
        #[cfg(not(feature = "otlp-grpc"))]
        TraceReporterType::Otlp => return Err(missing("otlp-grpc", ty)),
        #[cfg(feature = "otlp-http")]
        TraceReporterType::OtlpHttp => {
            let (stats, resource) = (Arc::new(ExportStats::default()), resource::build(config));
            let exporter = otlp_http::build(config, &resource, stats.clone())?;
            with_batch_exporter(exporter, resource, config, to, stats)
        }
        #[cfg(not(feature = "otlp-http"))]
        TraceReporterType::OtlpHttp => return Err(missing("otlp-http", ty)),
        #[cfg(feature = "zipkin")]
        TraceReporterType::Zipkin => {
            let headers = checked_http_headers(&config.reporting)?;
            let client = http_client::build(&config.reporting, config.rustagent.export_timeout)?;
            let exporter =
                zipkin::ZipkinExporter::new(client, config.reporting.effective_endpoint(), headers);
            with_exporter_to(exporter, config, to)
        }
        #[cfg(not(feature = "zipkin"))]
        TraceReporterType::Zipkin => return Err(missing("zipkin", ty)),
    })
}
