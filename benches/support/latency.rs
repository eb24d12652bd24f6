//! Phase 3 of benches/pipeline.rs, alert latency: events produced at a steady rate with
//! `occurred_at` = now; every 10th opens a new key (an anomaly alert as soon as it is final),
//! the rest go to 100 hot keys. Latency = probe sent -> its alert received by a consumer. Each
//! run gets a fresh broker (tansu, or librdkafka's mock cluster for comparison; with
//! `--brokers`, fresh topics on the given broker), and beside the daemon runs the broker's own
//! latency at the same rate (support/hop.rs): one hop, and the alert's two hops through a plain
//! relay, the floor no daemon on that broker can beat.

use super::*;

const LAT_HOT_KEYS: u64 = 100;

/// Runs a closure when dropped.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}
const LAT_PROBE_EVERY: u64 = 10;
/// About the bytes of a latency event (157 for a hot key's, 178 for a probe's) and of a probe's
/// alert (~850), which the broker floors send in their place.
const LAT_EVENT_BYTES: usize = 160;
const LAT_ALERT_BYTES: usize = 850;

/// The alert fields the latency reader looks at.
#[derive(Deserialize)]
struct AlertProbe {
    product_id: String,
    evidence: Vec<String>,
}

struct LatencyRun {
    p50: f64,
    p99: f64,
    max: f64,
    probes: u64,
    missing: u64,
    achieved_rate: f64,
    late: u64,
    daemon_p99: f64,
    /// Where the time goes (see [`Split`]).
    split: Split,
}

/// A probe's path in two legs, told apart by the alert's Kafka timestamp (the daemon's
/// producer stamps it when the daemon hands the alert over; wall clock, millisecond
/// resolution): event sent -> alert handed to the producer (the event's hop through the broker
/// and the daemon), and alert handed over -> alert received (the alert's hop).
struct Split {
    event_leg_p50: f64,
    event_leg_p99: f64,
    alert_hop_p50: f64,
    alert_hop_p99: f64,
}

impl Split {
    /// From (event sent, alert stamped, alert received) in unix milliseconds.
    fn of(legs: &[(i64, i64, i64)]) -> Split {
        let quantiles = |mut v: Vec<i64>| {
            v.sort_unstable();
            let at = |q: f64| {
                v.get(((v.len() as f64 - 1.0) * q) as usize)
                    .map_or(f64::NAN, |&x| x as f64)
            };
            (at(0.5), at(0.99))
        };
        let (a50, a99) = quantiles(legs.iter().map(|(s, t, _)| t - s).collect());
        let (b50, b99) = quantiles(legs.iter().map(|(_, t, r)| r - t).collect());
        Split {
            event_leg_p50: a50,
            event_leg_p99: a99,
            alert_hop_p50: b50,
            alert_hop_p99: b99,
        }
    }
}

/// An alert received: its probe, and when, its Kafka timestamp and the wall clock then (unix ms).
type Receipt = (u64, (Instant, Option<i64>, i64));

/// Now as unix milliseconds.
fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn latency_run(
    rt: &tokio::runtime::Runtime,
    cluster: &dyn Cluster,
    args: &Args,
    idle_tick: &str,
    run: &str,
    clients: &Fresh<'_>,
) -> Result<LatencyRun, String> {
    let id = &args.run_id;
    let [input, alerts, dlq, checkpoints] =
        ["events", "alerts", "dlq", "checkpoints"].map(|t| format!("lat-{t}-{id}-{run}"));
    // The checkpoint topic too: not every broker creates a topic on its first produce.
    for t in [&input, &alerts, &dlq, &checkpoints] {
        cluster.create_topic(t, args.lat_partitions)?;
    }
    let group = format!("bench-latency-{id}-{run}");
    let (addr, client) = (cluster.addr(), cluster.client());
    let config = DaemonSetup {
        addr: &addr,
        group: &group,
        input: &input,
        alerts: &alerts,
        dlq: &dlq,
        checkpoints: &checkpoints,
        idle_tick,
        commit_interval: &args.lat_commit_interval,
        delivery: &args.lat_delivery,
        client: &client,
        consumer: &args.lat_consumer,
        producer: &clients.daemon_producer,
    }
    .config()?;
    let (trigger, stop) = shutdown::channel();
    let running = rt
        .block_on(service::start(config, stop))
        .map_err(|e| format!("daemon: {e}"))?;
    // On an early return, the daemon and the reader stop too.
    let _stop_daemon = OnDrop(Some(|| trigger.fire()));
    let metrics = running.services.metrics.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.partitions_assigned.get() == 0 {
        if Instant::now() > deadline {
            return Err("the latency daemon got no partitions".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    // The alert reader: (probe number, received at, the alert's timestamp and the wall clock
    // at receipt in unix ms).
    let stop_reader = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop_reader.clone();
        let (addr, topic, partitions) = (addr.clone(), alerts.clone(), args.lat_partitions);
        let props = merged(&client, &args.lat_consumer);
        std::thread::spawn(move || -> Result<Vec<Receipt>, String> {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", &addr)
                .set("group.id", "bench-latency-reader")
                .set("enable.auto.commit", "false");
            for (k, v) in &props {
                c.set(k, v);
            }
            let consumer: BaseConsumer = c.create().map_err(|e| format!("reader: {e}"))?;
            consumer
                .assign(&assigned_partitions(&topic, partitions))
                .map_err(|e| format!("reader assign: {e}"))?;
            let mut got = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(20)) {
                    Some(Ok(m)) => {
                        let (at, wall) = (Instant::now(), unix_millis());
                        let alert: AlertProbe = serde_json::from_slice(m.payload().unwrap_or(b""))
                            .map_err(|e| format!("alert JSON: {e}"))?;
                        if let Some(k) = alert.product_id.strip_prefix("lat-probe-") {
                            let k: u64 = k.parse().map_err(|_| "probe product id")?;
                            let id = format!("lat-{k}");
                            if alert.evidence.last() != Some(&id) {
                                return Err(format!("probe {k}: evidence {:?}", alert.evidence));
                            }
                            got.push((k / LAT_PROBE_EVERY, (at, m.timestamp().to_millis(), wall)));
                        }
                    }
                    Some(Err(e)) => return Err(format!("reader: {e}")),
                    None => {}
                }
            }
            Ok(got)
        })
    };
    let _stop_reader = OnDrop(Some(|| stop_reader.store(true, Ordering::Relaxed)));

    // The load, from this thread: `rate` events/s, each stamped with the time it is sent.
    let mut pc = ClientConfig::new();
    pc.set("bootstrap.servers", &addr)
        .set("partitioner", "murmur2_random");
    for (k, v) in merged(&client, &clients.load_producer) {
        pc.set(k, v);
    }
    let producer: ThreadedProducer<DefaultProducerContext> =
        pc.create().map_err(|e| format!("load producer: {e}"))?;
    let total = args.rate * (args.warmup + args.duration);
    let measured_from = args.rate * args.warmup;
    let mut sent: Vec<Option<Instant>> = vec![None; (total / LAT_PROBE_EVERY + 1) as usize];
    let mut sent_wall = vec![0i64; sent.len()];
    let (mut json, mut product) = (String::with_capacity(256), String::with_capacity(32));
    let nanos_per_event = 1e9 / args.rate as f64;
    let started = Instant::now() + Duration::from_millis(100);
    for k in 0..total {
        let due = started + Duration::from_nanos((k as f64 * nanos_per_event) as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let probe = k % LAT_PROBE_EVERY == 0;
        product.clear();
        json.clear();
        let at = format_rfc3339(Timestamp::now());
        if probe {
            let _ = write!(product, "lat-probe-{k}");
            let _ = write!(
                json,
                r#"{{"event_id":"lat-{k}","occurred_at":"{at}","channel":"call","customer_id":"lat-cust-{k}","product_id":"{product}","defect_tags":["probe-defect"]}}"#
            );
        } else {
            let _ = write!(product, "lat-hot-{}", k % LAT_HOT_KEYS);
            let _ = write!(
                json,
                r#"{{"event_id":"lat-{k}","occurred_at":"{at}","channel":"chat","customer_id":"cust-{}","product_id":"{product}","defect_tags":["noise"]}}"#,
                k % 997
            );
        }
        let (sent_at, sent_at_wall) = (Instant::now(), unix_millis());
        hop::send(&producer, &input, product.as_bytes(), json.as_bytes())
            .map_err(|e| format!("load producer: {e}"))?;
        if probe {
            sent[(k / LAT_PROBE_EVERY) as usize] = Some(sent_at);
            sent_wall[(k / LAT_PROBE_EVERY) as usize] = sent_at_wall;
        }
    }
    let achieved_rate = total as f64 / started.elapsed().as_secs_f64();
    let _ = producer.flush(Duration::from_secs(10));
    // Stragglers: the last events become final on the next idle tick.
    std::thread::sleep(Duration::from_secs(2));
    stop_reader.store(true, Ordering::Relaxed);
    let received = reader.join().map_err(|_| "the alert reader panicked")??;
    let late = metrics.events_late.get();
    let daemon_p99 = metrics.processing_latency_hdr.quantile(0.99).as_secs_f64() * 1e3;
    trigger.fire();
    rt.block_on(running.task)
        .map_err(|e| format!("daemon task: {e}"))?
        .map_err(|e| format!("daemon: {e}"))?;

    let measured = |p: u64| p * LAT_PROBE_EVERY >= measured_from;
    // Each probe's first receipt: a redelivered alert is not counted again.
    let firsts: Vec<Receipt> = hop::first_receipts(received, sent.len()).collect();
    let legs: Vec<(i64, i64, i64)> = firsts
        .iter()
        .filter(|(p, _)| measured(*p))
        .filter_map(|&(p, (_, stamped, wall))| Some((sent_wall[p as usize], stamped?, wall)))
        .collect();
    let split = Split::of(&legs);
    let l = hop::latencies(&sent, firsts.iter().map(|&(p, (at, ..))| (p, at)), measured);
    let expected = (measured_from..total)
        .filter(|k| k % LAT_PROBE_EVERY == 0)
        .count() as u64;
    Ok(LatencyRun {
        p50: l.p50,
        p99: l.p99,
        max: l.max,
        probes: l.measured,
        missing: expected.saturating_sub(l.measured),
        achieved_rate,
        late,
        daemon_p99,
        split,
    })
}

/// Default properties of the daemon's consumer and the alert reader in the latency phase.
pub(super) const LAT_CONSUMER: &str = "fetch.wait.max.ms=5,socket.nagle.disable=true";
/// Default properties of the latency load producer.
pub(super) const LAT_LOAD_PRODUCER: &str = "linger.ms=5,socket.nagle.disable=true";
/// Default properties of the daemon's alert producer in the latency phase on tansu. Not
/// linger.ms=1 as on the mock cluster: tansu's in-memory store keeps one object per batch and
/// lists a partition's objects on every fetch, so the ~1,000 one-alert batches a second that
/// linger 1 makes slow each fetch down as the run goes on (a one-hop probe at 1,000 messages/s
/// with linger 1 went from p99 6 ms to seconds within 20 s; with linger 5 it stayed under 15).
pub(super) const LAT_DAEMON_PRODUCER: &str = "linger.ms=5,socket.nagle.disable=true";

pub(super) fn bench_latency(args: &Args) -> Result<Vec<Row>, String> {
    let rt = runtime()?;
    let (name, fresh) = match &args.brokers {
        Some(addr) => (format!("the broker at {addr}"), "set of topics"),
        None => ("tansu".to_owned(), "tansu"),
    };
    eprintln!(
        "latency: a fresh {fresh} per run; {} ev/s, {} s warm-up + {} s measured per run; idle_tick variants {:?}; {}, commit_interval {}",
        args.rate, args.warmup, args.duration, args.lat_idle_ticks, args.lat_delivery, args.lat_commit_interval
    );
    let broker = Fresh {
        name: &name,
        start: &|| Ok(Box::new(args.broker()?) as Box<dyn Cluster>),
        load_producer: args.lat_load_producer.clone(),
        daemon_producer: args.lat_daemon_producer.clone(),
    };
    let mut rows = Vec::new();
    let ms = |v: f64| format!("{v:.2} ms");
    for (variant, idle_tick) in args.lat_idle_ticks.iter().enumerate() {
        let LatencyRuns {
            p50,
            p99,
            max,
            rates,
            notes,
            complete,
        } = latency_runs(&rt, &broker, args, idle_tick, &variant.to_string())?;
        if variant > 0 {
            let (a, b, c) = (median(&p50), median(&p99), median(&max));
            let id = ["3d", "3e", "3f"][variant - 1];
            rows.push(
                Row::new(
                    id,
                    format!("alert latency p99 with idle_tick {idle_tick} (comparison)"),
                    "ms",
                )
                .median_of(p99, ms)
                .note(format!(
                    "p50 {a:.2} ms, p99 {b:.2} ms, max {c:.2} ms; {}",
                    notes.join(", ")
                )),
            );
            continue;
        }
        let settings = format!(
            "{}; partitions: {}, {} ev/s (achieved {:.0}), 1 in {} events opens a key; allowed_lateness 0s, idle_tick {idle_tick}, {}, commit_interval {}; consumers (daemon, reader) {}; load producer {}; daemon producer {} (idempotent, acks=all)",
            broker.name,
            args.lat_partitions,
            args.rate,
            median(&rates),
            LAT_PROBE_EVERY,
            args.lat_delivery,
            args.lat_commit_interval,
            props_text(&args.lat_consumer),
            props_text(&broker.load_producer),
            props_text(&broker.daemon_producer),
        );
        let p99_median = median(&p99);
        rows.push(
            Row::new(
                "3a",
                format!("alert latency p50 (produce -> alert received), idle_tick {idle_tick}"),
                "ms",
            )
            .median_of(p50, ms)
            .note(settings),
        );
        rows.push(
            Row::new("3b", "alert latency p99", "ms")
                .median_of(p99, ms)
                .target(
                    "< 20 ms (every probe alerted)",
                    complete && p99_median < 20.0,
                )
                .note(notes.join(", ")),
        );
        rows.push(Row::new("3c", "alert latency max", "ms").median_of(max, ms));
    }
    rows.push(broker_floor(&broker, args, Hops::One)?);
    rows.push(broker_floor(&broker, args, Hops::Two)?);
    rows.extend(mock_comparison(&rt, args)?);
    Ok(rows)
}

/// The medians' inputs of `args.runs` latency runs.
struct LatencyRuns {
    p50: Vec<f64>,
    p99: Vec<f64>,
    max: Vec<f64>,
    rates: Vec<f64>,
    notes: Vec<String>,
    /// Every run measured probes and every probe got its alert.
    complete: bool,
}

fn latency_runs(
    rt: &tokio::runtime::Runtime,
    fresh: &Fresh<'_>,
    args: &Args,
    idle_tick: &str,
    tag: &str,
) -> Result<LatencyRuns, String> {
    let mut runs = LatencyRuns {
        p50: vec![],
        p99: vec![],
        max: vec![],
        rates: vec![],
        notes: vec![],
        complete: true,
    };
    for run in 1..=args.runs {
        let cluster = (fresh.start)()?;
        let r = latency_run(
            rt,
            cluster.as_ref(),
            args,
            idle_tick,
            &format!("{tag}-{run}"),
            fresh,
        )?;
        runs.complete &= r.probes > 0 && r.missing == 0;
        eprintln!(
            "latency: {}, idle_tick {idle_tick}, run {run}/{}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} probes ({} missing, {} late events), load {:.0} ev/s; daemon received->acked p99 {:.2} ms; event sent -> alert stamped p50 {} ms, p99 {} ms; alert stamped -> received p50 {} ms, p99 {} ms",
            fresh.name, args.runs, r.p50, r.p99, r.max, r.probes, r.missing, r.late, r.achieved_rate, r.daemon_p99,
            r.split.event_leg_p50, r.split.event_leg_p99, r.split.alert_hop_p50, r.split.alert_hop_p99
        );
        runs.notes.push(format!(
            "run {run}: {} probes, {} without alert, {} late events, p99 of event sent -> alert stamped {} ms and of alert stamped -> received {} ms",
            r.probes, r.missing, r.late, r.split.event_leg_p99, r.split.alert_hop_p99
        ));
        runs.p50.push(r.p50);
        runs.p99.push(r.p99);
        runs.max.push(r.max);
        runs.rates.push(r.achieved_rate);
    }
    Ok(runs)
}

/// The same daemon path and one-hop floor on librdkafka's in-process mock cluster: what the
/// daemon costs when the broker is not the limit (for comparison, not held to the target).
fn mock_comparison(rt: &tokio::runtime::Runtime, args: &Args) -> Result<Vec<Row>, String> {
    let mock = Fresh {
        name: "mock cluster",
        start: &|| {
            let cluster = MockCluster::new(1).map_err(|e| format!("mock cluster: {e}"))?;
            Ok(Box::new(Mock(cluster)) as Box<dyn Cluster>)
        },
        load_producer: props(MOCK_LOAD_PRODUCER).expect("valid default"),
        daemon_producer: props(MOCK_DAEMON_PRODUCER).expect("valid default"),
    };
    let idle_tick = &args.lat_idle_ticks[0];
    let runs = latency_runs(rt, &mock, args, idle_tick, "mock")?;
    let (a, c) = (median(&runs.p50), median(&runs.max));
    let daemon = Row::new(
        "3h",
        "alert latency p99 on librdkafka's mock cluster (comparison)",
        "ms",
    )
    .median_of(runs.p99, |v| format!("{v:.2} ms"))
    .note(format!(
        "p50 {a:.2} ms, max {c:.2} ms; in-process broker, settings of 3a-3c but load producer {MOCK_LOAD_PRODUCER} (linger 2 ms suits this broker, 5 ms tansu; 1 ms overloaded both) and daemon producer {MOCK_DAEMON_PRODUCER}; {}",
        runs.notes.join(", ")
    ));
    let mut floor = broker_floor(&mock, args, Hops::One)?;
    floor.id = "3i";
    floor.measure = "mock cluster floor: one hop p99 (comparison)".into();
    let mut relayed = broker_floor(&mock, args, Hops::Two)?;
    relayed.id = "3k";
    relayed.measure = "mock cluster floor: two hops through a plain relay, p99 (comparison)".into();
    Ok(vec![daemon, floor, relayed])
}

/// The load producer's properties on the mock cluster: it keeps up with linger.ms=2 (tansu's
/// one-hop p99 went from 51 to 114 ms with it), and with 1 it fell behind too (p99 144 ms).
const MOCK_LOAD_PRODUCER: &str = "linger.ms=2,socket.nagle.disable=true";
/// The daemon's alert producer's properties on the mock cluster, which has no per-batch cost
/// that grows: the least linger (p99 14.6 ms with it, 17.5 with tansu's linger 5).
const MOCK_DAEMON_PRODUCER: &str = "linger.ms=1,socket.nagle.disable=true";

/// Starts a broker for one run: tansu keeps every message in memory and slows down as it
/// fills, so each run gets a fresh one and no run pays for the ones before it.
struct Fresh<'a> {
    name: &'a str,
    start: &'a dyn Fn() -> Result<Box<dyn Cluster>, String>,
    /// The load producer's properties on this kind of broker.
    load_producer: Props,
    /// The daemon's alert producer's properties on this kind of broker.
    daemon_producer: Props,
}

/// Where the latency phase runs: tansu (or a given broker), or the in-process mock cluster.
trait Cluster {
    fn addr(&self) -> String;
    /// Properties every client needs (a given broker's security settings).
    fn client(&self) -> Props {
        Vec::new()
    }
    fn create_topic(&self, name: &str, partitions: u32) -> Result<(), String>;
}

impl Cluster for Broker {
    fn addr(&self) -> String {
        self.addr.clone()
    }
    fn client(&self) -> Props {
        self.client.clone()
    }
    fn create_topic(&self, name: &str, partitions: u32) -> Result<(), String> {
        Broker::create_topic(self, name, partitions)
    }
}

struct Mock(MockCluster<'static, DefaultProducerContext>);

impl Cluster for Mock {
    fn addr(&self) -> String {
        self.0.bootstrap_servers()
    }
    fn create_topic(&self, name: &str, partitions: u32) -> Result<(), String> {
        self.0
            .create_topic(name, partitions as i32, 1)
            .map_err(|e| format!("mock cluster topic {name}: {e}"))
    }
}

/// What [`broker_floor`] measures.
#[derive(Clone, Copy, PartialEq)]
enum Hops {
    /// Produce -> a plain consumer receives.
    One,
    /// Produce -> a plain relay forwards 1 in `LAT_PROBE_EVERY` at once (with the daemon's
    /// alert producer properties) -> a plain consumer receives: an alert's two hops.
    Two,
}

/// The broker's floor at the same rate and with the load producer's and the consumers'
/// properties: one hop, or the two an alert makes, with no daemon.
fn broker_floor(fresh: &Fresh<'_>, args: &Args, hops: Hops) -> Result<Row, String> {
    let (mut p50, mut p99, mut max, mut missing) = (vec![], vec![], vec![], 0);
    for run in 1..=args.runs {
        let cluster = (fresh.start)()?;
        let topic = format!("lat-hop-{}-{run}", args.run_id);
        cluster.create_topic(&topic, args.lat_partitions)?;
        let relayed = format!("lat-relayed-{}-{run}", args.run_id);
        if hops == Hops::Two {
            cluster.create_topic(&relayed, args.lat_partitions)?;
        }
        let (addr, client) = (cluster.addr(), cluster.client());
        let relay_producer = merged(&client, &fresh.daemon_producer);
        let h = hop::measure(&hop::HopSetup {
            addr: &addr,
            topic: &topic,
            partitions: args.lat_partitions,
            rate: args.rate,
            warmup_secs: args.warmup,
            duration_secs: args.duration,
            producer: &merged(&client, &fresh.load_producer),
            consumer: &merged(&client, &args.lat_consumer),
            payload_bytes: LAT_EVENT_BYTES,
            relay: (hops == Hops::Two).then(|| hop::Relay {
                topic: &relayed,
                every: LAT_PROBE_EVERY,
                producer: &relay_producer,
                payload_bytes: LAT_ALERT_BYTES,
            }),
        })?;
        eprintln!(
            "latency: {} floor, run {run}/{}: {} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} messages ({} missing)",
            fresh.name,
            args.runs,
            if hops == Hops::One { "one hop" } else { "two hops through a relay" },
            h.p50,
            h.p99,
            h.max,
            h.measured,
            h.missing
        );
        missing += h.missing;
        p50.push(h.p50);
        p99.push(h.p99);
        max.push(h.max);
    }
    let (a, c) = (median(&p50), median(&max));
    let row = match hops {
        Hops::One => Row::new(
            "3g",
            "broker floor: one hop p99 (produce -> plain consumer), no daemon",
            "ms",
        )
        .note(format!(
            "p50 {a:.2} ms, max {c:.2} ms, {missing} messages never read back; same rate, partitions and consumer properties, {LAT_EVENT_BYTES}-byte messages as the daemon's events, load producer {}; an alert makes two hops",
            props_text(&fresh.load_producer)
        )),
        Hops::Two => Row::new(
            "3j",
            "broker floor: two hops p99 (produce -> plain relay forwards 1 in 10 at once -> plain consumer), no daemon",
            "ms",
        )
        .note(format!(
            "p50 {a:.2} ms, max {c:.2} ms, {missing} forwarded messages never read back; the alert path's two hops and flows with nothing of the daemon between them, {LAT_EVENT_BYTES}-byte messages in and {LAT_ALERT_BYTES}-byte ones forwarded, as the daemon's events and alerts; load producer {}, relay producer {} (idempotent, acks=all)",
            props_text(&fresh.load_producer),
            props_text(&fresh.daemon_producer)
        )),
    };
    Ok(row.median_of(p99, |v| format!("{v:.2} ms")))
}
