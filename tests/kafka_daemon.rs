//! The daemon against a real Kafka-protocol broker (tansu): alerts on the alert topic equal what
//! replay gives for the same events, bad and late input lands on the dead-letter topic with its
//! reason, a restart resumes from committed offsets without repeating alerts, and a backlog is
//! committed while it is consumed and does not hold up shutdown.

mod broker;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::{nhtsa_lines, Broker};
use recall_radar::alert::{Alert, Status};
use recall_radar::config::{Config, RawConfig};
use recall_radar::engine::Engine;
use recall_radar::event::decode;
use recall_radar::generate::{GenSpec, Generator};
use recall_radar::kafka::daemon::RunSummary;
use recall_radar::kafka::produce;
use recall_radar::metrics::Metrics;
use recall_radar::service;
use recall_radar::shutdown;

const PARTITIONS: u32 = 3;

fn config(addr: &str, group: &str) -> Config {
    let text = format!(
        r#"
[detector]
window = "30d"
allowed_lateness = "0s"
[kafka]
brokers = "{addr}"
input_topics = ["events"]
alert_topic = "alerts"
dlq_topic = "dead-letters"
group_id = "{group}"
[kafka.consumer]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
"topic.metadata.refresh.interval.ms" = "1000"
[daemon]
idle_tick = "100ms"
grace_period = "10s"
commit_interval = "200ms"
[admin]
addr = ""
"#
    );
    Config::from_raw(&RawConfig::parse(&text, "test.toml").unwrap()).unwrap()
}

fn broker_with_topics() -> Broker {
    let b = Broker::start();
    for t in ["events", "alerts", "dead-letters"] {
        b.create_topic(t, PARTITIONS);
    }
    b
}

/// Runs the daemon until it has consumed `messages` records and its clock has made them final,
/// then shuts it down (drain, flush, commit) and returns its summary.
async fn run_until_consumed(config: Config, messages: u64) -> RunSummary {
    run_with_metrics(config, messages).await.0
}

/// Like `run_until_consumed`, also handing back the run's metrics.
async fn run_with_metrics(config: Config, messages: u64) -> (RunSummary, Arc<Metrics>) {
    let (trigger, stop) = shutdown::channel();
    let running = service::start(config, stop).await.unwrap();
    let metrics = running.services.metrics.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.messages_consumed() < messages {
        assert!(
            Instant::now() < deadline,
            "consumed only {} of {messages}",
            metrics.messages_consumed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few idle ticks move each partition's clock past its last event.
    tokio::time::sleep(Duration::from_millis(800)).await;
    trigger.fire();
    (running.task.await.unwrap().unwrap(), metrics)
}

fn replay_alerts(config: &Config, lines: &[String]) -> Vec<Alert> {
    let mut engine = Engine::new(config.detector.clone());
    let mut out = Vec::new();
    for line in lines {
        if let Ok(e) = decode(line.as_bytes()) {
            engine.ingest(&e, &mut out);
        }
    }
    engine.finish(&mut out);
    out
}

fn parse(records: &[broker::Record]) -> Vec<Alert> {
    records
        .iter()
        .map(|r| {
            let a: Alert = serde_json::from_str(&r.payload).expect("alert JSON");
            assert_eq!(
                r.key.as_deref(),
                Some(a.product_id.as_str()),
                "keyed by product"
            );
            assert_eq!(r.header("recall-radar.alert-id"), Some(a.alert_id.as_str()));
            a
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_alerts_equal_replay_alerts() {
    let broker = broker_with_topics();
    let lines = nhtsa_lines(1500);
    broker.produce_lines("events", &lines).await;
    let config = config(&broker.addr, "same-as-replay");
    let summary = run_until_consumed(config.clone(), lines.len() as u64).await;
    assert_eq!(summary.events, 1500);
    let published = broker.read(
        "alerts",
        PARTITIONS as i32,
        summary.alerts as usize,
        Duration::from_secs(20),
    );
    assert_eq!(published.len() as u64, summary.alerts);
    let kafka = parse(&published);
    let replay = replay_alerts(&config, &lines);

    let firing = |v: &[Alert]| {
        let mut f: Vec<Alert> = v
            .iter()
            .filter(|a| a.status == Status::Firing)
            .cloned()
            .collect();
        f.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
        f
    };
    let (k, r) = (firing(&kafka), firing(&replay));
    assert!(r.len() > 100, "the data gives a fair number of alerts");
    assert_eq!(k.len(), r.len());
    assert_eq!(k, r, "same alerts, field for field, same ids");
    // Replay's end of input resolves by the newest event of all partitions; the daemon by each
    // partition's own clock, so it may not have resolved everything yet, but nothing else.
    let replay_ids: HashSet<&str> = replay.iter().map(|a| a.alert_id.as_str()).collect();
    for a in kafka.iter().filter(|a| a.status == Status::Resolved) {
        assert!(
            replay_ids.contains(a.alert_id.as_str()),
            "resolved {} not in replay",
            a.alert_id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_late_input_goes_to_the_dead_letter_topic() {
    let broker = broker_with_topics();
    let ok = |id: &str, at: &str| {
        format!(
            r#"{{"event_id":"{id}","occurred_at":"{at}","channel":"call","customer_id":"c-{id}","product_id":"kettle","defect_tags":["overheating"]}}"#
        )
    };
    let lines = vec![
        ok("e1", "2026-01-10T00:00:00Z"),
        "this is not json".to_owned(),
        r#"{"event_id":"e2","occurred_at":"2026-01-10T00:00:00Z","channel":"fax","product_id":"kettle","defect_tags":["overheating"]}"#.to_owned(),
        ok("e3", "2026-01-11T00:00:00Z"),
        ok("e4", "2026-01-10T12:00:00Z"), // before its partition's watermark, lateness 0: late
    ];
    broker.produce_lines("events", &lines).await;
    let summary = run_until_consumed(config(&broker.addr, "dlq"), 5).await;
    assert_eq!((summary.events, summary.bad, summary.late), (2, 2, 1));
    let dead = broker.read(
        "dead-letters",
        PARTITIONS as i32,
        3,
        Duration::from_secs(20),
    );
    assert_eq!(dead.len(), 3);
    let mut reasons: Vec<(&str, &str, &str)> = dead
        .iter()
        .map(|r| {
            assert_eq!(r.header("recall-radar.source.topic"), Some("events"));
            assert!(r.header("recall-radar.source.partition").is_some());
            assert!(!r.header("recall-radar.error").unwrap().is_empty());
            (
                r.header("recall-radar.reason").unwrap(),
                r.header("recall-radar.source.offset").unwrap(),
                r.payload.as_str(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons[0].0, "bad_channel");
    assert_eq!(
        reasons[1],
        ("invalid_json", reasons[1].1, "this is not json")
    );
    assert_eq!(reasons[2].0, "late");
    assert_eq!(reasons[2].2, lines[4], "the raw payload is kept");
    let alerts = parse(&broker.read(
        "alerts",
        PARTITIONS as i32,
        summary.alerts as usize,
        Duration::from_secs(10),
    ));
    let levels: Vec<_> = alerts.iter().map(|a| a.level.as_str()).collect();
    assert_eq!(
        levels,
        vec!["anomaly", "pattern"],
        "the late event did not count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_committed_offsets_without_repeating_alerts() {
    let broker = broker_with_topics();
    let lines = nhtsa_lines(1200);
    let (first, second) = lines.split_at(700);
    broker.produce_lines("events", first).await;
    let run1 = run_until_consumed(config(&broker.addr, "restart"), first.len() as u64).await;
    assert_eq!(run1.messages, first.len() as u64);
    let before = parse(&broker.read(
        "alerts",
        PARTITIONS as i32,
        run1.alerts as usize,
        Duration::from_secs(20),
    ));
    assert_eq!(before.len() as u64, run1.alerts);

    broker.produce_lines("events", second).await;
    let (run2, metrics) =
        run_with_metrics(config(&broker.addr, "restart"), second.len() as u64).await;
    // The first run's windows came back by replay, from the checkpoints its shutdown wrote.
    assert!(run2.replayed > 0, "nothing replayed: {run2:?}");
    assert_eq!(metrics.rebuild_replayed.get(), run2.replayed);
    assert!(metrics.partition_rebuilds.get() >= 1);
    assert_eq!(
        metrics.rebuild_duration.get_sample_count(),
        metrics.partition_rebuilds.get()
    );
    assert!(metrics.commits.with_label_values(&["committed"]).get() >= 1);
    assert_eq!(metrics.commits.with_label_values(&["aborted"]).get(), 0);
    assert!(
        metrics.checkpoints_written.get() >= 1,
        "the shutdown checkpoints"
    );
    assert_eq!(
        run2.messages,
        second.len() as u64,
        "resumed after the committed offsets"
    );
    let total = (run1.alerts + run2.alerts) as usize;
    let all = parse(&broker.read("alerts", PARTITIONS as i32, total, Duration::from_secs(20)));
    assert_eq!(all.len(), total);
    let mut ids = HashSet::new();
    for a in &all {
        assert!(
            ids.insert(a.alert_id.clone()),
            "alert {} published twice",
            a.alert_id
        );
    }
}

/// While fetched messages keep waiting, the loop must still take its turns at everything else:
/// the commit interval, finished commits, rebalances and shutdown. A loop that only got to them
/// once the fetch queue ran dry committed nothing of a backlog until it was drained: its alerts
/// stayed unpublished for the whole catch-up. Shutdown, checked too, must not wait for the
/// backlog either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_committed_while_it_is_consumed_and_shutdown_does_not_wait_for_it() {
    const BACKLOG: u64 = 200_000;
    let broker = broker_with_topics();
    let spec = GenSpec {
        events: BACKLOG,
        ..GenSpec::default()
    };
    // Pipelined, as `recall-radar produce` sends: one send at a time would take minutes.
    let loader = produce::loader(&broker.addr, &[]).unwrap();
    let lines = Generator::new(spec).map(|e| e.json.into_bytes());
    let report = produce::produce_lines(&loader, "events", lines, None, None)
        .await
        .unwrap();
    assert_eq!(report.sent, BACKLOG);
    let config = config(&broker.addr, "backlog");
    let interval = config.daemon.commit_interval.as_std();

    let (trigger, stop) = shutdown::channel();
    let running = service::start(config, stop).await.unwrap();
    let m = running.services.metrics.clone();
    let commits = || m.commits.with_label_values(&["committed"]).get();
    let deadline = Instant::now() + Duration::from_secs(120);
    while m.messages_consumed() == 0 {
        assert!(Instant::now() < deadline, "nothing consumed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    while m.messages_consumed() < BACKLOG / 2 {
        assert!(
            Instant::now() < deadline,
            "consumed only {}",
            m.messages_consumed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let half = started.elapsed();
    let (commits_at_half, consumed_at_half) = (commits(), m.messages_consumed());
    trigger.fire();
    let summary = running.task.await.unwrap().unwrap();

    // Commits went on while the first half was consumed: each starts at the first tick after
    // the last one finished, so they come at most once per interval, fewer when a transaction
    // takes longer (on tansu in a debug build, about one per 1.5 intervals: 11-12 in 3.5-3.9 s).
    // A quarter of one per interval leaves room for a slow machine; the loop that waited for
    // the fetch queue to run dry made none.
    assert!(
        half >= interval * 5,
        "the first half took {half:?}: too short to tell (make the backlog longer)"
    );
    let floor = (half.as_secs_f64() / interval.as_secs_f64() / 4.0).max(2.0) as u64;
    assert!(
        commits_at_half >= floor,
        "{commits_at_half} commits (at least {floor} expected) while {consumed_at_half} messages were consumed in {half:?} (commit_interval {interval:?})"
    );
    assert!(
        summary.messages < BACKLOG * 3 / 4,
        "shutdown waited for the backlog: {} of {BACKLOG} messages consumed after it fired at {consumed_at_half}",
        summary.messages
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_written_topic_stops_the_daemon_at_start_and_names_it() {
    let b = broker_with_topics();
    let mut config = config(&b.addr, "missing-topic");
    config.kafka.checkpoint_topic = "checkpoints-never-created".into();
    // As on a broker that does not create topics on first use: tansu does, unless the
    // producer's metadata request asks it not to.
    config
        .kafka
        .producer
        .insert("allow.auto.create.topics".into(), "false".into());
    let (_trigger, stop) = shutdown::channel();
    let running = service::start(config, stop).await.unwrap();
    let error = broker::error_it_stops_with(
        running,
        Duration::from_secs(30),
        "the daemon stops at start, not at its first commit or never",
    )
    .await;
    assert!(
        error.contains("checkpoints-never-created") && error.contains("create the topics first"),
        "{error}"
    );
    for present in ["alerts", "dead-letters"] {
        assert!(!error.contains(&format!("{present} (")), "{error}");
    }
}
