//! The broker's own latency floor for the latency phase of benches/pipeline.rs: messages
//! produced at a steady rate straight to a topic and read back by a plain consumer, with the
//! same client properties as the daemon path. An alert crosses the broker twice (event in,
//! alert out); with a [`Relay`], a plain consumer forwards every `every`th message to a second
//! topic at once and the reader reads that one: the two hops an alert makes with nothing of the
//! daemon between them, which no daemon on that broker can beat.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

/// Quantiles of one hop, in milliseconds.
pub struct Hop {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Messages measured (after the warm-up) and those never read back.
    pub measured: u64,
    pub missing: u64,
}

pub struct HopSetup<'a> {
    pub addr: &'a str,
    /// An existing topic with `partitions` partitions.
    pub topic: &'a str,
    pub partitions: u32,
    pub rate: u64,
    pub warmup_secs: u64,
    pub duration_secs: u64,
    pub producer: &'a [(String, String)],
    pub consumer: &'a [(String, String)],
    /// Bytes of each message: its sequence number padded with spaces (the broker's work grows
    /// with the bytes, so the floor carries what the daemon's path does).
    pub payload_bytes: usize,
    /// Measure two hops through this relay instead of one.
    pub relay: Option<Relay<'a>>,
}

/// A second hop: a consumer of the first topic (the consumer properties) that forwards every
/// `every`th message (as the daemon alerts on 1 event in `every`) to `topic` at once, with a
/// producer of `producer`'s properties.
pub struct Relay<'a> {
    pub topic: &'a str,
    pub every: u64,
    pub producer: &'a [(String, String)],
    /// Bytes of each forwarded message (as [`HopSetup::payload_bytes`]).
    pub payload_bytes: usize,
}

/// `seq` padded with spaces to `bytes`.
fn padded(seq: u64, bytes: usize) -> String {
    format!("{seq:<bytes$}")
}

/// Sends one record, waiting a millisecond at a time while the producer's queue is full.
pub fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &[u8],
    payload: &[u8],
) -> Result<(), KafkaError> {
    loop {
        let record = BaseRecord::to(topic).key(key).payload(payload);
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err((e, _)) => return Err(e),
        }
    }
}

fn client(addr: &str, props: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr);
    for (k, v) in props {
        c.set(k, v);
    }
    c
}

/// A consumer of `topic`'s new messages (from the end).
fn reader_of(s: &HopSetup<'_>, topic: &str, group: &str) -> Result<BaseConsumer, String> {
    let mut cc = client(s.addr, s.consumer);
    cc.set("group.id", group).set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cc.create().map_err(|e| format!("{group}: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..s.partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::End)
            .map_err(|e| format!("{group} assign: {e}"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| format!("{group} assign: {e}"))?;
    Ok(consumer)
}

/// The sequence number a hop message carries.
fn seq_of(payload: Option<&[u8]>) -> Result<u64, String> {
    std::str::from_utf8(payload.unwrap_or(b""))
        .ok()
        .and_then(|t| t.trim_end().parse::<u64>().ok())
        .ok_or_else(|| "hop payload is not a sequence number".to_owned())
}

/// Forwards every `relay.every`th message of `s.topic` to `relay.topic` until `stop`.
fn spawn_relay(
    s: &HopSetup<'_>,
    relay: &Relay<'_>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<(), String>>, String> {
    let consumer = reader_of(s, s.topic, "bench-hop-relay")?;
    let mut pc = client(s.addr, relay.producer);
    // As the daemon's alert producer: idempotent, acknowledged by all in-sync replicas.
    pc.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random");
    let producer: ThreadedProducer<DefaultProducerContext> = pc
        .create()
        .map_err(|e| format!("hop relay producer: {e}"))?;
    let (topic, every, bytes) = (relay.topic.to_owned(), relay.every, relay.payload_bytes);
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match consumer.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => {
                    let seq = seq_of(m.payload())?;
                    let probe = seq % every == 0;
                    if probe {
                        let payload = padded(seq, bytes);
                        send(
                            &producer,
                            &topic,
                            m.key().unwrap_or(b""),
                            payload.as_bytes(),
                        )
                        .map_err(|e| format!("hop relay producer: {e}"))?;
                    }
                }
                Some(Err(e)) => return Err(format!("hop relay: {e}")),
                None => {}
            }
        }
        Ok(())
    }))
}

/// Produces `rate` messages a second (payload: the sequence number, padded to `payload_bytes`)
/// and measures each one's send -> receive time, through the relay if there is one (then only
/// the forwarded ones); the first `warmup_secs` are not counted.
pub fn measure(s: &HopSetup<'_>) -> Result<Hop, String> {
    let read_topic = s.relay.as_ref().map_or(s.topic, |r| r.topic);
    let consumer = reader_of(s, read_topic, "bench-hop-reader")?;
    let stop = Arc::new(AtomicBool::new(false));
    let relay = match &s.relay {
        Some(r) => Some(spawn_relay(s, r, stop.clone())?),
        None => None,
    };
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || -> Result<Vec<(u64, Instant)>, String> {
            let mut got = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(20)) {
                    Some(Ok(m)) => {
                        let at = Instant::now();
                        got.push((seq_of(m.payload())?, at));
                    }
                    Some(Err(e)) => return Err(format!("hop reader: {e}")),
                    None => {}
                }
            }
            Ok(got)
        })
    };
    // The reader's assignment resolves Offset::End asynchronously: give it a moment.
    std::thread::sleep(Duration::from_millis(500));

    let mut pc = client(s.addr, s.producer);
    pc.set("partitioner", "murmur2_random");
    let producer: ThreadedProducer<DefaultProducerContext> =
        pc.create().map_err(|e| format!("hop producer: {e}"))?;
    let total = s.rate * (s.warmup_secs + s.duration_secs);
    let measured_from = s.rate * s.warmup_secs;
    let mut sent: Vec<Option<Instant>> = vec![None; total as usize];
    let nanos_per_message = 1e9 / s.rate as f64;
    let started = Instant::now();
    for seq in 0..total {
        let due = started + Duration::from_nanos((seq as f64 * nanos_per_message) as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let payload = padded(seq, s.payload_bytes);
        let key = (seq % 1000).to_string();
        sent[seq as usize] = Some(Instant::now());
        send(&producer, s.topic, key.as_bytes(), payload.as_bytes())
            .map_err(|e| format!("hop producer: {e}"))?;
    }
    let _ = producer.flush(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let received = reader.join().map_err(|_| "the hop reader panicked")??;
    if let Some(relay) = relay {
        relay.join().map_err(|_| "the hop relay panicked")??;
    }

    let every = s.relay.as_ref().map_or(1, |r| r.every);
    let l = latencies(&sent, received, |seq| seq >= measured_from);
    let expected = (measured_from..total)
        .filter(|seq| seq % every == 0)
        .count() as u64;
    Ok(Hop {
        p50: l.p50,
        p99: l.p99,
        max: l.max,
        measured: l.measured,
        missing: expected.saturating_sub(l.measured),
    })
}

/// Send-to-receipt times in milliseconds, and how many were measured.
pub struct Latencies {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub measured: u64,
}

/// The first receipt of each message number below `n`, in the order received: a redelivery
/// does not count again, and a number out of range is dropped.
pub fn first_receipts<T>(
    received: impl IntoIterator<Item = (u64, T)>,
    n: usize,
) -> impl Iterator<Item = (u64, T)> {
    let mut seen = vec![false; n];
    received.into_iter().filter(move |(i, _)| {
        seen.get_mut(*i as usize)
            .is_some_and(|s| !std::mem::replace(s, true))
    })
}

/// The time from `sent[i]` to the first receipt of `i` (a redelivery does not count again), for
/// every `i` received that `measured` accepts (the warm-up's are left out).
pub fn latencies(
    sent: &[Option<Instant>],
    received: impl IntoIterator<Item = (u64, Instant)>,
    measured: impl Fn(u64) -> bool,
) -> Latencies {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    for (i, at) in first_receipts(received, sent.len()) {
        let Some(sent_at) = sent[i as usize] else {
            continue;
        };
        if !measured(i) {
            continue;
        }
        let micros = at.saturating_duration_since(sent_at).as_micros() as u64;
        hist.saturating_record(micros.max(1));
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1e3;
    Latencies {
        p50: ms(0.5),
        p99: ms(0.99),
        max: hist.max() as f64 / 1e3,
        measured: hist.len(),
    }
}
