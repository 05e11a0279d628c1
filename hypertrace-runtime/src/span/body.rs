//! The body tee: it lets every frame through untouched and unbuffered, copies at most the capture
//! limit on the side, and reports when the body ends or is dropped. Server and client, request and
//! response bodies all go through it; what happens at the end is the [`OnBodyDone`] it carries.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use std::sync::Arc;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context as OtelContext;

use super::server::Shared;
use super::OnSpan;
use crate::capture::body::BodyCapture;
use crate::metrics::ServerTimer;

/// Told once, with what was captured, when the body has been read to the end, failed, or dropped.
pub trait OnBodyDone: Send + 'static {
    /// `complete`: the body was read to its end (not failed, not dropped early).
    fn done(self, capture: Option<BodyCapture>, complete: bool);
}

/// Records a captured body on `cx`'s span under `key`; `own`: the span is the agent's own.
fn record_body(cx: &OtelContext, own: bool, capture: Option<BodyCapture>, key: &'static str) {
    if let Some(c) = capture {
        c.finish(key, &mut OnSpan::new(cx.span(), own));
    }
}

/// Ends the span when the response body is finished or dropped, with the captured body on it.
/// Server and client spans alike; a server span's duration metric is recorded with the same end
/// time.
#[derive(Debug)]
pub struct EndSpan {
    cx: OtelContext,
    key: &'static str,
    timer: Option<ServerTimer>,
    own: bool,
}

impl EndSpan {
    /// Ends `cx`'s span, recording the body under `key` (`http.response.body`).
    pub(crate) fn new(cx: OtelContext, key: &'static str) -> EndSpan {
        EndSpan {
            cx,
            key,
            timer: None,
            own: false,
        }
    }

    /// The span is the agent's own: the body goes into its record.
    pub(crate) fn own(mut self, own: bool) -> EndSpan {
        self.own = own;
        self
    }

    /// Also records the request's duration metric, ending when the span ends.
    pub(crate) fn with_timer(mut self, timer: Option<ServerTimer>) -> EndSpan {
        self.timer = timer;
        self
    }
}

impl OnBodyDone for EndSpan {
    fn done(self, capture: Option<BodyCapture>, _complete: bool) {
        record_body(&self.cx, self.own, capture, self.key);
        match self.timer {
            // One clock read for both.
            Some(timer) => self.cx.span().end_with_timestamp(timer.end()),
            None => self.cx.span().end(),
        }
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
            record_body(&self.cx, self.shared.own(), capture, self.key);
        }
    }
}

/// At most this many frames are taken when a body is dropped unread (see
/// [`Tee::read_ready_on_drop`]): a body that keeps yielding empty frames must not hold up the drop.
const MAX_READY_FRAMES: usize = 64;

pin_project_lite::pin_project! {
    /// A body that streams `inner` through unchanged, copying it into a [`BodyCapture`] on the side.
    pub struct Tee<B: Body<Data = Bytes>, D: OnBodyDone> {
        #[pin]
        inner: B,
        capture: Option<BodyCapture>,
        // `None` once told.
        on_done: Option<D>,
        read_ready_on_drop: bool,
    }

    impl<B: Body<Data = Bytes>, D: OnBodyDone> PinnedDrop for Tee<B, D> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let Some(d) = this.on_done.take() else {
                return;
            };
            let mut complete = false;
            // Not while unwinding: a panic in the inner body's poll would then abort.
            if *this.read_ready_on_drop && !std::thread::panicking() {
                if let Some(c) = this.capture.as_mut() {
                    complete = take_ready(this.inner.as_mut(), c);
                    if !complete {
                        c.end_early();
                    }
                }
            }
            d.done(this.capture.take(), complete);
        }
    }
}

impl<B: Body<Data = Bytes>, D: OnBodyDone> Tee<B, D> {
    /// Streams `inner`, capturing into `capture` (if any), then tells `on_done`.
    pub fn new(inner: B, capture: Option<BodyCapture>, on_done: D) -> Self {
        Tee {
            inner,
            capture,
            on_done: Some(on_done),
            read_ready_on_drop: false,
        }
    }

    /// Streams `inner` and does nothing else (a request that has no span).
    pub fn passthrough(inner: B) -> Self {
        Tee {
            inner,
            capture: None,
            on_done: None,
            read_ready_on_drop: false,
        }
    }

    /// When the body is dropped before its end (a handler that never read its request body: a
    /// 415 from `Json`, a fallback, a handler without a body extractor), the capture still takes
    /// the frames that have already arrived: the inner body is polled with a no-op waker, never
    /// waiting, up to the capture limit, and the capture is marked truncated when the body had
    /// not ended.
    ///
    /// For hyper's request body this changes nothing on the connection: taking the chunk that
    /// sits in its channel (one at most) and dropping it right after is what dropping it unread
    /// amounts to, and hyper then drains or closes the rest as it would have. Only for request
    /// bodies, and `on` must be false for a request with `Expect: 100-continue`
    /// ([`expects_continue`]): polling such a body is what tells hyper to send `100 Continue`, and
    /// the client has sent nothing before that anyway. Never for response bodies: polling an
    /// app's body would run its code.
    pub fn read_ready_on_drop(mut self, on: bool) -> Self {
        self.read_ready_on_drop = on;
        self
    }
}

/// Whether the request asks for `100 Continue` before it sends its body (RFC 9110 §10.1.1).
pub fn expects_continue(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::EXPECT)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Feeds `capture` the frames `body` has ready now; true if the body ended.
fn take_ready<B: Body<Data = Bytes>>(mut body: Pin<&mut B>, capture: &mut BodyCapture) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut taken = 0usize;
    for _ in 0..MAX_READY_FRAMES {
        if capture.is_full() || taken >= capture.limit() {
            break;
        }
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    taken += data.len();
                    capture.push(data);
                }
                if body.is_end_stream() {
                    return true;
                }
            }
            Poll::Ready(None) => return true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => break,
        }
    }
    body.is_end_stream()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureKind, ContentEncoding};
    use std::sync::{Arc, Mutex};

    /// The attributes recorded, and whether the body was complete.
    type Report = (Vec<opentelemetry::KeyValue>, bool);

    /// Records what it was told.
    #[derive(Clone, Default)]
    struct Told(Arc<Mutex<Option<Report>>>);

    impl OnBodyDone for Told {
        fn done(self, capture: Option<BodyCapture>, complete: bool) {
            let mut out = Vec::new();
            if let Some(c) = capture {
                c.finish("body", &mut out);
            }
            *self.0.lock().unwrap() = Some((out, complete));
        }
    }

    impl Told {
        fn get(&self) -> (Vec<(String, String)>, bool) {
            let (kvs, complete) = self.0.lock().unwrap().take().expect("told");
            let kvs = kvs
                .into_iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect();
            (kvs, complete)
        }
    }

    /// Yields its frames when polled, then `Pending` (or endless empty frames).
    struct Frames {
        frames: Vec<&'static [u8]>,
        then_endless_empty: bool,
        polls: Arc<Mutex<usize>>,
    }

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            *self.polls.lock().unwrap() += 1;
            if !self.frames.is_empty() {
                let f = self.frames.remove(0);
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(f)))));
            }
            if self.then_endless_empty {
                Poll::Ready(Some(Ok(Frame::data(Bytes::new()))))
            } else {
                Poll::Pending
            }
        }
    }

    fn tee(
        frames: Vec<&'static [u8]>,
        endless: bool,
        limit: usize,
        on: bool,
    ) -> (Told, Arc<Mutex<usize>>) {
        let told = Told::default();
        let polls = Arc::new(Mutex::new(0));
        let body = Frames {
            frames,
            then_endless_empty: endless,
            polls: polls.clone(),
        };
        let capture = BodyCapture::new(limit, CaptureKind::Text, ContentEncoding::Identity);
        drop(Tee::new(body, Some(capture), told.clone()).read_ready_on_drop(on));
        (told, polls)
    }

    #[test]
    fn dropped_unread_takes_the_ready_frames_and_marks_the_cut() {
        let (told, polls) = tee(vec![b"ab", b"cd"], false, 100, true);
        let (kvs, complete) = told.get();
        assert!(!complete);
        assert_eq!(
            kvs,
            [
                ("body".to_string(), "abcd".to_string()),
                ("body.truncated".to_string(), "true".to_string())
            ]
        );
        assert_eq!(*polls.lock().unwrap(), 3, "two frames, then one Pending");
    }

    #[test]
    fn dropped_unread_stops_at_the_limit() {
        let (told, polls) = tee(vec![b"abc", b"def", b"ghi"], false, 4, true);
        let (kvs, _) = told.get();
        assert_eq!(kvs[0], ("body".to_string(), "abcd".to_string()));
        assert_eq!(
            *polls.lock().unwrap(),
            2,
            "no frame past the limit is taken"
        );
    }

    #[test]
    fn endless_empty_frames_do_not_hold_up_the_drop() {
        let (told, polls) = tee(vec![b"x"], true, 100, true);
        let (kvs, _) = told.get();
        assert_eq!(kvs[0], ("body".to_string(), "x".to_string()));
        assert_eq!(*polls.lock().unwrap(), MAX_READY_FRAMES);
    }

    #[test]
    fn off_by_default_the_body_is_not_polled() {
        let (told, polls) = tee(vec![b"ab"], false, 100, false);
        assert_eq!(told.get(), (Vec::new(), false));
        assert_eq!(*polls.lock().unwrap(), 0);
    }

    #[test]
    fn expect_100_continue_is_recognised() {
        let mut h = http::HeaderMap::new();
        assert!(!expects_continue(&h));
        h.insert(http::header::EXPECT, "100-Continue".parse().unwrap());
        assert!(expects_continue(&h));
        h.insert(http::header::EXPECT, "something-else".parse().unwrap());
        assert!(!expects_continue(&h));
    }
}
