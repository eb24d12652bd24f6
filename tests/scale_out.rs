//! Scale-out and recovery on a real broker: several `recall-radar run` processes in one consumer
//! group, killed with SIGKILL at random points, restarted, added and removed while events flow.
//! At the end the alert topic, read with true read_committed semantics (tests/broker/committed.rs:
//! tansu omits aborted transactions from Fetch responses, so librdkafka alone would show them),
//! must hold exactly the alerts an uninterrupted engine per input partition gives: no duplicate,
//! none missing, field for field.
//!
//! The seed of the random choices is printed; set SCALE_OUT_SEED to repeat a run.

mod broker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use broker::committed::read_committed;
use broker::Broker;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use recall_radar::config::{Config, RawConfig};
use recall_radar::engine::Engine;
use recall_radar::event::decode;

const INPUT: &str = "contact-events";
const ALERTS: &str = "recall-alerts";
const INPUT_PARTITIONS: i32 = 6;
const ALERT_PARTITIONS: i32 = 3;
/// 2026-01-05T00:00:00Z in seconds.
const BASE: i64 = 1_767_571_200;

const CONFIG: &str = r#"
[detector]
window = "2h"
allowed_lateness = "10m"
[kafka.consumer]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
[daemon]
idle_tick = "0s"
commit_interval = "{commit}"
checkpoint_interval = "{commit}"
grace_period = "20s"
[admin]
addr = ""
"#;

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Where a test's instance logs and config stay after it ends, for a failure to be read:
/// target/tmp/scale-out/<test>-<seed>/ (replaced by the next run with the same seed).
fn log_dir(test: &str, seed: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scale-out")
        .join(format!("{test}-{seed}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("instance logs: {}", dir.display());
    dir
}

fn seed() -> u64 {
    let seed = std::env::var("SCALE_OUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("SCALE_OUT_SEED={seed}");
    seed
}

fn rfc3339(secs: i64) -> String {
    recall_radar::time::Timestamp(secs * 1_000_000).to_string()
}

/// `n` events in event-time order, 3 minutes apart: 12 products, 2 tags, 5 customers each, so
/// keys climb the rungs, and gaps longer than the window close episodes.
fn events(n: usize, rng: &mut Rng) -> Vec<String> {
    (0..n)
        .map(|i| {
            let product = rng.below(12);
            let tag = ["brake-failure", "airbag-light"][rng.below(2) as usize];
            let customer = rng.below(5);
            let at = rfc3339(BASE + i as i64 * 180);
            format!(
                r#"{{"event_id":"ev-{i}","occurred_at":"{at}","channel":"call","customer_id":"p{product}-c{customer}","product_id":"prod-{product}","defect_tags":["{tag}"]}}"#
            )
        })
        .collect()
}

fn config_file(dir: &Path, delivery: &str) -> PathBuf {
    config_committing_every(dir, delivery, "1s")
}

fn config_committing_every(dir: &Path, delivery: &str, commit: &str) -> PathBuf {
    let path = dir.join("recall-radar.toml");
    // tansu acknowledges transactions whose offsets it applies later (src/kafka/outbox.rs).
    let confirm = delivery == "exactly-once";
    let text = CONFIG.replace("{commit}", commit)
        + &format!("[kafka]\ndelivery = \"{delivery}\"\nconfirm_offsets = {confirm}\n");
    std::fs::write(&path, text).unwrap();
    path
}

/// The alerts an uninterrupted engine per input partition emits, by alert id, from the input as
/// the broker stored it (partition and offset order).
fn expected_alerts(broker: &Broker, config: &Path) -> BTreeMap<String, serde_json::Value> {
    let raw = RawConfig::load(Some(config)).unwrap();
    let detector = Config::from_raw(&raw).unwrap().detector;
    let input = read_committed(
        &broker.addr,
        INPUT,
        INPUT_PARTITIONS,
        Duration::from_secs(30),
    );
    let mut expected = BTreeMap::new();
    for p in 0..INPUT_PARTITIONS {
        let mut engine = Engine::new(detector.clone());
        let mut out = Vec::new();
        for r in input.iter().filter(|r| r.partition == p) {
            let event = decode(r.value.as_deref().unwrap()).unwrap();
            engine.ingest_at(&event, r.offset, &mut out);
        }
        for a in out {
            let json: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
            assert!(expected.insert(a.alert_id.clone(), json).is_none());
        }
    }
    expected
}

/// The alerts a read_committed reader sees, with how often each id appears.
fn published(broker: &Broker) -> (BTreeMap<String, serde_json::Value>, Vec<String>) {
    let records = read_committed(
        &broker.addr,
        ALERTS,
        ALERT_PARTITIONS,
        Duration::from_secs(30),
    );
    let mut alerts = BTreeMap::new();
    let mut repeated = Vec::new();
    for r in records {
        let json: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let id = json["alert_id"].as_str().unwrap().to_owned();
        if alerts.insert(id.clone(), json).is_some() {
            repeated.push(id);
        }
    }
    (alerts, repeated)
}

/// Waits until the published alerts are as many as expected (or a minute passes), then checks
/// they are exactly the expected ones, once each.
fn assert_exactly_once(broker: &Broker, expected: &BTreeMap<String, serde_json::Value>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let (alerts, repeated) = loop {
        let (alerts, repeated) = published(broker);
        if alerts.len() + repeated.len() >= expected.len() || Instant::now() > deadline {
            break (alerts, repeated);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    if !repeated.is_empty() {
        let some: Vec<String> = repeated.iter().take(5).cloned().collect();
        broker::committed::explain(&broker.addr, ALERTS, ALERT_PARTITIONS, &some);
    }
    assert!(repeated.is_empty(), "alerts published twice: {repeated:?}");
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !alerts.contains_key(*k))
        .collect();
    let unexpected: Vec<&String> = alerts
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{} expected, {} published; missing {missing:?}; unexpected {unexpected:?}",
        expected.len(),
        alerts.len()
    );
    for (id, want) in expected {
        assert_eq!(&alerts[id], want, "alert {id} differs");
    }
}

/// At least once: every expected alert is there, none unexpected; a repeat is the same alert.
fn assert_at_least_once(broker: &Broker, expected: &BTreeMap<String, serde_json::Value>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let records = read_committed(
            &broker.addr,
            ALERTS,
            ALERT_PARTITIONS,
            Duration::from_secs(30),
        );
        let mut seen: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for r in &records {
            let json: serde_json::Value =
                serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            let id = json["alert_id"].as_str().unwrap().to_owned();
            if let Some(before) = seen.insert(id.clone(), json.clone()) {
                assert_eq!(before, json, "a repeat of {id} differs");
            }
        }
        if seen.len() >= expected.len() || Instant::now() > deadline {
            assert_eq!(
                seen.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>(),
                "alert ids"
            );
            for (id, want) in expected {
                assert_eq!(&seen[id], want, "alert {id} differs");
            }
            eprintln!("{} records, {} distinct alerts", records.len(), seen.len());
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One `recall-radar run` process with a stable transactional id.
struct Instance {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Instance {
    fn start(name: &str, broker: &Broker, config: &Path, dir: &Path) -> Instance {
        let mut i = Instance {
            name: name.to_owned(),
            child: None,
            log: dir.join(format!("{name}.log")),
        };
        i.restart(broker, config);
        i
    }

    fn restart(&mut self, broker: &Broker, config: &Path) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_recall-radar"))
            .args(["run", "--config"])
            .arg(config)
            .args(["--brokers", &broker.addr])
            .args(["--transactional-id", &format!("rr-{}", self.name)])
            .env("RUST_LOG", "info,recall_radar::kafka::outbox=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        eprintln!("started {}", self.name);
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        eprintln!("killed -9 {}", self.name);
    }

    /// SIGTERM: the instance commits what it consumed and leaves the group.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(0),
            "{} did not stop cleanly; log:\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        eprintln!("stopped {}", self.name);
    }

    fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether `needle` appears in the instance's log within `timeout`.
    fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn topics(broker: &Broker) {
    broker.create_topic(INPUT, INPUT_PARTITIONS as u32);
    broker.create_topic(ALERTS, ALERT_PARTITIONS as u32);
    broker.create_topic("recall-radar-dead-letters", 1);
    broker.create_topic("recall-radar-checkpoints", 1);
}

/// Produces `lines` in chunks with pauses, on its own thread, so instances come and go while
/// events flow.
fn produce_slowly(
    broker: &Broker,
    lines: Vec<String>,
    chunk: usize,
    pause: Duration,
) -> std::thread::JoinHandle<()> {
    let addr = broker.addr.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let producer = broker::producer_for(&addr);
        for part in lines.chunks(chunk) {
            rt.block_on(broker::send_keyed(&producer, INPUT, part));
            std::thread::sleep(pause);
        }
    })
}

fn pause(rng: &mut Rng, min_ms: u64, max_ms: u64) {
    std::thread::sleep(Duration::from_millis(min_ms + rng.below(max_ms - min_ms)));
}

#[test]
fn three_instances_killed_added_and_removed_publish_each_alert_exactly_once() {
    let seed = seed();
    let mut rng = Rng(seed);
    let broker = Broker::start();
    topics(&broker);
    let dir = log_dir("three-instances", seed);
    let config = config_file(&dir, "exactly-once");
    let lines = events(2_400, &mut rng);
    let mut instances: Vec<Instance> = ["a", "b", "c"]
        .iter()
        .map(|n| Instance::start(n, &broker, &config, &dir))
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    let producer = produce_slowly(&broker, lines, 60, Duration::from_millis(600));

    let pick = |rng: &mut Rng, instances: &[Instance]| -> usize {
        let running: Vec<usize> = (0..instances.len())
            .filter(|i| instances[*i].running())
            .collect();
        running[rng.below(running.len() as u64) as usize]
    };
    // 1. One instance killed at a random point, restarted a little later.
    pause(&mut rng, 2_000, 5_000);
    let v = pick(&mut rng, &instances);
    instances[v].kill9();
    pause(&mut rng, 500, 4_000);
    instances[v].restart(&broker, &config);
    // 2. A fourth instance joins.
    pause(&mut rng, 1_000, 4_000);
    instances.push(Instance::start("d", &broker, &config, &dir));
    // 3. Two instances killed one after the other, both restarted.
    pause(&mut rng, 2_000, 5_000);
    let v1 = pick(&mut rng, &instances);
    instances[v1].kill9();
    pause(&mut rng, 200, 3_000);
    let v2 = pick(&mut rng, &instances);
    instances[v2].kill9();
    pause(&mut rng, 1_000, 4_000);
    instances[v1].restart(&broker, &config);
    instances[v2].restart(&broker, &config);
    // 4. One instance removed for good (graceful stop), another killed and restarted.
    pause(&mut rng, 2_000, 5_000);
    let gone = pick(&mut rng, &instances);
    instances[gone].stop();
    pause(&mut rng, 500, 3_000);
    let v = pick(&mut rng, &instances);
    instances[v].kill9();
    pause(&mut rng, 500, 3_000);
    instances[v].restart(&broker, &config);

    producer.join().unwrap();
    let expected = expected_alerts(&broker, &config);
    assert!(
        expected.len() > 300,
        "a rich stream: {} alerts",
        expected.len()
    );
    assert_exactly_once(&broker, &expected);
    for i in instances.iter_mut().filter(|i| i.running()) {
        i.stop();
    }
}

#[test]
fn a_killed_and_restarted_instance_escalates_windows_that_straddle_the_crash() {
    straddle_a_crash("exactly-once");
}

/// The fallback for brokers without transactions: the same crash repeats alerts, never loses one.
#[test]
fn at_least_once_repeats_identical_alerts_and_loses_none_across_a_crash() {
    straddle_a_crash("at-least-once");
}

fn straddle_a_crash(delivery: &str) {
    let seed = seed();
    let mut rng = Rng(seed);
    let broker = Broker::start();
    topics(&broker);
    let dir = log_dir(&format!("straddle-{delivery}"), seed);
    let config = config_file(&dir, delivery);
    // A key that the crash cuts in two: one report before, two after. Its product has other
    // traffic, so its partition's watermark moves on.
    let at = |i: i64| rfc3339(BASE + i * 180);
    let straddle = |id: &str, i: i64, customer: &str| {
        format!(
            r#"{{"event_id":"{id}","occurred_at":"{}","channel":"chat","customer_id":"{customer}","product_id":"prod-0","defect_tags":["lid-latch"]}}"#,
            at(i)
        )
    };
    let mut lines = events(600, &mut rng);
    // events() puts line i at BASE + 180 i s. Each straddling report takes the time of the line
    // before it, so none is late; the three span 90 minutes, inside the 2h window.
    lines.insert(291, straddle("lid-1", 290, "k1"));
    lines.insert(306, straddle("lid-2", 305, "k2"));
    lines.insert(321, straddle("lid-3", 320, "k3"));
    let (first, second) = lines.split_at(300);
    let mut instance = Instance::start("solo", &broker, &config, &dir);
    let producer = produce_slowly(&broker, first.to_vec(), 50, Duration::from_millis(300));
    // Wait until the first report's anomaly is committed: the crash then cuts a live window.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !published(&broker)
        .0
        .values()
        .any(|a| a["defect_tag"] == "lid-latch" && a["level"] == "anomaly")
    {
        assert!(
            Instant::now() < deadline,
            "no anomaly for prod-0 lid-latch; log:\n{}",
            std::fs::read_to_string(&instance.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    pause(&mut rng, 0, 1_500);
    instance.kill9();
    producer.join().unwrap();
    let producer = produce_slowly(&broker, second.to_vec(), 50, Duration::from_millis(300));
    pause(&mut rng, 500, 2_000);
    instance.restart(&broker, &config);
    producer.join().unwrap();

    let expected = expected_alerts(&broker, &config);
    if delivery == "exactly-once" {
        assert_exactly_once(&broker, &expected);
    } else {
        assert_at_least_once(&broker, &expected);
    }
    let (alerts, _) = published(&broker);
    let problem = alerts
        .values()
        .find(|a| a["defect_tag"] == "lid-latch" && a["level"] == "problem")
        .expect("the straddling key reached problem");
    assert_eq!(problem["reporters"], 3);
    assert_eq!(problem["recall_candidate"], true);
    assert_eq!(
        problem["episode"]["start"],
        at(290).as_str(),
        "the episode began before the crash"
    );
    let log = std::fs::read_to_string(&instance.log).unwrap();
    assert!(
        log.contains("Partition rebuilt"),
        "the restart rebuilt windows: {log}"
    );
    instance.stop();
}

/// Periodic commits off (1h): the only commit before a rebalance takes partitions away is the
/// one the revocation makes, and the new owner must start exactly there. At least once shows a
/// lapse directly: the new owner would publish the same alerts again.
#[test]
fn a_revoked_partition_is_handed_over_with_what_was_consumed() {
    let seed = seed();
    let mut rng = Rng(seed);
    let broker = Broker::start();
    topics(&broker);
    let dir = log_dir("revoked-hand-over", seed);
    let config = config_committing_every(&dir, "at-least-once", "1h");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(broker.produce_lines(INPUT, &events(600, &mut rng)));
    let expected = expected_alerts(&broker, &config);
    let mut first = Instance::start("first", &broker, &config, &dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    while published(&broker).0.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "the first instance did not publish everything"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // A second member: cooperative-sticky moves some partitions, and only those.
    let mut second = Instance::start("second", &broker, &config, &dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(&second.log).unwrap_or_default();
        if log.contains("Partition rebuilt") || log.contains("Partitions assigned") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second instance got no partition:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Give the second instance time to (wrongly) consume again, then check.
    std::thread::sleep(Duration::from_secs(3));
    let first_log = std::fs::read_to_string(&first.log).unwrap();
    assert!(first_log.contains("Partitions revoked"), "{first_log}");
    assert_at_least_once(&broker, &expected);
    let (_, repeated) = published(&broker);
    assert!(
        repeated.is_empty(),
        "the new owner published again: {repeated:?}"
    );
    second.stop();
    first.stop();
}

/// Alerts the idle clock decides (no input caused them) must not come again after a crash: the
/// commit that carries them also carries the checkpoint with the clock's watermark.
#[test]
fn idle_clock_alerts_are_not_published_again_after_a_crash() {
    let seed = seed();
    let broker = Broker::start();
    topics(&broker);
    let dir = log_dir("idle-clock", seed);
    let config = dir.join("recall-radar.toml");
    std::fs::write(
        &config,
        r#"
[detector]
window = "2s"
allowed_lateness = "0s"
[kafka.consumer]
"session.timeout.ms" = "6000"
[daemon]
idle_tick = "100ms"
commit_interval = "100ms"
checkpoint_interval = "1h"
grace_period = "20s"
[admin]
addr = ""
"#,
    )
    .unwrap();
    // Three reports within a second of event time (0, 0.4, 0.8 s); the idle clock then decides
    // the last rung and, two seconds on, resolves the episode.
    let lines: Vec<String> = (0..3)
        .map(|i| {
            format!(
                r#"{{"event_id":"idle-{i}","occurred_at":"2026-01-05T00:00:00.{}00Z","channel":"call","customer_id":"c{i}","product_id":"kettle","defect_tags":["lid-latch"]}}"#,
                i * 4
            )
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(broker.produce_lines(INPUT, &lines));
    let mut instance = Instance::start("idle", &broker, &config, &dir);
    let statuses = |broker: &Broker| -> Vec<String> {
        let records = read_committed(
            &broker.addr,
            ALERTS,
            ALERT_PARTITIONS,
            Duration::from_secs(30),
        );
        records
            .iter()
            .map(|r| {
                let a: serde_json::Value =
                    serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                format!(
                    "{} {}",
                    a["level"].as_str().unwrap(),
                    a["status"].as_str().unwrap()
                )
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !statuses(&broker).iter().any(|s| s.ends_with("resolved")) {
        assert!(
            Instant::now() < deadline,
            "no resolved alert: {:?}",
            statuses(&broker)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    instance.kill9();
    instance.restart(&broker, &config);
    // Once the restarted instance owns the partitions again, give its idle clock long enough
    // to decide everything again (it would, without the checkpoint).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(&instance.log).unwrap_or_default();
        if log.matches("Partitions assigned").count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "not assigned again:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    let mut seen = statuses(&broker);
    seen.sort();
    assert_eq!(
        seen,
        [
            "anomaly firing",
            "pattern firing",
            "problem firing",
            "problem resolved"
        ],
        "each alert once"
    );
    instance.stop();
}

/// tansu acknowledges a transaction but applies its offsets only once no other producer's
/// transaction on the same partitions is open; until then they ride with the producer's next
/// transaction, and that one's abort (a crash, then the restart's re-init) drops them. With
/// `kafka.confirm_offsets` the daemon reads the offsets back and begins nothing new until the
/// broker shows them, so a crash after the other transaction ended repeats nothing.
/// (Without the option this test publishes the first batch's alerts twice.)
#[test]
fn offsets_the_broker_applies_late_are_confirmed_before_the_next_transaction() {
    let seed = seed();
    let mut rng = Rng(seed);
    let broker = Broker::start();
    topics(&broker);
    let dir = log_dir("late-offsets", seed);
    // Long commit intervals: the next transaction is surely open when the crash comes.
    let config = config_committing_every(&dir, "exactly-once", "4s");
    let lines = events(240, &mut rng);
    let (first, second) = lines.split_at(120);
    // Another producer's transaction, open on every alert partition before the daemon commits.
    let blocker: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("transactional.id", "another-producer")
        .create()
        .unwrap();
    blocker.init_transactions(Duration::from_secs(30)).unwrap();
    blocker.begin_transaction().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for p in 0..ALERT_PARTITIONS {
        let record = FutureRecord::to(ALERTS)
            .partition(p)
            .key("another-producer")
            .payload("{}");
        rt.block_on(blocker.send(record, Duration::from_secs(10)))
            .unwrap();
    }
    let mut instance = Instance::start("late", &broker, &config, &dir);
    assert!(
        instance.wait_for_log("Partitions assigned", Duration::from_secs(60)),
        "not assigned"
    );
    let producer = broker::producer_for(&broker.addr);
    rt.block_on(broker::send_keyed(&producer, INPUT, first));
    // Unconfirmed, the first commit is reported at its tick; confirmed, only once the other
    // transaction has ended.
    instance.wait_for_log("Alert published", Duration::from_secs(6));
    rt.block_on(broker::send_keyed(&producer, INPUT, second));
    std::thread::sleep(Duration::from_millis(300));
    blocker.abort_transaction(Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    instance.kill9();
    instance.restart(&broker, &config);

    let expected = expected_alerts(&broker, &config);
    assert!(expected.len() > 50, "{} alerts", expected.len());
    assert_exactly_once(&broker, &expected);
    let log = std::fs::read_to_string(&instance.log).unwrap();
    assert!(
        log.contains("committing them again"),
        "the broker showed the offsets at once: nothing was confirmed\n{log}"
    );
    instance.stop();
}
