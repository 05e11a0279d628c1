//! Blocking filters on gRPC server calls: the request as the filters see it (the metadata, and
//! the first request message as the body), and a block as a trailers-only gRPC response.
//!
//! The body a filter sees is the first message, decompressed (`gzip`, `deflate`) and, when the
//! layer has the method's descriptors, in proto3's canonical JSON mapping, as the span records it
//! (but unredacted); otherwise the message's bytes. At most `body_max_processing_size_bytes` of
//! the message are read before the handler runs.
//!
//! A block's HTTP status becomes the `grpc-status`, as the Go agent maps it: 401 and 407 →
//! UNAUTHENTICATED, 403 → PERMISSION_DENIED, 404 → NOT_FOUND, 408 → DEADLINE_EXCEEDED, 412 →
//! FAILED_PRECONDITION, 413, 414, 429 and 431 → RESOURCE_EXHAUSTED; beyond Go's table, 400 →
//! INVALID_ARGUMENT, 501 → UNIMPLEMENTED, 503 → UNAVAILABLE and 504 → DEADLINE_EXCEEDED, the
//! codes gRPC's own HTTP mapping pairs with them; anything else → UNKNOWN. The block's body, as
//! text, is the `grpc-message` (else the status's reason, `Forbidden`).

use std::io::Read as _;
use std::net::SocketAddr;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use prost_reflect::MessageDescriptor;

use super::body::Held;
use super::run::Blocked;
use super::{FilterRequest, Protocol};
use crate::grpc::message::Encoding;

/// The gRPC status code for a block's HTTP status.
pub(crate) fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 => 3,                   // INVALID_ARGUMENT
        401 | 407 => 16,            // UNAUTHENTICATED
        403 => 7,                   // PERMISSION_DENIED
        404 => 5,                   // NOT_FOUND
        408 | 504 => 4,             // DEADLINE_EXCEEDED
        412 => 9,                   // FAILED_PRECONDITION
        413 | 414 | 429 | 431 => 8, // RESOURCE_EXHAUSTED
        501 => 12,                  // UNIMPLEMENTED
        503 => 14,                  // UNAVAILABLE
        _ => 2,                     // UNKNOWN
    }
}

/// The request as the filters see it; the peer from tonic's `TcpConnectInfo` or axum's
/// `ConnectInfo`.
pub(crate) fn view<'a>(
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    ext: &'a http::Extensions,
) -> FilterRequest<'a> {
    let peer = ext
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(|c| c.remote_addr())
        .or_else(|| {
            ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        });
    FilterRequest::new(Protocol::Grpc, method, uri, headers).with_peer(peer)
}

/// The request's view, from the request.
pub(crate) fn view_of<B>(req: &Request<B>) -> FilterRequest<'_> {
    view(req.method(), req.uri(), req.headers(), req.extensions())
}

/// The first message's frame (5-byte prefix and message) has been read in full.
pub(crate) fn first_message_read<E>(held: &Held<E>) -> bool {
    let mut head = [0u8; 5];
    if held.copy_start(&mut head) < 5 {
        return false;
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    held.bytes() >= 5 + len
}

/// The first message as a filter sees it, and whether it is cut (or its end was not read).
pub(crate) fn first_message<E>(
    held: &Held<E>,
    limit: usize,
    encoding: Encoding,
    descriptor: Option<&MessageDescriptor>,
) -> (Vec<u8>, bool) {
    let (framed, _) = held.prefix(limit.saturating_add(5));
    if framed.len() < 5 {
        return (Vec::new(), !framed.is_empty());
    }
    let compressed = framed[0] & 1 == 1;
    let len = u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize;
    let raw = &framed[5..framed.len().min(5 + len)];
    let mut truncated = raw.len() < len;
    let bytes = if compressed {
        let mut out = Vec::new();
        let take = limit as u64 + 1;
        let ok = match encoding {
            Encoding::Gzip => flate2::read::GzDecoder::new(raw)
                .take(take)
                .read_to_end(&mut out)
                .is_ok(),
            Encoding::Deflate => flate2::read::ZlibDecoder::new(raw)
                .take(take)
                .read_to_end(&mut out)
                .is_ok(),
            // Not decodable here: the filter gets the bytes as they came.
            Encoding::Identity | Encoding::Other => {
                out = raw.to_vec();
                true
            }
        };
        if out.len() > limit {
            out.truncate(limit);
            truncated = true;
        }
        truncated |= !ok;
        out
    } else {
        raw.to_vec()
    };
    match descriptor {
        Some(d) => {
            let mut json = Vec::new();
            // A cut message keeps the fields before the cut.
            truncated |= !crate::grpc::deferred::write_json(d, &bytes, &mut json);
            (json, truncated)
        }
        None => (bytes, truncated),
    }
}

/// `grpc-message` is percent-encoded: every byte outside printable ASCII, and `%`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The trailers-only response of a blocked call: `grpc-status` mapped from the block's status,
/// `grpc-message` from its body, and its headers.
pub(crate) fn response<B: Default>(blocked: Blocked) -> Response<B> {
    let block = blocked.block;
    let message = match block.body() {
        Some(b) if !b.is_empty() => String::from_utf8_lossy(b).into_owned(),
        _ => block
            .status()
            .canonical_reason()
            .unwrap_or("blocked")
            .to_owned(),
    };
    let mut resp = Response::new(B::default());
    let headers = resp.headers_mut();
    for (name, value) in block.headers() {
        headers.append(name, value.clone());
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(grpc_code(block.status())));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(&message)) {
        headers.insert("grpc-message", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Block;

    #[test]
    fn statuses_map_as_the_go_agent_does() {
        for (http, grpc) in [
            (403, 7),
            (401, 16),
            (429, 8),
            (404, 5),
            (408, 4),
            (412, 9),
            (431, 8),
            (400, 3),
            (503, 14),
            (418, 2),
        ] {
            assert_eq!(
                grpc_code(StatusCode::from_u16(http).unwrap()),
                grpc,
                "{http}"
            );
        }
    }

    /// Reads `wire` (split into `chunk`-byte frames) as the layer does, with this limit.
    fn first(wire: &[u8], chunk: usize, limit: usize, encoding: Encoding) -> (Vec<u8>, bool) {
        struct Chunks(std::collections::VecDeque<bytes::Bytes>);
        impl http_body::Body for Chunks {
            type Data = bytes::Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>>
            {
                std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
            }
        }
        let mut body = Chunks(
            wire.chunks(chunk)
                .map(bytes::Bytes::copy_from_slice)
                .collect(),
        );
        let held = futures_executor::block_on(crate::filter::body::read_prefix(
            &mut body,
            limit + 5,
            first_message_read::<std::convert::Infallible>,
        ));
        first_message(&held, limit, encoding, None)
    }

    fn framed(compressed: bool, declared: u32, message: &[u8]) -> Vec<u8> {
        let mut v = vec![u8::from(compressed)];
        v.extend_from_slice(&declared.to_be_bytes());
        v.extend_from_slice(message);
        v
    }

    #[test]
    fn the_first_message_whatever_the_frames_and_bad_input_gives_no_panic() {
        // Split anywhere, the prefix too; the second message is not the filter's.
        let mut wire = framed(false, 5, b"hello");
        wire.extend(framed(false, 3, b"bye"));
        assert_eq!(
            first(&wire, 2, 100, Encoding::Identity),
            (b"hello".to_vec(), false)
        );
        // A frame that claims 4 GiB: what arrived, up to the limit, cut.
        let huge = framed(false, u32::MAX, &[7; 50]);
        assert_eq!(
            first(&huge, 16, 20, Encoding::Identity),
            (vec![7; 20], true)
        );
        // Fewer than 5 bytes, then the end.
        assert_eq!(
            first(&[0, 0], 1, 100, Encoding::Identity),
            (Vec::new(), true)
        );
        assert_eq!(first(&[], 1, 100, Encoding::Identity), (Vec::new(), false));
        // gzip is decoded (at most the limit of its output); garbage marked gzip is cut.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &[b'a'; 1000]).unwrap();
        let gz = gz.finish().unwrap();
        let wire = framed(true, gz.len() as u32, &gz);
        assert_eq!(
            first(&wire, 7, 100, Encoding::Gzip),
            (vec![b'a'; 100], true)
        );
        assert_eq!(
            first(&wire, 7, 5000, Encoding::Gzip),
            (vec![b'a'; 1000], false)
        );
        let bad = framed(true, 4, b"\x1f\x8b\x00\x00");
        assert!(first(&bad, 3, 100, Encoding::Gzip).1);
    }

    #[test]
    fn a_block_is_a_trailers_only_response() {
        let blocked = Blocked {
            filter: "f".into(),
            block: Block::new()
                .with_status(StatusCode::TOO_MANY_REQUESTS)
                .with_body("slow down: 100%"),
        };
        let resp: Response<String> = response(blocked);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["grpc-status"], "8");
        assert_eq!(resp.headers()["grpc-message"], "slow down: 100%25");
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let plain: Response<String> = response(Blocked {
            filter: "f".into(),
            block: Block::new(),
        });
        assert_eq!(plain.headers()["grpc-message"], "Forbidden");
        assert_eq!(plain.headers()["grpc-status"], "7");
    }
}
