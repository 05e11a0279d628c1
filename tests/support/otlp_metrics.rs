//! Shared by the metrics tests of the integrations (`metrics_grpc.rs`, `metrics_sql.rs`): an
//! OTLP/gRPC metrics receiver on 127.0.0.1 that decodes what the agent sends with the official
//! proto types, an agent whose metrics go there, and the histograms read back from the exports.
//!
//! Included with `#[path]`, next to `support/mod.rs`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hypertrace::config::{Config, MetricReporterType};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

/// The bucket boundaries, in seconds, of the HTTP and RPC conventions' duration histograms.
pub const SEMCONV_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Those of `db.client.operation.duration`.
pub const DB_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// Every export request received.
#[derive(Clone, Default)]
pub struct MetricsReceiver {
    got: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl MetricsService for MetricsReceiver {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.got.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

impl MetricsReceiver {
    /// Starts the receiver on the current tokio runtime.
    pub async fn start() -> (SocketAddr, MetricsReceiver) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recv = MetricsReceiver::default();
        let svc = MetricsServiceServer::new(recv.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(crate::support::receivers::tokio_stream_from(listener))
                .await
                .unwrap();
        });
        (addr, recv)
    }

    pub fn requests(&self) -> Vec<ExportMetricsServiceRequest> {
        self.got.lock().unwrap().clone()
    }
}

/// Metrics by OTLP/gRPC to `receiver`, exported only when flushed (the interval is an hour).
pub fn otlp_metrics_to(receiver: SocketAddr) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.reporting.metric_reporter_type = MetricReporterType::Otlp;
        c.reporting.metric_endpoint = Some(format!("http://{receiver}"));
        c.rustagent.metric_export_interval = Duration::from_secs(3600);
    }
}

/// One series of a histogram, as the newest export holds it (cumulative: the totals so far).
#[derive(Clone, Debug)]
pub struct Series {
    pub unit: String,
    pub attributes: BTreeMap<String, String>,
    pub count: u64,
    pub sum: f64,
    pub bounds: Vec<f64>,
    pub bucket_counts: Vec<u64>,
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// The series of histogram `name` in the newest request that has it.
pub fn histogram(reqs: &[ExportMetricsServiceRequest], name: &str) -> Vec<Series> {
    for r in reqs.iter().rev() {
        let mut out = Vec::new();
        for m in r
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .filter(|m| m.name == name)
        {
            let Some(Data::Histogram(h)) = &m.data else {
                panic!("{name} is not a histogram: {m:?}");
            };
            for p in &h.data_points {
                out.push(Series {
                    unit: m.unit.clone(),
                    attributes: p
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(&kv.value)))
                        .collect(),
                    count: p.count,
                    sum: p.sum.unwrap_or(f64::NAN),
                    bounds: p.explicit_bounds.clone(),
                    bucket_counts: p.bucket_counts.clone(),
                });
            }
        }
        if !out.is_empty() {
            return out;
        }
    }
    Vec::new()
}

/// The one series of `name` whose attributes include all of `want`.
pub fn one_series(
    reqs: &[ExportMetricsServiceRequest],
    name: &str,
    want: &[(&str, &str)],
) -> Series {
    let all = histogram(reqs, name);
    let found: Vec<&Series> = all
        .iter()
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.attributes.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name} series with {want:?} expected: {all:#?}"
    );
    found[0].clone()
}

/// The index of the bucket `v` falls in: the first whose upper bound is at least `v`.
pub fn bucket_of(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

/// The attribute keys of a series, sorted.
pub fn keys(s: &Series) -> Vec<&str> {
    s.attributes.keys().map(String::as_str).collect()
}
