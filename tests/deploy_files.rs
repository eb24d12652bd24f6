//! The files in deploy/ are checked for real: promtool accepts the alert rules, their unit tests
//! and the scrape config, and every metric the dashboard and the rules query is one the daemon
//! exports. (promtool comes from Debian's prometheus package: scripts/install-prometheus.sh.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use recall_radar::metrics::Metrics;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn promtool(args: &[&str], dir: &Path) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool is installed by scripts/install-prometheus.sh");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_rules_tests_and_scrape_config() {
    let dir = deploy("prometheus");
    promtool(&["check", "rules", "rules.yml"], &dir);
    promtool(&["test", "rules", "rules.test.yml"], &dir);
    promtool(&["check", "config", "prometheus.yml"], &dir);
}

/// `recall_radar_*` names in a text, with histogram series suffixes taken off.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("recall_radar_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(base.to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_metric_the_dashboard_and_rules_query_is_exported() {
    let metrics = Metrics::new();
    // A labelled gauge appears once it has a series, as it does once partitions are assigned.
    metrics.set_consumer_lag("contact-events", 0, 0);
    let exported: BTreeSet<String> = metrics
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let mut checked = 0;
    for file in [
        "grafana/recall-radar-dashboard.json",
        "prometheus/rules.yml",
        "compose/prometheus.yml",
    ] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        for name in referenced(&text) {
            assert!(
                exported.contains(&name),
                "{file} queries {name}, which /metrics lacks"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 15,
        "the dashboard and rules query the daemon's metrics"
    );
}

#[test]
fn the_kubernetes_configmap_holds_a_valid_configuration() {
    let yaml = std::fs::read_to_string(deploy("k8s/configmap.yaml")).unwrap();
    let mut lines = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("recall-radar.toml: |"));
    lines
        .next()
        .expect("the ConfigMap has a recall-radar.toml entry");
    let toml: String = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    let raw = recall_radar::config::RawConfig::parse(&toml, "configmap.yaml").unwrap();
    recall_radar::config::Config::from_raw(&raw).unwrap();
    assert!(toml.contains("[detector]"), "{toml}");
}
