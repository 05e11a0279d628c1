//! The HTTP client under opentelemetry-otlp's OTLP/HTTP exporter: reqwest's blocking client plus
//! what that exporter throws away.
//!
//! opentelemetry-otlp reports every transport failure as "network error", whether the connection
//! was refused, the name did not resolve or the certificate had expired, and it ignores a
//! partial-success response. This client keeps the transport error's text for the failure line
//! ([`WithDetail`]), and logs a response that rejected spans with the rejected count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use prost::Message;

/// The last transport error's text, shared between the client and the exporter wrapper.
pub(super) type Detail = Arc<Mutex<Option<String>>>;

/// Seconds since the epoch of the last partial-success line (at most one per 10 s).
static PARTIAL_LOGGED_AT: AtomicU64 = AtomicU64::new(0);

/// reqwest's blocking client, keeping failure detail and reading partial success.
#[derive(Debug)]
pub(super) struct DetailedClient {
    inner: reqwest::blocking::Client,
    endpoint: String,
    detail: Detail,
}

impl DetailedClient {
    /// Wraps `inner`, which sends to `endpoint` (named in log lines).
    pub(super) fn new(inner: reqwest::blocking::Client, endpoint: String) -> Self {
        DetailedClient {
            inner,
            endpoint,
            detail: Detail::default(),
        }
    }

    /// The slot where the last transport error is kept.
    pub(super) fn detail(&self) -> Detail {
        self.detail.clone()
    }
}

/// The error and its sources, as one line (`error sending request: ...: invalid peer certificate`).
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
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

/// The rejected count of a partial-success response, if it rejected anything.
pub(super) fn partial_success(body: &[u8]) -> Option<(i64, String)> {
    let resp = ExportTraceServiceResponse::decode(body).ok()?;
    let p = resp.partial_success?;
    (p.rejected_spans > 0 || !p.error_message.is_empty())
        .then_some((p.rejected_spans, p.error_message))
}

#[async_trait::async_trait]
impl HttpClient for DetailedClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        match self.inner.send_bytes(request).await {
            Ok(resp) => {
                *self.detail.lock().unwrap_or_else(|p| p.into_inner()) = None;
                if resp.status().is_success() {
                    if let Some((rejected, msg)) = partial_success(resp.body()) {
                        log_partial(&self.endpoint, rejected, &msg);
                    }
                }
                Ok(resp)
            }
            Err(e) => {
                // reqwest's error text names the URL, never header values.
                *self.detail.lock().unwrap_or_else(|p| p.into_inner()) = Some(chain(&*e));
                Err(e)
            }
        }
    }
}

fn log_partial(endpoint: &str, rejected: i64, msg: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let last = PARTIAL_LOGGED_AT.load(Ordering::Relaxed);
    if now.saturating_sub(last) < 10 && last != 0 {
        return;
    }
    PARTIAL_LOGGED_AT.store(now, Ordering::Relaxed);
    eprintln!(
        "hypertrace: the collector at {endpoint} accepted the export partially: {rejected} spans rejected ({msg:?})"
    );
}

/// An exporter whose failures carry the transport error that [`DetailedClient`] kept.
#[derive(Debug)]
pub(super) struct WithDetail<E> {
    inner: E,
    detail: Detail,
}

impl<E> WithDetail<E> {
    /// `inner` sends through the client that fills `detail`.
    pub(super) fn new(inner: E, detail: Detail) -> Self {
        WithDetail { inner, detail }
    }
}

impl<E: SpanExporter> SpanExporter for WithDetail<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self.inner.export(batch).await {
            Err(OTelSdkError::InternalFailure(msg)) => {
                let detail = self.detail.lock().unwrap_or_else(|p| p.into_inner()).take();
                Err(OTelSdkError::InternalFailure(match detail {
                    Some(d) => format!("{msg} ({d})"),
                    None => msg,
                }))
            }
            other => other,
        }
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

    #[test]
    fn partial_success_is_read_from_the_response() {
        let body = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(partial_success(&body), Some((3, "too old".into())));
        let ok = ExportTraceServiceResponse {
            partial_success: None,
        }
        .encode_to_vec();
        assert_eq!(partial_success(&ok), None);
        assert_eq!(partial_success(b""), None);
        assert_eq!(partial_success(b"\xff\xff garbage"), None);
    }
}
