//! The reports of one (product, defect tag) key, sorted by event time, and the questions a sliding
//! window asks of them: who reported in (T - window, T], how often, through which channels.
//!
//! A report is one accepted event on one key. Reports are kept sorted by (time, event hash) so that
//! everything derived from them is independent of arrival order.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::event::{Channel, Severity};
use crate::time::{Span, Timestamp};

/// 64-bit hash of a string; ids are compared by hash (collisions are ~1e-19 per pair).
pub fn hash_str(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub at: Timestamp,
    pub event: u64,
    pub reporter: u64,
    pub channel: Channel,
    pub severity: Severity,
    pub event_id: Box<str>,
    pub lot: Option<Box<str>>,
    pub region: Option<Box<str>>,
}

/// A report's place in the order: time first, the event hash breaks ties.
fn order(r: &Report) -> (Timestamp, u64) {
    (r.at, r.event)
}

/// What a window holds, as an alert shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowSummary {
    pub reporters: u32,
    pub reports: u32,
    pub channels: BTreeMap<&'static str, u32>,
    pub injuries: u64,
    pub deaths: u64,
    pub fires: u32,
    pub crashes: u32,
    pub evidence: Vec<String>,
    pub evidence_truncated: bool,
    pub lots: Vec<(String, u32)>,
    pub regions: Vec<(String, u32)>,
}

pub const TOP_VALUES: usize = 5;

#[derive(Debug, Clone, Default)]
pub struct Reports {
    items: Vec<Report>,
}

impl Reports {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn as_slice(&self) -> &[Report] {
        &self.items
    }

    pub fn contains_event(&self, event: u64) -> bool {
        self.items.iter().any(|r| r.event == event)
    }

    /// Adds a report unless its event id is already here; returns whether it was added.
    pub fn insert(&mut self, report: Report) -> bool {
        if self.contains_event(report.event) {
            return false;
        }
        let key = order(&report);
        // Reports mostly arrive in time order: check the end before searching.
        let at = match self.items.last() {
            Some(last) if order(last) > key => self.items.partition_point(|r| order(r) < key),
            _ => self.items.len(),
        };
        self.items.insert(at, report);
        true
    }

    /// Drops every report at or before `t`.
    pub fn prune_through(&mut self, t: Timestamp) {
        let n = self.items.partition_point(|r| r.at <= t);
        if n > 0 {
            self.items.drain(..n);
        }
    }

    /// The reports with time in (end - window, end].
    pub fn window(&self, end: Timestamp, window: Span) -> &[Report] {
        let start = end.saturating_sub(window);
        let lo = self.items.partition_point(|r| r.at <= start);
        let hi = self.items.partition_point(|r| r.at <= end);
        &self.items[lo..hi]
    }

    /// The distinct report times in [from, before), oldest first.
    pub fn instants(&self, from: Timestamp, before: Timestamp) -> Vec<Timestamp> {
        let lo = self.items.partition_point(|r| r.at < from);
        let mut out: Vec<Timestamp> = Vec::new();
        for r in &self.items[lo..] {
            if r.at >= before {
                break;
            }
            if out.last() != Some(&r.at) {
                out.push(r.at);
            }
        }
        out
    }

    /// The earliest report time at or after `from`.
    pub fn first_at_or_after(&self, from: Timestamp) -> Option<Timestamp> {
        let i = self.items.partition_point(|r| r.at < from);
        self.items.get(i).map(|r| r.at)
    }

    /// The reports at exactly `t`.
    pub fn at(&self, t: Timestamp) -> &[Report] {
        let lo = self.items.partition_point(|r| r.at < t);
        let hi = self.items.partition_point(|r| r.at <= t);
        &self.items[lo..hi]
    }
}

/// Distinct reporters in `reports`, counting no further than `cap` (the highest threshold), newest
/// first, so a hot key costs only as much as its latest few reporters.
pub fn distinct_reporters_capped(reports: &[Report], cap: u32) -> u32 {
    let mut seen: Vec<u64> = Vec::with_capacity(cap as usize);
    for r in reports.iter().rev() {
        if !seen.contains(&r.reporter) {
            seen.push(r.reporter);
            if seen.len() as u32 >= cap {
                break;
            }
        }
    }
    seen.len() as u32
}

fn top(counts: HashMap<&str, u32>) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = counts.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(TOP_VALUES);
    v
}

/// Everything an alert says about a window's reports.
pub fn summarize(reports: &[Report], evidence_limit: usize) -> WindowSummary {
    let mut s = WindowSummary {
        reports: reports.len() as u32,
        reporters: reports
            .iter()
            .map(|r| r.reporter)
            .collect::<HashSet<_>>()
            .len() as u32,
        evidence_truncated: reports.len() > evidence_limit,
        ..Default::default()
    };
    let mut lots = HashMap::new();
    let mut regions = HashMap::new();
    for r in reports {
        *s.channels.entry(r.channel.as_str()).or_default() += 1;
        s.injuries += u64::from(r.severity.injuries);
        s.deaths += u64::from(r.severity.deaths);
        s.fires += u32::from(r.severity.fire);
        s.crashes += u32::from(r.severity.crash);
        if let Some(lot) = &r.lot {
            *lots.entry(&**lot).or_default() += 1;
        }
        if let Some(region) = &r.region {
            *regions.entry(&**region).or_default() += 1;
        }
    }
    s.evidence = reports
        .iter()
        .take(evidence_limit)
        .map(|r| r.event_id.to_string())
        .collect();
    s.lots = top(lots);
    s.regions = top(regions);
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn report(at: i64, event: &str, reporter: &str) -> Report {
        Report {
            at: Timestamp(at),
            event: hash_str(event),
            reporter: hash_str(reporter),
            channel: Channel::Call,
            severity: Severity::default(),
            event_id: event.into(),
            lot: None,
            region: None,
        }
    }

    #[test]
    fn keeps_time_order_whatever_the_arrival() {
        let mut a = Reports::default();
        let mut b = Reports::default();
        let rs = [
            report(5, "e1", "a"),
            report(1, "e2", "b"),
            report(5, "e3", "c"),
        ];
        for r in rs.iter() {
            assert!(a.insert(r.clone()));
        }
        for r in rs.iter().rev() {
            assert!(b.insert(r.clone()));
        }
        assert_eq!(a.as_slice(), b.as_slice());
        assert_eq!(
            a.instants(Timestamp(0), Timestamp(10)),
            vec![Timestamp(1), Timestamp(5)]
        );
        assert_eq!(a.at(Timestamp(5)).len(), 2);
    }

    #[test]
    fn duplicate_event_ids_are_refused() {
        let mut r = Reports::default();
        assert!(r.insert(report(1, "e1", "a")));
        assert!(!r.insert(report(1, "e1", "a")));
        assert!(!r.insert(report(7, "e1", "b")), "same id at another time");
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn window_is_open_at_the_start_and_closed_at_the_end() {
        let mut r = Reports::default();
        for (t, e) in [(10, "a"), (20, "b"), (30, "c")] {
            r.insert(report(t, e, e));
        }
        // (20, 30]: 20 is out, 30 is in.
        let w = r.window(Timestamp(30), Span(10));
        assert_eq!(w.iter().map(|x| x.at.0).collect::<Vec<_>>(), vec![30]);
        assert_eq!(r.window(Timestamp(30), Span(11)).len(), 2);
        r.prune_through(Timestamp(20));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn distinct_reporters_count_people_not_contacts() {
        let rs = vec![
            report(1, "e1", "alice"),
            report(2, "e2", "alice"),
            report(3, "e3", "alice"),
            report(4, "e4", "bob"),
        ];
        assert_eq!(distinct_reporters_capped(&rs, 3), 2);
        assert_eq!(distinct_reporters_capped(&rs, 1), 1);
        let s = summarize(&rs, 2);
        assert_eq!((s.reporters, s.reports), (2, 4));
        assert_eq!(s.evidence, vec!["e1", "e2"]);
        assert!(s.evidence_truncated);
        assert_eq!(s.channels.get("call"), Some(&4));
    }
}
