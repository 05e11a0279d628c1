//! The OTLP metric reporter: where it sends (gRPC or HTTP, to which URL) and the exporter, with
//! the same TLS, token and header settings as the span export.

#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
use crate::config::Config;
use crate::config::{Reporting, TraceReporterType};
use crate::export::ExportError;

/// Where OTLP metrics go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// OTLP/gRPC to this endpoint.
    Grpc(String),
    /// OTLP/HTTP (protobuf) to this URL (`.../v1/metrics`).
    Http(String),
}

/// The path of an endpoint, without query or fragment, and without a trailing `/`.
fn path_of(endpoint: &str) -> &str {
    endpoint
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
}

/// `metric_endpoint` when set: `/v1/metrics` at its end means OTLP/HTTP (as `/v1/traces` does for
/// spans), as does any endpoint when spans go over OTLP/HTTP (then `/v1/metrics` is appended);
/// otherwise gRPC. Without `metric_endpoint`, the trace endpoint, when spans go over OTLP (its
/// `/v1/traces` becomes `/v1/metrics`); with spans going anywhere else (Zipkin, stdout, nowhere)
/// there is no OTLP endpoint to default to, and no OTLP metrics (the Go agent's rule).
pub(crate) fn target(r: &Reporting) -> Option<Target> {
    let http = r.trace_reporter_type == TraceReporterType::OtlpHttp;
    let url = |e: &str| -> String {
        let e = match e.strip_prefix("http://") {
            Some(rest) if r.secure => format!("https://{rest}"),
            _ => e.to_owned(),
        };
        e
    };
    match &r.metric_endpoint {
        Some(e) if path_of(e).ends_with("/v1/metrics") => Some(Target::Http(url(e))),
        Some(e) if http => Some(Target::Http(format!(
            "{}/v1/metrics",
            url(e).trim_end_matches('/')
        ))),
        Some(e) => Some(Target::Grpc(url(e))),
        None => match r.trace_reporter_type {
            TraceReporterType::Otlp => Some(Target::Grpc(url(&r.effective_endpoint()))),
            TraceReporterType::OtlpHttp => {
                let e = url(&r.effective_endpoint());
                let base = path_of(&e)
                    .strip_suffix("/v1/traces")
                    .map(str::to_owned)
                    .unwrap_or_else(|| e.trim_end_matches('/').to_owned());
                Some(Target::Http(format!("{base}/v1/metrics")))
            }
            _ => None,
        },
    }
}

#[allow(dead_code)] // used only when a transport's feature is off
fn missing(feature: &str) -> ExportError {
    ExportError::new(format!(
        "reporting.metric_reporter_type OTLP to this endpoint needs the `{feature}` cargo feature of hypertrace, which is off"
    ))
}

/// The exporter for `target`. A gRPC one must be built inside a tokio runtime (its channel).
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
pub(crate) fn exporter(
    config: &Config,
    target: &Target,
) -> Result<opentelemetry_otlp::MetricExporter, ExportError> {
    use opentelemetry_otlp::WithExportConfig;
    // Never longer than shutdown may wait: the last export runs during shutdown.
    let timeout = config
        .rustagent
        .export_timeout
        .min(config.rustagent.shutdown_timeout);
    match target {
        #[cfg(feature = "otlp-grpc")]
        Target::Grpc(endpoint) => {
            use opentelemetry_otlp::WithTonicConfig;
            let metadata = crate::export::otlp::grpc_metadata(config)?;
            let builder = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(timeout)
                .with_metadata(metadata);
            #[cfg(feature = "tls")]
            let builder = {
                use tonic::transport::{Certificate, ClientTlsConfig};
                match crate::export::read_cert(&config.reporting)? {
                    Some(pem) => builder.with_tls_config(
                        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
                    ),
                    None if endpoint.starts_with("https://") => {
                        builder.with_tls_config(ClientTlsConfig::new().with_native_roots())
                    }
                    None => builder,
                }
            };
            builder
                .build()
                .map_err(|e| ExportError::new(format!("OTLP/gRPC metric exporter: {e}")))
        }
        #[cfg(not(feature = "otlp-grpc"))]
        Target::Grpc(_) => Err(missing("otlp-grpc")),
        #[cfg(feature = "otlp-http")]
        Target::Http(url) => {
            use opentelemetry_otlp::WithHttpConfig;
            let headers = crate::export::checked_http_headers(&config.reporting)?;
            let client = crate::export::http_client::build(&config.reporting, timeout)?;
            opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(url.clone())
                .with_timeout(timeout)
                .with_headers(headers.into_iter().collect())
                .with_http_client(client)
                .build()
                .map_err(|e| ExportError::new(format!("OTLP/HTTP metric exporter: {e}")))
        }
        #[cfg(not(feature = "otlp-http"))]
        Target::Http(_) => Err(missing("otlp-http")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn reporting(edit: impl FnOnce(&mut Reporting)) -> Reporting {
        let mut r = Config::defaults("svc").reporting;
        edit(&mut r);
        r
    }

    #[test]
    fn the_trace_endpoint_is_the_default_and_its_shape_picks_the_protocol() {
        assert_eq!(
            target(&reporting(|_| {})),
            Some(Target::Grpc("http://localhost:4317".into()))
        );
        assert_eq!(
            target(&reporting(|r| {
                r.trace_reporter_type = TraceReporterType::OtlpHttp;
                r.endpoint = Some("http://c:4318/v1/traces".into());
            })),
            Some(Target::Http("http://c:4318/v1/metrics".into()))
        );
        assert_eq!(
            target(&reporting(
                |r| r.trace_reporter_type = TraceReporterType::Zipkin
            )),
            None
        );
        assert_eq!(
            target(&reporting(
                |r| r.trace_reporter_type = TraceReporterType::Logging
            )),
            None
        );
    }

    #[test]
    fn a_metric_endpoint_wins_and_its_shape_picks_the_protocol() {
        let t = |e: &str, ty: TraceReporterType, secure: bool| {
            target(&reporting(|r| {
                r.metric_endpoint = Some(e.into());
                r.trace_reporter_type = ty;
                r.secure = secure;
            }))
        };
        use TraceReporterType as T;
        assert_eq!(
            t("http://m:4317", T::Zipkin, false),
            Some(Target::Grpc("http://m:4317".into()))
        );
        assert_eq!(
            t("http://m:4318/v1/metrics", T::Otlp, false),
            Some(Target::Http("http://m:4318/v1/metrics".into()))
        );
        assert_eq!(
            t("http://m:4318/", T::OtlpHttp, false),
            Some(Target::Http("http://m:4318/v1/metrics".into()))
        );
        assert_eq!(
            t("http://m:4317", T::Otlp, true),
            Some(Target::Grpc("https://m:4317".into()))
        );
    }
}
