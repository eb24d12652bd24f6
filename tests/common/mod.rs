//! Shared helpers for the engine tests: events, configs, running an engine, and expected alerts
//! written out field by field (not through `AlertFacts`), so a test states exactly what it wants.
#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::BTreeMap;

use recall_radar::alert::{
    alert_id, episode_id, Alert, Detector, EpisodeInfo, Rule, SeveritySummary, Status, WindowInfo,
    DETECTOR_NAME, DETECTOR_VERSION, SCHEMA,
};
use recall_radar::config::{DetectorConfig, RawDetector};
use recall_radar::engine::{Engine, Ingest};
use recall_radar::event::{decode, Channel, ContactEvent, Severity};
use recall_radar::policy::Level;
use recall_radar::time::{format_span, parse_rfc3339, Span, Timestamp, MICROS_PER_SECOND};

pub const MINUTE: i64 = 60 * MICROS_PER_SECOND;

/// 2026-03-01T00:00:00Z, the zero of every test timeline.
pub fn base() -> Timestamp {
    parse_rfc3339("2026-03-01T00:00:00Z").expect("valid timestamp")
}

/// `m` minutes after [`base`].
pub fn min(m: i64) -> Timestamp {
    Timestamp(base().0 + m * MINUTE)
}

/// `m` minutes and `us` microseconds after [`base`].
pub fn min_us(m: i64, us: i64) -> Timestamp {
    Timestamp(base().0 + m * MINUTE + us)
}

pub fn minutes(m: i64) -> Span {
    Span(m * MINUTE)
}

/// A checked config from the defaults with `window` and `allowed_lateness` set.
pub fn config(window: &str, lateness: &str) -> DetectorConfig {
    config_with(window, lateness, |_| {})
}

/// Like [`config`], with further changes to the raw detector section.
pub fn config_with(
    window: &str,
    lateness: &str,
    change: impl FnOnce(&mut RawDetector),
) -> DetectorConfig {
    let mut raw = RawDetector {
        window: window.into(),
        allowed_lateness: lateness.into(),
        ..Default::default()
    };
    change(&mut raw);
    DetectorConfig::from_raw(&raw).expect("valid test config")
}

/// An event through the call channel without severity, lot or region.
pub fn ev(
    id: &str,
    at: Timestamp,
    customer: Option<&str>,
    product: &str,
    tags: &[&str],
) -> ContactEvent<'static> {
    ContactEvent {
        event_id: Cow::Owned(id.to_owned()),
        occurred_at: at,
        channel: Channel::Call,
        customer_id: customer.map(|c| Cow::Owned(c.to_owned())),
        product_id: Cow::Owned(product.to_owned()),
        defect_tags: tags.iter().map(|t| Cow::Owned((*t).to_owned())).collect(),
        lot: None,
        region: None,
        severity: Severity::default(),
    }
}

/// [`ev`] with a severity.
pub fn ev_sev(
    id: &str,
    at: Timestamp,
    customer: Option<&str>,
    product: &str,
    tags: &[&str],
    severity: Severity,
) -> ContactEvent<'static> {
    ContactEvent {
        severity,
        ..ev(id, at, customer, product, tags)
    }
}

fn own(c: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(c.into_owned())
}

/// Decodes a JSON contact event and detaches it from the input buffer.
pub fn decode_owned(json: &str) -> ContactEvent<'static> {
    let e = decode(json.as_bytes()).unwrap_or_else(|err| panic!("{json}: {err}"));
    ContactEvent {
        event_id: own(e.event_id),
        occurred_at: e.occurred_at,
        channel: e.channel,
        customer_id: e.customer_id.map(own),
        product_id: own(e.product_id),
        defect_tags: e.defect_tags.into_iter().map(own).collect(),
        lot: e.lot.map(own),
        region: e.region.map(own),
        severity: e.severity,
    }
}

/// Ingests one event that must be accepted; returns the alerts it made final.
pub fn accept(engine: &mut Engine, event: &ContactEvent<'_>) -> Vec<Alert> {
    let mut out = Vec::new();
    match engine.ingest(event, &mut out) {
        Ingest::Accepted { .. } => {}
        late => panic!("{} was not accepted: {late:?}", event.event_id),
    }
    out
}

/// Ingests events that must all be accepted; returns every alert made final on the way.
pub fn feed(engine: &mut Engine, events: &[ContactEvent<'_>]) -> Vec<Alert> {
    events.iter().flat_map(|e| accept(engine, e)).collect()
}

pub fn advance(engine: &mut Engine, t: Timestamp) -> Vec<Alert> {
    let mut out = Vec::new();
    engine.advance_to(t, &mut out);
    out
}

pub fn finish(engine: &mut Engine) -> Vec<Alert> {
    let mut out = Vec::new();
    engine.finish(&mut out);
    out
}

/// A fresh engine fed `events` and finished; every alert in emission order.
pub fn run(config: DetectorConfig, events: &[ContactEvent<'_>]) -> (Vec<Alert>, Engine) {
    let mut engine = Engine::new(config);
    let mut alerts = feed(&mut engine, events);
    alerts.extend(finish(&mut engine));
    (alerts, engine)
}

/// Why a firing alert fired.
#[derive(Debug, Clone, Copy)]
pub enum Why {
    Threshold(u32),
    FastPath(&'static str),
}

/// The key an expected alert is about, with its class and window.
#[derive(Debug, Clone, Copy)]
pub struct KeyCtx {
    pub product: &'static str,
    pub tag: &'static str,
    pub class: &'static str,
    pub window: Span,
}

impl KeyCtx {
    pub fn new(product: &'static str, tag: &'static str, window: Span) -> KeyCtx {
        KeyCtx {
            product,
            tag,
            class: "default",
            window,
        }
    }

    pub fn class(self, class: &'static str) -> KeyCtx {
        KeyCtx { class, ..self }
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        status: Status,
        level: Level,
        previous_level: Option<Level>,
        episode_start: Timestamp,
        last_report: Timestamp,
        triggered_at: Timestamp,
        window_end: Timestamp,
        reporters: u32,
        evidence: &[&str],
        rule: Rule,
    ) -> Alert {
        let rung = match status {
            Status::Firing => level.as_str(),
            Status::Resolved => "resolved",
        };
        let reports = evidence.len() as u32;
        let mut channels = BTreeMap::new();
        if reports > 0 {
            channels.insert("call".to_owned(), reports);
        }
        Alert {
            schema: SCHEMA.into(),
            alert_id: alert_id(self.product, self.tag, episode_start, rung),
            status,
            level,
            previous_level,
            recall_candidate: level == Level::Problem,
            product_id: self.product.into(),
            defect_tag: self.tag.into(),
            tag_class: self.class.into(),
            episode: EpisodeInfo {
                id: episode_id(self.product, self.tag, episode_start),
                start: episode_start,
                last_report,
            },
            triggered_at,
            window: WindowInfo {
                start: Timestamp(window_end.0 - self.window.0),
                end: window_end,
                seconds: self.window.0 / MICROS_PER_SECOND,
            },
            reporters,
            reports,
            channels,
            severity: SeveritySummary::default(),
            evidence: evidence.iter().map(|e| (*e).to_owned()).collect(),
            evidence_truncated: false,
            rule,
            lots: Vec::new(),
            regions: Vec::new(),
            detector: Detector {
                name: DETECTOR_NAME.into(),
                version: DETECTOR_VERSION.into(),
            },
        }
    }

    /// A firing alert at `at` (the window's end and the episode's last report so far), for
    /// events through the call channel without severity; `evidence` is every report in the
    /// window, oldest first, and gives the report count.
    #[allow(clippy::too_many_arguments)]
    pub fn firing(
        &self,
        level: Level,
        previous_level: Option<Level>,
        at: Timestamp,
        episode_start: Timestamp,
        reporters: u32,
        evidence: &[&str],
        why: Why,
    ) -> Alert {
        let rule = match why {
            Why::Threshold(n) => Rule {
                kind: "threshold".into(),
                threshold: Some(n),
                description: format!(
                    "{n} distinct reporter{} within {}",
                    if n == 1 { "" } else { "s" },
                    format_span(self.window)
                ),
            },
            Why::FastPath(reason) => Rule {
                kind: "fast_path".into(),
                threshold: None,
                description: reason.into(),
            },
        };
        self.build(
            Status::Firing,
            level,
            previous_level,
            episode_start,
            at,
            at,
            at,
            reporters,
            evidence,
            rule,
        )
    }

    /// The resolved alert of an episode whose last report was at `last_report`: triggered when
    /// the window drained, describing (last_report - window, last_report].
    pub fn resolved(
        &self,
        peak: Level,
        episode_start: Timestamp,
        last_report: Timestamp,
        reporters: u32,
        evidence: &[&str],
    ) -> Alert {
        let rule = Rule {
            kind: "window_drained".into(),
            threshold: None,
            description: format!(
                "no reports within {} after {}",
                format_span(self.window),
                last_report
            ),
        };
        self.build(
            Status::Resolved,
            peak,
            Some(peak),
            episode_start,
            last_report,
            Timestamp(last_report.0 + self.window.0),
            last_report,
            reporters,
            evidence,
            rule,
        )
    }
}

/// Field-by-field comparison with a readable message for the first difference.
#[track_caller]
pub fn assert_alerts(got: &[Alert], want: &[Alert]) {
    let show = |a: &Alert| {
        format!(
            "{} {} {}/{} prev={:?} at={} start={} reporters={} reports={} rule={} evidence={:?}",
            a.status.as_str(),
            a.level.as_str(),
            a.product_id,
            a.defect_tag,
            a.previous_level.map(Level::as_str),
            a.triggered_at,
            a.episode.start,
            a.reporters,
            a.reports,
            a.rule.kind,
            a.evidence
        )
    };
    let got_lines: Vec<String> = got.iter().map(show).collect();
    let want_lines: Vec<String> = want.iter().map(show).collect();
    assert_eq!(got_lines, want_lines, "alerts differ in summary");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "alert {i} differs");
    }
}
