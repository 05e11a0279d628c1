//! OTLP reporters: gRPC (tonic) and HTTP/protobuf (blocking reqwest), from `opentelemetry-otlp`.
//!
//! Both use opentelemetry-otlp's retry policy inside one attempt (it honours gRPC `RetryInfo` and
//! HTTP `Retry-After` exactly, within `rustagent.export_timeout`); the batch processor retries the
//! batch beyond that while its queue has room. `rustagent.compression` gzips the requests.

use opentelemetry_otlp::WithExportConfig;
#[cfg(feature = "otlp-http")]
use opentelemetry_otlp::WithHttpConfig;

use super::ExportError;
use crate::config::Config;

/// `secure: true` with an `http://` endpoint means TLS to the same host and port.
pub(super) fn endpoint(config: &Config) -> String {
    let e = config.reporting.effective_endpoint();
    match e.strip_prefix("http://") {
        Some(rest) if config.reporting.secure => format!("https://{rest}"),
        _ => e,
    }
}

/// The export headers (`reporting.token`, `OTEL_EXPORTER_OTLP_HEADERS`) as gRPC metadata, for the
/// span and the metric exporters alike.
#[cfg(feature = "otlp-grpc")]
pub(crate) fn grpc_metadata(config: &Config) -> Result<tonic::metadata::MetadataMap, ExportError> {
    use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

    let mut metadata = MetadataMap::new();
    for (k, v) in super::export_headers(&config.reporting) {
        let key = MetadataKey::from_bytes(k.as_bytes()).map_err(|_| {
            ExportError::new(format!(
                "export header name {k:?} is not valid gRPC metadata"
            ))
        })?;
        // The value is never echoed: it may be a token.
        let val = MetadataValue::try_from(v.as_str()).map_err(|_| {
            ExportError::new(format!(
                "the value of export header {k:?} is not valid gRPC metadata"
            ))
        })?;
        metadata.insert(key, val);
    }
    Ok(metadata)
}

/// `None` for no compression. (opentelemetry-otlp then also looks at the process's
/// `OTEL_EXPORTER_OTLP_*COMPRESSION`, which our configuration has already read the same way.)
fn compression(config: &Config) -> Option<opentelemetry_otlp::Compression> {
    match config.rustagent.compression {
        crate::config::Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
        crate::config::Compression::None => None,
    }
}

/// The OTLP/HTTP exporter, over [`super::otlp_http_client::DetailedClient`].
#[cfg(feature = "otlp-http")]
pub(super) fn http(
    config: &Config,
) -> Result<super::otlp_http_client::WithDetail<opentelemetry_otlp::SpanExporter>, ExportError> {
    let headers = super::checked_http_headers(&config.reporting)?;
    let client = super::http_client::build(&config.reporting, config.rustagent.export_timeout)?;
    let endpoint = endpoint(config);
    let client = super::otlp_http_client::DetailedClient::new(client, endpoint.clone());
    let detail = client.detail();
    let builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(config.rustagent.export_timeout)
        .with_retry_policy(opentelemetry_otlp::RetryPolicy::recommended())
        .with_headers(headers.into_iter().collect())
        .with_http_client(client);
    let builder = match compression(config) {
        Some(c) => builder.with_compression(c),
        None => builder,
    };
    let exporter = builder
        .build()
        .map_err(|e| ExportError::new(format!("OTLP/HTTP exporter: {e}")))?;
    Ok(super::otlp_http_client::WithDetail::new(exporter, detail))
}
