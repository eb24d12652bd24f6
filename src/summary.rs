//! What a window holds, as alerts and the admin API's live view show it: reporters, channels,
//! severity, the evidence (event ids) and the most frequent lots and regions. Built only when an
//! alert fires or a reader asks, so it spends maps and strings that the per-event code in
//! `window` avoids.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::report::Report;

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

/// Lots and regions an alert lists, most frequent first.
pub const TOP_VALUES: usize = 5;

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
        let severity = r.severity();
        s.injuries += u64::from(severity.injuries);
        s.deaths += u64::from(severity.deaths);
        s.fires += u32::from(severity.fire);
        s.crashes += u32::from(severity.crash);
        if let Some(lot) = r.lot() {
            *lots.entry(lot).or_default() += 1;
        }
        if let Some(region) = r.region() {
            *regions.entry(region).or_default() += 1;
        }
    }
    s.evidence = reports
        .iter()
        .take(evidence_limit)
        .map(|r| r.event_id().to_owned())
        .collect();
    s.lots = top(lots);
    s.regions = top(regions);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Channel, Severity};
    use crate::time::Timestamp;
    use crate::window::hash_str;

    #[allow(clippy::too_many_arguments)]
    fn report(
        at: i64,
        id: &str,
        who: &str,
        channel: Channel,
        severity: Severity,
        lot: Option<&str>,
        region: Option<&str>,
    ) -> Report {
        Report::new(
            Timestamp(at),
            hash_str(id),
            hash_str(who),
            channel,
            severity,
            id,
            lot,
            region,
        )
    }

    /// People, not contacts; every channel and severity counted; the first reports as
    /// evidence; lots and regions by frequency, ties by name.
    #[test]
    fn a_summary_counts_people_channels_severity_lots_and_regions() {
        let hurt = Severity {
            injuries: 2,
            fire: true,
            ..Severity::default()
        };
        let fatal = Severity {
            deaths: 1,
            crash: true,
            ..Severity::default()
        };
        let none = Severity::default();
        let rs = vec![
            report(
                1,
                "e1",
                "alice",
                Channel::Call,
                hurt,
                Some("L1"),
                Some("FR"),
            ),
            report(
                2,
                "e2",
                "alice",
                Channel::Email,
                none,
                Some("L1"),
                Some("DE"),
            ),
            report(3, "e3", "bob", Channel::Call, fatal, Some("L2"), None),
        ];
        let s = summarize(&rs, 2);
        assert_eq!((s.reporters, s.reports), (2, 3));
        assert_eq!(s.channels.get("call"), Some(&2));
        assert_eq!(s.channels.get("email"), Some(&1));
        assert_eq!((s.injuries, s.deaths, s.fires, s.crashes), (2, 1, 1, 1));
        assert_eq!(s.evidence, vec!["e1", "e2"]);
        assert!(s.evidence_truncated);
        assert_eq!(s.lots, vec![("L1".to_owned(), 2), ("L2".to_owned(), 1)]);
        assert_eq!(s.regions, vec![("DE".to_owned(), 1), ("FR".to_owned(), 1)]);
        assert!(!summarize(&rs, 3).evidence_truncated);
    }
}
