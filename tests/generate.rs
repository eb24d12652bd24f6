//! The synthetic stream generator: valid events, determinism, time order, realistic skew, and
//! injected bursts that the engine finds.

use std::collections::{HashMap, HashSet};

use recall_radar::config::{DetectorConfig, FastPath};
use recall_radar::engine::Engine;
use recall_radar::event::decode;
use recall_radar::generate::{ground_truth, write_jsonl, GenSpec, Generator};
use recall_radar::policy::Level;
use recall_radar::time::{Span, Timestamp};

fn spec(events: u64) -> GenSpec {
    GenSpec {
        events,
        ..GenSpec::default()
    }
}

#[test]
fn generated_lines_decode_and_agree_with_their_metadata() {
    for text in [true, false] {
        let spec = GenSpec {
            text,
            defect_rate: 0.2,
            ..spec(20_000)
        };
        let mut ids = HashSet::new();
        let mut n = 0;
        for e in Generator::new(spec.clone()) {
            assert!(!e.json.contains('\n'));
            let d = decode(e.json.as_bytes()).unwrap_or_else(|err| panic!("{err}: {}", e.json));
            assert_eq!(d.occurred_at, e.occurred_at);
            assert_eq!(d.product_id, e.product_id);
            assert!(!d.defect_tags.is_empty());
            assert!(ids.insert(d.event_id.into_owned()), "event ids are unique");
            n += 1;
        }
        assert_eq!(n, spec.events);
    }
}

#[test]
fn generated_same_spec_same_bytes_other_seed_other_bytes() {
    let a: Vec<_> = Generator::new(spec(5_000)).collect();
    let b: Vec<_> = Generator::new(spec(5_000)).collect();
    assert_eq!(a, b);
    let c: Vec<_> = Generator::new(GenSpec {
        seed: 7,
        ..spec(5_000)
    })
    .collect();
    assert_ne!(a, c);
    let mut file = Vec::new();
    assert_eq!(write_jsonl(&spec(5_000), &mut file).unwrap(), 5_000);
    let lines: Vec<&str> = std::str::from_utf8(&file).unwrap().lines().collect();
    let jsons: Vec<&str> = a.iter().map(|e| e.json.as_str()).collect();
    assert_eq!(lines, jsons);
    assert!(file.ends_with(b"}\n"));
    assert_eq!(ground_truth(&spec(5_000)), ground_truth(&spec(5_000)));
}

#[test]
fn generated_time_never_goes_back_and_starts_at_start() {
    let spec = spec(50_000);
    let events: Vec<_> = Generator::new(spec.clone()).collect();
    assert_eq!(events[0].occurred_at, spec.start);
    assert!(events
        .windows(2)
        .all(|w| w[0].occurred_at <= w[1].occurred_at));
    // Exponential gaps with the requested mean (within a few percent over 50k events).
    let span = events.last().unwrap().occurred_at.0 - spec.start.0;
    let mean = span as f64 / events.len() as f64;
    let want = spec.mean_gap.0 as f64;
    assert!(
        (mean - want).abs() < 0.05 * want,
        "mean gap {mean} vs {want}"
    );
    // Microsecond resolution, not whole seconds.
    assert!(events.iter().any(|e| e.occurred_at.0 % 1000 != 0));
}

#[test]
fn generated_product_popularity_is_skewed() {
    let spec = spec(100_000);
    let mut counts: HashMap<String, u64> = HashMap::new();
    for e in Generator::new(spec.clone()) {
        *counts.entry(e.product_id).or_default() += 1;
    }
    let mut by_count: Vec<u64> = counts.values().copied().collect();
    by_count.sort_unstable_by(|a, b| b.cmp(a));
    let top = (spec.products as usize / 100).max(1);
    let share = by_count[..top].iter().sum::<u64>() as f64 / spec.events as f64;
    assert!(share > 0.5, "top 1% of products got {share:.2} of events");
    // Popular ids are scattered over the catalogue, not the low numbers.
    let mut top_ids: Vec<(&String, &u64)> = counts.iter().collect();
    top_ids.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let low = top_ids[..10]
        .iter()
        .filter(|(id, _)| id.as_str() < "sku-000100")
        .count();
    assert!(low < 5, "top products: {:?}", &top_ids[..10]);
    assert!(counts.keys().all(|id| id.len() == "sku-000000".len()));
}

fn distinct_keys(spec: &GenSpec) -> usize {
    let mut keys = HashSet::new();
    for e in Generator::new(spec.clone()) {
        let d = decode(e.json.as_bytes()).unwrap();
        for tag in &d.defect_tags {
            keys.insert((d.product_id.to_string(), tag.to_string()));
        }
    }
    keys.len()
}

#[test]
fn generated_distinct_keys_grow_with_events() {
    let small = distinct_keys(&spec(25_000));
    let large = distinct_keys(&spec(100_000));
    println!("distinct keys: {small} in 25k events, {large} in 100k events");
    // The catalogue's tail keeps adding keys (about 10.6k at 25k events and 30k at 100k with
    // the defaults; 1M events give about 133k).
    assert!(small > 8_000, "{small} keys in 25k events");
    assert!(large > 22_000, "{large} keys in 100k events");
    assert!(large as f64 > 2.2 * small as f64, "{small} -> {large}");
}

/// When, who and through which channel an event carried a burst key.
type Sighting = (Timestamp, String, &'static str);

#[test]
fn generated_burst_keys_appear_only_in_their_bursts() {
    let spec = GenSpec {
        bursts: 12,
        defect_rate: 0.2,
        mean_gap: Span::from_secs(60),
        ..spec(100_000)
    };
    let truth = ground_truth(&spec);
    assert_eq!(truth.len(), 12);
    let keys: HashSet<(String, String)> = truth
        .iter()
        .map(|b| (b.product_id.clone(), b.defect_tag.clone()))
        .collect();
    assert_eq!(keys.len(), truth.len(), "burst keys are distinct");
    // (product, tag) -> (time, customer, channel) of every event carrying it.
    let mut seen: HashMap<(String, String), Vec<Sighting>> = HashMap::new();
    let mut burst_products = 0;
    for e in Generator::new(spec.clone()) {
        let d = decode(e.json.as_bytes()).unwrap();
        let mut mine = false;
        for tag in &d.defect_tags {
            let key = (d.product_id.to_string(), tag.to_string());
            if keys.contains(&key) {
                let customer = d
                    .customer_id
                    .as_deref()
                    .expect("burst reports name the customer");
                seen.entry(key).or_default().push((
                    d.occurred_at,
                    customer.to_owned(),
                    d.channel.as_str(),
                ));
                mine = true;
            }
        }
        if !mine && truth.iter().any(|b| b.product_id == *d.product_id) {
            burst_products += 1;
        }
    }
    for b in &truth {
        let reports = &seen[&(b.product_id.clone(), b.defect_tag.clone())];
        assert_eq!(reports.len() as u32, b.reports, "{b:?}");
        assert!(b.last_at.0 - b.first_at.0 <= spec.burst_span.0);
        assert!(reports
            .iter()
            .all(|(t, _, _)| b.first_at <= *t && *t <= b.last_at));
        let mut by_customer: HashMap<&str, Vec<&str>> = HashMap::new();
        for (_, c, ch) in reports {
            by_customer.entry(c).or_default().push(ch);
        }
        assert_eq!(by_customer.len() as u32, b.reporters);
        assert!(b.reporters >= 3);
        let repeats: Vec<_> = by_customer.values().filter(|v| v.len() > 1).collect();
        assert!(!repeats.is_empty(), "someone reports twice: {b:?}");
        assert!(repeats.iter().all(|v| v.len() == 2 && v[0] != v[1]));
    }
    // Bursts sit evenly over the run: in order, separated, inside the stream's time.
    assert!(truth.windows(2).all(|w| w[0].last_at < w[1].first_at));
    assert!(
        burst_products > 0,
        "burst products also get background traffic"
    );
}

#[test]
fn generated_bursts_each_raise_a_problem_alert() {
    let spec = GenSpec {
        bursts: 8,
        products: 5_000,
        mean_gap: Span::from_secs(60),
        ..spec(40_000)
    };
    let truth = ground_truth(&spec);
    assert_eq!(truth.len(), 8);
    let mut engine = Engine::new(DetectorConfig {
        fast_path: FastPath::OFF,
        ..DetectorConfig::default()
    });
    let mut out = Vec::new();
    let mut last = Timestamp::MIN;
    for e in Generator::new(spec.clone()) {
        let d = decode(e.json.as_bytes()).unwrap();
        engine.ingest(&d, &mut out);
        last = e.occurred_at;
    }
    engine.finish(&mut out);
    assert_eq!(engine.stats().late, 0);
    // The bursts interleave with background traffic rather than trailing it.
    assert!(truth.iter().all(|b| b.last_at < last));
    let problems: HashSet<(&str, &str)> = out
        .iter()
        .filter(|a| a.level == Level::Problem)
        .map(|a| (a.product_id.as_str(), a.defect_tag.as_str()))
        .collect();
    for b in &truth {
        assert!(
            problems.contains(&(b.product_id.as_str(), b.defect_tag.as_str())),
            "no problem alert for {b:?}"
        );
    }
}

#[test]
fn generated_ground_truth_serializes_as_json_lines() {
    let truth = ground_truth(&spec(10_000));
    assert_eq!(truth.len(), GenSpec::default().bursts as usize);
    for b in &truth {
        let line = serde_json::to_string(b).unwrap();
        assert!(line.contains("\"first_at\":\"20"), "{line}");
        let back: recall_radar::generate::Burst = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, b);
    }
}

#[test]
fn generated_tiny_and_odd_specs_still_work() {
    // Fewer events than the bursts need: only whole bursts that fit.
    let s = GenSpec {
        bursts: 5,
        ..spec(13)
    };
    let truth = ground_truth(&s);
    assert_eq!(truth.len(), 2);
    assert_eq!(Generator::new(s).count(), 13);
    // One product, no gap, no text, no bursts.
    let s = GenSpec {
        products: 1,
        customers: 1,
        mean_gap: Span(0),
        bursts: 0,
        text: false,
        ..spec(100)
    };
    assert!(s.validate().is_ok());
    for e in Generator::new(s.clone()) {
        assert_eq!(e.occurred_at, s.start);
        decode(e.json.as_bytes()).unwrap();
    }
    assert!(GenSpec {
        products: 0,
        ..spec(1)
    }
    .validate()
    .is_err());
    assert!(GenSpec {
        defect_rate: 1.5,
        ..spec(1)
    }
    .validate()
    .is_err());
    // Every key of the only product is a burst key: background defects fall back to routine.
    let s = GenSpec {
        products: 1,
        bursts: 40,
        defect_rate: 1.0,
        mean_gap: Span::from_secs(3600),
        ..spec(300)
    };
    let truth = ground_truth(&s);
    assert_eq!(truth.len(), recall_radar::generate::defect_tags().count());
    let mut per_key: HashMap<String, u32> = HashMap::new();
    for e in Generator::new(s) {
        for tag in decode(e.json.as_bytes()).unwrap().defect_tags {
            *per_key.entry(tag.into_owned()).or_default() += 1;
        }
    }
    for b in &truth {
        assert_eq!(per_key[&b.defect_tag], b.reports, "{b:?}");
    }
    assert_eq!(Generator::new(spec(0)).next(), None);
    assert!(ground_truth(&spec(0)).is_empty());
}

/// Release-mode figures for the report:
/// `cargo test --release --test generate -- --ignored --nocapture`.
#[test]
#[ignore]
fn generated_figures_at_one_million() {
    let spec = GenSpec::default();
    for e in Generator::new(spec.clone()).take(3) {
        println!("{}", e.json);
    }
    // Best of three: the machine may be shared.
    let mut best = f64::MAX;
    let (mut n, mut bytes) = (0u64, 0u64);
    for _ in 0..3 {
        let mut g = Generator::new(spec.clone());
        let t0 = std::time::Instant::now();
        (n, bytes) = (0, 0);
        while let Some(e) = g.next_line() {
            n += 1;
            bytes += e.json.len() as u64;
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "next_line: {n} events in {best:.3}s = {:.0} events/s, {:.1} bytes/event",
        n as f64 / best,
        bytes as f64 / n as f64
    );
    let t0 = std::time::Instant::now();
    let owned = Generator::new(spec.clone()).count();
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "Iterator (owned Strings): {:.0} events/s",
        owned as f64 / dt
    );
    let t0 = std::time::Instant::now();
    write_jsonl(&spec, std::io::sink()).unwrap();
    let dt = t0.elapsed().as_secs_f64();
    println!("write_jsonl to sink: {:.0} events/s", n as f64 / dt);
    let no_text = GenSpec {
        text: false,
        ..spec.clone()
    };
    let mut g = Generator::new(no_text);
    let mut bytes = 0u64;
    while let Some(e) = g.next_line() {
        bytes += e.json.len() as u64;
    }
    println!("without text: {:.1} bytes/event", bytes as f64 / n as f64);
    let t0 = std::time::Instant::now();
    println!("distinct keys in 1M events: {}", distinct_keys(&spec));
    println!("(decode + count took {:.2}s)", t0.elapsed().as_secs_f64());
    let truth = ground_truth(&spec);
    for b in &truth {
        println!("{}", serde_json::to_string(b).unwrap());
    }
    let mut last = Timestamp::MIN;
    for e in Generator::new(spec) {
        last = e.occurred_at;
    }
    println!("last occurred_at: {last}");
}

#[test]
fn generated_routine_reasons_match_config_synthetic_toml() {
    let text = include_str!("../config/synthetic.toml");
    let raw = recall_radar::config::RawConfig::parse(text, "config/synthetic.toml").unwrap();
    let class = &raw.detector.tag_class[0];
    let expected = recall_radar::generate::routine_class();
    assert_eq!(class.tags, expected.tags);
    assert_eq!(class.window, expected.window);
    assert_eq!(class.thresholds, expected.thresholds);
}
