//! Which bodies are captured, and how they are encoded on the wire (CONTRACT §3.5).

use http::header::CONTENT_ENCODING;
use http::{HeaderMap, HeaderValue};

/// How a captured body is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureKind {
    /// `<key>` as text when the bytes are UTF-8, else `<key>.base64`.
    Text,
    /// Always `<key>.base64` (`multipart/form-data`: text parts mixed with files).
    Base64,
}

/// A body's `Content-Encoding`, as far as capture can decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    Identity,
    Gzip,
    /// zlib-wrapped per RFC 9110, though some servers send raw deflate; the decoder accepts both.
    Deflate,
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
    if contains_ignore_ascii_case(ct, b"multipart/form-data") {
        Some(CaptureKind::Base64)
    } else {
        Some(CaptureKind::Text)
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
fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack.len() >= needle.len()
        && haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_ALLOWED_CONTENT_TYPES;

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
    fn json_is_captured_as_text() {
        assert_eq!(
            kind("application/json", &defaults()),
            Some(CaptureKind::Text)
        );
    }

    #[test]
    fn parameters_do_not_matter() {
        assert_eq!(
            kind("application/json; charset=utf-8", &defaults()),
            Some(CaptureKind::Text)
        );
    }

    #[test]
    fn match_ignores_case() {
        assert_eq!(
            kind("Application/JSON", &defaults()),
            Some(CaptureKind::Text)
        );
        assert_eq!(
            kind("APPLICATION/X-WWW-FORM-URLENCODED", &defaults()),
            Some(CaptureKind::Text)
        );
    }

    #[test]
    fn vendor_suffix_is_captured() {
        assert_eq!(
            kind("application/vnd.api+json", &defaults()),
            Some(CaptureKind::Text)
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
            Some(CaptureKind::Text)
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
