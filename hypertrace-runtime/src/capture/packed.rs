//! Packed attributes: many string attributes whose keys share a prefix (a request's or response's
//! headers), carried on the span as one attribute.
//!
//! Why: recorded one attribute each, a request's headers cost two allocations apiece on the
//! serving thread (the key `<prefix><name>` and the value) and as many frees wherever the span is
//! freed, which is most of what header capture costs. Packed, they are one string, allocated once
//! at its exact size. The agent's OTLP encoder writes each entry as the attribute it stands for, so
//! what a backend receives is byte-for-byte what separate attributes would have given; the other
//! exporters (LOGGING, Zipkin, an application's own `SpanExporter`) get the spans with the entries
//! as separate attributes again ([`unpacked`]).
//!
//! The packed attribute's key is [`PACKED_KEY`], which starts with a NUL byte so that no attribute
//! an application sets is taken for one (and one that is, but does not parse, is exported as it is).
//! Its value is the key prefix and then each entry's name (the key without the prefix) and value,
//! each string preceded by its length. Lengths are written 6 bits a byte, low bits first, with
//! `0x40` on every byte but the last: every byte is ASCII, so the packed value is valid UTF-8
//! whatever the strings hold.
//!
//! A packed attribute counts as one toward the SDK's per-span attribute limit (128 by default):
//! a request with more headers than that keeps all of them (hyper accepts 100 by default).

use std::borrow::Cow;
use std::cell::Cell;

use opentelemetry::{Key, KeyValue, Value};

use super::AttributeSink;

/// The key of a packed attribute.
pub const PACKED_KEY: &str = "\0hypertrace.packed";

/// Builds one packed attribute.
///
/// The entries are written into a buffer this thread keeps for the purpose, and [`finish`]
/// copies them into one allocation of the exact size: a request's headers cost one allocation,
/// whatever their number, and none that is resized.
///
/// [`finish`]: Packer::finish
#[derive(Debug)]
pub struct Packer {
    buf: String,
    entries: usize,
}

/// The largest buffer a thread keeps between two packed attributes (a larger one is freed).
const KEPT_BUFFER: usize = 64 * 1024;

thread_local! {
    static SCRATCH: Cell<String> = const { Cell::new(String::new()) };
}

impl Packer {
    /// A packed attribute for keys `<prefix><name>`, with room for about `capacity` bytes of names
    /// and values.
    pub fn new(prefix: &str, capacity: usize) -> Packer {
        let mut buf = SCRATCH.with(Cell::take);
        buf.clear();
        buf.reserve(prefix.len() + capacity + 8);
        put_len(&mut buf, prefix.len());
        buf.push_str(prefix);
        Packer { buf, entries: 0 }
    }

    /// Adds the attribute `<prefix><name><suffix>` = `value`. The suffix (an index such as
    /// `[1]`, or nothing) saves the caller a copy of the name.
    pub fn push(&mut self, name: &str, suffix: &str, value: &str) {
        put_len(&mut self.buf, name.len() + suffix.len());
        self.buf.push_str(name);
        self.buf.push_str(suffix);
        put_len(&mut self.buf, value.len());
        self.buf.push_str(value);
        self.entries += 1;
    }

    /// How many entries were added.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// No entry was added.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The packed attribute; `None` without entries.
    pub fn finish(self) -> Option<KeyValue> {
        let mut kv = None;
        self.finish_with(|text| {
            kv = Some(KeyValue::new(
                Key::from_static_str(PACKED_KEY),
                text.to_owned(),
            ))
        });
        kv
    }

    /// Hands the packed attribute to `out` (nothing without entries): a sink that copies it into
    /// a buffer of its own makes no allocation for it.
    pub fn finish_into(self, out: &mut impl AttributeSink) {
        self.finish_with(|text| out.text(Key::from_static_str(PACKED_KEY), Cow::Borrowed(text)));
    }

    /// Calls `f` with the packed value when there are entries, then gives the buffer back to
    /// the thread.
    fn finish_with(mut self, f: impl FnOnce(&str)) {
        if self.entries > 0 {
            f(&self.buf);
        }
        let buf = std::mem::take(&mut self.buf);
        if buf.capacity() <= KEPT_BUFFER {
            SCRATCH.with(|s| s.set(buf));
        }
    }
}

/// Appends `n` in the packed length form.
fn put_len(buf: &mut String, mut n: usize) {
    while n >= 0x40 {
        buf.push(char::from(0x40 | (n & 0x3f) as u8));
        n >>= 6;
    }
    buf.push(char::from(n as u8));
}

/// The entries of a packed attribute: its key prefix, then (name, value) pairs.
#[derive(Debug, Clone, Copy)]
pub struct Packed<'a> {
    /// What every entry's key starts with.
    pub prefix: &'a str,
    rest: &'a str,
}

impl<'a> Packed<'a> {
    /// `kv` as a packed attribute, when it is one and it is well-formed (checked here, once).
    pub fn of(kv: &'a KeyValue) -> Option<Packed<'a>> {
        if kv.key.as_str() != PACKED_KEY {
            return None;
        }
        let Value::String(s) = &kv.value else {
            return None;
        };
        Packed::parse(s.as_str())
    }

    /// [`Packed::of`] without checking the entries again: only for an attribute that `of`
    /// accepted (the encoder's second pass over a span, which follows the first pass's verdicts).
    /// Given one that `of` refused, it may still return `Some`, with entries that stop at the
    /// first malformed one.
    pub(crate) fn of_validated(kv: &'a KeyValue) -> Option<Packed<'a>> {
        if kv.key.as_str() != PACKED_KEY {
            return None;
        }
        let Value::String(s) = &kv.value else {
            return None;
        };
        let (prefix, rest) = take(s.as_str())?;
        Some(Packed { prefix, rest })
    }

    pub(crate) fn parse(s: &'a str) -> Option<Packed<'a>> {
        let (prefix, rest) = take(s)?;
        let packed = Packed { prefix, rest };
        // Well-formed all the way, so that iterating never stops early.
        let mut check = rest;
        while !check.is_empty() {
            let (_, after) = take(check)?;
            let (_, after) = take(after)?;
            check = after;
        }
        Some(packed)
    }

    /// The (name, value) pairs, in the order they were added.
    pub fn entries(self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let mut rest = self.rest;
        std::iter::from_fn(move || {
            let (name, after) = take(rest)?;
            let (value, after) = take(after)?;
            rest = after;
            Some((name, value))
        })
    }
}

/// The length-prefixed string at the start of `s`, and what follows it; `None` if malformed.
#[inline]
fn take(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    // Mostly a length below 64: one byte.
    if let Some(&b) = bytes.first() {
        if b < 0x40 {
            let end = 1 + b as usize;
            return Some((s.get(1..end)?, s.get(end..)?));
        }
    }
    let (mut n, mut shift, mut i) = (0usize, 0u32, 0usize);
    loop {
        let b = *bytes.get(i)?;
        if b >= 0x80 || shift > 30 {
            return None;
        }
        n |= ((b & 0x3f) as usize) << shift;
        i += 1;
        if b & 0x40 == 0 {
            break;
        }
        shift += 6;
    }
    let end = i.checked_add(n)?;
    Some((s.get(i..end)?, s.get(end..)?))
}

/// `attrs` with each packed attribute replaced by the attributes it stands for, in place: borrowed
/// when there is none. For the exporters that are not the agent's OTLP encoder.
pub fn unpacked(attrs: &[KeyValue]) -> Cow<'_, [KeyValue]> {
    if !attrs.iter().any(|kv| Packed::of(kv).is_some()) {
        return Cow::Borrowed(attrs);
    }
    let mut out = Vec::with_capacity(attrs.len() + 16);
    for kv in attrs {
        match Packed::of(kv) {
            Some(p) => out.extend(p.entries().map(|(name, value)| {
                let mut key = String::with_capacity(p.prefix.len() + name.len());
                key.push_str(p.prefix);
                key.push_str(name);
                KeyValue::new(key, value.to_owned())
            })),
            None => out.push(kv.clone()),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pack(prefix: &str, entries: &[(String, String)]) -> Option<KeyValue> {
        let mut p = Packer::new(prefix, 0);
        for (n, v) in entries {
            p.push(n, "", v);
        }
        p.finish()
    }

    #[test]
    fn entries_come_back_in_order_as_separate_attributes() {
        let mut p = Packer::new("http.request.header.", 32);
        p.push("accept", "", "*/*");
        p.push("x-forwarded-for", "[0]", "10.0.0.1");
        p.push("x-forwarded-for", "[1]", "");
        assert_eq!(p.len(), 3);
        let kv = p.finish().unwrap();
        let attrs = vec![KeyValue::new("a", 1), kv, KeyValue::new("b", true)];
        let got = unpacked(&attrs);
        let got: Vec<_> = got
            .iter()
            .map(|kv| (kv.key.as_str().to_owned(), kv.value.to_string()))
            .collect();
        let want = [
            ("a", "1"),
            ("http.request.header.accept", "*/*"),
            ("http.request.header.x-forwarded-for[0]", "10.0.0.1"),
            ("http.request.header.x-forwarded-for[1]", ""),
            ("b", "true"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn nothing_packed_is_borrowed_and_no_entries_is_no_attribute() {
        let attrs = vec![KeyValue::new("a", "b")];
        assert!(matches!(unpacked(&attrs), Cow::Borrowed(_)));
        assert!(Packer::new("p.", 10).finish().is_none());
    }

    #[test]
    fn lengths_below_64_take_one_byte() {
        let mut p = Packer::new("p.", 1000);
        p.push("n", "", "v");
        let kv = p.finish().unwrap();
        assert_eq!(kv.value.as_str().len(), 1 + 2 + 1 + 1 + 1 + 1);
    }

    #[test]
    fn malformed_or_foreign_values_are_not_taken_for_packed() {
        for bad in [
            "",
            "\u{5}ab",
            "\u{2}ab\u{3}x",
            "\u{7f}",
            "é",
            "\u{1}a\u{1}b\u{2}c",
        ] {
            let kv = KeyValue::new(Key::from_static_str(PACKED_KEY), bad);
            assert!(Packed::of(&kv).is_none(), "{bad:?}");
            assert_eq!(unpacked(std::slice::from_ref(&kv))[0], kv);
        }
        // A packed-looking value under another key is just a string.
        let kv = pack("p.", &[("n".into(), "v".into())]).unwrap();
        let other = KeyValue::new("packed", kv.value.clone());
        assert!(Packed::of(&other).is_none());
        assert!(Packed::of(&KeyValue::new(Key::from_static_str(PACKED_KEY), 3)).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Any strings, of any length (lengths of several length bytes included), come back as
        /// they went in, and the packed value is one valid string.
        #[test]
        fn round_trip(
            prefix in ".{0,80}",
            entries in proptest::collection::vec(("[a-z\\-\\[\\]0-9]{0,70}", "(?s).{0,300}"), 0..12),
            long in proptest::option::of(5000usize..300_000),
        ) {
            let mut entries = entries;
            if let Some(n) = long {
                entries.push(("big".into(), "x".repeat(n)));
            }
            match pack(&prefix, &entries) {
                None => prop_assert!(entries.is_empty()),
                Some(kv) => {
                    let p = Packed::of(&kv).expect("well-formed");
                    prop_assert_eq!(p.prefix, prefix.as_str());
                    let got: Vec<(String, String)> =
                        p.entries().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
                    prop_assert_eq!(got, entries);
                }
            }
        }
    }
}
