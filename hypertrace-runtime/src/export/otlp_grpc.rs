//! The OTLP/gRPC reporter: each batch is encoded once by `encode.rs` into a reused buffer and
//! handed to tonic as bytes, through a codec that passes them through unchanged, to
//! `TraceService/Export`.
//!
//! Why not opentelemetry-otlp's tonic exporter: it copies every span into `opentelemetry_proto`'s
//! message tree, and prost encodes that tree on the channel's runtime thread; here the export thread
//! writes the bytes once and the runtime thread only frames and sends them. A transient failure is
//! resent with the same bytes ([`resend`]); the batch processor retries beyond that. The response
//! is read for a partial success, which is logged with its rejected count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::finished::FinishedSpan;
use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::Resource;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::batch::BatchExporter;
use super::resend::{resend, Again};
use super::scratch::Scratch;
use super::{error_chain as chain, ExportError, ExportStats};
use crate::config::Config;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A codec whose messages are their encoded bytes: requests go out as they are, responses come
/// back undecoded (the caller decodes the few it reads).
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> Self::Encoder {
        PassThrough
    }

    fn decoder(&mut self) -> Self::Decoder {
        PassThrough
    }
}

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

/// The span exporter for `reporting.trace_reporter_type: OTLP`.
#[derive(Debug)]
pub(super) struct GrpcExporter {
    client: tonic::client::Grpc<Channel>,
    metadata: MetadataMap,
    /// Where the spans go, for the partial-success line.
    endpoint: String,
    timeout: Duration,
    scratch: Scratch,
    stats: Arc<ExportStats>,
    shut_down: AtomicBool,
}

/// Builds the exporter for `config`. Must run inside a tokio runtime: the channel's connection
/// runs there.
pub(super) fn build(
    config: &Config,
    resource: &Resource,
    stats: Arc<ExportStats>,
) -> Result<GrpcExporter, ExportError> {
    let metadata = super::otlp::grpc_metadata(config)?;
    let endpoint = super::otlp::endpoint(config);
    let timeout = config.rustagent.export_timeout;
    let ep = tonic::transport::Endpoint::from_shared(endpoint.clone()).map_err(|e| {
        ExportError::new(format!(
            "OTLP/gRPC exporter: invalid endpoint {endpoint:?}: {}",
            chain(&e)
        ))
    })?;
    let https = endpoint.starts_with("https://");
    #[cfg(feature = "tls")]
    let ep = {
        use tonic::transport::{Certificate, ClientTlsConfig};
        let tls = match super::read_cert(&config.reporting)? {
            Some(pem) => Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))),
            // Public CAs (a hosted backend over gRPC): the platform's trusted roots.
            None if https => Some(ClientTlsConfig::new().with_native_roots()),
            None => None,
        };
        match tls {
            Some(tls) => ep.tls_config(tls).map_err(|e| {
                ExportError::new(format!("OTLP/gRPC exporter: TLS set-up: {}", chain(&e)))
            })?,
            None => ep,
        }
    };
    #[cfg(not(feature = "tls"))]
    if https {
        return Err(ExportError::new(format!(
            "OTLP/gRPC exporter: {endpoint} needs TLS, and the `tls` cargo feature of hypertrace is off"
        )));
    }
    let channel = ep.timeout(timeout).connect_lazy();
    let mut client = tonic::client::Grpc::new(channel);
    if config.rustagent.compression == crate::config::Compression::Gzip {
        client = client
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip);
    }
    Ok(GrpcExporter {
        client,
        metadata,
        endpoint,
        timeout,
        scratch: Scratch::new(resource),
        stats,
        shut_down: AtomicBool::new(false),
    })
}

/// The failure as `retry::classify` reads it: the code, then the error chain only when tonic made
/// the status itself because the connection failed or broke (a collector's own message is not
/// echoed: it is the collector's, and may repeat what it was sent).
fn failure(status: &Status) -> OTelSdkError {
    let mut msg = format!(
        "OTLP/gRPC export failed with gRPC code: {:?}",
        status.code()
    );
    if let Some(src) = std::error::Error::source(status) {
        msg.push_str(": ");
        msg.push_str(&chain(src));
    }
    OTelSdkError::InternalFailure(msg)
}

/// Whether to resend, per the OTLP specification (`RESOURCE_EXHAUSTED` only with a `RetryInfo`).
fn again(status: &Status) -> Again {
    let delay = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .filter(|d| !d.is_zero());
    match status.code() {
        Code::ResourceExhausted => delay.map_or(Again::No, Again::After),
        Code::Unavailable => delay.map_or(Again::Yes, Again::After),
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Again::Yes,
        _ => Again::No,
    }
}

impl GrpcExporter {
    async fn send_once(&self, body: Bytes) -> Result<(), (OTelSdkError, Again)> {
        let mut client = self.client.clone();
        client.ready().await.map_err(|e| {
            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
            (
                OTelSdkError::InternalFailure(format!(
                    "OTLP/gRPC export failed with gRPC code: Unavailable: the channel is not ready: {}",
                    chain(&*e)
                )),
                Again::Yes,
            )
        })?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        let path = PathAndQuery::from_static(EXPORT_PATH);
        match client.unary(request, path, PassThrough).await {
            Ok(response) => {
                super::partial::check(
                    &self.endpoint,
                    response.get_ref(),
                    &self.stats.rejected_spans,
                );
                Ok(())
            }
            Err(status) => Err((failure(&status), again(&status))),
        }
    }
}

impl BatchExporter for GrpcExporter {
    async fn export(&self, batch: &[FinishedSpan]) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let body = self
            .scratch
            .encode(batch, |buf| Bytes::from(std::mem::take(buf)));
        let result = resend(self.timeout, || self.send_once(body.clone())).await;
        self.scratch.give_back(body);
        result
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.scratch.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resend_rules_follow_the_otlp_specification() {
        for code in [
            Code::Unavailable,
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::DataLoss,
        ] {
            assert_eq!(again(&Status::new(code, "x")), Again::Yes, "{code:?}");
        }
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::Internal,
            Code::Unimplemented,
            Code::Unknown,
        ] {
            assert_eq!(again(&Status::new(code, "x")), Again::No, "{code:?}");
        }
        let throttled = Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
        );
        assert_eq!(again(&throttled), Again::After(Duration::from_secs(2)));
    }

    #[test]
    fn failure_lines_keep_the_shape_the_retry_rules_read() {
        let from_collector = failure(&Status::new(Code::InvalidArgument, "secret echo"));
        let OTelSdkError::InternalFailure(msg) = &from_collector else {
            panic!("{from_collector:?}")
        };
        assert_eq!(
            msg,
            "OTLP/gRPC export failed with gRPC code: InvalidArgument"
        );
        assert_eq!(
            super::super::retry::classify(&from_collector),
            super::super::retry::Retry::No
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let transport = failure(&Status::from_error(Box::new(io)));
        let OTelSdkError::InternalFailure(msg) = &transport else {
            panic!("{transport:?}")
        };
        assert!(msg.contains("refused"), "{msg}");
        assert!(matches!(
            super::super::retry::classify(&transport),
            super::super::retry::Retry::After(_)
        ));
    }
}
