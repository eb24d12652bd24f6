//! Rebuild benchmark: how long `kafka::rebuild::rebuild` takes to rebuild the windows of one
//! partition holding N events, the replay a partition moved to another instance (or a restart)
//! waits for.
//!
//! Run with `bash scripts/bench-rebuild.sh [--sizes 100000,1000000] [--runs 3]` (that is
//! `cargo bench --bench rebuild -- ARGS`). It starts a tansu broker on loopback
//! (scripts/start-tansu.sh, one broker for all sizes); for each size it creates a 1-partition
//! topic, produces N generated contact events into it from a child process (not timed, and kept
//! out of this process's RSS), then times `rebuild()` from offset 0 to N with the default detector
//! settings, `runs` times. Every run is checked: N messages read, `stats().events == N`, nothing
//! late, and `live_keys()` equal to the distinct (product, tag) keys produced; a mismatch fails
//! the bench. After each rebuild a fetch-only baseline (the same consumer settings and loop,
//! without decode and ingest) says how much of the time is Kafka. Progress goes to stderr, the
//! Markdown table to stdout.
//!
//! The events: `key space = N / 10` (product, defect tag) keys drawn Zipf(0.7) (hot keys get
//! thousands of reports, most keys a handful), 1 in 10 events with a second tag of the same
//! product, a distinct customer per event, `occurred_at` spread evenly over 3 days with up to 20
//! minutes of disorder (the default allowed lateness is 1 h, the window 30 days: nothing is late
//! and no key expires), ~250 bytes of JSON each.
//!
//! Without `--bench` (`cargo test --all-targets` runs bench targets that way) it is a smoke test:
//! N = 2,000, one run, failing on any mismatch.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/flags.rs"]
mod flags;
#[path = "support/stats.rs"]
mod stats;
use broker::Broker;
use flags::{num, Flags};
use stats::{median, thousands};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use recall_radar::config::{Config, DetectorConfig, KafkaConfig, RawConfig};
use recall_radar::event::Channel;
use recall_radar::generate::defect_tags;
use recall_radar::kafka::checkpoint::reader_config;
use recall_radar::kafka::rebuild::{rebuild, Plan};
use recall_radar::policy::Policy;
use recall_radar::time::{write_rfc3339, Timestamp, MICROS_PER_SECOND};

const USAGE: &str = "\
usage: bash scripts/bench-rebuild.sh [OPTIONS]
  (runs: cargo bench --bench rebuild -- [OPTIONS])

  --sizes LIST   comma-separated event counts of the rebuilt partition (default 100000,1000000)
  --runs N       timed rebuilds per size (default 3)
";

const SMOKE_EVENTS: u64 = 2_000;

// ---------------------------------------------------------------------------------------------
// options

#[derive(Debug, Clone)]
struct Args {
    sizes: Vec<u64>,
    runs: usize,
    smoke: bool,
}

impl Args {
    fn parse(raw: Vec<String>) -> Result<Args, String> {
        let mut a = Args {
            sizes: vec![100_000, 1_000_000],
            runs: 3,
            smoke: false,
        };
        let mut flags = Flags::new(raw);
        while let Some((name, inline)) = flags.next_flag() {
            let mut value = || flags.value(&name, inline.clone());
            match name.as_str() {
                // `cargo bench` passes --bench to every bench binary.
                "--bench" => {}
                "--sizes" => {
                    a.sizes = value()?
                        .split(',')
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| num(&name, s.trim()))
                        .collect::<Result<_, _>>()?;
                }
                "--runs" => a.runs = num(&name, value()?.trim())?,
                "--help" | "-h" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        if a.runs == 0 || a.sizes.is_empty() || a.sizes.contains(&0) {
            return Err("--runs must be at least 1 and --sizes must list counts >= 1".into());
        }
        Ok(a)
    }

    fn smoke() -> Args {
        Args {
            sizes: vec![SMOKE_EVENTS],
            runs: 1,
            smoke: true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tansu

// ---------------------------------------------------------------------------------------------
// the events

/// 2026-03-01T00:00:00Z.
const START: Timestamp = Timestamp(1_772_323_200 * MICROS_PER_SECOND);
/// `occurred_at` spreads over this many days: well inside the 30-day window.
const SPREAD_DAYS: i64 = 3;
/// Events go back in time by up to this much (the default allowed lateness is 1 h).
const DISORDER_MICROS: i64 = 20 * 60 * MICROS_PER_SECOND;
/// Zipf exponent of key popularity.
const KEY_SKEW: f64 = 0.7;
/// A prime above any key space: `rank * SCATTER % space` is a bijection, so hot keys land on
/// scattered products and tags.
const SCATTER: u64 = 2_654_435_761;

const REGIONS: &[&str] = &[
    "US-CA", "US-TX", "US-NY", "US-FL", "US-IL", "US-WA", "CA-ON", "GB-ENG", "DE-BY", "FR-IDF",
];
const TEXTS: &[&str] = &[
    "Unit got very hot and shut off",
    "Same fault again after a replacement",
    "Stopped working after two days",
    "Smell of burning plastic near the base",
    "Part came loose during normal use",
    "Intermittent fault, photos attached",
];

/// A deterministic stream of `n` contact events (see the module doc).
struct Workload {
    n: u64,
    space: u64,
    tags: Vec<&'static str>,
    zipf: Zipf<f64>,
    rng: ChaCha8Rng,
    i: u64,
    line: String,
    product: String,
    /// Distinct keys so far, as `product * tags + tag`.
    keys: HashSet<u64>,
    bytes: u64,
}

impl Workload {
    fn new(n: u64) -> Workload {
        let space = (n / 10).max(1);
        Workload {
            n,
            space,
            tags: defect_tags().collect(),
            zipf: Zipf::new(space, KEY_SKEW).expect("space >= 1, exponent >= 0"),
            rng: ChaCha8Rng::seed_from_u64(0x7265_6275_696c_6400 ^ n),
            i: 0,
            line: String::with_capacity(512),
            product: String::with_capacity(32),
            keys: HashSet::new(),
            bytes: 0,
        }
    }

    /// The next event's product id (the record key) and JSON line.
    fn next_event(&mut self) -> Option<(&str, &str)> {
        if self.i == self.n {
            return None;
        }
        let i = self.i;
        self.i += 1;
        let t = self.tags.len() as u64;
        let rank = self.zipf.sample(&mut self.rng) as u64 - 1;
        let key = rank * SCATTER % self.space;
        let (product, tag) = (key / t, key % t);
        self.keys.insert(key);
        let second = if t > 1 && self.rng.gen_ratio(1, 10) {
            let tag2 = (tag + 1 + self.rng.gen_range(0..t - 1)) % t;
            self.keys.insert(product * t + tag2);
            Some(tag2)
        } else {
            None
        };
        let spread = SPREAD_DAYS * 86_400 * MICROS_PER_SECOND;
        let even = START.0 + (i128::from(i) * i128::from(spread) / i128::from(self.n)) as i64;
        let at = Timestamp(even - self.rng.gen_range(0..DISORDER_MICROS));
        // Milliseconds, as most producers write them.
        let at = Timestamp(at.0 - at.0.rem_euclid(1_000));
        let mut clock = [0u8; 40];
        let len = write_rfc3339(at, &mut clock);
        let clock = std::str::from_utf8(&clock[..len]).expect("ASCII");
        let channel = Channel::ALL[self.rng.gen_range(0..Channel::ALL.len())].as_str();

        self.product.clear();
        let _ = write!(self.product, "sku-{product:06}");
        let l = &mut self.line;
        l.clear();
        let _ = write!(
            l,
            r#"{{"event_id":"ev-{i:08}","occurred_at":"{clock}","channel":"{channel}","customer_id":"cust-{i:08}","product_id":"{p}","defect_tags":["{tag}""#,
            p = self.product,
            tag = self.tags[tag as usize],
        );
        if let Some(tag2) = second {
            let _ = write!(l, r#","{}""#, self.tags[tag2 as usize]);
        }
        let _ = write!(
            l,
            r#"],"lot":"L2026-{lot:02}","region":"{region}","text":"{text}""#,
            lot = product % 52 + 1,
            region = REGIONS[(i % REGIONS.len() as u64) as usize],
            text = TEXTS[self.rng.gen_range(0..TEXTS.len())],
        );
        // Harm is rare: 1 in 997 (the fast path alerts on it at once).
        if i % 997 == 0 {
            l.push_str(r#","severity":{"injuries":1}"#);
        }
        l.push('}');
        self.bytes += self.line.len() as u64;
        Some((&self.product, &self.line))
    }
}

// ---------------------------------------------------------------------------------------------
// producing

/// Counts delivery reports.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap();
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

struct Produced {
    distinct_keys: u64,
    bytes: u64,
    seconds: f64,
}

/// Produces the `n` events of [`Workload`] to partition 0 of `topic`, without waiting per
/// message; checks every delivery and the partition's end offset.
fn produce(addr: &str, topic: &str, n: u64) -> Result<Produced, String> {
    let started = Instant::now();
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "262144")
        .set("message.timeout.ms", "300000")
        .create_with_context(Deliveries::default())
        .map_err(|e| format!("producer: {e}"))?;
    let mut work = Workload::new(n);
    while let Some((key, line)) = work.next_event() {
        let mut record = BaseRecord::to(topic).partition(0).key(key).payload(line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("produce: {e}")),
            }
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .map_err(|e| format!("flush: {e}"))?;
    let ctx = producer.context();
    let (ok, failed) = (
        ctx.ok.load(Ordering::Relaxed),
        ctx.failed.load(Ordering::Relaxed),
    );
    if ok != n || failed != 0 {
        return Err(format!(
            "{ok} of {n} events delivered, {failed} failed (first error: {})",
            ctx.first_error.lock().unwrap().as_deref().unwrap_or("none")
        ));
    }
    drop(producer);
    let seconds = started.elapsed().as_secs_f64();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "bench-rebuild-check")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    // The partition must hold exactly offsets 0..n: rebuild() replays to `until` = n. (tansu
    // 0.6 reports a wrong high watermark, so the partition is read instead of asking for it.)
    let (count, first, last) = scan(&consumer, topic)?;
    if (count, first, last) != (n, 0, n as i64 - 1) {
        return Err(format!(
            "{topic}/0 holds {count} messages at offsets {first}..={last}, expected 0..{n}"
        ));
    }
    if let Ok((low, high)) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)) {
        if (low, high) != (0, n as i64) {
            eprintln!(
                "rebuild bench: note: the broker reports watermarks {low}..{high} for {topic}/0, which holds offsets 0..{n}"
            );
        }
    }
    Ok(Produced {
        distinct_keys: work.keys.len() as u64,
        bytes: work.bytes,
        seconds,
    })
}

/// Reads partition 0 of `topic` to its end: how many messages, first and last offset.
fn scan(consumer: &BaseConsumer, topic: &str) -> Result<(u64, i64, i64), String> {
    use rdkafka::message::Message;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .map_err(|e| e.to_string())?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let (mut count, mut first, mut last) = (0, -1, -1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                if count == 0 {
                    first = m.offset();
                }
                last = m.offset();
                count += 1;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(format!("scan: {e}")),
            None => {}
        }
    }
    Ok((count, first, last))
}

// ---------------------------------------------------------------------------------------------
// measuring

/// A field of /proc/self/status in KiB (VmRSS, VmHWM).
fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Minor page faults of this process so far (/proc/self/stat field 10).
fn minor_faults() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 2..];
    rest.split_whitespace().nth(7)?.parse().ok()
}

/// Resets VmHWM to the current RSS (Linux >= 4.0), so it becomes the peak of what follows.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn kafka_config(addr: &str) -> Result<KafkaConfig, String> {
    let mut raw = RawConfig::default();
    raw.kafka.brokers = addr.to_owned();
    raw.kafka.group_id = "bench-rebuild".into();
    raw.kafka.input_topics = vec!["bench-rebuild-input".into()];
    Ok(Config::from_raw(&raw).map_err(|e| e.to_string())?.kafka)
}

struct Run {
    seconds: f64,
    /// `Rebuilt::seconds`, rebuild's own clock.
    inner_seconds: f64,
    live_keys: u64,
    /// VmRSS before the rebuild.
    before_kib: Option<u64>,
    /// Peak RSS while rebuilding (VmHWM after a reset), else of the process so far.
    peak_kib: Option<u64>,
    /// VmRSS with the rebuilt engine alive.
    after_kib: Option<u64>,
    drop_seconds: f64,
    /// Minor page faults during the rebuild.
    faults: Option<u64>,
}

fn rebuild_once(kafka: &KafkaConfig, plan: &Plan, n: u64, keys: u64) -> Result<Run, String> {
    let before_kib = status_kib("VmRSS");
    let faults_before = minor_faults();
    let policy = Policy::new(DetectorConfig::default());
    let started = Instant::now();
    let (engine, rebuilt) = rebuild(kafka, policy, plan).map_err(|e| format!("rebuild: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let faults = faults_before
        .zip(minor_faults())
        .map(|(b, a)| a.saturating_sub(b));
    let peak_kib = status_kib("VmHWM");
    let after_kib = status_kib("VmRSS");
    let stats = engine.stats();
    let live_keys = engine.live_keys() as u64;
    let mut wrong = Vec::new();
    if rebuilt.messages != n {
        wrong.push(format!("{} messages read", rebuilt.messages));
    }
    if stats.events != n {
        wrong.push(format!("stats().events = {}", stats.events));
    }
    if stats.late != 0 || stats.duplicate_reports != 0 || stats.refused_keys != 0 {
        wrong.push(format!(
            "{} late, {} duplicate reports, {} refused keys",
            stats.late, stats.duplicate_reports, stats.refused_keys
        ));
    }
    if live_keys != keys {
        wrong.push(format!(
            "live_keys() = {live_keys}, {keys} distinct keys produced ({} evicted)",
            stats.evicted_keys
        ));
    }
    if !wrong.is_empty() {
        return Err(format!(
            "the rebuilt engine is wrong for N = {n}: {}",
            wrong.join("; ")
        ));
    }
    let t = Instant::now();
    drop(engine);
    Ok(Run {
        seconds,
        inner_seconds: rebuilt.seconds,
        live_keys,
        before_kib,
        peak_kib,
        after_kib,
        drop_seconds: t.elapsed().as_secs_f64(),
        faults,
    })
}

/// The baseline: the same consumer settings and loop as `rebuild()` (reader_config, assign at
/// `from`, poll until `until`, drop), touching each payload but neither decoding nor ingesting
/// it.
fn fetch_only(kafka: &KafkaConfig, plan: &Plan) -> Result<f64, String> {
    use rdkafka::message::Message;
    let started = Instant::now();
    let consumer: BaseConsumer = reader_config(kafka)
        .create()
        .map_err(|e| format!("fetch-only consumer: {e}"))?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(
        &plan.topic,
        plan.partition,
        rdkafka::Offset::Offset(plan.from.unwrap_or(0)),
    )
    .map_err(|e| e.to_string())?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let (mut messages, mut bytes) = (0u64, 0usize);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(format!("fetch-only: {e}")),
            Some(Ok(m)) => {
                messages += 1;
                bytes += m.payload().map_or(0, |p| p.len());
                if m.offset() + 1 >= plan.until {
                    break;
                }
            }
        }
    }
    // rebuild() drops its consumer before it returns: so does this (closing a consumer takes
    // ~0.1 s on its own).
    drop(consumer);
    let seconds = started.elapsed().as_secs_f64();
    std::hint::black_box(bytes);
    if messages != plan.until as u64 {
        return Err(format!(
            "fetch-only read {messages} of {} messages",
            plan.until
        ));
    }
    Ok(seconds)
}

struct Row {
    n: u64,
    produced: Produced,
    runs: Vec<Run>,
    fetch_only: Vec<f64>,
}

fn bench(args: &Args, peak_resets: bool) -> Result<Vec<Row>, String> {
    let broker = Broker::start()?;
    eprintln!("rebuild bench: {}", broker.describe());
    let kafka = kafka_config(&broker.addr)?;
    let mut rows = Vec::new();
    for (index, &n) in args.sizes.iter().enumerate() {
        let topic = format!("bench-rebuild-{index}-{n}");
        broker.create_topic(&topic, 1)?;
        eprintln!("rebuild bench: producing {n} events into {topic} (child process) ...");
        let produced = produce_in_child(&broker.addr, &topic, n)?;
        eprintln!(
            "rebuild bench: {n} events ({} B/event, {} distinct keys) produced in {:.1} s ({} ev/s)",
            produced.bytes / n,
            produced.distinct_keys,
            produced.seconds,
            thousands(n as f64 / produced.seconds)
        );
        let plan = Plan {
            topic: topic.clone(),
            partition: 0,
            from: Some(0),
            start_watermark: None,
            until: n as i64,
            end_watermark: None,
        };
        let (mut runs, mut fetch) = (Vec::new(), Vec::new());
        for run in 1..=args.runs {
            if peak_resets {
                reset_peak_rss();
            }
            let r = rebuild_once(&kafka, &plan, n, produced.distinct_keys)?;
            let f = fetch_only(&kafka, &plan)?;
            let rss = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.0} MiB", mib(k)));
            eprintln!(
                "rebuild bench: N = {n}, run {run}/{}: {:.3} s ({} ev/s; rebuild's own clock {:.3} s), {} live keys, RSS {} -> peak {} -> {} with the engine, {} minor page faults, engine dropped in {:.3} s; fetch-only {:.3} s",
                args.runs,
                r.seconds,
                thousands(n as f64 / r.seconds),
                r.inner_seconds,
                r.live_keys,
                rss(r.before_kib),
                rss(r.peak_kib),
                rss(r.after_kib),
                r.faults.map_or("?".into(), |f| thousands(f as f64)),
                r.drop_seconds,
                f,
            );
            runs.push(r);
            fetch.push(f);
        }
        rows.push(Row {
            n,
            produced,
            runs,
            fetch_only: fetch,
        });
    }
    drop(broker);
    Ok(rows)
}

fn table(rows: &[Row], peak_resets: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| N | runs | median s | min..max s | events/s | fetch-only s | live keys | peak RSS | RSS before -> with engine | input |"
    );
    let _ = writeln!(
        s,
        "| --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |"
    );
    for r in rows {
        let secs: Vec<f64> = r.runs.iter().map(|x| x.seconds).collect();
        let med = median(&secs);
        let (min, max) = secs
            .iter()
            .fold((f64::INFINITY, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
        // Run 1: later runs start with what the allocator kept of the run before.
        let first = &r.runs[0];
        let rss = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.0} MiB", mib(k)));
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.3}..{:.3} | {} | {:.3} | {} | {} | {} -> {} | {} B/event, {} distinct keys |",
            thousands(r.n as f64),
            r.runs.len(),
            med,
            min,
            max,
            thousands(r.n as f64 / med),
            median(&r.fetch_only),
            thousands(first.live_keys as f64),
            rss(first.peak_kib),
            rss(first.before_kib),
            rss(first.after_kib),
            r.produced.bytes / r.n,
            thousands(r.produced.distinct_keys as f64),
        );
    }
    let _ = write!(
        s,
        "\nrebuild() of 1 partition from offset 0 to N, default detector settings, wall clock of \
         the call (consumer creation included, engine drop not); fetch-only = the same consumer \
         and loop without decode and ingest (median). tansu 0.6 (in-memory) on loopback; {} CPUs. \
         RSS columns are of run 1 (later runs start with what the allocator kept): peak RSS = \
         VmHWM of the bench process {}; RSS before -> with engine = VmRSS before the rebuild and \
         after it with the rebuilt engine alive (events are produced by a child process). \
         Machine shared, expect noise.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if peak_resets {
            "during a rebuild (reset before each)"
        } else {
            "so far (could not reset it)"
        }
    );
    s
}

/// Runs [`produce`] in a child process (this binary, `--produce-child`), so the memory of
/// producing is not in the rebuild's RSS.
fn produce_in_child(addr: &str, topic: &str, n: u64) -> Result<Produced, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let out = Command::new(exe)
        .args(["--produce-child", addr, topic, &n.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start the producing child: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("producing child failed ({}): {text}", out.status));
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields[..] {
        [keys, bytes, seconds] => Ok(Produced {
            distinct_keys: keys.parse().map_err(|_| format!("child said {text:?}"))?,
            bytes: bytes.parse().map_err(|_| format!("child said {text:?}"))?,
            seconds: seconds
                .parse()
                .map_err(|_| format!("child said {text:?}"))?,
        }),
        _ => Err(format!("producing child said {text:?}")),
    }
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("--produce-child") {
        let (addr, topic) = (&raw[1], &raw[2]);
        let n: u64 = raw[3].parse().expect("event count");
        match produce(addr, topic, n) {
            Ok(p) => println!("{} {} {}", p.distinct_keys, p.bytes, p.seconds),
            Err(e) => {
                println!("{e}");
                std::process::exit(1);
            }
        }
        return;
    }
    // `cargo test --all-targets` runs bench targets without `--bench`: a smoke test then.
    let args = if raw.iter().any(|a| a == "--bench") {
        match Args::parse(raw) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("rebuild bench: {e}");
                std::process::exit(2);
            }
        }
    } else {
        Args::smoke()
    };
    eprintln!("rebuild bench: {args:?}");
    let peak_resets = reset_peak_rss();
    let started = Instant::now();
    let rows = match bench(&args, peak_resets) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("rebuild bench: ERROR: {e}");
            std::process::exit(1);
        }
    };
    println!("\n{}", table(&rows, peak_resets));
    eprintln!(
        "rebuild bench: done in {:.0} s{}",
        started.elapsed().as_secs_f64(),
        if args.smoke { " (smoke)" } else { "" }
    );
}
