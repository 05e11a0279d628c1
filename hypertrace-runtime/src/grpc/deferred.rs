//! Messages written as proto3 JSON on the export thread instead of on the call's path.
//!
//! Decoding a message with its descriptor and writing it as JSON costs a few microseconds, and
//! on the call's path it delays the call itself: the server decodes the request before its
//! handler gets it and the response before the trailers go out, and the client does the same at
//! its end. So the capture keeps only the message bytes in the span ([`Messages`], bounded by
//! `data_capture.body_max_size_bytes`), under a marked key, and the agent's batch processor
//! writes the JSON ([`render_all`]) as it takes each batch from its queue: before body-field
//! redaction and before any exporter (OTLP, Zipkin, LOGGING, an application's own) sees the span.
//! What is exported is what decoding on the call's path produced: the same decoder and the same
//! limits on the same bytes.
//!
//! The bytes wait in the span itself, so the queue's byte budget counts them and a span the queue
//! drops takes them with it: nothing is kept anywhere else. The descriptors they are decoded with
//! are found through a process-wide list of descriptor pools ([`register`]), one entry per
//! distinct set of descriptors however many times [`Descriptors`](super::Descriptors) is built.
//!
//! The marked value is text (an attribute holds no bytes): the records, then `\0<flags>\0<message
//! type>\0<pool>\0<limit>`. Each record is a tag (`c` complete, `p` cut, `n` not decodable, no bytes), a
//! 4-byte little-endian length and the message's bytes, each byte written as the character of
//! the same number (Latin-1), which any byte sequence is, in valid UTF-8.

use std::io::{self, Write};
use std::sync::RwLock;

use opentelemetry::{Key, KeyValue, Value};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

use crate::capture::body::BodyCapture;
use crate::capture::content_type::{CaptureKind, ContentEncoding};
use crate::capture::deferred::marked_key;
use crate::capture::redact::Syntax;

/// What a marked key starts with; the real key follows.
const PREFIX: &str = "\0hypertrace.grpc\0";

/// The keys the agent records, with their marked forms: no allocation for them.
const KNOWN: [(&str, &str); 2] = [
    ("rpc.request.body", "\0hypertrace.grpc\0rpc.request.body"),
    ("rpc.response.body", "\0hypertrace.grpc\0rpc.response.body"),
];

/// The descriptor pools messages are decoded with, by the index a marked value names, each
/// with the descriptor sets it was built from (to find it again).
static POOLS: RwLock<Vec<(Box<[u8]>, DescriptorPool)>> = RwLock::new(Vec::new());

/// The pool built from these descriptor sets (`fingerprint`: the sets, each after its length),
/// and its index: one already registered for the same sets, else the one `build` makes.
pub(crate) fn register<E>(
    fingerprint: Vec<u8>,
    build: impl FnOnce() -> Result<DescriptorPool, E>,
) -> Result<(u32, DescriptorPool), E> {
    let mut pools = POOLS.write().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = pools.iter().position(|(f, _)| **f == *fingerprint) {
        return Ok((i as u32, pools[i].1.clone()));
    }
    let pool = build()?;
    pools.push((fingerprint.into_boxed_slice(), pool.clone()));
    Ok(((pools.len() - 1) as u32, pool))
}

fn pool(index: u32) -> Option<DescriptorPool> {
    let pools = POOLS.read().unwrap_or_else(|p| p.into_inner());
    pools.get(index as usize).map(|(_, pool)| pool.clone())
}

/// A message type and the pool it is registered in (see [`register`]).
#[derive(Clone, Debug)]
pub(crate) struct MessageType {
    pub descriptor: MessageDescriptor,
    pub pool: u32,
}

/// The messages of one direction of a call whose type is known, kept as bytes for
/// [`render_all`]: at most `limit` bytes of them in all.
pub(crate) struct Messages {
    ty: MessageType,
    streaming: bool,
    limit: usize,
    /// The records, in Latin-1 (see the module's documentation).
    records: String,
    kept: usize,
}

impl Messages {
    pub(crate) fn new(ty: MessageType, streaming: bool, limit: usize) -> Self {
        Messages {
            ty,
            streaming,
            limit,
            records: String::new(),
            kept: 0,
        }
    }

    /// True once the limit is reached: the caller notes later messages as missing, and pushes
    /// them no more.
    pub(crate) fn is_full(&self) -> bool {
        self.kept >= self.limit
    }

    /// Keeps one message's bytes (`complete`: not cut by the frame decoder's limit), as much of
    /// them as the limit leaves room for.
    pub(crate) fn push(&mut self, bytes: &[u8], complete: bool) {
        let room = self.limit.saturating_sub(self.kept);
        let (bytes, complete) = if bytes.len() > room {
            (&bytes[..room], false)
        } else {
            (bytes, complete)
        };
        self.kept += bytes.len();
        self.records.reserve(5 + bytes.len() + bytes.len() / 4);
        self.records.push(if complete { 'c' } else { 'p' });
        latin1(&(bytes.len() as u32).to_le_bytes(), &mut self.records);
        latin1(bytes, &mut self.records);
    }

    /// A message compressed with an encoding capture cannot decode: shown as `null`.
    pub(crate) fn push_undecodable(&mut self) {
        self.records.push('n');
        latin1(&0u32.to_le_bytes(), &mut self.records);
    }

    /// Appends the marked attribute for `key`, unless no message came; `lossy`: something is
    /// missing that the records do not show (messages after the limit, a cut decompression).
    pub(crate) fn finish(mut self, key: &'static str, lossy: bool, out: &mut Vec<KeyValue>) {
        if self.records.is_empty() {
            return;
        }
        let flags = match (self.streaming, lossy) {
            (true, true) => "\0sl\0",
            (true, false) => "\0s-\0",
            (false, true) => "\0ul\0",
            (false, false) => "\0u-\0",
        };
        self.records.push_str(flags);
        self.records.push_str(self.ty.descriptor.full_name());
        self.records.push('\0');
        self.records.push_str(&self.ty.pool.to_string());
        self.records.push('\0');
        self.records.push_str(&self.limit.to_string());
        let marked = match KNOWN.iter().find(|(plain, _)| *plain == key) {
            Some((_, marked)) => Key::from_static_str(marked),
            None => Key::new(format!("{PREFIX}{key}")),
        };
        out.push(KeyValue::new(marked, self.records));
    }
}

/// Appends `bytes` as Latin-1: runs of ASCII as they are, each other byte as its two-byte UTF-8
/// form (U+0080 to U+00FF). A message's bytes are rarely all ASCII (a length prefix of 128 or
/// more is not), so this goes run by run rather than char by char.
fn latin1(bytes: &[u8], out: &mut String) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let (ascii, tail) = rest.split_at(ascii_len(rest));
        if let Ok(ascii) = std::str::from_utf8(ascii) {
            out.push_str(ascii);
        }
        if let Some((&b, tail)) = tail.split_first() {
            out.push(char::from(b));
            rest = tail;
        } else {
            rest = tail;
        }
    }
}

/// How many bytes `bytes` starts with below 0x80: eight at a time, then one by one.
fn ascii_len(bytes: &[u8]) -> usize {
    let mut n = 0;
    for word in bytes.chunks_exact(8) {
        let word = u64::from_ne_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        if word & 0x8080_8080_8080_8080 != 0 {
            break;
        }
        n += 8;
    }
    n + bytes[n..]
        .iter()
        .position(|&b| b >= 0x80)
        .unwrap_or(bytes.len() - n)
}

/// The bytes of Latin-1 `text` (what [`latin1`] wrote) appended to `out`; false, with `out` left
/// partly written, for a character above U+00FF, which [`latin1`] never writes.
fn from_latin1(text: &str, out: &mut Vec<u8>) -> bool {
    let mut rest = text.as_bytes();
    out.reserve(rest.len());
    while !rest.is_empty() {
        let run = ascii_len(rest);
        out.extend_from_slice(&rest[..run]);
        rest = &rest[run..];
        match rest {
            // U+0080 to U+00FF: 110000xx 10xxxxxx.
            [lead @ (0xC2 | 0xC3), next, tail @ ..] => {
                out.push(((lead & 0x03) << 6) | (next & 0x3F));
                rest = tail;
            }
            [] => {}
            _ => return false,
        }
    }
    true
}

/// Writes the JSON of every marked value of `attrs`, in place: the text under the key body-field
/// redaction looks for next (`capture::deferred`), and `<key>.truncated` when anything is
/// missing; with the body limit the messages were kept with.
pub(crate) fn render_all(attrs: &mut Vec<KeyValue>) {
    let mut i = 0;
    while i < attrs.len() {
        // One byte compared for every other attribute.
        let k = attrs[i].key.as_str();
        let Some(real) = k
            .starts_with('\0')
            .then(|| k.strip_prefix(PREFIX))
            .flatten()
        else {
            i += 1;
            continue;
        };
        let key = match KNOWN.iter().find(|(plain, _)| *plain == real) {
            Some((plain, _)) => Key::from_static_str(plain),
            None => Key::new(real.to_owned()),
        };
        let produced = match &attrs[i].value {
            Value::String(text) => render(text.as_str(), key),
            // Only the agent writes marked keys, always with text.
            _ => Vec::new(),
        };
        let n = produced.len();
        attrs.splice(i..=i, produced);
        i += n;
    }
}

/// The attributes one marked value becomes. A value that does not parse, or names a type that
/// is not registered, cannot come from [`Messages::finish`]; it is dropped rather than exported
/// marked.
fn render(value: &str, key: Key) -> Vec<KeyValue> {
    let mut tail = value.rsplitn(5, '\0');
    let (Some(limit), Some(pool_index), Some(type_name), Some(flags), Some(records)) = (
        tail.next(),
        tail.next(),
        tail.next(),
        tail.next(),
        tail.next(),
    ) else {
        return Vec::new();
    };
    let Ok(limit) = limit.parse::<usize>() else {
        return Vec::new();
    };
    let Some(descriptor) = pool_index
        .parse()
        .ok()
        .and_then(pool)
        .and_then(|p| p.get_message_by_name(type_name))
    else {
        return Vec::new();
    };
    let streaming = flags.starts_with('s');
    let mut lossy = flags.ends_with('l');
    let mut raw = Vec::new();
    if !from_latin1(records, &mut raw) {
        return Vec::new();
    }
    // The JSON is written here first, then handed to the capture in one piece: serde writes it
    // in many small pieces. One byte over the limit is kept, so the capture sees the cut.
    let bound = limit.saturating_add(1);
    let mut json = Vec::with_capacity((raw.len() + raw.len() / 2 + 16).min(bound));
    let mut count = 0;
    let mut rest = &raw[..];
    let mut reached_limit = false;
    while let [tag, l0, l1, l2, l3, tail @ ..] = rest {
        let len = u32::from_le_bytes([*l0, *l1, *l2, *l3]) as usize;
        let Some((bytes, tail)) = tail.split_at_checked(len) else {
            return Vec::new();
        };
        rest = tail;
        if json.len() >= limit {
            lossy = true;
            reached_limit = true;
            break;
        }
        count += 1;
        if streaming {
            push_bounded(&mut json, bound, if count == 1 { b"[" } else { b"," });
        }
        match tag {
            b'n' => {
                lossy = true;
                push_bounded(&mut json, bound, b"null");
            }
            tag => {
                if *tag != b'c' {
                    lossy = true;
                }
                let sink = Bounded {
                    buf: &mut json,
                    bound,
                };
                if !write_json(&descriptor, bytes, sink) {
                    lossy = true;
                }
            }
        }
    }
    if !rest.is_empty() && !reached_limit {
        // Records after the limit was reached are not read; anything else left is not a record.
        return Vec::new();
    }
    if streaming && count > 0 {
        push_bounded(&mut json, bound, b"]");
    }
    let mut out = BodyCapture::new(limit, CaptureKind::Json, ContentEncoding::Identity);
    out.push(&json);
    let mut attrs = Vec::with_capacity(2);
    out.finish(key.clone(), &mut attrs);
    let Some(text) = attrs.first_mut() else {
        return attrs;
    };
    // The redaction pass gives it back its real key.
    text.key = marked_key(&key, Syntax::Json);
    let marked = attrs.len() > 1;
    if lossy && !marked {
        attrs.push(KeyValue::new(format!("{key}.truncated"), true));
    }
    attrs
}

/// Writes `bytes`, a message of type `descriptor`, as proto3 JSON into `out`; false when they do
/// not decode as that type (the fields before the first that does not are written: prost merges
/// field by field). The body filters' view of a message is written here too.
pub(crate) fn write_json(descriptor: &MessageDescriptor, bytes: &[u8], out: impl Write) -> bool {
    use prost_reflect::prost::Message as _;
    let mut msg = DynamicMessage::new(descriptor.clone());
    let decoded = msg.merge(bytes).is_ok();
    let mut ser = serde_json::Serializer::new(out);
    // The default options are proto3's canonical JSON mapping: lowerCamel names, default
    // values left out, 64-bit integers as strings, enums by name.
    let _ = msg.serialize_with_options(&mut ser, &SerializeOptions::new());
    decoded
}

/// Appends as much of `data` as keeps `buf` within `bound` bytes; false if some did not fit.
fn push_bounded(buf: &mut Vec<u8>, bound: usize, data: &[u8]) -> bool {
    let take = data.len().min(bound.saturating_sub(buf.len()));
    buf.extend_from_slice(&data[..take]);
    take == data.len()
}

/// Serializer output, at most `bound` bytes; a write that does not fit stops serializing.
struct Bounded<'a> {
    buf: &'a mut Vec<u8>,
    bound: usize,
}

impl Write for Bounded<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if push_bounded(self.buf, self.bound, data) {
            Ok(data.len())
        } else {
            Err(io::ErrorKind::WriteZero.into())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let mut s = String::new();
        latin1(&all, &mut s);
        let back: Vec<u8> = s.chars().map(|c| c as u32 as u8).collect();
        assert_eq!(back, all);
        let mut decoded = Vec::new();
        assert!(from_latin1(&s, &mut decoded));
        assert_eq!(decoded, all);
        // Runs of ASCII between other bytes, and a text that is not Latin-1.
        let mixed = [b"ab".as_slice(), &[0x80, 0xff, b'c', 0x00, 0xc3], b"xyz"].concat();
        let mut s = String::new();
        latin1(&mixed, &mut s);
        assert_eq!(s.chars().map(|c| c as u32 as u8).collect::<Vec<_>>(), mixed);
        let mut decoded = Vec::new();
        assert!(from_latin1(&s, &mut decoded));
        assert_eq!(decoded, mixed);
        assert!(!from_latin1("a\u{100}b", &mut Vec::new()));
        // Runs of every length around the eight-byte steps, the other byte at every place.
        for len in 0..40 {
            for at in 0..=len {
                let mut bytes = vec![b'a'; len];
                if at < len {
                    bytes[at] = 0xe9;
                }
                let mut s = String::new();
                latin1(&bytes, &mut s);
                let mut back = Vec::new();
                assert!(from_latin1(&s, &mut back));
                assert_eq!(back, bytes, "{len} {at}");
                assert_eq!(ascii_len(&bytes), at.min(len), "{len} {at}");
            }
        }
        assert!(!from_latin1("\u{20ac}", &mut Vec::new()));
    }

    #[test]
    fn a_value_that_is_not_ours_is_dropped_not_exported_marked() {
        // No trailer; a pool that is not a number; one not registered; a limit that is not a
        // number.
        for value in [
            "",
            "x",
            "c\x00\x00u-\x00T\x00x\x0010",
            "c\x00\x00u-\x00T\x0099999\x0010",
            "\x00u-\x00T\x000\x00x",
        ] {
            let mut attrs = vec![
                KeyValue::new("\0hypertrace.grpc\0rpc.request.body", value),
                KeyValue::new("other", 1),
            ];
            render_all(&mut attrs);
            assert_eq!(attrs, vec![KeyValue::new("other", 1)], "{value:?}");
        }
    }
}
