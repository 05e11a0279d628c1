//! What the OTLP reporters share: the endpoint and the export headers as gRPC metadata. The span
//! exporters are `otlp_grpc.rs` and `otlp_http.rs`; the metric exporters (`metrics/otlp.rs`) use
//! these too.

#[cfg(feature = "otlp-grpc")]
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
