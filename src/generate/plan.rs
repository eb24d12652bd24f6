//! Burst planning: every injected burst and each of its reports, decided before the stream starts
//! from the burst random stream, so that [`super::ground_truth`] needs no background.

use std::collections::HashSet;

use rand::Rng;

use super::random::{rng_for, BURST_STREAM};
use super::vocabulary::{pick_channel, DEFECTS, REGIONS, REPEAT_CHANNELS};
use super::GenSpec;
use crate::event::Channel;
use crate::time::Timestamp;

/// One burst report, fully decided before the stream starts.
#[derive(Debug, Clone)]
pub(super) struct BurstReport {
    pub(super) at: Timestamp,
    pub(super) burst: u32,
    pub(super) customer: u64,
    pub(super) channel: Channel,
    pub(super) region: u8,
    pub(super) incident_days_before: u8,
}

#[derive(Debug, Clone)]
pub(super) struct PlannedBurst {
    pub(super) rank: u64,
    pub(super) tag: u16,
    pub(super) lot: (u16, u8),
    pub(super) reporters: u32,
    pub(super) reports: u32,
    pub(super) first_at: Timestamp,
    pub(super) last_at: Timestamp,
}

/// Everything about the bursts, drawn from its own random stream so that it does not depend on
/// the background and can be computed without generating the stream.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) bursts: Vec<PlannedBurst>,
    /// Sorted by time.
    pub(super) reports: Vec<BurstReport>,
    pub(super) background: u64,
}

pub(super) fn plan(spec: &GenSpec) -> Plan {
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
