//! Core benchmarks: decode, the per-key window, the policy and the whole engine.
//!
//! Run with `cargo bench --bench core` (about 1 minute once built on 2 cores, more on a busy
//! machine); filter with `cargo bench --bench core -- engine/`. Every group sets its throughput in
//! elements, so criterion prints events (or calls) per second next to the time.
//!
//! Inputs: the real NHTSA file (`data/nhtsa/events-ford-toyota.jsonl.gz`, 28,367 complaints, no
//! `text` field, ~275 B/line) and a generated stream (`GenSpec` defaults with seed 7: Zipf products,
//! 2% defect tags, a `text` field, ~260 B/line). Everything is read into memory before timing.

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use flate2::read::MultiGzDecoder;

#[path = "support/baseline.rs"]
mod baseline;
use baseline::BaselineEvent;

use recall_radar::alert::Alert;
use recall_radar::config::{DetectorConfig, RawDetector, RawTagClass, Thresholds};
use recall_radar::engine::Engine;
use recall_radar::event::{decode, Channel, ContactEvent, Severity};
use recall_radar::generate::{defect_tags, routine_tags, GenSpec, Generator};
use recall_radar::policy::Policy;
use recall_radar::time::{Span, Timestamp};
use recall_radar::window::{distinct_reporters_capped, hash_str, Report, Reports};

const NHTSA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/nhtsa/events-ford-toyota.jsonl.gz"
);
const SEED: u64 = 7;
const DECODE_LINES: usize = 10_000;
const ENGINE_GENERATED: u64 = 100_000;

/// The non-empty lines of the NHTSA file, at most `limit` of them.
fn nhtsa_lines(limit: usize) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(NHTSA).unwrap_or_else(|e| panic!("cannot open {NHTSA}: {e}"));
    BufReader::new(MultiGzDecoder::new(BufReader::new(file)))
        .split(b'\n')
        .map(|l| l.expect("readable gzip"))
        .filter(|l| !l.trim_ascii().is_empty())
        .take(limit)
        .collect()
}

/// `events` generated lines (seed [`SEED`], otherwise the defaults).
fn generated_lines(events: u64) -> Vec<Vec<u8>> {
    let mut generator = Generator::new(GenSpec {
        seed: SEED,
        events,
        ..GenSpec::default()
    });
    let mut lines = Vec::with_capacity(events as usize);
    while let Some(e) = generator.next_line() {
        lines.push(e.json.as_bytes().to_vec());
    }
    lines
}

fn decode_all(lines: &[Vec<u8>]) -> Vec<ContactEvent<'_>> {
    lines.iter().filter_map(|l| decode(l).ok()).collect()
}

fn mean_bytes(lines: &[Vec<u8>]) -> usize {
    lines.iter().map(Vec::len).sum::<usize>() / lines.len().max(1)
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, samples: usize, warm: u64, measure: u64) {
    group
        .sample_size(samples)
        .warm_up_time(Duration::from_millis(warm))
        .measurement_time(Duration::from_millis(measure));
}

// ---------------------------------------------------------------------------------------------
// decode

fn bench_decode(c: &mut Criterion) {
    let inputs = [
        ("nhtsa", nhtsa_lines(DECODE_LINES)),
        ("generated", generated_lines(DECODE_LINES as u64)),
    ];
    let mut group = c.benchmark_group("decode");
    configure(&mut group, 30, 500, 2_000);
    for (name, lines) in &inputs {
        // Both decoders must accept every line, or the comparison is off.
        assert_eq!(decode_all(lines).len(), lines.len(), "{name}: decode fails");
        for l in lines {
            serde_json::from_slice::<BaselineEvent<'_>>(l)
                .unwrap_or_else(|e| panic!("{name}: baseline fails: {e}"));
        }
        eprintln!(
            "decode/{name}: {} lines, {} B/line on average",
            lines.len(),
            mean_bytes(lines)
        );
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                for l in lines {
                    black_box(decode(black_box(l)).is_ok());
                }
            })
        });
        group.bench_function(format!("serde_only/{name}"), |b| {
            b.iter(|| {
                for l in lines {
                    black_box(serde_json::from_slice::<BaselineEvent<'_>>(black_box(l)).is_ok());
                }
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// window

fn report(i: u64) -> Report {
    Report::new(
        Timestamp(1_767_225_600_000_000 + i as i64 * 60_000_000),
        hash_str(&format!("ev-{i}")),
        // Three reporters take turns, so the capped count stops after three distinct ones.
        hash_str(&format!("cust-{}", i % 3)),
        Channel::Call,
        Severity::default(),
        &format!("ev-{i}"),
        None,
        None,
    )
}

/// A key holding `n` reports takes one more in time order, asks how many distinct reporters its
/// window has (capped at 3, the default problem threshold) and drops its oldest report, so it
/// stays at `n`: the steady state of a key on the engine's hot path.
fn bench_window(c: &mut Criterion) {
    let mut group = c.benchmark_group("window");
    configure(&mut group, 30, 300, 1_000);
    group.throughput(Throughput::Elements(1));
    let window = Span::from_days(365_000);
    for n in [1u64, 10, 100, 1000] {
        group.bench_function(format!("insert_count_prune/{n}"), |b| {
            let mut reports = Reports::default();
            for i in 0..n {
                reports.insert(report(i));
            }
            // Prebuilt reports, cloned in the loop: the clone is one small allocation, like the
            // engine's `Report` for each event and tag.
            let ring: Vec<Report> = (n..n + 4096).map(report).collect();
            let mut next = 0usize;
            let mut shift = 0i64;
            b.iter(|| {
                let mut r = ring[next].clone();
                next += 1;
                if next == ring.len() {
                    // Start the ring again after the last time used, with new event hashes.
                    next = 0;
                    shift += 4096 * 60_000_000;
                }
                r.at = Timestamp(r.at.0 + shift);
                r.event ^= shift as u64;
                let at = r.at;
                assert!(reports.insert(r));
                let count = distinct_reporters_capped(reports.window(at, window), 3);
                let oldest = reports.as_slice()[0].at;
                reports.prune_through(oldest);
                black_box(count)
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// policy

fn class(name: &str, tags: &[&str], patterns: &[&str]) -> RawTagClass {
    RawTagClass {
        name: name.into(),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        patterns: patterns.iter().map(|s| s.to_string()).collect(),
        window: Some("7d".into()),
        thresholds: Some(Thresholds {
            anomaly: 1,
            pattern: 2,
            problem: 4,
        }),
    }
}

/// Three tag classes with names and anchored regex patterns, as a deployment might configure.
fn classed_config() -> DetectorConfig {
    let raw = RawDetector {
        tag_class: vec![
            class(
                "safety",
                &["AIR BAGS", "SEAT BELTS", "overheating"],
                &["(?i).*brake.*", "(?i)(fuel|fire|smoke).*", "STEERING.*"],
            ),
            class(
                "powertrain",
                &["ENGINE"],
                &["(?i).*(engine|transmission|power train).*"],
            ),
            class(
                "noise",
                &["UNKNOWN OR OTHER"],
                &["(?i)(billing|returns|account|order-change)"],
            ),
        ],
        ..RawDetector::default()
    };
    DetectorConfig::from_raw(&raw).expect("valid bench config")
}

/// Every distinct tag of the NHTSA file and the generator.
fn all_tags(nhtsa: &[Vec<u8>]) -> Vec<String> {
    let mut tags: Vec<String> = decode_all(nhtsa)
        .iter()
        .flat_map(|e| e.defect_tags.iter().map(|t| t.to_string()))
        .chain(routine_tags().map(str::to_owned))
        .chain(defect_tags().map(str::to_owned))
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

fn bench_policy(c: &mut Criterion) {
    let tags = all_tags(&nhtsa_lines(usize::MAX));
    let fresh = Policy::new(classed_config());
    let mut warm = fresh.clone();
    let classes: Vec<u16> = tags.iter().map(|t| warm.classify(t)).collect();
    eprintln!(
        "policy: {} distinct tags over {} classes",
        tags.len(),
        warm.classes().len()
    );
    let mut group = c.benchmark_group("policy");
    configure(&mut group, 30, 300, 1_000);
    group.throughput(Throughput::Elements(tags.len() as u64));
    group.bench_function("classify/cached", |b| {
        b.iter(|| {
            for t in &tags {
                black_box(warm.classify(black_box(t)));
            }
        })
    });
    group.bench_function("classify/cold", |b| {
        b.iter_batched_ref(
            || {
                // An empty tag cache, with every regex's matching cache warmed by one miss.
                let mut p = fresh.clone();
                p.classify("no class matches this warm-up tag");
                p
            },
            |p| {
                for t in &tags {
                    black_box(p.classify(black_box(t)));
                }
            },
            BatchSize::SmallInput,
        )
    });
    const RUNG_CALLS: u32 = 1024;
    group.throughput(Throughput::Elements(u64::from(RUNG_CALLS)));
    group.bench_function("class_rung", |b| {
        b.iter(|| {
            for i in 0..RUNG_CALLS {
                let class = warm.class(classes[i as usize % classes.len()]);
                black_box(class.rung(black_box(i % 6)));
            }
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// engine

fn ingest_all(engine: &mut Engine, events: &[ContactEvent<'_>], alerts: &mut Vec<Alert>) -> usize {
    let mut n = 0;
    for e in events {
        engine.ingest(e, alerts);
        n += alerts.len();
        alerts.clear();
    }
    engine.finish(alerts);
    n += alerts.len();
    alerts.clear();
    n
}

fn replay_all(engine: &mut Engine, lines: &[Vec<u8>], alerts: &mut Vec<Alert>) -> usize {
    let mut n = 0;
    for l in lines {
        if let Ok(e) = decode(l) {
            engine.ingest(&e, alerts);
            n += alerts.len();
            alerts.clear();
        }
    }
    engine.finish(alerts);
    n += alerts.len();
    alerts.clear();
    n
}

/// The whole engine over a stream: a fresh `Engine` per iteration (created and dropped outside
/// the timing), `ingest` for every event then `finish`; alerts are counted and dropped.
fn bench_engine(c: &mut Criterion) {
    let inputs = [
        ("nhtsa", nhtsa_lines(usize::MAX)),
        ("generated_100k", generated_lines(ENGINE_GENERATED)),
    ];
    let mut group = c.benchmark_group("engine");
    group.sampling_mode(SamplingMode::Flat);
    for (name, lines) in &inputs {
        let events = decode_all(lines);
        let mut alerts = Vec::new();
        let fired = ingest_all(
            &mut Engine::new(DetectorConfig::default()),
            &events,
            &mut alerts,
        );
        eprintln!(
            "engine/{name}: {} lines, {} events, {} alerts",
            lines.len(),
            events.len(),
            fired
        );
        let (samples, measure) = if events.len() > 50_000 {
            (10, 6_000)
        } else {
            (20, 3_000)
        };
        configure(&mut group, samples, 1_000, measure);
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_function(format!("ingest/{name}"), |b| {
            b.iter_batched(
                || Engine::new(DetectorConfig::default()),
                |mut engine| {
                    black_box(ingest_all(&mut engine, &events, &mut alerts));
                    engine
                },
                BatchSize::PerIteration,
            )
        });
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function(format!("replay_like/{name}"), |b| {
            b.iter_batched(
                || Engine::new(DetectorConfig::default()),
                |mut engine| {
                    black_box(replay_all(&mut engine, lines, &mut alerts));
                    engine
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_window,
    bench_policy,
    bench_engine
);
criterion_main!(benches);
