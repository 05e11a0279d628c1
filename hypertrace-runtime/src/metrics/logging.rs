//! The LOGGING metric reporter: one JSON line per export on stdout, holding every metric of the
//! collection (the resource, then each scope's metrics with their data points).

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use serde_json::{json, Value as Json};

use crate::export::json::{attributes, rfc3339};

/// Writes each export as one line to its writer (stdout for the reporter).
pub(crate) struct LoggingExporter {
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for LoggingExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggingExporter").finish_non_exhaustive()
    }
}

impl LoggingExporter {
    pub(crate) fn stdout() -> Self {
        Self::to(Box::new(std::io::stdout()))
    }

    pub(crate) fn to(out: Box<dyn Write + Send>) -> Self {
        LoggingExporter {
            out: Mutex::new(out),
        }
    }
}

impl PushMetricExporter for LoggingExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let mut line = serde_json::to_vec(&export_json(metrics))
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // One write per line, so that lines from other threads do not interleave inside it.
        out.write_all(&line)
            .and_then(|()| out.flush())
            .map_err(|e| OTelSdkError::InternalFailure(format!("stdout: {e}")))
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

fn kvs<'a>(it: impl Iterator<Item = &'a KeyValue>) -> Json {
    attributes(it.map(|kv| (&kv.key, &kv.value)))
}

/// The JSON object of one export.
pub(crate) fn export_json(rm: &ResourceMetrics) -> Json {
    let scopes: Vec<Json> = rm
        .scope_metrics()
        .map(|sm| {
            let metrics: Vec<Json> = sm
                .metrics()
                .map(|m| {
                    let mut obj = match m.data() {
                        AggregatedMetrics::F64(d) => data_json(d),
                        AggregatedMetrics::U64(d) => data_json(d),
                        AggregatedMetrics::I64(d) => data_json(d),
                    };
                    obj["name"] = json!(m.name());
                    obj["description"] = json!(m.description());
                    obj["unit"] = json!(m.unit());
                    obj
                })
                .collect();
            json!({
                "scope": { "name": sm.scope().name(), "version": sm.scope().version() },
                "metrics": metrics,
            })
        })
        .collect();
    json!({
        "resource": attributes(rm.resource().iter()),
        "scope_metrics": scopes,
    })
}

fn temporality(t: Temporality) -> &'static str {
    match t {
        Temporality::Delta => "delta",
        _ => "cumulative",
    }
}

fn data_json<T: Into<Json> + Copy>(d: &MetricData<T>) -> Json {
    match d {
        MetricData::Gauge(g) => json!({
            "type": "gauge",
            "time": rfc3339(g.time()),
            "data_points": g.data_points().map(|p| json!({
                "attributes": kvs(p.attributes()),
                "value": p.value().into(),
            })).collect::<Vec<_>>(),
        }),
        MetricData::Sum(s) => json!({
            "type": "sum",
            "monotonic": s.is_monotonic(),
            "temporality": temporality(s.temporality()),
            "start_time": rfc3339(s.start_time()),
            "time": rfc3339(s.time()),
            "data_points": s.data_points().map(|p| json!({
                "attributes": kvs(p.attributes()),
                "value": p.value().into(),
            })).collect::<Vec<_>>(),
        }),
        MetricData::Histogram(h) => json!({
            "type": "histogram",
            "temporality": temporality(h.temporality()),
            "start_time": rfc3339(h.start_time()),
            "time": rfc3339(h.time()),
            "data_points": h.data_points().map(|p| json!({
                "attributes": kvs(p.attributes()),
                "count": p.count(),
                "sum": p.sum().into(),
                "min": p.min().map(Into::into),
                "max": p.max().map(Into::into),
                "bounds": p.bounds().collect::<Vec<_>>(),
                "bucket_counts": p.bucket_counts().collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        MetricData::ExponentialHistogram(h) => json!({
            "type": "exponential_histogram",
            "data_points": h.data_points().map(|p| json!({
                "attributes": kvs(p.attributes()),
                "count": p.count(),
                "sum": p.sum().into(),
            })).collect::<Vec<_>>(),
        }),
    }
}
