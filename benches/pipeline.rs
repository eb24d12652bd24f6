//! Pipeline benchmarks: the whole path from bytes to alerts, against its natural baselines.
//!
//! Run with `bash scripts/bench.sh` (full sizes, ~10-15 minutes on 2 cores) or
//! `bash scripts/bench.sh --quick` (small sizes, a smoke run); `--help` lists the options. Prints a
//! Markdown table of medians with the targets and PASS/MISS, and writes it as JSON to
//! `target/bench-results.json`. Progress goes to stderr, the table to stdout.
//!
//! 1. **engine**: one generated JSON-lines file (`GenSpec` defaults, 5,000,000 events, written
//!    once into `target/bench-data/` and reused while the spec is the same), read (a) by a
//!    parse-only loop (serde into a plain struct of borrowed strings, nothing else), (b) by
//!    `replay::replay` with a default `Engine` and alerts discarded, and (c) by `decode` alone,
//!    which splits replay's time into decoding and engine; single thread, runs interleaved.
//! 2. **kafka**: tansu on loopback (or the broker given with `--brokers`), an input topic
//!    preloaded with the first N lines of that file; (a) a plain `BaseConsumer` (assign(), no
//!    group) that only counts N messages, (b) the daemon (`service::start`) until it consumed
//!    all N and every alert it produced was acknowledged, and (e) the same plain consumer
//!    decoding each message into one engine per partition, alerts discarded: what any
//!    one-thread daemon must do at least, without its writes, commits and async loop.
//!    Both clocks start at the first message the consumer counts: neither the raw client's
//!    start (coordinator, offsets, first fetch: ~0.5 s on tansu) nor the daemon's group join
//!    (half of `session.timeout.ms`) and partition restore is counted; each is reported apart,
//!    with both consumers' rates over the middle half of the count (support/progress.rs).
//! 3. **latency** (support/latency.rs): events produced at a steady rate with `occurred_at` =
//!    now; every 10th opens a new key (an anomaly alert as soon as it is final), the rest go to
//!    100 hot keys that reached the problem rung during the warm-up (no more alerts). Latency =
//!    probe sent -> its alert received by a consumer (assign(), no group); beside it, the
//!    broker's own latency, one hop and two through a plain relay, on tansu and on librdkafka's
//!    mock cluster.
//! 4. **memory**: in a fresh child process each, VmRSS of an `Engine` holding N live keys (one
//!    report each, generator-shaped events), and a flood of unique keys against `max_keys`.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/flags.rs"]
mod flags;
#[path = "support/hop.rs"]
mod hop;
#[path = "support/latency.rs"]
mod latency;
use latency::{bench_latency, LAT_CONSUMER, LAT_DAEMON_PRODUCER, LAT_LOAD_PRODUCER};
#[path = "support/progress.rs"]
mod progress;
#[path = "support/stats.rs"]
mod stats;
use broker::{target_dir, Broker};
use flags::{num, Flags};
use progress::Progress;
use stats::{median, thousands};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::{json, Value};

#[path = "support/baseline.rs"]
mod baseline;
use baseline::BaselineEvent;

use recall_radar::alert::Alert;
use recall_radar::config::{is_secret, Config, DetectorConfig, RawConfig, RawDetector};
use recall_radar::engine::Engine;
use recall_radar::event::{decode, Channel, ContactEvent, Severity};
use recall_radar::generate::{GenSpec, Generator};
use recall_radar::kafka::client::consumer_config;
use recall_radar::kafka::daemon::RunSummary;
use recall_radar::kafka::produce::{loader, produce_lines};
use recall_radar::lines::{for_each_line, trim_end};
use recall_radar::metrics::{Metrics, ALERT_LEVELS, ALERT_STATUSES};
use recall_radar::replay::{replay, ReplaySinks};
use recall_radar::service;
use recall_radar::shutdown;
use recall_radar::time::{format_rfc3339, Timestamp, MICROS_PER_SECOND};
use recall_radar::window::hash_str;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const PHASES: [&str; 4] = ["engine", "kafka", "latency", "memory"];

const USAGE: &str = "\
usage: bash scripts/bench.sh [--quick] [OPTIONS]
  (runs: cargo bench --bench pipeline -- [--quick] [OPTIONS])

  --quick               small sizes and one run of each, for a smoke test
  --runs N              timed runs per measurement (default 3; quick 1)
  --phases LIST         comma-separated subset of engine,kafka,latency,memory (default all)
  --events N            events in the generated file (default 5000000; quick 200000)
  --kafka-events N      events preloaded into the input topic (default 1000000; quick 100000)
  --partitions N        partitions of the input and alert topics in the kafka phase (default 3)
  --lat-partitions N    partitions of the topics in the latency phase (default 1: 10,000
                        events/s fit one partition, and tansu's fetches cost more per batch
                        stored, of which more partitions make more)
  --kafka-producer K=V,..  librdkafka properties of the daemon's alert producer in the kafka
                        phase (default none: the daemon's defaults, linger.ms=1)
  --kafka-consumer K=V,..  librdkafka properties of the consumers in the kafka phase (raw, the
                        daemon, and 2e's, which starts from the daemon's) (default none)
  --kafka-delivery MODE kafka.delivery of the daemon in the kafka phase: exactly-once (default,
                        as the daemon's default) or at-least-once
  --rate N              events/s of the latency load (default 10000)
  --warmup SECS         latency warm-up (default 3; quick 1)
  --duration SECS       latency measurement (default 20; quick 3)
  --mem-keys N          live keys of the memory measurement (default 1000000; quick 100000)
  --flood-keys N        unique keys of the flood (default 3000000; quick 300000)
  --flood-cap N         max_keys during the flood (default 200000; quick 20000)
  --output FILE         JSON results (default target/bench-results.json)
  --lat-consumer K=V,.. librdkafka properties of the daemon's consumer and the alert reader in
                        the latency phase (default fetch.wait.max.ms=5,socket.nagle.disable=true)
  --lat-load-producer K=V,..    properties of the latency load producer
                        (default linger.ms=5,socket.nagle.disable=true)
  --lat-daemon-producer K=V,..  properties of the daemon's alert producer in the latency phase
                        on tansu (default linger.ms=5,socket.nagle.disable=true; the mock
                        cluster's runs use linger.ms=1)
  --lat-delivery MODE   kafka.delivery in the latency phase: at-least-once (default; an alert is
                        visible once acknowledged) or exactly-once (visible with the commit
                        after it, so never sooner than --lat-commit-interval)
  --lat-commit-interval SPAN  daemon.commit_interval in the latency phase (default 100ms)
  --lat-idle-ticks A,B  daemon.idle_tick of each latency variant (default 1s); the first is
                        held to the target, the others are shown for comparison
  --brokers HOST:PORT,..  run the kafka and latency phases on this broker instead of a tansu
                        started on loopback; the bench creates its topics there (names ending
                        in this run's id) and deletes them at the end
  --broker-config K=V,..  librdkafka properties of every client on the --brokers broker (admin,
                        loader, consumers, producers, the daemon's), for its security settings:
                        security.protocol=SASL_SSL,sasl.mechanisms=SCRAM-SHA-512,
                        sasl.username=U,sasl.password=P (default none: plaintext)
  --replication-factor N  replicas of the topics created with --brokers (default 1)
";

// ---------------------------------------------------------------------------------------------
// options

#[derive(Debug, Clone)]
struct Args {
    quick: bool,
    runs: usize,
    phases: Vec<String>,
    events: u64,
    kafka_events: u64,
    partitions: u32,
    /// Latency phase: partitions of its topics.
    lat_partitions: u32,
    rate: u64,
    warmup: u64,
    duration: u64,
    mem_keys: u64,
    flood_keys: u64,
    flood_cap: usize,
    output: PathBuf,
    /// Latency phase: properties of the daemon's consumer and the alert reader.
    lat_consumer: Props,
    /// Latency phase: properties of the load producer.
    lat_load_producer: Props,
    /// Latency phase: properties of the daemon's alert producer.
    lat_daemon_producer: Props,
    /// Latency phase: `daemon.idle_tick` of each variant; the first one is held to the target.
    lat_idle_ticks: Vec<String>,
    /// Latency phase: `daemon.commit_interval`.
    lat_commit_interval: String,
    /// Latency phase: `kafka.delivery`.
    lat_delivery: String,
    /// Kafka phase: `kafka.delivery`.
    kafka_delivery: String,
    /// Kafka phase: properties of both consumers.
    kafka_consumer: Props,
    /// Kafka phase: properties of the daemon's alert producer.
    kafka_producer: Props,
    /// Kafka and latency phases: a broker the user runs, instead of a tansu started here.
    brokers: Option<String>,
    /// Replicas of the topics created on `brokers`.
    replication_factor: i32,
    /// Properties of every client on `brokers` (security settings).
    broker_config: Props,
    /// Ends the names of the topics and groups this run creates, which on a given broker must
    /// not meet an earlier run's.
    run_id: String,
}

type Props = Vec<(String, String)>;

fn props(text: &str) -> Result<Props, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("{kv:?} is not KEY=VALUE"))
        })
        .collect()
}

/// `base` with `more` on top: a key in both takes `more`'s value (the daemon's TOML tables
/// take each key once).
fn merged(base: &[(String, String)], more: &[(String, String)]) -> Props {
    let mut all: Props = base
        .iter()
        .filter(|(k, _)| !more.iter().any(|(m, _)| m == k))
        .cloned()
        .collect();
    all.extend(more.iter().cloned());
    all
}

/// `props` as a log may show them: secret values (`sasl.password`) redacted, as `check-config`
/// does.
fn redacted(props: &[(String, String)]) -> Props {
    props
        .iter()
        .map(|(k, v)| {
            let v = if is_secret(k) { "<redacted>" } else { v };
            (k.clone(), v.to_owned())
        })
        .collect()
}

/// Properties as the results show them, secrets redacted.
fn props_text(props: &[(String, String)]) -> String {
    redacted(props)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Args {
    fn defaults(quick: bool) -> Args {
        let pick = |full: u64, small: u64| if quick { small } else { full };
        Args {
            quick,
            runs: pick(3, 1) as usize,
            phases: PHASES.iter().map(|s| s.to_string()).collect(),
            events: pick(5_000_000, 200_000),
            kafka_events: pick(1_000_000, 100_000),
            partitions: 3,
            lat_partitions: 1,
            rate: 10_000,
            warmup: pick(3, 1),
            duration: pick(20, 3),
            mem_keys: pick(1_000_000, 100_000),
            flood_keys: pick(3_000_000, 300_000),
            flood_cap: pick(200_000, 20_000) as usize,
            output: target_dir().join("bench-results.json"),
            lat_consumer: props(LAT_CONSUMER).expect("valid default"),
            lat_load_producer: props(LAT_LOAD_PRODUCER).expect("valid default"),
            lat_daemon_producer: props(LAT_DAEMON_PRODUCER).expect("valid default"),
            lat_idle_ticks: vec!["1s".into()],
            lat_commit_interval: "100ms".into(),
            lat_delivery: "at-least-once".into(),
            kafka_delivery: "exactly-once".into(),
            kafka_consumer: Vec::new(),
            kafka_producer: Vec::new(),
            brokers: None,
            replication_factor: 1,
            broker_config: Vec::new(),
            run_id: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string(),
        }
    }

    /// These options as a log may show them: client properties [`redacted`].
    fn shown(&self) -> Args {
        Args {
            broker_config: redacted(&self.broker_config),
            kafka_consumer: redacted(&self.kafka_consumer),
            kafka_producer: redacted(&self.kafka_producer),
            lat_consumer: redacted(&self.lat_consumer),
            lat_load_producer: redacted(&self.lat_load_producer),
            lat_daemon_producer: redacted(&self.lat_daemon_producer),
            ..self.clone()
        }
    }

    /// The broker of the Kafka phases: the given one, or a fresh tansu on loopback.
    fn broker(&self) -> Result<Broker, String> {
        match &self.brokers {
            Some(addr) => Ok(Broker::given(
                addr,
                self.replication_factor,
                self.broker_config.clone(),
            )),
            None => Broker::start(),
        }
    }

    fn parse(raw: Vec<String>) -> Result<Args, String> {
        let quick = raw.iter().any(|a| a == "--quick");
        let mut a = Args::defaults(quick);
        let mut flags = Flags::new(raw);
        while let Some((name, inline)) = flags.next_flag() {
            let mut value = || flags.value(&name, inline.clone());
            match name.as_str() {
                // `cargo bench` passes --bench to every bench binary.
                "--bench" | "--quick" => {}
                "--runs" => a.runs = num(&name, &value()?)?,
                "--phases" => {
                    a.phases = value()?.split(',').map(|s| s.trim().to_owned()).collect();
                    if let Some(p) = a.phases.iter().find(|p| !PHASES.contains(&p.as_str())) {
                        return Err(format!("unknown phase {p:?} (phases: {PHASES:?})"));
                    }
                }
                "--events" => a.events = num(&name, &value()?)?,
                "--kafka-events" => a.kafka_events = num(&name, &value()?)?,
                "--partitions" => a.partitions = num(&name, &value()?)?,
                "--lat-partitions" => a.lat_partitions = num(&name, &value()?)?,
                "--rate" => a.rate = num(&name, &value()?)?,
                "--warmup" => a.warmup = num(&name, &value()?)?,
                "--duration" => a.duration = num(&name, &value()?)?,
                "--mem-keys" => a.mem_keys = num(&name, &value()?)?,
                "--flood-keys" => a.flood_keys = num(&name, &value()?)?,
                "--flood-cap" => a.flood_cap = num(&name, &value()?)?,
                "--output" => a.output = PathBuf::from(value()?),
                "--lat-consumer" => a.lat_consumer = props(&value()?)?,
                "--lat-load-producer" => a.lat_load_producer = props(&value()?)?,
                "--lat-daemon-producer" => a.lat_daemon_producer = props(&value()?)?,
                "--lat-commit-interval" => a.lat_commit_interval = value()?,
                "--lat-delivery" => a.lat_delivery = value()?,
                "--kafka-delivery" => a.kafka_delivery = value()?,
                "--kafka-consumer" => a.kafka_consumer = props(&value()?)?,
                "--kafka-producer" => a.kafka_producer = props(&value()?)?,
                "--brokers" => a.brokers = Some(value()?),
                "--replication-factor" => a.replication_factor = num(&name, &value()?)?,
                "--broker-config" => a.broker_config = props(&value()?)?,
                "--lat-idle-ticks" => {
                    a.lat_idle_ticks = value()?
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect();
                    if a.lat_idle_ticks.is_empty() || a.lat_idle_ticks.len() > 4 {
                        return Err("--lat-idle-ticks takes 1 to 4 spans".into());
                    }
                }
                "--help" | "-h" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        if a.runs == 0
            || a.partitions == 0
            || a.lat_partitions == 0
            || a.rate == 0
            || a.duration == 0
            || a.replication_factor < 1
        {
            return Err(
                "--runs, --partitions, --lat-partitions, --rate, --duration and --replication-factor must be at least 1"
                    .into(),
            );
        }
        if a.brokers.as_deref().is_some_and(|b| b.trim().is_empty()) {
            return Err("--brokers needs HOST:PORT".into());
        }
        if a.brokers.is_none() && !a.broker_config.is_empty() {
            return Err("--broker-config is for the broker given with --brokers".into());
        }
        if a.kafka_events > a.events {
            return Err(
                "--kafka-events cannot exceed --events (it is a prefix of the file)".into(),
            );
        }
        Ok(a)
    }

    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

/// A hash of every file under src/ when the bench ran: others change the engine while it is
/// measured, so results say which sources they belong to.
fn src_fingerprint() -> String {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, files);
                } else {
                    files.push(p);
                }
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(REPO).join("src"), &mut files);
    files.sort();
    let mut all = Vec::new();
    for f in &files {
        all.extend_from_slice(f.to_string_lossy().as_bytes());
        all.extend_from_slice(&std::fs::read(f).unwrap_or_default());
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&all))
}

// ---------------------------------------------------------------------------------------------
// results

/// One line of the final table (and one object of the JSON).
struct Row {
    id: &'static str,
    measure: String,
    /// The median, in `unit`.
    value: f64,
    unit: &'static str,
    display: String,
    /// The per-run values the median is taken of.
    samples: Vec<f64>,
    target: String,
    pass: Option<bool>,
    note: String,
}

impl Row {
    fn new(id: &'static str, measure: impl Into<String>, unit: &'static str) -> Row {
        Row {
            id,
            measure: measure.into(),
            value: f64::NAN,
            unit,
            display: String::new(),
            samples: Vec::new(),
            target: String::new(),
            pass: None,
            note: String::new(),
        }
    }

    fn median_of(mut self, samples: Vec<f64>, display: impl Fn(f64) -> String) -> Row {
        self.value = median(&samples);
        self.display = display(self.value);
        self.samples = samples;
        self
    }

    fn target(mut self, text: impl Into<String>, pass: bool) -> Row {
        self.target = text.into();
        self.pass = Some(pass);
        self
    }

    fn note(mut self, text: impl Into<String>) -> Row {
        self.note = text.into();
        self
    }

    fn error(id: &'static str, measure: &str, error: &str) -> Row {
        let mut r = Row::new(id, measure, "");
        r.display = "ERROR".into();
        r.pass = Some(false);
        r.note = error.to_owned();
        r
    }

    fn result(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) if self.display == "ERROR" => "ERROR",
            Some(false) => "MISS",
            None => "",
        }
    }

    fn json(&self) -> Value {
        let num = |v: f64| if v.is_finite() { json!(v) } else { Value::Null };
        json!({
            "id": self.id,
            "measure": self.measure,
            "median": num(self.value),
            "unit": self.unit,
            "display": self.display,
            "runs": self.samples.len(),
            "samples": self.samples.iter().map(|&v| num(v)).collect::<Vec<_>>(),
            "target": self.target,
            "result": self.result(),
            "note": self.note,
        })
    }
}

fn per_sec(v: f64) -> String {
    format!("{} ev/s", thousands(v))
}

fn table(rows: &[Row], args: &Args) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| # | measure | median | runs | target | result | notes |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in rows {
        let cell = |t: &str| t.replace('|', "\\|");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            cell(&r.measure),
            cell(&r.display),
            r.samples.len(),
            cell(&r.target),
            r.result(),
            cell(&r.note)
        );
    }
    let _ = write!(
        s,
        "\n{} mode; medians of the runs shown; {} CPUs; machine shared, expect noise; src/ fingerprint {}.",
        if args.quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        src_fingerprint()
    );
    s
}

// ---------------------------------------------------------------------------------------------
// 1. engine vs parse-only

/// The generated input: where it is and what it holds.
struct Data {
    path: PathBuf,
    events: u64,
    bytes: u64,
    distinct_keys: u64,
}

/// Writes the stream of `GenSpec { events, ..default }` to `target/bench-data/` unless a file of
/// the same spec is there already; counts its distinct (product, tag) keys on the way.
fn ensure_data(events: u64) -> Result<Data, String> {
    let spec = GenSpec {
        events,
        ..GenSpec::default()
    };
    let dir = target_dir().join("bench-data");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let stem = format!("pipeline-seed{}-{}", spec.seed, events);
    let path = dir.join(format!("{stem}.jsonl"));
    let meta_path = dir.join(format!("{stem}.meta.json"));
    let spec_text = format!("{spec:?}");
    if let Ok(text) = std::fs::read_to_string(&meta_path) {
        if let Ok(meta) = serde_json::from_str::<Value>(&text) {
            let len = std::fs::metadata(&path).map(|m| m.len()).ok();
            if meta["spec"] == json!(spec_text) && len.is_some() && meta["bytes"] == json!(len) {
                eprintln!("engine: reusing {}", path.display());
                return Ok(Data {
                    path,
                    events: meta["events"].as_u64().unwrap_or(0),
                    bytes: len.unwrap_or(0),
                    distinct_keys: meta["distinct_keys"].as_u64().unwrap_or(0),
                });
            }
        }
    }
    eprintln!(
        "engine: generating {events} events into {} ...",
        path.display()
    );
    let started = Instant::now();
    let tmp = dir.join(format!("{stem}.jsonl.tmp"));
    let io = |e: std::io::Error| format!("cannot write {}: {e}", tmp.display());
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(io)?);
    let mut generator = Generator::new(spec.clone());
    let mut keys: HashSet<u64> = HashSet::new();
    let mut key = String::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    while let Some(e) = generator.next_line() {
        let event = decode(e.json.as_bytes()).map_err(|err| format!("generated line: {err}"))?;
        for tag in &event.defect_tags {
            key.clear();
            let _ = write!(key, "{}\0{}", event.product_id, tag);
            keys.insert(hash_str(&key));
        }
        out.write_all(e.json.as_bytes()).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
        n += 1;
        bytes += e.json.len() as u64 + 1;
    }
    out.flush().map_err(io)?;
    drop(out);
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot rename {}: {e}", tmp.display()))?;
    let meta = json!({
        "spec": spec_text,
        "events": n,
        "bytes": bytes,
        "distinct_keys": keys.len(),
    });
    std::fs::write(&meta_path, serde_json::to_string_pretty(&meta).unwrap())
        .map_err(|e| format!("cannot write {}: {e}", meta_path.display()))?;
    eprintln!(
        "engine: {n} events, {bytes} bytes, {} distinct keys in {:.1}s",
        keys.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(Data {
        path,
        events: n,
        bytes,
        distinct_keys: keys.len() as u64,
    })
}

/// Reads the file line by line as replay does (a 64 KiB buffer, lines borrowed from it by
/// `lines::for_each_line`, blank lines skipped) and hands each line to `each`; returns the lines
/// handed and the time taken.
fn timed_lines(
    path: &Path,
    mut each: impl FnMut(&[u8], u64) -> Result<(), String>,
) -> Result<(u64, Duration), String> {
    let started = Instant::now();
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut n = 0u64;
    for_each_line(
        &mut reader,
        |line| {
            let body = trim_end(line);
            if body.is_empty() {
                return Ok(());
            }
            n += 1;
            each(body, n)
        },
        |e| format!("cannot read {}: {e}", path.display()),
    )?;
    Ok((n, started.elapsed()))
}

/// Deserializes each line into the baseline struct; nothing else.
fn parse_only(path: &Path) -> Result<(u64, Duration), String> {
    timed_lines(path, |body, n| {
        let event: BaselineEvent<'_> = serde_json::from_slice(body)
            .map_err(|e| format!("parse-only rejects line {n}: {e}"))?;
        black_box(&event);
        Ok(())
    })
}

/// Runs `decode` (parse and validate) on each line, no engine: with parse-only below it and
/// replay above it, it splits replay's time into its parts.
fn decode_only(path: &Path) -> Result<(u64, Duration), String> {
    timed_lines(path, |body, n| {
        let event = decode(body).map_err(|e| format!("decode rejects line {n}: {e}"))?;
        black_box(&event);
        Ok(())
    })
}

/// The detector settings of config/synthetic.toml: defaults plus the generator's routine
/// contact reasons in a tag class of their own, as a deployment would configure them.
fn synthetic_detector() -> DetectorConfig {
    let mut raw = recall_radar::config::RawDetector::default();
    raw.tag_class.push(recall_radar::generate::routine_class());
    DetectorConfig::from_raw(&raw).expect("valid detector settings")
}

/// `replay::replay` with the synthetic config, alerts discarded. The engine is dropped untimed.
fn replay_run(path: &Path) -> Result<(u64, u64, Duration), String> {
    let mut engine = Engine::new(synthetic_detector());
    let mut discard = |_: &Alert| Ok(());
    let started = Instant::now();
    let summary = replay(
        &mut engine,
        &[path.to_path_buf()],
        ReplaySinks {
            on_alert: &mut discard,
            rejects: None,
        },
        false,
    )
    .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    drop(engine);
    let alerts = summary.alerts_firing.values().sum::<u64>() + summary.alerts_resolved;
    if summary.bad_total() > 0 || summary.late > 0 {
        return Err(format!(
            "replay rejected lines: {} bad, {} late",
            summary.bad_total(),
            summary.late
        ));
    }
    Ok((summary.events, alerts, elapsed))
}

fn bench_engine(args: &Args) -> Result<Vec<Row>, String> {
    let data = ensure_data(args.events)?;
    // Warm the page cache, untimed.
    let mut f = File::open(&data.path).map_err(|e| e.to_string())?;
    std::io::copy(&mut f, &mut std::io::sink()).map_err(|e| e.to_string())?;
    let (mut parse, mut engine, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut decoded = Vec::new();
    let mut alerts = 0;
    // Events per second of a pass that must have read every event.
    let rate_of_all = |what: &str, (n, t): (u64, Duration)| {
        if n != data.events {
            return Err(format!("{what} read {n} events, expected {}", data.events));
        }
        Ok(n as f64 / t.as_secs_f64())
    };
    for run in 1..=args.runs {
        let p = rate_of_all("parse-only", parse_only(&data.path)?)?;
        let d = rate_of_all("decode-only", decode_only(&data.path)?)?;
        let (events, a, t) = replay_run(&data.path)?;
        if events != data.events {
            return Err(format!("replay counted {events} events of {}", data.events));
        }
        alerts = a;
        let r = events as f64 / t.as_secs_f64();
        eprintln!(
            "engine: run {run}/{}: parse-only {} ev/s, decode-only {} ev/s, replay {} ev/s ({:.2} s, {a} alerts), ratio {:.3}",
            args.runs,
            thousands(p),
            thousands(d),
            thousands(r),
            t.as_secs_f64(),
            r / p
        );
        parse.push(p);
        decoded.push(d);
        engine.push(r);
        ratios.push(r / p);
    }
    let input = format!(
        "{} events, {} B/event, {} distinct keys, {} alerts",
        thousands(data.events as f64),
        data.bytes / data.events.max(1),
        thousands(data.distinct_keys as f64),
        thousands(alerts as f64)
    );
    let p = median(&parse);
    let r = median(&engine);
    let ratio = r / p;
    // Time per event of replay = decoding + the engine: split it with the decode-only median.
    let (per_decode, per_replay) = (1e9 / median(&decoded), 1e9 / r);
    Ok(vec![
        Row::new(
            "1a",
            "parse-only (serde_json into borrowed struct)",
            "events/s",
        )
        .median_of(parse, per_sec)
        .note(input),
        Row::new(
            "1b",
            "replay (Engine, config/synthetic.toml, alerts discarded)",
            "events/s",
        )
        .median_of(engine, per_sec)
        .target(">= 1,000,000 ev/s", r >= 1_000_000.0),
        // Judged by the figure shown, the median of each run's own ratio: a run's two rates were
        // measured minutes apart, the medians of the two columns perhaps in different runs.
        Row::new("1c", "replay / parse-only", "ratio")
            .target(">= 0.6", median(&ratios) >= 0.6)
            .median_of(ratios, |v| format!("{v:.3}"))
            .note(format!("ratio of the medians: {ratio:.3}; single thread")),
        Row::new(
            "1d",
            "decode-only (recall_radar::event::decode, no engine)",
            "events/s",
        )
        .median_of(decoded, per_sec)
        .note(format!(
            "per event: replay {per_replay:.0} ns = reading and decoding {per_decode:.0} ns + engine {:.0} ns",
            per_replay - per_decode
        )),
    ])
}

// ---------------------------------------------------------------------------------------------
// tansu

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn toml_props(props: &[(String, String)]) -> String {
    props
        .iter()
        .map(|(k, v)| format!("\"{k}\" = \"{v}\"\n"))
        .collect()
}

/// The daemon's consumer properties in the bench, under the client's and the command line's
/// (which may set the same keys: the daemon's TOML takes each key once): a group joins in half
/// of `session.timeout.ms`, and a new topic is seen within a second.
const BENCH_DAEMON_CONSUMER: [(&str, &str); 3] = [
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "500"),
    ("topic.metadata.refresh.interval.ms", "1000"),
];

/// The daemon's config as a TOML file would give it (like tests/kafka_daemon.rs).
struct DaemonSetup<'a> {
    addr: &'a str,
    group: &'a str,
    input: &'a str,
    alerts: &'a str,
    dlq: &'a str,
    checkpoints: &'a str,
    idle_tick: &'a str,
    commit_interval: &'a str,
    delivery: &'a str,
    /// Properties of both clients (the broker's security settings), under the two below.
    client: &'a [(String, String)],
    consumer: &'a [(String, String)],
    producer: &'a [(String, String)],
}

impl DaemonSetup<'_> {
    fn config(&self) -> Result<Config, String> {
        let text = format!(
            r#"
[detector]
window = "30d"
allowed_lateness = "0s"
[kafka]
brokers = "{addr}"
input_topics = ["{input}"]
alert_topic = "{alerts}"
dlq_topic = "{dlq}"
checkpoint_topic = "{checkpoints}"
group_id = "{group}"
delivery = "{delivery}"
[kafka.consumer]
{consumer}
[kafka.producer]
{producer}
[daemon]
idle_tick = "{idle_tick}"
commit_interval = "{commit_interval}"
grace_period = "30s"
[admin]
addr = ""
"#,
            addr = self.addr,
            input = self.input,
            alerts = self.alerts,
            dlq = self.dlq,
            checkpoints = self.checkpoints,
            group = self.group,
            idle_tick = self.idle_tick,
            commit_interval = self.commit_interval,
            delivery = self.delivery,
            consumer = toml_props(&merged(
                &merged(
                    &BENCH_DAEMON_CONSUMER.map(|(k, v)| (k.into(), v.into())),
                    self.client
                ),
                self.consumer
            )),
            producer = toml_props(&merged(self.client, self.producer)),
        );
        let mut raw = RawConfig::parse(&text, "bench.toml").map_err(|e| e.to_string())?;
        raw.detector
            .tag_class
            .push(recall_radar::generate::routine_class());
        Config::from_raw(&raw).map_err(|e| e.to_string())
    }
}

/// Alerts the broker has acknowledged.
fn published(m: &Metrics) -> u64 {
    let mut n = 0;
    for level in ALERT_LEVELS {
        for status in ALERT_STATUSES {
            n += m.alerts_published.with_label_values(&[level, status]).get();
        }
    }
    n
}

fn assigned_partitions(topic: &str, partitions: u32) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("valid offset");
    }
    tpl
}

// ---------------------------------------------------------------------------------------------
// 2. the daemon vs a raw consumer

/// What the raw consumer took: its clock runs from its first message to its `n`th, as the
/// daemon's does from its first event (`daemon_run`), so neither counts its client's start.
struct RawRun {
    /// The client created and assigned -> the first message (group coordinator, offsets, the
    /// first fetch).
    start: Duration,
    /// The first message -> the `n`th.
    elapsed: Duration,
    /// Messages a second over the middle half of the count.
    middle: f64,
}

/// The raw consumer's settings: librdkafka's defaults but for `props`.
fn raw_client(addr: &str, props: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false");
    for (k, v) in props {
        c.set(k, v);
    }
    c
}

/// A plain consumer made from `c`, assign() from the beginning (no group join), counting `n`
/// messages; with `detector`, each is also decoded and given to its partition's engine,
/// alerts discarded.
fn raw_consume(
    c: &ClientConfig,
    topic: &str,
    partitions: u32,
    n: u64,
    detector: Option<&DetectorConfig>,
) -> Result<RawRun, String> {
    let consumer: BaseConsumer = c.create().map_err(|e| format!("raw consumer: {e}"))?;
    let started = Instant::now();
    consumer
        .assign(&assigned_partitions(topic, partitions))
        .map_err(|e| format!("assign: {e}"))?;
    let deadline = started + Duration::from_secs(600);
    let (mut count, mut bytes) = (0u64, 0usize);
    let mut progress = Progress::new(n);
    let mut engines: Vec<Engine> = detector
        .map(|d| (0..partitions).map(|_| Engine::new(d.clone())).collect())
        .unwrap_or_default();
    let mut alerts = Vec::new();
    while count < n {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                count += 1;
                bytes += m.payload_len();
                if let Some(engine) = engines.get_mut(m.partition() as usize) {
                    let event = decode(m.payload().unwrap_or_default())
                        .map_err(|e| format!("offset {}: {e}", m.offset()))?;
                    engine.ingest_at(&event, m.offset(), &mut alerts);
                    alerts.clear();
                }
                // Only the marks read the clock: per message it would slow the count.
                if progress.marks(count) {
                    progress.see(count, Instant::now());
                }
            }
            // The daemon's settings ask for end-of-partition events.
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => return Err(format!("raw consume: {e}")),
            None if Instant::now() > deadline => {
                return Err(format!("raw consumer got {count} of {n} in 600 s"))
            }
            None => {}
        }
    }
    let end = Instant::now();
    black_box(bytes);
    drop(engines);
    let first = progress.first.unwrap_or(end);
    Ok(RawRun {
        start: first - started,
        elapsed: end - first,
        middle: progress.middle_rate(),
    })
}

struct DaemonRun {
    /// service::start -> partitions assigned.
    join: Duration,
    /// Partitions assigned -> the first event counted (restoring the partitions).
    head: Duration,
    /// The first event counted -> all consumed and every alert acknowledged.
    elapsed: Duration,
    /// All consumed -> the last acknowledgement (the last commit).
    tail: Duration,
    /// Events a second over the middle half of the count.
    middle: f64,
    /// Alerts acknowledged at the end of `elapsed`.
    acked: u64,
    summary: RunSummary,
}

/// Starts the daemon, waits for its assignment, then until it has consumed `n` messages and no
/// acknowledgement came for 1 s; the clock starts at the first event counted and stops at the
/// later of the two.
async fn daemon_run(config: Config, n: u64) -> Result<DaemonRun, String> {
    let (trigger, stop) = shutdown::channel();
    let started = Instant::now();
    let running = service::start(config, stop)
        .await
        .map_err(|e| format!("daemon: {e}"))?;
    let m = running.services.metrics.clone();
    let deadline = started + Duration::from_secs(900);
    let tick = Duration::from_millis(1);
    let assigned = loop {
        if m.partitions_assigned.get() > 0 {
            break Instant::now();
        }
        if Instant::now() > deadline || running.task.is_finished() {
            trigger.fire();
            return Err("the daemon got no partitions".into());
        }
        tokio::time::sleep(tick).await;
    };
    let (mut done_at, mut acked, mut acked_at) = (None::<Instant>, published(&m), assigned);
    let mut progress = Progress::new(n);
    let end = loop {
        let now = Instant::now();
        let count = m.messages_consumed();
        progress.see(count, now);
        let a = published(&m);
        if a != acked {
            (acked, acked_at) = (a, now);
        }
        if done_at.is_none() && count >= n {
            done_at = Some(now);
        }
        if let Some(d) = done_at {
            let last = d.max(acked_at);
            if now.duration_since(last) >= Duration::from_secs(1) {
                break last;
            }
        }
        if now > deadline || running.task.is_finished() {
            trigger.fire();
            return Err(format!(
                "daemon consumed {count} of {n}, {acked} alerts acknowledged"
            ));
        }
        tokio::time::sleep(tick).await;
    };
    let first = progress.first.unwrap_or(end);
    let done_at = done_at.unwrap_or(end);
    let (join, head, elapsed) = (assigned - started, first - assigned, end - first);
    let (tail, middle) = (end - done_at, progress.middle_rate());
    trigger.fire();
    let summary = running
        .task
        .await
        .map_err(|e| format!("daemon task: {e}"))?
        .map_err(|e| format!("daemon: {e}"))?;
    Ok(DaemonRun {
        join,
        head,
        elapsed,
        tail,
        middle,
        acked,
        summary,
    })
}

fn bench_kafka(args: &Args) -> Result<Vec<Row>, String> {
    let data = ensure_data(args.events)?;
    let n = args.kafka_events;
    let rt = runtime()?;
    let broker = args.broker()?;
    let id = &args.run_id;
    let [input, alerts, dlq, checkpoints] =
        ["events", "alerts", "dlq", "checkpoints"].map(|t| format!("bench-{t}-{id}"));
    let (input, alerts, dlq, checkpoints) = (&*input, &*alerts, &*dlq, &*checkpoints);
    // The checkpoint topic too: not every broker creates a topic on its first produce.
    for t in [input, alerts, dlq, checkpoints] {
        broker.create_topic(t, args.partitions)?;
    }
    eprintln!(
        "kafka: {}; preloading {n} events into {input} ({} partitions) ...",
        broker.describe(),
        args.partitions
    );
    let file = File::open(&data.path).map_err(|e| e.to_string())?;
    let lines = BufReader::with_capacity(1 << 16, file)
        .split(b'\n')
        .map_while(Result::ok)
        .take(n as usize);
    let security: Vec<(&str, &str)> = broker
        .client
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let producer = loader(&broker.addr, &security).map_err(|e| format!("loader: {e}"))?;
    let report = rt
        .block_on(produce_lines(&producer, input, lines, None, None))
        .map_err(|e| format!("preload: {e}"))?;
    drop(producer);
    if report.sent != n {
        return Err(format!("preloaded {} of {n}", report.sent));
    }
    eprintln!("kafka: {}", report.render(input));
    let (mut raw, mut daemon, mut ratios, mut joins) = (Vec::new(), Vec::new(), Vec::new(), vec![]);
    let (mut raw_starts, mut raw_middles) = (Vec::new(), Vec::new());
    let (mut floor, mut floor_ratios) = (Vec::new(), Vec::new());
    let (mut heads, mut tails, mut middles) = (Vec::new(), Vec::new(), Vec::new());
    let (mut at_least_once, mut alo_tails, mut alo_middles) = (Vec::new(), Vec::new(), Vec::new());
    let mut notes = Vec::new();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for run in 1..=args.runs {
        let t = raw_consume(
            &raw_client(&broker.addr, &merged(&broker.client, &args.kafka_consumer)),
            input,
            args.partitions,
            n,
            None,
        )?;
        let r = n as f64 / t.elapsed.as_secs_f64();
        let setup = |group: &str, delivery: &str| {
            DaemonSetup {
                addr: &broker.addr,
                group,
                input,
                alerts,
                dlq,
                checkpoints,
                idle_tick: "100ms",
                commit_interval: "100ms",
                delivery,
                client: &broker.client,
                consumer: &args.kafka_consumer,
                producer: &args.kafka_producer,
            }
            .config()
        };
        let config = setup(&format!("bench-daemon-{id}-{run}"), &args.kafka_delivery)?;
        // The daemon's consumer settings (librdkafka's 1-s fetch backoff on a full queue would
        // starve a consumer this slow), its detector, a group of its own for the assign().
        let mut floor_client = consumer_config(&config.kafka);
        floor_client.set("group.id", format!("bench-floor-{id}-{run}"));
        let f = raw_consume(
            &floor_client,
            input,
            args.partitions,
            n,
            Some(&config.detector),
        )?;
        let fr = n as f64 / f.elapsed.as_secs_f64();
        eprintln!(
            "kafka: run {run}/{}: consume + decode + engine {} ev/s ({:.2} s; middle half {} ev/s), ratio to raw {:.3}",
            args.runs,
            thousands(fr),
            f.elapsed.as_secs_f64(),
            thousands(f.middle),
            fr / r
        );
        floor.push(fr);
        floor_ratios.push(fr / r);
        let d = rt.block_on(daemon_run(config, n))?;
        if args.kafka_delivery == "exactly-once" {
            // The same input at-least-once: what the transactions cost on this broker.
            let config = setup(&format!("bench-daemon-alo-{id}-{run}"), "at-least-once")?;
            let a = rt.block_on(daemon_run(config, n))?;
            let ar = n as f64 / a.elapsed.as_secs_f64();
            eprintln!(
                "kafka: run {run}/{}: daemon at-least-once {} ev/s ({:.2} s; middle half {} ev/s; last ack {:.0} ms after the last event)",
                args.runs,
                thousands(ar),
                a.elapsed.as_secs_f64(),
                thousands(a.middle),
                ms(a.tail)
            );
            at_least_once.push(ar);
            alo_tails.push(ms(a.tail));
            alo_middles.push(a.middle);
        }
        let s = &d.summary;
        if s.messages != n {
            return Err(format!("daemon run {run}: {} messages of {n}", s.messages));
        }
        if s.events != n {
            // The idle clock can move a partition's event time past its next event after a
            // stall of idle_tick or more; with allowed_lateness 0s that event is late.
            notes.push(format!(
                "run {run}: {} events counted, {} late, {} bad",
                s.events, s.late, s.bad
            ));
        }
        if d.acked != s.alerts {
            notes.push(format!(
                "run {run}: {} of {} alerts acknowledged when the clock stopped",
                d.acked, s.alerts
            ));
        }
        let dr = n as f64 / d.elapsed.as_secs_f64();
        eprintln!(
            "kafka: run {run}/{}: raw {} msg/s ({:.2} s after a {:.0} ms start; middle half {} msg/s), daemon {} ev/s ({:.2} s; middle half {} ev/s; first event {:.0} ms after a {:.2} s join, last ack {:.0} ms after the last event, {} alerts acknowledged), ratio {:.3}",
            args.runs,
            thousands(r),
            t.elapsed.as_secs_f64(),
            ms(t.start),
            thousands(t.middle),
            thousands(dr),
            d.elapsed.as_secs_f64(),
            thousands(d.middle),
            ms(d.head),
            d.join.as_secs_f64(),
            ms(d.tail),
            d.acked,
            dr / r
        );
        raw.push(r);
        raw_starts.push(ms(t.start));
        raw_middles.push(t.middle);
        daemon.push(dr);
        ratios.push(dr / r);
        joins.push(d.join.as_secs_f64());
        heads.push(ms(d.head));
        tails.push(ms(d.tail));
        middles.push(d.middle);
        notes.push(format!("run {run}: {} alerts", s.alerts));
    }
    let raw_median = median(&raw);
    let ratio = median(&daemon) / raw_median;
    let middle_ratio = median(&middles) / median(&raw_middles);
    let mut note = format!(
        "clock from the first event counted to the last alert acknowledged; not counted: the group join (median {:.2} s) and restoring the partitions (first event {:.0} ms after assignment); the last acknowledgement came {:.0} ms after the last event (the last commit); middle half of the count {} ev/s; {}",
        median(&joins),
        median(&heads),
        median(&tails),
        thousands(median(&middles)),
        notes.join(", ")
    );
    note.push_str(&format!("; {}, commit_interval 100ms, idle_tick 100ms, allowed_lateness 0s, session.timeout.ms 6000", args.kafka_delivery));
    if !args.kafka_producer.is_empty() {
        note.push_str(&format!(
            "; alert producer {}",
            props_text(&args.kafka_producer)
        ));
    }
    let mut rows = vec![
        Row::new(
            "2a",
            "raw consume (BaseConsumer, assign(), count only)",
            "msg/s",
        )
        .median_of(raw, |v| format!("{} msg/s", thousands(v)))
        .note(format!(
            "{} events of ~{} B preloaded on {}, {} partitions; preload at {} msg/s; clock from the first message to the last; not counted: the client's start to its first message (median {:.0} ms); middle half of the count {} msg/s",
            thousands(n as f64),
            data.bytes / data.events.max(1),
            broker.describe(),
            args.partitions,
            thousands(report.sent as f64 / report.elapsed.as_secs_f64()),
            median(&raw_starts),
            thousands(median(&raw_middles))
        )),
        Row::new(
            "2b",
            "daemon (service::start) until all consumed and alerts acked",
            "events/s",
        )
        .median_of(daemon, per_sec)
        .note(note),
        Row::new("2c", "daemon / raw consume", "ratio")
            .target(">= 0.8", median(&ratios) >= 0.8)
            .median_of(ratios, |v| format!("{v:.3}"))
            .note(format!(
                "ratio of the medians: {ratio:.3}; of the middle halves' medians (steady state): {middle_ratio:.3}"
            )),
    ];
    if !at_least_once.is_empty() {
        let alo = median(&at_least_once) / raw_median;
        rows.push(
            Row::new(
                "2d",
                "daemon at-least-once on the same input (comparison)",
                "events/s",
            )
            .median_of(at_least_once, per_sec)
            .note(format!(
                "ratio to raw {alo:.3}; middle half {} ev/s; last ack {:.0} ms after the last event; the gap to 2b is the exactly-once transactions (one per commit_interval, each committed beside the loop, whose alerts wait for the next)",
                thousands(median(&alo_middles)),
                median(&alo_tails)
            )),
        );
    }
    rows.push(
        Row::new(
            "2e",
            "raw consume + decode + engine, one thread, no writes (comparison)",
            "events/s",
        )
        .median_of(floor, per_sec)
        .note(format!(
            "ratio to raw {:.3} (median of the runs' ratios): what a one-thread daemon must do at least, without its alert sends, commits and async loop; the gap to 2b is those",
            median(&floor_ratios)
        )),
    );
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// 4. memory

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Runs in a child process (`--memory-child live|bare|flood N CAP`): `n` events with unique
/// products, shaped like the generator's (event id, customer, lot, region; `bare`: no lot or
/// region), 1 ms apart so a 30d window keeps them all; prints one JSON line.
fn memory_child(kind: &str, n: u64, cap: usize) -> Value {
    let raw = RawDetector {
        max_keys: cap,
        ..RawDetector::default()
    };
    let config = DetectorConfig::from_raw(&raw).expect("valid detector config");
    let before = rss_bytes();
    let mut engine = Engine::new(config);
    let mut alerts = Vec::new();
    let start = 1_767_225_600 * MICROS_PER_SECOND;
    let (mut event_id, mut customer, mut product) = (String::new(), String::new(), String::new());
    let mut max_live = 0usize;
    let mut over_cap = 0u64;
    let started = Instant::now();
    for i in 0..n {
        event_id.clear();
        customer.clear();
        product.clear();
        let _ = write!(event_id, "c-1f2e-{i:09}");
        let _ = write!(customer, "cust-{:06}", i % 200_000);
        let _ = write!(product, "sku-{i:08}");
        let event = ContactEvent {
            event_id: Cow::Borrowed(&event_id),
            occurred_at: Timestamp(start + i as i64 * 1000),
            channel: Channel::Call,
            customer_id: Some(Cow::Borrowed(&customer)),
            product_id: Cow::Borrowed(&product),
            defect_tags: std::iter::once(Cow::Borrowed("overheating")).collect(),
            lot: (kind != "bare").then_some(Cow::Borrowed("L2026-14")),
            region: (kind != "bare").then_some(Cow::Borrowed("US-CA")),
            severity: Severity::default(),
        };
        engine.ingest(&event, &mut alerts);
        alerts.clear();
        if kind == "flood" {
            let live = engine.live_keys();
            max_live = max_live.max(live);
            over_cap += u64::from(live > cap);
        }
    }
    let elapsed = started.elapsed();
    alerts.shrink_to_fit();
    let after = rss_bytes();
    let live = engine.live_keys();
    json!({
        "kind": kind,
        "events": n,
        "cap": cap,
        "live_keys": live,
        "max_live_keys": max_live.max(live),
        "checks_over_cap": over_cap,
        "refused": engine.stats().refused_keys,
        "rss_before": before,
        "rss_after": after,
        "seconds": elapsed.as_secs_f64(),
    })
}

fn run_memory_child(kind: &str, n: u64, cap: usize) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let out = Command::new(exe)
        .args(["--memory-child", kind, &n.to_string(), &cap.to_string()])
        .output()
        .map_err(|e| format!("memory child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "memory child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("memory child output: {e}"))
}

fn bench_memory(args: &Args) -> Result<Vec<Row>, String> {
    let u = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let (mut per_key, mut flood_rss, mut refused) = (vec![], vec![], vec![]);
    let (mut bare, mut max_lives, mut over) = (vec![], vec![], 0u64);
    let mut live_note = String::new();
    for run in 1..=args.runs {
        let v = run_memory_child("live", args.mem_keys, usize::MAX)?;
        let live = u(&v, "live_keys");
        if live != args.mem_keys {
            return Err(format!("{live} live keys, expected {}", args.mem_keys));
        }
        let grown = u(&v, "rss_after").saturating_sub(u(&v, "rss_before"));
        let b = grown as f64 / live as f64;
        eprintln!(
            "memory: run {run}/{}: {live} live keys, RSS {} -> {} MiB, {b:.0} B/key ({:.1} s)",
            args.runs,
            u(&v, "rss_before") >> 20,
            u(&v, "rss_after") >> 20,
            v["seconds"].as_f64().unwrap_or(0.0)
        );
        live_note = format!(
            "RSS {} MiB -> {} MiB for {} keys",
            u(&v, "rss_before") >> 20,
            u(&v, "rss_after") >> 20,
            thousands(live as f64)
        );
        per_key.push(b);

        let v = run_memory_child("bare", args.mem_keys, usize::MAX)?;
        let grown = u(&v, "rss_after").saturating_sub(u(&v, "rss_before"));
        let b = grown as f64 / u(&v, "live_keys").max(1) as f64;
        eprintln!(
            "memory: run {run}/{}: the same without lot and region: {b:.0} B/key",
            args.runs
        );
        bare.push(b);

        let f = run_memory_child("flood", args.flood_keys, args.flood_cap)?;
        eprintln!(
            "memory: run {run}/{}: flood of {} keys, cap {}: max live {}, refused {}, RSS {} MiB ({:.1} s)",
            args.runs,
            args.flood_keys,
            args.flood_cap,
            u(&f, "max_live_keys"),
            u(&f, "refused"),
            u(&f, "rss_after") >> 20,
            f["seconds"].as_f64().unwrap_or(0.0)
        );
        max_lives.push(u(&f, "max_live_keys") as f64);
        over += u(&f, "checks_over_cap");
        flood_rss.push(u(&f, "rss_after") as f64 / (1 << 20) as f64);
        refused.push(u(&f, "refused") as f64);
    }
    let b = median(&per_key);
    let cap = args.flood_cap as u64;
    let max_live = max_lives.iter().copied().fold(0.0, f64::max) as u64;
    Ok(vec![
        Row::new(
            "4a",
            "resident bytes per live key (1 report each)",
            "bytes/key",
        )
        .median_of(per_key, |v| format!("{v:.0} B/key"))
        .target("< 300 B/key", b < 300.0)
        .note(format!(
            "{live_note}; events with customer, lot and region, window 30d, default config; size_of::<Report>() = {} B",
            std::mem::size_of::<recall_radar::window::Report>()
        )),
        Row::new("4b", "flood: max live keys", "keys")
            .median_of(max_lives, |v| {
                format!("{} (cap {})", thousands(v), thousands(cap as f64))
            })
            .target(
                "<= max_keys after every event",
                max_live <= cap && over == 0,
            )
            .note(format!(
                "{} unique keys, max_keys {}; live keys checked after every event; max over all runs {}",
                thousands(args.flood_keys as f64),
                thousands(cap as f64),
                thousands(max_live as f64)
            )),
        Row::new("4c", "flood: refused keys", "keys").median_of(refused, thousands),
        Row::new("4d", "flood: RSS at the end", "MiB")
            .median_of(flood_rss, |v| format!("{v:.0} MiB")),
        Row::new("4e", "bytes per live key, events without lot and region", "bytes/key")
            .median_of(bare, |v| format!("{v:.0} B/key"))
            .note("for comparison: what the per-report strings cost"),
    ])
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("--memory-child") {
        let kind = raw.get(1).cloned().unwrap_or_default();
        let n = raw.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
        let cap = raw
            .get(3)
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX);
        println!("{}", memory_child(&kind, n, cap));
        return;
    }
    // `cargo test --all-targets` runs bench targets without `--bench`: then this is a smoke test
    // of the in-process phases at tiny sizes (no broker), failing on any error row.
    let raw = if raw.iter().any(|a| a == "--bench") {
        raw
    } else {
        let out = std::env::temp_dir().join("recall-radar-pipeline-smoke.json");
        [
            "--quick",
            "--phases",
            "engine,memory",
            "--events",
            "20000",
            "--mem-keys",
            "5000",
            "--flood-keys",
            "20000",
            "--flood-cap",
            "2000",
            "--kafka-events",
            "1000",
            "--output",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let args = match Args::parse(raw) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pipeline bench: {e}");
            std::process::exit(2);
        }
    };
    eprintln!("pipeline bench: {:?}", args.shown());
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    type Phase = fn(&Args) -> Result<Vec<Row>, String>;
    let phases: [(&str, &'static str, Phase); 4] = [
        ("engine", "1", bench_engine),
        ("kafka", "2", bench_kafka),
        ("latency", "3", bench_latency),
        ("memory", "4", bench_memory),
    ];
    for (name, id, phase) in phases {
        if !args.runs(name) {
            continue;
        }
        let t = Instant::now();
        eprintln!("== {name}");
        match phase(&args) {
            Ok(r) => rows.extend(r),
            Err(e) => {
                eprintln!("{name}: ERROR: {e}");
                rows.push(Row::error(id, name, &e));
            }
        }
        eprintln!("== {name} took {:.0} s", t.elapsed().as_secs_f64());
    }
    let markdown = table(&rows, &args);
    println!("\n{markdown}");
    let results = json!({
        "command": format!("bash scripts/bench.sh {}", std::env::args().skip(1).filter(|a| a != "--bench").collect::<Vec<_>>().join(" ")).trim().to_owned(),
        "quick": args.quick,
        "runs": args.runs,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "src_fingerprint": src_fingerprint(),
        "seconds": started.elapsed().as_secs_f64(),
        "settings": {
            "events": args.events,
            "kafka_events": args.kafka_events,
            "partitions": args.partitions,
            "latency_partitions": args.lat_partitions,
            "rate": args.rate,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "mem_keys": args.mem_keys,
            "flood_keys": args.flood_keys,
            "flood_cap": args.flood_cap,
            "latency_consumer": props_text(&args.lat_consumer),
            "latency_load_producer": props_text(&args.lat_load_producer),
            "latency_daemon_producer": props_text(&args.lat_daemon_producer),
            "latency_idle_ticks": args.lat_idle_ticks,
            "latency_delivery": args.lat_delivery,
            "latency_commit_interval": args.lat_commit_interval,
            "kafka_delivery": args.kafka_delivery,
            "kafka_consumer": props_text(&args.kafka_consumer),
            "kafka_producer": props_text(&args.kafka_producer),
        },
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "markdown": markdown,
    });
    if let Some(dir) = args.output.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(
        &args.output,
        serde_json::to_string_pretty(&results).unwrap() + "\n",
    ) {
        Ok(()) => eprintln!("results written to {}", args.output.display()),
        Err(e) => eprintln!("cannot write {}: {e}", args.output.display()),
    }
    if rows.iter().any(|r| r.display == "ERROR") {
        std::process::exit(1);
    }
}
