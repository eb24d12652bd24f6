//! The state of one input partition: its own engine (so partitions can move between instances),
//! the offsets consumed and committed, and the idle clock of a quiet partition.

use std::time::{Duration, Instant};

use crate::alert::Alert;
use crate::engine::{Engine, EngineStats};
use crate::time::Span;

pub struct PartitionState {
    pub engine: Engine,
    /// The offset after the last message consumed: what the next commit records.
    pub next_offset: Option<i64>,
    /// The offset last committed for this partition (found at assignment or committed since).
    pub committed: Option<i64>,
    /// The next offset of the last checkpoint written (or chosen at assignment).
    pub checkpointed: Option<i64>,
    /// The idle clock decided something since the last checkpoint. Those alerts are not caused
    /// by input a replay would see, so the checkpoint (its watermark) must go out with them, or
    /// a rebuild would decide, and publish, them again.
    pub idle_alerts: bool,
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
    pub fn new(engine: Engine, committed: Option<i64>, now: Instant) -> PartitionState {
        PartitionState {
            engine,
            next_offset: committed,
            committed,
            checkpointed: None,
            idle_alerts: false,
            clock_synced: now,
            caught_up: false,
            at_end: false,
            reported: EngineStats::default(),
        }
    }

    /// Remembers that the message at `offset` was consumed.
    pub fn consumed(&mut self, offset: i64, now: Instant) {
        self.next_offset = Some(offset + 1);
        self.clock_synced = now;
        self.at_end = false;
    }

    /// The offset to commit, if it moved since the last commit.
    pub fn to_commit(&self) -> Option<i64> {
        self.next_offset.filter(|n| Some(*n) != self.committed)
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
            let before = out.len();
            self.engine.advance_to(w.saturating_add(step), out);
            self.idle_alerts |= out.len() > before;
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
        let engine = Engine::new(DetectorConfig::from_raw(&raw).unwrap());
        PartitionState::new(engine, Some(7), Instant::now())
    }

    fn event(id: &str, at: &str) -> String {
        format!(
            r#"{{"event_id":"{id}","occurred_at":"{at}","channel":"call","customer_id":"{id}","product_id":"p","defect_tags":["t"]}}"#
        )
    }

    #[test]
    fn the_offset_to_commit_follows_consumption() {
        let mut p = state("1h");
        assert_eq!(
            p.to_commit(),
            None,
            "nothing consumed since the commit found"
        );
        p.consumed(7, Instant::now());
        assert_eq!(p.to_commit(), Some(8));
        p.committed = Some(8);
        assert_eq!(p.to_commit(), None);
    }

    #[test]
    fn a_quiet_partition_moves_its_clock_by_wall_time() {
        let mut p = state("0s");
        let mut out = Vec::new();
        let quiet = Duration::from_millis(10);
        let t0 = Instant::now();
        let e1 = event("a", "2026-01-01T00:00:00Z");
        let e = decode(e1.as_bytes()).unwrap();
        p.engine.ingest_at(&e, 7, &mut out);
        p.consumed(7, t0);
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
        assert!(p.idle_alerts, "the next commit must carry a checkpoint");
        assert_eq!(
            p.engine.watermark().unwrap().0 - e.occurred_at.0,
            70_000,
            "moved by the 70 ms that passed, not to the current time"
        );
        p.consumed(8, t0 + Duration::from_millis(80));
        assert!(
            !p.at_end,
            "a consumed message means the fetcher was not at the end"
        );
    }
}
