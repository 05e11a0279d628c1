//! The agent's own OTLP encoder (`hypertrace::TraceEncoder`) against the reference path it
//! replaces: `opentelemetry_proto::transform` into the prost messages, then prost's encoding. For
//! arbitrary spans (attributes of every value kind, arrays included, events, links, status, dropped
//! counts, flags, trace state, several instrumentation scopes, resource and schema URLs) the bytes
//! must be identical, and they must decode to the transform's message.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hypertrace::packed::{Packer, PACKED_KEY};
use hypertrace::TraceEncoder;
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use opentelemetry_sdk::Resource;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// What opentelemetry-otlp sent before: the transform's tree, encoded by prost.
fn reference(batch: &[SpanData], resource: &Resource) -> (ExportTraceServiceRequest, Vec<u8>) {
    let req = ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            batch.to_vec(),
            &ResourceAttributesWithSchema::from(resource),
        ),
    };
    let bytes = prost::Message::encode_to_vec(&req);
    (req, bytes)
}

fn ours(batch: &[SpanData], resource: &Resource) -> Vec<u8> {
    let mut out = Vec::new();
    TraceEncoder::new(resource).encode(batch, &mut out);
    out
}

fn assert_same(batch: &[SpanData], resource: &Resource) {
    let (want, want_bytes) = reference(batch, resource);
    let got = ours(batch, resource);
    let decoded = <ExportTraceServiceRequest as prost::Message>::decode(got.as_slice())
        .expect("our bytes decode as an ExportTraceServiceRequest");
    assert_eq!(decoded, want);
    assert_eq!(got, want_bytes, "byte-for-byte the transform's encoding");
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z.]{1,12}",
        any::<String>(),
        // Long enough for two- and three-byte length prefixes.
        (100usize..20_000).prop_map(|n| "é".repeat(n)),
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::INFINITY),
        -1e12f64..1e12
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let sv = || string().prop_map(StringValue::from);
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        prop_oneof![Just(0i64), Just(-1), Just(i64::MIN)].prop_map(Value::I64),
        finite().prop_map(Value::F64),
        string().prop_map(|s| Value::String(s.into())),
        prop::collection::vec(any::<bool>(), 0..4).prop_map(|v| Value::Array(Array::Bool(v))),
        prop::collection::vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(Array::I64(v))),
        prop::collection::vec(finite(), 0..4).prop_map(|v| Value::Array(Array::F64(v))),
        prop::collection::vec(sv(), 0..4).prop_map(|v| Value::Array(Array::String(v))),
    ]
}

fn attributes(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(
        (prop_oneof![Just(String::new()), "[a-z._]{1,20}"], value())
            .prop_map(|(k, v)| KeyValue::new(k, v)),
        0..max,
    )
}

fn time() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        Just(UNIX_EPOCH),
        // Before the epoch: the transform sends 0.
        Just(UNIX_EPOCH - Duration::from_secs(5)),
        (0u64..=u64::MAX / 2).prop_map(|n| UNIX_EPOCH + Duration::from_nanos(n)),
    ]
}

fn trace_state() -> impl Strategy<Value = TraceState> {
    prop_oneof![
        Just(TraceState::NONE),
        Just(TraceState::from_str("hypertrace=cap:1").unwrap()),
        Just(TraceState::from_str("a=1,b=two,congo=t61rcWkgMzE").unwrap()),
    ]
}

fn span_context() -> impl Strategy<Value = SpanContext> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 8]>(),
        any::<u8>(),
        any::<bool>(),
        trace_state(),
    )
        .prop_map(|(t, s, f, remote, ts)| {
            SpanContext::new(
                TraceId::from_bytes(t),
                SpanId::from_bytes(s),
                TraceFlags::new(f),
                remote,
                ts,
            )
        })
}

/// A few scopes, so that batches mix them and the grouping is exercised.
fn scope() -> impl Strategy<Value = InstrumentationScope> {
    prop_oneof![
        Just(InstrumentationScope::builder("hypertrace").build()),
        Just(
            InstrumentationScope::builder("tracing-opentelemetry")
                .with_version("0.34.0")
                .build()
        ),
        Just(
            InstrumentationScope::builder("lib")
                .with_version("1.2")
                .with_schema_url("https://opentelemetry.io/schemas/1.26.0")
                .with_attributes([KeyValue::new("lib.kind", "db"), KeyValue::new("n", 3i64)])
                .build()
        ),
        Just(InstrumentationScope::builder("").build()),
    ]
}

fn kind() -> impl Strategy<Value = SpanKind> {
    prop_oneof![
        Just(SpanKind::Internal),
        Just(SpanKind::Server),
        Just(SpanKind::Client),
        Just(SpanKind::Producer),
        Just(SpanKind::Consumer),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Unset),
        Just(Status::Ok),
        string().prop_map(|d| Status::Error {
            description: Cow::Owned(d)
        }),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (string(), time(), attributes(3), any::<u32>())
        .prop_map(|(n, t, a, d)| Event::new(n, t, a, d % 3))
}

fn link() -> impl Strategy<Value = Link> {
    (
        span_context(),
        attributes(3),
        prop_oneof![Just(0u32), any::<u32>()],
    )
        .prop_map(|(cx, a, d)| Link::new(cx, a, d))
}

fn span() -> impl Strategy<Value = SpanData> {
    (
        (
            span_context(),
            prop_oneof![Just([0u8; 8]), any::<[u8; 8]>()],
            any::<bool>(),
            kind(),
            string(),
            time(),
            time(),
        ),
        (
            attributes(12),
            prop_oneof![Just(0u32), any::<u32>()],
            prop::collection::vec(event(), 0..3),
            prop_oneof![Just(0u32), 1u32..1000],
            prop::collection::vec(link(), 0..3),
            prop_oneof![Just(0u32), 1u32..1000],
            status(),
            scope(),
        ),
    )
        .prop_map(
            |(
                (cx, parent, parent_remote, kind, name, start, end),
                (attrs, dropped, events, dropped_events, links, dropped_links, status, scope),
            )| SpanData {
                span_context: cx,
                parent_span_id: SpanId::from_bytes(parent),
                parent_span_is_remote: parent_remote,
                span_kind: kind,
                name: name.into(),
                start_time: start,
                end_time: end,
                attributes: attrs,
                dropped_attributes_count: dropped,
                events: {
                    let mut e = SpanEvents::default();
                    e.events = events;
                    e.dropped_count = dropped_events;
                    e
                },
                links: {
                    let mut l = SpanLinks::default();
                    l.links = links;
                    l.dropped_count = dropped_links;
                    l
                },
                status,
                instrumentation_scope: scope,
            },
        )
}

fn resource() -> impl Strategy<Value = Resource> {
    (
        attributes(6),
        prop_oneof![
            Just(None),
            Just(Some("https://opentelemetry.io/schemas/1.21.0"))
        ],
    )
        .prop_map(|(attrs, schema)| {
            let b = Resource::builder_empty().with_attributes(attrs);
            match schema {
                Some(s) => b.with_schema_url(Vec::<KeyValue>::new(), s).build(),
                None => b.build(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_batches_encode_as_the_transform_does(
        batch in prop::collection::vec(span(), 0..12),
        resource in resource(),
    ) {
        assert_same(&batch, &resource);
    }
}

/// A header-like entry: a name (the key without its prefix) and a value, either possibly empty.
fn entry() -> impl Strategy<Value = (String, String)> {
    ("[a-z0-9\\-]{0,20}(\\[[0-9]\\])?", string())
}

/// Attributes with packed ones among them (as header capture appends them), and the same
/// attributes each on its own, built independently of the code that unpacks.
fn packed_and_plain() -> impl Strategy<Value = (Vec<KeyValue>, Vec<KeyValue>)> {
    // An attribute under the packed key that does not parse (a well-formed prefix, then an entry
    // cut short) is an attribute like any other, on both sides.
    let malformed = Just(vec![KeyValue::new(
        Key::from_static_str(PACKED_KEY),
        "\u{1}a\u{1}b\u{2}c",
    )]);
    let group = prop_oneof![
        attributes(3).prop_map(|a| (None, a)),
        malformed.prop_map(|a| (None, a)),
        (
            prop_oneof![
                Just(String::new()),
                Just("http.request.header.".to_owned()),
                string()
            ],
            prop::collection::vec(entry(), 0..6),
        )
            .prop_map(|(prefix, entries)| (
                Some(prefix),
                entries
                    .into_iter()
                    .map(|(n, v)| KeyValue::new(n, v))
                    .collect()
            )),
    ];
    prop::collection::vec(group, 0..5).prop_map(|groups| {
        let (mut packed, mut plain) = (Vec::new(), Vec::new());
        for (prefix, attrs) in groups {
            let Some(prefix) = prefix else {
                packed.extend(attrs.iter().cloned());
                plain.extend(attrs);
                continue;
            };
            let mut p = Packer::new(&prefix, 0);
            for kv in &attrs {
                p.push(kv.key.as_str(), "", kv.value.as_str().as_ref());
                plain.push(KeyValue::new(
                    format!("{prefix}{}", kv.key),
                    kv.value.clone(),
                ));
            }
            packed.extend(p.finish());
        }
        (packed, plain)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A packed attribute goes on the wire as the attributes it stands for: the bytes are the
    /// transform's for the span whose attributes are each their own.
    #[test]
    fn packed_attributes_encode_as_the_attributes_they_stand_for(
        spans in prop::collection::vec((span(), packed_and_plain()), 1..4),
        resource in resource(),
    ) {
        let (mut packed, mut plain) = (Vec::new(), Vec::new());
        for (span, (p, q)) in spans {
            let mut a = span.clone();
            a.attributes = p;
            packed.push(a);
            let mut b = span;
            b.attributes = q;
            plain.push(b);
        }
        let got = ours(&packed, &resource);
        prop_assert_eq!(got, reference(&plain, &resource).1);
    }
}

/// One encoder, many batches: nothing of one batch (scope groups, lengths) leaks into the next.
#[test]
fn a_reused_encoder_starts_each_batch_afresh() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let batches = prop::collection::vec(span(), 1..8);
    let resource = Resource::builder_empty()
        .with_attributes([KeyValue::new("service.name", "reuse")])
        .build();
    let mut enc = TraceEncoder::new(&resource);
    let mut out = Vec::new();
    for _ in 0..50 {
        let batch = batches.new_tree(&mut runner).unwrap().current();
        enc.encode(&batch, &mut out);
        assert_eq!(out, reference(&batch, &resource).1);
    }
    // A new resource takes effect for the next batch.
    let other = Resource::builder_empty()
        .with_attributes([KeyValue::new("service.name", "other")])
        .build();
    enc.set_resource(&other);
    let batch = batches.new_tree(&mut runner).unwrap().current();
    enc.encode(&batch, &mut out);
    assert_eq!(out, reference(&batch, &other).1);
}
