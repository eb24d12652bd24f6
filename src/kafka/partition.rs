//! The state of one input partition: its own engine (so partitions can move between instances),
//! the offsets whose events are not yet final, and the idle clock of a quiet partition.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::alert::Alert;
use crate::engine::{Engine, EngineStats};
use crate::policy::Policy;
use crate::time::{Span, Timestamp};

pub struct PartitionState {
    pub engine: Engine,
    /// Offsets in order with the event time the engine must pass before they are final;
    /// `Timestamp::MIN` for messages nothing waits on (bad, late, duplicate).
    pending: VecDeque<(i64, Timestamp)>,
    /// Wall-clock instant up to which the event-time clock has been moved.
    clock_synced: Instant,
    /// The fetcher reached the end of the partition at least once since assignment.
    pub caught_up: bool,
    /// The fetcher is at the end of the partition: nothing consumed since it said so. Only then
    /// is the partition quiet; a stall with messages still queued is not.
    pub at_end: bool,
    /// Engine totals already reported to the metrics.
    pub reported: EngineStats,
}

impl PartitionState {
    pub fn new(policy: Policy, now: Instant) -> PartitionState {
        PartitionState {
            engine: Engine::with_policy(policy),
            pending: VecDeque::new(),
            clock_synced: now,
            caught_up: false,
            at_end: false,
            reported: EngineStats::default(),
        }
    }

    /// Remembers a consumed offset and what must become final before it may be committed.
    pub fn track(&mut self, offset: i64, waits_for: Option<Timestamp>, now: Instant) {
        self.pending
            .push_back((offset, waits_for.unwrap_or(Timestamp::MIN)));
        self.clock_synced = now;
        self.at_end = false;
    }

    /// The highest offset whose events, and all before it, are final now.
    pub fn take_final(&mut self) -> Option<i64> {
        let frontier = self.engine.frontier();
        let mut last = None;
        while let Some(&(offset, at)) = self.pending.front() {
            if at >= frontier {
                break;
            }
            last = Some(offset);
            self.pending.pop_front();
        }
        last
    }

    /// Offsets consumed but not yet final.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A quiet partition's event-time clock moves on by the wall-clock time that passed since it
    /// last moved (never a jump to the current time), so quiet keys still resolve. Quiet means
    /// at the end of the partition for at least `quiet`: while messages wait in the fetch queue
    /// the clock stays, or those messages would turn late.
    pub fn idle_advance(&mut self, now: Instant, quiet: Duration, out: &mut Vec<Alert>) {
        let elapsed = now.saturating_duration_since(self.clock_synced);
        if !self.at_end || elapsed < quiet {
            return;
        }
        self.clock_synced = now;
        if let Some(w) = self.engine.watermark() {
            let step = Span(elapsed.as_micros().min(i64::MAX as u128) as i64);
            self.engine.advance_to(w.saturating_add(step), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DetectorConfig, RawDetector};
    use crate::event::decode;

    fn state(lateness: &str) -> PartitionState {
        let raw = RawDetector {
            allowed_lateness: lateness.into(),
            ..Default::default()
        };
        PartitionState::new(
            Policy::new(DetectorConfig::from_raw(&raw).unwrap()),
            Instant::now(),
        )
    }

    fn event(id: &str, at: &str) -> String {
        format!(
            r#"{{"event_id":"{id}","occurred_at":"{at}","channel":"call","customer_id":"{id}","product_id":"p","defect_tags":["t"]}}"#
        )
    }

    #[test]
    fn offsets_become_final_in_order() {
        let mut p = state("1h");
        let mut out = Vec::new();
        let now = Instant::now();
        let e1 = event("a", "2026-01-01T00:00:00Z");
        let e = decode(e1.as_bytes()).unwrap();
        p.engine.ingest(&e, &mut out);
        p.track(10, Some(e.occurred_at), now);
        p.track(11, None, now); // a bad message right after
        assert_eq!(
            p.take_final(),
            None,
            "offset 10 waits for its event to be final"
        );
        let e2 = event("b", "2026-01-01T01:00:01Z");
        let e = decode(e2.as_bytes()).unwrap();
        p.engine.ingest(&e, &mut out);
        p.track(12, Some(e.occurred_at), now);
        assert_eq!(p.take_final(), Some(11));
        assert_eq!(p.pending(), 1);
        assert_eq!(out.len(), 1, "the anomaly of event a");
    }

    #[test]
    fn a_quiet_partition_moves_its_clock_by_wall_time() {
        let mut p = state("0s");
        let mut out = Vec::new();
        let quiet = Duration::from_millis(10);
        let t0 = Instant::now();
        let e1 = event("a", "2026-01-01T00:00:00Z");
        let e = decode(e1.as_bytes()).unwrap();
        p.engine.ingest(&e, &mut out);
        p.track(0, Some(e.occurred_at), t0);
        assert!(out.is_empty());
        p.idle_advance(t0 + Duration::from_millis(50), quiet, &mut out);
        assert!(
            out.is_empty(),
            "messages may still be queued: not at the end yet"
        );
        p.at_end = true;
        p.idle_advance(t0 + Duration::from_millis(5), quiet, &mut out);
        assert!(out.is_empty(), "not quiet long enough");
        p.idle_advance(t0 + Duration::from_millis(70), quiet, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            p.engine.watermark().unwrap().0 - e.occurred_at.0,
            70_000,
            "moved by the 70 ms that passed, not to the current time"
        );
        assert_eq!(p.take_final(), Some(0));
        p.track(1, None, t0 + Duration::from_millis(80));
        assert!(
            !p.at_end,
            "a consumed message means the fetcher was not at the end"
        );
    }
}
