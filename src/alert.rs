//! Alert v1 (`schemas/alert.v1.json`): what recall-radar publishes when a key climbs a rung or
//! its episode ends. Ids are derived from content, so replaying the same input yields the same ids
//! and consumers can drop duplicates. Raw customer ids never appear here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::{Level, Trigger};
use crate::summary::WindowSummary;
use crate::time::{format_span, Span, Timestamp};

pub const SCHEMA: &str = "recall-radar.alert.v1";
pub const DETECTOR_NAME: &str = "recall-radar";
pub const DETECTOR_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeInfo {
    pub id: String,
    pub start: Timestamp,
    pub last_report: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowInfo {
    pub start: Timestamp,
    pub end: Timestamp,
    pub seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SeveritySummary {
    pub injuries: u64,
    pub deaths: u64,
    pub fires: u32,
    pub crashes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub kind: String,
    pub threshold: Option<u32>,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueCount {
    pub value: String,
    pub reports: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub schema: String,
    pub alert_id: String,
    pub status: Status,
    pub level: Level,
    pub previous_level: Option<Level>,
    pub recall_candidate: bool,
    pub product_id: String,
    pub defect_tag: String,
    pub tag_class: String,
    pub episode: EpisodeInfo,
    pub triggered_at: Timestamp,
    pub window: WindowInfo,
    pub reporters: u32,
    pub reports: u32,
    pub channels: BTreeMap<String, u32>,
    pub severity: SeveritySummary,
    pub evidence: Vec<String>,
    pub evidence_truncated: bool,
    pub rule: Rule,
    pub lots: Vec<ValueCount>,
    pub regions: Vec<ValueCount>,
    pub detector: Detector,
}

/// xxh3-128 of "recall-radar/v1" and the parts, each after a NUL, as 32 hex digits.
fn stable_id(parts: &[&[u8]]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b"recall-radar/v1");
    for p in parts {
        h.update(b"\0");
        h.update(p);
    }
    let v = h.digest128();
    let mut out = String::with_capacity(32);
    for i in (0..32).rev() {
        out.push(char::from(
            b"0123456789abcdef"[((v >> (i * 4)) & 0xf) as usize],
        ));
    }
    out
}

fn decimal(v: i64) -> ([u8; 24], usize) {
    let mut buf = [0u8; 24];
    let mut n = 0;
    let negative = v < 0;
    let mut u = v.unsigned_abs();
    loop {
        buf[23 - n] = b'0' + (u % 10) as u8;
        n += 1;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if negative {
        buf[23 - n] = b'-';
        n += 1;
    }
    (buf, n)
}

/// The episode id: product, tag and the time of the episode's first report.
pub fn episode_id(product_id: &str, tag: &str, start: Timestamp) -> String {
    let (buf, n) = decimal(start.0);
    stable_id(&[
        b"episode",
        product_id.as_bytes(),
        tag.as_bytes(),
        &buf[24 - n..],
    ])
}

/// The alert id: the episode plus the rung (or "resolved").
pub fn alert_id(product_id: &str, tag: &str, start: Timestamp, rung: &str) -> String {
    let (buf, n) = decimal(start.0);
    stable_id(&[
        b"alert",
        product_id.as_bytes(),
        tag.as_bytes(),
        &buf[24 - n..],
        rung.as_bytes(),
    ])
}

/// What the engine knows when it raises an alert.
pub struct AlertFacts<'a> {
    pub product_id: &'a str,
    pub defect_tag: &'a str,
    pub tag_class: &'a str,
    pub episode_start: Timestamp,
    pub last_report: Timestamp,
    pub window: Span,
    /// End of the window the summary describes.
    pub window_end: Timestamp,
    pub summary: WindowSummary,
}

impl AlertFacts<'_> {
    fn build(
        self,
        status: Status,
        level: Level,
        previous_level: Option<Level>,
        triggered_at: Timestamp,
        rule: Rule,
    ) -> Alert {
        let rung = match status {
            Status::Firing => level.as_str(),
            Status::Resolved => "resolved",
        };
        let s = self.summary;
        let values = |v: Vec<(String, u32)>| {
            v.into_iter()
                .map(|(value, reports)| ValueCount { value, reports })
                .collect()
        };
        Alert {
            schema: SCHEMA.into(),
            alert_id: alert_id(self.product_id, self.defect_tag, self.episode_start, rung),
            status,
            level,
            previous_level,
            recall_candidate: level == Level::Problem,
            product_id: self.product_id.into(),
            defect_tag: self.defect_tag.into(),
            tag_class: self.tag_class.into(),
            episode: EpisodeInfo {
                id: episode_id(self.product_id, self.defect_tag, self.episode_start),
                start: self.episode_start,
                last_report: self.last_report,
            },
            triggered_at,
            window: WindowInfo {
                start: self.window_end.saturating_sub(self.window),
                end: self.window_end,
                seconds: self.window.as_secs(),
            },
            reporters: s.reporters,
            reports: s.reports,
            channels: s
                .channels
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            severity: SeveritySummary {
                injuries: s.injuries,
                deaths: s.deaths,
                fires: s.fires,
                crashes: s.crashes,
            },
            evidence: s.evidence,
            evidence_truncated: s.evidence_truncated,
            rule,
            lots: values(s.lots),
            regions: values(s.regions),
            detector: Detector {
                name: DETECTOR_NAME.into(),
                version: DETECTOR_VERSION.into(),
            },
        }
    }

    /// A key reached `level` at `triggered_at` (the window's end).
    pub fn firing(self, level: Level, previous_level: Option<Level>, trigger: Trigger) -> Alert {
        let rule = match trigger {
            Trigger::Threshold(n) => Rule {
                kind: "threshold".into(),
                threshold: Some(n),
                description: format!(
                    "{n} distinct reporter{} within {}",
                    if n == 1 { "" } else { "s" },
                    format_span(self.window)
                ),
            },
            Trigger::FastPath(why) => Rule {
                kind: "fast_path".into(),
                threshold: None,
                description: why.into(),
            },
        };
        let at = self.window_end;
        self.build(Status::Firing, level, previous_level, at, rule)
    }

    /// The window drained at `drained_at`; the summary describes the last window with reports.
    pub fn resolved(self, peak: Level, drained_at: Timestamp) -> Alert {
        let rule = Rule {
            kind: "window_drained".into(),
            threshold: None,
            description: format!(
                "no reports within {} after {}",
                format_span(self.window),
                self.last_report
            ),
        };
        self.build(Status::Resolved, peak, Some(peak), drained_at, rule)
    }
}

/// Room for a whole alert: generated alerts are 900-1,110 bytes (73,716 alerts of 200k
/// generated events), so the buffer never grows; serde_json's own start of 128 bytes grew four
/// times per alert, 3% of the daemon thread's profile.
const ALERT_JSON_CAPACITY: usize = 1280;

impl Alert {
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(ALERT_JSON_CAPACITY);
        serde_json::to_writer(&mut out, self).expect("alerts always serialize");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_across_versions() {
        // Published ids must never change: consumers deduplicate on them.
        let start = Timestamp(1_767_225_600_000_000);
        assert_eq!(
            alert_id("kettle", "overheating", start, "problem"),
            format!(
                "{:032x}",
                xxhash_rust::xxh3::xxh3_128(
                    b"recall-radar/v1\x00alert\x00kettle\x00overheating\x001767225600000000\x00problem"
                )
            )
        );
        assert_eq!(
            episode_id("kettle", "overheating", Timestamp(-5)),
            format!(
                "{:032x}",
                xxhash_rust::xxh3::xxh3_128(
                    b"recall-radar/v1\x00episode\x00kettle\x00overheating\x00-5"
                )
            )
        );
    }
}
