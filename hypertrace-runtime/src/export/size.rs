//! What a finished span costs the queue, in bytes, for `rustagent.max_queue_bytes`.
//!
//! An estimate of the heap the span holds: its attributes (keys and values: captured bodies and
//! headers are where the bytes are), its events and links with theirs, its name and status text,
//! plus the fixed size of the span record itself. It errs on the high side for small values (a
//! number counts 8 bytes, as it does in memory) and is exact for the strings that dominate.

use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

/// The span record, its vectors' headers and the queue slot.
const SPAN_OVERHEAD: usize = std::mem::size_of::<SpanData>() + 64;
/// A key-value pair's own slot (key and value headers).
const KV_OVERHEAD: usize = std::mem::size_of::<KeyValue>();

/// The estimated bytes a finished span holds: its `SpanData`'s, and its encoded attributes and
/// held texts byte for byte.
pub(crate) fn finished_bytes(span: &super::finished::FinishedSpan) -> usize {
    let (texts, n) = span.held_texts();
    span_bytes(span.data()) + span.pre_encoded().len() + texts + n * KV_OVERHEAD
}

/// The estimated bytes `span` holds.
pub(crate) fn span_bytes(span: &SpanData) -> usize {
    let mut n = SPAN_OVERHEAD + span.name.len() + attrs(&span.attributes);
    if let opentelemetry::trace::Status::Error { description } = &span.status {
        n += description.len();
    }
    for e in span.events.iter() {
        n += 32 + e.name.len() + attrs(&e.attributes);
    }
    for l in span.links.iter() {
        n += 64 + attrs(&l.attributes);
    }
    n
}

fn attrs(kvs: &[KeyValue]) -> usize {
    kvs.iter()
        .map(|kv| KV_OVERHEAD + kv.key.as_str().len() + value_bytes(&kv.value))
        .sum()
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.as_str().len(),
        Value::Array(Array::String(a)) => a.iter().map(|s| 24 + s.as_str().len()).sum(),
        Value::Array(Array::Bool(a)) => a.len(),
        Value::Array(Array::I64(a)) => a.len() * 8,
        Value::Array(Array::F64(a)) => a.len() * 8,
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::time::SystemTime;

    fn span(attributes: Vec<KeyValue>) -> SpanData {
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "GET /x".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[test]
    fn strings_count_byte_for_byte() {
        let empty = span_bytes(&span(vec![]));
        let body = "é".repeat(65_536); // 128 KiB of UTF-8
        let with = span_bytes(&span(vec![KeyValue::new("http.request.body", body)]));
        assert_eq!(
            with - empty,
            KV_OVERHEAD + "http.request.body".len() + 131_072
        );
        let n = span_bytes(&span(vec![KeyValue::new("http.status_code", 200i64)]));
        assert_eq!(n - empty, KV_OVERHEAD + "http.status_code".len() + 8);
        assert!(empty >= std::mem::size_of::<SpanData>());
    }
}
