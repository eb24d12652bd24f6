//! `recall-radar run` as a process: it becomes ready on a real broker, SIGTERM drains it and it
//! exits 0; bad configuration exits 2 with a message that names the key.

mod broker;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use broker::{free_port, http_get, sigterm_and_wait, Broker};

#[test]
fn sigterm_drains_commits_and_exits_zero() {
    let broker = Broker::start();
    for t in [
        "contact-events",
        "recall-alerts",
        "recall-radar-dead-letters",
    ] {
        broker.create_topic(t, 2);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lines: Vec<String> = (0..3)
        .map(|i| format!(r#"{{"event_id":"e{i}","occurred_at":"2026-01-10T0{i}:00:00Z","channel":"chat","customer_id":"c{i}","product_id":"kettle","defect_tags":["lid-latch"]}}"#))
        .collect();
    rt.block_on(broker.produce_lines("contact-events", &lines));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rr.toml");
    std::fs::write(
        &cfg,
        "[detector]\nallowed_lateness = \"0s\"\n[kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n[daemon]\nidle_tick = \"100ms\"\ngrace_period = \"10s\"\n",
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recall-radar"))
        .args(["run", "--config"])
        .arg(&cfg)
        .args([
            "--brokers",
            &broker.addr,
            "--admin-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut not_ready_seen = false;
    loop {
        assert!(Instant::now() < deadline, "never became ready");
        match http_get(port, "/readyz") {
            Some((200, _)) => break,
            Some((503, reason)) => {
                not_ready_seen = true;
                assert!(reason.starts_with("not ready"), "{reason}");
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        not_ready_seen,
        "/readyz said 503 before partitions were assigned"
    );
    assert_eq!(http_get(port, "/healthz").unwrap().0, 200);
    // The three reports reached problem; wait until it is published and visible as a signal.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = http_get(port, "/api/signals").unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["signals"][0]["level"] == "problem" {
            assert_eq!(v["signals"][0]["reporters"], 3);
            break;
        }
        assert!(Instant::now() < deadline, "no problem signal: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let alerts = broker.read("recall-alerts", 2, 3, Duration::from_secs(20));
    assert_eq!(alerts.len(), 3);

    let (status, _) = sigterm_and_wait(&mut child, Duration::from_secs(15))
        .expect("no exit within the grace period");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Stopped cleanly"), "{stderr}");
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[kafka]\nbrokers = \"\"\n", "kafka.brokers"),
        ("[kafka]\nbrokerz = \"x:1\"\n", "brokerz"),
        ("[daemon]\ngrace_period = \"soon\"\n", "daemon.grace_period"),
    ];
    for (text, key) in cases {
        let cfg = dir.path().join("bad.toml");
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_recall-radar"))
            .args(["run", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(key), "{text}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_recall-radar"))
        .args(["run", "--config", "/nonexistent/rr.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/rr.toml"));
}

#[test]
fn produce_and_generate_load_a_topic_keyed_by_product() {
    let broker = Broker::start();
    broker.create_topic("events", 2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    std::fs::write(
        &file,
        "{\"event_id\":\"a\",\"product_id\":\" kettle \"}\n\nnot json\n{\"event_id\":\"b\",\"product_id\":\"toaster\"}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_recall-radar"))
        .args(["produce", "--brokers", &broker.addr, "--topic", "events"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("produced 3 records"), "{stderr}");
    assert!(stderr.contains("1 without a product id"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_recall-radar"))
        .args([
            "generate",
            "--events",
            "50",
            "--bursts",
            "1",
            "--brokers",
            &broker.addr,
            "--topic",
            "events",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = broker.read("events", 2, 53, Duration::from_secs(20));
    assert_eq!(records.len(), 53);
    for r in &records {
        let key = recall_radar::kafka::produce::product_key(r.payload.as_bytes());
        assert_eq!(r.key, key, "{}", r.payload);
    }
    assert!(records.iter().any(|r| r.key.as_deref() == Some("kettle")));
}
