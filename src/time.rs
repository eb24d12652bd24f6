//! Event time: timestamps as microseconds since the Unix epoch, RFC 3339 parsing and formatting,
//! and human durations (`15m`, `24h`, `90d`).
//!
//! Hand-written rather than pulled from a date crate because the decoder parses one timestamp per
//! event on the hot path, and the formats here are narrow: RFC 3339 in, UTC `Z` out.

use std::cell::Cell;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Microseconds since 1970-01-01T00:00:00Z, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// A length of time in microseconds; always >= 0 where it comes from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(i64::MIN / 4);
    pub const MAX: Timestamp = Timestamp(i64::MAX / 4);

    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_micros() as i64)
    }

    pub fn saturating_add(self, span: Span) -> Timestamp {
        Timestamp(self.0.saturating_add(span.0))
    }

    pub fn saturating_sub(self, span: Span) -> Timestamp {
        Timestamp(self.0.saturating_sub(span.0))
    }

    pub fn seconds_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_SECOND as f64
    }
}

impl Span {
    pub const fn from_secs(s: i64) -> Span {
        Span(s * MICROS_PER_SECOND)
    }
    pub const fn from_days(d: i64) -> Span {
        Span(d * MICROS_PER_DAY)
    }
    pub fn as_secs(self) -> i64 {
        self.0 / MICROS_PER_SECOND
    }
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_micros(self.0.max(0) as u64)
    }
}

/// Days since the epoch for a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// The two ASCII digits at `b[i]` and `b[i + 1]` as a number. Every event's timestamp has
/// seven such pairs: a fixed-width read is a handful of instructions, where the generic digit
/// loop it replaced took about twenty a digit.
#[inline(always)]
fn two_digits(b: &[u8], i: usize) -> Option<i64> {
    let (tens, ones) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
    (tens < 10 && ones < 10).then(|| i64::from(tens) * 10 + i64::from(ones))
}

thread_local! {
    /// The last date [`parse_date`] accepted on this thread, as its ten bytes, and its day
    /// number. Events come roughly in time order, so most share the previous one's date, and
    /// comparing ten bytes is cheaper than checking and converting them (callgrind of replay:
    /// ~90 instructions an event for the date, of ~5,800). The zero key matches no date.
    static LAST_DATE: Cell<(u64, u16, i64)> = const { Cell::new((0, 0, 0)) };
}

/// Parses `YYYY-MM-DD` into days since the epoch, checking the day exists.
#[inline]
pub fn parse_date(s: &str) -> Option<i64> {
    let b: &[u8; 10] = s.as_bytes().try_into().ok()?;
    let (head, tail) = b.split_at(8);
    let key = (
        u64::from_le_bytes(head.try_into().expect("8 bytes")),
        u16::from_le_bytes(tail.try_into().expect("2 bytes")),
    );
    LAST_DATE.with(|last| {
        let (k0, k1, days) = last.get();
        if (k0, k1) == key {
            return Some(days);
        }
        let days = parse_date_uncached(b)?;
        last.set((key.0, key.1, days));
        Some(days)
    })
}

/// [`parse_date`] without the memo of the last date.
fn parse_date_uncached(b: &[u8; 10]) -> Option<i64> {
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = two_digits(b, 0)? * 100 + two_digits(b, 2)?;
    let (m, d) = (two_digits(b, 5)?, two_digits(b, 8)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Parses an RFC 3339 timestamp (`2026-11-22T09:14:03Z`, optional fraction, `Z` or `±HH:MM`).
/// A leap second (`:60`) is read as the first instant of the next minute.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let days = parse_date(s.get(0..10)?)?;
    let (hh, mm, ss) = (two_digits(b, 11)?, two_digits(b, 14)?, two_digits(b, 17)?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (oh, om) = (two_digits(&[*h1, *h2], 0)?, two_digits(&[*m1, *m2], 0)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - offset_secs;
    let t = Timestamp(secs * MICROS_PER_SECOND + micros);
    // An offset or a leap second can carry a valid local time out of the years RFC 3339 can
    // write in UTC; such a time could never be written back, so it is not accepted.
    (FIRST_RFC3339..=LAST_RFC3339).contains(&t).then_some(t)
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z: the UTC range RFC 3339 can write.
pub const FIRST_RFC3339: Timestamp = Timestamp(-62_167_219_200 * MICROS_PER_SECOND);
pub const LAST_RFC3339: Timestamp = Timestamp(253_402_300_800 * MICROS_PER_SECOND - 1);

/// Formats as RFC 3339 in UTC: whole seconds without a fraction, else milliseconds or microseconds.
pub fn format_rfc3339(t: Timestamp) -> String {
    let mut buf = [0u8; 40];
    let n = write_rfc3339(t, &mut buf);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Writes the RFC 3339 form of `t` into `buf` and returns its length. Alerts carry several
/// timestamps each, so this avoids the formatting machinery.
pub fn write_rfc3339(t: Timestamp, buf: &mut [u8; 40]) -> usize {
    let secs = t.0.div_euclid(MICROS_PER_SECOND);
    let micros = t.0.rem_euclid(MICROS_PER_SECOND);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    // Writes `value` as `digits` decimal digits at `n`, after `sep` unless it is 0.
    let mut n = 0;
    let mut put = |sep: u8, digits: usize, mut value: i64| {
        if sep != 0 {
            buf[n] = sep;
            n += 1;
        }
        for i in (0..digits).rev() {
            buf[n + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        n += digits;
    };
    if !(0..=9999).contains(&y) {
        // Outside RFC 3339's years (parsing refuses them); still readable, for computed times.
        let (hh, mm, ss) = (sod / 3600, sod % 3600 / 60, sod % 60);
        let text = format!("{y:+}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z");
        let len = text.len().min(buf.len());
        buf[..len].copy_from_slice(&text.as_bytes()[..len]);
        return len;
    }
    put(0, 4, y);
    put(b'-', 2, m);
    put(b'-', 2, d);
    put(b'T', 2, sod / 3600);
    put(b':', 2, sod % 3600 / 60);
    put(b':', 2, sod % 60);
    if micros % 1000 != 0 {
        put(b'.', 6, micros);
    } else if micros != 0 {
        put(b'.', 3, micros / 1000);
    }
    put(b'Z', 0, 0);
    n
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_rfc3339(*self))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 40];
        let n = write_rfc3339(*self, &mut buf);
        s.serialize_str(std::str::from_utf8(&buf[..n]).expect("ASCII"))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 timestamp: {s:?}")))
    }
}

const UNITS: [(&str, i64); 7] = [
    ("w", 7 * MICROS_PER_DAY),
    ("d", MICROS_PER_DAY),
    ("h", 3600 * MICROS_PER_SECOND),
    ("m", 60 * MICROS_PER_SECOND),
    ("s", MICROS_PER_SECOND),
    ("ms", 1000),
    ("us", 1),
];

/// Parses a duration such as `90d`, `24h`, `15m`, `30s`, `250ms`, or a sum like `1h30m`.
pub fn parse_span(s: &str) -> Result<Span, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut rest = s;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let n_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if n_len == 0 {
            return Err(format!("{s:?}: expected a number, e.g. 90d, 24h, 15m, 30s"));
        }
        let n: i64 = rest[..n_len]
            .parse()
            .map_err(|_| format!("{s:?}: number too large"))?;
        rest = &rest[n_len..];
        let u_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..u_len];
        let per = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, per)| *per)
            .ok_or_else(|| format!("{s:?}: unknown unit {unit:?} (use w, d, h, m, s, ms or us)"))?;
        total = n
            .checked_mul(per)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?}: duration too large"))?;
        rest = &rest[u_len..];
    }
    Ok(Span(total))
}

/// Formats a span with the largest unit that divides it exactly (`90d`, `36h`, `0s`).
pub fn format_span(span: Span) -> String {
    if span.0 == 0 {
        return "0s".into();
    }
    for (name, per) in UNITS {
        if span.0 % per == 0 {
            return format!("{}{name}", span.0 / per);
        }
    }
    format!("{}us", span.0)
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_span(*self))
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_span(*self))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_span(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_of_the_last_date_answers_as_the_parse_does() {
        // Valid, invalid and repeated dates in turns: a memo that kept a rejected date, or
        // answered for a different one, would differ from the plain parse somewhere here.
        let dates = [
            "2026-11-22",
            "2026-11-22",
            "2026-11-23",
            "2026-02-29",
            "2024-02-29",
            "2024-02-29",
            "2026-11-23",
            "2026-13-01",
            "2026-11-2x",
            "0000-01-01",
            "9999-12-31",
            "2026-11-22",
            "2026/11/22",
            "2026-11-22",
            "2026-04-31",
            "2026-04-30",
        ];
        for round in 0..2 {
            for d in dates {
                let plain = parse_date_uncached(d.as_bytes().try_into().unwrap());
                assert_eq!(parse_date(d), plain, "{d}, round {round}");
            }
        }
        assert_eq!(parse_date("2026-11-2"), None, "nine bytes");
        assert_eq!(parse_date("2026-11-222"), None, "eleven bytes");
    }

    #[test]
    fn parses_and_formats_round_trip() {
        let t = parse_rfc3339("2026-11-22T09:14:03Z").unwrap();
        assert_eq!(t.0, 1_795_338_843 * MICROS_PER_SECOND);
        assert_eq!(format_rfc3339(t), "2026-11-22T09:14:03Z");
        let f = parse_rfc3339("2026-11-22T09:14:03.5+01:00").unwrap();
        assert_eq!(format_rfc3339(f), "2026-11-22T08:14:03.500Z");
        let u = parse_rfc3339("1969-12-31T23:59:59.000001Z").unwrap();
        assert_eq!(u.0, -999_999);
        assert_eq!(format_rfc3339(u), "1969-12-31T23:59:59.000001Z");
    }

    #[test]
    fn rejects_impossible_timestamps() {
        for bad in [
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T09:14:03",
            "2026-11-22T09:14:03.Z",
            "2026-11-22 09:14",
            "yesterday",
            "2026-11-22T09:14:03+0100",
            // Valid local times that fall outside years 0000-9999 in UTC (found by fuzzing).
            "9999-12-31T23:59:59.999999-15:00",
            "9999-12-31T23:59:60Z",
            "0000-01-01T00:00:00+00:01",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some());
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Some(FIRST_RFC3339));
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59.999999Z"),
            Some(LAST_RFC3339)
        );
        assert_eq!(format_rfc3339(LAST_RFC3339), "9999-12-31T23:59:59.999999Z");
        assert_eq!(format_rfc3339(FIRST_RFC3339), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn formatting_matches_the_calendar_for_many_instants() {
        for i in -5_000i64..5_000 {
            let t = Timestamp(i * 86_399_999_937 + i * i * 1_000);
            let text = format_rfc3339(t);
            assert_eq!(parse_rfc3339(&text), Some(t), "{text}");
        }
    }

    #[test]
    fn two_digits_reads_exactly_two_ascii_digits() {
        for tens in 0..=u8::MAX {
            for ones in 0..=u8::MAX {
                let want = (tens.is_ascii_digit() && ones.is_ascii_digit())
                    .then(|| i64::from(tens - b'0') * 10 + i64::from(ones - b'0'));
                assert_eq!(two_digits(&[b'x', tens, ones], 1), want, "{tens} {ones}");
            }
        }
    }

    #[test]
    fn civil_round_trip_over_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn spans() {
        assert_eq!(parse_span("90d").unwrap(), Span::from_days(90));
        assert_eq!(parse_span("1h30m").unwrap(), Span::from_secs(5400));
        assert_eq!(parse_span("250ms").unwrap(), Span(250_000));
        assert!(parse_span("5 parsecs").is_err());
        assert!(parse_span("h").is_err());
        assert_eq!(format_span(Span::from_days(90)), "90d");
        assert_eq!(format_span(Span::from_secs(5400)), "90m");
        assert_eq!(format_span(Span::from_days(14)), "2w");
    }
}
