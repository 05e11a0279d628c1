//! `Content-Encoding: zstd` (RFC 8878, RFC 9659) for capture: a push decoder, written to chunk by
//! chunk like the flate2 and brotli decoders, over ruzstd's frame decoder.
//!
//! ruzstd (pure Rust) rather than the `zstd` crate: that one compiles libzstd from C, about eight
//! times the build time, for a decoder that here never sees more than the capture limit.
//!
//! ruzstd decodes whole blocks from a reader, so the bytes of an unfinished frame header or block
//! wait in `input` until complete: at most one block (128 KiB) plus its header. Decoded bytes reach
//! the sink once the frame ends or more than the frame's window has been decoded (ruzstd keeps the
//! window back for back-references); a refusing sink stops decoding, which bounds a bomb to about
//! the limit plus one window. The window itself is capped at 8 MiB, the most RFC 9659 lets an HTTP
//! sender use; a frame that asks for more is refused like any stream that does not decode.

use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};

use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// RFC 9659 §3: the largest window a `zstd` content coding may use.
const MAX_WINDOW: u64 = 8 << 20;
/// RFC 8878 §3.1.1.2.3: no block holds more than 128 KiB.
const MAX_BLOCK: usize = 128 << 10;
const FRAME_MAGIC: u32 = 0xFD2F_B528;

/// Decodes a zstd stream written to it into `W`.
pub(super) struct ZstdDecoder<W: Write> {
    sink: W,
    // Boxed: the frame decoder's state is a few KiB, and most bodies are not zstd.
    frame: Box<FrameDecoder>,
    /// Bytes of the unit being read (frame header, block, skipped frame) not yet complete.
    input: Vec<u8>,
    state: Stage,
    /// Frames fully decoded so far.
    frames: usize,
}

#[derive(Clone, Copy)]
enum Stage {
    /// Before a frame: its magic number comes next.
    Magic,
    /// Inside a frame, before a block header; `checksum`: the frame ends with a 4-byte checksum.
    Blocks { checksum: bool },
    /// Inside a skippable frame: this many bytes to skip.
    Skip(u64),
    /// Something after the last frame that is not a frame: the stream has ended.
    Ended,
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl<W: Write> ZstdDecoder<W> {
    pub(super) fn new(sink: W) -> Self {
        let mut frame = Box::new(FrameDecoder::new());
        frame.set_max_window_size(MAX_WINDOW);
        ZstdDecoder {
            sink,
            frame,
            input: Vec::new(),
            state: Stage::Magic,
            frames: 0,
        }
    }

    pub(super) fn get_mut(&mut self) -> &mut W {
        &mut self.sink
    }

    /// Checks that the stream ended on a frame boundary after at least one frame.
    pub(super) fn try_finish(&mut self) -> io::Result<()> {
        match self.state {
            Stage::Magic | Stage::Ended if self.frames > 0 => Ok(()),
            _ => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    /// Decodes every complete unit at the start of `buf`; returns how many bytes it used.
    fn consume(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let len = buf.len();
        while let Some(n) = self.step(buf)? {
            buf = &buf[n..];
        }
        Ok(len - buf.len())
    }

    /// Decodes the unit at the start of `buf`: `Some(bytes used)`, or `None` when it is not all there.
    fn step(&mut self, buf: &[u8]) -> io::Result<Option<usize>> {
        match self.state {
            Stage::Ended => Ok(None),
            Stage::Magic => {
                let Some(magic) = buf.first_chunk::<4>().map(|m| u32::from_le_bytes(*m)) else {
                    return Ok(None);
                };
                if magic == FRAME_MAGIC {
                    let Some(&descriptor) = buf.get(4) else {
                        return Ok(None);
                    };
                    let len = frame_header_len(descriptor);
                    let Some(mut header) = buf.get(..len) else {
                        return Ok(None);
                    };
                    let frame = &mut self.frame;
                    panic::catch_unwind(AssertUnwindSafe(|| frame.reset(&mut header)))
                        .map_err(|_| invalid("zstd frame header"))?
                        .map_err(|_| invalid("zstd frame header"))?;
                    self.state = Stage::Blocks {
                        checksum: descriptor & 0x04 != 0,
                    };
                    Ok(Some(len))
                } else if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
                    // A skippable frame (RFC 8878 §3.1.2): magic, 4-byte length, user data.
                    let Some(len) = buf.get(4..8) else {
                        return Ok(None);
                    };
                    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
                    self.state = Stage::Skip(u64::from(len));
                    Ok(Some(8))
                } else if self.frames > 0 {
                    // Like gzip: what follows the last frame is not the body's.
                    self.state = Stage::Ended;
                    Ok(None)
                } else {
                    Err(invalid("not a zstd frame"))
                }
            }
            Stage::Skip(left) => {
                let take = left.min(buf.len() as u64);
                if take == 0 && left > 0 {
                    return Ok(None);
                }
                self.state = match left - take {
                    0 => Stage::Magic,
                    rest => Stage::Skip(rest),
                };
                Ok(Some(take as usize))
            }
            Stage::Blocks { checksum } => {
                let Some(&[b0, b1, b2]) = buf.first_chunk::<3>() else {
                    return Ok(None);
                };
                let header = u32::from_le_bytes([b0, b1, b2, 0]);
                let last = header & 1 != 0;
                let size = (header >> 3) as usize;
                let content = match (header >> 1) & 3 {
                    // RLE: one byte, repeated `size` times.
                    1 => 1,
                    3 => return Err(invalid("reserved zstd block type")),
                    _ => size,
                };
                if size > MAX_BLOCK {
                    return Err(invalid("zstd block over 128 KiB"));
                }
                let need = 3 + content + if last && checksum { 4 } else { 0 };
                let Some(mut block) = buf.get(..need) else {
                    return Ok(None);
                };
                let (frame, sink) = (&mut self.frame, &mut self.sink);
                let finished = panic::catch_unwind(AssertUnwindSafe(|| {
                    frame.decode_blocks(&mut block, BlockDecodingStrategy::UptoBlocks(1))
                }))
                .map_err(|_| invalid("zstd block"))?
                .map_err(|_| invalid("zstd block"))?;
                // The sink's refusal (the limit) comes back as the error that stops decoding.
                panic::catch_unwind(AssertUnwindSafe(|| frame.collect_to_writer(&mut *sink)))
                    .map_err(|_| invalid("zstd block"))??;
                if finished {
                    self.frames += 1;
                    self.state = Stage::Magic;
                }
                Ok(Some(need))
            }
        }
    }
}

impl<W: Write> Write for ZstdDecoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if matches!(self.state, Stage::Ended) {
            return Ok(0);
        }
        if self.input.is_empty() {
            // The common case, whole units in the chunk: decoded straight from it, no copy.
            let used = self.consume(data)?;
            self.input.extend_from_slice(&data[used..]);
        } else {
            self.input.extend_from_slice(data);
            let input = std::mem::take(&mut self.input);
            let used = self.consume(&input);
            self.input = input;
            self.input.drain(..used?);
        }
        if matches!(self.state, Stage::Ended) {
            self.input = Vec::new();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// RFC 8878 §3.1.1.1: magic, descriptor, window descriptor unless single-segment, dictionary id,
/// content size.
fn frame_header_len(descriptor: u8) -> usize {
    let single_segment = descriptor & 0x20 != 0;
    let dictionary_id = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let content_size = match descriptor >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    4 + 1 + usize::from(!single_segment) + dictionary_id + content_size
}
