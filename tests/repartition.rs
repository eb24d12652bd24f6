//! `repartition = true` against a real Kafka-protocol broker (tansu): input that is not keyed by
//! product reaches detection through the internal topic keyed by product_id, so reports of one
//! product sent to different input partitions still meet in one window and escalate to a recall
//! candidate; a record without a product id passes through unkeyed and is dead-lettered.

mod broker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::committed::{read_committed, CommittedRecord};
use broker::Broker;
use rdkafka::producer::{FutureProducer, FutureRecord};
use recall_radar::alert::{Alert, Status};
use recall_radar::config::{Config, RawConfig};
use recall_radar::kafka::daemon::{self, Services};
use recall_radar::kafka::live::LiveWindows;
use recall_radar::kafka::repartition::{self, RepartitionSummary};
use recall_radar::metrics::{Health, Metrics};
use recall_radar::policy::Policy;
use recall_radar::{service, shutdown};

const INPUT: &str = "contact-events";
const INPUT_PARTITIONS: i32 = 3;
const REPARTITION: &str = "recall-radar-repartition";
const REPARTITION_PARTITIONS: i32 = 2;
const ALERTS: &str = "recall-alerts";
const DEAD_LETTERS: &str = "recall-radar-dead-letters";
const PRODUCT: &str = "kettle-kx200";

fn config(addr: &str, group: &str) -> Config {
    let text = format!(
        r#"
[detector]
allowed_lateness = "0s"
[kafka]
brokers = "{addr}"
input_topics = ["{INPUT}"]
alert_topic = "{ALERTS}"
dlq_topic = "{DEAD_LETTERS}"
checkpoint_topic = "recall-radar-checkpoints"
group_id = "{group}"
repartition = true
repartition_topic = "{REPARTITION}"
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
    b.create_topic(INPUT, INPUT_PARTITIONS as u32);
    b.create_topic(REPARTITION, REPARTITION_PARTITIONS as u32);
    for t in [ALERTS, DEAD_LETTERS, "recall-radar-checkpoints"] {
        b.create_topic(t, 1);
    }
    b
}

fn event(id: &str, customer: &str, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","occurred_at":"{at}","channel":"call","customer_id":"{customer}","product_id":"{PRODUCT}","defect_tags":["overheating"]}}"#
    )
}

/// Sends `line` unkeyed to one chosen input partition.
async fn send_unkeyed(producer: &FutureProducer, partition: i32, line: &str) {
    producer
        .send(
            FutureRecord::<(), str>::to(INPUT)
                .payload(line)
                .partition(partition),
            Duration::from_secs(10),
        )
        .await
        .expect("test record delivered");
}

/// Reads `topic` as a read_committed consumer until `done` holds for what it holds, or panics
/// after `timeout`.
fn wait_for(
    addr: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[CommittedRecord]) -> bool,
) -> Vec<CommittedRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = read_committed(addr, topic, partitions, Duration::from_secs(5));
        if done(&records) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: no {what} within {timeout:?}; it holds {records:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn key(r: &CommittedRecord) -> Option<String> {
    r.key
        .as_deref()
        .map(|k| String::from_utf8_lossy(k).into_owned())
}

fn header<'a>(r: &'a CommittedRecord, name: &str) -> Option<&'a [u8]> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_from_three_input_partitions_meet_in_one_window() {
    let broker = broker_with_topics();
    let addr = broker.addr.clone();
    let (trigger, stop) = shutdown::channel();
    let running = service::start(config(&addr, "repartition"), stop)
        .await
        .unwrap();

    // One product, three customers, an hour apart, each on its own input partition and unkeyed:
    // without repartitioning each input partition's window would hold one reporter. Each is sent
    // once the one before is on the repartition topic, so they meet there in event-time order
    // (allowed_lateness is 0s: an older one arriving after a newer one would be late).
    let producer = broker.producer();
    let lines = [
        event("e1", "c-1", "2026-01-10T00:00:00Z"),
        event("e2", "c-2", "2026-01-10T01:00:00Z"),
        event("e3", "c-3", "2026-01-10T02:00:00Z"),
    ];
    for (i, line) in lines.iter().enumerate() {
        send_unkeyed(&producer, i as i32, line).await;
        let a = addr.clone();
        tokio::task::spawn_blocking(move || {
            wait_for(
                &a,
                REPARTITION,
                REPARTITION_PARTITIONS,
                Duration::from_secs(60),
                &format!("{} records", i + 1),
                |r| r.len() > i,
            )
        })
        .await
        .unwrap();
    }

    let a = addr.clone();
    let alerts = tokio::task::spawn_blocking(move || {
        wait_for(
            &a,
            ALERTS,
            1,
            Duration::from_secs(60),
            "problem alert",
            |records| {
                records.iter().any(|r| {
                    serde_json::from_slice::<Alert>(r.value.as_deref().unwrap_or_default())
                        .is_ok_and(|a| a.level.as_str() == "problem")
                })
            },
        )
    })
    .await
    .unwrap();
    trigger.fire();
    let summary = running
        .task
        .await
        .unwrap()
        .expect("daemon and repartitioner stop cleanly");
    assert_eq!(summary.events, 3, "{summary:?}");
    assert_eq!((summary.bad, summary.late), (0, 0), "{summary:?}");

    let alerts: Vec<Alert> = alerts
        .iter()
        .map(|r| serde_json::from_str(&r.value_str()).expect("alert JSON"))
        .collect();
    let levels: Vec<&str> = alerts.iter().map(|a| a.level.as_str()).collect();
    assert_eq!(levels, ["anomaly", "pattern", "problem"], "{alerts:?}");
    let problem = alerts.last().unwrap();
    assert_eq!(problem.product_id, PRODUCT);
    assert_eq!(problem.status, Status::Firing);
    assert_eq!(problem.reporters, 3);
    assert!(problem.recall_candidate);

    let repartitioned = read_committed(
        &addr,
        REPARTITION,
        REPARTITION_PARTITIONS,
        Duration::from_secs(10),
    );
    assert_eq!(repartitioned.len(), 3, "{repartitioned:?}");
    for (r, line) in repartitioned.iter().zip(&lines) {
        assert_eq!(key(r).as_deref(), Some(PRODUCT));
        assert_eq!(r.partition, repartitioned[0].partition, "one partition");
        assert_eq!(&r.value_str(), line, "payload unchanged, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_without_product_id_passes_unkeyed_to_the_dead_letter_topic() {
    let broker = broker_with_topics();
    let addr = broker.addr.clone();
    let config = config(&addr, "repartition-dlq");
    let (trigger, stop) = shutdown::channel();
    // The two loops directly, for the repartitioner's summary.
    let metrics = Metrics::new();
    let policy = Policy::new(config.detector.clone());
    let services = Services {
        metrics: metrics.clone(),
        health: Health::new(),
        live: Arc::new(LiveWindows::new(
            policy.classes().to_vec(),
            config.detector.evidence_limit,
        )),
    };
    let repartitioner = tokio::spawn(repartition::run(
        config.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    let detector = tokio::spawn(daemon::run(config, services, stop));

    let no_product = r#"{"event_id":"e9","occurred_at":"2026-01-10T00:00:00Z","channel":"call","customer_id":"c-9","defect_tags":["overheating"]}"#;
    let producer = broker.producer();
    send_unkeyed(&producer, 1, &event("e1", "c-1", "2026-01-10T00:00:00Z")).await;
    send_unkeyed(&producer, 2, no_product).await;

    let a = addr.clone();
    let dead = tokio::task::spawn_blocking(move || {
        wait_for(
            &a,
            DEAD_LETTERS,
            1,
            Duration::from_secs(60),
            "dead letter",
            |r| !r.is_empty(),
        )
    })
    .await
    .unwrap();
    let a = addr.clone();
    let repartitioned = tokio::task::spawn_blocking(move || {
        wait_for(
            &a,
            REPARTITION,
            REPARTITION_PARTITIONS,
            Duration::from_secs(30),
            "2 records",
            |r| r.len() >= 2,
        )
    })
    .await
    .unwrap();
    trigger.fire();
    let summary = repartitioner
        .await
        .unwrap()
        .expect("repartitioner stops cleanly");
    let run = detector.await.unwrap().expect("daemon stops cleanly");

    assert_eq!(
        summary,
        RepartitionSummary {
            messages: 2,
            unkeyed: 1
        }
    );
    assert_eq!((run.messages, run.events, run.bad), (2, 1, 1), "{run:?}");
    // The same counts on /metrics, and its commits apart from the detection loop's.
    assert_eq!(metrics.repartitioned.get(), 2);
    assert_eq!(metrics.repartitioned_unkeyed.get(), 1);
    let repartition_commits = |o: &str| metrics.repartition_commits.with_label_values(&[o]).get();
    assert!(
        repartition_commits("committed") >= 1,
        "its records were read committed"
    );
    assert_eq!(repartition_commits("aborted"), 0);
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(d.value_str(), no_product, "the raw payload is kept");
    assert_eq!(
        header(d, "recall-radar.reason"),
        Some(&b"missing_field"[..])
    );
    assert_eq!(
        header(d, "recall-radar.source.topic"),
        Some(REPARTITION.as_bytes())
    );
    let mut keys: Vec<Option<String>> = repartitioned.iter().map(key).collect();
    keys.sort();
    assert_eq!(keys, [None, Some(PRODUCT.to_owned())]);
}
