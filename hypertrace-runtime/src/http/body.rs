//! Body wrappers: they let every frame through untouched and unbuffered, copy at most the capture
//! limit on the side, and report when the body ends or is dropped (CONTRACT §3.5).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::capture::body::BodyCapture;

/// Told once, with what was captured, when the body has been read to the end, failed, or dropped.
pub trait OnBodyDone: Send + 'static {
    fn done(self, capture: Option<BodyCapture>, complete: bool);
}

pin_project_lite::pin_project! {
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
    pub fn new(inner: B, capture: Option<BodyCapture>, on_done: D) -> Self {
        Tee {
            inner,
            capture,
            on_done: Some(on_done),
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
        let this = self.project();
        let res = this.inner.poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(c), Some(data)) = (this.capture.as_mut(), frame.data_ref()) {
                    c.push(data);
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
