//! Body-field redaction (`rustagent.redact_body_fields`) done on the export thread instead of the
//! serving thread.
//!
//! Redacting a 1 KiB JSON body costs about as much as all the rest of its capture, and it used to
//! run inside the request, before the response's last bytes went out. A body captured by the
//! agent's own entry points is now recorded under a *marked* key ([`marked_key`]: a NUL byte, the
//! syntax, then the real key), unredacted; the batch processor's worker calls [`Redaction::apply`]
//! on every batch as it takes it from the queue, before any exporter (OTLP, Zipkin, LOGGING, an
//! application's own) sees a span, and before a failed export is retried. What is exported is
//! exactly what redacting on the serving thread produced: the same function on the same bytes,
//! then the same limit and the same `.truncated` mark.
//!
//! The trade-off, written down where a reader looks for it: until its batch is exported (the
//! scheduled delay, one second by default, or while a collector is unreachable and the batch is
//! retried), a captured body waits in the agent's in-memory queue unredacted, as the request's
//! own bytes wait in the application's buffers. Nothing leaves the process unredacted: the worker
//! is the only way out of the queue, and spans the queue drops are never exported.

use std::sync::Arc;

use opentelemetry::{Key, KeyValue, Value};

use super::body::{text_attributes, within_limit};
use super::redact::{FieldNames, Syntax};

/// What a marked key starts with. The NUL byte keeps it apart from any key an application or a
/// semantic convention would use.
const PREFIX: &str = "\0hypertrace.redact.";

/// The body keys the agent records, with their marked forms (JSON, form): no allocation for them.
const KNOWN: [(&str, &str, &str); 4] = [
    (
        "http.request.body",
        "\0hypertrace.redact.json\0http.request.body",
        "\0hypertrace.redact.form\0http.request.body",
    ),
    (
        "http.response.body",
        "\0hypertrace.redact.json\0http.response.body",
        "\0hypertrace.redact.form\0http.response.body",
    ),
    (
        "rpc.request.body",
        "\0hypertrace.redact.json\0rpc.request.body",
        "\0hypertrace.redact.form\0rpc.request.body",
    ),
    (
        "rpc.response.body",
        "\0hypertrace.redact.json\0rpc.response.body",
        "\0hypertrace.redact.form\0rpc.response.body",
    ),
];

fn syntax_name(syntax: Syntax) -> &'static str {
    match syntax {
        Syntax::Json => "json",
        Syntax::Form => "form",
    }
}

/// The key a body of `syntax` recorded under `key` waits under until [`Redaction::apply`].
pub(crate) fn marked_key(key: &Key, syntax: Syntax) -> Key {
    let k = key.as_str();
    match KNOWN.iter().find(|(plain, ..)| *plain == k) {
        Some((_, json, form)) => Key::from_static_str(match syntax {
            Syntax::Json => json,
            Syntax::Form => form,
        }),
        None => Key::new(format!("{PREFIX}{}\0{k}", syntax_name(syntax))),
    }
}

/// The syntax and the real key of a marked key, or `None` for any other key.
fn unmarked(key: &str) -> Option<(Syntax, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (syntax, key) = rest.split_once('\0')?;
    let syntax = match syntax {
        "json" => Syntax::Json,
        "form" => Syntax::Form,
        _ => return None,
    };
    Some((syntax, key))
}

/// The real key, without an allocation for the agent's own keys.
fn real_key(key: &str) -> Key {
    match KNOWN.iter().find(|(plain, ..)| *plain == key) {
        Some((plain, ..)) => Key::from_static_str(plain),
        None => Key::new(key.to_owned()),
    }
}

/// What [`Redaction::verdict`] says of one attribute.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Not a body waiting for redaction: as it is.
    Unmarked,
    /// Nothing to redact: the text as it is, under this (its real) key.
    Keep(Key),
    /// These attributes instead: the redacted text, and its `.truncated` mark if it needs one.
    Redacted(Vec<KeyValue>),
}

/// The redaction the worker applies: the configured names and the body limit the captures were
/// made with (`data_capture.body_max_size_bytes`).
#[derive(Debug, Clone)]
pub(crate) struct Redaction {
    names: Option<Arc<FieldNames>>,
    limit: usize,
    /// Tests: [`apply`](Self::apply) panics, as a bug would make it.
    #[cfg(test)]
    pub(crate) panics: bool,
}

impl Redaction {
    /// For an agent whose configuration is `cfg`: the bodies its entry points capture.
    pub(crate) fn of(cfg: &crate::config::Config) -> Self {
        Redaction {
            names: FieldNames::new(&cfg.rustagent.redact_body_fields).map(Arc::new),
            limit: cfg.data_capture.body_max_size_bytes,
            #[cfg(test)]
            panics: false,
        }
    }

    /// Redacts every body of a span's `attrs` that waits under a marked key, and gives it its
    /// real key.
    pub(crate) fn apply(&self, attrs: &mut Vec<KeyValue>) {
        let mut i = 0;
        while i < attrs.len() {
            let text = match &attrs[i].value {
                Value::String(text) => text.as_str(),
                // Only the agent writes marked keys, always with text.
                _ => "",
            };
            let has = |key: &str| attrs.iter().any(|kv| kv.key.as_str() == key);
            match self.verdict(&attrs[i].key, text, has) {
                Verdict::Unmarked => i += 1,
                Verdict::Keep(key) => {
                    // The common case: nothing to redact, the text stays where it is.
                    attrs[i].key = key;
                    i += 1;
                }
                Verdict::Redacted(produced) => {
                    let n = produced.len();
                    attrs.splice(i..=i, produced);
                    i += n;
                }
            }
        }
    }

    /// What becomes of the attribute `key` = `text` of a span that `has` an attribute of a given
    /// key or not (for the `.truncated` mark): the same for a `KeyValue` ([`apply`](Self::apply))
    /// and for a text the agent's span holds in its record (`Record::encode_texts`).
    pub(crate) fn verdict(&self, key: &Key, text: &str, has: impl Fn(&str) -> bool) -> Verdict {
        #[cfg(test)]
        assert!(!self.panics, "redaction bug");
        // One byte compared for every other attribute.
        let k = key.as_str();
        let Some((syntax, key)) = k.starts_with('\0').then(|| unmarked(k)).flatten() else {
            return Verdict::Unmarked;
        };
        let key = real_key(key);
        let redacted = match &self.names {
            Some(names) => names.redact(text.as_bytes(), syntax),
            None => None,
        };
        match redacted {
            None => Verdict::Keep(key),
            Some(redacted) => Verdict::Redacted(self.redacted(key, redacted, has)),
        }
    }

    /// The attributes a body recorded under `key` becomes once `redacted`: the text, and a
    /// `.truncated` mark when redacting took it past the limit and the span `has` none for it
    /// yet. (Not cut, the redacted text is valid UTF-8 as the text was: whether it was marked
    /// truncated before changes nothing then.)
    fn redacted(&self, key: Key, redacted: Vec<u8>, has: impl Fn(&str) -> bool) -> Vec<KeyValue> {
        let (redacted, cut) = within_limit(redacted, self.limit, false);
        let mark = cut && !has(&format!("{}.truncated", key.as_str()));
        let (value, truncated) = text_attributes(key, redacted, cut, false);
        let mut out = vec![value];
        if mark {
            out.extend(truncated);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_keys_round_trip_and_are_never_a_real_key() {
        for syntax in [Syntax::Json, Syntax::Form] {
            for key in ["http.request.body", "rpc.response.body", "my.own.body", ""] {
                let marked = marked_key(&Key::from(key.to_owned()), syntax);
                assert_eq!(unmarked(marked.as_str()), Some((syntax, key)), "{key}");
                assert!(marked.as_str().starts_with('\0'));
            }
        }
        for plain in [
            "http.request.body",
            "\0hypertrace.packed",
            "\0hypertrace.redact.xml\0a",
        ] {
            assert_eq!(unmarked(plain), None, "{plain}");
        }
    }
}
