//! A fast path for [`crate::event::decode`]: one pass over the bytes of the common event shape.
//!
//! Through serde_json, `decode` cost ~550-620 ns per ~260-byte event, about a plain serde parse
//! into the struct, although nearly every event is the same plain shape: an object of the known
//! fields, strings without escapes, small integers. [`scan`] reads exactly that shape in one
//! pass and fills the same [`RawEvent`] that serde fills (every string borrowed, as serde
//! borrows a string without escapes); `decode` then costs ~300 ns, validation included.
//!
//! Anything else makes it give up (`None`) and `decode` asks serde: escapes, control
//! characters, unknown or repeated keys, numbers that are not plain integers well inside `i64`,
//! `-0`, wrong types, trailing bytes, any syntax error. So serde stays the one definition of
//! what the contract accepts and of every error message, the validation after parsing is
//! shared, and this module only has to be right about what it accepts: that serde would accept
//! the same document and produce the same values. The tests check that against serde on
//! generated documents, near misses and mutations.

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::event::{Length, RawEvent, RawSeverity, Str};
use crate::tags::INLINE as TAGS_INLINE;

/// Fills `raw` (empty on entry) with the event that serde_json would decode from `input`, or
/// gives up (`None`) when `input` is not of the simple shape: then serde decides whether the
/// document is valid, and `raw`, which may hold part of the event, is to be overwritten.
/// `raw` is the caller's rather than returned so that its 300 bytes are not copied twice.
#[inline]
pub(crate) fn scan<'a>(input: &'a str, raw: &mut RawEvent<'a>) -> Option<()> {
    let mut s = Scanner {
        text: input,
        bytes: input.as_bytes(),
        at: 0,
    };
    s.skip_ws();
    s.eat(b'{')?;
    s.skip_ws();
    if s.peek()? == b'}' {
        s.at += 1;
    } else {
        // A bit per field: serde rejects a repeated one ("duplicate field"), even after a null.
        let mut members = Members {
            seen: 0,
            more: true,
        };
        // First each field where producers put it (the schema's order), one call per field:
        // with the field a constant, each compiles to a compare of the key's bytes and that
        // field's parser, straight-line code whose branches predict well. The loop below alone
        // (a jump on each key) took 5-13% longer per event. Fields in any other order are left
        // to the loop.
        members.in_order(&mut s, raw, EVENT_ID)?;
        members.in_order(&mut s, raw, OCCURRED_AT)?;
        members.in_order(&mut s, raw, CHANNEL)?;
        members.in_order(&mut s, raw, CUSTOMER_ID)?;
        members.in_order(&mut s, raw, PRODUCT_ID)?;
        members.in_order(&mut s, raw, DEFECT_TAGS)?;
        members.in_order(&mut s, raw, LOT)?;
        members.in_order(&mut s, raw, REGION)?;
        members.in_order(&mut s, raw, SEVERITY)?;
        members.in_order(&mut s, raw, INCIDENT_DATE)?;
        members.in_order(&mut s, raw, TEXT)?;
        while members.more {
            // The first letter tells which known key it must be; any other key gives up.
            let field = match s.bytes.get(s.at + 1) {
                Some(b'e') => EVENT_ID,
                Some(b'o') => OCCURRED_AT,
                Some(b'c') if s.bytes.get(s.at + 2) == Some(&b'h') => CHANNEL,
                Some(b'c') => CUSTOMER_ID,
                Some(b'p') => PRODUCT_ID,
                Some(b'd') => DEFECT_TAGS,
                Some(b'l') => LOT,
                Some(b'r') => REGION,
                Some(b's') => SEVERITY,
                Some(b'i') => INCIDENT_DATE,
                Some(b't') => TEXT,
                // serde skips an unknown field, but only after checking that its value is JSON.
                _ => return None,
            };
            s.key(KEYS[field])?;
            members.value(&mut s, raw, field)?;
        }
    }
    s.skip_ws();
    (s.at == s.bytes.len()).then_some(())
}

const EVENT_ID: usize = 0;
const OCCURRED_AT: usize = 1;
const CHANNEL: usize = 2;
const CUSTOMER_ID: usize = 3;
const PRODUCT_ID: usize = 4;
const DEFECT_TAGS: usize = 5;
const LOT: usize = 6;
const REGION: usize = 7;
const SEVERITY: usize = 8;
const INCIDENT_DATE: usize = 9;
const TEXT: usize = 10;

/// The keys of [`RawEvent`] with their quotes, in the schema's order (indexed by the constants
/// above).
const KEYS: [&[u8]; 11] = [
    b"\"event_id\"",
    b"\"occurred_at\"",
    b"\"channel\"",
    b"\"customer_id\"",
    b"\"product_id\"",
    b"\"defect_tags\"",
    b"\"lot\"",
    b"\"region\"",
    b"\"severity\"",
    b"\"incident_date\"",
    b"\"text\"",
];

/// The members of the event object read so far.
struct Members {
    /// A bit per field of [`KEYS`].
    seen: u16,
    /// Whether another member follows (a comma was read).
    more: bool,
}

impl Members {
    /// `field` if it is the next member.
    #[inline(always)]
    fn in_order<'a>(
        &mut self,
        s: &mut Scanner<'a>,
        raw: &mut RawEvent<'a>,
        field: usize,
    ) -> Option<()> {
        if self.more && s.bytes[s.at..].starts_with(KEYS[field]) {
            s.key(KEYS[field])?;
            self.value(s, raw, field)?;
        }
        Some(())
    }

    /// The value of `field` (after its key and colon) and the comma or brace after it.
    #[inline(always)]
    fn value<'a>(
        &mut self,
        s: &mut Scanner<'a>,
        raw: &mut RawEvent<'a>,
        field: usize,
    ) -> Option<()> {
        let bit = 1 << field;
        if self.seen & bit != 0 {
            return None;
        }
        self.seen |= bit;
        match field {
            EVENT_ID => raw.event_id = s.nullable(Scanner::str)?,
            OCCURRED_AT => raw.occurred_at = s.nullable(Scanner::str)?,
            CHANNEL => raw.channel = s.nullable(Scanner::str)?,
            CUSTOMER_ID => raw.customer_id = s.nullable(Scanner::str)?,
            PRODUCT_ID => raw.product_id = s.nullable(Scanner::str)?,
            DEFECT_TAGS => raw.defect_tags = s.nullable(Scanner::tags)?,
            LOT => raw.lot = s.nullable(Scanner::str)?,
            REGION => raw.region = s.nullable(Scanner::str)?,
            SEVERITY => raw.severity = s.nullable(Scanner::severity)?,
            INCIDENT_DATE => raw.incident_date = s.nullable(Scanner::str)?,
            _ => raw.text = s.nullable(|s| s.string().map(|t| Length(t.len())))?,
        }
        self.more = s.next_member(b'}')?;
        Some(())
    }
}

/// A cursor over the document. Every method returns `None` to give up.
struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    /// JSON's whitespace, exactly: serde_json skips these four and nothing else.
    #[inline(always)]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        if self.peek()? != byte {
            return None;
        }
        self.at += 1;
        Some(())
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if !self.bytes[self.at..].starts_with(word) {
            return None;
        }
        self.at += word.len();
        Some(())
    }

    /// The key `quoted` (quotes included) and its colon. A key that is these bytes up to its
    /// closing quote holds no escape, so it is the field serde would see.
    #[inline(always)]
    fn key(&mut self, quoted: &[u8]) -> Option<()> {
        if !self.bytes[self.at..].starts_with(quoted) {
            return None;
        }
        self.at += quoted.len();
        self.skip_ws();
        self.eat(b':')?;
        self.skip_ws();
        Some(())
    }

    /// After a member of an object or array: `,` then whitespace (`true`, more to come), or
    /// `close` (`false`). A trailing comma, `,}`, gives up when the next member is read.
    #[inline(always)]
    fn next_member(&mut self, close: u8) -> Option<bool> {
        self.skip_ws();
        let b = self.peek()?;
        self.at += 1;
        if b == b',' {
            self.skip_ws();
            Some(true)
        } else if b == close {
            Some(false)
        } else {
            None
        }
    }

    /// `null` (`Some(None)`) or what `value` reads (`Some(Some(_))`): serde's `Option<T>`.
    /// Whatever follows `null` (`nullx`) is checked by the caller's [`Scanner::next_member`].
    #[inline(always)]
    fn nullable<T>(&mut self, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            Some(None)
        } else {
            value(self).map(Some)
        }
    }

    #[inline(always)]
    fn str(&mut self) -> Option<Str<'a>> {
        self.string().map(|s| Str(Cow::Borrowed(s)))
    }

    /// A string without escapes or control characters, borrowed: the cursor is on its opening
    /// quote. Sixteen bytes at a time where the target has SSE2 (most of an event's strings
    /// end in the first step), else eight; 32 bytes a step of the eight-byte form was no
    /// faster.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let bytes = self.bytes;
        let mut i = start;
        #[cfg(target_arch = "x86_64")]
        while let Some(block) = bytes.get(i..i + 16) {
            // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it.
            let found = unsafe { special_bytes_16(block.try_into().ok()?) };
            if found != 0 {
                i += found.trailing_zeros() as usize;
                return self.end_string(start, i);
            }
            i += 16;
        }
        while let Some(word) = bytes.get(i..i + 8) {
            let found = special_bytes(u64::from_le_bytes(word.try_into().ok()?));
            if found != 0 {
                i += (found.trailing_zeros() / 8) as usize;
                return self.end_string(start, i);
            }
            i += 8;
        }
        while let Some(&b) = bytes.get(i) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                return self.end_string(start, i);
            }
            i += 1;
        }
        None
    }

    /// `end` is the first quote, backslash or control character after the opening quote at
    /// `start - 1`; only a quote ends a simple string.
    #[inline(always)]
    fn end_string(&mut self, start: usize, end: usize) -> Option<&'a str> {
        if self.bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        // Both ends sit next to an ASCII quote, so on character boundaries: `get` never fails.
        self.text.get(start..end)
    }

    /// `["tag", ...]`, strings only (serde would reject anything else).
    fn tags(&mut self) -> Option<SmallVec<[Str<'a>; TAGS_INLINE]>> {
        self.eat(b'[')?;
        self.skip_ws();
        let mut tags = SmallVec::new();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(tags);
        }
        loop {
            tags.push(self.str()?);
            if !self.next_member(b']')? {
                return Some(tags);
            }
        }
    }

    /// `{"injuries": 1, "deaths": 0, "fire": false, "crash": true}`: any subset, any order, each
    /// key at most once, any value may be null.
    fn severity(&mut self) -> Option<RawSeverity> {
        let mut severity = RawSeverity {
            injuries: None,
            deaths: None,
            fire: None,
            crash: None,
        };
        self.eat(b'{')?;
        self.skip_ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(severity);
        }
        let mut seen = 0u8;
        loop {
            let bit = match self.bytes.get(self.at + 1) {
                Some(b'i') => {
                    self.key(b"\"injuries\"")?;
                    severity.injuries = self.nullable(Scanner::integer)?;
                    1
                }
                Some(b'd') => {
                    self.key(b"\"deaths\"")?;
                    severity.deaths = self.nullable(Scanner::integer)?;
                    2
                }
                Some(b'f') => {
                    self.key(b"\"fire\"")?;
                    severity.fire = self.nullable(Scanner::boolean)?;
                    4
                }
                Some(b'c') => {
                    self.key(b"\"crash\"")?;
                    severity.crash = self.nullable(Scanner::boolean)?;
                    8
                }
                _ => return None,
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            if !self.next_member(b'}')? {
                return Some(severity);
            }
        }
    }

    /// `true` or `false`; `truex` gives up in the caller's [`Scanner::next_member`].
    fn boolean(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => None,
        }
    }

    /// `-?(0|[1-9][0-9]*)` of at most 18 digits, so well inside `i64`; not `-0`, which serde_json
    /// reads as the float -0.0 (an `i64` field rejects it). A fraction or an exponent is left
    /// for the caller's [`Scanner::next_member`], which gives up on it.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let first = self.peek()?;
        if !first.is_ascii_digit() {
            return None;
        }
        self.at += 1;
        let mut n = i64::from(first - b'0');
        if n != 0 {
            let mut digits = 1;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                if digits == 18 {
                    return None;
                }
                n = n * 10 + i64::from(d - b'0');
                digits += 1;
                self.at += 1;
            }
        } else if negative {
            return None;
        }
        Some(if negative { -n } else { n })
    }
}

/// A bit per byte of `block` that is `"`, `\` or below 0x20, as SSE2's byte mask: the lowest
/// set bit marks the first special byte.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn special_bytes_16(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: an unaligned load of the 16 bytes `block` borrows.
    let v = unsafe { _mm_loadu_si128(block.as_ptr().cast::<__m128i>()) };
    let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
    let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
    // Unsigned v <= 0x1f exactly where min(v, 0x1f) == v.
    let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
    _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
}

/// A high bit in every byte of the little-endian `word` that is `"`, `\` or below 0x20, and
/// possibly in bytes after such a byte (borrows run upwards), never before one: the lowest set
/// bit marks the first special byte exactly.
#[inline(always)]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    control | zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};

    use proptest::prelude::*;
    use proptest::sample::{select, Index};
    use proptest::test_runner::Config as ProptestConfig;

    use super::*;
    use crate::event::{decode, decode_with_serde, parse_with_serde, Channel};
    use crate::generate::{GenSpec, Generator};

    /// The fast path changes nothing: `decode` gives what serde alone gives (the same event or
    /// the same error), and what the scanner accepts serde parses to the same raw event, every
    /// string borrowed.
    fn same_as_serde(doc: &[u8]) -> Result<(), TestCaseError> {
        let shown = String::from_utf8_lossy(doc);
        prop_assert_eq!(decode(doc), decode_with_serde(doc), "document {:?}", shown);
        if let Some(fast) = std::str::from_utf8(doc).ok().and_then(scanned) {
            let text = std::str::from_utf8(doc).unwrap();
            let slow = parse_with_serde(text);
            prop_assert!(slow.is_ok(), "scan accepts what serde rejects: {:?}", shown);
            let slow = slow.unwrap();
            prop_assert_eq!(&fast, &slow, "document {:?}", shown);
            prop_assert!(all_borrowed(&slow), "serde copied: {:?}", shown);
        }
        Ok(())
    }

    /// The event if the fast path takes the document.
    fn scanned(input: &str) -> Option<RawEvent<'_>> {
        let mut raw = RawEvent::default();
        scan(input, &mut raw).map(|()| raw)
    }

    fn all_borrowed(raw: &RawEvent<'_>) -> bool {
        let strs = [
            &raw.event_id,
            &raw.occurred_at,
            &raw.channel,
            &raw.customer_id,
            &raw.product_id,
            &raw.lot,
            &raw.region,
            &raw.incident_date,
        ];
        strs.into_iter()
            .flatten()
            .chain(raw.defect_tags.iter().flatten())
            .all(|s| matches!(s.0, Cow::Borrowed(_)))
    }

    const FIELDS: [&str; 11] = [
        "event_id",
        "occurred_at",
        "channel",
        "customer_id",
        "product_id",
        "defect_tags",
        "lot",
        "region",
        "severity",
        "incident_date",
        "text",
    ];

    fn quoted(s: &str) -> String {
        format!("\"{s}\"")
    }

    /// JSON string literals: mostly plain, some with unicode, escapes, quotes, backslashes or raw
    /// control characters where they fall (valid or not), around the 8-byte steps of the scan.
    fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "[a-zA-Z0-9 ./_-]{0,24}".prop_map(|s| quoted(&s)),
            2 => "\\PC{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            2 => any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            2 => "[a-z ]{0,17}(\\\\[\"\\\\/bfnrt]|\\\\u00[46][0-9a-f]|\\\\u[dD]83[dD]\\\\u[dD][cC]00|\\\\x|\\\\)[a-z]{0,9}"
                .prop_map(|s| quoted(&s)),
            2 => "[a-zé \"\\\\\u{0}-\u{1f}\u{7f}\u{80}]{0,19}".prop_map(|s| quoted(&s)),
            1 => Just("\"\"".to_owned()),
            1 => "[a-z]{0,12}".prop_map(|s| format!("\"{s}")),
        ]
    }

    fn timestamp() -> impl Strategy<Value = String> {
        prop_oneof![
            select(vec![
                "2026-11-22T09:14:03Z",
                "2026-01-01T00:00:04.379417Z",
                "2014-10-17T00:00:00Z",
                "2026-11-22t09:14:03+01:00",
                "2026-12-31T23:59:60Z",
                "2026-11-22",
                "2026-02-30T00:00:00Z",
                "",
            ])
            .prop_map(quoted),
            "20[0-9]{2}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,9})?(Z|[+-][0-2][0-9]:[0-5][0-9])"
                .prop_map(|s| quoted(&s)),
        ]
    }

    fn date() -> impl Strategy<Value = String> {
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]".prop_map(|s| quoted(&s))
    }

    fn channel() -> impl Strategy<Value = String> {
        select(vec![
            "call", "chat", "email", "mail", "social", "web", "fax", "Call", "",
        ])
        .prop_map(quoted)
    }

    fn id() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z]{1,4}-[0-9]{1,12}".prop_map(|s| quoted(&s)),
            1 => "[ ]{0,2}[a-z/]{0,8}[ ]{0,2}".prop_map(|s| quoted(&s)),
            1 => "é{120,135}".prop_map(|s| quoted(&s)),
            1 => "[a-z]{126,130}".prop_map(|s| quoted(&s)),
        ]
    }

    /// Integers as text: plain, and every edge serde_json treats differently.
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => (0i64..5).prop_map(|n| n.to_string()),
            2 => any::<i64>().prop_map(|n| n.to_string()),
            1 => any::<u64>().prop_map(|n| n.to_string()),
            2 => select(vec![
                "-0", "-1", "00", "01", "-01", "1.0", "1.", "1e2", "1E2", "0e0", "-0.0", "+1",
                "-", "1-", "0x1", "4294967296", "999999999999999999", "1000000000000000000",
                "-999999999999999999", "9223372036854775807", "9223372036854775808",
                "-9223372036854775808", "-9223372036854775809", "18446744073709551615",
                "18446744073709551616", "123456789012345678901234567890", "NaN", "\"1\"",
            ])
            .prop_map(str::to_owned),
            2 => "-?[0-9]{1,21}(\\.[0-9]{0,3})?([eE][+-]?[0-9]{0,3})?",
        ]
    }

    fn boolean() -> impl Strategy<Value = String> {
        select(vec![
            "true", "false", "true", "false", "tru", "True", "1", "\"true\"", "falsey",
        ])
        .prop_map(str::to_owned)
    }

    /// A value of some other type, or JSON that is not quite JSON.
    fn odd_value() -> impl Strategy<Value = String> {
        select(vec![
            "17",
            "true",
            "{}",
            "[]",
            "[1,\"a\"]",
            "{\"x\":1}",
            "nul",
            "null ",
            "nulll",
            "\"a\" \"b\"",
            "[\"a\",]",
            "{\"x\":}",
            "-",
            "",
        ])
        .prop_map(str::to_owned)
    }

    /// `{...}`: the keys of the severity object, any subset, repeats and strangers now and then.
    fn severity() -> impl Strategy<Value = String> {
        let member = prop_oneof![
            3 => number().prop_map(|v| ("injuries", v)),
            3 => number().prop_map(|v| ("deaths", v)),
            3 => boolean().prop_map(|v| ("fire", v)),
            3 => boolean().prop_map(|v| ("crash", v)),
            1 => select(vec!["injuries", "deaths", "fire", "crash"]).prop_map(|k| (k, "null".to_owned())),
            1 => boolean().prop_map(|v| ("injuries", v)),
            1 => number().prop_map(|v| ("fire", v)),
            1 => number().prop_map(|v| ("other", v)),
            1 => number().prop_map(|v| ("inj\\u0075ries", v)),
        ];
        proptest::collection::vec(member, 0..6).prop_map(|members| {
            let mut seen = Vec::new();
            let inner: Vec<String> = members
                .into_iter()
                // Mostly one of each key, as a real event has.
                .filter(|(k, _)| {
                    let again = seen.contains(k);
                    seen.push(*k);
                    !again || k.len() % 3 == 0
                })
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", inner.join(","))
        })
    }

    fn tags() -> impl Strategy<Value = String> {
        let tag = prop_oneof![
            6 => select(vec!["overheating", " lid-latch ", "ELECTRICAL SYSTEM", "VISIBILITY/WIPER", "", "  "])
                .prop_map(quoted),
            2 => string(),
            1 => odd_value(),
        ];
        (proptest::collection::vec(tag, 0..6), 0u8..20).prop_map(|(tags, odd)| match odd {
            0 => format!("[{}]", tags.join(",")).replacen(']', ",]", 1),
            1 => format!("[{}", tags.join(",")),
            2 => format!("[{}]", vec!["\"t\""; 33].join(",")),
            _ => format!("[{}]", tags.join(",")),
        })
    }

    /// Strings that serde accepts, most of them plain (and so borrowed), some with escapes; and
    /// a near miss now and then, a raw control character.
    fn clean_string() -> impl Strategy<Value = String> {
        prop_oneof![
            40 => "[a-zA-Z0-9./_-][a-zA-Z0-9 ./_-]{0,30}".prop_map(|s| quoted(&s)),
            10 => "\\PC{1,20}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            1 => "[a-z]{0,12}[\u{0}-\u{1f}][a-z]{0,12}".prop_map(|s| quoted(&s)),
            5 => "[a-z]{1,17}(\\\\[\"\\\\/bfnrt]|\\\\u00[46][0-9a-f]|\\\\u[dD]83[dD]\\\\u[dD][cC]00)[a-z]{0,9}"
                .prop_map(|s| quoted(&s)),
        ]
    }

    /// A value for `field` that the contract mostly accepts.
    fn clean_value(field: &'static str) -> BoxedStrategy<String> {
        let day = "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])";
        match field {
            "occurred_at" => proptest::string::string_regex(&format!(
                "{day}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{{1,9}})?(Z|[+-](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9])"
            ))
            .unwrap()
            .prop_map(|s| quoted(&s))
            .boxed(),
            "incident_date" => day.prop_map(|s| quoted(&s)).boxed(),
            "channel" => select(Channel::ALL.to_vec())
                .prop_map(|c| quoted(c.as_str()))
                .boxed(),
            "event_id" | "customer_id" | "product_id" => prop_oneof![
                3 => "[a-z]{1,4}-[0-9]{1,12}".prop_map(|s| quoted(&s)),
                1 => clean_string(),
            ]
            .boxed(),
            "defect_tags" => {
                let tag = prop_oneof![
                    3 => select(vec!["overheating", " lid-latch ", "ELECTRICAL SYSTEM", "VISIBILITY/WIPER"])
                        .prop_map(quoted),
                    1 => clean_string(),
                ];
                proptest::collection::vec(tag, 1..5)
                    .prop_map(|tags| format!("[{}]", tags.join(",")))
                    .boxed()
            }
            "severity" => {
                let count = prop_oneof![
                    12 => (0i64..5).prop_map(|n| n.to_string()),
                    4 => (0..=i64::MAX).prop_map(|n| n.to_string()),
                    2 => (i64::MIN..0).prop_map(|n| n.to_string()),
                    2 => Just("null".to_owned()),
                    // Near misses.
                    1 => select(vec!["-0", "01", "1.0", "1e2", "9223372036854775808", "1000000000000000000"])
                        .prop_map(str::to_owned),
                ];
                let flag = select(vec!["true", "false", "false", "null"]);
                (
                    proptest::option::weighted(0.8, (any::<u8>(), count.clone())),
                    proptest::option::weighted(0.8, (any::<u8>(), count)),
                    proptest::option::weighted(0.8, (any::<u8>(), flag.clone())),
                    proptest::option::weighted(0.8, (any::<u8>(), flag)),
                    0u8..20,
                )
                    .prop_map(|(injuries, deaths, fire, crash, again)| {
                        let mut members = Vec::new();
                        members.extend(injuries.map(|(k, v)| (k, format!("\"injuries\":{v}"))));
                        members.extend(deaths.map(|(k, v)| (k, format!("\"deaths\":{v}"))));
                        members.extend(fire.map(|(k, v)| (k, format!("\"fire\":{v}"))));
                        members.extend(crash.map(|(k, v)| (k, format!("\"crash\":{v}"))));
                        members.sort();
                        // A near miss: a key twice.
                        if let (0, Some(m)) = (again, members.first().cloned()) {
                            members.push(m);
                        }
                        let members: Vec<_> = members.into_iter().map(|(_, m)| m).collect();
                        format!("{{{}}}", members.join(","))
                    })
                    .boxed()
            }
            "text" => prop_oneof![
                20 => clean_string(),
                1 => select(vec![MAX_TEXT, MAX_TEXT + 1]).prop_map(|n| quoted(&"a".repeat(n))),
            ]
            .boxed(),
            _ => clean_string().boxed(),
        }
    }

    /// A value for `field`: often of the right kind, sometimes null or something else.
    fn value(field: &'static str) -> BoxedStrategy<String> {
        let right = match field {
            "occurred_at" => timestamp().boxed(),
            "incident_date" => prop_oneof![3 => date(), 1 => timestamp()].boxed(),
            "channel" => channel().boxed(),
            "defect_tags" => tags().boxed(),
            "severity" => severity().boxed(),
            "text" => prop_oneof![
                8 => string(),
                1 => select(vec![MAX_TEXT, MAX_TEXT + 1]).prop_map(|n| quoted(&"a".repeat(n))),
            ]
            .boxed(),
            "event_id" | "customer_id" | "product_id" => {
                prop_oneof![3 => id(), 1 => string()].boxed()
            }
            _ => string().boxed(),
        };
        prop_oneof![
            12 => right,
            4 => clean_value(field),
            1 => Just("null".to_owned()),
            1 => odd_value(),
            1 => string(),
        ]
        .boxed()
    }

    const MAX_TEXT: usize = crate::event::MAX_TEXT_BYTES;

    /// Whitespace between tokens: mostly none, as producers write it; `\u{b}` and U+00A0 are
    /// not JSON whitespace.
    const SPACES: [&str; 10] = ["", "", "", "", " ", "\n", "\t  ", "\r\n", "\u{b}", "\u{a0}"];

    #[derive(Debug, Clone)]
    struct Doc {
        /// (sort key, key as written, value as written)
        members: Vec<(u8, String, String)>,
        /// Indices into [`SPACES`], used in turn; empty means no whitespace anywhere.
        spaces: Vec<u8>,
        /// Whether the two that are not JSON whitespace may be among them.
        exotic: bool,
        /// Serde's other form of a struct, an array of the values.
        array: bool,
    }

    impl Doc {
        fn render(&self) -> Vec<u8> {
            let mut members = self.members.clone();
            members.sort_by_key(|m| m.0);
            let mut turn = 0;
            let mut space = || {
                if self.spaces.is_empty() {
                    return "";
                }
                let i = usize::from(self.spaces[turn % self.spaces.len()]);
                turn += 1;
                SPACES[i % if self.exotic { 10 } else { 8 }]
            };
            let mut out = String::new();
            let (open, close) = if self.array { ('[', ']') } else { ('{', '}') };
            out += space();
            out.push(open);
            for (i, (_, key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out += space();
                    out.push(',');
                }
                out += space();
                if !self.array {
                    out += key;
                    out += space();
                    out.push(':');
                    out += space();
                }
                out += value;
            }
            out += space();
            out.push(close);
            out += space();
            out.into_bytes()
        }
    }

    /// Documents: three in four clean (each field of the right kind, or null when optional), the
    /// rest hostile (values of all kinds, unknown, repeated and escaped keys, odd whitespace).
    fn doc() -> impl Strategy<Value = Doc> {
        prop_oneof![3 => doc_of(true), 1 => doc_of(false)]
    }

    fn doc_of(clean: bool) -> impl Strategy<Value = Doc> {
        let known: Vec<_> = FIELDS
            .iter()
            .map(|&f| {
                let key = quoted(f);
                let required = FIELDS[..6].contains(&f) && f != "customer_id";
                let value = if !clean {
                    value(f)
                } else if required {
                    clean_value(f)
                } else {
                    prop_oneof![9 => clean_value(f), 1 => Just("null".to_owned())].boxed()
                };
                // Required fields present (nearly always), optional ones half the time.
                let member = (any::<u8>(), value);
                let member = match (required, clean) {
                    (true, true) => member.prop_map(Some).boxed(),
                    (true, false) => proptest::option::weighted(0.95, member).boxed(),
                    (false, _) => proptest::option::weighted(0.5, member).boxed(),
                };
                member.prop_map(move |m| m.map(|(k, v)| (k, key.clone(), v)))
            })
            .collect();
        let extra = prop_oneof![
            // An unknown field, a repeated one, a key with an escape, a key that is close.
            (
                any::<u8>(),
                select(vec![
                    "\"new_field\"",
                    "\"\"",
                    "\"Event_id\"",
                    "\"event_id \""
                ]),
                prop_oneof![odd_value(), string()]
            )
                .prop_map(|(k, key, v)| (k, key.to_owned(), v)),
            (any::<u8>(), select(FIELDS.to_vec())).prop_flat_map(|(k, f)| (
                Just(k),
                Just(quoted(f)),
                value(f)
            )),
            (
                any::<u8>(),
                select(vec![
                    "\"event\\u005fid\"",
                    "\"lo\\u0074\"",
                    "\"text\\u0000\""
                ]),
                string()
            )
                .prop_map(|(k, key, v)| (k, key.to_owned(), v)),
            (any::<u8>(), select(FIELDS.to_vec())).prop_map(|(k, f)| (
                k,
                quoted(f),
                "null".to_owned()
            )),
        ];
        (
            known,
            proptest::collection::vec(extra, 0..3),
            proptest::collection::vec(any::<u8>(), 0..12),
            0u8..24,
        )
            .prop_map(move |(known, extra, spaces, form)| {
                let mut members: Vec<_> = known.into_iter().flatten().collect();
                if !clean {
                    members.extend(extra);
                }
                Doc {
                    members,
                    spaces,
                    exotic: !clean && form % 2 == 0,
                    array: !clean && form < 3,
                }
            })
    }

    /// One change to a document: a cut, a byte in, out or replaced, garbage after it.
    #[derive(Debug, Clone)]
    enum Mutation {
        Truncate(Index),
        Insert(Index, u8),
        Replace(Index, u8),
        Delete(Index),
        Append(&'static str),
        Prepend(&'static str),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let byte = prop_oneof![
            4 => select(b"\"\\,:{}[]0-.eEn tf\x00\x1f\x7fa\n".to_vec()),
            1 => any::<u8>(),
        ];
        prop_oneof![
            any::<Index>().prop_map(Mutation::Truncate),
            (any::<Index>(), byte.clone()).prop_map(|(i, b)| Mutation::Insert(i, b)),
            (any::<Index>(), byte).prop_map(|(i, b)| Mutation::Replace(i, b)),
            any::<Index>().prop_map(Mutation::Delete),
            select(vec![
                "x", " x", "}", "\n{}", "\0", " \n\t", ",", "\u{a0}", "\u{feff}"
            ])
            .prop_map(Mutation::Append),
            select(vec!["\u{feff}", " ", "x", "\u{a0}"]).prop_map(Mutation::Prepend),
        ]
    }

    fn mutate(mut doc: Vec<u8>, m: &Mutation) -> Vec<u8> {
        match m {
            Mutation::Truncate(i) => doc.truncate(i.index(doc.len() + 1)),
            Mutation::Insert(i, b) => doc.insert(i.index(doc.len() + 1), *b),
            Mutation::Replace(i, b) if !doc.is_empty() => {
                let at = i.index(doc.len());
                doc[at] = *b;
            }
            Mutation::Delete(i) if !doc.is_empty() => {
                doc.remove(i.index(doc.len()));
            }
            Mutation::Append(s) => doc.extend_from_slice(s.as_bytes()),
            Mutation::Prepend(s) => doc.splice(0..0, s.bytes()).for_each(drop),
            _ => {}
        }
        doc
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 4096,
            ..ProptestConfig::default()
        })]

        #[test]
        fn the_fast_path_decodes_what_serde_decodes(doc in doc()) {
            same_as_serde(&doc.render())?;
        }

        #[test]
        fn the_fast_path_fails_as_serde_fails(doc in doc(), mutations in proptest::collection::vec(mutation(), 1..3)) {
            let mut bytes = doc.render();
            for m in &mutations {
                bytes = mutate(bytes, m);
                same_as_serde(&bytes)?;
            }
        }
    }

    /// Documents written out: the edges that matter, each checked against serde.
    #[test]
    fn edges_agree_with_serde() {
        let docs = [
            "",
            " ",
            "{}",
            " { } ",
            "{\"event_id\":\"a\"}",
            "{\"event_id\":null}",
            "{\"event_id\":null,\"event_id\":\"a\"}",
            "{\"event_id\":\"a\",}",
            "{,}",
            "{\"severity\":{\"injuries\":-0}}",
            "{\"severity\":{\"injuries\":-9223372036854775808}}",
            "{\"severity\":{\"injuries\":9223372036854775807}}",
            "{\"severity\":{\"injuries\":9223372036854775808}}",
            "{\"severity\":{\"injuries\":999999999999999999}}",
            "{\"severity\":{\"injuries\":1000000000000000000}}",
            "{\"severity\":{\"injuries\":01}}",
            "{\"severity\":{\"fire\":true,\"fire\":null}}",
            "{\"severity\":null}",
            "{\"severity\":[1,2,true,false]}",
            "{\"defect_tags\":[]}",
            "{\"defect_tags\":[\"a\" , \"b\"]}",
            "{\"defect_tags\":[\"a\",null]}",
            "{\"text\":\"\\u00e9\"}",
            "{\"text\":\"a\tb\"}",
            "{\"text\":\"a\u{7f}b\"}",
            "{\"text\":\"0123456\"}",
            "{\"text\":\"01234567\\\"\"}",
            "{\"text\":\"01234567\"} x",
            "{\"text\":\"01234567\"}\u{feff}",
            "{\"lot\":nul}",
            "{\"lot\":nullx}",
            "{\"lot\":\"x\"\"y\"}",
            "[\"a\",\"2026-11-22T09:14:03Z\",\"call\",null,\"p\",[\"t\"]]",
        ];
        let mut good = String::from(
            r#"{"event_id":"c-1","occurred_at":"2026-11-22T09:14:03Z","channel":"call","product_id":"p","defect_tags":["t"]"#,
        );
        let full: Vec<String> = docs
            .iter()
            .filter_map(|d| d.strip_prefix('{'))
            .map(|rest| {
                if rest.starts_with('}') {
                    format!("{good}{rest}")
                } else {
                    format!("{good},{rest}")
                }
            })
            .collect();
        for d in docs.iter().copied().chain(full.iter().map(String::as_str)) {
            same_as_serde(d.as_bytes()).unwrap();
        }
        good.push('}');
        assert!(scanned(&good).is_some());
    }

    /// The fast path takes the events the daemon sees (or it would be no faster than serde).
    #[test]
    fn the_common_events_take_the_fast_path() {
        let mut generator = Generator::new(GenSpec {
            seed: 7,
            events: 2_000,
            ..GenSpec::default()
        });
        let (mut n, mut escaped) = (0, 0);
        while let Some(line) = generator.next_line() {
            same_as_serde(line.json.as_bytes()).unwrap();
            n += 1;
            // A few texts quote with `\"`: those, and only those, go to serde.
            if line.json.contains('\\') {
                assert!(scanned(line.json).is_none());
                escaped += 1;
                continue;
            }
            let raw = scanned(line.json).unwrap_or_else(|| panic!("serde path for {}", line.json));
            assert_eq!(Ok(raw), parse_with_serde(line.json));
        }
        assert_eq!(n, 2_000);
        assert!(
            escaped < n / 100,
            "{escaped} of {n} generated events have escapes"
        );

        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/nhtsa/events-ford-toyota.jsonl.gz"
        );
        let file = std::fs::File::open(path).unwrap();
        let lines = BufReader::new(flate2::read::MultiGzDecoder::new(file)).lines();
        let mut n = 0;
        for line in lines.take(2_000) {
            let line = line.unwrap();
            let raw = scanned(&line).unwrap_or_else(|| panic!("serde path for {line}"));
            assert_eq!(Ok(raw), parse_with_serde(&line));
            same_as_serde(line.as_bytes()).unwrap();
            n += 1;
        }
        assert_eq!(n, 2_000);
    }
}
