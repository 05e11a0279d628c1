//! The blocking reqwest client shared by the OTLP/HTTP and Zipkin exporters.

use std::time::Duration;

use super::ExportError;
use crate::config::Reporting;

/// Builds the client on a throwaway thread: reqwest's blocking client starts its own runtime and
/// panics when built inside an async context, which is exactly where `#[hypertrace::main]` runs.
pub(crate) fn build(
    reporting: &Reporting,
    timeout: Duration,
) -> Result<reqwest::blocking::Client, ExportError> {
    let cert = super::read_cert(reporting)?;
    let _ = &cert; // unused without the `tls` feature
    std::thread::scope(|s| {
        s.spawn(|| {
            let builder = reqwest::blocking::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout);
            #[cfg(feature = "tls")]
            let builder = match &cert {
                Some(pem) => builder.add_root_certificate(
                    reqwest::Certificate::from_pem(pem)
                        .map_err(|e| ExportError::new(format!("reporting.cert_file: {e}")))?,
                ),
                None => builder,
            };
            builder
                .build()
                .map_err(|e| ExportError::new(format!("cannot build the HTTP client: {e}")))
        })
        .join()
        .unwrap_or_else(|_| Err(ExportError::new("the HTTP client builder panicked")))
    })
}
