//! Scale-out and recovery on a real broker: several `recall-radar run` processes in one consumer
//! group, killed with SIGKILL at random points, restarted, added and removed while events flow.
//! At the end the alert topic, read with true read_committed semantics (tests/broker/committed.rs:
//! tansu omits aborted transactions from Fetch responses, so librdkafka alone would show them),
//! must hold exactly the alerts an uninterrupted engine per input partition gives: no duplicate,
//! none missing, field for field.
//!
//! The seed of the random choices is printed; set SCALE_OUT_SEED to repeat a run.

#[path = "../broker/mod.rs"]
mod broker;
mod support;

use std::time::{Duration, Instant};

use broker::committed::read_committed;
use broker::Broker;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use support::*;

/// How long a kill waits for the victim's committed offsets to show (see
/// `Instance::wait_until_offsets_shown`): the daemon gives up confirming after 30 s, and the
/// next commit, a second later, must show.
const SHOWN_WITHIN: Duration = Duration::from_secs(45);
/// How long a graceful stop waits for the group to form (see `wait_until_group_formed`).
const FORMED_WITHIN: Duration = Duration::from_secs(40);

#[test]
fn three_instances_killed_added_and_removed_publish_each_alert_exactly_once() {
    let seed = seed();
    let mut rng = Rng(seed);
    let broker = Broker::start();
    topics(&broker);
    let dir = log_dir("three-instances", seed);
    let config = config_committing_every(&dir, "exactly-once", "1s", true);
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
    instances[v].wait_until_offsets_shown(SHOWN_WITHIN);
    instances[v].kill9();
    pause(&mut rng, 500, 4_000);
    instances[v].restart(&broker, &config);
    // 2. A fourth instance joins.
    pause(&mut rng, 1_000, 4_000);
    instances.push(Instance::start("d", &broker, &config, &dir));
    // 3. Two instances killed one after the other, both restarted.
    pause(&mut rng, 2_000, 5_000);
    let v1 = pick(&mut rng, &instances);
    instances[v1].wait_until_offsets_shown(SHOWN_WITHIN);
    instances[v1].kill9();
    pause(&mut rng, 200, 3_000);
    let v2 = pick(&mut rng, &instances);
    instances[v2].wait_until_offsets_shown(SHOWN_WITHIN);
    instances[v2].kill9();
    pause(&mut rng, 1_000, 4_000);
    instances[v1].restart(&broker, &config);
    instances[v2].restart(&broker, &config);
    // 4. One instance removed for good (graceful stop), another killed and restarted.
    pause(&mut rng, 2_000, 5_000);
    let gone = pick(&mut rng, &instances);
    wait_until_group_formed(&instances, FORMED_WITHIN);
    instances[gone].stop();
    pause(&mut rng, 500, 3_000);
    let v = pick(&mut rng, &instances);
    instances[v].wait_until_offsets_shown(SHOWN_WITHIN);
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
    // The first report turns final only once its partition's watermark passes it by the
    // 10-minute lateness, and the test waits for that before the crash. The other products'
    // lines are random, so one more of prod-0 (another tag, at line 298's time) ends the first
    // half: without it, some seeds (1795395878766529055) put none of the last first-half lines
    // in prod-0's partition and the anomaly never came.
    lines.insert(
        299,
        format!(
            r#"{{"event_id":"tick-0","occurred_at":"{}","channel":"web","customer_id":"k0","product_id":"prod-0","defect_tags":["rattle"]}}"#,
            at(298)
        ),
    );
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
    let config = config_committing_every(&dir, "at-least-once", "1h", false);
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
    let config = config_committing_every(&dir, "exactly-once", "4s", true);
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
