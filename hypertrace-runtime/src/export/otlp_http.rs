//! The OTLP/HTTP reporter (`http/protobuf`): each batch is encoded once by `encode.rs` into a
//! reused buffer (gzipped when `rustagent.compression` asks) and POSTed with reqwest's blocking
//! client, which suits the batch processor's own thread.
//!
//! A transient failure (HTTP 429, 502, 503, 504, or no response at all) is resent with the same
//! bytes, after the server's `Retry-After` when it gave one ([`resend`]); the batch processor
//! retries beyond that. A transport failure keeps its cause in the failure line (refused, DNS, the
//! certificate's problem), and a 2xx response is read for a partial success, which is logged with
//! its rejected count.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::finished::FinishedSpan;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::Resource;

use super::batch::BatchExporter;
use super::resend::{resend, Again};
use super::scratch::Scratch;
use super::{error_chain, ExportError, ExportStats};
use crate::config::Config;

/// A response body is read up to this much (a partial success is a few bytes; a collector that
/// sends more is not worth the memory).
const MAX_RESPONSE_BYTES: u64 = 1 << 20;

/// The span exporter for `reporting.trace_reporter_type: OTLP_HTTP`.
#[derive(Debug)]
pub(super) struct HttpExporter {
    client: reqwest::blocking::Client,
    endpoint: String,
    /// The export headers, `content-type` and, with gzip, `content-encoding`.
    headers: HeaderMap,
    gzip: bool,
    timeout: Duration,
    scratch: Scratch,
    stats: Arc<ExportStats>,
    shut_down: AtomicBool,
}

/// Builds the exporter for `config`.
pub(super) fn build(
    config: &Config,
    resource: &Resource,
    stats: Arc<ExportStats>,
) -> Result<HttpExporter, ExportError> {
    let timeout = config.rustagent.export_timeout;
    let client = super::http_client::build(&config.reporting, timeout)?;
    let mut headers = HeaderMap::new();
    // Checked already: names and values are valid.
    for (k, v) in super::checked_http_headers(&config.reporting)? {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            headers.insert(k, v);
        }
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    let gzip = config.rustagent.compression == crate::config::Compression::Gzip;
    if gzip {
        headers.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static("gzip"),
        );
    }
    Ok(HttpExporter {
        client,
        endpoint: super::otlp::endpoint(config),
        headers,
        gzip,
        timeout,
        scratch: Scratch::new(resource),
        stats,
        shut_down: AtomicBool::new(false),
    })
}

/// Whether to resend after this status, per the OTLP/HTTP specification.
fn again(status: u16, retry_after: Option<Duration>) -> Again {
    match status {
        429 | 503 => retry_after.map_or(Again::Yes, Again::After),
        502 | 504 => Again::Yes,
        _ => Again::No,
    }
}

impl HttpExporter {
    fn send_once(&self, body: Bytes) -> Result<(), (OTelSdkError, Again)> {
        let network = |e: &(dyn std::error::Error + 'static)| {
            (
                // "network error" is what `retry::classify` reads as "no response at all".
                OTelSdkError::InternalFailure(format!(
                    "HTTP export failed: network error ({})",
                    error_chain(e)
                )),
                Again::Yes,
            )
        };
        let resp = self
            .client
            .post(&self.endpoint)
            .headers(self.headers.clone())
            .body(body)
            .send()
            .map_err(|e| network(&e))?;
        let status = resp.status();
        if status.is_success() {
            let mut got = Vec::new();
            // A response cut off mid-body is a transport failure: whether the spans were taken is
            // unknown, and OTLP receivers tolerate a duplicate better than a loss.
            resp.take(MAX_RESPONSE_BYTES)
                .read_to_end(&mut got)
                .map_err(|e| network(&e))?;
            super::partial::check(&self.endpoint, &got, &self.stats.rejected_spans);
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(super::retry::parse_retry_after);
        let code = status.as_u16();
        // The body is not echoed: it may repeat what the collector was sent.
        let mut msg = format!("HTTP export failed with status code: {code}");
        if let Some(d) = retry_after {
            msg.push_str(&format!(" (retry after {}s)", d.as_secs()));
        }
        Err((OTelSdkError::InternalFailure(msg), again(code, retry_after)))
    }

    /// The request body of `batch`: the encoded request, gzipped when configured.
    fn body(&self, batch: &[FinishedSpan]) -> Result<Bytes, OTelSdkError> {
        self.scratch.encode(batch, |buf| {
            if !self.gzip {
                return Ok(Bytes::from(std::mem::take(buf)));
            }
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(buf.len() / 4 + 64),
                flate2::Compression::default(),
            );
            gz.write_all(buf)
                .and_then(|_| gz.finish())
                .map(Bytes::from)
                .map_err(|e| {
                    OTelSdkError::InternalFailure(format!("gzip of the export failed: {e}"))
                })
        })
    }
}

impl BatchExporter for HttpExporter {
    async fn export(&self, batch: &[FinishedSpan]) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let body = self.body(batch)?;
        let result = resend(self.timeout, || {
            let r = self.send_once(body.clone());
            async move { r }
        })
        .await;
        // Uncompressed, the body is the encoder's buffer (gzipped, it is a new one).
        if !self.gzip {
            self.scratch.give_back(body);
        }
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
        for code in [429, 502, 503, 504] {
            assert_eq!(again(code, None), Again::Yes, "{code}");
        }
        for code in [400, 401, 403, 404, 413, 500, 501] {
            assert_eq!(again(code, None), Again::No, "{code}");
        }
        let d = Duration::from_secs(3);
        assert_eq!(again(429, Some(d)), Again::After(d));
        assert_eq!(again(503, Some(d)), Again::After(d));
        assert_eq!(again(400, Some(d)), Again::No);
    }
}
