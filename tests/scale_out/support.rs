//! What the scale-out tests share: the generated stream, the config, `recall-radar run`
//! processes to start, kill and stop, and the checks of the alert topic read with true
//! read_committed semantics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use recall_radar::config::{Config, RawConfig};
use recall_radar::engine::Engine;
use recall_radar::event::decode;

use crate::broker::{self, committed::read_committed, Broker};

pub const INPUT: &str = "contact-events";
pub const ALERTS: &str = "recall-alerts";
pub const INPUT_PARTITIONS: i32 = 6;
pub const ALERT_PARTITIONS: i32 = 3;
/// 2026-01-05T00:00:00Z in seconds.
pub const BASE: i64 = 1_767_571_200;

pub const CONFIG: &str = r#"
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
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Where a test's instance logs and config stay after it ends, for a failure to be read:
/// target/tmp/scale-out/<test>-<seed>/ (replaced by the next run with the same seed).
pub fn log_dir(test: &str, seed: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scale-out")
        .join(format!("{test}-{seed}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("instance logs: {}", dir.display());
    dir
}

pub fn seed() -> u64 {
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

pub fn rfc3339(secs: i64) -> String {
    recall_radar::time::Timestamp(secs * 1_000_000).to_string()
}

/// `n` events in event-time order, 3 minutes apart: 12 products, 2 tags, 5 customers each, so
/// keys climb the rungs, and gaps longer than the window close episodes.
pub fn events(n: usize, rng: &mut Rng) -> Vec<String> {
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

pub fn config_file(dir: &Path, delivery: &str) -> PathBuf {
    config_committing_every(dir, delivery, "1s", false)
}

/// `confirm`: `kafka.confirm_offsets`, for tests where several producers' transactions overlap
/// (tansu applies a transaction's offsets late then, src/kafka/outbox.rs); a single instance
/// does not need it.
pub fn config_committing_every(dir: &Path, delivery: &str, commit: &str, confirm: bool) -> PathBuf {
    let path = dir.join("recall-radar.toml");
    let text = CONFIG.replace("{commit}", commit)
        + &format!("[kafka]\ndelivery = \"{delivery}\"\nconfirm_offsets = {confirm}\n");
    std::fs::write(&path, text).unwrap();
    path
}

/// The alerts an uninterrupted engine per input partition emits, by alert id, from the input as
/// the broker stored it (partition and offset order).
pub fn expected_alerts(broker: &Broker, config: &Path) -> BTreeMap<String, serde_json::Value> {
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
pub fn published(broker: &Broker) -> (BTreeMap<String, serde_json::Value>, Vec<String>) {
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
pub fn assert_exactly_once(broker: &Broker, expected: &BTreeMap<String, serde_json::Value>) {
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
pub fn assert_at_least_once(broker: &Broker, expected: &BTreeMap<String, serde_json::Value>) {
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
pub struct Instance {
    name: String,
    child: Option<Child>,
    pub log: PathBuf,
    /// When the instance last started, or was killed or stopped: a change of the group.
    changed: Instant,
}

impl Instance {
    pub fn start(name: &str, broker: &Broker, config: &Path, dir: &Path) -> Instance {
        let mut i = Instance {
            name: name.to_owned(),
            child: None,
            log: dir.join(format!("{name}.log")),
            changed: Instant::now(),
        };
        i.restart(broker, config);
        i
    }

    pub fn restart(&mut self, broker: &Broker, config: &Path) {
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
        self.changed = Instant::now();
    }

    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        self.changed = Instant::now();
        eprintln!("killed -9 {}", self.name);
    }

    /// SIGTERM: the instance commits what it consumed and leaves the group.
    pub fn stop(&mut self) {
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
            self.read_log()
        );
        self.changed = Instant::now();
        eprintln!("stopped {}", self.name);
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Waits (up to `timeout`) until the running instance has no committed transaction whose
    /// offsets the broker does not show yet (`kafka.confirm_offsets` logs each wait and each
    /// commit shown). tansu applies a transaction's offsets late, by seconds during a
    /// rebalance, although its alerts are already visible: a crash in that window repeats
    /// them, a window that a broker applying offsets with the commit does not have. Killing
    /// outside it keeps the test about the daemon. (A commit that ends just before the kill
    /// can still be caught; the window is then milliseconds, not seconds.)
    pub fn wait_until_offsets_shown(&self, timeout: Duration) {
        let shown = poll(timeout, || {
            let log = self.read_log();
            let run = current_run(&log);
            let last = |needle: &str| run.rfind(needle);
            // A wait that gave up ("does not show the committed offsets") is still open: the
            // offsets may never show. A later commit shown closes it (1 of 30 runs repeated
            // alerts when an instance was killed after its wait gave up).
            last("Committed offsets not shown by the broker")
                <= last("Committed offsets shown by the broker.")
        });
        if !shown {
            eprintln!("{}: offsets still not shown after {timeout:?}", self.name);
        }
    }

    /// Whether `needle` appears in the instance's log within `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        poll(timeout, || self.read_log().contains(needle))
    }

    /// The log of every run of the instance so far.
    fn read_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The instance's current run in its `log`, which is appended to across restarts.
fn current_run(log: &str) -> &str {
    log.rfind("Creating the consumer.")
        .map_or(log, |at| &log[at..])
}

/// Asks `done` every 100 ms until it says yes (`true`) or `timeout` has passed (`false`).
fn poll(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The group's session timeout in [`CONFIG`]: a killed member stays in the group that long.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// Waits (up to `timeout`) until the group has formed again after the last start, kill or
/// stop: a session timeout has passed since (a killed member has been removed), every running
/// instance has had partitions assigned in its current run, and no instance has logged an
/// assignment or a revocation for 3 s. tansu 0.6 never forms a group again once a member that
/// was the leader of a generation being formed leaves it: its coordinator keeps naming the
/// departed member as leader and answers every SyncGroup with REBALANCE_IN_PROGRESS (seen in a
/// run with librdkafka's cgrp debug logs: an instance stopped 3 s after its restart, while
/// the group re-formed with it as leader; the others never got partitions again). Apache Kafka
/// replaces such a leader. A graceful stop waits for this, so the test stays about the daemon.
pub fn wait_until_group_formed(instances: &[Instance], timeout: Duration) {
    let changed = instances
        .iter()
        .map(|i| i.changed)
        .max()
        .expect("instances");
    // Rebalance events logged by all instances so far, and whether every running one has had
    // partitions assigned in its current run.
    let events = || -> (usize, bool) {
        let mut count = 0;
        let mut all_assigned = true;
        for i in instances {
            let log = i.read_log();
            count += log.matches("Partitions assigned").count();
            count += log.matches("Partitions revoked").count();
            all_assigned &= !i.running() || current_run(&log).contains("Partitions assigned");
        }
        (count, all_assigned)
    };
    let (mut seen, _) = events();
    let mut quiet_since = Instant::now();
    let formed = poll(timeout, || {
        let (count, all_assigned) = events();
        if count != seen {
            seen = count;
            quiet_since = Instant::now();
        }
        all_assigned
            && changed.elapsed() > SESSION_TIMEOUT
            && quiet_since.elapsed() > Duration::from_secs(3)
    });
    if !formed {
        eprintln!("the group did not settle within {timeout:?}");
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

pub fn topics(broker: &Broker) {
    broker.create_topic(INPUT, INPUT_PARTITIONS as u32);
    broker.create_topic(ALERTS, ALERT_PARTITIONS as u32);
    broker.create_topic("recall-radar-dead-letters", 1);
    broker.create_topic("recall-radar-checkpoints", 1);
}

/// Produces `lines` in chunks with pauses, on its own thread, so instances come and go while
/// events flow.
pub fn produce_slowly(
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

pub fn pause(rng: &mut Rng, min_ms: u64, max_ms: u64) {
    std::thread::sleep(Duration::from_millis(min_ms + rng.below(max_ms - min_ms)));
}
