//! OTLP reporters: gRPC (tonic) and HTTP/protobuf (blocking reqwest), from `opentelemetry-otlp`.

use opentelemetry_otlp::WithExportConfig;
#[cfg(feature = "otlp-http")]
use opentelemetry_otlp::WithHttpConfig;
#[cfg(feature = "otlp-grpc")]
use opentelemetry_otlp::WithTonicConfig;

use super::ExportError;
use crate::config::Config;

/// `secure: true` with an `http://` endpoint means TLS to the same host and port.
fn endpoint(config: &Config) -> String {
    let e = config.reporting.effective_endpoint();
    match e.strip_prefix("http://") {
        Some(rest) if config.reporting.secure => format!("https://{rest}"),
        _ => e,
    }
}

#[cfg(feature = "otlp-grpc")]
pub fn grpc(config: &Config) -> Result<opentelemetry_otlp::SpanExporter, ExportError> {
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
    let builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint(config))
        .with_timeout(config.rustagent.export_timeout)
        .with_metadata(metadata);
    #[cfg(feature = "tls")]
    let builder = {
        use tonic::transport::{Certificate, ClientTlsConfig};
        match super::read_cert(&config.reporting)? {
            Some(pem) => builder
                .with_tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))),
            // Public CAs (a hosted backend over gRPC): the platform's trusted roots.
            None if endpoint(config).starts_with("https://") => {
                builder.with_tls_config(ClientTlsConfig::new().with_native_roots())
            }
            None => builder,
        }
    };
    builder
        .build()
        .map_err(|e| ExportError::new(format!("OTLP/gRPC exporter: {e}")))
}

#[cfg(feature = "otlp-http")]
pub fn http(config: &Config) -> Result<opentelemetry_otlp::SpanExporter, ExportError> {
    let headers = super::checked_http_headers(&config.reporting)?;
    let client = super::http_client::build(&config.reporting, config.rustagent.export_timeout)?;
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint(config))
        .with_timeout(config.rustagent.export_timeout)
        .with_headers(headers.into_iter().collect())
        .with_http_client(client)
        .build()
        .map_err(|e| ExportError::new(format!("OTLP/HTTP exporter: {e}")))
}
