//! Deterministic synthetic contact-center streams, for `recall-radar generate`, the embedded demo,
//! integration tests and benchmarks.
//!
//! A [`GenSpec`] describes the stream: Zipf-popular products, exponential inter-arrival times,
//! mostly routine contact reasons with a small share of real defect tags, and injected defect
//! *bursts*: a (product, defect tag) key that background traffic never carries, reported by
//! `burst_reporters` distinct customers within `burst_span`, some of them twice through a second
//! channel. With the defaults (4 reporters over 2 days) every burst reaches the problem rung of the
//! default ladder (3 distinct reporters in 30 days); [`ground_truth`] lists the bursts without
//! generating the stream. Background defect tags on popular products reach rungs too: they are
//! realistic noise, not ground truth.
//!
//! The same spec gives a byte-identical stream on a given build and platform (ChaCha8 random
//! streams; the Zipf sampler uses the platform's `powf`). The JSON is written by hand into a reused
//! buffer, so generation runs at a few million events per second in release mode.

use std::collections::HashSet;
use std::io::{self, Write};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, Zipf};
use serde::{Deserialize, Serialize};

use crate::event::Channel;
use crate::time::{format_rfc3339, Span, Timestamp, MICROS_PER_DAY, MICROS_PER_SECOND};

/// What to generate. Every field has a sensible default; see [`GenSpec::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct GenSpec {
    /// Seed of every random choice: same spec, same stream.
    pub seed: u64,
    /// How many events to emit in total (background and burst reports).
    pub events: u64,
    /// Catalogue size; product ids are `sku-NNNNNN`.
    pub products: u32,
    /// Zipf exponent of product popularity (>= 0; 0 is uniform).
    pub zipf_exponent: f64,
    /// `occurred_at` of the first background event.
    pub start: Timestamp,
    /// Mean event-time gap between consecutive background events (exponential inter-arrival).
    pub mean_gap: Span,
    /// Size of the customer pool (`cust-NNNNNNN`).
    pub customers: u64,
    /// Number of injected defect bursts, spread evenly over the run by event index.
    pub bursts: u32,
    /// Distinct customers reporting each burst (3 or more reach the problem rung); half of them,
    /// rounded down, report a second time through another channel.
    pub burst_reporters: u32,
    /// Event time one burst spreads over; keep it well inside the detector window (30 days).
    /// A run shorter than this squeezes its bursts into the run's expected duration.
    pub burst_span: Span,
    /// Share of background events that carry a real defect tag instead of a routine reason.
    pub defect_rate: f64,
    /// Include a short free-text field (events average ~260 bytes with it, ~215 without).
    pub text: bool,
}

impl Default for GenSpec {
    fn default() -> Self {
        GenSpec {
            seed: 42,
            events: 1_000_000,
            products: 20_000,
            zipf_exponent: 1.1,
            // 2026-01-01T00:00:00Z
            start: Timestamp(1_767_225_600 * MICROS_PER_SECOND),
            // 1M events span about 58 days.
            mean_gap: Span::from_secs(5),
            customers: 200_000,
            bursts: 10,
            burst_reporters: 4,
            burst_span: Span::from_days(2),
            defect_rate: 0.02,
            text: true,
        }
    }
}

impl GenSpec {
    /// Says what is wrong with a spec. [`Generator::new`] and [`ground_truth`] never fail: they
    /// clamp out-of-range values (at least one product and customer, rates into 0..=1, negative
    /// spans to zero), which is rarely what the caller meant.
    pub fn validate(&self) -> Result<(), String> {
        if self.products == 0 {
            return Err("products must be at least 1".into());
        }
        if self.customers == 0 {
            return Err("customers must be at least 1".into());
        }
        if !(self.zipf_exponent >= 0.0 && self.zipf_exponent.is_finite()) {
            return Err(format!(
                "zipf exponent must be a finite number >= 0, got {}",
                self.zipf_exponent
            ));
        }
        if !(0.0..=1.0).contains(&self.defect_rate) {
            return Err(format!(
                "defect rate must be between 0 and 1, got {}",
                self.defect_rate
            ));
        }
        if self.mean_gap.0 < 0 || self.burst_span.0 < 0 {
            return Err("mean gap and burst span must not be negative".into());
        }
        if self.bursts > 0 && self.burst_reporters == 0 {
            return Err("bursts need at least 1 reporter each".into());
        }
        Ok(())
    }

    fn normalized(&self) -> GenSpec {
        let zipf = if self.zipf_exponent >= 0.0 && self.zipf_exponent.is_finite() {
            self.zipf_exponent
        } else {
            0.0
        };
        let defect_rate = if self.defect_rate.is_nan() {
            0.0
        } else {
            self.defect_rate.clamp(0.0, 1.0)
        };
        GenSpec {
            products: self.products.max(1),
            customers: self.customers.max(1),
            zipf_exponent: zipf,
            defect_rate,
            mean_gap: Span(self.mean_gap.0.max(0)),
            burst_span: Span(self.burst_span.0.max(0)),
            ..self.clone()
        }
    }
}

/// Routine contact reasons: (tag, relative weight, texts).
const ROUTINE: &[(&str, u32, &[&str])] = &[
    (
        "billing",
        16,
        &[
            "Asks about a charge on the last invoice",
            "Card was billed twice for one order",
        ],
    ),
    (
        "delivery-status",
        18,
        &[
            "Parcel shows delivered, never arrived",
            "Asks when the order will ship",
        ],
    ),
    (
        "setup-help",
        14,
        &[
            "Needs help pairing the unit with the app",
            "Walked through the first-time setup",
        ],
    ),
    (
        "returns",
        10,
        &[
            "Wants to return an unopened gift",
            "Asks for a prepaid return label",
        ],
    ),
    (
        "account",
        8,
        &[
            "Cannot log in after a password reset",
            "Wants to update the email on file",
        ],
    ),
    (
        "warranty-question",
        6,
        &["Asks how long the warranty lasts"],
    ),
    ("order-change", 6, &["Wants to change the delivery address"]),
    ("refund-status", 6, &["Refund has not shown up on the card"]),
    (
        "product-question",
        8,
        &["Asks if the parts are dishwasher safe"],
    ),
    (
        "compatibility",
        4,
        &["Asks if it works with the older model"],
    ),
    (
        "replacement-part",
        4,
        &["Needs a replacement filter cartridge"],
    ),
    ("manual-request", 3, &["Lost the manual, wants a PDF copy"]),
    ("price-match", 3, &["Saw a lower price, asks for a match"]),
    (
        "cancellation",
        4,
        &["Wants to cancel an order placed by mistake"],
    ),
];

/// Real defect tags: (tag, texts).
const DEFECTS: &[(&str, &[&str])] = &[
    (
        "overheating",
        &["Too hot to touch after ten minutes of use"],
    ),
    (
        "battery-swelling",
        &["Battery bulged and pushed the cover off"],
    ),
    (
        "lid-latch",
        &["Lid popped open while boiling, scalded hand"],
    ),
    ("power-failure", &["Stopped turning on after a week"]),
    ("leak", &["Water pools under the base after use"]),
    ("sharp-edge", &["Cut a finger on the housing edge"]),
    ("smoke", &["Smoke came out of the vents"]),
    ("display-dead", &["Display shows \"E4\" then goes blank"]),
    ("cracked-housing", &["Housing cracked along the seam"]),
    ("loose-wiring", &["Cord sparks where it enters the base"]),
    ("strong-odor", &["Burning plastic smell when it runs"]),
    (
        "noise-rattle",
        &["Loud rattle, something came loose inside"],
    ),
    (
        "button-stuck",
        &["Power button sticks, will not switch off"],
    ),
    ("door-hinge", &["Door hinge snapped on the second day"]),
];

/// The routine contact reasons background traffic uses.
pub fn routine_tags() -> impl Iterator<Item = &'static str> {
    ROUTINE.iter().map(|r| r.0)
}

/// The tag class a deployment would give the generator's routine contact reasons (billing,
/// delivery...): they are not defects, so only a flood within a day should alert. The demo and
/// the benchmarks run with it; without it every popular product climbs the ladder on billing.
pub fn routine_class() -> crate::config::RawTagClass {
    crate::config::RawTagClass {
        name: "routine".into(),
        tags: routine_tags().map(str::to_owned).collect(),
        patterns: Vec::new(),
        window: Some("1d".into()),
        thresholds: Some(crate::config::Thresholds {
            anomaly: 100,
            pattern: 200,
            problem: 400,
        }),
    }
}

/// The real defect tags background traffic (at `defect_rate`) and bursts use.
pub fn defect_tags() -> impl Iterator<Item = &'static str> {
    DEFECTS.iter().map(|d| d.0)
}

const REGIONS: &[&str] = &[
    "US-CA", "US-TX", "US-NY", "US-FL", "US-IL", "US-PA", "US-OH", "US-GA", "US-WA", "US-MA",
    "CA-ON", "CA-QC", "CA-BC", "GB-ENG", "GB-SCT", "DE-BY", "DE-NW", "FR-IDF", "MX-CMX", "AU-NSW",
];

/// Background channel mix, per mille: call, chat, email, web, social, mail.
const CHANNELS: &[(Channel, u32)] = &[
    (Channel::Call, 400),
    (Channel::Chat, 250),
    (Channel::Email, 200),
    (Channel::Web, 70),
    (Channel::Social, 50),
    (Channel::Mail, 30),
];

/// Channel pairs of a customer who reports a burst twice: first, then second.
const REPEAT_CHANNELS: &[(Channel, Channel)] = &[
    (Channel::Call, Channel::Chat),
    (Channel::Chat, Channel::Email),
    (Channel::Email, Channel::Call),
    (Channel::Call, Channel::Web),
];

/// One injected defect burst: the ground truth a detector should find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Burst {
    pub product_id: String,
    pub defect_tag: String,
    /// `occurred_at` of the first and last burst report.
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    /// Distinct customers who reported it.
    pub reporters: u32,
    /// Events it contributed (reporters plus repeat reports).
    pub reports: u32,
}

/// One generated event: a contact-event v1 JSON line (no trailing newline) and what a consumer
/// needs without decoding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedEvent {
    pub occurred_at: Timestamp,
    pub product_id: String,
    pub json: String,
}

/// A generated event borrowed from the generator's buffers; see [`Generator::next_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub occurred_at: Timestamp,
    pub product_id: &'a str,
    pub json: &'a str,
}

/// SplitMix64 finalizer: a cheap, well-mixed 64-bit hash.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded bijection of `0..n` (a 4-round Feistel network with cycle walking), so that popular
/// ranks map to scattered product numbers without a table.
#[derive(Debug, Clone)]
struct Permutation {
    n: u64,
    half: u32,
    mask: u64,
    keys: [u64; 4],
}

impl Permutation {
    fn new(n: u64, seed: u64) -> Permutation {
        let bits = if n <= 1 {
            0
        } else {
            64 - (n - 1).leading_zeros()
        };
        let half = bits.div_ceil(2).max(1);
        let mut keys = [0; 4];
        for (i, k) in keys.iter_mut().enumerate() {
            *k = mix64(seed ^ 0x5eed_0f9e_3779_b97f ^ ((i as u64 + 1) << 56));
        }
        Permutation {
            n,
            half,
            mask: (1u64 << half) - 1,
            keys,
        }
    }

    fn apply(&self, mut x: u64) -> u64 {
        loop {
            let (mut l, mut r) = (x >> self.half, x & self.mask);
            for k in self.keys {
                let f = mix64(r ^ k) & self.mask;
                (l, r) = (r, l ^ f);
            }
            x = (l << self.half) | r;
            if x < self.n {
                return x;
            }
        }
    }
}

/// One burst report, fully decided before the stream starts.
#[derive(Debug, Clone)]
struct BurstReport {
    at: Timestamp,
    burst: u32,
    customer: u64,
    channel: Channel,
    region: u8,
    incident_days_before: u8,
}

#[derive(Debug, Clone)]
struct PlannedBurst {
    rank: u64,
    tag: u16,
    lot: (u16, u8),
    reporters: u32,
    reports: u32,
    first_at: Timestamp,
    last_at: Timestamp,
}

/// Everything about the bursts, drawn from its own random stream so that it does not depend on
/// the background and can be computed without generating the stream.
#[derive(Debug, Clone)]
struct Plan {
    bursts: Vec<PlannedBurst>,
    /// Sorted by time.
    reports: Vec<BurstReport>,
    background: u64,
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

const BACKGROUND_STREAM: u64 = 0;
const BURST_STREAM: u64 = 1;

fn pick_routine(roll: u32) -> usize {
    let mut acc = 0;
    for (i, r) in ROUTINE.iter().enumerate() {
        acc += r.1;
        if roll < acc {
            return i;
        }
    }
    0
}

fn pick_channel(roll: u32) -> Channel {
    let mut acc = 0;
    for &(c, w) in CHANNELS {
        acc += w;
        if roll < acc {
            return c;
        }
    }
    Channel::Call
}

fn plan(spec: &GenSpec) -> Plan {
    let reporters = spec.burst_reporters;
    let repeaters = reporters / 2;
    let per_burst = u64::from(reporters) + u64::from(repeaters);
    let key_space = u64::from(spec.products) * DEFECTS.len() as u64;
    let count = spec
        .events
        .checked_div(per_burst)
        .map_or(0, |fit| u64::from(spec.bursts).min(fit).min(key_space));
    let background = spec.events - count * per_burst;
    // Expected event time of the whole run; a burst never spreads over more than that.
    let duration = (background.saturating_sub(1) as i64).saturating_mul(spec.mean_gap.0);
    let span = spec.burst_span.0.min(duration);
    let mut rng = rng_for(spec.seed, BURST_STREAM);
    let domain = spec.customers.max(u64::from(reporters));
    let mut bursts = Vec::with_capacity(count as usize);
    let mut reports = Vec::with_capacity((count * per_burst) as usize);
    for b in 0..count {
        // A key no other burst uses; background traffic avoids all of them.
        let (rank, tag) = loop {
            let rank = rng.gen_range(0..u64::from(spec.products));
            let tag = rng.gen_range(0..DEFECTS.len()) as u16;
            if !bursts
                .iter()
                .any(|p: &PlannedBurst| p.rank == rank && p.tag == tag)
            {
                break (rank, tag);
            }
        };
        let lot = (rng.gen_range(2024..=2026u16), rng.gen_range(1..=52u8));
        // Centred on evenly spaced event indexes (the background clock passes index i near
        // start + i * mean_gap), and kept inside the run's expected time.
        let centre = ((2 * b + 1) as u128 * duration as u128 / (2 * count) as u128) as i64;
        let anchor = spec
            .start
            .0
            .saturating_add((centre - span / 2).clamp(0, duration - span));
        let mut customers: Vec<u64> = Vec::with_capacity(reporters as usize);
        let mut distinct = HashSet::with_capacity(reporters as usize);
        while customers.len() < reporters as usize {
            let c = rng.gen_range(0..domain);
            if distinct.insert(c) {
                customers.push(c);
            }
        }
        let first = reports.len();
        for (i, &customer) in customers.iter().enumerate() {
            let at = anchor.saturating_add(rng.gen_range(0..=span));
            let region = rng.gen_range(0..REGIONS.len()) as u8;
            // The first `repeaters` customers (a random set: customers are random) call back.
            let (channel, second) = if (i as u32) < repeaters {
                let (a, b) = REPEAT_CHANNELS[rng.gen_range(0..REPEAT_CHANNELS.len())];
                (a, Some(b))
            } else {
                (pick_channel(rng.gen_range(0..1000)), None)
            };
            reports.push(BurstReport {
                at: Timestamp(at),
                burst: b as u32,
                customer,
                channel,
                region,
                incident_days_before: rng.gen_range(0..=3),
            });
            if let Some(channel) = second {
                let later = rng.gen_range(at..=anchor.saturating_add(span));
                reports.push(BurstReport {
                    at: Timestamp(later),
                    burst: b as u32,
                    customer,
                    channel,
                    region,
                    incident_days_before: rng.gen_range(0..=3),
                });
            }
        }
        let mine = &reports[first..];
        bursts.push(PlannedBurst {
            rank,
            tag,
            lot,
            reporters,
            reports: mine.len() as u32,
            first_at: mine.iter().map(|r| r.at).min().unwrap_or(Timestamp(anchor)),
            last_at: mine.iter().map(|r| r.at).max().unwrap_or(Timestamp(anchor)),
        });
    }
    reports.sort_by_key(|r| (r.at, r.burst));
    Plan {
        background,
        bursts,
        reports,
    }
}

fn product_number_width(products: u32) -> usize {
    let digits = (products.max(1) - 1).checked_ilog10().unwrap_or(0) as usize + 1;
    digits.max(6)
}

fn customer_number_width(customers: u64) -> usize {
    let digits = (customers.max(1) - 1).checked_ilog10().unwrap_or(0) as usize + 1;
    digits.max(7)
}

/// The injected bursts of `spec`, in their order over the run, without generating the stream.
pub fn ground_truth(spec: &GenSpec) -> Vec<Burst> {
    let spec = spec.normalized();
    let perm = Permutation::new(u64::from(spec.products), spec.seed);
    let width = product_number_width(spec.products);
    let plan = plan(&spec);
    plan.bursts
        .iter()
        .map(|b| Burst {
            product_id: product_id(perm.apply(b.rank), width),
            defect_tag: DEFECTS[b.tag as usize].0.to_owned(),
            first_at: b.first_at,
            last_at: b.last_at,
            reporters: b.reporters,
            reports: b.reports,
        })
        .collect()
}

fn push_padded(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    out.extend_from_slice(&buf[start..]);
}

fn push_product(out: &mut Vec<u8>, number: u64, width: usize) {
    out.extend_from_slice(b"sku-");
    push_padded(out, number, width);
}

fn product_id(number: u64, width: usize) -> String {
    let mut out = Vec::with_capacity(16);
    push_product(&mut out, number, width);
    String::from_utf8(out).expect("ASCII")
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

fn json_literal(s: &str) -> Box<[u8]> {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_json_str(&mut out, s);
    out.into_boxed_slice()
}

/// A tag: index into [`ROUTINE`], then [`DEFECTS`] after it.
type TagIndex = u8;

fn defect_tag_index(defect: usize) -> TagIndex {
    (ROUTINE.len() + defect) as TagIndex
}

const RETURNS: TagIndex = 3;

/// Every constant string of the output, escaped once.
struct Literals {
    tags: Vec<Box<[u8]>>,
    /// Per tag, its texts.
    texts: Vec<Vec<Box<[u8]>>>,
    regions: Vec<Box<[u8]>>,
}

fn literals() -> &'static Literals {
    static LITERALS: std::sync::OnceLock<Literals> = std::sync::OnceLock::new();
    LITERALS.get_or_init(|| {
        let all = ROUTINE
            .iter()
            .map(|r| (r.0, r.2))
            .chain(DEFECTS.iter().copied());
        let (mut tags, mut texts) = (Vec::new(), Vec::new());
        for (tag, tag_texts) in all {
            tags.push(json_literal(tag));
            texts.push(tag_texts.iter().map(|t| json_literal(t)).collect());
        }
        Literals {
            tags,
            texts,
            regions: REGIONS.iter().map(|r| json_literal(r)).collect(),
        }
    })
}

/// Formats timestamps like [`format_rfc3339`], caching the date of the current day.
#[derive(Debug, Clone)]
struct TimeFormatter {
    day: i64,
    /// `YYYY-MM-DD` of `day`.
    date: Vec<u8>,
}

impl TimeFormatter {
    fn new() -> TimeFormatter {
        TimeFormatter {
            day: i64::MIN,
            date: Vec::new(),
        }
    }

    fn date(&mut self, day: i64) -> &[u8] {
        if day != self.day {
            let full = format_rfc3339(Timestamp(day.saturating_mul(MICROS_PER_DAY)));
            let end = full.find('T').unwrap_or(full.len());
            self.date.clear();
            self.date.extend_from_slice(&full.as_bytes()[..end]);
            self.day = day;
        }
        &self.date
    }

    fn push(&mut self, out: &mut Vec<u8>, t: Timestamp) {
        let secs = t.0.div_euclid(MICROS_PER_SECOND);
        let micros = t.0.rem_euclid(MICROS_PER_SECOND);
        let (day, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        out.extend_from_slice(self.date(day));
        let (h, m, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
        let two = |v: i64| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
        let [h1, h2] = two(h);
        let [m1, m2] = two(m);
        let [s1, s2] = two(s);
        out.extend_from_slice(&[b'T', h1, h2, b':', m1, m2, b':', s1, s2]);
        if micros != 0 {
            out.push(b'.');
            if micros % 1000 == 0 {
                push_padded(out, (micros / 1000) as u64, 3);
            } else {
                push_padded(out, micros as u64, 6);
            }
        }
        out.push(b'Z');
    }
}

/// What one event carries, before it is written.
struct Draft {
    at: Timestamp,
    channel: Channel,
    customer: Option<u64>,
    product: u64,
    tags: [Option<TagIndex>; 2],
    lot: Option<(u16, u8)>,
    region: Option<u8>,
    severity: Option<(u32, bool)>,
    incident_day: Option<i64>,
    /// (tag, index among its texts)
    text: (TagIndex, u8),
}

/// Catalogues up to this size keep their rank -> product number map in a table.
const PRODUCT_TABLE_MAX: u32 = 1 << 20;

/// The stream of a [`GenSpec`]: background traffic merged in time order with the planned burst
/// reports. `occurred_at` never decreases.
#[derive(Debug, Clone)]
pub struct Generator {
    spec: GenSpec,
    rng: ChaCha8Rng,
    zipf: Zipf<f64>,
    perm: Permutation,
    /// `perm` precomputed, for catalogues up to [`PRODUCT_TABLE_MAX`].
    product_table: Vec<u32>,
    product_width: usize,
    customer_width: usize,
    routine_total: u32,
    /// Defect-tag threshold on a 32-bit roll.
    defect_cut: u64,
    plan: Plan,
    next_burst: usize,
    background_left: u64,
    next_background_at: Timestamp,
    emitted: u64,
    id_prefix: String,
    clock: TimeFormatter,
    /// The current line, and where its product id is in it.
    json: Vec<u8>,
    product_at: (usize, usize),
}

impl Generator {
    /// A generator at the start of the stream. Out-of-range fields are clamped (see
    /// [`GenSpec::validate`]); the bursts are planned here, the background as it is pulled.
    pub fn new(spec: GenSpec) -> Generator {
        let spec = spec.normalized();
        let plan = plan(&spec);
        let zipf = Zipf::new(u64::from(spec.products), spec.zipf_exponent)
            .expect("normalized spec has products >= 1 and exponent >= 0");
        let perm = Permutation::new(u64::from(spec.products), spec.seed);
        let product_table = if spec.products <= PRODUCT_TABLE_MAX {
            (0..u64::from(spec.products))
                .map(|rank| perm.apply(rank) as u32)
                .collect()
        } else {
            Vec::new()
        };
        Generator {
            rng: rng_for(spec.seed, BACKGROUND_STREAM),
            zipf,
            perm,
            product_table,
            product_width: product_number_width(spec.products),
            customer_width: customer_number_width(spec.customers),
            routine_total: ROUTINE.iter().map(|r| r.1).sum(),
            defect_cut: (spec.defect_rate * 4_294_967_296.0) as u64,
            next_burst: 0,
            background_left: plan.background,
            next_background_at: spec.start,
            emitted: 0,
            plan,
            id_prefix: format!("c-{:04x}-", mix64(spec.seed) & 0xffff),
            clock: TimeFormatter::new(),
            json: Vec::with_capacity(512),
            product_at: (0, 0),
            spec,
        }
    }

    /// The (normalized) spec this generator follows.
    pub fn spec(&self) -> &GenSpec {
        &self.spec
    }

    /// Events not yet emitted.
    pub fn remaining(&self) -> u64 {
        self.background_left + (self.plan.reports.len() - self.next_burst) as u64
    }

    /// The next event, borrowed from internal buffers that the following call reuses: the
    /// allocation-free way to drive the generator (benchmarks, [`write_jsonl`]).
    pub fn next_line(&mut self) -> Option<EventRef<'_>> {
        let burst = match self.plan.reports.get(self.next_burst) {
            Some(r) if self.background_left == 0 || r.at <= self.next_background_at => true,
            _ if self.background_left > 0 => false,
            _ => return None,
        };
        let draft = if burst {
            self.burst_event()
        } else {
            self.background_event()
        };
        self.write(&draft);
        self.emitted += 1;
        let json = std::str::from_utf8(&self.json).expect("only UTF-8 pieces are written");
        Some(EventRef {
            occurred_at: draft.at,
            product_id: &json[self.product_at.0..self.product_at.1],
            json,
        })
    }

    fn product_number(&self, rank: u64) -> u64 {
        match self.product_table.get(rank as usize) {
            Some(&n) => u64::from(n),
            None => self.perm.apply(rank),
        }
    }

    fn background_event(&mut self) -> Draft {
        let at = self.next_background_at;
        self.background_left -= 1;
        let rng = &mut self.rng;
        if self.background_left > 0 && self.spec.mean_gap.0 > 0 {
            let e: f64 = Exp1.sample(rng);
            let gap = (e * self.spec.mean_gap.0 as f64).round() as i64;
            self.next_background_at = Timestamp(at.0.saturating_add(gap));
        }
        let rank = (self.zipf.sample(rng) as u64)
            .saturating_sub(1)
            .min(u64::from(self.spec.products) - 1);
        // Yes/no decisions from independent 10-bit slices of two draws.
        let (a, b): (u64, u64) = (rng.gen(), rng.gen());
        let chance = |bits: u64, shift: u32, per_mille: u64| {
            (bits >> shift) & 0x3ff < per_mille * 1024 / 1000
        };
        // A defect tag, never one that makes a burst key: those are reserved for the bursts.
        let defect = ((a & 0xffff_ffff) < self.defect_cut)
            .then(|| {
                let first = rng.gen_range(0..DEFECTS.len());
                (0..DEFECTS.len())
                    .map(|step| (first + step) % DEFECTS.len())
                    .find(|&tag| {
                        !self
                            .plan
                            .bursts
                            .iter()
                            .any(|p| p.rank == rank && usize::from(p.tag) == tag)
                    })
            })
            .flatten();
        let channel = pick_channel(rng.gen_range(0..1000));
        let customer = if chance(a, 32, 50) {
            None
        } else {
            Some(rng.gen_range(0..self.spec.customers))
        };
        let (tags, text, severity, incident_day) = if let Some(tag) = defect {
            let severity = if chance(a, 42, 30) {
                (1, false)
            } else {
                (0, chance(a, 52, 10))
            };
            let incident =
                chance(b, 0, 600).then(|| at.0.div_euclid(MICROS_PER_DAY) - rng.gen_range(0..=7));
            let second = chance(b, 10, 300).then_some(RETURNS);
            let tag = defect_tag_index(tag);
            ([Some(tag), second], (tag, 0), Some(severity), incident)
        } else {
            let first = pick_routine(rng.gen_range(0..self.routine_total));
            let second = if chance(b, 10, 200) {
                let other = pick_routine(rng.gen_range(0..self.routine_total));
                (other != first).then_some(other as TagIndex)
            } else {
                None
            };
            let text = ((b >> 63) as usize % ROUTINE[first].2.len()) as u8;
            let first = first as TagIndex;
            let severity = chance(a, 42, 50).then_some((0, false));
            ([Some(first), second], (first, text), severity, None)
        };
        let lot =
            (!chance(b, 20, 150)).then(|| (rng.gen_range(2024..=2026u16), rng.gen_range(1..=52u8)));
        let region = (!chance(b, 30, 100)).then(|| rng.gen_range(0..REGIONS.len()) as u8);
        Draft {
            at,
            channel,
            customer,
            product: self.product_number(rank),
            tags,
            lot,
            region,
            severity,
            incident_day,
            text,
        }
    }

    fn burst_event(&mut self) -> Draft {
        let r = &self.plan.reports[self.next_burst];
        self.next_burst += 1;
        let b = &self.plan.bursts[r.burst as usize];
        let tag = defect_tag_index(usize::from(b.tag));
        Draft {
            at: r.at,
            channel: r.channel,
            customer: Some(r.customer),
            product: self.product_number(b.rank),
            tags: [Some(tag), None],
            lot: Some(b.lot),
            region: Some(r.region),
            severity: Some((0, false)),
            incident_day: Some(
                r.at.0.div_euclid(MICROS_PER_DAY) - i64::from(r.incident_days_before),
            ),
            text: (tag, 0),
        }
    }

    fn write(&mut self, d: &Draft) {
        let lit = literals();
        let out = &mut self.json;
        out.clear();
        out.extend_from_slice(b"{\"event_id\":\"");
        out.extend_from_slice(self.id_prefix.as_bytes());
        push_padded(out, self.emitted, 9);
        out.extend_from_slice(b"\",\"occurred_at\":\"");
        self.clock.push(out, d.at);
        out.extend_from_slice(b"\",\"channel\":\"");
        out.extend_from_slice(d.channel.as_str().as_bytes());
        out.push(b'"');
        if let Some(c) = d.customer {
            out.extend_from_slice(b",\"customer_id\":\"cust-");
            push_padded(out, c, self.customer_width);
            out.push(b'"');
        }
        out.extend_from_slice(b",\"product_id\":\"");
        let start = out.len();
        push_product(out, d.product, self.product_width);
        self.product_at = (start, out.len());
        out.extend_from_slice(b"\",\"defect_tags\":[");
        for (i, &tag) in d.tags.iter().flatten().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&lit.tags[usize::from(tag)]);
        }
        out.push(b']');
        if let Some((year, week)) = d.lot {
            out.extend_from_slice(b",\"lot\":\"L");
            push_padded(out, u64::from(year), 4);
            out.push(b'-');
            push_padded(out, u64::from(week), 2);
            out.push(b'"');
        }
        if let Some(region) = d.region {
            out.extend_from_slice(b",\"region\":");
            out.extend_from_slice(&lit.regions[usize::from(region)]);
        }
        if let Some((injuries, fire)) = d.severity {
            out.extend_from_slice(b",\"severity\":{\"injuries\":");
            push_padded(out, u64::from(injuries), 1);
            out.extend_from_slice(b",\"deaths\":0,\"fire\":");
            out.extend_from_slice(if fire { b"true" } else { b"false" });
            out.extend_from_slice(b",\"crash\":false}");
        }
        if let Some(day) = d.incident_day {
            out.extend_from_slice(b",\"incident_date\":\"");
            out.extend_from_slice(self.clock.date(day));
            out.push(b'"');
        }
        if self.spec.text {
            out.extend_from_slice(b",\"text\":");
            out.extend_from_slice(&lit.texts[usize::from(d.text.0)][usize::from(d.text.1)]);
        }
        out.push(b'}');
    }
}

impl Iterator for Generator {
    type Item = GeneratedEvent;

    fn next(&mut self) -> Option<GeneratedEvent> {
        self.next_line().map(|e| GeneratedEvent {
            occurred_at: e.occurred_at,
            product_id: e.product_id.to_owned(),
            json: e.json.to_owned(),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining()).unwrap_or(usize::MAX);
        (n, usize::try_from(self.remaining()).ok())
    }
}

impl std::iter::FusedIterator for Generator {}

/// Writes the stream of `spec` as JSON lines; returns the number of events written.
/// Output is buffered here, so an unbuffered writer is fine.
pub fn write_jsonl<W: Write>(spec: &GenSpec, mut writer: W) -> io::Result<u64> {
    const CHUNK: usize = 1 << 16;
    let mut generator = Generator::new(spec.clone());
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 1024);
    let mut n = 0u64;
    while let Some(e) = generator.next_line() {
        buf.extend_from_slice(e.json.as_bytes());
        buf.push(b'\n');
        n += 1;
        if buf.len() >= CHUNK {
            writer.write_all(&buf)?;
            buf.clear();
        }
    }
    writer.write_all(&buf)?;
    writer.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 3, 7, 16, 1000, 20_000] {
            let p = Permutation::new(n, 9);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = p.apply(x);
                assert!(y < n);
                assert!(!seen[y as usize], "n={n}: {y} twice");
                seen[y as usize] = true;
            }
        }
    }

    #[test]
    fn product_table_matches_the_permutation() {
        let g = Generator::new(GenSpec {
            products: 3000,
            events: 0,
            ..GenSpec::default()
        });
        assert_eq!(g.product_table.len(), 3000);
        for rank in 0..3000 {
            assert_eq!(
                u64::from(g.product_table[rank as usize]),
                g.perm.apply(rank)
            );
        }
    }

    #[test]
    fn time_formatter_matches_format_rfc3339() {
        let mut f = TimeFormatter::new();
        for t in [
            0i64,
            1,
            999,
            1000,
            1_767_225_600_000_000,
            1_767_225_600_123_000,
            1_767_225_600_123_456,
            1_795_338_843_000_000,
            -1,
        ] {
            let mut s = Vec::new();
            f.push(&mut s, Timestamp(t));
            assert_eq!(String::from_utf8(s).unwrap(), format_rfc3339(Timestamp(t)));
        }
    }

    #[test]
    fn escaper_round_trips() {
        for s in [
            "plain",
            "say \"E4\"",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "é✓",
        ] {
            let back: String = serde_json::from_slice(&json_literal(s)).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn padding() {
        let mut s = Vec::new();
        push_padded(&mut s, 42, 6);
        push_padded(&mut s, 0, 1);
        push_padded(&mut s, 1_234_567, 3);
        assert_eq!(s, b"00004201234567");
        assert_eq!(product_id(4211, 6), "sku-004211");
        assert_eq!(product_id(1_234_567, 7), "sku-1234567");
    }
}
