//! Pure capture rules: headers, bodies, which content types are recorded, and the per-request
//! [`CapturePolicy`]. No I/O, no spans, only attributes appended to a `Vec<KeyValue>`. These run on
//! every request, so they avoid allocating beyond the values they record and never hold more than the
//! configured body limit.

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
