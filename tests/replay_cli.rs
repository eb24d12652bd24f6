//! `recall-radar replay` end to end: the NHTSA file gives the same alerts every time, plain or
//! compressed, from a file or stdin; bad lines and late events land in the rejects file.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use recall_radar::alert::{Alert, Status};
use recall_radar::policy::Level;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_recall-radar"))
}

fn nhtsa() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/nhtsa/events-ford-toyota.jsonl.gz")
}

fn alerts(stdout: &[u8]) -> Vec<Alert> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is an alert"))
        .collect()
}

#[test]
fn nhtsa_replay_is_deterministic_and_sane() {
    let run = || {
        let out = bin()
            .args(["replay", "--window", "90d"])
            .arg(nhtsa())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out.stdout, String::from_utf8(out.stderr).unwrap())
    };
    let (first, summary) = run();
    let (second, _) = run();
    assert_eq!(first, second, "same input, same alerts, byte for byte");
    assert!(
        summary.contains("replayed 28367 events from 28367 lines"),
        "{summary}"
    );
    let first_alerts = alerts(&first);
    assert!(first_alerts.len() > 1000);
    // Per key, firing levels rise within an episode and each episode's rung fires once.
    let mut seen = std::collections::HashSet::new();
    for a in &first_alerts {
        assert!(
            seen.insert(a.alert_id.clone()),
            "duplicate alert id {}",
            a.alert_id
        );
        assert_eq!(a.recall_candidate, a.level == Level::Problem);
        if a.status == Status::Firing {
            assert!(a.previous_level < Some(a.level));
            assert_eq!(a.window.end, a.triggered_at);
            assert!(a.reporters >= 1 && a.reports >= a.reporters);
            assert!(a.evidence.len() as u32 <= a.reports.min(20));
        }
    }
    // The default run (fast path on) has fast-path problem alerts: the data has injuries.
    let out = bin().arg("replay").arg(nhtsa()).output().unwrap();
    assert!(alerts(&out.stdout)
        .iter()
        .any(|a| a.rule.kind == "fast_path"));
}

#[test]
fn stdin_and_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("rejects.jsonl");
    let input = [
        r#"{"event_id":"a","occurred_at":"2026-01-10T00:00:00Z","channel":"call","customer_id":"c1","product_id":"p","defect_tags":["t"]}"#,
        r#"{"event_id":"b","occurred_at":"2026-01-10T05:00:00Z","channel":"chat","customer_id":"c2","product_id":"p","defect_tags":["t"]}"#,
        r#"not json"#,
        r#"{"event_id":"c","occurred_at":"2026-01-10T05:00:00Z","channel":"fax","product_id":"p","defect_tags":["t"]}"#,
        r#"{"event_id":"d","occurred_at":"2026-01-10T01:00:00Z","channel":"call","customer_id":"c3","product_id":"p","defect_tags":["t"]}"#,
        "",
        r#"{"event_id":"e","occurred_at":"2026-01-10T05:30:00Z","channel":"email","customer_id":"c4","product_id":"p","defect_tags":["t"]}"#,
    ]
    .join("\n");
    let mut child = bin()
        .args(["replay", "--window", "1d", "--rejects"])
        .arg(&rejects)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let alerts = alerts(&out.stdout);
    let levels: Vec<_> = alerts
        .iter()
        .map(|a| (a.level, a.triggered_at.to_string()))
        .collect();
    assert_eq!(
        levels,
        vec![
            (Level::Anomaly, "2026-01-10T00:00:00Z".to_string()),
            (Level::Pattern, "2026-01-10T05:00:00Z".to_string()),
            (Level::Problem, "2026-01-10T05:30:00Z".to_string()),
        ],
        "the event 4h late (d) is not counted; e makes the third reporter"
    );
    let rejected: Vec<serde_json::Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<(&str, u64)> = rejected
        .iter()
        .map(|r| (r["reason"].as_str().unwrap(), r["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        vec![("invalid_json", 3), ("bad_channel", 4), ("late", 5)]
    );
    assert_eq!(rejected[0]["raw"], "not json");
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("bad: 2"), "{summary}");
    assert!(summary.contains("late: 1"), "{summary}");
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let out = bin()
        .args(["replay", "--window", "ten days", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ten days"));
    let out = bin()
        .args(["replay", "/nonexistent.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.jsonl"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[detector]\nthresholds = { anomaly = 3, pattern = 2, problem = 1 }\n",
    )
    .unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("detector.thresholds"));
}

#[test]
fn check_config_shows_the_ids_this_instance_will_use() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[kafka]\nrepartition = true\ngroup_id = \"rr\"\n").unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .args(["--transactional-id", "rr-7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("# transactional id: rr-7"), "{text}");
    assert!(
        text.contains("# repartition topic: rr-repartition (consumer group rr-repartition)"),
        "{text}"
    );
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("# transactional id: rr-"),
        "defaults to <group_id>-<hostname>: {text}"
    );
}
