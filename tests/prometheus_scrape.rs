//! A real Prometheus (Debian's package) scrapes a running daemon; PromQL through its HTTP API
//! returns the counts of a known set of events. The daemon reads from a real broker (tansu).

mod broker;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use broker::{free_port, http_get, Broker};
use recall_radar::config::{Config, RawConfig};
use recall_radar::{service, shutdown};

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant PromQL query with one result, if Prometheus has it yet.
fn query(port: u16, promql: &str) -> Option<f64> {
    let (_, body) = http_get(port, &format!("/api/v1/query?query={}", encode(promql)))?;
    // Prometheus answers small JSON bodies unchunked; be lenient with a chunked one.
    let body = body.trim().lines().find(|l| l.starts_with('{'))?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_counts_of_known_events() {
    let broker = Broker::start();
    for t in ["events", "alerts", "dead-letters"] {
        broker.create_topic(t, 1);
    }
    let ev = |id: &str, at: &str, channel: &str, customer: &str| {
        format!(
            r#"{{"event_id":"{id}","occurred_at":"{at}","channel":"{channel}","customer_id":"{customer}","product_id":"kettle","defect_tags":["overheating"]}}"#
        )
    };
    let lines = vec![
        ev("e1", "2026-01-10T00:00:00Z", "call", "c1"),
        ev("e2", "2026-01-10T01:00:00Z", "chat", "c2"),
        "{broken".to_owned(),
        ev("e3", "2026-01-10T02:00:00Z", "call", "c3"),
        ev("e4", "2026-01-09T00:00:00Z", "email", "c4"), // late: lateness is 0
        ev("e1", "2026-01-10T00:00:00Z", "call", "c1"),  // redelivered: duplicate
    ];
    broker.produce_lines("events", &lines).await;

    let admin = free_port();
    let text = format!(
        "[detector]\nallowed_lateness = \"0s\"\n[kafka]\nbrokers = \"{}\"\ninput_topics = [\"events\"]\nalert_topic = \"alerts\"\ndlq_topic = \"dead-letters\"\n[kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n[daemon]\nidle_tick = \"100ms\"\n[admin]\naddr = \"127.0.0.1:{admin}\"\n",
        broker.addr
    );
    let config = Config::from_raw(&RawConfig::parse(&text, "t").unwrap()).unwrap();
    let (trigger, stop) = shutdown::channel();
    let running = service::start(config, stop).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: recall-radar\n    static_configs:\n      - targets: ['127.0.0.1:{admin}']\n"),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed by scripts/install-prometheus.sh");
    let _prometheus = Prometheus(child);

    let expected = [
        ("up{job=\"recall-radar\"}", 1.0),
        ("recall_radar_events_consumed_total{channel=\"call\"}", 3.0),
        ("recall_radar_events_consumed_total{channel=\"chat\"}", 1.0),
        ("recall_radar_events_consumed_total{channel=\"email\"}", 1.0),
        (
            "recall_radar_events_bad_total{reason=\"invalid_json\"}",
            1.0,
        ),
        ("recall_radar_events_late_total", 1.0),
        ("recall_radar_events_duplicate_total", 1.0),
        ("sum(recall_radar_dead_letters_published_total)", 2.0),
        (
            "sum(recall_radar_alerts_published_total{status=\"firing\"})",
            3.0,
        ),
        (
            "recall_radar_alerts_published_total{level=\"problem\",status=\"firing\"}",
            1.0,
        ),
        ("recall_radar_open_episodes{level=\"problem\"}", 1.0),
        ("recall_radar_partitions_assigned", 1.0),
        ("recall_radar_processing_latency_seconds_count", 3.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last;
    loop {
        last = expected
            .iter()
            .map(|(q, want)| (*q, *want, query(prom_port, q)))
            .collect::<Vec<_>>();
        if last.iter().all(|(_, want, got)| *got == Some(*want)) {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (q, want, got) in &last {
        assert_eq!(*got, Some(*want), "{q}");
    }
    // A rate over the scraped series works too, as the dashboard uses it (two scrapes needed).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rate = query(
            prom_port,
            "sum(rate(recall_radar_events_consumed_total[1m]))",
        );
        if rate.is_some_and(|r| r >= 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rate over the scraped counter"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    trigger.fire();
    running.task.await.unwrap().unwrap();
}
