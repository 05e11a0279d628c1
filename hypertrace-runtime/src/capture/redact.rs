//! Redaction of sensitive values in captured JSON and `application/x-www-form-urlencoded` bodies
//! (`rustagent.redact_body_fields`): the same token that is `[REDACTED]` in an `authorization`
//! header must not appear in clear in an `"access_token"` field of the body.
//!
//! A streaming scan, not a parse: the capture may be cut anywhere (the body limit), may not be
//! valid at all, and most bodies hold nothing to redact, which then costs one pass and no
//! allocation. What is redacted:
//!
//! - JSON: the value of every object member whose key matches, at any depth. A string, number or
//!   nested object/array value becomes the string `"[REDACTED]"` (the whole nested value: nothing
//!   under a `"credentials"` key is kept); `true`, `false` and `null` are kept, they hold no
//!   secret. A valid body stays valid JSON.
//! - Forms: the value of every `key=value` pair whose key matches becomes `[REDACTED]`.
//!
//! A key matches when one of the configured names occurs in it, ignoring ASCII case and the
//! characters `_`, `-`, `.` and space (so `api_key` also matches `apiKey` and `X-Api-Key`). JSON
//! escapes and form percent-encoding are decoded before matching. In a cut capture, a value cut
//! short is redacted as far as it goes.

use memchr::{memchr, memchr2};

/// What a redacted value is replaced with, as in redacted headers.
pub const REDACTED: &str = "[REDACTED]";

/// The syntax of a body whose keys are scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// A JSON document.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// `body` with the values of sensitive keys replaced, or `None` when nothing was replaced (the
/// common case: no copy is made). `fields` empty: nothing is ever replaced.
pub fn redact(body: &[u8], syntax: Syntax, fields: &[String]) -> Option<Vec<u8>> {
    let mut matcher = Matcher::new(fields)?;
    match syntax {
        Syntax::Json => redact_json(body, &mut matcher),
        Syntax::Form => redact_form(body, &mut matcher),
    }
}

/// The configured names, normalised once per body, and a buffer for the key being looked at.
struct Matcher {
    /// The normalised names, back to back.
    bytes: Vec<u8>,
    /// Each name: where it is in `bytes`, and the set of its bytes (one bit per `byte % 64`).
    names: Vec<Name>,
    key: Vec<u8>,
}

/// One normalised name of [`Matcher`].
struct Name {
    start: usize,
    end: usize,
    /// A name can only occur in a key that has all of its bytes: most keys are ruled out by one
    /// AND, without searching.
    mask: u64,
}

/// The set of bytes in `s`, one bit per `byte % 64`.
fn byte_mask(s: &[u8]) -> u64 {
    s.iter().fold(0, |m, &b| m | 1u64 << (b & 63))
}

impl Matcher {
    fn new(fields: &[String]) -> Option<Matcher> {
        let mut bytes = Vec::with_capacity(fields.iter().map(|f| f.len()).sum());
        let mut names = Vec::with_capacity(fields.len());
        for f in fields {
            let start = bytes.len();
            bytes.extend(f.bytes().filter_map(normalise));
            // A blank entry (or one of separators only) would match every key.
            if bytes.len() > start {
                names.push(Name {
                    start,
                    end: bytes.len(),
                    mask: byte_mask(&bytes[start..]),
                });
            }
        }
        if names.is_empty() {
            return None;
        }
        Some(Matcher {
            bytes,
            names,
            key: Vec::with_capacity(32),
        })
    }

    /// Whether the key now in `self.key` (normalised) contains one of the names.
    fn key_matches(&self) -> bool {
        let key = &self.key[..];
        let key_mask = byte_mask(key);
        self.names.iter().any(|n| {
            n.mask & !key_mask == 0
                && n.end - n.start <= key.len()
                && contains(key, &self.bytes[n.start..n.end])
        })
    }

    /// A JSON key, given without its quotes and with its escapes.
    fn json_key_matches(&mut self, raw: &[u8]) -> bool {
        self.key.clear();
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            i += 1;
            let b = if b != b'\\' {
                b
            } else {
                let Some(&e) = raw.get(i) else { break };
                i += 1;
                match e {
                    b'u' => {
                        let code = raw.get(i..i + 4).and_then(hex4);
                        i += 4;
                        // Only ASCII can match a name; anything else just must not match.
                        match code {
                            Some(c) if c < 0x80 => c as u8,
                            _ => 0x80,
                        }
                    }
                    other => other,
                }
            };
            if let Some(n) = normalise(b) {
                self.key.push(n);
            }
        }
        self.key_matches()
    }

    /// A form key, percent-encoded.
    fn form_key_matches(&mut self, raw: &[u8]) -> bool {
        self.key.clear();
        let mut i = 0;
        while i < raw.len() {
            let b = match raw[i] {
                b'%' => match raw.get(i + 1..i + 3).and_then(hex2) {
                    Some(c) => {
                        i += 2;
                        c
                    }
                    None => b'%',
                },
                b'+' => b' ',
                b => b,
            };
            i += 1;
            if let Some(n) = normalise(b) {
                self.key.push(n);
            }
        }
        self.key_matches()
    }
}

/// Lower-cased, separators dropped.
fn normalise(b: u8) -> Option<u8> {
    match b {
        b'_' | b'-' | b'.' | b' ' => None,
        // A NUL in a key never matches a name.
        0 => Some(0x80),
        b => Some(b.to_ascii_lowercase()),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let (first, rest) = (needle[0], &needle[1..]);
    let last_start = haystack.len() - needle.len();
    let mut from = 0;
    while let Some(p) = memchr(first, &haystack[from..=last_start]) {
        let at = from + p;
        if haystack[at + 1..].starts_with(rest) {
            return true;
        }
        from = at + 1;
    }
    false
}

fn hex_digit(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

fn hex4(s: &[u8]) -> Option<u32> {
    s.iter()
        .try_fold(0u32, |acc, &b| Some(acc << 4 | hex_digit(b)?))
}

fn hex2(s: &[u8]) -> Option<u8> {
    Some((hex_digit(s[0])? << 4 | hex_digit(s[1])?) as u8)
}

/// The output, copied from the input only once something is replaced.
struct Edits<'a> {
    body: &'a [u8],
    out: Option<Vec<u8>>,
    /// `body[..copied]` is accounted for in `out`.
    copied: usize,
}

impl<'a> Edits<'a> {
    fn new(body: &'a [u8]) -> Self {
        Edits {
            body,
            out: None,
            copied: 0,
        }
    }

    /// Replaces `body[start..end]` with `with`.
    fn replace(&mut self, start: usize, end: usize, with: &[u8]) {
        let out = self
            .out
            .get_or_insert_with(|| Vec::with_capacity(self.body.len() + 16));
        out.extend_from_slice(&self.body[self.copied..start]);
        out.extend_from_slice(with);
        self.copied = end;
    }

    fn finish(self) -> Option<Vec<u8>> {
        let mut out = self.out?;
        out.extend_from_slice(&self.body[self.copied..]);
        Some(out)
    }
}

const JSON_REDACTED: &[u8] = b"\"[REDACTED]\"";

fn redact_json(body: &[u8], m: &mut Matcher) -> Option<Vec<u8>> {
    let mut edits = Edits::new(body);
    let mut i = 0;
    while let Some(p) = memchr(b'"', &body[i..]) {
        let start = i + p;
        // A string cut by the end of the capture: a key fragment, or a value whose key did not
        // match (a matching key's value is handled below, and skipped).
        let Some(end) = string_end(body, start) else {
            break;
        };
        i = end;
        let colon = skip_ws(body, end);
        if body.get(colon) != Some(&b':') || !m.json_key_matches(&body[start + 1..end - 1]) {
            continue;
        }
        let value = skip_ws(body, colon + 1);
        if value >= body.len() {
            // Cut before the value: nothing of it was captured.
            break;
        }
        if let Some(len) = literal_len(&body[value..]) {
            i = value + len;
            continue;
        }
        match value_end(body, value) {
            // No value at all (`"token":}`): nothing to hide.
            Some(value_end) if value_end == value => i = value,
            Some(value_end) => {
                edits.replace(value, value_end, JSON_REDACTED);
                i = value_end;
            }
            None => {
                // The value runs to the end of the capture: all of the rest is redacted.
                edits.replace(value, body.len(), JSON_REDACTED);
                break;
            }
        }
    }
    edits.finish()
}

/// `true`, `false` or `null` as a whole token at the start of `s`: its length.
fn literal_len(s: &[u8]) -> Option<usize> {
    [&b"true"[..], b"false", b"null"].iter().find_map(|lit| {
        let after = s.strip_prefix(*lit)?;
        match after.first() {
            None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') => Some(lit.len()),
            _ => None,
        }
    })
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while matches!(body.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `body[start]` is `"`: the index just past the closing quote, `None` if the string is cut.
fn string_end(body: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        i += memchr2(b'"', b'\\', &body[i.min(body.len())..])?;
        if body[i] == b'"' {
            return Some(i + 1);
        }
        // An escape: the next byte is never the string's end.
        i += 2;
    }
}

/// The index just past the JSON value that starts at `body[start]`; `None` when it is cut.
fn value_end(body: &[u8], start: usize) -> Option<usize> {
    match body[start] {
        b'"' => string_end(body, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            while i < body.len() {
                match body[i] {
                    b'"' => {
                        i = string_end(body, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        // A number, or anything else: up to the next delimiter. At the end of the capture it may
        // have been cut, so it counts as cut.
        _ => body[start..]
            .iter()
            .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            .map(|p| start + p),
    }
}

fn redact_form(body: &[u8], m: &mut Matcher) -> Option<Vec<u8>> {
    let mut edits = Edits::new(body);
    let mut start = 0;
    while start <= body.len() {
        let end = memchr(b'&', &body[start..]).map_or(body.len(), |p| start + p);
        let pair = &body[start..end];
        if let Some(eq) = memchr(b'=', pair) {
            if m.form_key_matches(&pair[..eq]) {
                edits.replace(start + eq + 1, end, REDACTED.as_bytes());
            }
        }
        start = end + 1;
    }
    edits.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_REDACT_BODY_FIELDS;
    use proptest::prelude::*;

    fn defaults() -> Vec<String> {
        DEFAULT_REDACT_BODY_FIELDS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn json(body: &str) -> String {
        match redact(body.as_bytes(), Syntax::Json, &defaults()) {
            Some(out) => String::from_utf8(out).unwrap(),
            None => body.to_owned(),
        }
    }

    fn form(body: &str) -> String {
        match redact(body.as_bytes(), Syntax::Form, &defaults()) {
            Some(out) => String::from_utf8(out).unwrap(),
            None => body.to_owned(),
        }
    }

    #[test]
    fn json_values_of_sensitive_keys_are_replaced() {
        assert_eq!(
            json(r#"{"access_token":"eyJhbGciOi.x.y","token_type":"Bearer","expires_in":3600}"#),
            r#"{"access_token":"[REDACTED]","token_type":"[REDACTED]","expires_in":3600}"#
        );
        assert_eq!(
            json(r#"{"user": "ada", "Password" : "hunter2", "n": 1}"#),
            r#"{"user": "ada", "Password" : "[REDACTED]", "n": 1}"#
        );
        assert_eq!(
            json(r#"{"client_secret":"s3cr3t","pin":1234,"apiKey":987654}"#),
            r#"{"client_secret":"[REDACTED]","pin":1234,"apiKey":"[REDACTED]"}"#
        );
    }

    #[test]
    fn nothing_to_redact_is_no_copy() {
        let body = br#"{"name":"Ada","language":"rust","tags":["a","b"],"n":{"x":null}}"#;
        assert_eq!(redact(body, Syntax::Json, &defaults()), None);
        assert_eq!(redact(b"a=1&b=2", Syntax::Form, &defaults()), None);
        // A sensitive word as a value, not a key, stays.
        assert_eq!(
            redact(
                br#"{"kind":"password","q":"token"}"#,
                Syntax::Json,
                &defaults()
            ),
            None
        );
    }

    #[test]
    fn nested_values_under_a_sensitive_key_are_redacted_whole() {
        assert_eq!(
            json(r#"{"credentials":{"user":"ada","pass":"x"},"tokens":["a","b"],"ok":1}"#),
            r#"{"credentials":"[REDACTED]","tokens":"[REDACTED]","ok":1}"#
        );
        assert_eq!(
            json(r#"{"session":{"a":{"b":[1,[2,{"c":3}]]},"d":[]},"e":{"f":[{}]}}"#),
            r#"{"session":"[REDACTED]","e":{"f":[{}]}}"#
        );
        // Braces and brackets inside strings do not confuse the nesting.
        assert_eq!(
            json(r#"{"secret":{"a":"}]\"{"},"b":2}"#),
            r#"{"secret":"[REDACTED]","b":2}"#
        );
    }

    #[test]
    fn sensitive_keys_at_any_depth_and_in_arrays() {
        assert_eq!(
            json(r#"[{"user":{"name":"a","session_id":"abc"}},{"password":"p"}]"#),
            r#"[{"user":{"name":"a","session_id":"[REDACTED]"}},{"password":"[REDACTED]"}]"#
        );
    }

    #[test]
    fn literals_are_kept() {
        assert_eq!(
            json(r#"{"token":null,"password_set":true,"secret":false}"#),
            r#"{"token":null,"password_set":true,"secret":false}"#
        );
        // Not a literal: `nullx` is not `null`.
        assert_eq!(json(r#"{"token":nullx}"#), r#"{"token":"[REDACTED]"}"#);
    }

    #[test]
    fn escaped_keys_and_values() {
        assert_eq!(
            json(r#"{"pass\u0077ord":"a\"b\\","x":"y"}"#),
            r#"{"pass\u0077ord":"[REDACTED]","x":"y"}"#
        );
        // An escaped quote inside a value does not end it.
        assert_eq!(
            json(r#"{"note":"say \"token\": x","token":"t"}"#),
            r#"{"note":"say \"token\": x","token":"[REDACTED]"}"#
        );
    }

    #[test]
    fn key_matching_ignores_case_and_separators() {
        for key in [
            "API_KEY",
            "apiKey",
            "x-api-key",
            "api.key",
            "privateKey",
            "PRIVATE-KEY",
        ] {
            let body = format!(r#"{{"{key}":"v"}}"#);
            assert_eq!(json(&body), format!(r#"{{"{key}":"[REDACTED]"}}"#), "{key}");
        }
    }

    #[test]
    fn cut_bodies_never_leak_the_cut_value() {
        // Cut inside a sensitive value: what there is of it is redacted.
        assert_eq!(
            json(r#"{"a":1,"password":"hunt"#),
            r#"{"a":1,"password":"[REDACTED]""#
        );
        assert_eq!(json(r#"{"token":12"#), r#"{"token":"[REDACTED]""#);
        assert_eq!(
            json(r#"{"credentials":{"user":"ada","pa"#),
            r#"{"credentials":"[REDACTED]""#
        );
        // Cut after the colon, or inside the key: nothing of the value is there.
        assert_eq!(json(r#"{"a":1,"password": "#), r#"{"a":1,"password": "#);
        assert_eq!(json(r#"{"a":1,"passw"#), r#"{"a":1,"passw"#);
    }

    #[test]
    fn not_json_at_all_is_left_alone_or_redacted_safely() {
        assert_eq!(redact(b"plain text", Syntax::Json, &defaults()), None);
        assert_eq!(redact(b"\"", Syntax::Json, &defaults()), None);
        assert_eq!(redact(b"\"token\"", Syntax::Json, &defaults()), None);
        assert_eq!(json(r#""token":"x""#), r#""token":"[REDACTED]""#);
        assert_eq!(redact(b"\"\\", Syntax::Json, &defaults()), None);
        assert_eq!(redact(br#"{"token":}}]]"#, Syntax::Json, &defaults()), None);
    }

    #[test]
    fn form_values_of_sensitive_keys_are_replaced() {
        assert_eq!(
            form("grant_type=client_credentials&client_id=app&client_secret=s3cr3t"),
            "grant_type=client_credentials&client_id=app&client_secret=[REDACTED]"
        );
        assert_eq!(
            form("user=ada&password=hunter%202&next=%2F"),
            "user=ada&password=[REDACTED]&next=%2F"
        );
        // Percent-encoded and `+` in keys, bracketed keys, empty pairs, keys without a value.
        assert_eq!(
            form("client%5Fsecret=a&user[Pass+Word]=b&&token&x=1"),
            "client%5Fsecret=[REDACTED]&user[Pass+Word]=[REDACTED]&&token&x=1"
        );
        // Cut in the value: redacted as far as it goes; cut in the key: left as is.
        assert_eq!(form("a=1&password=hun"), "a=1&password=[REDACTED]");
        assert_eq!(form("a=1&passw"), "a=1&passw");
    }

    #[test]
    fn the_list_is_configurable_and_empty_turns_it_off() {
        let body = br#"{"password":"p","ssn":"123-45-6789"}"#;
        assert_eq!(redact(body, Syntax::Json, &[]), None);
        assert_eq!(
            redact(body, Syntax::Json, &[String::new(), "_".into()]),
            None
        );
        assert_eq!(
            redact(body, Syntax::Json, &["SSN".into()]).as_deref(),
            Some(&br#"{"password":"p","ssn":"[REDACTED]"}"#[..])
        );
    }

    /// JSON values to build documents from; keys from a list where some are sensitive.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("id".to_string()),
                            Just("name".to_string()),
                            Just("Access_Token".to_string()),
                            Just("password".to_string()),
                            Just("nested\"key".to_string()),
                            ".{0,8}",
                        ],
                        inner
                    ),
                    0..5
                )
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn is_sensitive(key: &str) -> bool {
        let key: String = key
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
            .collect::<String>()
            .to_ascii_lowercase();
        defaults().iter().any(|f| key.contains(&f.replace('_', "")))
    }

    /// What the redaction promises, computed on the parsed document.
    fn expected(v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::Null | Value::Bool(_) => v.clone(),
                            _ if is_sensitive(k) => Value::String(REDACTED.into()),
                            _ => expected(v),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(expected).collect()),
            v => v.clone(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn valid_json_stays_valid_and_is_redacted_as_promised(doc in json_value(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&doc) } else { serde_json::to_string(&doc) }.unwrap();
            let out = redact(text.as_bytes(), Syntax::Json, &defaults());
            let out = out.unwrap_or_else(|| text.clone().into_bytes());
            let parsed: serde_json::Value = serde_json::from_slice(&out).expect("still valid JSON");
            prop_assert_eq!(parsed, expected(&doc));
        }

        #[test]
        fn a_cut_never_shows_a_sensitive_value(secret in "[a-z0-9]{12}", before in ".{0,20}", cut in 0usize..200) {
            let doc = serde_json::json!({"a": before, "token": secret, "deep": {"password": [secret.clone()]}});
            let text = serde_json::to_string(&doc).unwrap();
            let cut = &text.as_bytes()[..cut.min(text.len())];
            let out = redact(cut, Syntax::Json, &defaults()).unwrap_or_else(|| cut.to_vec());
            // Not even a piece of it longer than 3 characters.
            let out = String::from_utf8_lossy(&out).into_owned();
            let skeleton = serde_json::json!({"a": before, "token": "", "deep": {"password": [""]}}).to_string();
            for w in secret.as_bytes().windows(4) {
                let w = std::str::from_utf8(w).unwrap();
                prop_assert!(!out.contains(w) || skeleton.contains(w), "{out} shows {w}");
            }
        }

        #[test]
        fn any_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300), form in any::<bool>()) {
            let syntax = if form { Syntax::Form } else { Syntax::Json };
            let _ = redact(&body, syntax, &defaults());
            let mut with_keys = b"{\"token\":".to_vec();
            with_keys.extend_from_slice(&body);
            let _ = redact(&with_keys, syntax, &defaults());
        }
    }
}
