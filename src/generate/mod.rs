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
//!
//! # Layout
//! - this file: [`Generator`], the stream in time order, and the public functions over it.
//! - `spec`: [`GenSpec`], its defaults, validation and clamping.
//! - `vocabulary`: tags, texts, regions and channel mixes, and the weighted picks over them.
//! - `random`: the seeded random streams and the rank-to-product permutation.
//! - `plan`: the bursts and their reports, planned before the stream starts.
//! - `draft`: what one background or burst event carries.
//! - `json`: the hand-written JSON line.

mod draft;
mod json;
mod plan;
mod random;
mod spec;
mod vocabulary;

use std::io::{self, Write};

use rand_chacha::ChaCha8Rng;
use rand_distr::Zipf;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

use json::{customer_number_width, product_id, product_number_width, TimeFormatter};
use plan::{plan, Plan};
use random::{mix64, rng_for, Permutation, BACKGROUND_STREAM};
use vocabulary::{DEFECTS, ROUTINE};

pub use spec::GenSpec;
pub use vocabulary::{defect_tags, routine_class, routine_tags};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
