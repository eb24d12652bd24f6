//! Drafting events: what one event carries, drawn from the background random stream or taken
//! from a planned burst report, before it is written as JSON.

use rand::Rng;
use rand_distr::{Distribution, Exp1};

use super::vocabulary::{
    defect_tag_index, pick_channel, pick_routine, TagIndex, DEFECTS, REGIONS, RETURNS, ROUTINE,
};
use super::Generator;
use crate::event::Channel;
use crate::time::{Timestamp, MICROS_PER_DAY};

/// What one event carries, before it is written.
pub(super) struct Draft {
    pub(super) at: Timestamp,
    pub(super) channel: Channel,
    pub(super) customer: Option<u64>,
    pub(super) product: u64,
    pub(super) tags: [Option<TagIndex>; 2],
    pub(super) lot: Option<(u16, u8)>,
    pub(super) region: Option<u8>,
    pub(super) severity: Option<(u32, bool)>,
    pub(super) incident_day: Option<i64>,
    /// (tag, index among its texts)
    pub(super) text: (TagIndex, u8),
}

impl Generator {
    pub(super) fn background_event(&mut self) -> Draft {
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

    pub(super) fn burst_event(&mut self) -> Draft {
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
}
