//! The span lifecycle that every entry point shares, whatever its protocol:
//!
//! - `server`: a SERVER span's phases (start, finish, fail, cancel) and the refinement an annotated
//!   handler applies to the span of the layer in front of it;
//! - [`body`]: the body tee that copies a body on the side as it streams, and the end-of-body callbacks
//!   that record it and end the span;
//! - `exception`: the `exception` event of a panic or a failed call, with its stack trace.
//!
//! Protocol attributes (HTTP's in `http::attributes`, gRPC's in `grpc`) are computed by the callers and
//! handed in: this module knows spans, not requests.

pub mod body;
pub(crate) mod exception;
pub(crate) mod record;
pub(crate) mod server;

use opentelemetry::trace::SpanRef;
use opentelemetry::KeyValue;

/// Attributes set straight on a span as they are produced: the recorders take any
/// `Extend<KeyValue>`, so no `Vec` of them is built (and freed) per request to carry them there.
pub(crate) struct OnSpan<'a>(pub(crate) SpanRef<'a>);

impl Extend<KeyValue> for OnSpan<'_> {
    fn extend<I: IntoIterator<Item = KeyValue>>(&mut self, attrs: I) {
        // One lock of the span for the lot.
        self.0.set_attributes(attrs);
    }
}
