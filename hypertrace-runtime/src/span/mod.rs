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

use std::borrow::Cow;

use opentelemetry::trace::SpanRef;
use opentelemetry::{Key, KeyValue};

use crate::capture::AttributeSink;

/// Attributes set straight on a span as they are produced: the recorders take any
/// [`AttributeSink`], so no `Vec` of them is built (and freed) per request to carry them there.
/// On the agent's own span (`own`), long texts (bodies, packed headers) are copied into its
/// pooled record rather than given a `String` each (`record::put_text`).
pub(crate) struct OnSpan<'a> {
    span: SpanRef<'a>,
    own: bool,
}

impl<'a> OnSpan<'a> {
    /// `own`: `span` is the agent's own ([`record::AgentSpan`]).
    pub(crate) fn new(span: SpanRef<'a>, own: bool) -> Self {
        OnSpan { span, own }
    }
}

impl Extend<KeyValue> for OnSpan<'_> {
    fn extend<I: IntoIterator<Item = KeyValue>>(&mut self, attrs: I) {
        // One lock of the span for the lot.
        self.span.set_attributes(attrs);
    }
}

impl AttributeSink for OnSpan<'_> {
    fn text(&mut self, key: Key, text: Cow<'_, str>) {
        if self.own {
            record::put_text(&self.span, key, text, false);
        } else {
            self.span
                .set_attribute(KeyValue::new(key, text.into_owned()));
        }
    }
}
