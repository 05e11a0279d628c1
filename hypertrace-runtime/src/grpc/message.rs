//! The messages of one direction of a call, captured as they stream past: proto3 JSON when the
//! method's types are known, else the raw bytes (recorded as `<key>.base64`).
//!
//! Bounds: the frame decoder keeps at most `limit` bytes of a message and decompression stops at
//! `limit` bytes of output. A message of a known type is kept as bytes, at most `limit` of them
//! for the whole direction, and written as JSON by the export thread (`deferred.rs`), into a
//! [`BodyCapture`] of `limit` bytes (which cuts on a UTF-8 boundary and marks `.truncated`).
//! Raw bytes go into such a capture here. Once it is full, later messages are not kept.

use std::io::Read;

use opentelemetry::KeyValue;

use super::deferred::{MessageType, Messages};
use super::frame::{frame, FrameDecoder, RawMessage};
use crate::capture::body::BodyCapture;
use crate::capture::content_type::{CaptureKind, ContentEncoding};

/// The call's `grpc-encoding`, as far as capture can decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Deflate,
    /// `zstd` or anything else: compressed messages are recorded as they are (base64).
    Other,
}

impl Encoding {
    /// From the `grpc-encoding` header value (absent: identity).
    pub(crate) fn from_header(value: Option<&[u8]>) -> Encoding {
        match value.map(<[u8]>::trim_ascii) {
            None | Some(b"identity") | Some(b"") => Encoding::Identity,
            Some(b"gzip") => Encoding::Gzip,
            Some(b"deflate") => Encoding::Deflate,
            Some(_) => Encoding::Other,
        }
    }
}

/// How the messages are shown.
enum Shape {
    /// JSON of their type, written on the export thread; a JSON array when streaming.
    Json(Messages),
    /// Raw bytes: one message as is; several as gRPC frames (length-prefixed, uncompressed), so
    /// they can be told apart. The first is held until a second one shows which.
    Raw { first: Option<Vec<u8>> },
}

/// Captures the messages of one direction of a call.
pub(crate) struct MessageCapture {
    frames: FrameDecoder,
    limit: usize,
    encoding: Encoding,
    shape: Shape,
    out: BodyCapture,
    count: usize,
    /// Something is missing from what is recorded though `out` did not cut it: a message cut by
    /// the limit, one that did not decode, or messages after `out` was full.
    lossy: bool,
}

impl MessageCapture {
    /// `descriptor`: the message type and whether this direction streams; `None` records raw bytes.
    /// The limit and the body-field redaction come from `cfg`, as for HTTP bodies.
    pub(crate) fn new(
        cfg: &crate::config::Config,
        encoding: Encoding,
        descriptor: Option<(MessageType, bool)>,
    ) -> Self {
        let limit = cfg.data_capture.body_max_size_bytes;
        let (shape, kind) = match descriptor {
            Some((ty, streaming)) => (
                Shape::Json(Messages::new(ty, streaming, limit)),
                CaptureKind::Json,
            ),
            None => (Shape::Raw { first: None }, CaptureKind::Base64),
        };
        MessageCapture {
            frames: FrameDecoder::new(limit),
            limit,
            encoding,
            shape,
            out: BodyCapture::configured(cfg, kind, ContentEncoding::Identity),
            count: 0,
            lossy: false,
        }
    }

    /// Feeds one chunk of the body.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        let mut frames = std::mem::replace(&mut self.frames, FrameDecoder::new(0));
        frames.push(chunk, |m| self.message(m));
        self.frames = frames;
    }

    /// Appends `key` (JSON text) or `<key>.base64`, and `<key>.truncated` when anything is missing.
    pub(crate) fn finish(mut self, key: &'static str, out: &mut Vec<KeyValue>) {
        let frames = std::mem::replace(&mut self.frames, FrameDecoder::new(0));
        if let Some(partial) = frames.finish() {
            self.message(partial);
        }
        let first = match self.shape {
            Shape::Json(messages) => return messages.finish(key, self.lossy, out),
            Shape::Raw { first } => first,
        };
        if let Some(first) = first {
            self.out.push(&first);
        }
        let before = out.len();
        self.out.finish(key, out);
        let recorded = out.len() > before;
        let marked = out[before..]
            .iter()
            .any(|kv| kv.key.as_str().ends_with(".truncated"));
        if recorded && self.lossy && !marked {
            out.push(KeyValue::new(format!("{key}.truncated"), true));
        }
    }

    fn message(&mut self, m: RawMessage) {
        let full = match &self.shape {
            Shape::Json(messages) => messages.is_full(),
            Shape::Raw { .. } => self.out.is_full(),
        };
        if full {
            self.lossy = true;
            return;
        }
        self.count += 1;
        let complete = m.complete;
        if !complete {
            self.lossy = true;
        }
        let (bytes, decodable) = match self.decompress(m) {
            Ok(b) => b,
            Err(raw) => {
                // Compressed with an encoding we cannot decode: shown as it came.
                (raw, false)
            }
        };
        match &mut self.shape {
            // A message cut by the limit or not matching its type: the export thread writes
            // the fields before the first one that does not decode.
            Shape::Json(messages) if decodable => messages.push(&bytes, complete),
            Shape::Json(messages) => messages.push_undecodable(),
            Shape::Raw { first } => {
                if self.count == 1 {
                    *first = Some(bytes);
                } else {
                    let mut framed = Vec::new();
                    if let Some(first) = first.take() {
                        frame(&first, &mut framed);
                    }
                    frame(&bytes, &mut framed);
                    self.out.push(&framed);
                }
            }
        }
    }

    /// The message's bytes, decompressed (at most `limit` of them) when its flag says so; `Err`
    /// with the raw bytes when its encoding cannot be decoded here. The bool is false when the
    /// bytes are known to be cut or corrupt.
    fn decompress(&mut self, m: RawMessage) -> Result<(Vec<u8>, bool), Vec<u8>> {
        if !m.compressed {
            return Ok((m.bytes, true));
        }
        let mut out = Vec::new();
        let limit = self.limit as u64;
        let result = match self.encoding {
            Encoding::Gzip => flate2::read::GzDecoder::new(m.bytes.as_slice())
                .take(limit + 1)
                .read_to_end(&mut out),
            Encoding::Deflate => flate2::read::ZlibDecoder::new(m.bytes.as_slice())
                .take(limit + 1)
                .read_to_end(&mut out),
            // A compressed flag without an encoding is a protocol error; zstd is not decoded.
            Encoding::Identity | Encoding::Other => return Err(m.bytes),
        };
        if out.len() as u64 > limit {
            out.truncate(self.limit);
            self.lossy = true;
        }
        match result {
            Ok(_) => Ok((out, true)),
            // A cut stream still gives its start; nothing at all is shown as it came.
            Err(_) if !out.is_empty() => {
                self.lossy = true;
                Ok((out, true))
            }
            Err(_) => Err(m.bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration with this body limit.
    fn limit(n: usize) -> crate::config::Config {
        let mut cfg = crate::config::Config::defaults("t");
        cfg.data_capture.body_max_size_bytes = n;
        cfg
    }
    use crate::grpc::descriptors::Descriptors;
    use base64::Engine as _;
    use opentelemetry::Value;
    use prost_reflect::prost::Message as _;
    use prost_reflect::{DynamicMessage, Value as PValue};
    use std::io::Write as _;

    const ECHO: &[u8] = include_bytes!("../../../tests/proto/echo.bin");
    const KEY: &str = "rpc.request.body";

    fn request_type() -> MessageType {
        Descriptors::new(&[ECHO])
            .unwrap()
            .method("/hypertrace.test.v1.Echo/Unary")
            .unwrap()
            .request()
            .0
    }

    fn encode(message: &str, big: i64, tags: &[&str]) -> Vec<u8> {
        let mut m = DynamicMessage::new(request_type().descriptor);
        m.set_field_by_name("message", PValue::String(message.into()));
        m.set_field_by_name("big", PValue::I64(big));
        m.set_field_by_name(
            "tags",
            PValue::List(tags.iter().map(|t| PValue::String(t.to_string())).collect()),
        );
        m.encode_to_vec()
    }

    fn wire(messages: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            frame(m, &mut out);
        }
        out
    }

    /// What the capture records, as exported: written as JSON and redacted by the export
    /// thread's passes.
    fn record(c: MessageCapture) -> Vec<(String, Value)> {
        record_with(c, &crate::config::Config::defaults("t"))
    }

    /// [`record`] with the export thread's redaction configured by `cfg`.
    fn record_with(c: MessageCapture, cfg: &crate::config::Config) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        c.finish(KEY, &mut out);
        crate::grpc::deferred::render_all(&mut out);
        crate::capture::deferred::Redaction::of(cfg).apply(&mut out);
        out.into_iter()
            .map(|kv| (kv.key.to_string(), kv.value))
            .collect()
    }

    fn text(s: &str) -> (String, Value) {
        (KEY.to_string(), Value::from(s.to_string()))
    }

    fn truncated() -> (String, Value) {
        (format!("{KEY}.truncated"), Value::Bool(true))
    }

    #[test]
    fn unary_message_as_canonical_json() {
        let mut c = MessageCapture::new(
            &limit(1000),
            Encoding::Identity,
            Some((request_type(), false)),
        );
        c.push(&wire(&[encode("hi", 1 << 40, &["a", "b"])]));
        assert_eq!(
            record(c),
            vec![text(
                r#"{"message":"hi","big":"1099511627776","tags":["a","b"]}"#
            )]
        );
    }

    #[test]
    fn binary_fields_survive_the_trip_to_the_export_thread_and_are_redacted_there() {
        let mut cfg = limit(1000);
        cfg.rustagent.redact_body_fields = vec!["message".to_string()].into();
        let mut m = DynamicMessage::new(request_type().descriptor);
        m.set_field_by_name("message", PValue::String("secret".into()));
        let payload: Vec<u8> = (0..=255).collect();
        m.set_field_by_name("payload", PValue::Bytes(payload.clone().into()));
        let mut c = MessageCapture::new(&cfg, Encoding::Identity, Some((request_type(), false)));
        c.push(&wire(&[m.encode_to_vec()]));
        let got = record_with(c, &cfg);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&payload);
        assert_eq!(
            got,
            vec![text(&format!(
                r#"{{"message":"[REDACTED]","payload":"{b64}"}}"#
            ))]
        );
    }

    #[test]
    fn stream_is_a_json_array_in_order_split_anywhere() {
        let bytes = wire(&[
            encode("one", 0, &[]),
            encode("two", 0, &[]),
            encode("", 0, &[]),
        ]);
        let mut c = MessageCapture::new(
            &limit(1000),
            Encoding::Identity,
            Some((request_type(), true)),
        );
        for b in bytes.chunks(3) {
            c.push(b);
        }
        assert_eq!(
            record(c),
            vec![text(r#"[{"message":"one"},{"message":"two"},{}]"#)]
        );
    }

    #[test]
    fn over_the_limit_is_cut_and_marked() {
        let bytes = wire(&[encode("abcdefghijklmnopqrstuvwxyz", 0, &[])]);
        let mut c = MessageCapture::new(
            &limit(16),
            Encoding::Identity,
            Some((request_type(), false)),
        );
        c.push(&bytes);
        let got = record(c);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1], truncated());
        assert!(got[0].1.as_str().len() <= 16);

        // A stream whose capture fills up: later messages are not decoded, and it is marked.
        let many: Vec<Vec<u8>> = (0..50).map(|i| encode(&format!("m{i}"), 0, &[])).collect();
        let mut c =
            MessageCapture::new(&limit(40), Encoding::Identity, Some((request_type(), true)));
        c.push(&wire(&many));
        let got = record(c);
        assert!(got[0].1.as_str().starts_with(r#"[{"message":"m0"},"#));
        assert!(got[0].1.as_str().len() <= 40);
        assert_eq!(got[1], truncated());
    }

    /// JSON of exactly the limit is whole; one byte more is cut and marked.
    #[test]
    fn json_at_the_limit_is_whole_and_one_byte_over_is_cut() {
        let json = r#"{"message":"hi"}"#;
        for streaming in [false, true] {
            let shown = if streaming {
                format!("[{json}]")
            } else {
                json.to_string()
            };
            let capture = |n: usize| {
                let mut c = MessageCapture::new(
                    &limit(n),
                    Encoding::Identity,
                    Some((request_type(), streaming)),
                );
                c.push(&wire(&[encode("hi", 0, &[])]));
                record(c)
            };
            assert_eq!(capture(shown.len()), vec![text(&shown)], "{shown}");
            assert_eq!(
                capture(shown.len() - 1),
                vec![text(&shown[..shown.len() - 1]), truncated()],
                "{shown}"
            );
        }
    }

    #[test]
    fn gzip_messages_are_decoded() {
        let plain = encode("zipped", 0, &[]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let mut bytes = vec![1];
        bytes.extend_from_slice(&(gz.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&gz);
        let mut c =
            MessageCapture::new(&limit(1000), Encoding::Gzip, Some((request_type(), false)));
        c.push(&bytes);
        assert_eq!(record(c), vec![text(r#"{"message":"zipped"}"#)]);
    }

    #[test]
    fn without_descriptors_raw_bytes_base64() {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD_NO_PAD.encode(b);
        let one = encode("x", 0, &[]);
        let mut c = MessageCapture::new(&limit(1000), Encoding::Identity, None);
        c.push(&wire(std::slice::from_ref(&one)));
        assert_eq!(
            record(c),
            vec![(format!("{KEY}.base64"), Value::from(b64(&one)))]
        );

        // Several: as frames, so that they can be split again.
        let two = vec![one.clone(), encode("y", 0, &[])];
        let mut c = MessageCapture::new(&limit(1000), Encoding::Identity, None);
        c.push(&wire(&two));
        assert_eq!(
            record(c),
            vec![(format!("{KEY}.base64"), Value::from(b64(&wire(&two))))]
        );
    }

    #[test]
    fn garbage_and_cut_frames_do_not_panic() {
        let mut c = MessageCapture::new(
            &limit(1000),
            Encoding::Identity,
            Some((request_type(), false)),
        );
        c.push(&[0, 0, 0, 0, 3, 0xff, 0xff, 0xff]);
        let got = record(c);
        assert!(got.contains(&truncated()), "{got:?}");

        // A frame cut by the end of the stream, a compressed flag without an encoding.
        for bytes in [&[0u8, 0, 0, 0, 9, 10, 1][..], &[1, 0, 0, 0, 2, 1, 2][..]] {
            let mut c = MessageCapture::new(
                &limit(1000),
                Encoding::Identity,
                Some((request_type(), false)),
            );
            c.push(bytes);
            let got = record(c);
            assert!(got.contains(&truncated()), "{got:?}");
        }
    }

    #[test]
    fn empty_body_records_nothing() {
        let c = MessageCapture::new(
            &limit(1000),
            Encoding::Identity,
            Some((request_type(), true)),
        );
        assert!(record(c).is_empty());
    }
}
