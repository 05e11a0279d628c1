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
//!
//! This runs for every captured JSON or form body (on the agent's export thread, for the bodies its
//! entry points capture: see `capture::deferred`), so the scan is built for
//! the common case, a body full of short keys none of which matches: the names are normalised
//! once ([`FieldNames`], cached per thread for the configured list); a JSON body's quotes are
//! found 64 bytes at a time as a bit set, and where the body holds no `\` which quotes open and
//! close strings follows from their parity (`bulk`: only a key costs a look of its own), while
//! around a `\` each string is taken by itself (`Strings`); a short key met before on the same thread (the keys of an array of objects, the
//! same endpoint's keys request after request) is answered from a small table of verdicts
//! (`Memo`); and a key is only normalised into a buffer and searched when the set of its letters
//! holds all the letters of some name.
//!
//! The table keeps, per thread, the verdicts on the last short keys met (at most 32 keys of at
//! most 16 bytes) for one list of names: key names of earlier bodies, never their values, stay in
//! that thread's memory until other keys take their slots. A different list starts it afresh.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
    FieldNames::new(fields)?.redact(body, syntax)
}

/// The names of `rustagent.redact_body_fields`, normalised (lower-cased, separators dropped) for
/// matching: built once, then used for any number of bodies.
#[derive(Debug)]
pub struct FieldNames {
    /// The normalised names, back to back.
    bytes: Vec<u8>,
    names: Vec<Name>,
    /// The names' sets of letters (as in [`Name::mask`]), apart: checked all at once for a key,
    /// [`MASK_LANES`] at a time (padded with masks no real key's letters hold).
    masks: Vec<u32>,
    /// The length of the shortest name.
    min_len: usize,
    /// Unique to this list: what a thread's [`Memo`] is kept for.
    id: u64,
}

/// The next [`FieldNames::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One normalised name of [`FieldNames`].
#[derive(Debug)]
struct Name {
    start: usize,
    end: usize,
    /// A name can only occur in a key that has all of its letters: most keys are ruled out by one
    /// AND, without searching.
    mask: u32,
}

/// A list of names and what it normalises to (`None`: nothing to redact).
type Compiled = (Arc<[String]>, Option<Arc<FieldNames>>);

thread_local! {
    /// The last list compiled on this thread: the configuration's list is the same `Arc` for
    /// every body, so it is normalised once per thread, not once per body.
    static COMPILED: RefCell<Option<Compiled>> = const { RefCell::new(None) };

    /// The verdicts on the short keys met on this thread, and the [`FieldNames::id`] they are for.
    static MEMO: RefCell<(u64, Memo)> = const { RefCell::new((0, Memo::EMPTY)) };
}

impl FieldNames {
    /// The normalised names, `None` when there is none (an empty list, or only blank entries).
    pub fn new(fields: &[String]) -> Option<FieldNames> {
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
                    mask: letters(&bytes[start..]),
                });
            }
        }
        if names.is_empty() {
            return None;
        }
        let mut masks: Vec<u32> = names.iter().map(|n| n.mask).collect();
        masks.resize(masks.len().next_multiple_of(MASK_LANES), PADDING);
        let min_len = names.iter().map(|n| n.end - n.start).min().unwrap_or(0);
        Some(FieldNames {
            bytes,
            names,
            masks,
            min_len,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// [`FieldNames::new`] for a shared list, normalised once per thread as long as the list is
    /// the same `Arc` (the configuration's).
    pub fn shared(fields: &Arc<[String]>) -> Option<Arc<FieldNames>> {
        COMPILED.with(|c| {
            let mut c = c.borrow_mut();
            if let Some((list, names)) = &*c {
                if Arc::ptr_eq(list, fields) {
                    return names.clone();
                }
            }
            let names = FieldNames::new(fields).map(Arc::new);
            *c = Some((fields.clone(), names.clone()));
            names
        })
    }

    /// `body` with the values of the keys that match replaced, or `None` when nothing was.
    pub fn redact(&self, body: &[u8], syntax: Syntax) -> Option<Vec<u8>> {
        match syntax {
            Syntax::Json => redact_json(body, self),
            Syntax::Form => redact_form(body, self),
        }
    }

    /// Whether a normalised key holding `mask`'s letters and `len` bytes may contain a name.
    fn may_match(&self, mask: u32, len: usize) -> bool {
        // Without an early exit, so that the names are checked several at a time.
        len >= self.min_len
            && self
                .masks
                .chunks_exact(MASK_LANES)
                .any(|lanes| lanes.iter().fold(false, |any, &m| any | (m & !mask == 0)))
    }

    /// Whether the normalised `key` contains one of the names.
    fn key_matches(&self, key: &[u8]) -> bool {
        let mask = letters(key);
        self.names.iter().any(|n| {
            n.mask & !mask == 0
                && n.end - n.start <= key.len()
                && contains(key, &self.bytes[n.start..n.end])
        })
    }

    /// A JSON key without its quotes; `escaped`: it holds a `\`.
    fn json_key_matches(&self, raw: &[u8], escaped: bool) -> bool {
        if escaped {
            return self.key_matches(&normalise_json_key(raw));
        }
        self.plain_key_matches(raw)
    }

    /// A key to take byte for byte (no escape): its letters are counted without a copy, and
    /// it is only normalised into a buffer when they could hold a name.
    fn plain_key_matches(&self, raw: &[u8]) -> bool {
        let (mut mask, mut len) = (0u32, 0usize);
        for &b in raw {
            let n = NORMALISED[b as usize];
            mask |= LETTER[n as usize];
            len += usize::from(n != DROPPED);
        }
        if !self.may_match(mask, len) {
            return false;
        }
        let mut stack = [0u8; 64];
        if len <= stack.len() {
            let mut k = 0;
            for &b in raw {
                let n = NORMALISED[b as usize];
                if n != DROPPED {
                    stack[k] = n;
                    k += 1;
                }
            }
            self.key_matches(&stack[..len])
        } else {
            let key: Vec<u8> = raw.iter().filter_map(|&b| normalise(b)).collect();
            self.key_matches(&key)
        }
    }

    /// A form key, percent-encoded.
    fn form_key_matches(&self, raw: &[u8]) -> bool {
        // `+` (a space) and percent-escapes need decoding; anything else is taken byte for byte.
        if memchr2(b'%', b'+', raw).is_none() {
            return self.plain_key_matches(raw);
        }
        let mut key = Vec::with_capacity(raw.len());
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
                key.push(n);
            }
        }
        self.key_matches(&key)
    }
}

/// A JSON key holding escapes, decoded and normalised.
fn normalise_json_key(raw: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(raw.len());
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
            key.push(n);
        }
    }
    key
}

/// What [`normalise`] drops, in [`NORMALISED`].
const DROPPED: u8 = 0;

/// [`normalise`] as a table, with [`DROPPED`] for the dropped bytes.
const NORMALISED: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match normalise(b as u8) {
            Some(n) => n,
            None => DROPPED,
        };
        b += 1;
    }
    t
};

/// The bit of a normalised byte in a key's set of letters: one per letter, five for the digits,
/// one for anything else (and none for [`DROPPED`]).
const LETTER: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut b = 1;
    while b < 256 {
        t[b] = match b as u8 {
            c @ b'a'..=b'z' => 1 << (c - b'a'),
            c @ b'0'..=b'9' => 1 << (26 + (c - b'0') / 2),
            _ => 1 << 31,
        };
        b += 1;
    }
    t
};

/// How many names' masks [`FieldNames::may_match`] checks at once.
const MASK_LANES: usize = 8;

/// A mask in no key's set of letters but one holding every letter, every digit and more: which is
/// then searched for the names, and not found.
const PADDING: u32 = u32::MAX;

/// The set of letters of a normalised key or name.
fn letters(s: &[u8]) -> u32 {
    s.iter().fold(0, |m, &b| m | LETTER[b as usize])
}

/// Lower-cased, separators dropped.
const fn normalise(b: u8) -> Option<u8> {
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

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `w` equal to `b` set. Bits above the first match may be set
/// wrongly (a borrow runs on), so only the lowest set bit is to be trusted.
fn bytes_equal(w: u64, b: u8) -> u64 {
    let x = w ^ (ONES * u64::from(b));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Words looked at one by one before handing a long run to `memchr`: between JSON tokens, and
/// in most strings, the next quote is a few bytes away, closer than `memchr`'s set-up costs.
const SHORT_WORDS: usize = 4;

/// The index of the first `a` or `b` in `s[from..]` (`a == b` to look for one byte).
#[inline(always)]
fn find(s: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    let mut i = from;
    for _ in 0..SHORT_WORDS {
        let Some(word) = s.get(i..i + 8) else {
            let rest = s.get(i..)?;
            return rest.iter().position(|&c| c == a || c == b).map(|p| i + p);
        };
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let m = bytes_equal(w, a) | bytes_equal(w, b);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr2(a, b, &s[i..]).map(|p| i + p)
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

fn redact_json(body: &[u8], m: &FieldNames) -> Option<Vec<u8>> {
    MEMO.with(|cell| match cell.try_borrow_mut() {
        Ok(mut kept) => {
            if kept.0 != m.id {
                *kept = (m.id, Memo::EMPTY);
            }
            redact_json_with(body, m, &mut kept.1)
        }
        // Not reentered in practice; a table of its own would be as right.
        Err(_) => {
            let mut fresh = Memo::EMPTY;
            redact_json_with(body, m, &mut fresh)
        }
    })
}

fn redact_json_with(body: &[u8], m: &FieldNames, memo: &mut Memo) -> Option<Vec<u8>> {
    let mut edits = Edits::new(body);
    let mut strings = Strings::new(body);
    let mut i = 0;
    // The first `\` at or after `i` (`body.len()`: none).
    let mut escape = memchr(b'\\', body).unwrap_or(body.len());
    loop {
        // Where no `\` is, the blocks up to the one that holds the next are scanned in bulk.
        if escape < i {
            escape = memchr(b'\\', &body[i..]).map_or(body.len(), |p| i + p);
        }
        let limit = if escape == body.len() {
            body.len()
        } else {
            escape & !63
        };
        if i < limit {
            match bulk(body, m, memo, &mut edits, i, limit) {
                Bulk::Done => break,
                Bulk::At(next) => {
                    i = next;
                    continue;
                }
                // The next string is taken the careful way below.
                Bulk::Limit(next) => i = next,
            }
        }
        // One string the careful way: it may hold escapes.
        let Some(start) = strings.next_quote(i) else {
            break;
        };
        // A string cut by the end of the capture: a key fragment, or a value whose key did not
        // match (a matching key's value is handled below, and skipped).
        let Some(string) = strings.at(start) else {
            break;
        };
        let end = string.end;
        i = end;
        let Some(colon) = colon_after(body, end) else {
            continue;
        };
        match key_found(body, m, memo, &mut edits, start, end, string.escaped, colon) {
            None => {}
            Some(Flow::At(next)) => i = next,
            Some(Flow::Stop) => break,
        }
    }
    edits.finish()
}

/// Where [`bulk`] stopped.
enum Bulk {
    /// At the end of the body: nothing more to redact.
    Done,
    /// A key matched: the scan goes on here, just past its value.
    At(usize),
    /// At the limit: the scan goes on here, outside any string or at the opening quote of a
    /// string that runs past the limit.
    Limit(usize),
}

/// Scans `body[from..limit]`, where no `\` is and `from` is outside any string, a block of 64
/// bytes at a time: the quotes as a bit set, and which of them open and close strings from the
/// running parity of the quotes before them (a prefix XOR). Only a closing quote costs a look at
/// the byte after it, and only a key (a closing quote and then `:`) its verdict: the strings
/// themselves are never walked. Stops at the first key that matches, where [`key_found`] went on.
fn bulk(
    body: &[u8],
    m: &FieldNames,
    memo: &mut Memo,
    edits: &mut Edits<'_>,
    from: usize,
    limit: usize,
) -> Bulk {
    let mut block = from & !63;
    let mut quotes = quote_block(body, block) & (u64::MAX << (from & 63));
    // Whether the block starts inside a string, and then where that string's quote is.
    let (mut inside, mut open) = (false, 0usize);
    loop {
        // Bit `i`: an odd number of quotes at or before `block + i` (inverted when the block
        // starts inside a string), so set from an opening quote up to its closing one, which is
        // clear.
        let mut parity = prefix_xor(quotes);
        if inside {
            parity = !parity;
        }
        let opening = quotes & parity;
        let mut closing = quotes & !parity;
        while closing != 0 {
            let p = closing.trailing_zeros();
            closing &= closing - 1;
            let end = block + p as usize + 1;
            // A value's closing quote (no `:` after it) is done with here.
            let Some(colon) = colon_after(body, end) else {
                continue;
            };
            // A key's opening quote: the last one before it, in this block or an earlier one.
            let before = opening & ((1u64 << p) - 1);
            let start = if before != 0 {
                block + 63 - before.leading_zeros() as usize
            } else {
                open
            };
            match key_found(body, m, memo, edits, start, end, false, colon) {
                None => {}
                Some(Flow::At(next)) => return Bulk::At(next),
                Some(Flow::Stop) => return Bulk::Done,
            }
        }
        inside = parity >> 63 != 0;
        if inside && opening != 0 {
            open = block + 63 - opening.leading_zeros() as usize;
        }
        block += 64;
        if block >= body.len() {
            // Past the end: a string still open here was cut, as far as it goes.
            return Bulk::Done;
        }
        if block >= limit {
            return Bulk::Limit(if inside { open } else { block });
        }
        quotes = quote_block(body, block);
    }
}

/// Bit `i` set when an odd number of bits `0..=i` of `x` are.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// After the string that ends just before `end`: the index of the `:` that makes it a key,
/// whitespace allowed between.
#[inline(always)]
fn colon_after(body: &[u8], end: usize) -> Option<usize> {
    // Mostly the colon, or the `,` `}` `]` after a value, right after the quote.
    let colon = match body.get(end) {
        Some(b':') => return Some(end),
        Some(b' ' | b'\t' | b'\n' | b'\r') => skip_ws(body, end),
        _ => return None,
    };
    (body.get(colon) == Some(&b':')).then_some(colon)
}

/// What the scan does after a key that matched.
enum Flow {
    /// Goes on here, past the value.
    At(usize),
    /// Stops: the value runs to the end of the capture.
    Stop,
}

/// The key `body[start..end]` (quotes included; `escaped`: it holds a `\`), followed by the `:`
/// at `colon`. `None` when it does not match; else its value is redacted, and where to go on.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn key_found(
    body: &[u8],
    m: &FieldNames,
    memo: &mut Memo,
    edits: &mut Edits<'_>,
    start: usize,
    end: usize,
    escaped: bool,
    colon: usize,
) -> Option<Flow> {
    let (key, len) = (start + 1, end - start - 2);
    let matches = if escaped || len > MEMO_KEY_LEN {
        m.json_key_matches(&body[key..end - 1], escaped)
    } else {
        memo.verdict(key_words(body, key, len), len, || {
            m.plain_key_matches(&body[key..end - 1])
        })
    };
    if !matches {
        return None;
    }
    let value = skip_ws(body, colon + 1);
    if value >= body.len() {
        // Cut before the value: nothing of it was captured.
        return Some(Flow::Stop);
    }
    if let Some(len) = literal_len(&body[value..]) {
        return Some(Flow::At(value + len));
    }
    Some(match value_end(body, value) {
        // No value at all (`"token":}`): nothing to hide.
        Some(value_end) if value_end == value => Flow::At(value),
        Some(value_end) => {
            edits.replace(value, value_end, JSON_REDACTED);
            Flow::At(value_end)
        }
        None => {
            // The value runs to the end of the capture: all of the rest is redacted.
            edits.replace(value, body.len(), JSON_REDACTED);
            Flow::Stop
        }
    })
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

/// A JSON string found by [`Strings::at`].
struct JsonString {
    /// The index just past the closing quote.
    end: usize,
    /// The string holds a `\`.
    escaped: bool,
}

/// Finds the JSON strings of one body, front to back.
///
/// Most strings hold no escape, and then end at the next quote. So the quotes are found a block
/// of 64 bytes at a time, as a bit set (no branch per byte, and a string's two quotes are often
/// in the same block), and the next `\` of the body is known (one `memchr`, again only once the
/// scan has passed it): a string that closes before it is done; any other is left to
/// [`string_end`].
struct Strings<'a> {
    body: &'a [u8],
    /// The start of the block whose quotes are in `quotes`.
    block: usize,
    /// The quotes of `body[block..block + 64]` at or after `pos`, bit `i` for `body[block + i]`:
    /// taken one by one, so that the quote after a string's is at hand without a search.
    quotes: u64,
    /// Where the next quote is looked for from.
    pos: usize,
    /// The first `\` at or after the strings still to come (`body.len()`: none).
    next_escape: usize,
}

impl<'a> Strings<'a> {
    fn new(body: &'a [u8]) -> Self {
        Strings {
            body,
            block: 0,
            quotes: quote_block(body, 0),
            pos: 0,
            // Not searched yet: the first string does.
            next_escape: 0,
        }
    }

    /// The index of the first `"` in `body[from..]`, where `from` is never before where the
    /// last search ended.
    #[inline(always)]
    fn next_quote(&mut self, from: usize) -> Option<usize> {
        debug_assert!(from >= self.pos);
        // Right after a string, `quotes` is already where to look from.
        if from != self.pos {
            let block = from & !63;
            if block != self.block {
                self.block = block;
                self.quotes = quote_block(self.body, block);
            }
            self.quotes &= u64::MAX << (from & 63);
            self.pos = from;
        }
        while self.quotes == 0 {
            self.block += 64;
            if self.block >= self.body.len() {
                return None;
            }
            self.quotes = quote_block(self.body, self.block);
        }
        let quote = self.block + self.quotes.trailing_zeros() as usize;
        self.quotes &= self.quotes - 1;
        self.pos = quote + 1;
        Some(quote)
    }

    /// The string whose opening quote is `body[start]`, the last quote found; `None` when it
    /// is cut.
    #[inline(always)]
    fn at(&mut self, start: usize) -> Option<JsonString> {
        let from = start + 1;
        if self.next_escape < from {
            self.next_escape =
                memchr(b'\\', &self.body[from..]).map_or(self.body.len(), |p| from + p);
        }
        match self.next_quote(from) {
            // No `\` before the closing quote: the string ends there.
            Some(close) if close < self.next_escape => Some(JsonString {
                end: close + 1,
                escaped: false,
            }),
            // No quote and no `\` up to the end: cut.
            None if self.next_escape == self.body.len() => None,
            // A `\` first: it may escape that quote, or be all of what there is. Its real end
            // is not before the quote just taken: the search goes on from there.
            _ => string_end(self.body, start).map(|(end, escaped)| JsonString { end, escaped }),
        }
    }
}

/// The quotes of `body[at..at + 64]` as a bit set (bit `i` for `body[at + i]`), none past the
/// end.
#[inline]
fn quote_block(body: &[u8], at: usize) -> u64 {
    match body.get(at..at + 64) {
        Some(block) => quote_bits(block),
        None => quote_block_at_end(body.get(at..).unwrap_or_default()),
    }
}

/// [`quote_block`] for the last, short block: padded with zeros, which are not quotes.
#[cold]
fn quote_block_at_end(rest: &[u8]) -> u64 {
    let mut padded = [0u8; 64];
    padded[..rest.len()].copy_from_slice(rest);
    quote_bits(&padded)
}

/// The quotes of a 64-byte block as a bit set, 8 bytes (a word) at a time.
#[inline(always)]
fn quote_bits(block: &[u8]) -> u64 {
    let low7 = !HIGHS;
    // For word k, the high bit of each byte whose low 7 bits, once XORed with a quote's, are not
    // all zero (adding 0x7f carries into it, and never into the next byte), or whose own high
    // bit is set: that is, of each byte that is not a quote. Shifted down by 7 - k, word k's
    // byte j lands on bit 8j + k: the block's bits, transposed as an 8x8 matrix.
    let mut not_quotes = 0u64;
    for (k, word) in block.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let x = w ^ (ONES * u64::from(b'"'));
        not_quotes |= ((((x & low7) + low7) | x) & HIGHS) >> (7 - k);
    }
    transpose8(!not_quotes)
}

/// The 8x8 bit matrix in `x` (bit 8r + c for row r, column c) transposed: three swaps of ever
/// larger blocks about the diagonal.
#[inline(always)]
fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// The key of `len` bytes (at most [`MEMO_KEY_LEN`]) at `body[at..]` as two little-endian
/// words, zero-padded: what [`Memo`] knows a key by.
#[inline(always)]
fn key_words(body: &[u8], at: usize, len: usize) -> [u64; 2] {
    let mask = KEY_MASKS[len];
    let Some(bytes) = body.get(at..at + 16) else {
        return key_words_at_end(&body[at..], mask);
    };
    let (lo, hi) = bytes.split_at(8);
    [
        u64::from_le_bytes(lo.try_into().expect("8 bytes")) & mask[0],
        u64::from_le_bytes(hi.try_into().expect("8 bytes")) & mask[1],
    ]
}

/// [`key_words`] for a key within 16 bytes of the end of the body: padded first.
#[cold]
fn key_words_at_end(rest: &[u8], mask: [u64; 2]) -> [u64; 2] {
    let mut padded = [0u8; 16];
    padded[..rest.len()].copy_from_slice(rest);
    let (lo, hi) = padded.split_at(8);
    [
        u64::from_le_bytes(lo.try_into().expect("8 bytes")) & mask[0],
        u64::from_le_bytes(hi.try_into().expect("8 bytes")) & mask[1],
    ]
}

/// `KEY_MASKS[n]`: the masks of the first `n` bytes of two little-endian words.
const KEY_MASKS: [[u64; 2]; MEMO_KEY_LEN + 1] = {
    let mut t = [[0u64; 2]; MEMO_KEY_LEN + 1];
    let mut n = 1;
    while n <= MEMO_KEY_LEN {
        t[n] = if n <= 8 {
            [u64::MAX >> (64 - 8 * n), 0]
        } else {
            [u64::MAX, u64::MAX >> (128 - 8 * n)]
        };
        n += 1;
    }
    t
};

/// How many keys [`Memo`] holds.
const MEMO_SLOTS: usize = 32;

/// The longest key [`Memo`] holds: two words.
const MEMO_KEY_LEN: usize = 16;

/// In [`Memo::tags`]: the key matches.
const MEMO_MATCHES: u8 = 0x80;

/// The verdicts on the short keys already met, for one list of names. JSON APIs repeat the same
/// few keys (arrays of objects, and every request to an endpoint), and a verdict is a function of
/// the key's bytes alone (for a key without escapes) and the list, so a key met again costs a
/// lookup, not a match. Direct-mapped: a key whose slot another key took is matched again, never
/// wrongly.
struct Memo {
    /// The key in each slot, as [`key_words`] gives it.
    words: [[u64; 2]; MEMO_SLOTS],
    /// The key's length plus one (0: the slot is empty), and [`MEMO_MATCHES`]. The length
    /// tells keys apart that only differ by trailing NUL bytes, which the zero padding hides.
    tags: [u8; MEMO_SLOTS],
}

impl Memo {
    const EMPTY: Memo = Memo {
        words: [[0; 2]; MEMO_SLOTS],
        tags: [0; MEMO_SLOTS],
    };

    /// Whether the key of `len` bytes (at most [`MEMO_KEY_LEN`]) `words` matches: remembered,
    /// or `matches()`.
    #[inline(always)]
    fn verdict(&mut self, words: [u64; 2], len: usize, matches: impl FnOnce() -> bool) -> bool {
        debug_assert!(len <= MEMO_KEY_LEN);
        let tag = len as u8 + 1;
        // Keys that only differ in length (trailing NULs) share a slot: too rare to mix in.
        let hash = (words[0] ^ words[1]).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = (hash >> 59) as usize % MEMO_SLOTS;
        if self.tags[slot] & !MEMO_MATCHES == tag && self.words[slot] == words {
            return self.tags[slot] & MEMO_MATCHES != 0;
        }
        let matches = matches();
        self.words[slot] = words;
        self.tags[slot] = tag | if matches { MEMO_MATCHES } else { 0 };
        matches
    }
}

/// `body[start]` is `"`: the index just past the closing quote, and whether the string holds an
/// escape; `None` if the string is cut.
#[inline(always)]
fn string_end(body: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        i = find(body, i, b'"', b'\\')?;
        if body[i] == b'"' {
            return Some((i + 1, escaped));
        }
        // An escape: the next byte is never the string's end.
        escaped = true;
        i += 2;
    }
}

/// The index just past the JSON value that starts at `body[start]`; `None` when it is cut.
fn value_end(body: &[u8], start: usize) -> Option<usize> {
    match body[start] {
        b'"' => string_end(body, start).map(|(end, _)| end),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            while i < body.len() {
                match body[i] {
                    b'"' => {
                        i = string_end(body, i)?.0;
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

fn redact_form(body: &[u8], m: &FieldNames) -> Option<Vec<u8>> {
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

    /// The same scan written the plain way, for the fast one to agree with byte for byte: a byte
    /// loop for every string, every key decoded and normalised, every name searched.
    mod reference {
        use super::super::{literal_len, normalise, normalise_json_key, skip_ws, Syntax};

        fn names(fields: &[String]) -> Vec<Vec<u8>> {
            fields
                .iter()
                .map(|f| f.bytes().filter_map(normalise).collect::<Vec<u8>>())
                .filter(|n| !n.is_empty())
                .collect()
        }

        fn matches(key: &[u8], names: &[Vec<u8>]) -> bool {
            names
                .iter()
                .any(|n| n.len() <= key.len() && key.windows(n.len()).any(|w| w == &n[..]))
        }

        fn string_end(body: &[u8], start: usize) -> Option<usize> {
            let mut i = start + 1;
            while i < body.len() {
                match body[i] {
                    b'"' => return Some(i + 1),
                    b'\\' => i += 2,
                    _ => i += 1,
                }
            }
            None
        }

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
                _ => (start..body.len()).find(|&p| {
                    matches!(body[p], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                }),
            }
        }

        fn form_key(raw: &[u8]) -> Vec<u8> {
            let mut key = Vec::new();
            let mut i = 0;
            while i < raw.len() {
                let b = match raw[i] {
                    b'%' => match raw
                        .get(i + 1..i + 3)
                        .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    {
                        Some(h) => {
                            i += 2;
                            (char::from(h[0]).to_digit(16).unwrap() * 16
                                + char::from(h[1]).to_digit(16).unwrap())
                                as u8
                        }
                        None => b'%',
                    },
                    b'+' => b' ',
                    b => b,
                };
                i += 1;
                key.extend(normalise(b));
            }
            key
        }

        pub(super) fn redact(body: &[u8], syntax: Syntax, fields: &[String]) -> Option<Vec<u8>> {
            let names = names(fields);
            if names.is_empty() {
                return None;
            }
            let mut out = Vec::new();
            let mut copied = 0;
            let mut replace = |start: usize, end: usize, with: &[u8], out: &mut Vec<u8>| {
                out.extend_from_slice(&body[copied..start]);
                out.extend_from_slice(with);
                copied = end;
            };
            match syntax {
                Syntax::Json => {
                    let mut i = 0;
                    while let Some(start) = (i..body.len()).find(|&p| body[p] == b'"') {
                        let Some(end) = string_end(body, start) else {
                            break;
                        };
                        i = end;
                        let colon = skip_ws(body, end);
                        if body.get(colon) != Some(&b':')
                            || !matches(&normalise_json_key(&body[start + 1..end - 1]), &names)
                        {
                            continue;
                        }
                        let value = skip_ws(body, colon + 1);
                        if value >= body.len() {
                            break;
                        }
                        if let Some(len) = literal_len(&body[value..]) {
                            i = value + len;
                            continue;
                        }
                        match value_end(body, value) {
                            Some(e) if e == value => i = value,
                            Some(e) => {
                                replace(value, e, b"\"[REDACTED]\"", &mut out);
                                i = e;
                            }
                            None => {
                                replace(value, body.len(), b"\"[REDACTED]\"", &mut out);
                                break;
                            }
                        }
                    }
                }
                Syntax::Form => {
                    let mut start = 0;
                    while start <= body.len() {
                        let end = (start..body.len())
                            .find(|&p| body[p] == b'&')
                            .unwrap_or(body.len());
                        let pair = &body[start..end];
                        if let Some(eq) = pair.iter().position(|&b| b == b'=') {
                            if matches(&form_key(&pair[..eq]), &names) {
                                replace(start + eq + 1, end, b"[REDACTED]", &mut out);
                            }
                        }
                        start = end + 1;
                    }
                }
            }
            // Every replacement writes something.
            if out.is_empty() {
                return None;
            }
            out.extend_from_slice(&body[copied..]);
            Some(out)
        }
    }

    /// Bodies made of JSON and form syntax, name fragments in mixed case, escapes and separators:
    /// where the fast paths (word-at-a-time search, letter sets, no-copy keys) could go wrong.
    fn soup() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(&b"\""[..]),
            Just(&b":"[..]),
            Just(&b","[..]),
            Just(&b"{"[..]),
            Just(&b"}"[..]),
            Just(&b"["[..]),
            Just(&b"]"[..]),
            Just(&b"\\"[..]),
            Just(&b"\\\""[..]),
            Just(&b" "[..]),
            Just(&b"&"[..]),
            Just(&b"="[..]),
            Just(&b"%5F"[..]),
            Just(&b"+"[..]),
            Just(&b"_"[..]),
            Just(&b"\\u0077"[..]),
            Just(&b"null"[..]),
            Just(&b"true"[..]),
            Just(&b"12"[..]),
            Just(&b"Pass"[..]),
            Just(&b"word"[..]),
            Just(&b"TOKEN"[..]),
            Just(&b"api"[..]),
            Just(&b"Key"[..]),
            Just(&b"customer"[..]),
            Just(&b"secret"[..]),
            Just(&b"sku"[..]),
            Just(&b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"[..]),
            Just(&b"\xc3\xa9"[..]),
            Just(&b"\0"[..]),
        ];
        // Long runs too: past the first words, the search is `memchr`'s.
        let piece = prop_oneof![
            8 => piece,
            1 => Just(&b"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"[..]),
        ];
        proptest::collection::vec(piece, 0..60).prop_map(|p| p.concat())
    }

    /// Keys that the memo of verdicts could confuse: sensitive and not, differing only past byte
    /// 8 or in the last of 15, only by an escape or by trailing NULs (which its zero padding
    /// hides), 15 and 16 bytes long (remembered or not), or escaped to the same text.
    fn tricky_key() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("id"),
            Just("token"),
            Just("tokeN"),
            Just("tokex"),
            Just("to\\u006ben"),
            Just("to\\\"ken"),
            Just("\\u0074oken"),
            Just("tok\0"),
            Just("tok\0\0"),
            Just("tok"),
            Just("abcdefghtoken"),
            Just("abcdefghtokex"),
            Just("abcdefghijklmno"),
            Just("abcdefghijklpwd"),
            Just("abcdefghijklpwX"),
            Just("abcdefghijklmnoX"),
            Just("abcdefghijklmpwd"),
            Just("abcdefghijklmpwX"),
            Just("abcdefghijklmnopsecret"),
            Just("abcdefghijklmnopsecreX"),
            Just("pass_word"),
            Just("pass-worD"),
            Just(""),
        ]
    }

    /// Arrays of objects whose keys come from [`tricky_key`]: the same keys again and again, and
    /// more distinct keys than the memo has slots (keys take each other's slots).
    fn repeated_keys() -> impl Strategy<Value = Vec<u8>> {
        let value = prop_oneof![
            Just("1"),
            Just("\"v\""),
            Just("null"),
            Just("{\"a\":[1]}"),
            Just("\"\\\"\""),
        ];
        let object = proptest::collection::vec((tricky_key(), value), 0..6).prop_map(|kv| {
            let members: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", members.join(","))
        });
        let numbered = (0usize..80).prop_map(|n| format!("{{\"k{n}\":1}}"));
        let item = prop_oneof![4 => object, 1 => numbered];
        proptest::collection::vec(item, 0..12)
            .prop_map(|items| format!("[{}]", items.join(",")).into_bytes())
    }

    /// The JSON scan gives the plain scan's result for `body`, whole and cut after `cut` bytes.
    fn agrees_whole_and_cut(
        body: &[u8],
        cut: usize,
        fields: &[String],
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        for body in [body, &body[..cut.min(body.len())]] {
            prop_assert_eq!(
                redact(body, Syntax::Json, fields),
                reference::redact(body, Syntax::Json, fields)
            );
        }
        Ok(())
    }

    /// Long bodies with few escapes, at any offset from a block's start: the bulk scan's blocks,
    /// strings that run from one block into the next, keys that straddle two, and the hand-over
    /// to the careful scan at the block of the next `\\` and back.
    fn sparse_escapes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            20 => Just(&br#"{"sku":"SKU-00001","qty":1,"price":1999},"#[..]),
            6 => Just(&br#""customer":{"id":48213,"name":"Ada"},"#[..]),
            6 => Just(&br#""token":"t0k","#[..]),
            4 => Just(&br#""api_key" : [1,"x"],"#[..]),
            4 => Just(&br#""note":"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy","#[..]),
            3 => Just(&br#""abcdefghijklmnopsecret":"v","#[..]),
            2 => Just(&b" "[..]),
            2 => Just(&b"\""[..]),
            1 => Just(&br#""to\"ken":"a\\b","#[..]),
            1 => Just(&br#""pass\u0077ord":"x","#[..]),
            1 => Just(&b"\\"[..]),
        ];
        (0usize..64, proptest::collection::vec(piece, 0..80)).prop_map(|(pad, p)| {
            let mut body = vec![b' '; pad];
            body.push(b'[');
            body.extend(p.concat());
            body
        })
    }

    /// The thread's table is for one list: another list on the same thread starts afresh, so a
    /// key that one list redacts and the other keeps gets each list's verdict, alternately.
    #[test]
    fn remembered_verdicts_are_per_list() {
        let secret = FieldNames::new(&["sku".to_string()]).unwrap();
        let other = FieldNames::new(&["password".to_string()]).unwrap();
        let body = br#"{"sku":"A-1","qty":2}"#;
        for _ in 0..3 {
            assert_eq!(
                secret.redact(body, Syntax::Json).as_deref(),
                Some(&br#"{"sku":"[REDACTED]","qty":2}"#[..])
            );
            assert_eq!(other.redact(body, Syntax::Json), None);
        }
        // And a list met again after another one is not answered from the other's verdicts.
        let again = FieldNames::new(&["qty".to_string()]).unwrap();
        assert_eq!(
            again.redact(body, Syntax::Json).as_deref(),
            Some(&br#"{"sku":"A-1","qty":"[REDACTED]"}"#[..])
        );
        assert_eq!(
            secret.redact(body, Syntax::Json).as_deref(),
            Some(&br#"{"sku":"[REDACTED]","qty":2}"#[..])
        );
    }

    #[test]
    fn remembered_verdicts_are_those_of_the_key() {
        // The same key again, and keys its memo entry must not answer for.
        assert_eq!(
            json(r#"[{"id":1,"token":2},{"id":3,"token":4},{"tokex":5,"tok":6,"token":7}]"#),
            r#"[{"id":1,"token":"[REDACTED]"},{"id":3,"token":"[REDACTED]"},{"tokex":5,"tok":6,"token":"[REDACTED]"}]"#
        );
        // Differing only past the first word, or in the last byte remembered.
        assert_eq!(
            json(r#"{"abcdefghtokex":1,"abcdefghtoken":2,"abcdefghtokex":3}"#),
            r#"{"abcdefghtokex":1,"abcdefghtoken":"[REDACTED]","abcdefghtokex":3}"#
        );
        assert_eq!(
            json(r#"{"abcdefghijklpwX":1,"abcdefghijklpwd":2,"abcdefghijklpwX":3}"#),
            r#"{"abcdefghijklpwX":1,"abcdefghijklpwd":"[REDACTED]","abcdefghijklpwX":3}"#
        );
        // 16 bytes and more: not remembered, matched every time.
        assert_eq!(
            json(r#"{"abcdefghijklmpwX":1,"abcdefghijklmpwd":2,"abcdefghijklmpwX":3}"#),
            r#"{"abcdefghijklmpwX":1,"abcdefghijklmpwd":"[REDACTED]","abcdefghijklmpwX":3}"#
        );
        // Trailing NULs: `tok` and `tok\0` pad to the same words, and only one holds this name.
        let body = b"{\"tok\0\":1,\"tok\":2,\"tok\0\":3,\"tok\":4}";
        let out = redact(body, Syntax::Json, &["tok\0".into()]).unwrap();
        assert_eq!(
            out,
            b"{\"tok\0\":\"[REDACTED]\",\"tok\":2,\"tok\0\":\"[REDACTED]\",\"tok\":4}"
        );
        // Escaped and plain spellings of the same key, and an escape that makes another key.
        assert_eq!(
            json(r#"{"tokn":1,"to\u006ben":2,"tokn":3,"token":4,"to\"ken":5}"#),
            r#"{"tokn":1,"to\u006ben":"[REDACTED]","tokn":3,"token":"[REDACTED]","to\"ken":5}"#
        );
        // A key met whole, then cut by the end of the capture (in the last 16 bytes).
        assert_eq!(
            json(r#"{"token":1,"x":2,"token"#),
            r#"{"token":"[REDACTED]","x":2,"token"#
        );
        assert_eq!(
            json(r#"{"token":1,"token":"#),
            r#"{"token":"[REDACTED]","token":"#
        );
        assert_eq!(
            json(r#"{"token":1,"token":"ab"#),
            r#"{"token":"[REDACTED]","token":"[REDACTED]""#
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn the_fast_scan_agrees_with_the_plain_one(body in soup(), form in any::<bool>(), defaults_list in any::<bool>()) {
            let syntax = if form { Syntax::Form } else { Syntax::Json };
            let fields = if defaults_list { defaults() } else { vec!["pass word".into(), "Key".into(), "a".into(), "".into()] };
            prop_assert_eq!(redact(&body, syntax, &fields), reference::redact(&body, syntax, &fields));
            // The same through the per-thread cache of a shared list.
            let shared: Arc<[String]> = fields.clone().into();
            let cached = FieldNames::shared(&shared).and_then(|n| n.redact(&body, syntax));
            prop_assert_eq!(cached, reference::redact(&body, syntax, &fields));
        }

        #[test]
        fn quote_blocks_are_the_quotes(body in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), Just(0u8), Just(0xa2u8), any::<u8>()], 0..200), at in 0usize..200) {
            let at = at.min(body.len());
            let naive = (0..64).filter(|&i| body.get(at + i) == Some(&b'"')).fold(0u64, |bits, i| bits | 1 << i);
            prop_assert_eq!(quote_block(&body, at), naive);
        }

        #[test]
        fn bodies_of_many_blocks_agree_with_the_plain_scan(body in sparse_escapes(), cut in 0usize..4000, defaults_list in any::<bool>()) {
            let fields = if defaults_list { defaults() } else { vec!["sku".into(), "name".into(), "to\"k".into()] };
            agrees_whole_and_cut(&body, cut, &fields)?;
        }

        #[test]
        fn repeated_keys_agree_with_the_plain_scan(body in repeated_keys(), cut in 0usize..400, defaults_list in any::<bool>()) {
            // A name with a NUL tells `tok` from `tok\0`.
            let fields = if defaults_list { defaults() } else { vec!["tok\0".into(), "ijklmno".into(), "pwX".into()] };
            // Whole, and cut anywhere (also inside a key, and in the last 16 bytes).
            agrees_whole_and_cut(&body, cut, &fields)?;
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
