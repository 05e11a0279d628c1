//! Bad input: property tests of everything that reads untrusted bytes, and malformed HTTP
//! from a raw TCP client against an instrumented server.
//!
//! - body capture: truncation at every boundary, base64, gzip/deflate/brotli with random and corrupt
//!   streams, a 1 GiB gzip bomb;
//! - header capture, `traceparent`/`tracestate`/B3 extraction;
//! - configuration: random `HT_*`/`OTEL_*` variables, random YAML/JSON trees and raw text as files,
//!   YAML alias bombs and deep nesting, extreme values through a running agent;
//! - malformed HTTP: garbage request lines, oversized and invalid headers, truncated chunked bodies.
//!
//! Invariants everywhere: no panic, memory bounded (a counting allocator measures the peak on the
//! test's own thread). Time-boxed for CI: `PROPTEST_CASES` (default 256; the compression and TCP
//! properties run a quarter of that). Longer runs: `PROPTEST_CASES=20000 cargo test --release --test fuzz_inputs`.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::routing::post;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use hypertrace::capture::{
    capture_bytes, record_headers, BodyCapture, CaptureKind, ContentEncoding,
};
use hypertrace::config::{ConfigBuilder, PropagationFormat};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{KeyValue, Value};
use proptest::prelude::*;
use support::receivers::say;

// ---------------------------------------------------------------------------------------------
// Memory: a counting allocator, per thread (tests run in parallel; each measures its own thread).

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now)
            }
        });
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            note(l.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            note(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        note(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            note(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the peak of bytes allocated (and not yet freed) on this
/// thread while it ran, above what was live before.
fn peak_bytes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(|p| p.get());
    (out, (peak - base).max(0) as usize)
}

fn config() -> ProptestConfig {
    // `ProptestConfig::default()` reads PROPTEST_CASES (256 when unset).
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn config_div(n: u32) -> ProptestConfig {
    let c = config();
    ProptestConfig {
        cases: (c.cases / n).max(8),
        ..c
    }
}

// ---------------------------------------------------------------------------------------------
// Body capture.

const KEY: &str = "http.request.body";

/// What one capture recorded: the bytes (text or base64-decoded), whether as base64, truncated.
#[derive(Debug, PartialEq)]
struct Got {
    bytes: Vec<u8>,
    base64: bool,
    truncated: bool,
}

fn parse(out: &[KeyValue]) -> Got {
    let mut got = Got {
        bytes: Vec::new(),
        base64: false,
        truncated: false,
    };
    let mut seen = 0;
    for kv in out {
        match (kv.key.as_str(), &kv.value) {
            (KEY, Value::String(s)) => {
                got.bytes = s.as_str().as_bytes().to_vec();
                seen += 1;
            }
            ("http.request.body.base64", Value::String(s)) => {
                got.bytes = STANDARD_NO_PAD
                    .decode(s.as_str())
                    .expect("standard alphabet, no padding");
                assert!(!s.as_str().ends_with('='), "no padding");
                got.base64 = true;
                seen += 1;
            }
            ("http.request.body.truncated", Value::Bool(true)) => got.truncated = true,
            (k, v) => panic!("unexpected attribute {k} = {v:?}"),
        }
    }
    assert!(seen <= 1, "text and base64 both: {out:?}");
    assert!(!got.truncated || seen == 1, "truncated flag alone: {out:?}");
    got
}

fn capture_chunked(
    limit: usize,
    kind: CaptureKind,
    enc: ContentEncoding,
    body: &[u8],
    cuts: &[usize],
) -> Got {
    let mut c = BodyCapture::new(limit, kind, enc);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    let mut at = 0;
    for cut in cuts.into_iter().chain([body.len()]) {
        c.push(&body[at..cut]);
        at = cut;
    }
    let mut out = Vec::new();
    c.finish(KEY, &mut out);
    parse(&out)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Bytes written least-significant bit first (deflate's bit order).
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, bits: u32) {
        self.acc |= value << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code: most significant bit first.
    fn code(&mut self, code: u64, bits: u32) {
        let mut rev = 0;
        for i in 0..bits {
            rev |= ((code >> i) & 1) << (bits - 1 - i);
        }
        self.put(rev, bits);
    }
    fn align(&mut self) {
        self.put(0, (8 - self.n % 8) % 8);
    }
}

/// A gzip stream of `n` zero bytes built by hand (no compressor run): one fixed-Huffman block of a
/// literal 0 followed by back-references of length 258 at distance 1, 13 bits per 258 bytes, so a
/// 1 GiB bomb is ~6.5 MB. `crc` false writes a zero CRC (the capture stops long before the trailer).
fn gzip_bomb(n: usize, crc: bool) -> Vec<u8> {
    let mut w = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        acc: 0,
        n: 0,
    };
    w.put(1, 1); // BFINAL
    w.put(1, 2); // BTYPE = fixed Huffman
    w.code(0x30, 8); // literal 0
    let mut left = n - 1;
    while left >= 258 {
        w.code(0xc5, 8); // length code 285 = 258
        w.code(0, 5); // distance code 0 = 1
        left -= 258;
    }
    for _ in 0..left {
        w.code(0x30, 8);
    }
    w.code(0, 7); // end of block
    w.align();
    let crc = if crc {
        let mut c = flate2::Crc::new();
        c.update(&vec![0u8; n]);
        c.sum()
    } else {
        0
    };
    w.out.extend_from_slice(&crc.to_le_bytes());
    w.out.extend_from_slice(&(n as u32).to_le_bytes());
    w.out
}

fn encodings() -> impl Strategy<Value = ContentEncoding> {
    prop_oneof![
        Just(ContentEncoding::Identity),
        Just(ContentEncoding::Gzip),
        Just(ContentEncoding::Deflate),
        Just(ContentEncoding::Brotli),
        Just(ContentEncoding::Unknown),
    ]
}

fn kinds() -> impl Strategy<Value = CaptureKind> {
    prop_oneof![Just(CaptureKind::Text), Just(CaptureKind::Base64)]
}

/// The longest prefix of `s` that is at most `limit` bytes and ends on a character boundary.
fn char_prefix(s: &str, limit: usize) -> &str {
    let mut end = limit.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The capture of `text` (UTF-8) at `limit`: the longest prefix that ends on a character boundary,
/// flagged truncated when something was cut.
fn check_text_cut(got: &Got, text: &str, limit: usize) -> Result<(), TestCaseError> {
    let want = char_prefix(text, limit);
    if want.is_empty() && limit > 0 && !text.is_empty() {
        // The limit cuts the first character: nothing would be left as text, so the bytes kept go
        // out as base64 (body.rs `into_text`), flagged truncated.
        prop_assert!(got.base64 && got.truncated, "limit {}: {:?}", limit, got);
        prop_assert_eq!(got.bytes.as_slice(), &text.as_bytes()[..limit]);
        return Ok(());
    }
    prop_assert!(!got.base64, "limit {}", limit);
    prop_assert_eq!(got.bytes.as_slice(), want.as_bytes(), "limit {}", limit);
    prop_assert_eq!(
        got.truncated,
        limit < text.len() && !want.is_empty(),
        "limit {}",
        limit
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Identity bodies of any bytes, any limit, any chunking: what is recorded is a prefix of the
    /// body, at most the limit, flagged truncated exactly when the body was longer, text when it
    /// is UTF-8, base64 otherwise; chunking never changes the result.
    #[test]
    fn identity_capture_is_a_bounded_prefix(
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        limit in 0usize..3500,
        kind in kinds(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let (got, peak) = peak_bytes(|| capture_chunked(limit, kind, ContentEncoding::Identity, &body, &cuts));
        let mut once = Vec::new();
        capture_bytes(limit, kind, ContentEncoding::Identity, &[], &body, KEY, &mut once);
        prop_assert_eq!(&parse(&once), &got);
        prop_assert!(got.bytes.len() <= limit);
        prop_assert!(body.starts_with(&got.bytes));
        if limit == 0 || body.is_empty() {
            prop_assert!(got.bytes.is_empty() && !got.truncated);
        } else {
            prop_assert_eq!(got.truncated, body.len() > limit);
        }
        if kind == CaptureKind::Base64 && !got.bytes.is_empty() {
            prop_assert!(got.base64);
        }
        if !got.base64 {
            prop_assert!(std::str::from_utf8(&got.bytes).is_ok());
        }
        if kind == CaptureKind::Text && !got.bytes.is_empty() {
            let cut = &body[..limit.min(body.len())];
            // Text exactly when the kept bytes are UTF-8 (a character cut by the limit is dropped).
            let text = match std::str::from_utf8(cut) {
                Ok(_) => true,
                Err(e) => body.len() > limit && e.error_len().is_none() && e.valid_up_to() > 0,
            };
            prop_assert_eq!(!got.base64, text, "{:?}", got);
        }
        // The capture holds at most about the limit (plus the output attribute and base64 of it).
        prop_assert!(peak <= 4 * limit + 4096, "peak {} for limit {}", peak, limit);
    }

    /// Unicode text at every limit from 0 to past its length: cut on a character boundary.
    #[test]
    fn truncation_at_every_boundary(s in "\\PC{0,40}") {
        for limit in 0..=s.len() + 1 {
            let got = capture_chunked(limit, CaptureKind::Text, ContentEncoding::Identity, s.as_bytes(), &[]);
            check_text_cut(&got, &s, limit)?;
        }
    }
}

proptest! {
    #![proptest_config(config_div(4))]

    /// Compressed bodies, split anywhere: the capture is the decoded body, cut at the limit.
    #[test]
    fn compressed_capture_equals_decoded_prefix(
        text in "[ -~é€😀]{0,3000}",
        limit in 1usize..4000,
        codec in 0u8..3,
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let data = text.as_bytes();
        let (enc, body) = match codec {
            0 => (ContentEncoding::Gzip, gzip(data)),
            1 => (ContentEncoding::Deflate, zlib(data)),
            _ => (ContentEncoding::Deflate, raw_deflate(data)),
        };
        let got = capture_chunked(limit, CaptureKind::Text, enc, &body, &cuts);
        check_text_cut(&got, &text, limit)?;
    }

    /// Random or corrupted bytes labelled as gzip/deflate/br (or an unknown coding): no panic,
    /// at most the limit recorded, memory bounded by the limit plus a decoder window.
    #[test]
    fn corrupt_compressed_input_is_bounded(
        seed in proptest::collection::vec(any::<u8>(), 0..4000),
        corrupt in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        truncate in any::<Option<usize>>(),
        compress_first in any::<bool>(),
        enc in encodings(),
        kind in kinds(),
        limit in 0usize..5000,
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut body = match (compress_first, enc) {
            (true, ContentEncoding::Gzip) => gzip(&seed),
            (true, ContentEncoding::Deflate) => zlib(&seed),
            _ => seed,
        };
        for (at, b) in corrupt {
            if !body.is_empty() {
                let i = at % body.len();
                body[i] = b;
            }
        }
        if let Some(t) = truncate {
            body.truncate(t % (body.len() + 1));
        }
        let (got, peak) = peak_bytes(|| capture_chunked(limit, kind, enc, &body, &cuts));
        prop_assert!(got.bytes.len() <= limit);
        // About the limit twice (raw fallback and decoded output) and base64 of it, plus the
        // decoder: zlib ~ 45 KiB with its 32 KiB window; brotli sizes its ring buffer from the
        // stream's header, up to its 16 MiB window (see `brotli_window_costs_up_to_16_mib`).
        let decoder = if enc == ContentEncoding::Brotli { BROTLI_WORST } else { 512 * 1024 };
        prop_assert!(peak <= 4 * limit + decoder, "peak {} for limit {}", peak, limit);
    }
}

/// The most a brotli decoder may allocate: its largest window (2^24) once and a half (the ring
/// buffer is reallocated as it grows), plus tables.
const BROTLI_WORST: usize = (1 << 24) * 3 / 2 + (1 << 20);

/// A brotli stream of a few bytes that declares the largest window (WBITS 24) and a 16 MiB first
/// meta-block: the decoder allocates its ring buffer from that, whatever the capture limit.
/// Measured and bounded here; the limit itself is still respected.
#[test]
fn brotli_window_costs_up_to_16_mib() {
    let mut w = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    w.put(1, 1);
    w.put(7, 3); // WBITS = 17 + 7 = 24
    w.put(0, 1); // ISLAST = 0
    w.put(2, 2); // MNIBBLES = 6
    w.put((1 << 24) - 1, 24); // MLEN - 1
    w.put(1, 1); // ISUNCOMPRESSED
    w.align();
    let header = w.out.len();
    w.out.extend(std::iter::repeat_n(b'a', 256 * 1024));
    const LIMIT: usize = 131_072;
    let (got, peak) = peak_bytes(|| {
        capture_chunked(
            LIMIT,
            CaptureKind::Text,
            ContentEncoding::Brotli,
            &w.out,
            &[64, 4096, 100_000],
        )
    });
    say(&format!(
        "brotli window: a {header}-byte header declaring a 16 MiB window and meta-block -> capture of {} bytes (truncated {}), \
         peak {:.1} MiB on the capturing thread (limit {} KiB)",
        got.bytes.len(),
        got.truncated,
        peak as f64 / (1 << 20) as f64,
        LIMIT / 1024
    ));
    // The stream is cut short (256 KiB of a declared 16 MiB meta-block): brotli-decompressor keeps
    // an uncompressed meta-block in its ring buffer until the buffer fills or the stream ends, so
    // only what it wrote out before is recorded, flagged truncated. Never more than the limit.
    assert!(
        got.bytes.len() <= LIMIT && got.truncated && got.bytes.iter().all(|&b| b == b'a'),
        "{got:?}"
    );
    assert!(peak <= BROTLI_WORST + 4 * LIMIT, "peak {peak}");
}

/// "Large window" brotli (a non-standard extension: windows up to 1 GiB) is not decoded: before the
/// fix, 16 bytes of header made the capture allocate and touch 1 GiB (VmHWM +1.0 GB).
#[test]
fn large_window_brotli_is_not_decoded() {
    let mut w = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    w.put(0x11, 8); // large-window marker
    w.put(30, 6); // WBITS = 30: 1 GiB
    for _ in 0..2 {
        w.put(0, 1); // ISLAST = 0
        w.put(2, 2); // MNIBBLES = 6
        w.put((1 << 24) - 1, 24); // MLEN - 1
        w.put(1, 1); // ISUNCOMPRESSED
        w.align();
        w.out.extend(std::iter::repeat_n(b'a', 1 << 20));
    }
    const LIMIT: usize = 131_072;
    let (got, peak) = peak_bytes(|| {
        capture_chunked(
            LIMIT,
            CaptureKind::Text,
            ContentEncoding::Brotli,
            &w.out,
            &[16, 65536],
        )
    });
    say(&format!(
        "large-window brotli: not decoded; {} raw bytes recorded as base64 (truncated {}), peak {} KiB",
        got.bytes.len(),
        got.truncated,
        peak / 1024
    ));
    assert!(got.base64 && got.truncated && got.bytes.len() == LIMIT && got.bytes[0] == 0x11);
    assert!(peak < 4 * LIMIT + 64 * 1024, "peak {peak}");
}

/// A 1 GiB gzip bomb (6.5 MB on the wire) stops at the limit: 128 KiB recorded and flagged, the
/// decoder dropped as soon as the limit is reached, memory and time bounded.
#[test]
fn gzip_bomb_stops_at_the_limit() {
    // The hand-made stream is valid gzip: check on a small one, with its CRC.
    let small = gzip_bomb(100_000, true);
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(small.as_slice()),
        &mut out,
    )
    .unwrap();
    assert!(out.len() == 100_000 && out.iter().all(|&b| b == 0));

    const GIB: usize = 1 << 30;
    const LIMIT: usize = 131_072;
    let bomb = gzip_bomb(GIB, false);
    let t = Instant::now();
    let ((got, pushed), peak) = peak_bytes(|| {
        let mut c = BodyCapture::new(LIMIT, CaptureKind::Text, ContentEncoding::Gzip);
        let mut pushed = 0;
        for chunk in bomb.chunks(16 * 1024) {
            c.push(chunk);
            pushed += chunk.len();
            if c.is_full() {
                break;
            }
        }
        // The rest of the body streams past a full capture (what the body wrapper does).
        for chunk in bomb[pushed..].chunks(64 * 1024) {
            c.push(chunk);
        }
        let mut out = Vec::new();
        c.finish(KEY, &mut out);
        (parse(&out), pushed)
    });
    let took = t.elapsed();
    say(&format!(
        "gzip bomb: {} MB on the wire -> 1 GiB; capture full after {pushed} bytes of input, recorded {} bytes (truncated {}), \
         peak {:.0} KiB on the capturing thread, {took:?}",
        bomb.len() / 1_000_000,
        got.bytes.len(),
        got.truncated,
        peak as f64 / 1024.0
    ));
    assert_eq!(got.bytes.len(), LIMIT);
    assert!(got.truncated && !got.base64 && got.bytes.iter().all(|&b| b == 0));
    assert!(pushed < 64 * 1024, "decoding stopped early: {pushed}");
    assert!(peak < 4 * LIMIT + 1024 * 1024, "peak {peak}");
    assert!(took < Duration::from_secs(20), "{took:?}");
}

// ---------------------------------------------------------------------------------------------
// Header capture.

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("authorization".to_string()),
        Just("Authorization".to_string()),
        Just("cookie".to_string()),
        Just("Set-Cookie".to_string()),
        Just("x-api-key".to_string()),
        Just("proxy-authorization".to_string()),
        Just("content-type".to_string()),
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,24}",
    ]
}

/// Header value bytes the `http` crate accepts: visible ASCII, space, tab, obs-text (0x80-0xff).
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![0x20u8..=0x7e, Just(b'\t'), 0x80u8..=0xff],
        0..64,
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn header_capture_records_every_value_once(
        headers in proptest::collection::vec((header_name(), header_value()), 0..24),
        redact in proptest::collection::vec(header_name(), 0..6),
    ) {
        let mut map = HeaderMap::new();
        for (k, v) in &headers {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_bytes(v).unwrap());
        }
        let redact: Vec<String> = redact.into_iter().collect();
        let mut out = Vec::new();
        record_headers("http.request.header.", &map, &redact, &mut out);
        // Packed into one attribute; unpacked, one attribute per value.
        prop_assert!(out.len() <= 1);
        let out = hypertrace::packed::unpacked(&out);
        prop_assert_eq!(out.len(), map.len(), "one attribute per value");
        for name in map.keys() {
            let values: Vec<&HeaderValue> = map.get_all(name).iter().collect();
            let redacted = redact.iter().any(|r| r.eq_ignore_ascii_case(name.as_str()));
            for (i, v) in values.iter().enumerate() {
                let key = if values.len() == 1 {
                    format!("http.request.header.{}", name.as_str())
                } else {
                    format!("http.request.header.{}[{i}]", name.as_str())
                };
                let kv = out.iter().find(|kv| kv.key.as_str() == key);
                prop_assert!(kv.is_some(), "{} missing", key);
                let want = if redacted { "[REDACTED]".to_string() } else { String::from_utf8_lossy(v.as_bytes()).into_owned() };
                prop_assert_eq!(kv.unwrap().value.as_str().into_owned(), want);
            }
            prop_assert_eq!(name.as_str(), name.as_str().to_ascii_lowercase());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Trace context extraction (W3C and B3).

fn hex_str(n: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(b"0123456789abcdef".to_vec()), n)
        .prop_map(|v| String::from_utf8(v).unwrap())
}

/// Random edits of a string: replace, insert, delete, upper-case.
fn mutate(s: String, edits: Vec<(u8, usize, char)>) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for (op, at, c) in edits {
        let i = if chars.is_empty() {
            0
        } else {
            at % chars.len()
        };
        match op % 4 {
            0 if !chars.is_empty() => chars[i] = c,
            1 => chars.insert(i.min(chars.len()), c),
            2 if !chars.is_empty() => {
                chars.remove(i);
            }
            _ => chars = chars.iter().map(|c| c.to_ascii_uppercase()).collect(),
        }
    }
    chars.into_iter().collect()
}

fn extract(headers: &HashMap<String, String>) -> opentelemetry::trace::SpanContext {
    let prop =
        hypertrace::propagation::build(&[PropagationFormat::B3, PropagationFormat::TraceContext]);
    let cx = prop.extract(headers);
    cx.span().span_context().clone()
}

proptest! {
    #![proptest_config(config())]

    /// A well-formed `traceparent` gives exactly its ids (a zero id gives no parent).
    #[test]
    fn valid_traceparent_round_trips(trace in hex_str(32), span in hex_str(16), flags in hex_str(2)) {
        let h = HashMap::from([("traceparent".to_string(), format!("00-{trace}-{span}-{flags}"))]);
        let sc = extract(&h);
        let zero = trace.bytes().all(|b| b == b'0') || span.bytes().all(|b| b == b'0');
        prop_assert_eq!(sc.is_valid(), !zero);
        if sc.is_valid() {
            prop_assert_eq!(sc.trace_id().to_string(), trace);
            prop_assert_eq!(sc.span_id().to_string(), span);
            prop_assert!(sc.is_remote());
            prop_assert_eq!(sc.is_sampled(), u8::from_str_radix(&flags, 16).unwrap() & 1 == 1);
        }
    }

    /// Mutated or random trace headers, W3C and B3, single and multi: no panic, and a parent only
    /// with non-zero ids.
    #[test]
    fn malformed_trace_headers_never_panic(
        trace in hex_str(32),
        span in hex_str(16),
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<char>()), 0..4),
        which in 0u8..6,
        junk in "\\PC{0,120}",
        state in "\\PC{0,200}",
    ) {
        let mut h = HashMap::new();
        match which {
            0 => { h.insert("traceparent".into(), mutate(format!("00-{trace}-{span}-01"), edits)); }
            1 => { h.insert("traceparent".into(), junk); }
            2 => { h.insert("b3".into(), mutate(format!("{trace}-{span}-1-{span}"), edits)); }
            3 => { h.insert("b3".into(), junk); }
            4 => {
                h.insert("x-b3-traceid".into(), mutate(trace.clone(), edits.clone()));
                h.insert("x-b3-spanid".into(), mutate(span.clone(), edits));
                h.insert("x-b3-sampled".into(), junk);
            }
            _ => {
                h.insert("traceparent".into(), format!("00-{trace}-{span}-01"));
                h.insert("b3".into(), junk);
                h.insert("x-b3-flags".into(), "1".into());
            }
        }
        h.insert("tracestate".into(), state);
        let sc = extract(&h);
        if sc.is_valid() {
            prop_assert!(sc.trace_id() != opentelemetry::trace::TraceId::INVALID);
            prop_assert!(sc.span_id() != opentelemetry::trace::SpanId::INVALID);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration.

const FIELD_PATHS: &[&str] = &[
    "service_name",
    "enabled",
    "propagation_formats",
    "resource_attributes",
    "reporting.endpoint",
    "reporting.trace_reporter_type",
    "reporting.secure",
    "reporting.cert_file",
    "reporting.token",
    "reporting.metric_endpoint",
    "reporting.metric_reporter_type",
    "reporting.enable_grpc_loadbalancing",
    "data_capture.http_headers.request",
    "data_capture.http_headers.response",
    "data_capture.http_body.request",
    "data_capture.http_body.response",
    "data_capture.rpc_metadata.request",
    "data_capture.rpc_body.response",
    "data_capture.body_max_size_bytes",
    "data_capture.body_max_processing_size_bytes",
    "data_capture.allowed_content_types",
    "telemetry.startup_span_enabled",
    "telemetry.metrics_enabled",
    "rustagent.redact_headers",
    "rustagent.max_queue_size",
    "rustagent.max_export_batch_size",
    "rustagent.scheduled_delay_ms",
    "rustagent.export_timeout_ms",
    "rustagent.shutdown_timeout_ms",
];

fn env_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FIELD_PATHS).prop_map(|p| format!("HT_{}", p.replace('.', "_").to_ascii_uppercase())),
        1 => proptest::sample::select(&[
            "OTEL_SERVICE_NAME",
            "OTEL_RESOURCE_ATTRIBUTES",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ][..]).prop_map(String::from),
        1 => "HT_[A-Z_]{1,20}",
    ]
}

fn scalar_text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "true",
                "FALSE",
                "yes",
                "0",
                "1",
                "-1",
                "",
                " ",
                "1e3",
                "0x10",
                "18446744073709551615",
                "18446744073709551616",
                "OTLP",
                "otlp_http",
                "zipkin",
                "JAEGER",
                "B3,tracecontext",
                "b3,,B3",
                "a=b,c=d",
                "=,=",
                "k=%ZZ",
                "k=%E2%82%AC",
                "http://localhost:4317",
                "http://h/v1/traces",
                "http://h/api/v2/spans",
                "[REDACTED]",
                "~",
                "null",
            ][..]
        )
        .prop_map(String::from),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "\\PC{0,60}",
    ]
}

fn file_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(&[
            "service_name", "serviceName", "enabled", "reporting", "endpoint", "trace_reporter_type", "traceReporterType",
            "token", "secure", "cert_file", "data_capture", "dataCapture", "http_headers", "httpBody", "http_body", "request",
            "response", "body_max_size_bytes", "bodyMaxSizeBytes", "allowed_content_types", "rustagent", "redact_headers",
            "max_queue_size", "scheduled_delay_ms", "propagation_formats", "resource_attributes", "telemetry", "goagent",
            "javaagent", "opa",
        ][..]).prop_map(String::from),
        1 => "[a-zA-Z_]{1,12}",
        1 => "\\PC{0,12}",
    ]
}

fn json_tree() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        any::<u64>().prop_map(J::from),
        proptest::num::f64::NORMAL.prop_map(J::from),
        scalar_text().prop_map(J::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(J::Array),
            proptest::collection::btree_map(file_key(), inner, 0..8)
                .prop_map(|m| J::Object(m.into_iter().collect())),
        ]
    })
}

/// An error is one line that says what was wrong; a panic fails the property.
fn check_load(
    result: Result<
        (
            hypertrace::config::Config,
            Vec<hypertrace::config::ConfigWarning>,
        ),
        hypertrace::config::ConfigError,
    >,
) -> Result<(), TestCaseError> {
    match result {
        Ok((cfg, warnings)) => {
            prop_assert!(
                cfg.rustagent.max_queue_size >= 1 && cfg.rustagent.max_export_batch_size >= 1
            );
            for w in warnings {
                prop_assert!(!w.to_string().contains('\n'), "{}", w);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(msg.starts_with("invalid configuration: "), "{}", msg);
            prop_assert!(!msg.contains('\n'), "{}", msg);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_environment_never_panics(vars in proptest::collection::vec((env_name(), scalar_text()), 0..12)) {
        let (result, peak) = peak_bytes(|| ConfigBuilder::new("x").env_vars(vars.clone()).load());
        check_load(result)?;
        prop_assert!(peak < 1 << 20, "peak {}", peak);
    }

    #[test]
    fn random_config_files_never_panic(tree in json_tree(), raw in "\\PC{0,300}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let yaml = serde_yaml::to_string(&tree).unwrap();
        let json = serde_json::to_string(&tree).unwrap();
        for (name, content) in [
            ("t.yaml", yaml.into_bytes()),
            ("t.json", json.into_bytes()),
            ("raw.yaml", raw.clone().into_bytes()),
            ("raw.json", raw.into_bytes()),
            ("bytes.yml", bytes.clone()),
            ("bytes.json", bytes.clone()),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, &content).unwrap();
            let (result, peak) = peak_bytes(|| ConfigBuilder::new("x").env_vars(Vec::new()).config_file(&path).load());
            check_load(result)?;
            prop_assert!(peak < 4 << 20, "{}: peak {}", name, peak);
        }
    }
}

/// YAML that expands (billion laughs), nests deeply, or is simply big: an error or a bounded
/// result, never a stack overflow or unbounded memory.
#[test]
fn hostile_config_files_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut laughs = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10u8 {
        let (p, c) = ((b'a' + i - 1) as char, (b'a' + i) as char);
        laughs += &format!("{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n");
    }
    laughs += "service_name: *j\n";
    let cases: Vec<(&str, String)> = vec![
        ("laughs.yaml", laughs),
        ("deep.yaml", "[".repeat(100_000)),
        (
            "deep2.yaml",
            "a:\n".to_string()
                + &(1..5000)
                    .map(|i| format!("{}b:\n", " ".repeat(i)))
                    .collect::<String>(),
        ),
        ("deep.json", "[".repeat(100_000) + &"]".repeat(100_000)),
        (
            "deepobj.json",
            "{\"a\":".repeat(50_000) + "1" + &"}".repeat(50_000),
        ),
        (
            "big.yaml",
            format!(
                "service_name: {}\nrustagent:\n  redact_headers: [{}]\n",
                "s".repeat(5 << 20),
                vec!["x-h"; 100_000].join(",")
            ),
        ),
        (
            "tags.yaml",
            "service_name: !!binary aGVsbG8=\nenabled: !!bool yes\nreporting: !custom {}\n".into(),
        ),
        ("multi.yaml", "enabled: true\n---\nenabled: false\n".into()),
    ];
    let mut rows = Vec::new();
    for (name, content) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &content).unwrap();
        let t = Instant::now();
        let (result, peak) = peak_bytes(|| {
            ConfigBuilder::new("x")
                .env_vars(Vec::new())
                .config_file(&path)
                .load()
        });
        let took = t.elapsed();
        let outcome = match &result {
            Ok((c, w)) => format!(
                "ok (service_name {} bytes, {} warnings)",
                c.service_name.len(),
                w.len()
            ),
            Err(e) => {
                let m = e.to_string();
                assert!(!m.contains('\n'));
                m.chars().take(160).collect()
            }
        };
        rows.push(format!(
            "{name} ({} KiB): {took:?}, peak {} KiB: {outcome}",
            content.len() / 1024,
            peak / 1024
        ));
        // Linear in the file's size, whatever its aliases or nesting (libyaml's token queue for
        // 100 000 unclosed `[` is the worst seen, ~ 220 bytes per byte).
        assert!(
            peak < 512 * content.len() + (16 << 20),
            "{name}: peak {peak}"
        );
        assert!(took < Duration::from_secs(30), "{name}: {took:?}");
        if name == "laughs.yaml" {
            // 9^9 "lol"s would be ~ 1.5 GB: the expansion must be refused or bounded.
            assert!(peak < 64 << 20, "{name}: peak {peak}");
        }
    }
    say(&format!("hostile config files:\n  {}", rows.join("\n  ")));
}

/// The extremes the configuration accepts (1 and the largest numbers) through a running agent:
/// spans still flow, flush and shutdown return.
#[test]
fn extreme_config_values_keep_the_agent_working() {
    let max = u64::MAX.to_string();
    let usize_max = usize::MAX.to_string();
    for (var, value) in [
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", max.as_str()),
        ("HT_RUSTAGENT_SCHEDULED_DELAY_MS", "1"),
        ("HT_RUSTAGENT_EXPORT_TIMEOUT_MS", max.as_str()),
        ("HT_RUSTAGENT_EXPORT_TIMEOUT_MS", "1"),
        ("HT_RUSTAGENT_SHUTDOWN_TIMEOUT_MS", max.as_str()),
        ("HT_RUSTAGENT_MAX_QUEUE_SIZE", usize_max.as_str()),
        ("HT_RUSTAGENT_MAX_QUEUE_SIZE", "1"),
        ("HT_RUSTAGENT_MAX_EXPORT_BATCH_SIZE", usize_max.as_str()),
        ("HT_RUSTAGENT_MAX_EXPORT_BATCH_SIZE", "1"),
        ("HT_DATA_CAPTURE_BODY_MAX_SIZE_BYTES", usize_max.as_str()),
    ] {
        let (cfg, _) = ConfigBuilder::new("x")
            .env_vars([(var.to_string(), value.to_string())])
            .load()
            .unwrap();
        let spans = support::Spans::default();
        let agent = hypertrace::Agent::with_exporter(cfg, spans.clone());
        use opentelemetry::trace::{Tracer as _, TracerProvider as _};
        let tracer = agent.tracer_provider().tracer("x");
        drop(tracer.start("one"));
        let t = Instant::now();
        agent.tracer_provider().force_flush().unwrap();
        agent.tracer_provider().shutdown().unwrap();
        assert_eq!(spans.0.lock().unwrap().len(), 1, "{var}={value}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{var}={value}: {:?}",
            t.elapsed()
        );
        let mut body = BodyCapture::new(
            agent.config().data_capture.body_max_size_bytes,
            CaptureKind::Text,
            ContentEncoding::Gzip,
        );
        body.push(&gzip(b"{\"a\":1}"));
        let mut out = Vec::new();
        body.finish(KEY, &mut out);
        assert_eq!(parse(&out).bytes, b"{\"a\":1}", "{var}={value}");
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed HTTP from a raw TCP client.

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Only the server's threads: proptest cases panic on purpose on the test threads.
            let t = std::thread::current();
            let name = t.name().unwrap_or("");
            if name.starts_with("tokio-runtime-worker") || name.starts_with("hypertrace") {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            prev(info);
        }));
    });
}

#[hypertrace::handler]
async fn echo(body: String) -> String {
    body
}

/// Sends `bytes` (then half-closes when `close`), returns what came back (lossy) or "" when the
/// server closed without answering. Write errors (the server closing on us) are part of the game.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8], close: bool) -> String {
    raw_waiting(addr, bytes, close, Duration::from_secs(5)).await
}

/// [`raw`], waiting at most `first` for the answer to start (a partial request head gets none).
async fn raw_waiting(
    addr: std::net::SocketAddr,
    bytes: &[u8],
    close: bool,
    first: Duration,
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let write = async {
        let _ = s.write_all(bytes).await;
        if close {
            let _ = s.shutdown().await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
    // Up to `first` for the answer to start; then until the server closes or goes quiet for 300 ms
    // (a keep-alive connection stays open after its response).
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let wait = if out.is_empty() {
            first
        } else {
            Duration::from_millis(300)
        };
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_line(resp: &str) -> String {
    resp.lines()
        .next()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| "(closed, no response)".into())
}

async fn still_serving(addr: std::net::SocketAddr) {
    let r = support::client()
        .post(format!("http://{addr}/echo"))
        .header("content-type", "application/json")
        .body("{\"ok\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{\"ok\":1}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_gets_normal_errors_and_the_server_keeps_serving() {
    count_panics();
    let agent = support::agent(|_| {});
    let app = axum::Router::new().route("/echo", post(echo)).merge(
        axum::Router::new()
            .route("/l/echo", post(|b: String| async move { b }))
            .layer(hypertrace::layer()),
    );
    let addr = support::serve(app).await;
    let big = "a".repeat(100 * 1024);
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let huge = format!("x-big: {}\r\n", "b".repeat(1 << 20));
    let long_uri = format!("/echo?{}", "q".repeat(100 * 1024));
    let post = |path: &str, headers: &str, body: &str| {
        format!("POST {path} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n{headers}\r\n{body}")
    };
    let cases: Vec<(&str, Vec<u8>, bool, &[&str])> = vec![
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), false, &["400"]),
        ("binary junk", support::receivers::garbage(2048), false, &["400", "closed"]),
        ("empty then close", Vec::new(), true, &["closed"]),
        ("bad method token", b"GE T / HTTP/1.1\r\nhost: t\r\n\r\n".to_vec(), false, &["400"]),
        ("unknown HTTP version", b"GET / HTTP/9.9\r\nhost: t\r\n\r\n".to_vec(), false, &["505", "400"]),
        ("header name with a space", post("/echo", "bad header: x\r\ncontent-length: 2\r\n", "{}").into_bytes(), false, &["400"]),
        ("NUL in a header value", post("/echo", "x-a: a\0b\r\ncontent-length: 2\r\n", "{}").into_bytes(), false, &["400"]),
        ("bare LF line ends", b"POST /echo HTTP/1.1\nhost: t\ncontent-length: 2\n\n{}".to_vec(), false, &["200", "400"]),
        ("one 100 KiB header", post("/echo", &format!("x-big: {big}\r\ncontent-length: 2\r\n"), "{}").into_bytes(), false, &["200", "431"]),
        ("200 headers", post("/echo", &format!("{many}content-length: 2\r\n"), "{}").into_bytes(), false, &["431"]),
        ("1 MiB of headers", post("/echo", &format!("{huge}content-length: 2\r\n"), "{}").into_bytes(), false, &["431", "closed"]),
        ("100 KiB URI", format!("GET {long_uri} HTTP/1.1\r\nhost: t\r\n\r\n").into_bytes(), false, &["414", "431", "200", "405"]),
        ("truncated chunked body", post("/echo", "transfer-encoding: chunked\r\n", "10\r\n{\"a\":1").into_bytes(), true, &["400", "closed"]),
        ("invalid chunk size", post("/echo", "transfer-encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n").into_bytes(), false, &["400", "closed"]),
        ("truncated chunked body, layer", post("/l/echo", "transfer-encoding: chunked\r\n", "10\r\n{\"a\":1").into_bytes(), true, &["400", "closed"]),
        ("content-length larger than the body", post("/echo", "content-length: 100\r\n", "{\"a\":1}").into_bytes(), true, &["400", "closed"]),
        ("content-length twice, different", post("/echo", "content-length: 2\r\ncontent-length: 3\r\n", "{}").into_bytes(), false, &["400"]),
        ("content-length and chunked", post("/echo", "content-length: 2\r\ntransfer-encoding: chunked\r\n", "2\r\n{}\r\n0\r\n\r\n").into_bytes(), false, &["400", "200"]),
        ("negative content-length", post("/echo", "content-length: -1\r\n", "{}").into_bytes(), false, &["400"]),
        ("obs-text header value", [b"POST /echo HTTP/1.1\r\nhost: t\r\nx-latin: caf\xe9\r\ncontent-length: 2\r\n\r\n{}".as_slice()].concat(), false, &["200"]),
        ("invalid UTF-8 JSON body", [post("/echo", "content-length: 4\r\n", "").into_bytes(), vec![0xff, 0xfe, b'{', b'}']].concat(), false, &["400", "200"]),
        ("gzip body that is not gzip", post("/echo", "content-encoding: gzip\r\ncontent-length: 4\r\n", "{}{}").into_bytes(), false, &["200"]),
    ];
    let mut rows = Vec::new();
    let before = PANICS.load(Ordering::SeqCst);
    for (name, bytes, close, expect) in &cases {
        let resp = raw(addr, bytes, *close).await;
        let status = status_line(&resp);
        rows.push(format!("{name}: {status}"));
        assert!(
            expect.iter().any(|e| status.contains(e)),
            "{name}: got {status:?}, expected one of {expect:?}"
        );
        still_serving(addr).await;
    }
    // What reached the agent was recorded without a panic: the latin-1 value lossily.
    let spans = tokio::task::block_in_place(|| agent.wait_spans(cases.len()));
    let latin = spans
        .iter()
        .find_map(|s| support::attr_str(s, "http.request.header.x-latin"))
        .expect("x-latin captured");
    assert_eq!(latin, "caf\u{fffd}");
    let panics = PANICS.load(Ordering::SeqCst) - before;
    say(&format!("malformed HTTP against an instrumented axum server ({} spans recorded, {panics} panics):\n  {}", spans.len(), rows.join("\n  ")));
    assert_eq!(panics, 0);
}

proptest! {
    #![proptest_config(config_div(8))]

    /// Random bytes after a valid request head, or random request heads: the server answers or
    /// closes, never panics, and keeps serving.
    #[test]
    fn random_requests_never_break_the_server(
        head in proptest::collection::vec(any::<u8>(), 0..512),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        valid_head in any::<bool>(),
        close in any::<bool>(),
    ) {
        count_panics();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let _agent = support::agent(|_| {});
            let addr = support::serve(axum::Router::new().route("/echo", post(echo))).await;
            let before = PANICS.load(Ordering::SeqCst);
            let mut req = if valid_head {
                format!("POST /echo HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes()
            } else {
                head
            };
            req.extend_from_slice(&body);
            let _ = raw_waiting(addr, &req, close, Duration::from_secs(1)).await;
            still_serving(addr).await;
            assert_eq!(PANICS.load(Ordering::SeqCst), before);
        });
    }
}
