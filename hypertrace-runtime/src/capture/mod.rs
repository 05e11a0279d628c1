//! Pure capture rules: headers, bodies, which content types are recorded, and the per-request
//! [`CapturePolicy`]. No I/O, no spans, only attributes appended to an [`AttributeSink`] (a
//! `Vec<KeyValue>`, or a span). These run on every request, so they avoid allocating beyond the
//! values they record and never hold more than the configured body limit.

use std::borrow::Cow;

use opentelemetry::{Key, KeyValue};

pub mod base64;
pub mod body;
pub mod content_type;
pub(crate) mod deferred;
pub mod headers;
pub mod packed;
pub mod policy;
pub mod redact;
mod zstd;

pub use body::{capture_bytes, BodyCapture};
pub use content_type::{
    capture_kind, content_encoding, response_capture_kind, CaptureKind, ContentEncoding,
};
pub use headers::record_headers;
pub use policy::{CaptureControl, CapturePolicy, HeaderScope, Overrides};

/// Where captured attributes go: a `Vec<KeyValue>`, or anything else that takes attributes.
///
/// The long texts a capture produces (a body, a request's packed headers) are handed over with
/// [`text`](Self::text), so that a sink which keeps its own buffer (the agent's span, which copies
/// them into its pooled record) needs no `String` of their own; by default each becomes a
/// `KeyValue`.
pub trait AttributeSink: Extend<KeyValue> {
    /// Adds the string attribute `key` = `text`.
    fn text(&mut self, key: Key, text: Cow<'_, str>) {
        self.extend(std::iter::once(KeyValue::new(key, text.into_owned())));
    }
}

impl AttributeSink for Vec<KeyValue> {}
