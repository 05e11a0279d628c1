//! Header capture.

use std::borrow::Cow;
use std::fmt::Write as _;

use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderValue};
use opentelemetry::KeyValue;

use super::packed::Packer;
use super::policy::HeaderScope;
use super::AttributeSink;

/// What a redacted header's value is recorded as.
pub const REDACTED: &str = "[REDACTED]";

/// Records `headers` as the configuration says: `rustagent.redact_headers` redacted, values longer
/// than `rustagent.max_header_value_bytes` cut. Every entry point records its headers here.
pub fn record_headers_configured(
    prefix: &str,
    headers: &HeaderMap,
    cfg: &crate::config::Config,
    out: &mut impl AttributeSink,
) {
    record_headers_limited(
        prefix,
        headers,
        &cfg.rustagent.redact_headers,
        cfg.rustagent.max_header_value_bytes,
        out,
    );
}

/// [`record_headers_configured`] for the headers `scope` keeps: all of them, or (a caller's
/// `cap:0`) only `content-type` and `user-agent`, with the same redaction, limit and `[i]` keys.
pub fn record_headers_scoped(
    prefix: &str,
    headers: &HeaderMap,
    cfg: &crate::config::Config,
    scope: HeaderScope,
    out: &mut impl AttributeSink,
) {
    match scope {
        HeaderScope::All => record_headers_configured(prefix, headers, cfg, out),
        HeaderScope::Minimal => {
            // Rare (only under `cap:0`), so a small copy of the two headers is fine: it keeps one
            // recording path for both scopes.
            let mut kept = HeaderMap::new();
            for name in [CONTENT_TYPE, USER_AGENT] {
                for v in headers.get_all(&name) {
                    kept.append(name.clone(), v.clone());
                }
            }
            record_headers_configured(prefix, &kept, cfg, out);
        }
    }
}

/// Records one attribute per header value: `<prefix><name>` for a header sent once,
/// `<prefix><name>[i]` for each value of a header sent several times. They are appended to `out`
/// packed into one attribute ([`super::packed`]; [`super::packed::unpacked`] gives them back
/// one by one), which every exporter of the agent sends as the separate attributes.
///
/// `prefix` is `"http.request.header."` or `"http.response.header."`. Names in `redact` (lower-case)
/// are recorded as [`REDACTED`]; values that are not UTF-8 are recorded lossily.
pub fn record_headers(
    prefix: &str,
    headers: &HeaderMap,
    redact: &[String],
    out: &mut impl AttributeSink,
) {
    record_headers_limited(
        prefix,
        headers,
        redact,
        crate::config::DEFAULT_MAX_HEADER_VALUE_BYTES,
        out,
    )
}

/// [`record_headers`], with values longer than `max_value_bytes` (`rustagent.max_header_value_bytes`)
/// cut on a UTF-8 boundary and marked by `<key>.truncated = true`, as bodies are: a 100 KiB header
/// (hyper accepts ~400 KiB of them) would otherwise be copied whole into every span.
///
/// The values are appended as one packed attribute ([`super::packed`]): one allocation for all of
/// them, however many there are. The `.truncated` marks (rare) follow it as attributes of their
/// own, where they came when each header was an attribute.
pub fn record_headers_limited(
    prefix: &str,
    headers: &HeaderMap,
    redact: &[String],
    max_value_bytes: usize,
    out: &mut impl AttributeSink,
) {
    if headers.is_empty() {
        return;
    }
    // `eq_ignore_ascii_case` so a hand-built list with capitals still redacts.
    let redacted = |name: &str| redact.iter().any(|r| r.eq_ignore_ascii_case(name));
    let mut packer = Packer::new(prefix, headers.len() * 32);
    let mut marks = Vec::new();
    let mut put = |name: &str, suffix: &str, redacted: bool, v: &HeaderValue| {
        if redacted {
            return packer.push(name, suffix, REDACTED);
        }
        let text = value_text(v);
        if text.len() <= max_value_bytes {
            return packer.push(name, suffix, &text);
        }
        let mut cut = max_value_bytes;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        packer.push(name, suffix, &text[..cut]);
        marks.push(KeyValue::new(
            format!("{prefix}{name}{suffix}.truncated"),
            true,
        ));
    };

    // Per request, on the hot path: when no header is sent twice (the usual case), one pass over
    // the map, without looking each name up again. (`len()` counts values, `keys_len()` names.)
    if headers.keys_len() == headers.len() {
        for (name, v) in headers {
            let name = name.as_str();
            put(name, "", redacted(name), v);
        }
    } else {
        let mut index = String::new();
        for name in headers.keys() {
            let name = name.as_str();
            let redacted = redacted(name);
            let mut values = headers.get_all(name).iter();
            let Some(first) = values.next() else { continue };
            match values.next() {
                None => put(name, "", redacted, first),
                Some(second) => {
                    for (i, v) in [first, second].into_iter().chain(values).enumerate() {
                        index.clear();
                        let _ = write!(index, "[{i}]");
                        put(name, &index, redacted, v);
                    }
                }
            }
        }
    }
    packer.finish_into(out);
    out.extend(marks);
}

/// The value as text: as is when UTF-8 (checked the fast way), lossily otherwise.
fn value_text(v: &HeaderValue) -> Cow<'_, str> {
    match std::str::from_utf8(v.as_bytes()) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(v.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::packed::unpacked;
    use crate::config::DEFAULT_REDACT_HEADERS;
    use http::header::{HeaderName, AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};
    use opentelemetry::Value;

    const REQ: &str = "http.request.header.";

    fn default_redact() -> Vec<String> {
        DEFAULT_REDACT_HEADERS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn record(headers: &HeaderMap, redact: &[String]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        record_headers(REQ, headers, redact, &mut out);
        let mut pairs: Vec<_> = unpacked(&out)
            .iter()
            .cloned()
            .map(|kv| match kv.value {
                Value::String(s) => (kv.key.to_string(), s.to_string()),
                other => panic!("{} is not a string: {other:?}", kv.key),
            })
            .collect();
        pairs.sort();
        pairs
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn keys_are_prefixed_lower_case_names() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // HeaderName parsing lower-cases, so "X-Request-ID" on the wire is "x-request-id" here.
        h.insert(
            HeaderName::from_bytes(b"X-Request-ID").unwrap(),
            HeaderValue::from_static("abc"),
        );
        assert_eq!(
            record(&h, &[]),
            vec![
                pair("http.request.header.content-type", "application/json"),
                pair("http.request.header.x-request-id", "abc")
            ]
        );

        let mut out = Vec::new();
        record_headers("http.response.header.", &h, &[], &mut out);
        let out = unpacked(&out).into_owned();
        assert!(out
            .iter()
            .any(|kv| kv.key.as_str() == "http.response.header.x-request-id"));
    }

    #[test]
    fn repeated_header_gets_one_indexed_key_per_value() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.3"));
        h.append("accept", HeaderValue::from_static("*/*"));
        assert_eq!(
            record(&h, &[]),
            vec![
                pair("http.request.header.accept", "*/*"),
                pair("http.request.header.x-forwarded-for[0]", "10.0.0.1"),
                pair("http.request.header.x-forwarded-for[1]", "10.0.0.2"),
                pair("http.request.header.x-forwarded-for[2]", "10.0.0.3"),
            ]
        );
    }

    #[test]
    fn non_utf8_value_is_recorded_lossily() {
        let mut h = HeaderMap::new();
        h.insert("x-bin", HeaderValue::from_bytes(b"caf\xe9 ok").unwrap());
        assert_eq!(
            record(&h, &[]),
            vec![pair("http.request.header.x-bin", "caf\u{fffd} ok")]
        );
    }

    #[test]
    fn default_list_redacts_credentials() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        h.insert(
            "proxy-authorization",
            HeaderValue::from_static("Basic c2VjcmV0"),
        );
        h.insert(COOKIE, HeaderValue::from_static("session=secret"));
        h.append(SET_COOKIE, HeaderValue::from_static("a=1"));
        h.append(SET_COOKIE, HeaderValue::from_static("b=2"));
        h.insert("x-api-key", HeaderValue::from_static("secret"));
        h.insert("x-other", HeaderValue::from_static("visible"));
        assert_eq!(
            record(&h, &default_redact()),
            vec![
                pair("http.request.header.authorization", REDACTED),
                pair("http.request.header.cookie", REDACTED),
                pair("http.request.header.proxy-authorization", REDACTED),
                pair("http.request.header.set-cookie[0]", REDACTED),
                pair("http.request.header.set-cookie[1]", REDACTED),
                pair("http.request.header.x-api-key", REDACTED),
                pair("http.request.header.x-other", "visible"),
            ]
        );
    }

    #[test]
    fn empty_list_records_everything() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        h.insert(COOKIE, HeaderValue::from_static("session=secret"));
        assert_eq!(
            record(&h, &[]),
            vec![
                pair("http.request.header.authorization", "Bearer secret"),
                pair("http.request.header.cookie", "session=secret")
            ]
        );
    }

    #[test]
    fn custom_list_replaces_default() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        h.insert("x-tenant", HeaderValue::from_static("acme"));
        assert_eq!(
            record(&h, &["x-tenant".to_string()]),
            vec![
                pair("http.request.header.authorization", "Bearer secret"),
                pair("http.request.header.x-tenant", REDACTED)
            ]
        );
    }

    #[test]
    fn appends_after_existing_attributes() {
        let mut h = HeaderMap::new();
        h.insert("a", HeaderValue::from_static("1"));
        let mut out = vec![KeyValue::new("http.method", "GET")];
        record_headers(REQ, &h, &[], &mut out);
        assert_eq!(unpacked(&out).len(), 2);
        assert_eq!(out[0].key.as_str(), "http.method");

        // No headers: nothing appended, not even an empty packed attribute.
        record_headers(REQ, &HeaderMap::new(), &[], &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary_and_marked() {
        let mut h = HeaderMap::new();
        // 10 bytes of "é" (2 bytes each): a limit of 5 keeps 4 bytes, two whole characters.
        h.insert("x-long", HeaderValue::from_str(&"é".repeat(5)).unwrap());
        h.insert("x-short", HeaderValue::from_static("abcde"));
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&"t".repeat(50)).unwrap(),
        );
        let mut out = Vec::new();
        record_headers_limited(REQ, &h, &default_redact(), 5, &mut out);
        let out = unpacked(&out).into_owned();
        let get = |k: &str| {
            out.iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(get("http.request.header.x-long").as_deref(), Some("éé"));
        assert_eq!(
            get("http.request.header.x-long.truncated").as_deref(),
            Some("true")
        );
        assert_eq!(get("http.request.header.x-short").as_deref(), Some("abcde"));
        assert_eq!(get("http.request.header.x-short.truncated"), None);
        // A redacted value is short already; no mark.
        assert_eq!(
            get("http.request.header.authorization").as_deref(),
            Some("[REDACTED]")
        );
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn minimal_scope_keeps_content_type_and_user_agent_only() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.append(USER_AGENT, HeaderValue::from_static("curl/8"));
        h.append(USER_AGENT, HeaderValue::from_static("proxy/1"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        h.insert("tracestate", HeaderValue::from_static("hypertrace=cap:0"));
        let cfg = crate::config::Config::defaults("t");
        let mut out = Vec::new();
        record_headers_scoped(REQ, &h, &cfg, HeaderScope::Minimal, &mut out);
        let out = unpacked(&out).into_owned();
        let mut got: Vec<_> = out
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                pair("http.request.header.content-type", "application/json"),
                pair("http.request.header.user-agent[0]", "curl/8"),
                pair("http.request.header.user-agent[1]", "proxy/1"),
            ]
        );
        let mut out = Vec::new();
        record_headers_scoped(REQ, &h, &cfg, HeaderScope::All, &mut out);
        let out = unpacked(&out).into_owned();
        assert_eq!(out.len(), h.len());
    }

    #[test]
    fn the_default_limit_is_8_kib() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-big",
            HeaderValue::from_str(&"a".repeat(100_000)).unwrap(),
        );
        let mut out = Vec::new();
        record_headers(REQ, &h, &[], &mut out);
        let out = unpacked(&out).into_owned();
        assert_eq!(out[0].value.as_str().len(), 8192);
        assert_eq!(out[1].key.as_str(), "http.request.header.x-big.truncated");
    }
}
