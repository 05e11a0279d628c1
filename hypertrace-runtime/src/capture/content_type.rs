//! Which bodies are captured, and how they are encoded on the wire.

use http::header::CONTENT_ENCODING;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::redact::Syntax;

/// How a captured body is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureKind {
    /// `<key>` as text when the bytes are UTF-8, else `<key>.base64`.
    Text,
    /// Like `Text`, with the values of sensitive keys redacted (`*json*` content types).
    Json,
    /// Like `Text`, with the values of sensitive keys redacted (`x-www-form-urlencoded`).
    Form,
    /// Always `<key>.base64` (`multipart/form-data`: text parts mixed with files).
    Base64,
}

/// A body's `Content-Encoding`, as far as capture can decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No encoding.
    Identity,
    /// `gzip` (or `x-gzip`).
    Gzip,
    /// zlib-wrapped per RFC 9110, though some servers send raw deflate; the decoder accepts both.
    Deflate,
    /// `br`.
    Brotli,
    /// RFC 8878 frames, windows up to 8 MiB (RFC 9659).
    Zstd,
    /// Anything else, or several stacked encodings: captured as raw bytes in base64.
    Unknown,
}

/// Whether a body with this `Content-Type` is captured, and how.
///
/// `allowed` holds lower-case substrings (`data_capture.allowed_content_types`); one must occur in
/// the content type, ignoring ASCII case. No content type: `None`.
pub fn capture_kind(content_type: Option<&HeaderValue>, allowed: &[String]) -> Option<CaptureKind> {
    let ct = content_type?.as_bytes();
    if !allowed
        .iter()
        .any(|a| contains_ignore_ascii_case(ct, a.as_bytes()))
    {
        return None;
    }
    Some(kind_of(ct))
}

fn kind_of(ct: &[u8]) -> CaptureKind {
    if contains_ignore_ascii_case(ct, b"multipart/form-data") {
        CaptureKind::Base64
    } else if contains_ignore_ascii_case(ct, b"json") {
        CaptureKind::Json
    } else if contains_ignore_ascii_case(ct, b"x-www-form-urlencoded") {
        CaptureKind::Form
    } else {
        CaptureKind::Text
    }
}

/// [`capture_kind`] for a response: also a `text/plain` body of a 4xx/5xx response when
/// `error_text_bodies` (`rustagent.capture_error_text_bodies`), whatever `allowed` says. That is
/// where frameworks put the reason of a rejection (axum's 400/415/422 say which field or header
/// was wrong), the one part of a failed exchange that says why.
pub fn response_capture_kind(
    content_type: Option<&HeaderValue>,
    status: StatusCode,
    allowed: &[String],
    error_text_bodies: bool,
) -> Option<CaptureKind> {
    capture_kind(content_type, allowed).or_else(|| {
        let ct = content_type?.as_bytes();
        (error_text_bodies
            && (status.is_client_error() || status.is_server_error())
            && contains_ignore_ascii_case(ct, b"text/plain"))
        .then_some(CaptureKind::Text)
    })
}

impl CaptureKind {
    /// The syntax whose sensitive keys are redacted, if any.
    pub fn redact_syntax(self) -> Option<Syntax> {
        match self {
            CaptureKind::Json => Some(Syntax::Json),
            CaptureKind::Form => Some(Syntax::Form),
            CaptureKind::Text | CaptureKind::Base64 => None,
        }
    }
}

/// The body's encoding from its `Content-Encoding` header(s).
pub fn content_encoding(headers: &HeaderMap) -> ContentEncoding {
    let mut found = ContentEncoding::Identity;
    // Several codings may be listed in one value or across repeated headers; either way they stack.
    for value in headers.get_all(CONTENT_ENCODING) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            let coding = if token.is_empty() || token.eq_ignore_ascii_case(b"identity") {
                continue;
            } else if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
                ContentEncoding::Gzip
            } else if token.eq_ignore_ascii_case(b"deflate") {
                ContentEncoding::Deflate
            } else if token.eq_ignore_ascii_case(b"br") {
                ContentEncoding::Brotli
            } else if token.eq_ignore_ascii_case(b"zstd") {
                ContentEncoding::Zstd
            } else {
                return ContentEncoding::Unknown;
            };
            if found != ContentEncoding::Identity {
                return ContentEncoding::Unknown;
            }
            found = coding;
        }
    }
    found
}

/// An empty needle matches nothing: a blank config entry must not switch on capture of every body.
///
/// Runs for every request and response against each allowed type, so a window is only compared
/// where its first byte can start the needle (one or two byte comparisons per position), not at
/// every position.
fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return false;
    };
    let Some(last_start) = haystack.len().checked_sub(needle.len()) else {
        return false;
    };
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    haystack[..=last_start].iter().enumerate().any(|(i, &b)| {
        (b == lower || b == upper) && haystack[i..i + needle.len()].eq_ignore_ascii_case(needle)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_ALLOWED_CONTENT_TYPES;
    use proptest::prelude::*;

    proptest! {
        /// The first-byte filter finds what comparing every window finds.
        #[test]
        fn contains_agrees_with_every_window(
            hay in proptest::collection::vec(prop::sample::select(b"aAjJsSoOnN/+-; =x".to_vec()), 0..40),
            needle in proptest::collection::vec(prop::sample::select(b"aAjJsSoOnN/+-".to_vec()), 0..6),
        ) {
            let every_window = !needle.is_empty()
                && hay.len() >= needle.len()
                && hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(&needle));
            prop_assert_eq!(contains_ignore_ascii_case(&hay, &needle), every_window);
        }
    }

    fn defaults() -> Vec<String> {
        DEFAULT_ALLOWED_CONTENT_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn kind(ct: &str, allowed: &[String]) -> Option<CaptureKind> {
        capture_kind(Some(&HeaderValue::from_str(ct).unwrap()), allowed)
    }

    #[test]
    fn json_is_captured_as_text_with_redaction() {
        assert_eq!(
            kind("application/json", &defaults()),
            Some(CaptureKind::Json)
        );
    }

    #[test]
    fn parameters_do_not_matter() {
        assert_eq!(
            kind("application/json; charset=utf-8", &defaults()),
            Some(CaptureKind::Json)
        );
    }

    #[test]
    fn match_ignores_case() {
        assert_eq!(
            kind("Application/JSON", &defaults()),
            Some(CaptureKind::Json)
        );
        assert_eq!(
            kind("APPLICATION/X-WWW-FORM-URLENCODED", &defaults()),
            Some(CaptureKind::Form)
        );
    }

    #[test]
    fn vendor_suffix_is_captured() {
        assert_eq!(
            kind("application/vnd.api+json", &defaults()),
            Some(CaptureKind::Json)
        );
        assert_eq!(
            kind("application/soap+xml", &defaults()),
            Some(CaptureKind::Text)
        );
        assert_eq!(
            kind("application/graphql", &defaults()),
            Some(CaptureKind::Text)
        );
    }

    #[test]
    fn text_plain_is_not_in_default_list() {
        assert_eq!(kind("text/plain", &defaults()), None);
        assert_eq!(kind("application/octet-stream", &defaults()), None);
        assert_eq!(kind("multipart/form-data; boundary=x", &defaults()), None);
    }

    #[test]
    fn no_content_type_no_capture() {
        assert_eq!(capture_kind(None, &defaults()), None);
    }

    #[test]
    fn multipart_is_base64_when_allowed() {
        let allowed = vec!["multipart/form-data".to_string()];
        assert_eq!(
            kind("multipart/form-data; boundary=abc", &allowed),
            Some(CaptureKind::Base64)
        );
        assert_eq!(
            kind(
                "Multipart/Form-Data; boundary=abc",
                &["form-data".to_string()]
            ),
            Some(CaptureKind::Base64)
        );
    }

    #[test]
    fn custom_list_replaces_default() {
        let allowed = vec!["text/plain".to_string()];
        assert_eq!(
            kind("text/plain; charset=utf-8", &allowed),
            Some(CaptureKind::Text)
        );
        assert_eq!(kind("application/json", &allowed), None);
        assert_eq!(kind("application/json", &[]), None);
    }

    #[test]
    fn blank_entry_and_short_content_type_match_nothing() {
        assert_eq!(kind("application/json", &[String::new()]), None);
        assert_eq!(kind("x", &defaults()), None);
        assert_eq!(kind("", &defaults()), None);
    }

    #[test]
    fn non_utf8_content_type_still_matched_bytewise() {
        let ct = HeaderValue::from_bytes(b"application/json; x=\xff").unwrap();
        assert_eq!(
            capture_kind(Some(&ct), &defaults()),
            Some(CaptureKind::Json)
        );
    }

    #[test]
    fn redaction_follows_the_syntax() {
        assert_eq!(CaptureKind::Json.redact_syntax(), Some(Syntax::Json));
        assert_eq!(CaptureKind::Form.redact_syntax(), Some(Syntax::Form));
        assert_eq!(CaptureKind::Text.redact_syntax(), None);
        assert_eq!(CaptureKind::Base64.redact_syntax(), None);
        assert_eq!(
            kind("application/problem+json", &defaults()),
            Some(CaptureKind::Json)
        );
        assert_eq!(
            kind(
                "application/x-www-form-urlencoded; charset=utf-8",
                &defaults()
            ),
            Some(CaptureKind::Form)
        );
        assert_eq!(
            kind("application/xml", &defaults()),
            Some(CaptureKind::Text)
        );
    }

    fn response_kind(ct: Option<&str>, status: u16, error_text: bool) -> Option<CaptureKind> {
        let ct = ct.map(|c| HeaderValue::from_str(c).unwrap());
        response_capture_kind(
            ct.as_ref(),
            StatusCode::from_u16(status).unwrap(),
            &defaults(),
            error_text,
        )
    }

    #[test]
    fn text_plain_error_responses_are_captured_when_switched_on() {
        let plain = Some("text/plain; charset=utf-8");
        for status in [400, 404, 415, 422, 499, 500, 503, 599] {
            assert_eq!(
                response_kind(plain, status, true),
                Some(CaptureKind::Text),
                "{status}"
            );
            assert_eq!(response_kind(plain, status, false), None, "{status}");
        }
        for status in [100, 200, 204, 301, 304, 399] {
            assert_eq!(response_kind(plain, status, true), None, "{status}");
        }
        assert_eq!(
            response_kind(Some("Text/Plain"), 422, true),
            Some(CaptureKind::Text)
        );
        // Other types follow the allowed list, error or not.
        assert_eq!(response_kind(Some("text/html"), 500, true), None);
        assert_eq!(response_kind(None, 500, true), None);
        assert_eq!(
            response_kind(Some("application/json"), 200, false),
            Some(CaptureKind::Json)
        );
        assert_eq!(
            response_kind(Some("application/json"), 422, true),
            Some(CaptureKind::Json)
        );
    }

    fn enc(values: &[&str]) -> ContentEncoding {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CONTENT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        content_encoding(&h)
    }

    #[test]
    fn known_encodings() {
        assert_eq!(enc(&[]), ContentEncoding::Identity);
        assert_eq!(enc(&["identity"]), ContentEncoding::Identity);
        assert_eq!(enc(&["gzip"]), ContentEncoding::Gzip);
        assert_eq!(enc(&["x-gzip"]), ContentEncoding::Gzip);
        assert_eq!(enc(&["GZIP"]), ContentEncoding::Gzip);
        assert_eq!(enc(&["deflate"]), ContentEncoding::Deflate);
        assert_eq!(enc(&["br"]), ContentEncoding::Brotli);
        assert_eq!(enc(&[" br "]), ContentEncoding::Brotli);
        assert_eq!(enc(&["identity, gzip"]), ContentEncoding::Gzip);
        assert_eq!(enc(&["zstd"]), ContentEncoding::Zstd);
        assert_eq!(enc(&["ZStd"]), ContentEncoding::Zstd);
    }

    #[test]
    fn unknown_or_stacked_encodings() {
        assert_eq!(enc(&["zstd, gzip"]), ContentEncoding::Unknown);
        assert_eq!(enc(&["compress"]), ContentEncoding::Unknown);
        assert_eq!(enc(&["gzip, br"]), ContentEncoding::Unknown);
        assert_eq!(enc(&["gzip", "gzip"]), ContentEncoding::Unknown);
        assert_eq!(enc(&["deflate", "zstd"]), ContentEncoding::Unknown);
    }
}
