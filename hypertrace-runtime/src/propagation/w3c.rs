//! The incoming W3C trace context and baggage, read without the composite propagator: the
//! `Context` that opentelemetry_sdk's `TraceContextPropagator` then `BaggagePropagator` build from
//! the same headers, for every input, at a fraction of the cost.
//!
//! The SDK splits `traceparent` into a `Vec`, parses each field with `from_str_radix`, and goes
//! through the composite's dynamic dispatch and its context clones on every request. Here the form
//! every sender writes (`vv-<32 hex>-<16 hex>-ff`, lowercase) is read in place; any other
//! spelling goes through the SDK's own steps, written out below with the same `std` parsers, so
//! both agree on inputs the W3C grammar forbids but the SDK accepts (a `+` sign, short or
//! zero-padded ids, an uppercase version). `tracestate` and `baggage` are parsed by the SDK itself,
//! and only when the header is there.

use std::str::FromStr;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::BaggagePropagator;

use super::HeaderExtractor;

/// The highest `traceparent` version the SDK accepts (`ff` is forbidden by the W3C spec).
const MAX_VERSION: u8 = 254;

/// The length of a version-00 `traceparent`: `vv-` + 32 + `-` + 16 + `-` + `ff`.
const CANONICAL_LEN: usize = 55;

/// The context `TraceContextPropagator` then `BaggagePropagator` extract from `headers` into an
/// empty context, as a composite of those two does.
pub(super) fn extract(headers: &http::HeaderMap) -> Context {
    let extractor = HeaderExtractor::new(headers);
    let cx = match span_context(headers, &extractor) {
        Some(sc) => Context::new().with_remote_span_context(sc),
        None => Context::new(),
    };
    // Without the header (or with one that is not visible ASCII, which the extractor does not
    // return) the SDK's baggage propagator returns the context it was given.
    let baggage = headers.get(&super::BAGGAGE);
    if baggage.is_some_and(|v| v.to_str().is_ok()) {
        BaggagePropagator::new().extract_with_context(&cx, &extractor)
    } else {
        cx
    }
}

/// The remote parent `TraceContextPropagator` reads, or `None` where it keeps the context as it
/// was (no or a malformed `traceparent`, or a zero id).
fn span_context(headers: &http::HeaderMap, extractor: &HeaderExtractor<'_>) -> Option<SpanContext> {
    // The SDK reads a missing header as "", which has no fields: the same outcome.
    let (trace_id, span_id, flags) = traceparent(headers.get(&super::TRACEPARENT)?)?;
    // The SDK parses `tracestate` before this check and then drops it: nothing to parse here.
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    // An invalid `tracestate` is no tracestate, the parent is kept. Most requests carry none:
    // a plain lookup says so, without the extractor's list of lines.
    let trace_state = match headers
        .contains_key(&super::TRACESTATE)
        .then(|| extractor.get("tracestate"))
        .flatten()
    {
        Some(s) => TraceState::from_str(s).unwrap_or_default(),
        None => TraceState::default(),
    };
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        trace_state,
    ))
}

/// Trace id, parent id and flags (all but `sampled` cleared) of a `traceparent` as the SDK reads
/// it; the ids may be zero.
fn traceparent(value: &http::HeaderValue) -> Option<(TraceId, SpanId, TraceFlags)> {
    let raw = value.as_bytes();
    // A value that is the canonical form and nothing else is visible ASCII with nothing to trim:
    // the SDK's `to_str` and `trim` leave it as it is, so they are skipped.
    let fields = match (raw.len() == CANONICAL_LEN)
        .then(|| canonical(raw))
        .flatten()
    {
        Some(fields) => fields,
        None => {
            let value = value.to_str().ok()?.trim();
            match canonical(value.as_bytes()) {
                Some(fields) => fields,
                None => general(value)?,
            }
        }
    };
    // Version 00 has exactly four fields; later versions may append more.
    let (version, trace, span, flags, more) = fields;
    if version > MAX_VERSION || version == 0 && more {
        return None;
    }
    let flags = TraceFlags::new(flags) & TraceFlags::SAMPLED;
    Some((TraceId::from(trace), SpanId::from(span), flags))
}

/// Version, trace id, parent id, flags, and whether more fields follow.
type Fields = (u8, u128, u64, u8, bool);

/// The fields of `vv-<32 hex>-<16 hex>-ff`, lowercase, then nothing, a lone `-`, or `-` and more;
/// `None` for anything else (which [`general`] reads).
///
/// The same fields as the SDK's: with no `-` inside the four (they are hex digits) the first four
/// parts of `split_terminator('-')` are these, and a fifth exists when at least one byte follows
/// the `-` after the flags (a trailing `-` is a terminator, not an empty part); and up to the
/// type's width in lowercase hex digits, `from_str_radix` reads the value read here.
fn canonical(b: &[u8]) -> Option<Fields> {
    if b.len() < CANONICAL_LEN
        || b[2] != b'-'
        || b[35] != b'-'
        || b[52] != b'-'
        || (b.len() > CANONICAL_LEN && b[CANONICAL_LEN] != b'-')
    {
        return None;
    }
    let version = hex2(b[0], b[1])?;
    let trace = u128::from(hex16(&b[3..19])?) << 64 | u128::from(hex16(&b[19..35])?);
    let span = hex16(&b[36..52])?;
    let flags = hex2(b[53], b[54])?;
    Some((version, trace, span, flags, b.len() > CANONICAL_LEN + 1))
}

/// The value of two lowercase hex digits.
fn hex2(hi: u8, lo: u8) -> Option<u8> {
    let (hi, lo) = (HEX[usize::from(hi)], HEX[usize::from(lo)]);
    ((hi | lo) & INVALID == 0).then_some(hi << 4 | lo)
}

/// The value of 16 lowercase hex digits (`digits` is 16 bytes long).
fn hex16(digits: &[u8]) -> Option<u64> {
    let (hi, lo) = digits.split_at(8);
    Some(u64::from(hex8(hi)?) << 32 | u64::from(hex8(lo)?))
}

/// The value of 8 lowercase hex digits (`digits` is 8 bytes long), a byte per lane of a `u64`:
/// a byte-at-a-time loop costs several times more, on every request.
fn hex8(digits: &[u8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = u64::from_be_bytes(digits.try_into().ok()?);
    if x & HIGH != 0 {
        return None;
    }
    // With every byte below 0x80 no lane carries into the next: the high bit of
    // `x + (0x80 - lo)` says byte >= lo, that of `x + (0x7f - hi)` says byte > hi.
    let within = |lo: u8, hi: u8| {
        (x + ONES * u64::from(0x80 - lo)) & !(x + ONES * u64::from(0x7f - hi)) & HIGH
    };
    let digit = within(b'0', b'9');
    let letter = within(b'a', b'f');
    if digit | letter != HIGH {
        return None;
    }
    // '0'..='9' hold their value in the low nibble, 'a'..='f' hold it less 9.
    let mut v = (x & (ONES * 0x0f)) + (letter >> 7) * 9;
    // Pack the 8 nibbles, first digit highest.
    v = (v | v >> 4) & 0x00ff_00ff_00ff_00ff;
    v = (v | v >> 8) & 0x0000_ffff_0000_ffff;
    v = (v | v >> 16) & 0x0000_0000_ffff_ffff;
    Some(v as u32)
}

/// The marker in [`HEX`] of a byte that is not a lowercase hex digit.
const INVALID: u8 = 0x80;

/// Digit values of the lowercase hex digits, [`INVALID`] for every other byte.
static HEX: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Any other `traceparent`, read step by step as the SDK reads it.
fn general(value: &str) -> Option<Fields> {
    let mut parts = value.split_terminator('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let more = parts.next().is_some();
    // The SDK does not refuse an uppercase version; it does for the other three fields.
    let version = u8::from_str_radix(version, 16).ok()?;
    let trace = u128::from_str_radix(no_uppercase(trace)?, 16).ok()?;
    let span = u64::from_str_radix(no_uppercase(span)?, 16).ok()?;
    let flags = u8::from_str_radix(no_uppercase(flags)?, 16).ok()?;
    Some((version, trace, span, flags, more))
}

fn no_uppercase(field: &str) -> Option<&str> {
    (!field.bytes().any(|b| b.is_ascii_uppercase())).then_some(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PropagationFormat;
    use opentelemetry::baggage::BaggageExt;
    use proptest::prelude::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// What a test compares of a context: the parent's fields, whether there is one, the baggage.
    #[derive(Debug, PartialEq)]
    struct Seen {
        active: bool,
        trace_id: TraceId,
        span_id: SpanId,
        flags: TraceFlags,
        remote: bool,
        trace_state: String,
        baggage: Vec<(String, String, String)>,
    }

    fn seen(cx: &Context) -> Seen {
        let span = cx.span();
        let sc = span.span_context();
        let mut baggage: Vec<_> = cx
            .baggage()
            .iter()
            .map(|(k, (v, m))| (k.to_string(), v.to_string(), m.as_str().to_owned()))
            .collect();
        baggage.sort();
        Seen {
            active: cx.has_active_span(),
            trace_id: sc.trace_id(),
            span_id: sc.span_id(),
            flags: sc.trace_flags(),
            remote: sc.is_remote(),
            trace_state: sc.trace_state().header(),
            baggage,
        }
    }

    /// The SDK's answer: the composite the agent builds for the default formats.
    fn reference(headers: &http::HeaderMap) -> Seen {
        let composite = super::super::build(&[PropagationFormat::TraceContext]);
        seen(&composite.extract_with_context(&Context::new(), &HeaderExtractor::new(headers)))
    }

    fn headers(lines: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in lines {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// Both readings of `lines`, checked equal; the fast one is returned.
    fn both(lines: &[(&str, &str)]) -> Seen {
        let h = headers(lines);
        let fast = seen(&extract(&h));
        assert_eq!(fast, reference(&h), "{lines:?}");
        fast
    }

    fn parent(traceparent: &str) -> Option<(String, String, bool)> {
        let s = both(&[("traceparent", traceparent)]);
        s.active.then(|| {
            (
                s.trace_id.to_string(),
                s.span_id.to_string(),
                s.flags.is_sampled(),
            )
        })
    }

    #[test]
    fn the_common_form_is_read() {
        let s = both(&[("traceparent", TP)]);
        assert!(s.active && s.remote && s.flags == TraceFlags::SAMPLED);
        assert_eq!(s.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s.span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(s.trace_state, "");
        assert!(s.baggage.is_empty());
    }

    #[test]
    fn no_headers_no_parent() {
        let s = both(&[]);
        assert!(!s.active && s.baggage.is_empty());
        assert!(!extract(&http::HeaderMap::new()).has_active_span());
    }

    #[test]
    fn malformed_traceparents_give_no_parent() {
        for bad in [
            "",
            "00",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01--",
            "00-ab4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-ab00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-100",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "-0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(parent(bad), None, "{bad}");
        }
    }

    #[test]
    fn what_the_sdk_accepts_is_accepted() {
        let id = |t: &str, s: &str, sampled| Some((t.to_owned(), s.to_owned(), sampled));
        let (t, s) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
        // A trailing `-` ends the list; it is no fifth field.
        assert_eq!(parent(&format!("{TP}-")), id(t, s, true));
        // Whitespace around the value.
        assert_eq!(parent(&format!("  {TP}\t")), id(t, s, true));
        // Later versions may carry more fields; flags other than `sampled` are cleared.
        assert_eq!(parent(&format!("cc-{t}-{s}-09-what-ever")), id(t, s, true));
        assert_eq!(parent(&format!("fe-{t}-{s}-08")), id(t, s, false));
        assert_eq!(parent(&format!("01-{t}-{s}-01--")), id(t, s, true));
        // Outside the W3C grammar, but read by the SDK's `from_str_radix`: an uppercase or
        // signed version, short and zero-padded ids, a signed field.
        assert_eq!(parent(&format!("0A-{t}-{s}-01")), id(t, s, true));
        assert_eq!(parent(&format!("+0-{t}-{s}-01")), id(t, s, true));
        assert_eq!(parent(&format!("000-{t}-{s}-01")), id(t, s, true));
        assert_eq!(
            parent("00-1-2-1"),
            id("00000000000000000000000000000001", "0000000000000002", true)
        );
        assert_eq!(parent(&format!("00-00{t}-+{s}-+1")), id(t, s, true));
    }

    #[test]
    fn tracestate_and_baggage_as_the_sdk_reads_them() {
        let s = both(&[("traceparent", TP), ("tracestate", "a=1,b=2")]);
        assert_eq!(s.trace_state, "a=1,b=2");
        // An invalid tracestate is none, the parent stays.
        let s = both(&[("traceparent", TP), ("tracestate", "A=1")]);
        assert!(s.active && s.trace_state.is_empty());
        // Several lines are one list.
        let s = both(&[
            ("traceparent", TP),
            ("tracestate", "a=1"),
            ("tracestate", "b=2"),
        ]);
        assert_eq!(s.trace_state, "a=1,b=2");
        // Baggage with or without a parent.
        let s = both(&[("baggage", "k=v;p=1, user=ada%20l")]);
        assert!(!s.active);
        assert_eq!(
            s.baggage,
            [
                ("k".into(), "v".into(), "p=1".into()),
                ("user".into(), "ada l".into(), "".into())
            ]
        );
        let s = both(&[("traceparent", TP), ("baggage", "k=v")]);
        assert!(s.active && s.baggage.len() == 1);
        both(&[("baggage", "")]);
        both(&[("baggage", "k"), ("baggage", "x=1")]);
        // A tracestate without a (valid) parent is not read.
        assert!(!both(&[("tracestate", "a=1")]).active);
    }

    #[test]
    fn values_that_are_not_visible_ascii_are_absent() {
        let mut h = headers(&[("tracestate", "a=1")]);
        h.append(
            "traceparent",
            http::HeaderValue::from_bytes(format!("{TP}\u{e9}").as_bytes()).unwrap(),
        );
        h.append("baggage", http::HeaderValue::from_bytes(b"k=\xff").unwrap());
        let fast = seen(&extract(&h));
        assert!(!fast.active && fast.baggage.is_empty());
        assert_eq!(fast, reference(&h));
    }

    #[test]
    fn the_first_traceparent_line_counts() {
        let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        let s = both(&[("traceparent", TP), ("traceparent", other)]);
        assert_eq!(s.span_id.to_string(), "00f067aa0ba902b7");
        assert!(!both(&[("traceparent", "x"), ("traceparent", TP)]).active);
    }

    // ---- The property: the same reading as the SDK's for valid, near-valid and garbage headers.

    /// Lowercase hex of `n` digits, mostly random, sometimes all zeros.
    fn hex(n: usize) -> BoxedStrategy<String> {
        prop_oneof![
            8 => proptest::collection::vec(0u8..16, n)
                .prop_map(|d| d.iter().map(|v| char::from_digit(u32::from(*v), 16).unwrap()).collect()),
            1 => Just("0".repeat(n)),
        ]
        .boxed()
    }

    fn valid_traceparent() -> impl Strategy<Value = String> {
        let version = prop_oneof![
            Just("00".to_owned()),
            Just("01".to_owned()),
            Just("fe".to_owned()),
            Just("ff".to_owned()),
            hex(2)
        ];
        let tail = prop_oneof![
            4 => Just(""),
            1 => Just("-"),
            1 => Just("--"),
            1 => Just("-extra"),
            1 => Just("-0-1"),
        ];
        (version, hex(32), hex(16), hex(2), tail)
            .prop_map(|(v, t, s, f, tail)| format!("{v}-{t}-{s}-{f}{tail}"))
    }

    /// Bytes a header value may hold (no controls but tab), weighted to the ones that matter.
    fn any_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => prop::sample::select(b"0123456789abcdefABCDEF-".to_vec()),
            1 => prop::sample::select(b" \t+,;=%gzGZ_.:/".to_vec()),
            1 => 0x20u8..0x7f,
            1 => 0x80u8..=0xff,
        ]
    }

    #[derive(Clone, Debug)]
    enum Edit {
        Replace(usize, u8),
        Insert(usize, u8),
        Remove(usize),
        Truncate(usize),
        Upper(usize, usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), any_byte()).prop_map(|(i, b)| Edit::Replace(i, b)),
            (any::<usize>(), any_byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<usize>().prop_map(Edit::Remove),
            any::<usize>().prop_map(Edit::Truncate),
            (any::<usize>(), 1usize..40).prop_map(|(i, n)| Edit::Upper(i, n)),
        ]
    }

    fn apply(mut v: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
        for e in edits {
            let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
            match *e {
                Edit::Replace(i, b) if !v.is_empty() => {
                    let i = i % v.len();
                    v[i] = b;
                }
                Edit::Insert(i, b) => v.insert(at(i, v.len()), b),
                Edit::Remove(i) if !v.is_empty() => {
                    v.remove(i % v.len());
                }
                Edit::Truncate(i) => v.truncate(at(i, v.len())),
                Edit::Upper(i, n) => {
                    let i = at(i, v.len());
                    let end = (i + n).min(v.len());
                    v[i..end].make_ascii_uppercase();
                }
                _ => {}
            }
        }
        v
    }

    /// A value: a valid one, left alone or edited a few times, or bytes from scratch.
    fn value(valid: BoxedStrategy<String>) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => valid.clone().prop_map(String::into_bytes),
            4 => (valid, proptest::collection::vec(edit(), 1..4))
                .prop_map(|(v, e)| apply(v.into_bytes(), &e)),
            1 => proptest::collection::vec(any_byte(), 0..70),
        ]
    }

    fn valid_tracestate() -> BoxedStrategy<String> {
        let member = prop_oneof![
            Just("rojo=00f067aa0ba902b7".to_owned()),
            Just("hypertrace=cap:0".to_owned()),
            Just("congo=t61rcWkgMzE".to_owned()),
            Just("t@v=x".to_owned()),
            r"[a-z][a-z0-9_*/\-]{0,6}=[!-+\--<>-~]{1,8}",
        ];
        proptest::collection::vec(member, 0..5)
            .prop_map(|m| m.join(","))
            .boxed()
    }

    fn valid_baggage() -> BoxedStrategy<String> {
        let member = prop_oneof![
            Just("userId=alice".to_owned()),
            Just("k=v;prop=1;flag".to_owned()),
            Just("enc=%E2%82%AC%20x".to_owned()),
            Just(" sp = aced ".to_owned()),
            "[a-zA-Z0-9]{1,6}=[a-zA-Z0-9%]{0,6}",
        ];
        proptest::collection::vec(member, 0..4)
            .prop_map(|m| m.join(","))
            .boxed()
    }

    /// Up to three lines of each header (the first traceparent counts; tracestate lines join).
    fn header_map() -> impl Strategy<Value = http::HeaderMap> {
        let lines = |valid: BoxedStrategy<String>| proptest::collection::vec(value(valid), 0..=3);
        (
            prop_oneof![
                1 => Just(Vec::new()),
                6 => proptest::collection::vec(value(valid_traceparent().boxed()), 1..=2),
            ],
            lines(valid_tracestate()),
            lines(valid_baggage()),
            any::<bool>(),
        )
            .prop_map(|(tp, ts, bg, b3)| {
                let mut h = http::HeaderMap::new();
                for (name, values) in [("traceparent", tp), ("tracestate", ts), ("baggage", bg)] {
                    for v in values {
                        // Values a header map cannot hold (controls) are not sent.
                        if let Ok(v) = http::HeaderValue::from_bytes(&v) {
                            h.append(name, v);
                        }
                    }
                }
                if b3 {
                    h.insert(
                        "b3",
                        http::HeaderValue::from_static(
                            "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
                        ),
                    );
                }
                h
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn the_same_context_as_the_sdk(h in header_map()) {
            prop_assert_eq!(seen(&extract(&h)), reference(&h));
        }

        #[test]
        fn sixteen_digits_read_as_from_str_radix_reads_lowercase_hex(
            digits in proptest::collection::vec(
                prop_oneof![20 => prop::sample::select(b"0123456789abcdef".to_vec()), 1 => any_byte()],
                16,
            )
        ) {
            let lowercase = digits.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
            let std = std::str::from_utf8(&digits).ok().and_then(|s| u64::from_str_radix(s, 16).ok());
            prop_assert_eq!(hex16(&digits), std.filter(|_| lowercase));
        }

        #[test]
        fn the_same_parent_as_the_sdk_for_any_traceparent(v in value(valid_traceparent().boxed())) {
            if let Ok(v) = http::HeaderValue::from_bytes(&v) {
                let mut h = http::HeaderMap::new();
                h.insert("traceparent", v);
                prop_assert_eq!(seen(&extract(&h)), reference(&h));
            }
        }
    }
}
