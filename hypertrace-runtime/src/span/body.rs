//! The body tee: it lets every frame through untouched and unbuffered, copies at most the capture
//! limit on the side, and reports when the body ends or is dropped. Server and client, request and
//! response bodies all go through it; what happens at the end is the [`OnBodyDone`] it carries.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use std::sync::Arc;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context as OtelContext;

use super::server::Shared;
use crate::capture::body::BodyCapture;

/// Told once, with what was captured, when the body has been read to the end, failed, or dropped.
pub trait OnBodyDone: Send + 'static {
    /// `complete`: the body was read to its end (not failed, not dropped early).
    fn done(self, capture: Option<BodyCapture>, complete: bool);
}

/// Records a captured body on `cx`'s span under `key`.
fn record_body(cx: &OtelContext, capture: Option<BodyCapture>, key: &'static str) {
    if let Some(c) = capture {
        let mut attrs = Vec::with_capacity(2);
        c.finish(key, &mut attrs);
        if !attrs.is_empty() {
            cx.span().set_attributes(attrs);
        }
    }
}

/// Ends the span when the response body is finished or dropped, with the captured body on it.
/// Server and client spans alike.
#[derive(Debug)]
pub struct EndSpan {
    cx: OtelContext,
    key: &'static str,
}

impl EndSpan {
    /// Ends `cx`'s span, recording the body under `key` (`http.response.body`).
    pub(crate) fn new(cx: OtelContext, key: &'static str) -> EndSpan {
        EndSpan { cx, key }
    }
}

impl OnBodyDone for EndSpan {
    fn done(self, capture: Option<BodyCapture>, _complete: bool) {
        record_body(&self.cx, capture, self.key);
        self.cx.span().end();
    }
}

/// Records the request body on the server span, if the policy in force when the body ends still
/// wants it (a handler behind the layer may have turned it off after the tee was set up).
#[derive(Debug)]
pub(crate) struct RecordRequestBody {
    pub(crate) cx: OtelContext,
    pub(crate) shared: Arc<Shared>,
    pub(crate) key: &'static str,
}

impl OnBodyDone for RecordRequestBody {
    fn done(self, capture: Option<BodyCapture>, _complete: bool) {
        if self.shared.policy().request_body {
            record_body(&self.cx, capture, self.key);
        }
    }
}

pin_project_lite::pin_project! {
    /// A body that streams `inner` through unchanged, copying it into a [`BodyCapture`] on the side.
    pub struct Tee<B, D: OnBodyDone> {
        #[pin]
        inner: B,
        capture: Option<BodyCapture>,
        // `None` once told.
        on_done: Option<D>,
    }

    impl<B, D: OnBodyDone> PinnedDrop for Tee<B, D> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(d) = this.on_done.take() {
                d.done(this.capture.take(), false);
            }
        }
    }
}

impl<B, D: OnBodyDone> Tee<B, D> {
    /// Streams `inner`, capturing into `capture` (if any), then tells `on_done`.
    pub fn new(inner: B, capture: Option<BodyCapture>, on_done: D) -> Self {
        Tee {
            inner,
            capture,
            on_done: Some(on_done),
        }
    }

    /// Streams `inner` and does nothing else (a request that has no span).
    pub fn passthrough(inner: B) -> Self {
        Tee {
            inner,
            capture: None,
            on_done: None,
        }
    }
}

impl<B, D> Body for Tee<B, D>
where
    B: Body<Data = Bytes>,
    D: OnBodyDone,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let res = this.inner.as_mut().poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(c), Some(data)) = (this.capture.as_mut(), frame.data_ref()) {
                    c.push(data);
                }
                // The last frame: end now rather than on a poll that may never come (a server
                // stops polling a body that says it has ended).
                if this.inner.is_end_stream() {
                    if let Some(d) = this.on_done.take() {
                        d.done(this.capture.take(), true);
                    }
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(d) = this.on_done.take() {
                    d.done(this.capture.take(), matches!(res, Poll::Ready(None)));
                }
            }
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
