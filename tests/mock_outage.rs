//! Fault injection with librdkafka's in-process mock cluster: the broker goes down mid-stream and
//! comes back, answers slowly, or refuses commits for longer than a commit call waits; the
//! daemon neither crashes nor loses or repeats an alert, and a SIGTERM meanwhile still ends it
//! within its grace period, the repartitioner's waits included. A broker that refuses writes
//! pauses the input; a written topic that vanishes (the repartition topic too), or a broker
//! without transactions, stops the daemon with the reason.

mod broker;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;
use recall_radar::alert::{Alert, Status};
use recall_radar::config::{Config, RawConfig};
use recall_radar::engine::Engine;
use recall_radar::event::decode;
use recall_radar::kafka::daemon::RunSummary;
use recall_radar::time::Timestamp;
use recall_radar::{service, shutdown};

/// NHTSA complaints re-timed one minute apart: the idle clock moves a quiet partition's time by
/// the seconds the outage lasts, which must stay inside the allowed lateness (30 s here).
fn nhtsa(n: usize) -> Vec<String> {
    broker::nhtsa_lines(n)
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let mut v: serde_json::Value = serde_json::from_str(&l).unwrap();
            v["occurred_at"] = minute(i as i64).into();
            v.to_string()
        })
        .collect()
}

fn minute(i: i64) -> String {
    Timestamp(1_767_225_600_000_000 + i * 60_000_000).to_string()
}

/// One event per partition far ahead, so every partition's frontier passes all the others.
async fn send_sentinels(producer: &FutureProducer) {
    for p in 0..PARTITIONS {
        let line = format!(
            r#"{{"event_id":"sentinel-{p}","occurred_at":"{}","channel":"web","product_id":"{SENTINEL}","defect_tags":["end"]}}"#,
            minute(20_000)
        );
        producer
            .send(
                FutureRecord::to("events")
                    .key(SENTINEL)
                    .payload(&line)
                    .partition(p),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }
}

const PARTITIONS: i32 = 2;

/// A one-broker mock cluster with the input, alert and dead-letter topics.
fn cluster_with_topics() -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(1).unwrap();
    for t in ["events", "alerts", "dead-letters"] {
        cluster.create_topic(t, PARTITIONS, 1).unwrap();
    }
    cluster
}

/// A mock cluster holding `lines` and the sentinels, and the config of an exactly-once daemon
/// on it; `consumer`: more `[kafka.consumer]` lines, `commit_interval`: the daemon's.
async fn loaded_for_exactly_once(
    lines: &[String],
    consumer: &str,
    commit_interval: &str,
) -> (
    MockCluster<'static, DefaultProducerContext>,
    String,
    RawConfig,
) {
    let cluster = cluster_with_topics();
    let addr = cluster.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    send(&producer, lines).await;
    send_sentinels(&producer).await;
    let text = format!(
        "[detector]\nallowed_lateness = \"30s\"\n[kafka]\nbrokers = \"{addr}\"\ninput_topics = [\"events\"]\nalert_topic = \"alerts\"\ndlq_topic = \"dead-letters\"\ndelivery = \"exactly-once\"\n[kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n{consumer}\n[daemon]\nidle_tick = \"100ms\"\ncommit_interval = \"{commit_interval}\"\ngrace_period = \"30s\"\n[admin]\naddr = \"\"\n"
    );
    (cluster, addr, RawConfig::parse(&text, "t").unwrap())
}

fn valid(raw: &RawConfig) -> Config {
    Config::from_raw(raw).unwrap()
}

/// Waits (up to `within`) until the daemon has consumed `total` events, lets its last alerts
/// be committed, then stops it and returns its summary.
async fn consume_then_stop(
    running: service::Running,
    trigger: shutdown::Trigger,
    total: u64,
    within: Duration,
) -> RunSummary {
    let metrics = running.services.metrics.clone();
    let consumed = || metrics.events_consumed.with_label_values(&["web"]).get();
    let deadline = Instant::now() + within;
    while consumed() < total && !running.task.is_finished() {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {total}",
            consumed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    trigger.fire();
    running
        .task
        .await
        .unwrap()
        .expect("the daemon runs until stopped")
}
const SENTINEL: &str = "sentinel";

async fn send(producer: &FutureProducer, lines: &[String]) {
    for line in lines {
        let key = recall_radar::kafka::produce::product_key(line.as_bytes()).unwrap();
        producer
            .send(
                FutureRecord::to("events").key(&key).payload(line),
                Duration::from_secs(30),
            )
            .await
            .expect("delivered once the broker is up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_then_up_loses_no_alert() {
    let cluster = cluster_with_topics();
    let addr = cluster.bootstrap_servers();
    let lines = nhtsa(1000);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("message.timeout.ms", "60000")
        // Retries through the outage must not reorder the input (lateness is 0 here).
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let (first, second) = lines.split_at(500);
    send(&producer, first).await;
    let text = format!(
        "[detector]\nallowed_lateness = \"30s\"\n[kafka]\nbrokers = \"{addr}\"\ninput_topics = [\"events\"]\nalert_topic = \"alerts\"\ndlq_topic = \"dead-letters\"\n[kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n[daemon]\nidle_tick = \"100ms\"\ngrace_period = \"20s\"\n[admin]\naddr = \"\"\n"
    );
    let config = Config::from_raw(&RawConfig::parse(&text, "t").unwrap()).unwrap();
    let (trigger, stop) = shutdown::channel();
    let running = service::start(config.clone(), stop).await.unwrap();
    let metrics = running.services.metrics.clone();
    let consumed = || metrics.events_consumed.with_label_values(&["web"]).get();
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumed() < first.len() as u64 {
        assert!(!running.task.is_finished(), "the daemon stopped");
        assert!(Instant::now() < deadline, "consumed only {}", consumed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Down while the alerts of the first half are still being acknowledged; the second half is
    // produced into the outage and delivered when the broker is back.
    cluster.broker_down(1).unwrap();
    let second: Vec<String> = second.to_vec();
    let late_producer = producer.clone();
    let sending = tokio::spawn(async move { send(&late_producer, &second).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !running.task.is_finished(),
        "the daemon survives the outage"
    );
    cluster.broker_up(1).unwrap();
    sending.await.unwrap();
    send_sentinels(&producer).await;
    let total = lines.len() as u64 + PARTITIONS as u64;
    let summary = consume_then_stop(running, trigger, total, Duration::from_secs(60)).await;
    assert_eq!(summary.late, 0);

    assert_same_firing_alerts(&config, &lines, &addr, summary.alerts as usize, true);
}

/// The broker answers every request 50 ms late and the daemon fetches a few kilobytes at a
/// time, so a transaction's commit (several round trips) spans many fetches of input: the daemon
/// goes on consuming while it runs, holds the alerts those fetches cause and publishes them in
/// the next transaction. Each alert once, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_caused_while_a_slow_commit_runs_go_out_with_the_next() {
    let lines = nhtsa(1000);
    let (cluster, addr, raw) =
        loaded_for_exactly_once(&lines, "\"max.partition.fetch.bytes\" = \"16384\"", "50ms").await;
    let config = valid(&raw);
    cluster
        .broker_round_trip_time(1, Duration::from_millis(20))
        .unwrap();
    let (trigger, stop) = shutdown::channel();
    let running = service::start(config.clone(), stop).await.unwrap();
    let total = lines.len() as u64 + PARTITIONS as u64;
    let summary = consume_then_stop(running, trigger, total, Duration::from_secs(90)).await;
    assert_eq!(summary.late, 0);
    assert!(
        summary.held > 0,
        "no alert was caused while a commit ran, so nothing was tested: {summary:?}"
    );
    cluster
        .broker_round_trip_time(1, Duration::from_millis(0))
        .unwrap();
    assert_same_firing_alerts(&config, &lines, &addr, summary.alerts as usize, false);
}

/// The transaction coordinator answers every commit (EndTxn) with CONCURRENT_TRANSACTIONS for
/// longer than the daemon's 30 s call timeout. librdkafka goes on retrying in the background
/// and asks for the commit call to be made again; the daemon makes it, and when the coordinator
/// answers again every alert is out once. (Until this was fixed, the daemon aborted instead, the
/// abort was refused as a conflicting call and the daemon stopped.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_outlasts_the_call_timeout_is_waited_for() {
    let lines = nhtsa(1000);
    let (cluster, addr, raw) = loaded_for_exactly_once(&lines, "", "100ms").await;
    let config = valid(&raw);
    // Far more errors than 35 s of retries use up (librdkafka backs off up to 1 s a retry).
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS; 10_000],
    );
    let (trigger, stop) = shutdown::channel();
    let running = service::start(config.clone(), stop).await.unwrap();
    let until = Instant::now() + Duration::from_secs(35);
    while Instant::now() < until {
        assert!(
            !running.task.is_finished(),
            "the daemon stopped while its commit was retried"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        running
            .services
            .metrics
            .commits
            .with_label_values(&["committed"])
            .get(),
        0,
        "no commit can have finished while the coordinator refused them"
    );
    cluster.clear_request_errors(RDKafkaApiKey::EndTxn);
    let total = lines.len() as u64 + PARTITIONS as u64;
    let summary = consume_then_stop(running, trigger, total, Duration::from_secs(60)).await;
    assert_eq!(summary.late, 0);
    assert_same_firing_alerts(&config, &lines, &addr, summary.alerts as usize, false);
}

/// While the broker takes no writes a commit cannot finish, and what the loop sends meanwhile
/// waits in memory: at `daemon.max_held_records` the input is paused. Once the broker takes
/// writes again the input resumes, and every alert is published, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_input_pauses_while_a_commit_that_cannot_finish_holds_too_much() {
    let lines = nhtsa(300);
    let (cluster, addr, mut raw) = loaded_for_exactly_once(&lines, "", "100ms").await;
    // The mock cluster answers a fetch with one stored batch, here one event, so the input
    // takes seconds to consume and commits start while most of it waits.
    cluster
        .broker_round_trip_time(1, Duration::from_millis(20))
        .unwrap();
    // At least once, the commit waits for its alerts' acknowledgements, for as long as the
    // broker refuses them; exactly once, the transaction's own timeout would end it first.
    raw.kafka.delivery = "at-least-once".into();
    raw.daemon.max_held_records = 20;
    let config = valid(&raw);
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 10_000],
    );
    let (trigger, stop) = shutdown::channel();
    let running = service::start(config.clone(), stop).await.unwrap();
    let metrics = running.services.metrics.clone();
    let consumed = || metrics.events_consumed.with_label_values(&["web"]).get();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metrics.input_paused.get() == 0 {
        assert!(
            Instant::now() < deadline,
            "never paused; consumed {}",
            consumed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let paused_at = consumed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(consumed(), paused_at, "consumed on while paused");
    assert!(
        paused_at < lines.len() as u64 / 2,
        "{paused_at} of {} events consumed before the pause",
        lines.len()
    );
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    let total = lines.len() as u64 + PARTITIONS as u64;
    let summary = consume_then_stop(running, trigger, total, Duration::from_secs(60)).await;
    assert_eq!(metrics.input_paused.get(), 0, "resumed");
    assert_eq!(summary.late, 0);
    assert_same_firing_alerts(&config, &lines, &addr, summary.alerts as usize, false);
}

/// A topic the daemon writes to that disappears while it runs fails every commit after that:
/// the daemon stops and names it, rather than abort and consume the same input again for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_topic_gone_while_running_stops_the_daemon_and_names_it() {
    let error = error_once_gone_while_running(
        "alerts",
        false,
        "the daemon stops, rather than redo the same input for ever",
    )
    .await;
    assert!(
        error.contains("alerts (") && error.contains("create the topics first"),
        "{error}"
    );
}

/// Runs an exactly-once daemon (with the repartitioner in front if `repartition`) until its
/// first commit, makes the broker answer UNKNOWN_TOPIC_OR_PART for `topic`, sends more input,
/// and gives the error the daemon stops with (`why` it should stop, if it does not).
async fn error_once_gone_while_running(topic: &str, repartition: bool, why: &str) -> String {
    let lines = nhtsa(200);
    let (cluster, _addr, mut raw) = loaded_for_exactly_once(&lines, "", "100ms").await;
    if repartition {
        with_repartitioner(&cluster, &mut raw);
    }
    // Records for the vanished topic wait until the transaction times out (60 s by default),
    // and the commit fails: ~40 s here for the alert topic, ~16 s for the repartition topic.
    raw.kafka
        .producer
        .insert("transaction.timeout.ms".into(), "10000".into());
    raw.kafka
        .producer
        .insert("topic.metadata.propagation.max.ms".into(), "1000".into());
    let (_trigger, stop) = shutdown::channel();
    let running = service::start(valid(&raw), stop).await.unwrap();
    let metrics = running.services.metrics.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metrics.commits.with_label_values(&["committed"]).get() == 0 {
        assert!(!running.task.is_finished(), "stopped before the topic went");
        assert!(Instant::now() < deadline, "nothing committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster
        .topic_error(
            topic,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        )
        .unwrap();
    send_more(&cluster).await;
    broker::error_it_stops_with(running, Duration::from_secs(60), why).await
}

/// Sends the 200 NHTSA events after the first 200 (those `loaded_for_exactly_once` was given).
async fn send_more(cluster: &MockCluster<'static, DefaultProducerContext>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    send(&producer, &nhtsa(400).split_off(200)).await;
}

/// `recall-radar run` on `raw`'s config, its stderr read on a thread of its own (a pipe nobody
/// reads would block the daemon's logging once full); returns once it has partitions, with the
/// thread that hands back the whole log when the process ends.
fn spawn_daemon(raw: &RawConfig) -> (Child, std::thread::JoinHandle<String>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rr.toml");
    std::fs::write(&file, toml::to_string(raw).unwrap()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recall-radar"))
        .args(["run", "--config"])
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (assigned_tx, assigned) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("Partitions assigned") {
                let _ = assigned_tx.send(());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    if assigned.recv_timeout(Duration::from_secs(30)).is_err() {
        child.kill().unwrap();
        panic!("never assigned: {}", log.join().unwrap());
    }
    (child, log)
}

/// Sends SIGTERM to a daemon that waits on the brokers: it must exit with code 1 once the grace
/// period has run out (not before, not much after), saying so.
fn assert_sigterm_ends_it_after_the_grace_period(
    mut child: Child,
    log: std::thread::JoinHandle<String>,
    grace: Duration,
) {
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon ended early"
    );
    let ended = broker::sigterm_and_wait(&mut child, grace + Duration::from_secs(5));
    let log = log.join().unwrap();
    let (status, took) =
        ended.unwrap_or_else(|| panic!("no exit within the grace period of SIGTERM: {log}"));
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("grace period"), "{log}");
    assert!(
        took >= grace,
        "exited after {took:?}, before the grace period ran out"
    );
}

/// SIGTERM while the loop waits inside a step still ends the process within the grace period.
/// Here the coordinator refuses every EndTxn, so the first commit runs for as long as the
/// refusal lasts (its blocking call returns only at its own 30-s timeout, then is made again),
/// and with `confirm_offsets` the loop waits for it. The process exits with code 1, and what
/// was not committed is consumed again after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_loop_waits_for_a_commit_exits_within_the_grace_period() {
    let lines = nhtsa(200);
    let (cluster, _addr, mut raw) = loaded_for_exactly_once(&lines, "", "100ms").await;
    raw.kafka.confirm_offsets = true;
    raw.daemon.grace_period = "3s".into();
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS; 10_000],
    );
    let (child, log) = spawn_daemon(&raw);
    // Consumed (200 events take milliseconds), and the first commit is under way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_sigterm_ends_it_after_the_grace_period(child, log, Duration::from_secs(3));
}

/// The same with the broker gone: the drain's commit cannot finish, nor can the transaction
/// call still blocking a thread when the grace period runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_broker_is_down_exits_within_the_grace_period() {
    let lines = nhtsa(200);
    let (cluster, _addr, mut raw) = loaded_for_exactly_once(&lines, "", "100ms").await;
    raw.daemon.grace_period = "3s".into();
    let (child, log) = spawn_daemon(&raw);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.broker_down(1).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_sigterm_ends_it_after_the_grace_period(child, log, Duration::from_secs(3));
}

/// `raw`'s daemon with the repartitioner in front of it, on a topic made for it in `cluster`.
fn with_repartitioner(cluster: &MockCluster<'static, DefaultProducerContext>, raw: &mut RawConfig) {
    cluster.create_topic(REKEYED, PARTITIONS, 1).unwrap();
    raw.kafka.repartition = true;
    raw.kafka.repartition_topic = REKEYED.into();
}

const REKEYED: &str = "events-by-product";

/// The same with the repartitioner running too: its commits wait on EndTxn like the loop's,
/// and it is held to the same grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_repartitioner_waits_for_a_commit_exits_within_the_grace_period() {
    let lines = nhtsa(200);
    let (cluster, _addr, mut raw) = loaded_for_exactly_once(&lines, "", "100ms").await;
    with_repartitioner(&cluster, &mut raw);
    raw.daemon.grace_period = "3s".into();
    let (child, log) = spawn_daemon(&raw);
    // The first events are forwarded and committed; then every EndTxn is refused, and more
    // events arrive for the repartitioner to forward and commit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS; 10_000],
    );
    send_more(&cluster).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_sigterm_ends_it_after_the_grace_period(child, log, Duration::from_secs(3));
}

/// The repartition topic gone while the repartitioner runs: it stops and names the topic,
/// rather than abort, rewind and re-publish the same input for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repartition_topic_gone_while_running_stops_the_repartitioner_and_names_it() {
    let error = error_once_gone_while_running(
        REKEYED,
        true,
        "the repartitioner stops, rather than re-publish the same input for ever",
    )
    .await;
    assert!(
        error.contains(&format!("{REKEYED} (")) && error.contains("create the topics first"),
        "{error}"
    );
}

/// A broker that does not offer EndTxn (as a tansu build here did not) answers every commit
/// with a retriable error at once. The daemon makes the call again for a few seconds, then
/// stops with the broker's reason, rather than trying for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_end_txn_stops_the_daemon_with_the_reason() {
    let lines = nhtsa(50);
    let (cluster, _addr, raw) = loaded_for_exactly_once(&lines, "", "100ms").await;
    // Loaded first: the loader's producer needs no transactions; the daemon's, created after
    // this, finds no EndTxn among the broker's API versions.
    cluster
        .apiversion(RDKafkaApiKey::EndTxn, None, None)
        .unwrap();
    let (_trigger, stop) = shutdown::channel();
    let running = service::start(valid(&raw), stop).await.unwrap();
    let error = broker::error_it_stops_with(
        running,
        Duration::from_secs(60),
        "the daemon stops instead of retrying the commit for ever",
    )
    .await;
    assert!(error.contains("not supported"), "{error}");
}

/// The firing alerts on the alert topic are those one engine gives for `lines`; `repeats`:
/// whether one may be published more than once (redeliveries through an outage).
fn assert_same_firing_alerts(
    config: &Config,
    lines: &[String],
    addr: &str,
    published_count: usize,
    repeats: bool,
) {
    let mut engine = Engine::new(config.detector.clone());
    let mut expected = Vec::new();
    for line in lines {
        engine.ingest(&decode(line.as_bytes()).unwrap(), &mut expected);
    }
    engine.finish(&mut expected);
    expected.retain(|a| a.product_id != SENTINEL);
    let firing = |v: Vec<Alert>| {
        let mut ids: Vec<String> = v
            .into_iter()
            .filter(|a| a.status == Status::Firing && a.product_id != SENTINEL)
            .map(|a| a.alert_id)
            .collect();
        ids.sort();
        ids
    };
    let published: Vec<Alert> = broker::read_topic(
        addr,
        "alerts",
        PARTITIONS,
        published_count,
        Duration::from_secs(30),
    )
    .iter()
    .map(|r| serde_json::from_str(&r.payload).unwrap())
    .collect();
    assert!(published.len() >= published_count);
    let mut got = firing(published);
    let published_ids = got.len();
    got.dedup();
    assert!(
        repeats || got.len() == published_ids,
        "{} alerts published more than once",
        published_ids - got.len()
    );
    let want = firing(expected);
    let missing: Vec<&String> = want
        .iter()
        .filter(|id| got.binary_search(id).is_err())
        .collect();
    let extra: Vec<&String> = got
        .iter()
        .filter(|id| want.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} of {} firing alerts missing, {} unexpected (first: {:?} {:?})",
        missing.len(),
        want.len(),
        extra.len(),
        missing.first(),
        extra.first()
    );
}
