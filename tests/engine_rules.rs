//! The engine's rules one at a time, through the public API, with every alert written out.
//!
//! Timeline: `min(m)` is m minutes after 2026-03-01T00:00:00Z; the default window is 10m and the
//! default thresholds are 1 / 2 / 3 distinct reporters.

mod common;

use common::*;
use recall_radar::alert::{alert_id, episode_id, Alert};
use recall_radar::config::{FastPath, RawTagClass, Thresholds};
use recall_radar::engine::{Engine, Ingest};
use recall_radar::event::{ContactEvent, Severity};
use recall_radar::policy::Level::{Anomaly, Pattern, Problem};
use recall_radar::time::Timestamp;
use recall_radar::window::hash_str;

const P: &str = "kettle";
const T: &str = "overheating";

fn key() -> KeyCtx {
    KeyCtx::new(P, T, minutes(10))
}

fn e(id: &str, at: Timestamp, customer: &str) -> ContactEvent<'static> {
    ev(id, at, Some(customer), P, &[T])
}

/// A contact event as JSON on the wire, on (kettle, overheating), with `extra` fields appended.
fn json(id: &str, at: Timestamp, customer: &str, extra: &str) -> ContactEvent<'static> {
    decode_owned(&format!(
        r#"{{"event_id":"{id}","occurred_at":"{at}","channel":"call","customer_id":"{customer}","product_id":"{P}","defect_tags":["{T}"]{extra}}}"#
    ))
}

/// Event ids in the order the engine keeps reports of one instant: by hash of the event id.
fn by_hash<'a>(ids: &[&'a str]) -> Vec<&'a str> {
    let mut v = ids.to_vec();
    v.sort_by_key(|id| hash_str(id));
    v
}

/// Alerts of several keys in a canonical order (per key the emission order is kept).
fn sorted(mut alerts: Vec<Alert>) -> Vec<Alert> {
    alerts.sort_by(|a, b| {
        (a.triggered_at, &a.product_id, &a.defect_tag).cmp(&(
            b.triggered_at,
            &b.product_id,
            &b.defect_tag,
        ))
    });
    alerts
}

// ---------------------------------------------------------------------------------------------
// Window boundaries

#[test]
fn a_report_exactly_one_window_later_does_not_share_the_window() {
    let k = key();
    let mut engine = Engine::new(config("10m", "0s"));
    let mut got = feed(&mut engine, &[e("e1", min(0), "a"), e("e2", min(10), "b")]);
    got.extend(advance(&mut engine, min(30)));
    assert_alerts(
        &got,
        &[
            k.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            // e2 continues the episode (10m <= 0 + 10m), but its window (0, 10m] holds only e2:
            // no pattern. The episode drains at 10m + 10m.
            k.resolved(Anomaly, min(0), min(10), 1, &["e2"]),
        ],
    );
    assert_eq!(got[1].triggered_at, min(20));
    assert_eq!(got[0].episode.id, got[1].episode.id);
}

#[test]
fn a_report_one_microsecond_inside_the_window_shares_it() {
    let k = key();
    let mut engine = Engine::new(config("10m", "0s"));
    let e2_at = min_us(10, -1);
    let mut got = feed(&mut engine, &[e("e1", min(0), "a"), e("e2", e2_at, "b")]);
    got.extend(advance(&mut engine, min(30)));
    assert_alerts(
        &got,
        &[
            k.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            k.firing(
                Pattern,
                Some(Anomaly),
                e2_at,
                min(0),
                2,
                &["e1", "e2"],
                Why::Threshold(2),
            ),
            k.resolved(Pattern, min(0), e2_at, 2, &["e1", "e2"]),
        ],
    );
    assert_eq!(got[1].window.start, Timestamp(min(0).0 - 1));
    assert_eq!(got[2].triggered_at, min_us(20, -1));
}

#[test]
fn a_report_one_microsecond_after_the_drain_opens_a_new_episode() {
    let k = key();
    let mut engine = Engine::new(config("10m", "0s"));
    let e2_at = min_us(10, 1);
    let mut got = feed(&mut engine, &[e("e1", min(0), "a"), e("e2", e2_at, "b")]);
    got.extend(advance(&mut engine, min(30)));
    assert_alerts(
        &got,
        &[
            k.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            k.resolved(Anomaly, min(0), min(0), 1, &["e1"]),
            k.firing(Anomaly, None, e2_at, e2_at, 1, &["e2"], Why::Threshold(1)),
            k.resolved(Anomaly, e2_at, e2_at, 1, &["e2"]),
        ],
    );
    assert_eq!(got[1].triggered_at, min(10));
    assert_ne!(got[0].episode.id, got[2].episode.id);
    assert_ne!(got[0].alert_id, got[2].alert_id);
}

// ---------------------------------------------------------------------------------------------
// Counting people, not contacts

#[test]
fn one_reporter_reporting_three_times_stays_an_anomaly() {
    let k = key();
    let mut engine = Engine::new(config("10m", "0s"));
    let mut got = feed(
        &mut engine,
        &[
            e("e1", min(0), "a"),
            e("e2", min(1), "a"),
            e("e3", min(2), "a"),
        ],
    );
    got.extend(advance(&mut engine, min(30)));
    assert_alerts(
        &got,
        &[
            k.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            k.resolved(Anomaly, min(0), min(2), 1, &["e1", "e2", "e3"]),
        ],
    );
    assert_eq!(got[0].rule.description, "1 distinct reporter within 10m");
    assert_eq!(engine.stats().firing, [1, 0, 0]);
}

#[test]
fn three_reporters_climb_anomaly_pattern_problem_at_their_instants() {
    let k = key();
    let mut engine = Engine::new(config("10m", "0s"));
    let mut got = feed(
        &mut engine,
        &[
            e("e1", min(0), "a"),
            e("e2", min(1), "b"),
            e("e3", min(2), "a"), // a again: still two people
            e("e4", min(3), "c"),
            e("e5", min(4), "d"), // beyond problem: nothing more to fire
        ],
    );
    got.extend(advance(&mut engine, min(5)));
    assert_eq!(engine.stats().open_episodes, [0, 0, 1]);
    got.extend(advance(&mut engine, min(30)));
    assert_alerts(
        &got,
        &[
            k.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            k.firing(
                Pattern,
                Some(Anomaly),
                min(1),
                min(0),
                2,
                &["e1", "e2"],
                Why::Threshold(2),
            ),
            k.firing(
                Problem,
                Some(Pattern),
                min(3),
                min(0),
                3,
                &["e1", "e2", "e3", "e4"],
                Why::Threshold(3),
            ),
            k.resolved(Problem, min(0), min(4), 4, &["e1", "e2", "e3", "e4", "e5"]),
        ],
    );
    assert_eq!(got[2].rule.description, "3 distinct reporters within 10m");
    assert!(got[2].recall_candidate && !got[1].recall_candidate);
    let s = engine.stats();
    assert_eq!(
        (s.firing, s.resolved, s.open_episodes),
        ([1, 1, 1], 1, [0, 0, 0])
    );
}

#[test]
fn several_reporters_at_one_instant_fire_once_at_the_highest_rung() {
    let k = key();
    let mut engine = Engine::new(config("10m", "0s"));
    let events = [
        e("e1", min(0), "a"),
        e("e2", min(0), "b"),
        e("e3", min(0), "c"),
        e("e4", min(0), "a"),
    ];
    let mut got = feed(&mut engine, &events);
    assert!(
        got.is_empty(),
        "instant 0 is not final while the frontier is 0"
    );
    got.extend(advance(&mut engine, min(30)));
    let evidence = by_hash(&["e1", "e2", "e3", "e4"]);
    assert_alerts(
        &got,
        &[
            k.firing(
                Problem,
                None,
                min(0),
                min(0),
                3,
                &evidence,
                Why::Threshold(3),
            ),
            k.resolved(Problem, min(0), min(0), 3, &evidence),
        ],
    );
    assert_eq!(engine.stats().firing, [0, 0, 1]);
}

#[test]
fn events_without_a_customer_are_each_their_own_reporter() {
    let k = key();
    let (got, _) = run(
        config("10m", "0s"),
        &[
            ev("e1", min(0), None, P, &[T]),
            ev("e2", min(1), None, P, &[T]),
            e("e3", min(2), "a"),
        ],
    );
    assert_alerts(
        &got,
        &[
            k.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            k.firing(
                Pattern,
                Some(Anomaly),
                min(1),
                min(0),
                2,
                &["e1", "e2"],
                Why::Threshold(2),
            ),
            k.firing(
                Problem,
                Some(Pattern),
                min(2),
                min(0),
                3,
                &["e1", "e2", "e3"],
                Why::Threshold(3),
            ),
        ],
    );
}

#[test]
fn a_redelivered_event_id_never_counts_twice() {
    let k = key();
    let mut engine = Engine::new(config("10m", "0s"));
    let mut out = Vec::new();
    let first = e("e1", min(0), "a");
    assert_eq!(
        engine.ingest(&first, &mut out),
        Ingest::Accepted {
            reports: 1,
            duplicates: 0,
            refused: 0
        }
    );
    // The exact message again, then the same id with the customer missing (it would be a second
    // reporter, "e1", if it were counted) and a later time.
    for again in [first.clone(), ev("e1", min(1), None, P, &[T])] {
        assert_eq!(
            engine.ingest(&again, &mut out),
            Ingest::Accepted {
                reports: 0,
                duplicates: 1,
                refused: 0
            }
        );
    }
    engine.advance_to(min(30), &mut out);
    assert_alerts(
        &out,
        &[
            k.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            // The redelivery at 1m did not become the last report either: drained at 10m.
            k.resolved(Anomaly, min(0), min(0), 1, &["e1"]),
        ],
    );
    let s = engine.stats();
    assert_eq!((s.events, s.duplicate_reports, s.firing), (3, 2, [1, 0, 0]));
}

// ---------------------------------------------------------------------------------------------
// Event time: lateness and the frontier

#[test]
fn out_of_order_within_the_lateness_gives_the_in_order_alerts() {
    let k = key();
    let events = [
        e("e1", min(0), "a"),
        e("e2", min(1), "b"),
        e("e3", min(2), "c"),
        e("e4", min(3), "a"),
        e("e5", min(4), "d"),
    ];
    let want = [
        k.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
        k.firing(
            Pattern,
            Some(Anomaly),
            min(1),
            min(0),
            2,
            &["e1", "e2"],
            Why::Threshold(2),
        ),
        k.firing(
            Problem,
            Some(Pattern),
            min(2),
            min(0),
            3,
            &["e1", "e2", "e3"],
            Why::Threshold(3),
        ),
        k.resolved(Problem, min(0), min(4), 4, &["e1", "e2", "e3", "e4", "e5"]),
    ];
    for order in [
        [0, 1, 2, 3, 4],
        [4, 2, 0, 3, 1],
        [1, 2, 3, 4, 0],
        [4, 3, 2, 1, 0],
    ] {
        let mut engine = Engine::new(config("10m", "5m"));
        let shuffled: Vec<_> = order.iter().map(|&i| events[i].clone()).collect();
        let mut got = feed(&mut engine, &shuffled);
        assert!(got.is_empty(), "{order:?}: the frontier never passed 0");
        got.extend(advance(&mut engine, min(30)));
        assert_alerts(&got, &want);
        assert_eq!(engine.stats().late, 0);
    }
}

#[test]
fn an_event_beyond_the_lateness_is_late_and_not_counted() {
    let k = key();
    let mut engine = Engine::new(config("10m", "2m"));
    let mut out = Vec::new();
    accept(&mut engine, &e("e1", min(10), "a"));
    assert_eq!(engine.frontier(), min(8));
    // One microsecond before the frontier: late.
    assert_eq!(
        engine.ingest(&e("e2", min_us(8, -1), "b"), &mut out),
        Ingest::Late { frontier: min(8) }
    );
    // Exactly at the frontier: accepted.
    assert_eq!(
        engine.ingest(&e("e3", min(8), "c"), &mut out),
        Ingest::Accepted {
            reports: 1,
            duplicates: 0,
            refused: 0
        }
    );
    assert_eq!(engine.watermark(), Some(min(10)));
    engine.finish(&mut out);
    assert_alerts(
        &out,
        &[
            k.firing(Anomaly, None, min(8), min(8), 1, &["e3"], Why::Threshold(1)),
            k.firing(
                Pattern,
                Some(Anomaly),
                min(10),
                min(8),
                2,
                &["e3", "e1"],
                Why::Threshold(2),
            ),
        ],
    );
    // After the end of input everything up to the watermark is final: later arrivals are late.
    assert_eq!(
        engine.ingest(&e("e4", min(10), "d"), &mut out),
        Ingest::Late {
            frontier: min_us(10, 1)
        }
    );
    let s = engine.stats();
    assert_eq!((s.events, s.late), (2, 2));
}

#[test]
fn nothing_is_decided_before_the_frontier_passes() {
    let k = key();
    let lid = KeyCtx::new(P, "lid", minutes(10));
    let mut engine = Engine::new(config("10m", "1h"));
    assert!(accept(&mut engine, &e("e1", min(0), "a")).is_empty());
    assert!(accept(&mut engine, &ev("x1", min(59), Some("x"), P, &["lid"])).is_empty());
    // The watermark is 1h past the report: the frontier is at the report, not past it.
    assert!(advance(&mut engine, min(60)).is_empty());
    assert_eq!(engine.frontier(), min(0));
    // So a second report at the same instant still lands in time...
    assert!(accept(&mut engine, &e("e2", min(0), "b")).is_empty());
    // ...and when the frontier passes 0 the key goes straight to pattern: one alert, no anomaly.
    let got = accept(
        &mut engine,
        &ev("x2", min_us(60, 1), Some("y"), P, &["lid"]),
    );
    let pair = by_hash(&["e1", "e2"]);
    assert_alerts(
        &got,
        &[k.firing(Pattern, None, min(0), min(0), 2, &pair, Why::Threshold(2))],
    );
    // The window drains at 10m, final once the frontier is past it.
    assert!(advance(&mut engine, min(70)).is_empty());
    assert_alerts(
        &advance(&mut engine, min_us(70, 1)),
        &[k.resolved(Pattern, min(0), min(0), 2, &pair)],
    );
    // End of input decides the rest: watermark 70m + 1us.
    let x2_at = min_us(60, 1);
    assert_alerts(
        &finish(&mut engine),
        &[
            lid.firing(
                Anomaly,
                None,
                min(59),
                min(59),
                1,
                &["x1"],
                Why::Threshold(1),
            ),
            lid.firing(
                Pattern,
                Some(Anomaly),
                x2_at,
                min(59),
                2,
                &["x1", "x2"],
                Why::Threshold(2),
            ),
            lid.resolved(Pattern, min(59), x2_at, 2, &["x1", "x2"]),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Episodes

#[test]
fn an_episode_resolves_when_its_window_drains_and_a_later_report_opens_a_new_one() {
    let k = key();
    let mut engine = Engine::new(config("10m", "0s"));
    let mut got = feed(&mut engine, &[e("e1", min(0), "a"), e("e2", min(5), "b")]);
    assert_alerts(
        &got,
        &[k.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1))],
    );
    // 16m > 5m + 10m: a new episode. Its own instant is final only at the end of input.
    let drained = accept(&mut engine, &e("e3", min(16), "c"));
    assert_alerts(
        &drained,
        &[
            k.firing(
                Pattern,
                Some(Anomaly),
                min(5),
                min(0),
                2,
                &["e1", "e2"],
                Why::Threshold(2),
            ),
            k.resolved(Pattern, min(0), min(5), 2, &["e1", "e2"]),
        ],
    );
    let resolved = &drained[1];
    assert_eq!(resolved.triggered_at, min(15));
    assert_eq!(
        (resolved.window.start, resolved.window.end),
        (min(-5), min(5))
    );
    assert_eq!(resolved.previous_level, Some(Pattern));
    assert_eq!(resolved.rule.kind, "window_drained");
    assert_eq!(
        resolved.rule.description,
        "no reports within 10m after 2026-03-01T00:05:00Z"
    );
    assert_eq!(resolved.alert_id, alert_id(P, T, min(0), "resolved"));
    got.extend(drained);
    let last = finish(&mut engine);
    assert_alerts(
        &last,
        &[k.firing(
            Anomaly,
            None,
            min(16),
            min(16),
            1,
            &["e3"],
            Why::Threshold(1),
        )],
    );
    got.extend(last);
    // New episode, new ids.
    assert_eq!(got[0].episode.id, episode_id(P, T, min(0)));
    assert_eq!(got[3].episode.id, episode_id(P, T, min(16)));
    assert_ne!(got[0].episode.id, got[3].episode.id);
    assert_ne!(got[0].alert_id, got[3].alert_id);
    let s = engine.stats();
    assert_eq!(
        (s.firing, s.resolved, s.open_episodes),
        ([2, 1, 0], 1, [1, 0, 0])
    );
}

/// A key whose reports were pruned below its lowest threshold cannot climb again with them, so
/// its next report is decided late, together with any that follow; its open episode must still
/// resolve when its window drains, not when that late decision comes.
#[test]
fn a_key_that_cannot_climb_any_more_still_resolves_when_its_window_drains() {
    let k = KeyCtx::new(P, T, minutes(5));
    let cfg = config_with("5m", "16m", |raw| {
        raw.thresholds = Thresholds {
            anomaly: 3,
            pattern: 4,
            problem: 5,
        };
    });
    let mut engine = Engine::new(cfg);
    let quiet = feed(
        &mut engine,
        &[
            e("e1", min(0), "a"),
            e("e2", min(1), "b"),
            e("e3", min(2), "c"),
            e("e4", min(6), "d"),
            e("e5", min(11), "e"),
        ],
    );
    assert!(quiet.is_empty(), "nothing is final yet: {quiet:?}");
    // The frontier moves to 14m: e1..e5 are decided (anomaly at 2m; the episode runs on to 11m
    // and drains at 16m), only e5 is kept, and e6 at 30m is undecided: two reports against a
    // lowest threshold of 3.
    let fired = accept(&mut engine, &e("e6", min(30), "f"));
    assert_alerts(
        &fired,
        &[k.firing(
            Anomaly,
            None,
            min(2),
            min(0),
            3,
            &["e1", "e2", "e3"],
            Why::Threshold(3),
        )],
    );
    // Another key moves the frontier to 24m, past the drain and before e6 + 5m.
    let drained = accept(&mut engine, &ev("t1", min(40), Some("g"), "toaster", &[T]));
    assert_alerts(
        &drained,
        &[k.resolved(Anomaly, min(0), min(11), 1, &["e5"])],
    );
    assert_eq!(drained[0].triggered_at, min(16));
    assert_eq!(engine.stats().open_episodes, [0, 0, 0]);
}

// ---------------------------------------------------------------------------------------------
// Severity fast path

#[test]
fn severity_takes_a_key_straight_to_problem() {
    let k = key();
    let (got, _) = run(
        config("10m", "0s"),
        &[
            json("e1", min(0), "a", r#","severity":{"injuries":1}"#),
            e("e2", min(1), "b"),
        ],
    );
    let mut want = k.firing(
        Problem,
        None,
        min(0),
        min(0),
        1,
        &["e1"],
        Why::FastPath("injuries reported"),
    );
    want.severity.injuries = 1;
    assert_alerts(&got, &[want]);
    assert_eq!(
        (got[0].rule.kind.as_str(), got[0].rule.threshold),
        ("fast_path", None)
    );
    assert!(got[0].recall_candidate);
}

#[test]
fn the_fast_path_skips_the_rungs_in_between() {
    let k = key();
    let (got, _) = run(
        config("10m", "0s"),
        &[
            e("e1", min(0), "a"),
            json("e2", min(1), "b", r#","severity":{"fire":true}"#),
        ],
    );
    let mut want = k.firing(
        Problem,
        Some(Anomaly),
        min(1),
        min(0),
        2,
        &["e1", "e2"],
        Why::FastPath("fire reported"),
    );
    want.severity.fires = 1;
    assert_alerts(
        &got,
        &[
            k.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            want,
        ],
    );
}

#[test]
fn a_threshold_reach_of_problem_wins_over_the_fast_path() {
    let k = key();
    let (got, _) = run(
        config("10m", "0s"),
        &[
            e("e1", min(0), "a"),
            e("e2", min(1), "b"),
            json(
                "e3",
                min(2),
                "c",
                r#","severity":{"deaths":1,"injuries":2,"fire":true}"#,
            ),
        ],
    );
    let mut want = k.firing(
        Problem,
        Some(Pattern),
        min(2),
        min(0),
        3,
        &["e1", "e2", "e3"],
        Why::Threshold(3),
    );
    want.severity.deaths = 1;
    want.severity.injuries = 2;
    want.severity.fires = 1;
    assert_eq!(got.len(), 3);
    assert_alerts(&got[2..], &[want]);
}

#[test]
fn the_fast_path_reason_prefers_deaths_then_injuries_then_fire() {
    let k = key();
    let (got, _) = run(
        config("10m", "0s"),
        &[json(
            "e1",
            min(0),
            "a",
            r#","severity":{"deaths":1,"injuries":2,"fire":true,"crash":true}"#,
        )],
    );
    let mut want = k.firing(
        Problem,
        None,
        min(0),
        min(0),
        1,
        &["e1"],
        Why::FastPath("deaths reported"),
    );
    want.severity = recall_radar::alert::SeveritySummary {
        injuries: 2,
        deaths: 1,
        fires: 1,
        crashes: 1,
    };
    assert_alerts(&got, &[want]);
}

#[test]
fn the_fast_path_is_off_when_configured_off() {
    let k = key();
    let hurt = Severity {
        injuries: 1,
        deaths: 1,
        fire: true,
        crash: true,
    };
    let off = config_with("10m", "0s", |raw| raw.fast_path = FastPath::OFF);
    let (got, _) = run(off, &[ev_sev("e1", min(0), Some("a"), P, &[T], hurt)]);
    let mut want = k.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1));
    want.severity = recall_radar::alert::SeveritySummary {
        injuries: 1,
        deaths: 1,
        fires: 1,
        crashes: 1,
    };
    assert_alerts(&got, &[want]);

    // Each trigger is its own switch: injuries off, fire on.
    let fire_only = config_with("10m", "0s", |raw| {
        raw.fast_path = FastPath {
            injuries: false,
            deaths: false,
            fire: true,
        }
    });
    let injured = Severity {
        injuries: 1,
        ..Default::default()
    };
    let burnt = Severity {
        fire: true,
        ..Default::default()
    };
    let (got, _) = run(
        fire_only,
        &[
            ev_sev("e1", min(0), Some("a"), P, &[T], injured),
            ev_sev("e2", min(20), Some("b"), P, &[T], burnt),
        ],
    );
    let levels: Vec<_> = got
        .iter()
        .map(|a| (a.status, a.level, a.rule.kind.as_str()))
        .collect();
    use recall_radar::alert::Status::{Firing, Resolved};
    assert_eq!(
        levels,
        [
            (Firing, Anomaly, "threshold"),
            (Resolved, Anomaly, "window_drained"),
            (Firing, Problem, "fast_path"),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Tag classes

#[test]
fn tag_classes_have_their_own_window_and_thresholds() {
    let cfg = config_with("10m", "0s", |raw| {
        raw.tag_class = vec![
            RawTagClass {
                name: "safety".into(),
                tags: vec!["brakes".into()],
                patterns: vec![],
                window: Some("1h".into()),
                thresholds: Some(Thresholds {
                    anomaly: 1,
                    pattern: 2,
                    problem: 4,
                }),
            },
            RawTagClass {
                name: "noise".into(),
                tags: vec![],
                patterns: vec!["misc-.*".into()],
                window: Some("5m".into()),
                thresholds: Some(Thresholds {
                    anomaly: 2,
                    pattern: 3,
                    problem: 4,
                }),
            },
        ];
    });
    let brakes = KeyCtx::new(P, "brakes", minutes(60)).class("safety");
    let misc = KeyCtx::new(P, "misc-rattle", minutes(5)).class("noise");
    // Patterns are anchored: "xmisc-rattle" is not noise.
    let other = KeyCtx::new(P, "xmisc-rattle", minutes(10));
    let on = |id, at, who, tag| ev(id, at, Some(who), P, &[tag]);
    let (got, engine) = run(
        cfg,
        &[
            on("s1", min(0), "a", "brakes"),
            on("n1", min(0), "a", "misc-rattle"),
            on("x1", min(0), "a", "xmisc-rattle"),
            on("n2", min(6), "b", "misc-rattle"),
            on("n3", min(8), "c", "misc-rattle"),
            on("s2", min(30), "b", "brakes"),
            on("s3", min(50), "c", "brakes"),
            on("s4", min(55), "d", "brakes"),
        ],
    );
    assert_alerts(
        &sorted(got),
        &[
            brakes.firing(Anomaly, None, min(0), min(0), 1, &["s1"], Why::Threshold(1)),
            other.firing(Anomaly, None, min(0), min(0), 1, &["x1"], Why::Threshold(1)),
            // misc-rattle: one reporter is below its anomaly threshold of 2, and n2 at 6m is past
            // 0 + 5m, so a new episode starts at 6m; the first one closes without an alert.
            misc.firing(
                Anomaly,
                None,
                min(8),
                min(6),
                2,
                &["n2", "n3"],
                Why::Threshold(2),
            ),
            other.resolved(Anomaly, min(0), min(0), 1, &["x1"]),
            misc.resolved(Anomaly, min(6), min(8), 2, &["n2", "n3"]),
            brakes.firing(
                Pattern,
                Some(Anomaly),
                min(30),
                min(0),
                2,
                &["s1", "s2"],
                Why::Threshold(2),
            ),
            // Three reporters at 50m are still a pattern with a problem threshold of 4.
            brakes.firing(
                Problem,
                Some(Pattern),
                min(55),
                min(0),
                4,
                &["s1", "s2", "s3", "s4"],
                Why::Threshold(4),
            ),
        ],
    );
    // Only brakes (drains at 1h55m) is still open.
    assert_eq!(engine.live_keys(), 1);
    assert_eq!(engine.stats().open_episodes, [0, 0, 1]);
}

// ---------------------------------------------------------------------------------------------
// Keys

#[test]
fn an_event_with_several_tags_reports_on_each_key() {
    let lid = KeyCtx::new(P, "lid-latch", minutes(10));
    let heat = key();
    let mut engine = Engine::new(config("10m", "0s"));
    let mut out = Vec::new();
    // Tags are trimmed and deduplicated by the decoder; no customer: the event is the reporter.
    let first = decode_owned(&format!(
        r#"{{"event_id":"e1","occurred_at":"{}","channel":"call","product_id":"{P}","defect_tags":["lid-latch"," lid-latch","{T}"]}}"#,
        min(0)
    ));
    assert_eq!(
        engine.ingest(&first, &mut out),
        Ingest::Accepted {
            reports: 2,
            duplicates: 0,
            refused: 0
        }
    );
    out.extend(accept(&mut engine, &e("e2", min(1), "b")));
    engine.finish(&mut out);
    assert_alerts(
        &sorted(out),
        &[
            lid.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            heat.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            heat.firing(
                Pattern,
                Some(Anomaly),
                min(1),
                min(0),
                2,
                &["e1", "e2"],
                Why::Threshold(2),
            ),
        ],
    );
    assert_eq!(engine.live_keys(), 2);
}

#[test]
fn keys_over_max_keys_are_refused_and_never_alert() {
    let cfg = config_with("10m", "0s", |raw| raw.max_keys = 2);
    let mut engine = Engine::new(cfg);
    let mut out = Vec::new();
    let accepted = |reports, refused| Ingest::Accepted {
        reports,
        duplicates: 0,
        refused,
    };
    let tags = ["t1", "t2", "t3"];
    assert_eq!(
        engine.ingest(&ev("e1", min(0), Some("a"), P, &tags), &mut out),
        accepted(2, 1)
    );
    assert_eq!(
        engine.ingest(&ev("e2", min(1), Some("b"), P, &["t3"]), &mut out),
        accepted(0, 1)
    );
    assert_eq!(
        engine.ingest(&ev("e3", min(2), Some("b"), P, &["t1"]), &mut out),
        accepted(1, 0)
    );
    assert_eq!(engine.live_keys(), 2);
    engine.advance_to(min(30), &mut out);
    let t1 = KeyCtx::new(P, "t1", minutes(10));
    let t2 = KeyCtx::new(P, "t2", minutes(10));
    let t3 = KeyCtx::new(P, "t3", minutes(10));
    assert_alerts(
        &sorted(std::mem::take(&mut out)),
        &[
            t1.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            t2.firing(Anomaly, None, min(0), min(0), 1, &["e1"], Why::Threshold(1)),
            t1.firing(
                Pattern,
                Some(Anomaly),
                min(2),
                min(0),
                2,
                &["e1", "e3"],
                Why::Threshold(2),
            ),
            t2.resolved(Anomaly, min(0), min(0), 1, &["e1"]),
            t1.resolved(Pattern, min(0), min(2), 2, &["e1", "e3"]),
        ],
    );
    assert_eq!(engine.stats().refused_keys, 2);
    // Both keys drained and were evicted: there is room for t3 now, counted from scratch.
    assert_eq!(engine.live_keys(), 0);
    assert_eq!(
        engine.ingest(&ev("e4", min(30), Some("c"), P, &["t3"]), &mut out),
        accepted(1, 0)
    );
    engine.finish(&mut out);
    assert_alerts(
        &out,
        &[t3.firing(
            Anomaly,
            None,
            min(30),
            min(30),
            1,
            &["e4"],
            Why::Threshold(1),
        )],
    );
    assert_eq!(engine.stats().refused_keys, 2);
}

#[test]
fn idle_keys_are_evicted_once_their_windows_drain() {
    let mut engine = Engine::new(config("10m", "0s"));
    let tags = ["x", "y", "z"];
    for (i, tag) in tags.iter().enumerate() {
        accept(
            &mut engine,
            &ev(&format!("e{i}"), min(i as i64), Some("a"), P, &[tag]),
        );
    }
    assert_eq!(engine.live_keys(), 3);
    // x drains at 10m (final once the frontier is past it), y at 11m, z at 12m.
    let got = advance(&mut engine, min(11));
    assert_eq!(
        got.iter()
            .map(|a| (a.defect_tag.as_str(), a.status.as_str()))
            .collect::<Vec<_>>(),
        [("z", "firing"), ("x", "resolved")]
    );
    assert_eq!(engine.live_keys(), 2);
    assert_eq!(engine.stats().evicted_keys, 1);
    let got = advance(&mut engine, min(13));
    assert_eq!(got.len(), 2);
    assert_eq!(engine.live_keys(), 0);
    assert!(engine.keys().is_empty());
    let s = engine.stats();
    assert_eq!(
        (s.evicted_keys, s.firing, s.resolved, s.open_episodes),
        (3, [3, 0, 0], 3, [0, 0, 0])
    );
    // A report on an evicted key starts over.
    accept(&mut engine, &ev("e9", min(20), Some("b"), P, &["x"]));
    assert_eq!(engine.live_keys(), 1);
    let x = KeyCtx::new(P, "x", minutes(10));
    assert_alerts(
        &finish(&mut engine),
        &[x.firing(
            Anomaly,
            None,
            min(20),
            min(20),
            1,
            &["e9"],
            Why::Threshold(1),
        )],
    );
}

// ---------------------------------------------------------------------------------------------
// Determinism

#[test]
fn alert_ids_are_the_same_across_engines_and_arrival_orders() {
    let lid = |id, at, who| ev(id, at, Some(who), "toaster", &["lid"]);
    let events = vec![
        e("e1", min(0), "a"),
        lid("l1", min(1), "a"),
        e("e2", min(2), "b"),
        lid("l2", min(3), "b"),
        e("e3", min(4), "c"),
        e("e4", min(20), "d"),
        lid("l3", min(21), "c"),
    ];
    let mut reversed = events.clone();
    reversed[..5].reverse();
    reversed[5..].reverse();
    let go = |events: &[ContactEvent<'_>]| {
        let mut engine = Engine::new(config("10m", "10m"));
        let mut got = feed(&mut engine, events);
        got.extend(advance(&mut engine, min(60)));
        got.extend(finish(&mut engine));
        got
    };
    let a = go(&events);
    assert_eq!(go(&events), a, "the same input twice");
    let mut b = go(&reversed);
    let mut a_sorted = a.clone();
    a_sorted.sort_by(|x, y| x.alert_id.cmp(&y.alert_id));
    b.sort_by(|x, y| x.alert_id.cmp(&y.alert_id));
    assert_eq!(a_sorted, b, "another arrival order");
    // Ids come from product, tag, episode start and rung alone.
    for alert in &a {
        let rung = match alert.status {
            recall_radar::alert::Status::Firing => alert.level.as_str(),
            recall_radar::alert::Status::Resolved => "resolved",
        };
        assert_eq!(
            alert.alert_id,
            alert_id(
                &alert.product_id,
                &alert.defect_tag,
                alert.episode.start,
                rung
            )
        );
        assert_eq!(
            alert.episode.id,
            episode_id(&alert.product_id, &alert.defect_tag, alert.episode.start)
        );
    }
    let mut ids: Vec<&str> = a.iter().map(|x| x.alert_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), a.len(), "ids are unique");
    // kettle: anomaly, pattern, problem, resolved, then a second episode's anomaly and resolved;
    // toaster: anomaly, pattern, resolved, then a second episode's anomaly and resolved.
    assert_eq!(a.len(), 11);
}
