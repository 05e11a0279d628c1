//! Finished spans → the protobuf bytes of an OTLP `ExportTraceServiceRequest`, written straight
//! into one reused buffer.
//!
//! Why not `opentelemetry_proto::transform` and prost: that path copies every span into a tree of
//! owned messages (dozens of allocations a span: each key, each string value, each nested message)
//! and prost then recomputes `encoded_len` at every nesting level while it writes. Here each
//! message's length is computed once, bottom-up, before it is written, and the bytes go into the
//! caller's buffer with no intermediate allocation. The output is byte-for-byte what the transform
//! plus prost produce (fields in tag order, proto3 defaults left out, the same grouping of spans by
//! instrumentation scope); `tests/export_encoding.rs` proves it on arbitrary spans. A packed
//! attribute (`capture::packed`: a request's headers) is written as the attributes it stands for.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;

use super::finished::FinishedSpan;
use crate::capture::packed::Packed;

/// What [`TraceEncoder::encode`] encodes: the SDK's `SpanData`, or the spans the batch processor
/// holds ([`FinishedSpan`], whose attributes may be encoded already).
pub trait Encodable: sealed::Sealed {
    #[doc(hidden)]
    fn span(&self) -> &SpanData;
    #[doc(hidden)]
    fn pre_encoded(&self) -> PreEncoded<'_>;
}

/// A span's attribute fields encoded already: bytes, with large texts to be written in between
/// as they are (a record's large bodies: see `finished::Record`), so that they are not copied
/// into the record's buffer first.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PreEncoded<'a> {
    bytes: &'a [u8],
    /// Each text and where in `bytes` it goes (the field's head ends there), in order.
    spliced: &'a [(usize, String)],
}

impl<'a> PreEncoded<'a> {
    pub(crate) fn new(bytes: &'a [u8], spliced: &'a [(usize, String)]) -> Self {
        PreEncoded { bytes, spliced }
    }

    /// The encoded length.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() + self.spliced.iter().map(|(_, t)| t.len()).sum::<usize>()
    }

    /// Appends the encoded bytes to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let mut at = 0;
        for (offset, text) in self.spliced {
            out.extend_from_slice(&self.bytes[at..*offset]);
            out.extend_from_slice(text.as_bytes());
            at = *offset;
        }
        out.extend_from_slice(&self.bytes[at..]);
    }

    /// The encoded bytes in one piece (copied only when texts are spliced in).
    pub(crate) fn contiguous(&self) -> std::borrow::Cow<'a, [u8]> {
        if self.spliced.is_empty() {
            return std::borrow::Cow::Borrowed(self.bytes);
        }
        let mut out = Vec::with_capacity(self.len());
        self.write(&mut out);
        std::borrow::Cow::Owned(out)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for opentelemetry_sdk::trace::SpanData {}
    impl Sealed for super::FinishedSpan {}
}

impl Encodable for SpanData {
    fn span(&self) -> &SpanData {
        self
    }
    fn pre_encoded(&self) -> PreEncoded<'_> {
        PreEncoded::default()
    }
}

impl Encodable for FinishedSpan {
    fn span(&self) -> &SpanData {
        self.data()
    }
    fn pre_encoded(&self) -> PreEncoded<'_> {
        FinishedSpan::pre_encoded(self)
    }
}

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// `SpanFlags`: the span's flags say whether its parent's remoteness is known, and whether it is.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const CONTEXT_IS_REMOTE: u32 = 0x200;

/// Encodes batches of spans, with the resource they all share, as OTLP protobuf.
///
/// The resource is encoded once, when it is set; the scratch vectors the grouping needs are kept
/// between batches, so a steady stream of batches allocates nothing here beyond the output
/// buffer's growth.
#[derive(Debug, Default)]
pub struct TraceEncoder {
    /// The encoded `Resource` message (its attributes).
    resource: Vec<u8>,
    schema_url: String,
    /// Per span of the batch: its encoded length.
    span_lens: Vec<usize>,
    /// The lengths of the `KeyValue` messages of every span's attributes (a packed attribute's
    /// entries each), batch order: computed once for the span's length, used again to write them.
    attr_lens: Vec<u32>,
    /// Per span of the batch: where its attributes' lengths start in `attr_lens`.
    attr_start: Vec<usize>,
    /// Per span of the batch: the index of its scope group.
    group_of: Vec<u32>,
    /// Per scope group: the index of its first span (whose scope names the group).
    group_first: Vec<usize>,
}

impl TraceEncoder {
    /// An encoder for spans of `resource`.
    pub fn new(resource: &Resource) -> Self {
        let mut e = TraceEncoder::default();
        e.set_resource(resource);
        e
    }

    /// Replaces the resource the spans are sent with.
    pub fn set_resource(&mut self, resource: &Resource) {
        self.resource.clear();
        for (k, v) in resource.iter() {
            put_len_field(&mut self.resource, 1, kv_len(k.as_str(), v));
            put_kv(&mut self.resource, k.as_str(), v);
        }
        self.schema_url = resource.schema_url().unwrap_or_default().to_owned();
    }

    /// Writes the `ExportTraceServiceRequest` of `batch` into `out` (cleared first). Spans are
    /// grouped by instrumentation scope, in the order each scope first appears.
    pub fn encode<S: Encodable>(&mut self, batch: &[S], out: &mut Vec<u8>) {
        out.clear();
        self.group(batch);
        self.span_lens.clear();
        self.attr_lens.clear();
        self.attr_start.clear();
        for span in batch {
            self.attr_start.push(self.attr_lens.len());
            self.span_lens.push(span_len(
                span.span(),
                span.pre_encoded(),
                &mut self.attr_lens,
            ));
        }

        // ResourceSpans: resource (always present), one ScopeSpans per group, schema_url.
        let mut rs_len = len_field_len(self.resource.len()) + str_field_len(&self.schema_url);
        for (g, &first) in self.group_first.iter().enumerate() {
            rs_len += len_field_len(self.scope_spans_len(batch, g as u32, first));
        }
        out.reserve(len_field_len(rs_len));
        put_len_field(out, 1, rs_len);
        put_len_field(out, 1, self.resource.len());
        out.extend_from_slice(&self.resource);
        for (g, &first) in self.group_first.iter().enumerate() {
            let g = g as u32;
            let scope = &batch[first].span().instrumentation_scope;
            put_len_field(out, 2, self.scope_spans_len(batch, g, first));
            put_len_field(out, 1, scope_len(scope));
            put_scope(out, scope);
            for (i, span) in batch.iter().enumerate() {
                if self.group_of[i] == g {
                    put_len_field(out, 2, self.span_lens[i]);
                    let start = out.len();
                    let lens = &self.attr_lens[self.attr_start[i]..];
                    put_span(out, span.span(), span.pre_encoded(), lens);
                    debug_assert_eq!(out.len() - start, self.span_lens[i]);
                }
            }
            put_str_field(out, 3, scope.schema_url().unwrap_or_default());
        }
        put_str_field(out, 3, &self.schema_url);
    }

    /// Sorts the spans into scope groups, in order of first appearance (as the transform does).
    fn group<S: Encodable>(&mut self, batch: &[S]) {
        self.group_of.clear();
        self.group_first.clear();
        let mut last: Option<u32> = None;
        for (i, span) in batch.iter().enumerate() {
            let scope = &span.span().instrumentation_scope;
            // Consecutive spans mostly share a scope: try the last one's group first.
            let found = last
                .filter(|&g| same_scope(batch[self.group_first[g as usize]].span(), scope))
                .or_else(|| {
                    self.group_first
                        .iter()
                        .position(|&f| same_scope(batch[f].span(), scope))
                        .map(|g| g as u32)
                });
            let g = match found {
                Some(g) => g,
                None => {
                    self.group_first.push(i);
                    (self.group_first.len() - 1) as u32
                }
            };
            self.group_of.push(g);
            last = Some(g);
        }
    }

    fn scope_spans_len<S: Encodable>(&self, batch: &[S], g: u32, first: usize) -> usize {
        let scope = &batch[first].span().instrumentation_scope;
        let spans: usize = self
            .group_of
            .iter()
            .zip(&self.span_lens)
            .filter(|(&gi, _)| gi == g)
            .map(|(_, &l)| len_field_len(l))
            .sum();
        len_field_len(scope_len(scope)) + spans + str_field_len(scope.schema_url().unwrap_or(""))
    }
}

fn same_scope(span: &SpanData, scope: &InstrumentationScope) -> bool {
    std::ptr::eq(&span.instrumentation_scope, scope) || span.instrumentation_scope == *scope
}

// --- lengths -------------------------------------------------------------------------------------

fn varint_len(v: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (70 - (v | 1).leading_zeros() as usize) / 7
}

/// A length-delimited field of `n` bytes with a tag below 16.
fn len_field_len(n: usize) -> usize {
    1 + varint_len(n as u64) + n
}

/// A string field, left out when empty.
fn str_field_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        len_field_len(s.len())
    }
}

/// A uint32 varint field, left out when zero.
fn u32_field_len(v: u32) -> usize {
    if v == 0 {
        0
    } else {
        1 + varint_len(v as u64)
    }
}

fn to_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
}

/// A fixed64 field, left out when zero.
fn fixed64_field_len(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        9
    }
}

/// The `AnyValue` message of `v`.
fn any_value_len(v: &Value) -> usize {
    match v {
        Value::Bool(_) => 2,
        Value::I64(i) => 1 + varint_len(*i as u64),
        Value::F64(_) => 9,
        Value::String(s) => len_field_len(s.as_str().len()),
        Value::Array(a) => len_field_len(array_len(a)),
        // A kind this encoder does not know (the enum is non-exhaustive): an empty value.
        _ => 0,
    }
}

/// The `ArrayValue` message of `a`: one `AnyValue` per element.
fn array_len(a: &Array) -> usize {
    match a {
        Array::Bool(v) => v.len() * len_field_len(2),
        Array::I64(v) => v
            .iter()
            .map(|i| len_field_len(1 + varint_len(*i as u64)))
            .sum(),
        Array::F64(v) => v.len() * len_field_len(9),
        Array::String(v) => v
            .iter()
            .map(|s| len_field_len(len_field_len(s.as_str().len())))
            .sum(),
        _ => 0,
    }
}

/// The `KeyValue` message: key, then the value (always present, even when empty).
fn kv_len(key: &str, v: &Value) -> usize {
    str_field_len(key) + len_field_len(any_value_len(v))
}

/// The `KeyValue` message of a packed entry: key `prefix` + `name`, a string value.
fn entry_len(prefix: &str, name: &str, value: &str) -> usize {
    let key = prefix.len() + name.len();
    let key = if key == 0 { 0 } else { len_field_len(key) };
    key + len_field_len(len_field_len(value.len()))
}

/// A repeated `KeyValue` field (tag below 16), a packed attribute counting as its entries.
fn attrs_len(kvs: &[KeyValue]) -> usize {
    let mut n = 0;
    each_attr_len(kvs, |len| {
        if len != PACKED {
            n += len_field_len(len)
        }
    });
    n
}

/// In [`each_attr_len`]'s output: the entries of a packed attribute follow. (No message is
/// that long: a span's attributes are bounded by the queue's byte budget.)
const PACKED: usize = u32::MAX as usize;

/// The length of each `KeyValue` message `kvs` is written as, in order: one per attribute, and
/// for a packed attribute [`PACKED`] and then one per entry. The write pass follows the marks,
/// so that it treats as packed exactly the attributes that [`Packed::of`] accepted here.
#[inline]
fn each_attr_len(kvs: &[KeyValue], mut f: impl FnMut(usize)) {
    for kv in kvs {
        match Packed::of(kv) {
            Some(p) => {
                f(PACKED);
                p.entries()
                    .for_each(|(name, value)| f(entry_len(p.prefix, name, value)))
            }
            None => f(kv_len(kv.key.as_str(), &kv.value)),
        }
    }
}

fn scope_len(s: &InstrumentationScope) -> usize {
    let attrs: usize = s
        .attributes()
        .map(|kv| len_field_len(kv_len(kv.key.as_str(), &kv.value)))
        .sum();
    str_field_len(s.name()) + str_field_len(s.version().unwrap_or_default()) + attrs
}

fn span_flags(trace_flags: u8, remote: bool) -> u32 {
    let mut f = trace_flags as u32 | CONTEXT_HAS_IS_REMOTE;
    if remote {
        f |= CONTEXT_IS_REMOTE;
    }
    f
}

fn event_len(e: &opentelemetry::trace::Event) -> usize {
    fixed64_field_len(to_nanos(e.timestamp))
        + str_field_len(&e.name)
        + attrs_len(&e.attributes)
        + u32_field_len(e.dropped_attributes_count)
}

fn link_len(l: &opentelemetry::trace::Link) -> usize {
    let cx = &l.span_context;
    len_field_len(16)
        + len_field_len(8)
        + str_field_len(&cx.trace_state().header())
        + attrs_len(&l.attributes)
        + u32_field_len(l.dropped_attributes_count)
        // flags: never zero (the "has is-remote" bit is always set).
        + 5
}

fn status_len(s: &Status) -> usize {
    match s {
        Status::Unset => 0,
        Status::Ok => 2,
        Status::Error { description } => str_field_len(description) + 2,
    }
}

/// The `Span` message of `s` with the attribute fields `pre` before its own; the lengths of its
/// own attributes' messages are appended to `attr_lens`.
fn span_len(s: &SpanData, pre: PreEncoded<'_>, attr_lens: &mut Vec<u32>) -> usize {
    let cx = &s.span_context;
    let mut n = len_field_len(16) + len_field_len(8);
    n += str_field_len(&cx.trace_state().header());
    if s.parent_span_id != SpanId::INVALID {
        n += len_field_len(8);
    }
    n += str_field_len(&s.name);
    n += 2; // kind: never zero
    n += fixed64_field_len(to_nanos(s.start_time)) + fixed64_field_len(to_nanos(s.end_time));
    n += pre.len();
    each_attr_len(&s.attributes, |len| {
        // A span's attributes are bounded by the queue's byte budget, far below 4 GiB.
        attr_lens.push(len as u32);
        if len != PACKED {
            n += len_field_len(len);
        }
    });
    n += u32_field_len(s.dropped_attributes_count);
    n += s
        .events
        .iter()
        .map(|e| len_field_len(event_len(e)))
        .sum::<usize>();
    n += u32_field_len(s.events.dropped_count);
    n += s
        .links
        .iter()
        .map(|l| len_field_len(link_len(l)))
        .sum::<usize>();
    n += u32_field_len(s.links.dropped_count);
    n += len_field_len(status_len(&s.status));
    // flags (tag 16, two bytes): never zero.
    n + 2 + 4
}

// --- writing -------------------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The key of a field with a tag below 16.
fn put_key(out: &mut Vec<u8>, field: u8, wire: u8) {
    out.push((field << 3) | wire);
}

fn put_len_field(out: &mut Vec<u8>, field: u8, n: usize) {
    put_key(out, field, LEN);
    put_varint(out, n as u64);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    put_len_field(out, field, b.len());
    out.extend_from_slice(b);
}

fn put_str_field(out: &mut Vec<u8>, field: u8, s: &str) {
    if !s.is_empty() {
        put_bytes_field(out, field, s.as_bytes());
    }
}

fn put_u32_field(out: &mut Vec<u8>, field: u8, v: u32) {
    if v != 0 {
        put_key(out, field, VARINT);
        put_varint(out, v as u64);
    }
}

fn put_fixed64_field(out: &mut Vec<u8>, field: u8, v: u64) {
    if v != 0 {
        put_key(out, field, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_any_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Bool(b) => {
            put_key(out, 2, VARINT);
            out.push(*b as u8);
        }
        Value::I64(i) => {
            put_key(out, 3, VARINT);
            put_varint(out, *i as u64);
        }
        Value::F64(f) => {
            put_key(out, 4, FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => put_bytes_field(out, 1, s.as_str().as_bytes()),
        Value::Array(a) => {
            put_len_field(out, 5, array_len(a));
            put_array(out, a);
        }
        _ => {}
    }
}

/// The elements of an `ArrayValue`, each an `AnyValue` in field 1.
fn put_array(out: &mut Vec<u8>, a: &Array) {
    match a {
        Array::Bool(v) => {
            for b in v {
                put_len_field(out, 1, 2);
                put_any_value(out, &Value::Bool(*b));
            }
        }
        Array::I64(v) => {
            for i in v {
                put_len_field(out, 1, 1 + varint_len(*i as u64));
                put_any_value(out, &Value::I64(*i));
            }
        }
        Array::F64(v) => {
            for f in v {
                put_len_field(out, 1, 9);
                put_any_value(out, &Value::F64(*f));
            }
        }
        Array::String(v) => {
            for s in v {
                put_len_field(out, 1, len_field_len(s.as_str().len()));
                put_bytes_field(out, 1, s.as_str().as_bytes());
            }
        }
        _ => {}
    }
}

/// A `KeyValue` message's fields (its length already written).
fn put_kv(out: &mut Vec<u8>, key: &str, v: &Value) {
    put_str_field(out, 1, key);
    put_len_field(out, 2, any_value_len(v));
    put_any_value(out, v);
}

/// `kv` as a `Span.attributes` field (tag, length, `KeyValue`): what a record's encoded
/// attributes are made of (`export::finished`).
pub(crate) fn put_attribute(out: &mut Vec<u8>, kv: &KeyValue) {
    let (key, value) = (kv.key.as_str(), &kv.value);
    put_len_field(out, 9, kv_len(key, value));
    put_kv(out, key, value);
}

/// [`put_attribute`] for a string attribute given by reference: the same bytes, without the
/// `String` a `KeyValue` would need.
pub(crate) fn put_str_attribute(out: &mut Vec<u8>, key: &str, value: &str) {
    put_str_attribute_head(out, key, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// [`put_str_attribute`] but for the value's bytes, which go right after what this writes.
pub(crate) fn put_str_attribute_head(out: &mut Vec<u8>, key: &str, value_len: usize) {
    let any = len_field_len(value_len);
    put_len_field(out, 9, str_field_len(key) + len_field_len(any));
    put_str_field(out, 1, key);
    put_len_field(out, 2, any);
    put_len_field(out, 1, value_len);
}

/// `text` as the packed attribute it is, when `key` says so and it parses.
fn packed_text<'a>(key: &str, text: &'a str) -> Option<Packed<'a>> {
    (key == crate::capture::packed::PACKED_KEY)
        .then(|| Packed::parse(text))
        .flatten()
}

/// What [`put_text_attributes`] writes, in bytes.
pub(crate) fn text_attributes_len(key: &str, text: &str) -> usize {
    match packed_text(key, text) {
        Some(p) => p
            .entries()
            .map(|(name, value)| len_field_len(entry_len(p.prefix, name, value)))
            .sum(),
        None => len_field_len(str_field_len(key) + len_field_len(len_field_len(text.len()))),
    }
}

/// The attribute `key` = `text` as `Span.attributes` fields: one, or, for a packed attribute that
/// parses, one per entry (as [`put_attrs`] writes a packed `KeyValue`). Returns how many.
pub(crate) fn put_text_attributes(out: &mut Vec<u8>, key: &str, text: &str) -> usize {
    let Some(p) = packed_text(key, text) else {
        put_str_attribute(out, key, text);
        return 1;
    };
    let mut n = 0;
    for (name, value) in p.entries() {
        put_len_field(out, 9, entry_len(p.prefix, name, value));
        put_entry(out, p.prefix, name, value);
        n += 1;
    }
    n
}

/// A packed entry's `KeyValue` message's fields (its length already written).
fn put_entry(out: &mut Vec<u8>, prefix: &str, name: &str, value: &str) {
    let key = prefix.len() + name.len();
    if key != 0 {
        put_len_field(out, 1, key);
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    put_len_field(out, 2, len_field_len(value.len()));
    put_bytes_field(out, 1, value.as_bytes());
}

/// Each attribute as a `KeyValue` in `field`; each entry of a packed attribute as the attribute it
/// stands for.
fn put_attrs<'a>(out: &mut Vec<u8>, field: u8, kvs: impl IntoIterator<Item = &'a KeyValue>) {
    for kv in kvs {
        if let Some(p) = Packed::of(kv) {
            for (name, value) in p.entries() {
                put_len_field(out, field, entry_len(p.prefix, name, value));
                put_entry(out, p.prefix, name, value);
            }
            continue;
        }
        put_len_field(out, field, kv_len(kv.key.as_str(), &kv.value));
        put_kv(out, kv.key.as_str(), &kv.value);
    }
}

/// [`put_attrs`] for attributes whose messages' lengths are known, in order, from `lens` (as
/// [`each_attr_len`] gave them).
fn put_attrs_sized(out: &mut Vec<u8>, field: u8, kvs: &[KeyValue], lens: &[u32]) {
    let mut lens = lens.iter().map(|&l| l as usize).peekable();
    for kv in kvs {
        if lens.next_if_eq(&PACKED).is_some() {
            let p = Packed::of_validated(kv).expect("checked by the length pass");
            for (name, value) in p.entries() {
                put_len_field(out, field, lens.next().expect("a length per entry"));
                put_entry(out, p.prefix, name, value);
            }
            continue;
        }
        put_len_field(out, field, lens.next().expect("a length per attribute"));
        put_kv(out, kv.key.as_str(), &kv.value);
    }
}

fn put_scope(out: &mut Vec<u8>, s: &InstrumentationScope) {
    put_str_field(out, 1, s.name());
    put_str_field(out, 2, s.version().unwrap_or_default());
    put_attrs(out, 3, s.attributes());
}

/// Writes the `Span` message of `s`, with the attribute fields `pre` before its own; `attr_lens`
/// starts with the lengths [`span_len`] gave its attributes.
fn put_span(out: &mut Vec<u8>, s: &SpanData, pre: PreEncoded<'_>, attr_lens: &[u32]) {
    let cx = &s.span_context;
    put_bytes_field(out, 1, &cx.trace_id().to_bytes());
    put_bytes_field(out, 2, &cx.span_id().to_bytes());
    put_str_field(out, 3, &cx.trace_state().header());
    if s.parent_span_id != SpanId::INVALID {
        put_bytes_field(out, 4, &s.parent_span_id.to_bytes());
    }
    put_str_field(out, 5, &s.name);
    put_key(out, 6, VARINT);
    out.push(span_kind(&s.span_kind));
    put_fixed64_field(out, 7, to_nanos(s.start_time));
    put_fixed64_field(out, 8, to_nanos(s.end_time));
    pre.write(out);
    put_attrs_sized(out, 9, &s.attributes, attr_lens);
    put_u32_field(out, 10, s.dropped_attributes_count);
    for e in s.events.iter() {
        put_len_field(out, 11, event_len(e));
        put_fixed64_field(out, 1, to_nanos(e.timestamp));
        put_str_field(out, 2, &e.name);
        put_attrs(out, 3, &e.attributes);
        put_u32_field(out, 4, e.dropped_attributes_count);
    }
    put_u32_field(out, 12, s.events.dropped_count);
    for l in s.links.iter() {
        let lcx = &l.span_context;
        put_len_field(out, 13, link_len(l));
        put_bytes_field(out, 1, &lcx.trace_id().to_bytes());
        put_bytes_field(out, 2, &lcx.span_id().to_bytes());
        put_str_field(out, 3, &lcx.trace_state().header());
        put_attrs(out, 4, &l.attributes);
        put_u32_field(out, 5, l.dropped_attributes_count);
        put_key(out, 6, FIXED32);
        let flags = span_flags(lcx.trace_flags().to_u8(), lcx.is_remote());
        out.extend_from_slice(&flags.to_le_bytes());
    }
    put_u32_field(out, 14, s.links.dropped_count);
    put_len_field(out, 15, status_len(&s.status));
    match &s.status {
        Status::Unset => {}
        Status::Ok => put_u32_field(out, 3, 1),
        Status::Error { description } => {
            put_str_field(out, 2, description);
            put_u32_field(out, 3, 2);
        }
    }
    // Tag 16, fixed32: the key takes two bytes.
    put_varint(out, (16 << 3) | FIXED32 as u64);
    let flags = span_flags(cx.trace_flags().to_u8(), s.parent_span_is_remote);
    out.extend_from_slice(&flags.to_le_bytes());
}

/// `Span.SpanKind`: INTERNAL 1, SERVER 2, CLIENT 3, PRODUCER 4, CONSUMER 5.
fn span_kind(k: &opentelemetry::trace::SpanKind) -> u8 {
    use opentelemetry::trace::SpanKind;
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths() {
        for (v, n) in [
            (0u64, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::MAX, 10),
        ] {
            assert_eq!(varint_len(v), n, "{v}");
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), n, "{v}");
        }
        assert_eq!(varint_len(-1i64 as u64), 10);
    }

    /// A string attribute written from references is byte for byte the `KeyValue`'s encoding,
    /// empty keys and values and lengths of several varint bytes included.
    #[test]
    fn a_borrowed_string_attribute_encodes_as_its_key_value() {
        let long = "v".repeat(300);
        for key in ["", "k", "http.request.header.x"] {
            for value in ["", "x", long.as_str()] {
                let (mut got, mut want) = (Vec::new(), Vec::new());
                put_str_attribute(&mut got, key, value);
                put_attribute(&mut want, &KeyValue::new(key.to_owned(), value.to_owned()));
                assert_eq!(got, want, "{key:?} = {} bytes", value.len());
            }
        }
    }
}
