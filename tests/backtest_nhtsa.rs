//! The backtest on the NHTSA complaints reproduces the scores in data/nhtsa/README.md exactly,
//! through the library and through the command line.

use std::path::PathBuf;
use std::process::Command;

use recall_radar::backtest::{load_recalls, score, AlertLog, Score};
use recall_radar::config::{DetectorConfig, FastPath, RawDetector};
use recall_radar::engine::Engine;
use recall_radar::replay::{replay, ReplaySinks};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/nhtsa")
        .join(name)
}

fn run(window: &str) -> Score {
    let raw = RawDetector {
        window: window.into(),
        fast_path: FastPath::OFF,
        ..Default::default()
    };
    let mut engine = Engine::new(DetectorConfig::from_raw(&raw).unwrap());
    let mut log = AlertLog::default();
    let mut on_alert = |a: &recall_radar::alert::Alert| {
        log.record(a);
        Ok(())
    };
    let summary = replay(
        &mut engine,
        &[data("events-ford-toyota.jsonl.gz")],
        ReplaySinks {
            on_alert: &mut on_alert,
            rejects: None,
        },
        false,
    )
    .unwrap();
    assert_eq!(summary.events, 28_367);
    assert_eq!(summary.bad_total() + summary.late, 0);
    let recalls = load_recalls(&data("recalls-ford-toyota.jsonl.gz")).unwrap();
    assert_eq!(recalls.len(), 638);
    score(&recalls, &log)
}

/// Rounds as the README's table was printed (Rust's formatting: ties to even).
fn round(x: Option<f64>, places: usize) -> f64 {
    format!("{:.places$}", x.unwrap()).parse().unwrap()
}

#[test]
fn reproduces_the_readme_table() {
    // window, caught, coverage, median, p25, p75, alerted keys, precision
    let expected = [
        ("30d", 75, 0.249, 713.0, 326.5, 1364.0, 464, 0.185),
        ("90d", 86, 0.286, 686.5, 261.5, 1382.0, 650, 0.162),
        ("365d", 104, 0.346, 678.5, 241.5, 1414.2, 960, 0.139),
    ];
    for (window, caught, coverage, median, p25, p75, keys, precision) in expected {
        let s = run(window);
        assert_eq!(s.campaigns, 301, "{window}");
        assert_eq!(s.caught, caught, "{window}");
        assert_eq!(round(Some(s.coverage), 3), coverage, "{window}");
        assert_eq!(round(s.lead_days_median, 1), median, "{window}");
        assert_eq!(round(s.lead_days_p25, 1), p25, "{window}");
        assert_eq!(round(s.lead_days_p75, 1), p75, "{window}");
        assert_eq!(s.alerted_keys, keys, "{window}");
        assert_eq!(round(s.precision, 3), precision, "{window}");
    }
}

#[test]
fn command_line_prints_the_table_and_json() {
    let bin = env!("CARGO_BIN_EXE_recall-radar");
    let out = Command::new(bin)
        .args([
            "backtest",
            "--no-fast-path",
            "--windows",
            "30d,365d",
            "--recalls",
        ])
        .arg(data("recalls-ford-toyota.jsonl.gz"))
        .arg(data("events-ford-toyota.jsonl.gz"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("| 30d | 75 / 301 | 0.249 | 713.0 (326.5, 1364.0) | 464 | 0.185 |"),
        "{table}"
    );
    assert!(
        table.contains("| 365d | 104 / 301 | 0.346 | 678.5 (241.5, 1414.2) | 960 | 0.139 |"),
        "{table}"
    );

    let out = Command::new(bin)
        .args([
            "backtest",
            "--no-fast-path",
            "--window",
            "90d",
            "--json",
            "--recalls",
        ])
        .arg(data("recalls-ford-toyota.jsonl.gz"))
        .arg(data("events-ford-toyota.jsonl.gz"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &doc["runs"][0];
    assert_eq!(run["window"], "90d");
    assert_eq!(run["score"]["caught"], 86);
    assert_eq!(run["score"]["alerted_keys"], 650);
    assert_eq!(run["replay"]["events"], 28_367);
}
