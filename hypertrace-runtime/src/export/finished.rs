//! A finished span as the batch processor holds it: either the SDK's `SpanData` (an app's own
//! OpenTelemetry spans, and the agent's in a pipeline without span records of its own) or the
//! agent's own [`Record`] (the server, client, gRPC and SQL spans it starts), whose attributes are
//! mostly written already in OTLP's protobuf encoding.
//!
//! Why the agent records its server spans itself: an SDK span keeps each attribute as a
//! `KeyValue` in a growing `Vec`, hands the export thread a `SpanData` to free (a free on another
//! thread is what glibc's malloc makes expensive), and leaves every attribute to be walked again
//! by the encoder. A [`Record`] is taken from a pool when the request starts, its plain attributes
//! are encoded into a buffer that keeps its capacity from request to request, and after export it
//! goes back to the pool, to be cleared by the next request that takes it: nothing the serving
//! thread allocated is freed on the export thread, and the encoder copies those bytes.
//!
//! The long texts a capture hands over by reference (bodies, packed headers:
//! `capture::AttributeSink`) are copied into the record's `texts` buffer, which keeps its capacity
//! too; the export thread redacts them and appends them to the encoded attributes, needing a
//! `KeyValue` only for a body in which something was redacted. What stays a `KeyValue` in the
//! record's `SpanData` from the start is what the export thread still works on or what the
//! encoding would not give back exactly: other attributes whose key starts with a NUL byte (gRPC
//! messages waiting to be written as JSON), empty arrays (whose element type the encoding loses)
//! and value kinds the encoder does not know.
//!
//! A large text handed over as a `String` (a body of 16 KiB or more) is not copied at all: the
//! record holds it as it is, and the export thread encodes only its field's head, the encoder
//! writing the text in between (`Record::spliced`). A large body so exists once from its capture
//! to its export, where it was copied twice, and the export thread frees it once it is sent
//! rather than keeping it in the pool.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::encode::PreEncoded;
use crate::capture::deferred::{Redaction, Verdict};
use crate::capture::packed::unpacked;

/// A finished span waiting for export, as a [`BatchExporter`](crate::BatchExporter) borrows it.
///
/// The agent's [`TraceEncoder`](crate::TraceEncoder) encodes it as it is; any other exporter
/// reads it as the SDK's `SpanData` with [`FinishedSpan::to_span_data`].
#[derive(Debug)]
pub struct FinishedSpan(pub(crate) Repr);

// Both boxed, so that a queued span is two words: the queue and each batch move spans under the
// queue's lock, and the agent's own spans are most of them. An SDK span pays one allocation for it.
#[derive(Debug)]
pub(crate) enum Repr {
    Sdk(Box<SpanData>),
    Agent(Box<Record>),
}

impl FinishedSpan {
    /// The span as the SDK's `SpanData`, every attribute in it as its own `KeyValue` (a request's
    /// headers included, which the agent carries packed).
    pub fn to_span_data(&self) -> SpanData {
        let data = self.data();
        let pre = self.pre_encoded();
        let mut attributes = if pre.len() == 0 {
            unpacked(&data.attributes).into_owned()
        } else {
            let mut all = decode_attributes(&pre.contiguous());
            all.extend(unpacked(&data.attributes).into_owned());
            all
        };
        // Texts not yet encoded (a span read before its batch left the queue).
        if let Repr::Agent(r) = &self.0 {
            let texts: Vec<KeyValue> = r
                .texts()
                .map(|(t, v)| KeyValue::new(t.key.clone(), v.to_owned()))
                .collect();
            attributes.extend(unpacked(&texts).into_owned());
        }
        SpanData {
            span_context: data.span_context.clone(),
            parent_span_id: data.parent_span_id,
            parent_span_is_remote: data.parent_span_is_remote,
            span_kind: data.span_kind.clone(),
            name: data.name.clone(),
            start_time: data.start_time,
            end_time: data.end_time,
            attributes,
            dropped_attributes_count: data.dropped_attributes_count,
            events: data.events.clone(),
            links: data.links.clone(),
            status: data.status.clone(),
            instrumentation_scope: data.instrumentation_scope.clone(),
        }
    }

    /// Everything but the pre-encoded attributes.
    pub(crate) fn data(&self) -> &SpanData {
        match &self.0 {
            Repr::Sdk(d) => d,
            Repr::Agent(r) => &r.data,
        }
    }

    pub(crate) fn data_mut(&mut self) -> &mut SpanData {
        match &mut self.0 {
            Repr::Sdk(d) => d,
            Repr::Agent(r) => &mut r.data,
        }
    }

    /// The attributes already encoded: `Span.attributes` fields, tag and length included.
    pub(crate) fn pre_encoded(&self) -> PreEncoded<'_> {
        match &self.0 {
            Repr::Sdk(_) => PreEncoded::default(),
            Repr::Agent(r) => PreEncoded::new(&r.encoded, &r.spliced),
        }
    }

    /// The bytes of the texts not yet encoded, and how many there are.
    pub(crate) fn held_texts(&self) -> (usize, usize) {
        match &self.0 {
            Repr::Sdk(_) => (0, 0),
            Repr::Agent(r) => {
                let owned: usize = r
                    .text_attrs
                    .iter()
                    .filter_map(|t| t.own.as_ref())
                    .map(String::len)
                    .sum();
                (r.texts.len() + owned, r.text_attrs.len())
            }
        }
    }

    /// Redacts and encodes the span's texts ([`Record::encode_texts`]).
    pub(crate) fn encode_texts(&mut self, redaction: &Redaction) {
        if let Repr::Agent(r) = &mut self.0 {
            r.encode_texts(redaction);
        }
    }
}

impl From<SpanData> for FinishedSpan {
    fn from(d: SpanData) -> Self {
        FinishedSpan(Repr::Sdk(Box::new(d)))
    }
}

/// The agent's own span record: see the module documentation.
#[derive(Debug)]
pub(crate) struct Record {
    /// The span, but for the attributes in `encoded`.
    pub(crate) data: SpanData,
    /// `Span.attributes` fields (tag 9, length, `KeyValue` message), in the order they were set.
    pub(crate) encoded: Vec<u8>,
    /// How many attributes `encoded` holds (`spliced` included).
    pub(crate) encoded_count: u32,
    /// Large texts held as they are (bodies handed over as `String`s, past [`OWN_TEXT_MIN`]),
    /// encoded: each is the value of the field whose head ends at its offset in `encoded`. The
    /// encoder writes them in between, so that a large body is not copied into `encoded` first.
    pub(crate) spliced: Vec<(usize, String)>,
    /// The long string attributes handed over as text ([`Record::push_text`]: bodies, packed
    /// headers): their values one after the other, in a buffer that keeps its capacity from
    /// request to request, so that the serving thread allocates nothing for them. The export
    /// thread redacts them and writes them into `encoded` before it encodes the batch
    /// ([`Record::encode_texts`]).
    pub(crate) texts: String,
    /// The key of each text in `texts` and where it ends.
    pub(crate) text_attrs: Vec<TextAttr>,
}

/// One attribute held in [`Record::texts`], or, for a large text given as a `String`, held apart.
#[derive(Debug)]
pub(crate) struct TextAttr {
    key: Key,
    /// Where the text ends in [`Record::texts`]; for a text held apart, where the previous one ended.
    end: usize,
    /// A large text given as a `String` ([`Record::push_owned_text`]), held as it is.
    own: Option<String>,
    /// Recorded before the final capture policy was known (a request's headers): dropped by
    /// [`Record::drop_deferred_texts`] if that policy does not keep them.
    deferred: bool,
}

/// A record whose buffers grew past this is freed after export rather than pooled: one request
/// with a huge attribute must not leave every pooled record that large.
pub(crate) const KEPT_CAPACITY: usize = 16 * 1024;

/// What a record's text buffer first grows to: a request's headers and two small bodies.
const TEXTS_CHUNK: usize = 4 * 1024;

/// A text given as a `String` from this size on is held as it is rather than copied into
/// [`Record::texts`]: a large body then lives once on the serving thread, not twice, and the
/// record's buffer stays small enough to be pooled ([`KEPT_CAPACITY`]).
const OWN_TEXT_MIN: usize = KEPT_CAPACITY;

impl TextAttr {
    /// Whether the text is spliced into the batch rather than copied into the encoded attributes:
    /// a text held apart that is one attribute (not packed headers, which become one per entry).
    fn spliced(&self) -> bool {
        self.own.is_some() && self.key.as_str() != crate::capture::packed::PACKED_KEY
    }

    /// The text, in `texts` from `start` (where the previous one ended) or held apart.
    fn text<'a>(&'a self, texts: &'a str, start: usize) -> &'a str {
        match &self.own {
            Some(own) => own,
            None => &texts[start..self.end],
        }
    }
}

impl Record {
    pub(crate) fn new() -> Box<Record> {
        Box::new(Record {
            data: SpanData {
                span_context: SpanContext::empty_context(),
                parent_span_id: SpanId::INVALID,
                parent_span_is_remote: false,
                span_kind: SpanKind::Internal,
                name: Cow::Borrowed(""),
                start_time: SystemTime::UNIX_EPOCH,
                end_time: SystemTime::UNIX_EPOCH,
                attributes: Vec::new(),
                dropped_attributes_count: 0,
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status: Status::Unset,
                instrumentation_scope: InstrumentationScope::default(),
            },
            encoded: Vec::new(),
            encoded_count: 0,
            spliced: Vec::new(),
            texts: String::new(),
            text_attrs: Vec::new(),
        })
    }

    /// Forgets the previous span, keeping the buffers' capacity.
    pub(crate) fn clear(&mut self) {
        let d = &mut self.data;
        d.attributes.clear();
        d.dropped_attributes_count = 0;
        d.events.events.clear();
        d.events.dropped_count = 0;
        d.links.links.clear();
        d.links.dropped_count = 0;
        // A name the span wrote into its own buffer (`span::record::SpanName`) keeps
        // the buffer for the next one.
        match &mut d.name {
            Cow::Owned(name) if name.capacity() <= 256 => name.clear(),
            name => *name = Cow::Borrowed(""),
        }
        d.status = Status::Unset;
        d.span_context = SpanContext::empty_context();
        self.encoded.clear();
        self.encoded_count = 0;
        self.spliced.clear();
        self.texts.clear();
        self.text_attrs.clear();
    }

    /// Whether the record is small enough to be pooled after export.
    pub(crate) fn keep(&self) -> bool {
        self.encoded.capacity() <= KEPT_CAPACITY
            && self.texts.capacity() <= KEPT_CAPACITY
            && self.data.attributes.capacity() <= 256
            && self.text_attrs.capacity() <= 256
    }

    /// How many attributes the span has.
    pub(crate) fn attribute_count(&self) -> usize {
        self.encoded_count as usize + self.data.attributes.len() + self.text_attrs.len()
    }

    /// Adds the string attribute `key` = `text`, copied into [`texts`](Self::texts); `deferred`:
    /// see [`TextAttr`].
    pub(crate) fn push_text(&mut self, key: Key, text: &str, deferred: bool) {
        if self.texts.capacity() - self.texts.len() < text.len() {
            // A new record's buffer grows once for a request's texts, not once per text.
            self.texts.reserve(text.len().max(TEXTS_CHUNK));
        }
        self.texts.push_str(text);
        self.text_attrs.push(TextAttr {
            key,
            end: self.texts.len(),
            own: None,
            deferred,
        });
    }

    /// [`push_text`](Self::push_text) for a text given as a `String`: a large one is held as it
    /// is, with no copy (see [`OWN_TEXT_MIN`]).
    pub(crate) fn push_owned_text(&mut self, key: Key, text: String, deferred: bool) {
        if text.len() < OWN_TEXT_MIN {
            return self.push_text(key, &text, deferred);
        }
        self.text_attrs.push(TextAttr {
            key,
            end: self.texts.len(),
            own: Some(text),
            deferred,
        });
    }

    /// Drops the texts recorded as deferred (a handler turned their capture off).
    pub(crate) fn drop_deferred_texts(&mut self) {
        if !self.text_attrs.iter().any(|t| t.deferred) {
            return;
        }
        // Rare: a copy of the rest is fine.
        let all = std::mem::take(&mut self.texts);
        let mut start = 0;
        let mut kept = Vec::new();
        for t in std::mem::take(&mut self.text_attrs) {
            if !t.deferred {
                kept.push((t.key, start, t.end, t.own));
            }
            start = t.end;
        }
        for (key, start, end, own) in kept {
            match own {
                Some(text) => self.push_owned_text(key, text, false),
                None => self.push_text(key, &all[start..end], false),
            }
        }
    }

    /// The texts with their attributes, in the order they were recorded.
    fn texts(&self) -> impl Iterator<Item = (&TextAttr, &str)> {
        let mut start = 0;
        self.text_attrs.iter().map(move |t| {
            let value = t.text(&self.texts, start);
            start = t.end;
            (t, value)
        })
    }

    /// Redacts the texts as `redaction` says and encodes them after the span's other encoded
    /// attributes (the export thread, before the batch is encoded): a text needs no `KeyValue`
    /// unless something in it was redacted (the redacted text is then one, allocated here).
    pub(crate) fn encode_texts(&mut self, redaction: &Redaction) {
        if self.text_attrs.is_empty() {
            return;
        }
        // Exactly the room the texts take (a packed header's entries each get the key prefix
        // again; a text held apart takes only its field's head): a new record's buffer grows once
        // here, and no more than it needs (a large body must not hold twice its size).
        let room: usize = self
            .texts()
            .map(|(t, text)| {
                let apart = if t.spliced() { text.len() } else { 0 };
                super::encode::text_attributes_len(t.key.as_str(), text) - apart
            })
            .sum();
        self.encoded.reserve(room);
        let mut attrs = std::mem::take(&mut self.text_attrs);
        let mut start = 0;
        for t in attrs.drain(..) {
            let text = t.text(&self.texts, start);
            start = t.end;
            // A `.truncated` mark is encoded, or (rarely) a `KeyValue`.
            let (encoded, kvs) = (&self.encoded, &self.data.attributes);
            let has = |key: &str| {
                kvs.iter().any(|kv| kv.key.as_str() == key)
                    || encoded.windows(key.len()).any(|w| w == key.as_bytes())
            };
            let key = match redaction.verdict(&t.key, text, has) {
                Verdict::Unmarked => t.key.clone(),
                Verdict::Keep(key) => key,
                Verdict::Redacted(kvs) => {
                    self.data.attributes.extend(kvs);
                    continue;
                }
            };
            let spliced = t.spliced();
            match t.own {
                // One field, its value spliced in.
                Some(own) if spliced => {
                    super::encode::put_str_attribute_head(
                        &mut self.encoded,
                        key.as_str(),
                        own.len(),
                    );
                    self.spliced.push((self.encoded.len(), own));
                    self.encoded_count += 1;
                }
                _ => {
                    let n =
                        super::encode::put_text_attributes(&mut self.encoded, key.as_str(), text);
                    self.encoded_count += n as u32;
                }
            }
        }
        self.texts.clear();
        self.text_attrs = attrs;
    }

    /// Frees the span's `KeyValue` attributes after export, on the export thread: for a span
    /// whose texts were encoded here they are few, and mostly allocated here (redacted bodies).
    pub(crate) fn release_attributes(&mut self) {
        self.data.attributes.clear();
        // Large bodies, freed here rather than held in the pool until the record's next request.
        self.spliced.clear();
    }

    /// Adds the string attribute `key` = `value`, encoded (never a key that stays a `KeyValue`).
    pub(crate) fn push_str(&mut self, key: &'static str, value: &str) {
        debug_assert!(!key.starts_with('\0'), "{key:?} is a marked key");
        super::encode::put_str_attribute(&mut self.encoded, key, value);
        self.encoded_count += 1;
    }

    /// Adds `kv`, encoded unless the module documentation says it stays a `KeyValue`.
    pub(crate) fn push_attribute(&mut self, kv: KeyValue) {
        if encodable(&kv) {
            super::encode::put_attribute(&mut self.encoded, &kv);
            self.encoded_count += 1;
        } else {
            self.data.attributes.push(kv);
        }
    }
}

/// Whether `kv` is written into a record's encoded attributes (see the module documentation).
fn encodable(kv: &KeyValue) -> bool {
    if kv.key.as_str().starts_with('\0') {
        return false;
    }
    match &kv.value {
        Value::Bool(_) | Value::I64(_) | Value::F64(_) | Value::String(_) => true,
        Value::Array(Array::Bool(v)) => !v.is_empty(),
        Value::Array(Array::I64(v)) => !v.is_empty(),
        Value::Array(Array::F64(v)) => !v.is_empty(),
        Value::Array(Array::String(v)) => !v.is_empty(),
        _ => false,
    }
}

// --- reading the encoded attributes back (the cold path: exporters other than OTLP) -------------

/// A protobuf reader over bytes this crate wrote: a malformed input is a bug here, so reading
/// stops at the first thing it does not expect rather than reporting an error.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    /// The next field: its number, and its bytes (a varint's value as its 8 bytes, a fixed64's
    /// 8 bytes, a length-delimited field's contents).
    fn field(&mut self) -> Option<(u64, Field<'a>)> {
        let key = self.varint()?;
        let f = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            2 => {
                let n = self.varint()? as usize;
                Field::Len(self.take(n)?)
            }
            _ => return None,
        };
        Some((key >> 3, f))
    }
}

enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The attributes of `Span.attributes` fields, as [`Record::push_attribute`] wrote them.
pub(crate) fn decode_attributes(bytes: &[u8]) -> Vec<KeyValue> {
    let mut out = Vec::new();
    let mut r = Reader(bytes);
    while let Some((9, Field::Len(kv))) = r.field() {
        let (mut key, mut value) = (String::new(), Value::from(""));
        let mut r = Reader(kv);
        while let Some((n, f)) = r.field() {
            match (n, f) {
                (1, Field::Len(k)) => key = utf8(k),
                (2, Field::Len(v)) => value = decode_any(v).unwrap_or(value),
                _ => {}
            }
        }
        out.push(KeyValue::new(key, value));
    }
    out
}

/// One `AnyValue` of the kinds [`encodable`] lets through.
fn decode_any(bytes: &[u8]) -> Option<Value> {
    let mut r = Reader(bytes);
    Some(match r.field()? {
        (1, Field::Len(s)) => Value::from(utf8(s)),
        (2, Field::Varint(b)) => Value::Bool(b != 0),
        (3, Field::Varint(i)) => Value::I64(i as i64),
        (4, Field::Fixed64(f)) => Value::F64(f64::from_bits(f)),
        (5, Field::Len(a)) => {
            let mut elems = Vec::new();
            let mut r = Reader(a);
            while let Some((1, Field::Len(e))) = r.field() {
                elems.push(decode_any(e)?);
            }
            Value::Array(match elems.first()? {
                Value::Bool(_) => Array::Bool(collect(elems, |v| match v {
                    Value::Bool(b) => Some(b),
                    _ => None,
                })?),
                Value::I64(_) => Array::I64(collect(elems, |v| match v {
                    Value::I64(i) => Some(i),
                    _ => None,
                })?),
                Value::F64(_) => Array::F64(collect(elems, |v| match v {
                    Value::F64(f) => Some(f),
                    _ => None,
                })?),
                Value::String(_) => Array::String(collect(elems, |v| match v {
                    Value::String(s) => Some(s),
                    _ => None,
                })?),
                _ => return None,
            })
        }
        _ => return None,
    })
}

fn collect<T>(elems: Vec<Value>, f: impl Fn(Value) -> Option<T>) -> Option<Vec<T>> {
    elems.into_iter().map(f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue and every batch move spans by value under the queue's lock: a span is a pointer
    /// and the enum's tag, whichever kind it is.
    #[test]
    fn a_finished_span_is_two_words() {
        assert_eq!(
            std::mem::size_of::<FinishedSpan>(),
            2 * std::mem::size_of::<usize>()
        );
    }

    /// A cut body whose redaction takes it past the limit again keeps one `.truncated` mark (the
    /// capture's, which the record holds encoded); one that was not cut gets one.
    #[test]
    fn a_redacted_text_past_the_limit_is_marked_truncated_once() {
        let mut cfg = crate::config::Config::defaults("test");
        cfg.data_capture.body_max_size_bytes = 24;
        let redaction = Redaction::of(&cfg);
        let key = crate::capture::deferred::marked_key(
            &Key::from_static_str("http.request.body"),
            crate::capture::redact::Syntax::Json,
        );
        let marks = |r: &Record| {
            let mut all = decode_attributes(&r.encoded);
            all.extend(r.data.attributes.iter().cloned());
            let n = all
                .iter()
                .filter(|kv| kv.key.as_str() == "http.request.body.truncated")
                .count();
            let body = all
                .iter()
                .find(|kv| kv.key.as_str() == "http.request.body")
                .map(|kv| kv.value.to_string());
            (n, body)
        };
        for cut in [true, false] {
            let mut r = Record::new();
            r.push_text(key.clone(), r#"{"password":"abc","a":1}"#, false);
            if cut {
                r.push_attribute(KeyValue::new("http.request.body.truncated", true));
            }
            r.encode_texts(&redaction);
            let (n, body) = marks(&r);
            assert_eq!(n, 1, "cut: {cut}");
            assert_eq!(body.as_deref(), Some(r#"{"password":"[REDACTED]""#));
        }
    }

    fn values() -> Vec<KeyValue> {
        vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("empty", ""),
            KeyValue::new("", "no key"),
            KeyValue::new("yes", true),
            KeyValue::new("no", false),
            KeyValue::new("zero", 0i64),
            KeyValue::new("neg", -42i64),
            KeyValue::new("max", i64::MAX),
            KeyValue::new("pi", std::f64::consts::PI),
            KeyValue::new("nzero", -0.0f64),
            KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1, i64::MIN]))),
            KeyValue::new("floats", Value::Array(Array::F64(vec![1.5, f64::INFINITY]))),
            KeyValue::new(
                "strings",
                Value::Array(Array::String(vec!["a".into(), "".into(), "é€".into()])),
            ),
            KeyValue::new("utf8", "héllo \u{1F600}"),
        ]
    }

    /// Every value kind a record encodes reads back as the same attribute, in order.
    #[test]
    fn encoded_attributes_read_back_as_they_were_set() {
        let mut r = Record::new();
        for kv in values() {
            r.push_attribute(kv);
        }
        assert_eq!(r.encoded_count as usize, values().len());
        assert!(r.data.attributes.is_empty());
        let back = decode_attributes(&r.encoded);
        assert_eq!(back.len(), values().len());
        for (a, b) in back.iter().zip(values()) {
            assert_eq!(a.key, b.key);
            match (&a.value, &b.value) {
                (Value::F64(x), Value::F64(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                (x, y) => assert_eq!(x, y),
            }
        }
    }

    /// What the encoding would not give back exactly, or what the export thread still works on,
    /// stays a `KeyValue`.
    #[test]
    fn marked_keys_and_empty_arrays_stay_key_values() {
        let mut r = Record::new();
        r.push_attribute(KeyValue::new("\0hypertrace.packed", "x"));
        r.push_attribute(KeyValue::new("e", Value::Array(Array::I64(vec![]))));
        r.push_attribute(KeyValue::new("k", "v"));
        assert_eq!(r.encoded_count, 1);
        assert_eq!(r.data.attributes.len(), 2);
        assert_eq!(r.attribute_count(), 3);
        let span = FinishedSpan(Repr::Agent(r)).to_span_data();
        let keys: Vec<_> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["k", "\0hypertrace.packed", "e"]);
    }

    /// A large text given as a `String` is held as it is, between texts copied into the buffer,
    /// and reads, drops (deferred) and encodes exactly as if it had been copied; the buffer stays
    /// small.
    #[test]
    fn a_large_owned_text_is_held_apart_and_reads_as_if_copied() {
        let redaction = Redaction::of(&crate::config::Config::defaults("test"));
        let large = "x".repeat(OWN_TEXT_MIN);
        let fill = |r: &mut Record, own: bool| {
            r.push_text(Key::from_static_str("h"), "deferred", true);
            r.push_text(Key::from_static_str("a"), "first", false);
            if own {
                r.push_owned_text(Key::from_static_str("big"), large.clone(), false);
                r.push_owned_text(
                    Key::from_static_str("small"),
                    "owned but small".into(),
                    true,
                );
            } else {
                r.push_text(Key::from_static_str("big"), &large, false);
                r.push_text(Key::from_static_str("small"), "owned but small", true);
            }
            r.push_text(Key::from_static_str("b"), "last", false);
        };
        let (mut owned, mut copied) = (Record::new(), Record::new());
        fill(&mut owned, true);
        fill(&mut copied, false);
        assert!(owned.texts.len() < 64, "the large text was copied");
        let read = |r: &Record| {
            r.texts()
                .map(|(t, v)| (t.key.to_string(), v.to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(read(&owned), read(&copied));
        let held = |r: Box<Record>| FinishedSpan(Repr::Agent(r)).held_texts();
        let (o, c) = (held(owned), held(copied));
        assert_eq!(o, c);
        for drop_deferred in [false, true] {
            let (mut owned, mut copied) = (Record::new(), Record::new());
            fill(&mut owned, true);
            fill(&mut copied, false);
            if drop_deferred {
                owned.drop_deferred_texts();
                copied.drop_deferred_texts();
                assert_eq!(read(&owned).len(), 3);
            }
            assert_eq!(read(&owned), read(&copied));
            owned.encode_texts(&redaction);
            copied.encode_texts(&redaction);
            assert_eq!(owned.spliced.len(), 1, "the large text is spliced in");
            assert!(owned.encoded.len() < 256, "the large text was copied");
            let pre = |r: &Record| {
                PreEncoded::new(&r.encoded, &r.spliced)
                    .contiguous()
                    .into_owned()
            };
            assert_eq!(pre(&owned), pre(&copied), "drop_deferred: {drop_deferred}");
            assert_eq!(owned.encoded_count, copied.encoded_count);
            assert!(owned.text_attrs.is_empty() && owned.texts.is_empty());
            owned.release_attributes();
            assert!(owned.spliced.is_empty(), "a large body left in the pool");
        }
    }

    #[test]
    fn a_cleared_record_keeps_its_buffers() {
        let mut r = Record::new();
        r.push_attribute(KeyValue::new("k", "v".repeat(100)));
        r.push_attribute(KeyValue::new("\0m", "x"));
        let cap = r.encoded.capacity();
        r.clear();
        assert_eq!(r.attribute_count(), 0);
        assert!(r.encoded.is_empty() && r.encoded.capacity() == cap);
        assert!(r.data.attributes.capacity() > 0);
    }
}

#[cfg(test)]
mod encoding_tests {
    use super::*;
    use crate::export::encode::TraceEncoder;

    /// A record encodes to the same bytes as its `SpanData` form would.
    #[test]
    fn a_record_encodes_as_its_span_data() {
        let mut r = Record::new();
        r.data.name = "POST /echo".into();
        r.data.span_kind = SpanKind::Server;
        r.data.start_time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5);
        r.data.end_time = r.data.start_time + std::time::Duration::from_millis(3);
        for kv in tests_values() {
            r.push_attribute(kv);
        }
        r.push_attribute(KeyValue::new("\0hypertrace.unknown", "kept as it is"));
        // A large body spliced in between the encoded attributes, and one after it.
        let redaction = Redaction::of(&crate::config::Config::defaults("test"));
        r.push_owned_text(
            Key::from_static_str("http.request.body"),
            "b".repeat(OWN_TEXT_MIN + 1),
            false,
        );
        r.push_text(Key::from_static_str("small"), "after it", false);
        r.encode_texts(&redaction);
        r.push_attribute(KeyValue::new("last", 1i64));
        assert_eq!(r.spliced.len(), 1);
        let finished = FinishedSpan(Repr::Agent(r));
        let plain = finished.to_span_data();
        let resource = opentelemetry_sdk::Resource::builder_empty().build();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        TraceEncoder::new(&resource).encode(std::slice::from_ref(&finished), &mut a);
        TraceEncoder::new(&resource).encode(&[plain], &mut b);
        assert_eq!(a, b);
    }
}

#[cfg(test)]
fn tests_values() -> Vec<KeyValue> {
    vec![
        KeyValue::new("http.request.method", "POST"),
        KeyValue::new("n", 7i64),
        KeyValue::new("f", 0.5f64),
        KeyValue::new("b", true),
        KeyValue::new("a", Value::Array(Array::String(vec!["x".into()]))),
    ]
}
