//! Metrics: request durations, in-flight requests, the export counters and the process's CPU and
//! memory, through the OpenTelemetry SDK, exported by `reporting.metric_reporter_type`:
//!
//! - `METRIC_REPORTER_TYPE_OTLP`: OTLP/gRPC, or OTLP/HTTP (chosen by the endpoint's shape as for
//!   spans), to `reporting.metric_endpoint` or the trace endpoint, every
//!   `rustagent.metric_export_interval_ms` (`OTEL_METRIC_EXPORT_INTERVAL`);
//! - `_PROMETHEUS`: the text exposition, served by the agent on `metric_endpoint`'s address
//!   (`http://localhost:9464/metrics` by default) and by [`prometheus_handler`] wherever the app
//!   mounts it;
//! - `_LOGGING`: one JSON line per export on stdout;
//! - `_NONE`, `telemetry.metrics_enabled: false` or `enabled: false`: no meter provider at all,
//!   and nothing recorded on any request path.
//!
//! Instruments (seconds, with the conventions' bucket boundaries):
//!
//! | name | kind | attributes |
//! |---|---|---|
//! | `http.server.request.duration` | histogram | `http.request.method`, `url.scheme`, `http.route`, `http.response.status_code`, `error.type` |
//! | `http.server.active_requests` | up-down counter | `http.request.method`, `url.scheme` |
//! | `http.client.request.duration` | histogram | `http.request.method`, `url.scheme`, `server.address`, `server.port`, `http.response.status_code`, `error.type` |
//! | `rpc.server.call.duration`, `rpc.client.call.duration` | histogram | see [`rpc_server_call`] |
//! | `db.client.operation.duration` | histogram | see [`db_client_operation`] |
//! | `hypertrace.agent.spans.exported`, `hypertrace.agent.spans.dropped` | counter | none |
//! | `process.cpu.time` (`cpu.mode`), `process.memory.usage` | counter, up-down counter | Linux |

mod bound;
mod http;
mod instruments;
mod logging;
mod observed;
mod otlp;
mod prometheus;
mod server;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;

#[cfg(any(feature = "reqwest", feature = "reqwest012"))]
pub(crate) use self::http::ClientCall;
pub(crate) use self::http::{ServerTimer, CANCELLED, PANIC};
pub use instruments::{
    DB_CLIENT_DURATION, DB_DURATION_BUCKETS, DURATION_BUCKETS, HTTP_CLIENT_DURATION,
    HTTP_SERVER_ACTIVE, HTTP_SERVER_DURATION, RPC_CLIENT_DURATION, RPC_SERVER_DURATION,
};
pub use observed::{PROCESS_CPU_TIME, PROCESS_MEMORY_USAGE, SPANS_DROPPED, SPANS_EXPORTED};
pub use prometheus::CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE;
pub use server::DEFAULT_ENDPOINT as DEFAULT_PROMETHEUS_ENDPOINT;

use crate::config::{Config, MetricReporterType};
use crate::export::{ExportError, ExportStats};
use instruments::Instruments;
use observed::Observed;

/// The agent's metrics: the provider, its instruments, and for PROMETHEUS the page and server.
pub(crate) struct Metrics {
    provider: SdkMeterProvider,
    pub(crate) instruments: Instruments,
    routes: http::Routes,
    exposition: Option<Exposition>,
    _observed: Observed,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("prometheus", &self.exposition.as_ref().map(|e| &e.server))
            .finish_non_exhaustive()
    }
}

/// The PROMETHEUS reporter's state.
struct Exposition {
    scrape: Arc<dyn Fn() -> String + Send + Sync>,
    /// `None` when `metric_endpoint` is a path alone, or the address could not be bound.
    server: Option<server::Server>,
}

/// Whether building the metrics for `config` needs a tokio runtime (OTLP/gRPC's channel).
pub(crate) fn needs_runtime(config: &Config) -> bool {
    on(config)
        && config.reporting.metric_reporter_type == MetricReporterType::Otlp
        && matches!(otlp::target(&config.reporting), Some(otlp::Target::Grpc(_)))
}

fn on(config: &Config) -> bool {
    config.enabled
        && config.telemetry.metrics_enabled
        && config.reporting.metric_reporter_type != MetricReporterType::None
}

impl Metrics {
    /// The metrics `config` asks for (`None`: none), sharing the spans' `resource`. For OTLP/gRPC,
    /// call inside a tokio runtime ([`needs_runtime`]).
    pub(crate) fn build(
        config: &Config,
        resource: Resource,
        stats: Arc<ExportStats>,
    ) -> Result<Option<Metrics>, ExportError> {
        if !on(config) {
            return Ok(None);
        }
        let interval = config.rustagent.metric_export_interval;
        let builder = SdkMeterProvider::builder().with_resource(resource);
        let mut exposition = None;
        let builder = match config.reporting.metric_reporter_type {
            MetricReporterType::None => return Ok(None),
            MetricReporterType::Logging => builder.with_reader(
                PeriodicReader::builder(logging::LoggingExporter::stdout())
                    .with_interval(interval)
                    .build(),
            ),
            MetricReporterType::Otlp => {
                let Some(target) = otlp::target(&config.reporting) else {
                    return Ok(None);
                };
                #[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
                {
                    builder.with_reader(
                        PeriodicReader::builder(otlp::exporter(config, &target)?)
                            .with_interval(interval)
                            .build(),
                    )
                }
                #[cfg(not(any(feature = "otlp-grpc", feature = "otlp-http")))]
                {
                    let _ = (builder, target);
                    return Err(ExportError::new(
                        "reporting.metric_reporter_type OTLP needs the `otlp-grpc` or `otlp-http` cargo feature of hypertrace, which are off",
                    ));
                }
            }
            MetricReporterType::Prometheus => {
                let listen = server::listen(config.reporting.metric_endpoint.as_deref())?;
                let snapshot = prometheus::Snapshot::default();
                let builder = builder.with_reader(
                    PeriodicReader::builder(snapshot.clone())
                        .with_interval(interval)
                        .build(),
                );
                exposition = Some((listen, snapshot));
                builder
            }
        };
        let provider = builder.build();
        let meter = provider.meter_with_scope(
            InstrumentationScope::builder("hypertrace")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        let active = Arc::new(http::ActiveRequests::default());
        let observed = Observed::register(&meter, stats, active.clone());
        let exposition = exposition.map(|(listen, snapshot)| {
            let p = provider.clone();
            // A scrape asks the reader for a fresh collection, which it writes to the snapshot.
            let scrape: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
                let _ = p.force_flush();
                snapshot.text()
            });
            let server = listen.addr.as_deref().and_then(|addr| {
                server::start(addr, &listen.path, scrape.clone())
                    .map_err(|e| {
                        // Never fatal: the app runs on, and a mounted handler still serves.
                        eprintln!(
                            "hypertrace: warning: cannot serve Prometheus metrics on {addr}: {e}"
                        );
                    })
                    .ok()
            });
            Exposition { scrape, server }
        });
        let instruments = Instruments::new(&meter);
        Ok(Some(Metrics {
            routes: http::Routes::new(instruments.http_server_duration.clone(), active),
            instruments,
            provider,
            exposition,
            _observed: observed,
        }))
    }

    /// The meter provider (for an app's own instruments).
    pub(crate) fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// Where the agent's own Prometheus endpoint listens.
    pub(crate) fn prometheus_address(&self) -> Option<SocketAddr> {
        self.exposition
            .as_ref()
            .and_then(|e| e.server.as_ref())
            .map(|s| s.addr)
    }

    /// Exports what was recorded so far (OTLP, LOGGING) and waits for it.
    pub(crate) fn flush(&self) {
        let _ = self.provider.force_flush();
    }

    /// The last export, then the provider's reader thread stops.
    pub(crate) fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

// ---------------------------------------------------------------------------------------------
// The API of the integrations that time their own calls.

/// The `rpc.*` attributes kept on `rpc.server.call.duration` / `rpc.client.call.duration`: the
/// bounded ones of OpenTelemetry's RPC conventions (old and current names).
const RPC_KEYS: &[&str] = &[
    "rpc.system",
    "rpc.system.name",
    "rpc.service",
    "rpc.method",
    "rpc.grpc.status_code",
    "rpc.response.status_code",
    "error.type",
    "server.address",
    "server.port",
    "network.transport",
];

/// The attributes kept on `db.client.operation.duration`: never a query text or a bind value.
const DB_KEYS: &[&str] = &[
    "db.system",
    "db.system.name",
    "db.namespace",
    "db.name",
    "db.operation",
    "db.operation.name",
    "db.collection.name",
    "db.response.status_code",
    "error.type",
    "server.address",
    "server.port",
];

/// `attrs` without the keys that are not in `keys` (no copy when all are).
fn only<'a>(attrs: &'a [KeyValue], keys: &[&str]) -> Cow<'a, [KeyValue]> {
    let kept = |kv: &KeyValue| keys.contains(&kv.key.as_str());
    if attrs.iter().all(kept) {
        Cow::Borrowed(attrs)
    } else {
        Cow::Owned(attrs.iter().filter(|kv| kept(kv)).cloned().collect())
    }
}

fn record(
    duration: Duration,
    attrs: &[KeyValue],
    keys: &[&str],
    pick: fn(&Instruments) -> &opentelemetry::metrics::Histogram<f64>,
) {
    if let Some(m) = crate::agent::current().and_then(|a| a.metrics.clone()) {
        pick(&m.instruments).record(duration.as_secs_f64(), &only(attrs, keys));
    }
}

/// Records one served RPC on `rpc.server.call.duration`, if the installed agent has metrics.
///
/// `duration`: from the request's arrival to the response's end (trailers sent). `attributes`:
/// `rpc.system` (`"grpc"`), `rpc.service` (`"pkg.Service"`), `rpc.method`, `rpc.grpc.status_code`
/// (an integer), and `error.type` for a non-OK status; keys outside the conventions' bounded set
/// are dropped. For a method the server does not implement, pass `rpc.method = "_OTHER"`, so that
/// a client probing names cannot add series.
pub fn rpc_server_call(duration: Duration, attributes: &[KeyValue]) {
    record(duration, attributes, RPC_KEYS, |i| &i.rpc_server_duration);
}

/// Records one outgoing RPC on `rpc.client.call.duration`: as [`rpc_server_call`], plus
/// `server.address` and `server.port` when the caller knows the peer. (`hypertrace::grpc`'s client
/// layer does not: a tonic channel adds the peer's address to the request below the layer.)
pub fn rpc_client_call(duration: Duration, attributes: &[KeyValue]) {
    record(duration, attributes, RPC_KEYS, |i| &i.rpc_client_duration);
}

/// Records one database operation on `db.client.operation.duration`, if the installed agent has
/// metrics. `attributes`: `db.system.name` (`"postgresql"`, `"mysql"`), `db.namespace`,
/// `db.operation.name` (`"SELECT"`), `db.collection.name` when known, `server.address`,
/// `server.port`, `db.response.status_code` (the SQLSTATE) and `error.type` on failure. Any other
/// key, `db.query.text` and `db.statement` included, is dropped: a statement is unbounded.
pub fn db_client_operation(duration: Duration, attributes: &[KeyValue]) {
    record(duration, attributes, DB_KEYS, |i| &i.db_client_duration);
}

/// The Prometheus page of the installed agent, for an app to serve on its own router:
///
/// ```ignore
/// let app = Router::new().route("/metrics", get(hypertrace::metrics::prometheus_handler));
/// ```
///
/// It answers 404 unless `reporting.metric_reporter_type` is `METRIC_REPORTER_TYPE_PROMETHEUS`
/// (with metrics on). A request through `hypertrace::layer()` is itself measured and traced:
/// `.exclude("/metrics")` on the layer leaves scrapes out.
pub async fn prometheus_handler() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let scrape = crate::agent::current()
        .and_then(|a| a.metrics.clone())
        .and_then(|m| m.exposition.as_ref().map(|e| e.scrape.clone()));
    match scrape {
        Some(scrape) => server::respond(scrape).await,
        None => (
            axum::http::StatusCode::NOT_FOUND,
            "no Prometheus metrics: reporting.metric_reporter_type is not METRIC_REPORTER_TYPE_PROMETHEUS, or metrics are off\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrations_cannot_record_unbounded_keys() {
        let attrs = [
            KeyValue::new("db.system.name", "postgresql"),
            KeyValue::new("db.query.text", "SELECT * FROM users WHERE id = 42"),
            KeyValue::new("db.operation.name", "SELECT"),
        ];
        let kept = only(&attrs, DB_KEYS);
        let keys: Vec<&str> = kept.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["db.system.name", "db.operation.name"]);
        assert!(matches!(only(&attrs[..1], DB_KEYS), Cow::Borrowed(_)));
        let rpc = [KeyValue::new("rpc.request.metadata.user", "x")];
        assert!(only(&rpc, RPC_KEYS).is_empty());
    }
}
