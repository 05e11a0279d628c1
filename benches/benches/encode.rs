//! Export encoding, in-process: a batch of the benches' real span (the one hypertrace records for
//! `POST /echo` with the 1 KiB JSON body and 10 headers), turned into the bytes of an OTLP
//! `ExportTraceServiceRequest`, two ways, in one run:
//!
//! - `transform+prost`: `opentelemetry_proto::transform` into the prost message tree, then prost's
//!   encoding (what opentelemetry-otlp's exporters do, and what hypertrace did before);
//! - `hypertrace`: `hypertrace::TraceEncoder`, straight into a reused buffer.
//!
//! Both consume a fresh copy of the batch and free it, as the export thread does; the copy is made
//! outside the timed part. Per span = the batch's time / its size.
//!
//!     cargo bench --bench encode

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hypertrace_benches::{call, json_body, request, router};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use prost::Message;

/// The default batch size (`rustagent.max_export_batch_size`).
const BATCH: usize = 512;

#[derive(Debug, Clone, Default)]
struct Keep {
    spans: Arc<Mutex<Vec<SpanData>>>,
    resource: Arc<Mutex<Option<Resource>>>,
}

impl SpanExporter for Keep {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.lock().unwrap().extend(batch);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self.resource.lock().unwrap() = Some(resource.clone());
    }
}

/// The span and resource hypertrace exports for one bench request.
fn real_span() -> (SpanData, Resource) {
    let keep = Keep::default();
    let agent =
        hypertrace::Agent::with_exporter(hypertrace::Config::defaults("bench"), keep.clone());
    let guard = agent.install();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = json_body();
    let (status, _) = rt.block_on(call(router("hypertrace"), request(&body)));
    assert_eq!(status, 200);
    guard.flush();
    drop(guard);
    let span = keep.spans.lock().unwrap().pop().expect("one span exported");
    let resource = keep.resource.lock().unwrap().clone().expect("a resource");
    (span, resource)
}

fn encode(c: &mut Criterion) {
    let (span, resource) = real_span();
    let batch: Vec<SpanData> = vec![span.clone(); BATCH];
    let reference_resource = ResourceAttributesWithSchema::from(&resource);
    let mut encoder = hypertrace::TraceEncoder::new(&resource);
    let mut buf = Vec::new();

    // Same bytes both ways, or the comparison means nothing.
    let reference = ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(batch.clone(), &reference_resource),
    }
    .encode_to_vec();
    encoder.encode(&batch, &mut buf);
    assert_eq!(buf, reference, "the encoders disagree");
    eprintln!(
        "  span: {} attributes, {} events, {} bytes encoded; batch of {BATCH}: {} bytes",
        span.attributes.len(),
        span.events.len(),
        reference.len() / BATCH,
        reference.len()
    );

    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("transform+prost", |b| {
        b.iter_batched(
            || batch.clone(),
            |spans| {
                let req = ExportTraceServiceRequest {
                    resource_spans: group_spans_by_resource_and_scope(spans, &reference_resource),
                };
                black_box(req.encode_to_vec())
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("hypertrace", |b| {
        b.iter_batched(
            || batch.clone(),
            |spans| {
                encoder.encode(&spans, &mut buf);
                drop(spans);
                black_box(buf.len())
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(5));
    targets = encode
}
criterion_main!(benches);
