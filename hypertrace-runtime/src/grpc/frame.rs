//! Incremental gRPC message framing: each message is a 1-byte compressed flag, a 4-byte big-endian
//! length, then the message. Body chunks split frames anywhere (inside the prefix too), so the
//! decoder keeps its place between chunks.
//!
//! At most `limit` bytes of one message are kept: a frame that claims 4 GiB costs what arrived of
//! it, up to the limit, never the claimed length. The rest of an oversized message is skipped.

/// One message as framed on the wire.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RawMessage {
    /// The compressed flag of the prefix (compressed with the call's `grpc-encoding`).
    pub compressed: bool,
    /// The message, or its first `limit` bytes.
    pub bytes: Vec<u8>,
    /// False when `bytes` is only the start of the message (over the limit, or the stream ended
    /// inside the frame).
    pub complete: bool,
}

/// Splits a stream of body chunks into messages.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    limit: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    Prefix {
        buf: [u8; 5],
        have: usize,
    },
    Message {
        compressed: bool,
        /// Bytes of the message still to come.
        left: usize,
        /// What is kept of it (at most `limit`).
        bytes: Vec<u8>,
        complete: bool,
    },
}

const EMPTY_PREFIX: State = State::Prefix {
    buf: [0; 5],
    have: 0,
};

impl FrameDecoder {
    /// Keeps at most `limit` bytes of each message.
    pub(crate) fn new(limit: usize) -> Self {
        FrameDecoder {
            limit,
            state: EMPTY_PREFIX,
        }
    }

    /// Feeds one chunk; `on_message` is called for each message completed by it, in order.
    pub(crate) fn push(&mut self, mut chunk: &[u8], mut on_message: impl FnMut(RawMessage)) {
        while !chunk.is_empty() {
            match &mut self.state {
                State::Prefix { buf, have } => {
                    let take = (5 - *have).min(chunk.len());
                    buf[*have..*have + take].copy_from_slice(&chunk[..take]);
                    *have += take;
                    chunk = &chunk[take..];
                    if *have == 5 {
                        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                        self.state = State::Message {
                            compressed: buf[0] & 1 == 1,
                            left: len,
                            bytes: Vec::new(),
                            complete: true,
                        };
                        self.emit_if_done(&mut on_message);
                    }
                }
                State::Message {
                    left,
                    bytes,
                    complete,
                    ..
                } => {
                    let n = (*left).min(chunk.len());
                    let keep = n.min(self.limit - bytes.len());
                    if keep > 0 {
                        // Grows with what arrives, never past the limit.
                        let want = (bytes.len() + keep)
                            .max(bytes.capacity() * 2)
                            .min(self.limit)
                            .min(bytes.len() + *left);
                        if bytes.capacity() < want {
                            bytes.reserve_exact(want - bytes.len());
                        }
                        bytes.extend_from_slice(&chunk[..keep]);
                    }
                    if keep < n {
                        *complete = false;
                    }
                    *left -= n;
                    chunk = &chunk[n..];
                    self.emit_if_done(&mut on_message);
                }
            }
        }
    }

    /// The end of the stream: a message cut short by it is given as incomplete. A partial prefix
    /// is dropped (there is no message to show).
    pub(crate) fn finish(self) -> Option<RawMessage> {
        match self.state {
            State::Message {
                compressed, bytes, ..
            } => Some(RawMessage {
                compressed,
                bytes,
                complete: false,
            }),
            State::Prefix { .. } => None,
        }
    }

    fn emit_if_done(&mut self, on_message: &mut impl FnMut(RawMessage)) {
        if let State::Message { left: 0, .. } = self.state {
            if let State::Message {
                compressed,
                bytes,
                complete,
                ..
            } = std::mem::replace(&mut self.state, EMPTY_PREFIX)
            {
                on_message(RawMessage {
                    compressed,
                    bytes,
                    complete,
                });
            }
        }
    }
}

/// `message` framed as gRPC sends it, uncompressed.
pub(crate) fn frame(message: &[u8], out: &mut Vec<u8>) {
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(messages: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            frame(m, &mut out);
        }
        out
    }

    fn decode(limit: usize, chunks: &[&[u8]]) -> (Vec<RawMessage>, Option<RawMessage>) {
        let mut d = FrameDecoder::new(limit);
        let mut got = Vec::new();
        for c in chunks {
            d.push(c, |m| got.push(m));
        }
        (got, d.finish())
    }

    fn msg(bytes: &[u8], complete: bool) -> RawMessage {
        RawMessage {
            compressed: false,
            bytes: bytes.to_vec(),
            complete,
        }
    }

    #[test]
    fn messages_in_one_chunk() {
        let wire = framed(&[b"hello", b"", b"world!"]);
        let (got, rest) = decode(100, &[&wire]);
        assert_eq!(
            got,
            vec![msg(b"hello", true), msg(b"", true), msg(b"world!", true)]
        );
        assert_eq!(rest, None);
    }

    #[test]
    fn oversized_message_keeps_the_limit_and_skips_the_rest() {
        let big = vec![7u8; 1000];
        let wire = framed(&[&big, b"next"]);
        let (got, _) = decode(10, &[&wire]);
        assert_eq!(got, vec![msg(&[7; 10], false), msg(b"next", true)]);
        assert!(got[0].bytes.capacity() <= 10);
    }

    #[test]
    fn claimed_length_is_not_allocated() {
        // Claims 4 GiB - 1 and sends 3 bytes.
        let (got, rest) = decode(1 << 20, &[&[0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]]);
        assert!(got.is_empty());
        let rest = rest.unwrap();
        assert_eq!(rest.bytes, vec![1, 2, 3]);
        assert!(!rest.complete);
        assert!(rest.bytes.capacity() < 1024);
    }

    #[test]
    fn compressed_flag_and_partial_prefix() {
        let (got, rest) = decode(100, &[&[1, 0, 0], &[0, 2, 9], &[8, 0, 0]]);
        assert_eq!(
            got,
            vec![RawMessage {
                compressed: true,
                bytes: vec![9, 8],
                complete: true
            }]
        );
        // Three bytes of a prefix: no message.
        assert_eq!(rest, None);
    }

    proptest! {
        /// However the wire is cut into chunks, the same messages come out.
        #[test]
        fn chunk_boundaries_do_not_matter(
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
            cuts in proptest::collection::vec(0usize..300, 0..10),
            limit in 0usize..50,
        ) {
            let refs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
            let wire = framed(&refs);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.sort();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(&wire[at..c]);
                at = c;
            }
            chunks.push(&wire[at..]);
            let (got, rest) = decode(limit, &chunks);
            prop_assert_eq!(rest, None);
            let want: Vec<RawMessage> = messages
                .iter()
                .map(|m| msg(&m[..m.len().min(limit)], m.len() <= limit))
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
