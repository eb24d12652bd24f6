//! One report: an accepted event on one key, as a window keeps it until the window moves past.
//!
//! A live key holds its reports for a whole window, so their size is the engine's memory, and
//! every allocation in a report costs a malloc when it arrives and, a window later, a free that
//! reads memory long out of cache (a quarter of the last-level cache misses of a replay went to
//! `free`). So a report keeps its strings in itself when they are short, as they usually are.

use crate::event::{Channel, Severity};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub at: Timestamp,
    pub event: u64,
    pub reporter: u64,
    /// The event id, lot and region one after the other; `lot_at` and `region_at` say where the
    /// second and third start.
    text: Text,
    injuries: u32,
    deaths: u32,
    region_at: u32,
    /// Event ids are at most 128 characters (512 bytes), so their end fits 16 bits. The fields
    /// are packed so that a report is 80 bytes: the first one lives inline in the key's state.
    lot_at: u16,
    pub channel: Channel,
    /// [`HAS_LOT`], [`HAS_REGION`], [`FIRE`], [`CRASH`].
    flags: u8,
}

const HAS_LOT: u8 = 1;
const HAS_REGION: u8 = 2;
const FIRE: u8 = 4;
const CRASH: u8 = 8;

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        at: Timestamp,
        event: u64,
        reporter: u64,
        channel: Channel,
        severity: Severity,
        event_id: &str,
        lot: Option<&str>,
        region: Option<&str>,
    ) -> Report {
        // The decoder bounds event ids far below this; a longer one is kept shortened (its hash,
        // which deduplicates, is of the whole id).
        let event_id = truncate(event_id, usize::from(u16::MAX));
        let (lot_s, region_s) = (lot.unwrap_or(""), region.unwrap_or(""));
        let text = Text::new([event_id, lot_s, region_s]);
        let lot_at = event_id.len() as u16;
        // A Kafka message is far below 4 GiB.
        let region_at = (event_id.len() + lot_s.len()) as u32;
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        Report {
            at,
            event,
            reporter,
            text,
            injuries: severity.injuries,
            deaths: severity.deaths,
            region_at,
            lot_at,
            channel,
            flags: flag(lot.is_some(), HAS_LOT)
                | flag(region.is_some(), HAS_REGION)
                | flag(severity.fire, FIRE)
                | flag(severity.crash, CRASH),
        }
    }

    pub fn event_id(&self) -> &str {
        &self.text.as_str()[..usize::from(self.lot_at)]
    }

    pub fn lot(&self) -> Option<&str> {
        (self.flags & HAS_LOT != 0)
            .then(|| &self.text.as_str()[usize::from(self.lot_at)..self.region_at as usize])
    }

    pub fn region(&self) -> Option<&str> {
        (self.flags & HAS_REGION != 0).then(|| &self.text.as_str()[self.region_at as usize..])
    }

    pub fn severity(&self) -> Severity {
        Severity {
            injuries: self.injuries,
            deaths: self.deaths,
            fire: self.flags & FIRE != 0,
            crash: self.flags & CRASH != 0,
        }
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Strings up to this many bytes in all live in the report itself: a 36-character UUID event
/// id, or a 16-character id with a lot and a region. It makes [`Text`] 40 bytes, the size of the
/// glibc chunk a longer string costs on the heap (plus its 16-byte pointer).
const INLINE: usize = 38;

/// A report's strings: in the report when short, else in one allocation.
#[derive(Clone, PartialEq)]
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    fn new(parts: [&str; 3]) -> Text {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > INLINE {
            return Text::Heap(parts.concat().into_boxed_str());
        }
        let mut bytes = [0; INLINE];
        let mut at = 0;
        for part in parts {
            bytes[at..at + part.len()].copy_from_slice(part.as_bytes());
            at += part.len();
        }
        Text::Inline {
            len: len as u8,
            bytes,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Whole strs, copied whole, so always UTF-8; the check is over at most 38 bytes.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).expect("copied from strs")
            }
            Text::Heap(s) => s,
        }
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(event_id: &str, lot: Option<&str>, region: Option<&str>) -> Report {
        Report::new(
            Timestamp(0),
            1,
            2,
            Channel::Web,
            Severity::default(),
            event_id,
            lot,
            region,
        )
    }

    #[test]
    fn strings_come_back_whole_inline_or_not() {
        let uuid = "8c0f6a3e-1b2d-4c5e-9f70-112233445566";
        let long = "é".repeat(128);
        for (id, lot, region) in [
            ("c-7622-000000000", Some("L2026-33"), Some("DE-NW")),
            ("ev-1", Some("L7"), Some("US-CA")),
            (uuid, None, None),
            (uuid, Some("L1"), Some("R")),
            (long.as_str(), Some("lot-ü"), None),
            ("x", None, Some("")),
            ("", Some(""), None),
        ] {
            let r = report(id, lot, region);
            assert_eq!(r.event_id(), id);
            assert_eq!(r.lot(), lot);
            assert_eq!(r.region(), region);
        }
        assert!(matches!(report(uuid, None, None).text, Text::Inline { .. }));
        assert!(matches!(
            report(uuid, Some("L1"), Some("R")).text,
            Text::Heap(_)
        ));
    }

    #[test]
    fn a_report_gives_back_its_severity() {
        let severity = Severity {
            injuries: u32::MAX,
            deaths: 2,
            fire: true,
            crash: false,
        };
        let r = Report::new(
            Timestamp(1),
            1,
            2,
            Channel::Mail,
            severity,
            "ev",
            Some(""),
            None,
        );
        assert_eq!(r.severity(), severity);
        assert_eq!((r.lot(), r.region()), (Some(""), None));
        assert_eq!(r.channel, Channel::Mail);
    }

    /// A report is 80 bytes, 40 of them its strings: the first report of a key lives in the key's
    /// state, the rest in a vector, so every byte here counts once per report held.
    #[test]
    fn a_report_is_80_bytes() {
        assert_eq!(std::mem::size_of::<Text>(), 40);
        assert_eq!(std::mem::size_of::<Report>(), 80);
    }
}
