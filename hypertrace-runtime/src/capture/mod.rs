//! Pure capture rules (CONTRACT §3.4 headers, §3.5 bodies): no I/O, no spans, only attributes appended
//! to a `Vec<KeyValue>`. These run on every request, so they avoid allocating beyond the values they
//! record and never hold more than the configured body limit.

pub mod base64;
pub mod body;
pub mod content_type;
pub mod headers;
pub mod redact;
mod zstd;

pub use body::{capture_bytes, BodyCapture};
pub use content_type::{
    capture_kind, content_encoding, response_capture_kind, CaptureKind, ContentEncoding,
};
pub use headers::record_headers;
