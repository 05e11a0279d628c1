//! The body prefix a filter reads, without breaking the stream: frames are read from the body
//! until `body_max_processing_size_bytes` are held (or the body ends, or fails), then the handler
//! gets a body that yields those frames as they came, then the rest of the original stream. The
//! bytes, the frame boundaries, the trailers and an error all reach the handler unchanged.
//!
//! Memory: at most the limit plus the one frame that crossed it is held, and only until the
//! handler reads it; the rest of the stream is never buffered.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The frames read ahead of the handler, and how the read ended.
#[derive(Debug)]
pub(crate) struct Held<E> {
    frames: VecDeque<Frame<Bytes>>,
    /// Data bytes in `frames`.
    bytes: usize,
    /// The body failed while its prefix was read: the handler gets the error after the frames.
    error: Option<E>,
    /// The body has ended (its last frame is in `frames`).
    ended: bool,
}

impl<E> Default for Held<E> {
    fn default() -> Self {
        Held {
            frames: VecDeque::new(),
            bytes: 0,
            error: None,
            ended: false,
        }
    }
}

impl<E> Held<E> {
    /// The prefix a filter sees: the first `limit` bytes held, contiguous (borrowed when the
    /// first frame holds them all), and whether the body goes on past them.
    pub(crate) fn prefix(&self, limit: usize) -> (Cow<'_, [u8]>, bool) {
        let truncated = self.bytes > limit || !self.ended;
        let mut data = self.frames.iter().filter_map(Frame::data_ref);
        let first = data.next().map(|b| &b[..]).unwrap_or_default();
        if first.len() >= limit.min(self.bytes) {
            return (Cow::Borrowed(&first[..first.len().min(limit)]), truncated);
        }
        let mut out = Vec::with_capacity(limit.min(self.bytes));
        out.extend_from_slice(first);
        for chunk in data {
            let room = limit - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() == limit {
                break;
            }
        }
        (Cow::Owned(out), truncated)
    }

    /// Copies the first bytes held into `out`; how many there were.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    pub(crate) fn copy_start(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for chunk in self.frames.iter().filter_map(Frame::data_ref) {
            let take = chunk.len().min(out.len() - n);
            out[n..n + take].copy_from_slice(&chunk[..take]);
            n += take;
            if n == out.len() {
                break;
            }
        }
        n
    }

    /// Data bytes held.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Reads frames from `body` until `limit` data bytes are held, the body ends or fails, or
/// `enough` says the held bytes suffice. A body that has already ended is not polled.
pub(crate) async fn read_prefix<B>(
    body: &mut B,
    limit: usize,
    mut enough: impl FnMut(&Held<B::Error>) -> bool,
) -> Held<B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut held = Held {
        ended: body.is_end_stream(),
        ..Held::default()
    };
    poll_fn(|cx| {
        while !held.ended && held.error.is_none() && held.bytes < limit && !enough(&held) {
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    held.bytes += frame.data_ref().map_or(0, Bytes::len);
                    held.frames.push_back(frame);
                    held.ended = body.is_end_stream();
                }
                Poll::Ready(Some(Err(e))) => held.error = Some(e),
                Poll::Ready(None) => held.ended = true,
            }
        }
        Poll::Ready(())
    })
    .await;
    held
}

/// Yields what `held` holds, then the error it holds or the rest of `rest`: the next frame of a
/// body whose prefix was read ahead. Shared by the HTTP body ([`Replay`]) and the gRPC request body.
pub(crate) fn poll_replay<B: Body<Data = Bytes>>(
    held: &mut Held<B::Error>,
    rest: Pin<&mut B>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
    if let Some(frame) = held.frames.pop_front() {
        held.bytes -= frame.data_ref().map_or(0, Bytes::len);
        return Poll::Ready(Some(Ok(frame)));
    }
    if let Some(e) = held.error.take() {
        held.ended = true;
        return Poll::Ready(Some(Err(e)));
    }
    if held.ended {
        return Poll::Ready(None);
    }
    rest.poll_frame(cx)
}

/// Whether a replaying body has ended.
pub(crate) fn replay_ended<B: Body<Data = Bytes>>(held: &Held<B::Error>, rest: &B) -> bool {
    held.frames.is_empty() && held.error.is_none() && (held.ended || rest.is_end_stream())
}

/// The size hint of a replaying body: what is held plus what is left of the rest.
pub(crate) fn replay_size_hint<B: Body<Data = Bytes>>(held: &Held<B::Error>, rest: &B) -> SizeHint {
    let held_bytes = held.bytes as u64;
    if held.ended && held.error.is_none() {
        return SizeHint::with_exact(held_bytes);
    }
    let rest = rest.size_hint();
    let mut hint = SizeHint::new();
    hint.set_lower(rest.lower().saturating_add(held_bytes));
    if let Some(upper) = rest.upper() {
        hint.set_upper(upper.saturating_add(held_bytes));
    }
    hint
}

pin_project_lite::pin_project! {
    /// A body whose prefix was read ahead for the filters: the prefix, then the rest.
    pub(crate) struct Replay<B: Body<Data = Bytes>> {
        held: Held<B::Error>,
        #[pin]
        rest: B,
    }
}

impl<B: Body<Data = Bytes>> Replay<B> {
    pub(crate) fn new(held: Held<B::Error>, rest: B) -> Self {
        Replay { held, rest }
    }
}

impl<B: Body<Data = Bytes>> Body for Replay<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        poll_replay(this.held, this.rest, cx)
    }

    fn is_end_stream(&self) -> bool {
        replay_ended(&self.held, &self.rest)
    }

    fn size_hint(&self) -> SizeHint {
        replay_size_hint(&self.held, &self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of these frames (and trailers), with an optional error at the end.
    struct Frames {
        frames: VecDeque<Result<Frame<Bytes>, &'static str>>,
    }

    impl Body for Frames {
        type Data = Bytes;
        type Error = &'static str;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.frames.pop_front())
        }
        fn is_end_stream(&self) -> bool {
            self.frames.is_empty()
        }
    }

    fn frames(chunks: &[&'static [u8]]) -> Frames {
        Frames {
            frames: chunks
                .iter()
                .map(|c| Ok(Frame::data(Bytes::from_static(c))))
                .collect(),
        }
    }

    /// Every frame a body yields: data as bytes, trailers as `T`, an error as `E:`.
    async fn all<B: Body<Data = Bytes> + Unpin>(mut b: B) -> Vec<String>
    where
        B::Error: std::fmt::Display,
    {
        let mut out = Vec::new();
        while let Some(f) = poll_fn(|cx| Pin::new(&mut b).poll_frame(cx)).await {
            out.push(match f {
                Ok(f) if f.is_data() => String::from_utf8(f.into_data().unwrap().to_vec()).unwrap(),
                Ok(_) => "T".into(),
                Err(e) => format!("E:{e}"),
            });
        }
        out
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_executor::block_on(f)
    }

    #[test]
    fn reads_up_to_the_limit_then_replays_every_frame_as_it_came() {
        let mut body = frames(&[b"abc", b"def", b"ghi", b"jkl"]);
        let held = block_on(read_prefix(&mut body, 5, |_| false));
        assert_eq!(held.bytes(), 6, "two frames: the second crossed the limit");
        let (prefix, truncated) = held.prefix(5);
        assert_eq!(&*prefix, b"abcde");
        assert!(truncated);
        let replay = Replay::new(held, body);
        assert_eq!(block_on(all(replay)), ["abc", "def", "ghi", "jkl"]);
    }

    #[test]
    fn a_short_body_is_read_to_its_end_with_its_trailers() {
        let mut body = frames(&[b"ab"]);
        body.frames
            .push_back(Ok(Frame::trailers(http::HeaderMap::new())));
        let held = block_on(read_prefix(&mut body, 100, |_| false));
        let (prefix, truncated) = held.prefix(100);
        assert_eq!((&*prefix, truncated), (&b"ab"[..], false));
        let replay = Replay::new(held, body);
        assert!(!replay.is_end_stream());
        assert_eq!(replay.size_hint().exact(), Some(2));
        assert_eq!(block_on(all(replay)), ["ab", "T"]);
    }

    #[test]
    fn an_error_while_reading_reaches_the_handler_after_the_prefix() {
        let mut body = frames(&[b"ab"]);
        body.frames.push_back(Err("reset"));
        body.frames
            .push_back(Ok(Frame::data(Bytes::from_static(b"never"))));
        let held = block_on(read_prefix(&mut body, 100, |_| false));
        assert!(held.prefix(100).1, "an error is not the end");
        let replay = Replay::new(held, body);
        assert_eq!(block_on(all(replay)), ["ab", "E:reset"]);
    }

    #[test]
    fn an_ended_body_is_not_polled() {
        let mut body = frames(&[]);
        let held = block_on(read_prefix(&mut body, 10, |_| false));
        assert_eq!(held.prefix(10), (Cow::Borrowed(&b""[..]), false));
    }

    #[test]
    fn enough_stops_the_read_early() {
        let mut body = frames(&[b"abc", b"def"]);
        let held = block_on(read_prefix(&mut body, 100, |h| h.bytes() >= 3));
        assert_eq!(held.bytes(), 3);
        assert_eq!(block_on(all(Replay::new(held, body))), ["abc", "def"]);
    }
}
