//! Export (CONTRACT §6): the reporter chosen by `reporting.trace_reporter_type`, behind our bounded
//! batch processor, with the resource of §5.4.

pub mod batch;
#[cfg(any(feature = "otlp-http", feature = "zipkin"))]
pub(crate) mod http_client;
pub mod json;
pub mod logging;
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
mod otlp;
pub mod resource;
#[cfg(feature = "zipkin")]
pub mod zipkin;

use std::fmt;
use std::sync::Arc;

use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};

use crate::config::{Config, Reporting, TraceReporterType};
pub use batch::ExportStats;

/// Why the exporter could not be built; the message never holds a token or header value.
#[derive(Debug, Clone)]
pub struct ExportError(String);

impl ExportError {
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
pub fn export_headers(reporting: &Reporting) -> Vec<(String, String)> {
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

/// The PEM bytes of `reporting.cert_file`, read once at start-up.
#[cfg_attr(
    not(any(feature = "otlp-grpc", feature = "otlp-http", feature = "zipkin")),
    allow(dead_code)
)]
pub fn read_cert(reporting: &Reporting) -> Result<Option<Vec<u8>>, ExportError> {
    match &reporting.cert_file {
        None => Ok(None),
        Some(p) => std::fs::read(p)
            .map(Some)
            .map_err(|e| ExportError::new(format!("reporting.cert_file {}: {e}", p.display()))),
    }
}

/// The installed pipeline: the provider (kept to shut it down) and the export counters.
pub struct Pipeline {
    pub provider: SdkTracerProvider,
    pub stats: Arc<ExportStats>,
    /// The spans' resource, which the metrics share (one `service.instance.id`).
    pub resource: opentelemetry_sdk::Resource,
}

pub fn with_exporter<E: SpanExporter + 'static>(mut exporter: E, config: &Config) -> Pipeline {
    let resource = resource::build(config);
    exporter.set_resource(&resource);
    let stats = Arc::new(ExportStats::default());
    let settings = batch::BatchSettings {
        max_queue_size: config.rustagent.max_queue_size,
        max_export_batch_size: config.rustagent.max_export_batch_size,
        scheduled_delay: config.rustagent.scheduled_delay,
        shutdown_timeout: config.rustagent.shutdown_timeout,
    };
    let provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_span_processor(batch::BatchProcessor::new(
            exporter,
            settings,
            stats.clone(),
        ))
        .build();
    Pipeline {
        provider,
        stats,
        resource,
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
pub fn disabled(config: &Config) -> Pipeline {
    Pipeline {
        provider: SdkTracerProvider::builder().build(),
        stats: Arc::new(ExportStats::default()),
        resource: resource::build(config),
    }
}

/// Builds the pipeline for `config`. Must run inside a tokio runtime (tonic's channel needs one).
pub fn build(config: &Config) -> Result<Pipeline, ExportError> {
    let ty = config.reporting.trace_reporter_type;
    Ok(match ty {
        TraceReporterType::Logging => with_exporter(logging::LoggingExporter::default(), config),
        TraceReporterType::None => with_exporter(NoopExporter, config),
        #[cfg(feature = "otlp-grpc")]
        TraceReporterType::Otlp => with_exporter(otlp::grpc(config)?, config),
        #[cfg(not(feature = "otlp-grpc"))]
        TraceReporterType::Otlp => return Err(missing("otlp-grpc", ty)),
        #[cfg(feature = "otlp-http")]
        TraceReporterType::OtlpHttp => with_exporter(otlp::http(config)?, config),
        #[cfg(not(feature = "otlp-http"))]
        TraceReporterType::OtlpHttp => return Err(missing("otlp-http", ty)),
        #[cfg(feature = "zipkin")]
        TraceReporterType::Zipkin => {
            let headers = checked_http_headers(&config.reporting)?;
            let client = http_client::build(&config.reporting, config.rustagent.export_timeout)?;
            let exporter =
                zipkin::ZipkinExporter::new(client, config.reporting.effective_endpoint(), headers);
            with_exporter(exporter, config)
        }
        #[cfg(not(feature = "zipkin"))]
        TraceReporterType::Zipkin => return Err(missing("zipkin", ty)),
    })
}
