//! Streaming, bounded body capture.
//!
//! A [`BodyCapture`] sees the body's chunks as they stream past and keeps at most `limit` bytes of
//! what it will record. Compressed bodies are decoded on the fly into a sink that refuses bytes past
//! the limit, which stops the decoder: a decompression bomb costs about `limit` bytes of output and
//! of decoding work, plus the decoder's own window.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use brotli_decompressor::DecompressorWriter;
use flate2::write::{DeflateDecoder, GzDecoder, ZlibDecoder};
use opentelemetry::{Key, KeyValue};

use super::base64::encode_no_pad;
use super::content_type::{CaptureKind, ContentEncoding};
use super::redact::FieldNames;
use super::zstd::ZstdDecoder;
use super::AttributeSink;

/// Brotli's output buffer: decoded bytes reach the sink in pieces of at most this size.
const BROTLI_BUFFER: usize = 4096;

/// Captures one body, chunk by chunk, then records it with [`finish`](Self::finish).
pub struct BodyCapture {
    limit: usize,
    kind: CaptureKind,
    state: State,
    /// The body's bytes as received, at most `limit`. Identity/unknown encoding: the capture itself.
    /// Compressed: the fallback for when nothing decodes, dropped as soon as something does.
    raw: Vec<u8>,
    /// More body bytes arrived than `raw` holds.
    raw_truncated: bool,
    /// Whether `raw` is still being filled.
    keep_raw: bool,
    /// The body stopped before its end ([`end_early`](Self::end_early)).
    cut: bool,
    /// Keys whose values are redacted when the capture is recorded (`rustagent.redact_body_fields`).
    redact_fields: Option<Arc<FieldNames>>,
    /// The redaction is left to the export thread (`capture::deferred`): the capture was made as
    /// the agent's configuration says, so the worker knows the names and the limit.
    defer_redaction: bool,
}

enum State {
    /// Identity or unknown encoding (`base64`): `raw` is the capture.
    Plain {
        base64: bool,
    },
    /// Compressed, no decoder yet: an empty body costs none, and deflate needs its first two bytes
    /// to tell a zlib wrapper from raw deflate.
    Pending {
        codec: Codec,
        first: Option<u8>,
    },
    // Boxed: decoders are large, and most bodies are not compressed.
    Decoding(Box<Decoder>),
    /// The decoder stopped (limit reached, stream ended, or error) and was dropped.
    Done {
        sink: Sink,
        failed: bool,
    },
}

#[derive(Clone, Copy)]
enum Codec {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

// Size differences do not matter: `State` boxes the whole decoder.
#[allow(clippy::large_enum_variant)]
enum Decoder {
    Gzip(GzDecoder<Sink>),
    Zlib(ZlibDecoder<Sink>),
    Deflate(DeflateDecoder<Sink>),
    Brotli(DecompressorWriter<Sink>),
    Zstd(ZstdDecoder<Sink>),
}

impl BodyCapture {
    /// `limit`: `data_capture.body_max_size_bytes`; `kind` from [`capture_kind`](super::capture_kind);
    /// `encoding` from [`content_encoding`](super::content_encoding). Allocates nothing until data
    /// arrives.
    pub fn new(limit: usize, kind: CaptureKind, encoding: ContentEncoding) -> Self {
        let state = match encoding {
            // Nothing can be captured: no point decoding.
            _ if limit == 0 => State::Plain { base64: false },
            ContentEncoding::Identity => State::Plain { base64: false },
            ContentEncoding::Unknown => State::Plain { base64: true },
            ContentEncoding::Gzip => State::Pending {
                codec: Codec::Gzip,
                first: None,
            },
            ContentEncoding::Deflate => State::Pending {
                codec: Codec::Deflate,
                first: None,
            },
            ContentEncoding::Brotli => State::Pending {
                codec: Codec::Brotli,
                first: None,
            },
            ContentEncoding::Zstd => State::Pending {
                codec: Codec::Zstd,
                first: None,
            },
        };
        BodyCapture {
            limit,
            kind,
            state,
            raw: Vec::new(),
            raw_truncated: false,
            keep_raw: true,
            cut: false,
            redact_fields: None,
            defer_redaction: false,
        }
    }

    /// Redacts the values of these keys (`rustagent.redact_body_fields`) in a JSON or form body
    /// when it is recorded; see [`redact`](super::redact). The list is normalised once per thread
    /// for as long as it is the same `Arc` (the configuration's), not once per body.
    pub fn redact_fields(mut self, fields: &Arc<[String]>) -> Self {
        if self.kind.redact_syntax().is_some() && !fields.is_empty() {
            self.redact_fields = FieldNames::shared(fields);
        }
        // A list of the caller's own is redacted here, when the capture is recorded.
        self.defer_redaction = false;
        self
    }

    /// The capture of a request body with these headers, as the configuration says, when its content
    /// type is one that is captured.
    pub fn for_request(cfg: &crate::config::Config, headers: &http::HeaderMap) -> Option<Self> {
        let kind = super::capture_kind(
            headers.get(http::header::CONTENT_TYPE),
            &cfg.data_capture.allowed_content_types,
        )?;
        Some(BodyCapture::configured(
            cfg,
            kind,
            super::content_encoding(headers),
        ))
    }

    /// The capture of a response body with these headers and status, as the configuration says,
    /// when its content type is one that is captured (`text/plain` too for an error response, under
    /// `rustagent.capture_error_text_bodies`).
    pub fn for_response(
        cfg: &crate::config::Config,
        headers: &http::HeaderMap,
        status: http::StatusCode,
    ) -> Option<Self> {
        let kind = super::response_capture_kind(
            headers.get(http::header::CONTENT_TYPE),
            status,
            &cfg.data_capture.allowed_content_types,
            cfg.rustagent.capture_error_text_bodies,
        )?;
        Some(BodyCapture::configured(
            cfg,
            kind,
            super::content_encoding(headers),
        ))
    }

    /// A capture as the configuration says: `data_capture.body_max_size_bytes`, and the values of
    /// `rustagent.redact_body_fields` redacted. Every entry point builds its captures here.
    ///
    /// A text body is recorded unredacted under a marked key, and the agent's export thread
    /// redacts it before any exporter sees it (see `capture::deferred`): the request does not wait
    /// for the scan.
    pub fn configured(
        cfg: &crate::config::Config,
        kind: CaptureKind,
        encoding: ContentEncoding,
    ) -> Self {
        let mut capture = BodyCapture::new(cfg.data_capture.body_max_size_bytes, kind, encoding)
            .redact_fields(&cfg.rustagent.redact_body_fields);
        capture.defer_redaction = true;
        capture
    }

    /// Feeds the next chunk of the body as it streams. Cheap once [`is_full`](Self::is_full).
    pub fn push(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        if self.keep_raw && !append_bounded(&mut self.raw, self.limit, chunk) {
            self.raw_truncated = true;
        }
        match self.state {
            State::Pending { .. } => self.start(chunk),
            State::Decoding(_) => self.decode(chunk),
            State::Plain { .. } | State::Done { .. } => {}
        }
    }

    /// The configured limit (`data_capture.body_max_size_bytes`).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The body will not be read to its end (dropped unread): whatever was captured is recorded
    /// as truncated.
    pub fn end_early(&mut self) {
        self.cut = true;
    }

    /// True once further chunks cannot change what is captured (the limit is reached, or decoding
    /// has stopped); pushing them then only notes the truncation.
    pub fn is_full(&self) -> bool {
        match self.state {
            State::Plain { .. } => self.raw.len() >= self.limit,
            State::Done { .. } => !self.keep_raw || self.raw.len() >= self.limit,
            State::Pending { .. } | State::Decoding(_) => false,
        }
    }

    /// Appends the capture to `out`: `key` (text) or `<key>.base64`, plus `<key>.truncated = true`
    /// when something was cut. An empty capture records nothing. Sensitive values are redacted
    /// in what is recorded, whichever way it was captured (decoded, cut, raw): here, or, for a
    /// [`configured`](Self::configured) capture of text, by the export thread, which then
    /// records the same attributes (`<key>` waits under a marked key until then).
    ///
    /// `out` is a `Vec`, or anything else that takes attributes (a span, without a `Vec` in
    /// between); a `&'static str` key costs no allocation.
    pub fn finish(mut self, key: impl Into<Key>, out: &mut impl AttributeSink) {
        let fields = self.redact_fields.take();
        self.finish_redacting(key.into(), fields.as_deref(), out);
    }

    fn finish_redacting(
        mut self,
        key: Key,
        fields: Option<&FieldNames>,
        out: &mut impl AttributeSink,
    ) {
        if let State::Decoding(dec) = &mut self.state {
            let result = dec.finish();
            self.stop(result);
        }
        let (bytes, truncated, base64) = match self.state {
            State::Plain { base64 } => (self.raw, self.raw_truncated, base64),
            State::Done { sink, failed } if !sink.buf.is_empty() => {
                (sink.buf, sink.overflow || failed, false)
            }
            // Nothing decoded (not really compressed, or corrupt from the start): the raw bytes
            // say more than nothing.
            State::Pending { .. } | State::Done { failed: true, .. } => {
                (self.raw, self.raw_truncated, true)
            }
            // A valid empty stream, or the limit is 0. (`Decoding` was stopped above.)
            State::Done { .. } | State::Decoding(_) => return,
        };
        let truncated = truncated || self.cut;
        let base64 = base64 || self.kind == CaptureKind::Base64;
        let syntax = self.kind.redact_syntax().filter(|_| fields.is_some());
        let bytes = match syntax {
            Some(syntax) if self.defer_redaction && !base64 => {
                // Text the export thread redacts; a body that is not UTF-8 (recorded in base64,
                // which the redaction must see before) is redacted here, as without deferral.
                match into_text(bytes, truncated) {
                    Ok(text) => return record_deferred(key, syntax, text, truncated, out),
                    Err(bytes) => bytes,
                }
            }
            _ => bytes,
        };
        let (bytes, truncated) = match syntax.zip(fields) {
            Some((syntax, fields)) => match fields.redact(&bytes, syntax) {
                Some(redacted) => within_limit(redacted, self.limit, truncated),
                None => (bytes, truncated),
            },
            None => (bytes, truncated),
        };
        record(key, bytes, truncated, base64, out);
    }

    fn start(&mut self, chunk: &[u8]) {
        let State::Pending { codec, first } = &mut self.state else {
            return;
        };
        let sink = Sink {
            buf: Vec::new(),
            limit: self.limit,
            overflow: false,
        };
        let decoder = match *codec {
            Codec::Gzip => Decoder::Gzip(GzDecoder::new(sink)),
            Codec::Brotli if is_large_window_brotli(chunk[0]) => {
                // Refused like any stream that does not decode (the raw bytes are recorded):
                // see `is_large_window_brotli`.
                self.state = State::Done { sink, failed: true };
                return;
            }
            Codec::Brotli => Decoder::Brotli(DecompressorWriter::new(sink, BROTLI_BUFFER)),
            Codec::Zstd => Decoder::Zstd(ZstdDecoder::new(sink)),
            Codec::Deflate => {
                let (b0, b1) = match (*first, chunk) {
                    (Some(b0), [b1, ..]) => (b0, *b1),
                    (None, [b0, b1, ..]) => (*b0, *b1),
                    (None, [b0]) => {
                        *first = Some(*b0);
                        return;
                    }
                    (_, []) => return,
                };
                if is_zlib_header(b0, b1) {
                    Decoder::Zlib(ZlibDecoder::new(sink))
                } else {
                    Decoder::Deflate(DeflateDecoder::new(sink))
                }
            }
        };
        let held = first.take();
        self.state = State::Decoding(Box::new(decoder));
        if let Some(b0) = held {
            self.decode(&[b0]);
        }
        self.decode(chunk);
    }

    fn decode(&mut self, data: &[u8]) {
        let State::Decoding(dec) = &mut self.state else {
            return;
        };
        match feed(dec.writer(), data) {
            Ok(false) if self.keep_raw => {
                // Decoders hold output back; flush so that the raw copy goes as soon as
                // anything decodes.
                match dec.writer().flush() {
                    Ok(()) if dec.sink().buf.is_empty() => {}
                    Ok(()) => self.release_raw(),
                    Err(e) => self.stop(Err(e)),
                }
            }
            Ok(false) => {}
            Ok(true) => {
                // The stream ended before the body did: finish now (gzip checks its trailer here),
                // the rest is ignored.
                let result = dec.finish();
                self.stop(result);
            }
            Err(e) => self.stop(Err(e)),
        }
    }

    /// Moves from `Decoding` to `Done`, dropping the decoder (and its window) right away.
    fn stop(&mut self, result: io::Result<()>) {
        let State::Decoding(dec) = &mut self.state else {
            return;
        };
        // The decoder flushes into its sink when dropped; the empty zero-limit sink left behind
        // refuses at once, so that costs no decoding work.
        let sink = std::mem::take(dec.sink());
        let failed = result.is_err() && !sink.overflow;
        if !sink.buf.is_empty() {
            self.release_raw();
        }
        self.state = State::Done { sink, failed };
    }

    fn release_raw(&mut self) {
        self.keep_raw = false;
        self.raw = Vec::new();
        self.raw_truncated = false;
    }
}

impl fmt::Debug for BodyCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Plain { .. } => "plain",
            State::Pending { .. } => "pending",
            State::Decoding(_) => "decoding",
            State::Done { .. } => "done",
        };
        f.debug_struct("BodyCapture")
            .field("limit", &self.limit)
            .field("kind", &self.kind)
            .field("state", &state)
            .field("raw_len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

/// Captures a fully buffered body in one go: `BodyCapture::new` + `push` + `finish`, with the
/// values of `redact_fields` redacted as by [`BodyCapture::redact_fields`].
pub fn capture_bytes(
    limit: usize,
    kind: CaptureKind,
    encoding: ContentEncoding,
    redact_fields: &[String],
    bytes: &[u8],
    key: impl Into<Key>,
    out: &mut impl AttributeSink,
) {
    let mut capture = BodyCapture::new(limit, kind, encoding);
    capture.push(bytes);
    let fields = FieldNames::new(redact_fields);
    capture.finish_redacting(key.into(), fields.as_ref(), out);
}

impl Decoder {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Decoder::Gzip(d) => d,
            Decoder::Zlib(d) => d,
            Decoder::Deflate(d) => d,
            Decoder::Brotli(d) => d,
            Decoder::Zstd(d) => d,
        }
    }

    fn sink(&mut self) -> &mut Sink {
        match self {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Zlib(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
            Decoder::Brotli(d) => d.get_mut(),
            Decoder::Zstd(d) => d.get_mut(),
        }
    }

    /// Flushes what is left and checks that the stream is complete.
    fn finish(&mut self) -> io::Result<()> {
        match self {
            Decoder::Gzip(d) => d.try_finish(),
            Decoder::Zlib(d) => d.try_finish(),
            Decoder::Deflate(d) => d.try_finish(),
            Decoder::Brotli(d) => d.close(),
            Decoder::Zstd(d) => d.try_finish(),
        }
    }
}

/// Writes all of `data`; `Ok(true)` if the decoder stopped taking input because its stream ended.
fn feed(w: &mut dyn Write, mut data: &[u8]) -> io::Result<bool> {
    while !data.is_empty() {
        match w.write(data)? {
            0 => return Ok(true),
            n => data = &data[n..],
        }
    }
    Ok(false)
}

/// The first byte of a "large window" brotli stream (WBITS bits `1,000,100` then `0`): a
/// non-standard extension that brotli-decompressor accepts, with windows of up to 1 GiB that the
/// decoder allocates (and touches) from a few bytes of input. HTTP's `br` is RFC 7932, whose
/// window is at most 16 MiB; such a body is not decoded.
fn is_large_window_brotli(first: u8) -> bool {
    first == 0x11
}

/// RFC 1950: CM = 8 (deflate), window CINFO <= 7, and CMF·256 + FLG a multiple of 31.
fn is_zlib_header(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

/// Decoded output, at most `limit` bytes. A write past the limit keeps what fits and fails, which
/// makes the decoder stop.
#[derive(Default)]
struct Sink {
    buf: Vec<u8>,
    limit: usize,
    overflow: bool,
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if append_bounded(&mut self.buf, self.limit, data) {
            Ok(data.len())
        } else {
            self.overflow = true;
            Err(io::ErrorKind::WriteZero.into())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends as much of `data` as fits under `limit`; false if some did not fit.
fn append_bounded(buf: &mut Vec<u8>, limit: usize, data: &[u8]) -> bool {
    let take = data.len().min(limit.saturating_sub(buf.len()));
    if buf.capacity() - buf.len() < take {
        // Grow geometrically, but never past the limit: the capacity is the memory we hold.
        let want = (buf.len() + take).max(buf.capacity() * 2).min(limit);
        buf.reserve_exact(want - buf.len());
    }
    buf.extend_from_slice(&data[..take]);
    take == data.len()
}

fn record(key: Key, bytes: Vec<u8>, truncated: bool, base64: bool, out: &mut impl AttributeSink) {
    if bytes.is_empty() {
        return;
    }
    let text = text_or_bytes(bytes, truncated, base64);
    let truncated = truncated.then(|| truncated_mark(&key));
    match text {
        Ok(text) => out.text(key, Cow::Owned(text)),
        Err(bytes) => out.extend(std::iter::once(base64_attribute(&key, &bytes))),
    }
    out.extend(truncated);
}

/// `<key>.truncated = true`.
fn truncated_mark(key: &Key) -> KeyValue {
    KeyValue::new(format!("{key}.truncated"), true)
}

/// `<key>.base64` = the bytes in base64 (no padding).
fn base64_attribute(key: &Key, bytes: &[u8]) -> KeyValue {
    KeyValue::new(format!("{key}.base64"), encode_no_pad(bytes))
}

/// A redacted body cut back to `limit` (`[REDACTED]` can be longer than what it replaces), and
/// whether it is now truncated.
pub(super) fn within_limit(
    mut redacted: Vec<u8>,
    limit: usize,
    truncated: bool,
) -> (Vec<u8>, bool) {
    if redacted.len() > limit {
        redacted.truncate(limit);
        return (redacted, true);
    }
    (redacted, truncated)
}

/// A text body whose redaction the export thread does, under its marked key, and its
/// `.truncated` mark (under the real key).
fn record_deferred(
    key: Key,
    syntax: super::redact::Syntax,
    text: String,
    truncated: bool,
    out: &mut impl AttributeSink,
) {
    if text.is_empty() {
        return;
    }
    let truncated = truncated.then(|| truncated_mark(&key));
    out.text(super::deferred::marked_key(&key, syntax), Cow::Owned(text));
    out.extend(truncated);
}

/// The attribute of a non-empty capture (`key`, or `<key>.base64` for bytes that are not text
/// or when `base64`), and `<key>.truncated` when `truncated`.
pub(super) fn text_attributes(
    key: Key,
    bytes: Vec<u8>,
    truncated: bool,
    base64: bool,
) -> (KeyValue, Option<KeyValue>) {
    let text = text_or_bytes(bytes, truncated, base64);
    // The suffixed keys are formatted before `key` moves into the text's attribute.
    let truncated = truncated.then(|| truncated_mark(&key));
    let value = match text {
        Ok(text) => KeyValue::new(key, text),
        Err(bytes) => base64_attribute(&key, &bytes),
    };
    (value, truncated)
}

/// The bytes as text (see [`into_text`]), or given back when they are not, or are to be recorded
/// in base64 anyway (`base64`).
fn text_or_bytes(bytes: Vec<u8>, truncated: bool, base64: bool) -> Result<String, Vec<u8>> {
    if base64 {
        Err(bytes)
    } else {
        into_text(bytes, truncated)
    }
}

/// The bytes as text, or given back when they are not UTF-8. In a cut body, an incomplete
/// character at the end is the cut's doing, not the body's: it is dropped rather than making the
/// whole capture binary.
fn into_text(bytes: Vec<u8>, truncated: bool) -> Result<String, Vec<u8>> {
    let err = match String::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(err) => err,
    };
    let utf8 = err.utf8_error();
    let mut bytes = err.into_bytes();
    if truncated && utf8.error_len().is_none() && utf8.valid_up_to() > 0 {
        bytes.truncate(utf8.valid_up_to());
        return String::from_utf8(bytes).map_err(|e| e.into_bytes());
    }
    Err(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_BODY_MAX_SIZE_BYTES;
    use ::base64::engine::general_purpose::STANDARD_NO_PAD;
    use ::base64::Engine as _;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use opentelemetry::Value;
    use proptest::prelude::*;

    const KEY: &str = "http.request.body";
    const TEXT: CaptureKind = CaptureKind::Text;
    const ID: ContentEncoding = ContentEncoding::Identity;

    /// What one capture recorded.
    #[derive(Debug, Default, PartialEq)]
    struct Got {
        text: Option<String>,
        base64: Option<String>,
        truncated: bool,
    }

    impl Got {
        fn text(s: &str, truncated: bool) -> Self {
            Got {
                text: Some(s.to_string()),
                base64: None,
                truncated,
            }
        }
        fn base64(bytes: &[u8], truncated: bool) -> Self {
            Got {
                text: None,
                base64: Some(STANDARD_NO_PAD.encode(bytes)),
                truncated,
            }
        }
        /// The captured bytes, whichever way they were recorded.
        fn bytes(&self) -> Vec<u8> {
            match (&self.text, &self.base64) {
                (Some(t), None) => t.as_bytes().to_vec(),
                (None, Some(b)) => STANDARD_NO_PAD.decode(b).unwrap(),
                (None, None) => Vec::new(),
                _ => panic!("both text and base64: {self:?}"),
            }
        }
    }

    fn parse(out: Vec<KeyValue>) -> Got {
        let mut got = Got::default();
        for kv in out {
            match (kv.key.as_str(), kv.value) {
                (KEY, Value::String(s)) => assert!(got.text.replace(s.to_string()).is_none()),
                ("http.request.body.base64", Value::String(s)) => {
                    assert!(got.base64.replace(s.to_string()).is_none())
                }
                ("http.request.body.truncated", Value::Bool(true)) => {
                    assert!(!got.truncated);
                    got.truncated = true
                }
                (k, v) => panic!("unexpected attribute {k} = {v:?}"),
            }
        }
        if got.truncated {
            assert!(
                got.text.is_some() || got.base64.is_some(),
                "truncated flag alone"
            );
        }
        got
    }

    fn chunked(limit: usize, kind: CaptureKind, enc: ContentEncoding, chunks: &[&[u8]]) -> Got {
        let mut capture = BodyCapture::new(limit, kind, enc);
        for c in chunks {
            capture.push(c);
        }
        let mut out = Vec::new();
        capture.finish(KEY, &mut out);
        parse(out)
    }

    fn once(limit: usize, kind: CaptureKind, enc: ContentEncoding, body: &[u8]) -> Got {
        let mut out = Vec::new();
        capture_bytes(limit, kind, enc, &[], body, KEY, &mut out);
        parse(out)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A brotli stream of uncompressed meta-blocks (RFC 7932 §9.2): no brotli encoder is a
    /// dependency, and this is enough to exercise chunking and limits through the decoder.
    fn brotli_stored(data: &[u8]) -> Vec<u8> {
        struct Bits {
            out: Vec<u8>,
            acc: u64,
            n: u32,
        }
        impl Bits {
            fn put(&mut self, value: u64, bits: u32) {
                self.acc |= value << self.n;
                self.n += bits;
                while self.n >= 8 {
                    self.out.push(self.acc as u8);
                    self.acc >>= 8;
                    self.n -= 8;
                }
            }
            fn align(&mut self) {
                self.put(0, (8 - self.n) % 8);
            }
        }
        let mut w = Bits {
            out: Vec::new(),
            acc: 0,
            n: 0,
        };
        w.put(0, 1); // WBITS = 16
        for block in data.chunks(1 << 16) {
            w.put(0, 1); // ISLAST = 0
            w.put(0, 2); // MNIBBLES = 4
            w.put(block.len() as u64 - 1, 16); // MLEN - 1
            w.put(1, 1); // ISUNCOMPRESSED
            w.align();
            w.out.extend_from_slice(block);
        }
        w.put(0b11, 2); // ISLAST, ISLASTEMPTY
        w.align();
        w.out
    }

    /// From the brotli test suite: 12 bytes that decode to "XXXXXXXXXXYYYYYYYYYY".
    const BR_10X10Y: &[u8] = &[
        0x1b, 0x13, 0x00, 0x00, 0xa4, 0xb0, 0xb2, 0xea, 0x81, 0x47, 0x02, 0x8a,
    ];
    /// From the brotli test suite: 58 bytes that decode to 176128 bytes of `FOX` repeated.
    const BR_QUICKFOX_REPEATED: &[u8] = &[
        0x5B, 0xFF, 0xAF, 0x02, 0xC0, 0x22, 0x79, 0x5C, 0xFB, 0x5A, 0x8C, 0x42, 0x3B, 0xF4, 0x25,
        0x55, 0x19, 0x5A, 0x92, 0x99, 0xB1, 0x35, 0xC8, 0x19, 0x9E, 0x9E, 0x0A, 0x7B, 0x4B, 0x90,
        0xB9, 0x3C, 0x98, 0xC8, 0x09, 0x40, 0xF3, 0xE6, 0xD9, 0x4D, 0xE4, 0x6D, 0x65, 0x1B, 0x27,
        0x87, 0x13, 0x5F, 0xA6, 0xE9, 0x30, 0x96, 0x7B, 0x3C, 0x15, 0xD8, 0x53, 0x1C,
    ];
    const FOX: &str = "The quick brown fox jumps over the lazy dog";

    #[test]
    fn body_exactly_at_limit_is_not_truncated() {
        assert_eq!(
            once(10, TEXT, ID, b"0123456789"),
            Got::text("0123456789", false)
        );
    }

    #[test]
    fn one_byte_over_is_truncated() {
        assert_eq!(
            once(10, TEXT, ID, b"0123456789a"),
            Got::text("0123456789", true)
        );
    }

    #[test]
    fn multibyte_char_across_limit_is_cut_at_boundary() {
        // 'é' is 2 bytes at 9..11, '€' 3 bytes at 8..11, '😀' 4 bytes at 7..11: each straddles 10.
        assert_eq!(
            once(10, TEXT, ID, "123456789é".as_bytes()),
            Got::text("123456789", true)
        );
        assert_eq!(
            once(10, TEXT, ID, "12345678€".as_bytes()),
            Got::text("12345678", true)
        );
        assert_eq!(
            once(10, TEXT, ID, "1234567😀".as_bytes()),
            Got::text("1234567", true)
        );
        // Fits exactly: kept whole.
        assert_eq!(
            once(10, TEXT, ID, "12345678é".as_bytes()),
            Got::text("12345678é", false)
        );
    }

    #[test]
    fn incomplete_char_not_caused_by_the_limit_is_binary() {
        assert_eq!(once(10, TEXT, ID, b"ab\xc3"), Got::base64(b"ab\xc3", false));
    }

    #[test]
    fn binary_is_base64_without_padding() {
        let got = once(100, TEXT, ID, &[0xff, 0x00, 0xfe, 0x01]);
        assert_eq!(got.base64.as_deref(), Some("/wD+AQ"));
        assert_eq!(got, Got::base64(&[0xff, 0x00, 0xfe, 0x01], false));
        assert_eq!(
            once(3, TEXT, ID, &[0xff, 0x00, 0xfe, 0x01]),
            Got::base64(&[0xff, 0x00, 0xfe], true)
        );
    }

    #[test]
    fn base64_kind_is_always_base64() {
        let body = b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--";
        assert_eq!(
            once(1000, CaptureKind::Base64, ID, body),
            Got::base64(body, false)
        );
        assert_eq!(
            once(4, CaptureKind::Base64, ID, body),
            Got::base64(&body[..4], true)
        );
    }

    #[test]
    fn empty_body_records_nothing() {
        assert_eq!(once(100, TEXT, ID, b""), Got::default());
        assert_eq!(chunked(100, TEXT, ID, &[b"", b""]), Got::default());
        assert_eq!(
            once(100, TEXT, ContentEncoding::Gzip, &gzip(b"")),
            Got::default()
        );
        assert_eq!(
            once(100, TEXT, ContentEncoding::Brotli, &[0x06]),
            Got::default()
        );
        assert_eq!(
            chunked(100, TEXT, ContentEncoding::Gzip, &[]),
            Got::default()
        );
    }

    #[test]
    fn zero_limit_records_nothing() {
        assert_eq!(once(0, TEXT, ID, b"abc"), Got::default());
        assert_eq!(
            once(0, TEXT, ContentEncoding::Gzip, &gzip(b"abc")),
            Got::default()
        );
    }

    #[test]
    fn default_limit_matches_contract() {
        assert_eq!(DEFAULT_BODY_MAX_SIZE_BYTES, 131_072);
        let body = vec![b'a'; DEFAULT_BODY_MAX_SIZE_BYTES + 1];
        let got = once(DEFAULT_BODY_MAX_SIZE_BYTES, TEXT, ID, &body);
        assert_eq!(
            got.text.as_ref().map(String::len),
            Some(DEFAULT_BODY_MAX_SIZE_BYTES)
        );
        assert!(got.truncated);
    }

    #[test]
    fn chunked_pushes_equal_single_push() {
        let body = "{\"name\":\"héllo wörld\",\"n\":[1,2,3]}".as_bytes();
        let bytewise: Vec<&[u8]> = body.chunks(1).collect();
        for limit in [5, 12, 13, body.len(), 1000] {
            assert_eq!(
                chunked(limit, TEXT, ID, &bytewise),
                once(limit, TEXT, ID, body),
                "limit {limit}"
            );
        }
        for (enc, compressed) in [
            (ContentEncoding::Gzip, gzip(body)),
            (ContentEncoding::Deflate, zlib(body)),
            (ContentEncoding::Deflate, raw_deflate(body)),
            (ContentEncoding::Brotli, brotli_stored(body)),
        ] {
            let bytewise: Vec<&[u8]> = compressed.chunks(1).collect();
            for limit in [5, 13, 1000] {
                assert_eq!(
                    chunked(limit, TEXT, enc, &bytewise),
                    once(limit, TEXT, ID, body),
                    "{enc:?} limit {limit}"
                );
            }
        }
    }

    #[test]
    fn identity_is_full_at_limit_and_notes_more() {
        let mut c = BodyCapture::new(4, TEXT, ID);
        c.push(b"ab");
        assert!(!c.is_full());
        c.push(b"cd");
        assert!(c.is_full());
        let mut out = Vec::new();
        BodyCapture::finish(c, KEY, &mut out);
        assert_eq!(parse(out), Got::text("abcd", false));

        let mut c = BodyCapture::new(4, TEXT, ID);
        c.push(b"abcd");
        c.push(b"e");
        let mut out = Vec::new();
        c.finish(KEY, &mut out);
        assert_eq!(parse(out), Got::text("abcd", true));
    }

    #[test]
    fn gzip_is_decoded() {
        let body = br#"{"joke":"why"}"#;
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Gzip, &gzip(body)),
            Got::text(r#"{"joke":"why"}"#, false)
        );
        assert_eq!(
            once(5, TEXT, ContentEncoding::Gzip, &gzip(body)),
            Got::text(r#"{"jok"#, true)
        );
    }

    #[test]
    fn deflate_zlib_wrapped_is_decoded() {
        let body = br#"{"a":[1,2,3]}"#;
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Deflate, &zlib(body)),
            Got::text(r#"{"a":[1,2,3]}"#, false)
        );
    }

    #[test]
    fn deflate_raw_is_decoded() {
        let body = br#"{"a":[1,2,3]}"#;
        assert!(!is_zlib_header(raw_deflate(body)[0], raw_deflate(body)[1]));
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Deflate, &raw_deflate(body)),
            Got::text(r#"{"a":[1,2,3]}"#, false)
        );
    }

    #[test]
    fn brotli_is_decoded() {
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Brotli, BR_10X10Y),
            Got::text("XXXXXXXXXXYYYYYYYYYY", false)
        );
        assert_eq!(
            once(
                1000,
                TEXT,
                ContentEncoding::Brotli,
                &brotli_stored(b"{\"b\":1}")
            ),
            Got::text("{\"b\":1}", false)
        );
        // Exactly at the limit after decoding: not truncated.
        assert_eq!(
            once(20, TEXT, ContentEncoding::Brotli, BR_10X10Y),
            Got::text("XXXXXXXXXXYYYYYYYYYY", false)
        );
        assert_eq!(
            once(19, TEXT, ContentEncoding::Brotli, BR_10X10Y),
            Got::text("XXXXXXXXXXYYYYYYYYY", true)
        );
    }

    #[test]
    fn decoded_binary_is_base64() {
        let body = [0u8, 159, 146, 150, 255];
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Gzip, &gzip(&body)),
            Got::base64(&body, false)
        );
    }

    #[test]
    fn gzip_bomb_stops_at_limit() {
        // 100 MiB of zeros, compressed to ~100 KiB.
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..100 {
            e.write_all(&zeros).unwrap();
        }
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 200 * 1024, "{}", bomb.len());

        let limit = DEFAULT_BODY_MAX_SIZE_BYTES;
        let mut c = BodyCapture::new(limit, TEXT, ContentEncoding::Gzip);
        let mut pushed = 0;
        for chunk in bomb.chunks(256) {
            c.push(chunk);
            pushed += chunk.len();
            if c.is_full() {
                break;
            }
        }
        // Decoding stopped after ~limit/1000 compressed bytes (plus the decoder's 32 KiB buffer),
        // not after the whole bomb.
        assert!(c.is_full());
        assert!(pushed < 4096, "pushed {pushed} of {}", bomb.len());
        // The rest streams past without decoding.
        for chunk in bomb[pushed..].chunks(8192) {
            c.push(chunk);
        }
        let mut out = Vec::new();
        c.finish(KEY, &mut out);
        let got = parse(out);
        assert!(got.truncated);
        assert_eq!(got.text.as_deref(), Some("\0".repeat(limit).as_str()));
    }

    #[test]
    fn brotli_bomb_stops_at_limit() {
        let got = once(1000, TEXT, ContentEncoding::Brotli, BR_QUICKFOX_REPEATED);
        let expected: String = FOX.repeat(1000 / FOX.len() + 1)[..1000].to_string();
        assert_eq!(got, Got::text(&expected, true));
        let got = once(176_128, TEXT, ContentEncoding::Brotli, BR_QUICKFOX_REPEATED);
        assert_eq!(got.text.as_ref().map(String::len), Some(176_128));
        assert!(!got.truncated);
    }

    #[test]
    fn corrupted_gzip_header_falls_back_to_raw_base64() {
        let mut body = gzip(b"{\"a\":1}");
        body[0] = b'x';
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Gzip, &body),
            Got::base64(&body, false)
        );
        // Bounded like any raw capture.
        assert_eq!(
            once(4, TEXT, ContentEncoding::Gzip, &body),
            Got::base64(&body[..4], true)
        );
    }

    #[test]
    fn not_compressed_at_all_falls_back_to_raw_base64() {
        // A server that says gzip but sends plain JSON.
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Gzip, b"{\"a\":1}"),
            Got::base64(b"{\"a\":1}", false)
        );
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Brotli, b"{\"a\":1}").bytes(),
            b"{\"a\":1}"
        );
    }

    #[test]
    fn gzip_cut_midway_keeps_decoded_prefix() {
        let body: String = (0..2000).map(|i| format!("{i},")).collect();
        let compressed = gzip(body.as_bytes());
        let cut = &compressed[..compressed.len() / 2];
        let got = once(100_000, TEXT, ContentEncoding::Gzip, cut);
        let text = got.text.clone().expect("decoded prefix as text");
        assert!(!text.is_empty() && body.starts_with(&text) && text.len() < body.len());
        assert!(got.truncated);
    }

    #[test]
    fn gzip_corrupted_midway_never_panics_and_stays_bounded() {
        let body: String = (0..2000).map(|i| format!("{i},")).collect();
        let mut compressed = gzip(body.as_bytes());
        let mid = compressed.len() / 2;
        for b in &mut compressed[mid..mid + 16] {
            *b ^= 0x5a;
        }
        for limit in [10, 1000, 100_000] {
            let got = once(limit, TEXT, ContentEncoding::Gzip, &compressed);
            assert!(got.bytes().len() <= limit);
        }
    }

    #[test]
    fn trailing_bytes_after_stream_are_ignored() {
        let mut body = gzip(b"{\"a\":1}");
        body.extend_from_slice(b"garbage");
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Gzip, &body),
            Got::text("{\"a\":1}", false)
        );
    }

    /// `zstd -19 --check` (libzstd 1.5.4) of a 512670-byte JSON array: several blocks, a checksum.
    const ZSTD_USERS: &[u8] = include_bytes!("testdata/users.json.zst");
    /// `zstd --check` of `{"access_token":"abc","n":1}`.
    const ZSTD_SMALL: &[u8] = include_bytes!("testdata/small.json.zst");
    /// `head -c 100M /dev/zero | zstd`: 3303 bytes, 2 MiB window.
    const ZSTD_ZEROS_100MIB: &[u8] = include_bytes!("testdata/zeros-100MiB.zst");
    /// `zstd --long=27` of `{"big":"window"}`: a 128 MiB window.
    const ZSTD_LONG_WINDOW: &[u8] = include_bytes!("testdata/long-window.zst");

    fn zstd(data: &[u8], level: ruzstd::encoding::CompressionLevel) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, level)
    }

    #[test]
    fn zstd_from_libzstd_is_decoded() {
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Zstd, ZSTD_SMALL),
            Got::text(r#"{"access_token":"abc","n":1}"#, false)
        );
        let got = chunked(
            1 << 20,
            TEXT,
            ContentEncoding::Zstd,
            &split(ZSTD_USERS, &[1, 7, 5000, 9000]),
        );
        let text = got.text.expect("decoded as text");
        assert_eq!(text.len(), 512_670);
        assert!(
            text.starts_with(r#"[{"id": 0, "name": "user-0", "#),
            "{}",
            &text[..60]
        );
        assert!(text.ends_with(r#""tags": ["a", "b", "c"]}]"#));
        assert!(!got.truncated);
    }

    #[test]
    fn zstd_over_the_limit_is_cut_and_marked() {
        let got = once(
            DEFAULT_BODY_MAX_SIZE_BYTES,
            TEXT,
            ContentEncoding::Zstd,
            ZSTD_USERS,
        );
        let text = got.text.expect("decoded as text");
        assert_eq!(text.len(), DEFAULT_BODY_MAX_SIZE_BYTES);
        assert!(text.starts_with(r#"[{"id": 0, "#));
        assert!(got.truncated);
    }

    #[test]
    fn zstd_bomb_stops_at_limit() {
        // 100 MiB of zeros: decoding stops at the limit plus one 2 MiB window, not at 100 MiB.
        let got = once(1000, TEXT, ContentEncoding::Zstd, ZSTD_ZEROS_100MIB);
        assert_eq!(got, Got::text(&"\0".repeat(1000), true));
        // Fed in small chunks, as a body streams.
        let got = chunked(
            1000,
            TEXT,
            ContentEncoding::Zstd,
            &ZSTD_ZEROS_100MIB.chunks(100).collect::<Vec<_>>(),
        );
        assert_eq!(got, Got::text(&"\0".repeat(1000), true));
        // And it stops early: a third of the input (about 30 MiB of output) is not needed to
        // see that the limit has been passed; decoding ends there.
        let mut c = BodyCapture::new(1000, TEXT, ContentEncoding::Zstd);
        for chunk in ZSTD_ZEROS_100MIB[..1100].chunks(100) {
            c.push(chunk);
        }
        assert!(c.is_full(), "{c:?}");
    }

    #[test]
    fn zstd_window_over_8_mib_is_not_decoded() {
        // RFC 9659 caps the window of HTTP's zstd at 8 MiB; a bigger one would be allocated
        // from a few bytes of input.
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Zstd, ZSTD_LONG_WINDOW),
            Got::base64(ZSTD_LONG_WINDOW, false)
        );
    }

    #[test]
    fn zstd_cut_corrupt_or_not_zstd_falls_back_to_raw_base64() {
        // Not zstd at all.
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Zstd, b"{\"a\":1}"),
            Got::base64(b"{\"a\":1}", false)
        );
        // Cut inside its only frame: nothing decoded yet (the frame's window is held back).
        let cut = &ZSTD_SMALL[..ZSTD_SMALL.len() - 6];
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Zstd, cut),
            Got::base64(cut, false)
        );
        // Corrupted in the middle: never a panic, bounded.
        let mut bad = ZSTD_USERS.to_vec();
        for b in &mut bad[8000..8032] {
            *b ^= 0x5a;
        }
        for limit in [10, 1000, 1 << 20] {
            assert!(once(limit, TEXT, ContentEncoding::Zstd, &bad).bytes().len() <= limit);
        }
    }

    #[test]
    fn zstd_frames_in_sequence_and_skippable_frames() {
        let mut body = zstd(b"{\"a\":", ruzstd::encoding::CompressionLevel::Fastest);
        // A skippable frame (magic 0x184D2A53, 3 bytes of user data) between two frames.
        body.extend_from_slice(&[0x53, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        body.extend(zstd(
            b"1}",
            ruzstd::encoding::CompressionLevel::Uncompressed,
        ));
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Zstd, &body),
            Got::text("{\"a\":1}", false)
        );
        // Trailing bytes that are no frame end the stream, like gzip's.
        body.extend_from_slice(b"garbage");
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Zstd, &body),
            Got::text("{\"a\":1}", false)
        );
    }

    #[test]
    fn unknown_encoding_is_raw_base64() {
        let body = b"\x28\xb5\x2f\xfd zstd-ish";
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Unknown, body),
            Got::base64(body, false)
        );
        assert_eq!(
            once(3, TEXT, ContentEncoding::Unknown, body),
            Got::base64(&body[..3], true)
        );
        // Even when the bytes happen to be text: they are not the body's content.
        assert_eq!(
            once(1000, TEXT, ContentEncoding::Unknown, b"abc"),
            Got::base64(b"abc", false)
        );
    }

    #[test]
    fn response_key_is_used() {
        let mut out = Vec::new();
        capture_bytes(2, TEXT, ID, &[], b"abc", "http.response.body", &mut out);
        let keys: Vec<&str> = out.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["http.response.body", "http.response.body.truncated"]);
    }

    #[test]
    fn capture_is_send_and_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<BodyCapture>();
    }

    /// Splits `body` at the (sorted, clamped) `cuts`.
    fn split<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for c in cuts.into_iter().chain([body.len()]) {
            chunks.push(&body[start..c]);
            start = c;
        }
        chunks
    }

    /// Mostly-text bodies, so the text path (and multi-byte cuts) get exercised, not only base64.
    fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..600),
            ".{0,200}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn identity_capture_is_a_bounded_prefix(
            body in body_strategy(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            limit in 0usize..700,
            base64 in any::<bool>(),
        ) {
            let kind = if base64 { CaptureKind::Base64 } else { TEXT };
            let got = chunked(limit, kind, ID, &split(&body, &cuts));
            let bytes = got.bytes();
            prop_assert!(bytes.len() <= limit);
            prop_assert!(body.starts_with(&bytes));
            let cut = body.len() > limit;
            if bytes.is_empty() {
                prop_assert!(body.is_empty() || limit == 0);
                prop_assert_eq!(&got, &Got::default());
            } else {
                prop_assert_eq!(got.truncated, cut);
                // Only a char-boundary cut may drop bytes below the limit, and at most 3.
                prop_assert!(
                    bytes.len() == body.len().min(limit)
                        || (cut && got.text.is_some() && limit - bytes.len() <= 3)
                );
            }
            if got.text.is_some() {
                prop_assert!(!base64);
            }
            let kept = &body[..body.len().min(limit)];
            if !base64 && !kept.is_empty() && std::str::from_utf8(kept).is_ok() {
                prop_assert_eq!(got.text.as_deref().map(str::as_bytes), Some(kept));
            }
            prop_assert_eq!(&got, &once(limit, kind, ID, &body));
        }

        #[test]
        fn compressed_capture_equals_identity_capture_of_plaintext(
            body in body_strategy(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            limit in 1usize..700,
            codec in 0u8..6,
        ) {
            let (enc, compressed) = match codec {
                0 => (ContentEncoding::Gzip, gzip(&body)),
                1 => (ContentEncoding::Deflate, zlib(&body)),
                2 => (ContentEncoding::Deflate, raw_deflate(&body)),
                3 => (ContentEncoding::Brotli, brotli_stored(&body)),
                4 => (ContentEncoding::Zstd, zstd(&body, ruzstd::encoding::CompressionLevel::Fastest)),
                _ => (ContentEncoding::Zstd, zstd(&body, ruzstd::encoding::CompressionLevel::Uncompressed)),
            };
            let got = chunked(limit, TEXT, enc, &split(&compressed, &cuts));
            prop_assert_eq!(got, once(limit, TEXT, ID, &body));
        }

        #[test]
        fn garbage_never_panics_and_stays_bounded(
            body in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            limit in 0usize..700,
            codec in 0u8..5,
        ) {
            use ContentEncoding::*;
            let enc = [Gzip, Deflate, Brotli, Zstd, Unknown][codec as usize];
            let got = chunked(limit, TEXT, enc, &split(&body, &cuts));
            prop_assert!(got.bytes().len() <= limit);
        }

        /// The redaction left to the export thread records what redacting here records: same
        /// keys, values and order, for JSON and forms, cut or over the limit after `[REDACTED]`,
        /// with multi-byte characters and bytes that are not UTF-8.
        #[test]
        fn deferred_redaction_records_what_redacting_here_records(
            parts in proptest::collection::vec(prop_oneof![
                Just(&b"{\"token\":\"s3cr3t\","[..]), Just(&b"\"pwd\":1,"[..]), Just(&b"\"a\":\"\xc3\xa9\xe2\x82\xac\","[..]),
                Just(&b"\"api-Key\":[1,{\"x\":2}],"[..]), Just(&b"password=hunter2&"[..]), Just(&b"x=1&"[..]),
                Just(&b"\"n\":null}"[..]), Just(&b"\\\"token\\\":"[..]), Just(&b"\xff"[..]), Just(&b" "[..]),
            ], 0..24),
            form in any::<bool>(),
            limit in 1usize..300,
            early in any::<bool>(),
            list in prop_oneof![Just(None), Just(Some(vec!["pwd".to_string()])), Just(Some(Vec::new()))],
        ) {
            let body: Vec<u8> = parts.concat();
            let kind = if form { CaptureKind::Form } else { CaptureKind::Json };
            let mut cfg = crate::config::Config::defaults("t");
            cfg.data_capture.body_max_size_bytes = limit;
            if let Some(list) = list {
                cfg.rustagent.redact_body_fields = list.into();
            }
            let fields = cfg.rustagent.redact_body_fields.clone();
            let run = |mut c: BodyCapture| {
                c.push(&body);
                if early {
                    c.end_early();
                }
                let mut out = Vec::new();
                c.finish(KEY, &mut out);
                out
            };
            let here = run(BodyCapture::new(limit, kind, ID).redact_fields(&fields));
            let mut later = run(BodyCapture::configured(&cfg, kind, ID));
            crate::capture::deferred::Redaction::of(&cfg).apply(&mut later);
            prop_assert_eq!(later, here);
        }
    }
}
