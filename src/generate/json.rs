//! The hand-written JSON of a contact-event v1 line: string escaping, zero-padded numbers and
//! ids, a cached RFC 3339 time formatter, the output's constant strings escaped once, and
//! [`Generator`]'s line writer, all into one reused buffer.

use super::draft::Draft;
use super::vocabulary::{DEFECTS, REGIONS, ROUTINE};
use super::Generator;
use crate::time::{format_rfc3339, Timestamp, MICROS_PER_DAY, MICROS_PER_SECOND};

pub(super) fn product_number_width(products: u32) -> usize {
    let digits = (products.max(1) - 1).checked_ilog10().unwrap_or(0) as usize + 1;
    digits.max(6)
}

pub(super) fn customer_number_width(customers: u64) -> usize {
    let digits = (customers.max(1) - 1).checked_ilog10().unwrap_or(0) as usize + 1;
    digits.max(7)
}

fn push_padded(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    out.extend_from_slice(&buf[start..]);
}

fn push_product(out: &mut Vec<u8>, number: u64, width: usize) {
    out.extend_from_slice(b"sku-");
    push_padded(out, number, width);
}

pub(super) fn product_id(number: u64, width: usize) -> String {
    let mut out = Vec::with_capacity(16);
    push_product(&mut out, number, width);
    String::from_utf8(out).expect("ASCII")
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

fn json_literal(s: &str) -> Box<[u8]> {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_json_str(&mut out, s);
    out.into_boxed_slice()
}

/// Every constant string of the output, escaped once.
struct Literals {
    tags: Vec<Box<[u8]>>,
    /// Per tag, its texts.
    texts: Vec<Vec<Box<[u8]>>>,
    regions: Vec<Box<[u8]>>,
}

fn literals() -> &'static Literals {
    static LITERALS: std::sync::OnceLock<Literals> = std::sync::OnceLock::new();
    LITERALS.get_or_init(|| {
        let all = ROUTINE
            .iter()
            .map(|r| (r.0, r.2))
            .chain(DEFECTS.iter().copied());
        let (mut tags, mut texts) = (Vec::new(), Vec::new());
        for (tag, tag_texts) in all {
            tags.push(json_literal(tag));
            texts.push(tag_texts.iter().map(|t| json_literal(t)).collect());
        }
        Literals {
            tags,
            texts,
            regions: REGIONS.iter().map(|r| json_literal(r)).collect(),
        }
    })
}

/// Formats timestamps like [`format_rfc3339`], caching the date of the current day.
#[derive(Debug, Clone)]
pub(super) struct TimeFormatter {
    day: i64,
    /// `YYYY-MM-DD` of `day`.
    date: Vec<u8>,
}

impl TimeFormatter {
    pub(super) fn new() -> TimeFormatter {
        TimeFormatter {
            day: i64::MIN,
            date: Vec::new(),
        }
    }

    fn date(&mut self, day: i64) -> &[u8] {
        if day != self.day {
            let full = format_rfc3339(Timestamp(day.saturating_mul(MICROS_PER_DAY)));
            let end = full.find('T').unwrap_or(full.len());
            self.date.clear();
            self.date.extend_from_slice(&full.as_bytes()[..end]);
            self.day = day;
        }
        &self.date
    }

    fn push(&mut self, out: &mut Vec<u8>, t: Timestamp) {
        let secs = t.0.div_euclid(MICROS_PER_SECOND);
        let micros = t.0.rem_euclid(MICROS_PER_SECOND);
        let (day, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        out.extend_from_slice(self.date(day));
        let (h, m, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
        let two = |v: i64| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
        let [h1, h2] = two(h);
        let [m1, m2] = two(m);
        let [s1, s2] = two(s);
        out.extend_from_slice(&[b'T', h1, h2, b':', m1, m2, b':', s1, s2]);
        if micros != 0 {
            out.push(b'.');
            if micros % 1000 == 0 {
                push_padded(out, (micros / 1000) as u64, 3);
            } else {
                push_padded(out, micros as u64, 6);
            }
        }
        out.push(b'Z');
    }
}

impl Generator {
    pub(super) fn write(&mut self, d: &Draft) {
        let lit = literals();
        let out = &mut self.json;
        out.clear();
        out.extend_from_slice(b"{\"event_id\":\"");
        out.extend_from_slice(self.id_prefix.as_bytes());
        push_padded(out, self.emitted, 9);
        out.extend_from_slice(b"\",\"occurred_at\":\"");
        self.clock.push(out, d.at);
        out.extend_from_slice(b"\",\"channel\":\"");
        out.extend_from_slice(d.channel.as_str().as_bytes());
        out.push(b'"');
        if let Some(c) = d.customer {
            out.extend_from_slice(b",\"customer_id\":\"cust-");
            push_padded(out, c, self.customer_width);
            out.push(b'"');
        }
        out.extend_from_slice(b",\"product_id\":\"");
        let start = out.len();
        push_product(out, d.product, self.product_width);
        self.product_at = (start, out.len());
        out.extend_from_slice(b"\",\"defect_tags\":[");
        for (i, &tag) in d.tags.iter().flatten().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&lit.tags[usize::from(tag)]);
        }
        out.push(b']');
        if let Some((year, week)) = d.lot {
            out.extend_from_slice(b",\"lot\":\"L");
            push_padded(out, u64::from(year), 4);
            out.push(b'-');
            push_padded(out, u64::from(week), 2);
            out.push(b'"');
        }
        if let Some(region) = d.region {
            out.extend_from_slice(b",\"region\":");
            out.extend_from_slice(&lit.regions[usize::from(region)]);
        }
        if let Some((injuries, fire)) = d.severity {
            out.extend_from_slice(b",\"severity\":{\"injuries\":");
            push_padded(out, u64::from(injuries), 1);
            out.extend_from_slice(b",\"deaths\":0,\"fire\":");
            out.extend_from_slice(if fire { b"true" } else { b"false" });
            out.extend_from_slice(b",\"crash\":false}");
        }
        if let Some(day) = d.incident_day {
            out.extend_from_slice(b",\"incident_date\":\"");
            out.extend_from_slice(self.clock.date(day));
            out.push(b'"');
        }
        if self.spec.text {
            out.extend_from_slice(b",\"text\":");
            out.extend_from_slice(&lit.texts[usize::from(d.text.0)][usize::from(d.text.1)]);
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formatter_matches_format_rfc3339() {
        let mut f = TimeFormatter::new();
        for t in [
            0i64,
            1,
            999,
            1000,
            1_767_225_600_000_000,
            1_767_225_600_123_000,
            1_767_225_600_123_456,
            1_795_338_843_000_000,
            -1,
        ] {
            let mut s = Vec::new();
            f.push(&mut s, Timestamp(t));
            assert_eq!(String::from_utf8(s).unwrap(), format_rfc3339(Timestamp(t)));
        }
    }

    #[test]
    fn escaper_round_trips() {
        for s in [
            "plain",
            "say \"E4\"",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "é✓",
        ] {
            let back: String = serde_json::from_slice(&json_literal(s)).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn padding() {
        let mut s = Vec::new();
        push_padded(&mut s, 42, 6);
        push_padded(&mut s, 0, 1);
        push_padded(&mut s, 1_234_567, 3);
        assert_eq!(s, b"00004201234567");
        assert_eq!(product_id(4211, 6), "sku-004211");
        assert_eq!(product_id(1_234_567, 7), "sku-1234567");
    }
}
