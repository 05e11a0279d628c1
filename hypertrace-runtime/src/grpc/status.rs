//! gRPC status: where it is read from, and which codes make a span an error.

use http::{HeaderMap, HeaderName, StatusCode};

pub(crate) static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub(crate) static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// A call's outcome as the span records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GrpcStatus {
    pub code: i32,
    /// `grpc-message`, percent-decoded.
    pub message: String,
}

/// OK.
pub(crate) const OK: i32 = 0;
/// The call was abandoned: the response was dropped before its end (no status arrived).
pub(crate) const CANCELLED: i32 = 1;
/// What the body's failure is recorded as.
pub(crate) const UNKNOWN: i32 = 2;
/// The call outlived its `grpc-timeout`.
pub(crate) const DEADLINE_EXCEEDED: i32 = 4;

/// `grpc-timeout` (`1-8 digits` and a unit: `H`, `M`, `S`, `m`, `u`, `n`) as a duration.
pub(crate) fn parse_timeout(v: &[u8]) -> Option<std::time::Duration> {
    use std::time::Duration;
    let (unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

impl GrpcStatus {
    /// The status in `headers` (`grpc-status`, `grpc-message`), if they carry one.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<GrpcStatus> {
        let code = headers.get(&GRPC_STATUS)?;
        // An unparsable code is UNKNOWN, as gRPC clients read it.
        let code = std::str::from_utf8(code.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .unwrap_or(UNKNOWN);
        let message = headers
            .get(&GRPC_MESSAGE)
            .map(|m| percent_decode(m.as_bytes()))
            .unwrap_or_default();
        Some(GrpcStatus { code, message })
    }

    /// The status a client derives from a response without `grpc-status` (the gRPC HTTP-to-gRPC
    /// status mapping), e.g. a proxy's 503.
    pub(crate) fn from_http(status: StatusCode) -> GrpcStatus {
        let code = match status.as_u16() {
            400 => 13,                   // INTERNAL
            401 => 16,                   // UNAUTHENTICATED
            403 => 7,                    // PERMISSION_DENIED
            404 => 12,                   // UNIMPLEMENTED
            429 | 502 | 503 | 504 => 14, // UNAVAILABLE
            _ => UNKNOWN,
        };
        GrpcStatus {
            code,
            message: format!("HTTP status {status}"),
        }
    }

    pub(crate) fn new(code: i32, message: impl Into<String>) -> GrpcStatus {
        GrpcStatus {
            code,
            message: message.into(),
        }
    }
}

/// Server side: the codes that mean the server failed (OpenTelemetry's gRPC conventions); the
/// others (NOT_FOUND, INVALID_ARGUMENT, ...) are the client's doing.
pub(crate) fn server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// Client side: anything but OK.
pub(crate) fn client_error(code: i32) -> bool {
    code != OK
}

/// The code's name, as the stable conventions record it (`rpc.response.status_code`).
pub(crate) fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "_OTHER",
    }
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2); a bad escape is kept as it is.
fn percent_decode(v: &[u8]) -> String {
    if !v.contains(&b'%') {
        return String::from_utf8_lossy(v).into_owned();
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' && i + 2 < v.len() {
            if let (Some(h), Some(l)) = (hex(v[i + 1]), hex(v[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn status_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(GrpcStatus::from_headers(&h), None);
        h.insert(&GRPC_STATUS, HeaderValue::from_static("13"));
        h.insert(
            &GRPC_MESSAGE,
            HeaderValue::from_static("disk%20full%3A%20%E2%9C%93 100%"),
        );
        assert_eq!(
            GrpcStatus::from_headers(&h),
            Some(GrpcStatus::new(13, "disk full: \u{2713} 100%"))
        );
        h.insert(&GRPC_STATUS, HeaderValue::from_static("nope"));
        assert_eq!(GrpcStatus::from_headers(&h).unwrap().code, UNKNOWN);
    }

    #[test]
    fn error_rules() {
        let server: Vec<i32> = (0..17).filter(|c| server_error(*c)).collect();
        assert_eq!(server, vec![2, 4, 12, 13, 14, 15]);
        assert!((1..17).all(client_error) && !client_error(OK));
        assert_eq!(code_name(4), "DEADLINE_EXCEEDED");
        assert_eq!(code_name(99), "_OTHER");
        assert_eq!(GrpcStatus::from_http(StatusCode::NOT_FOUND).code, 12);
    }

    #[test]
    fn timeouts() {
        use std::time::Duration;
        assert_eq!(parse_timeout(b"50m"), Some(Duration::from_millis(50)));
        assert_eq!(parse_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        for bad in [&b""[..], b"m", b"123456789m", b"5x", b"-1S"] {
            assert_eq!(parse_timeout(bad), None);
        }
    }
}
