//! How far a count of messages got, and when: the Kafka phase's two consumers (the raw one and
//! the daemon) start their clocks and take their steady rates the same way with it.

use std::time::Instant;

/// When a count of `n` messages passed its first message, a quarter and three quarters: the
/// start of a run's clock, and its steady rate over the middle half (start-up and the end
/// left out; both consumers of the Kafka phase keep it the same way).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    n: u64,
    pub first: Option<Instant>,
    quarter: Option<Instant>,
    three_quarters: Option<Instant>,
}

impl Progress {
    pub fn new(n: u64) -> Progress {
        Progress {
            n,
            first: None,
            quarter: None,
            three_quarters: None,
        }
    }

    /// Whether `count` is one of the counts `see` marks: a caller that reads the clock only
    /// there (a clock reading a message would slow a tight count) misses none.
    pub fn marks(&self, count: u64) -> bool {
        self.points().contains(&count)
    }

    /// The counts of the first message, a quarter and three quarters.
    fn points(&self) -> [u64; 3] {
        [1, self.n / 4, 3 * self.n / 4]
    }

    /// `count` messages were counted by `now`.
    pub fn see(&mut self, count: u64, now: Instant) {
        let mark = |slot: &mut Option<Instant>, at: u64| {
            if slot.is_none() && count >= at.max(1) {
                *slot = Some(now);
            }
        };
        let [first, quarter, three_quarters] = self.points();
        mark(&mut self.first, first);
        mark(&mut self.quarter, quarter);
        mark(&mut self.three_quarters, three_quarters);
    }

    /// Messages a second between the quarter and three quarters marks; NaN if not both seen.
    pub fn middle_rate(&self) -> f64 {
        let [_, quarter, three_quarters] = self.points();
        match (self.quarter, self.three_quarters) {
            (Some(a), Some(b)) if b > a => {
                (three_quarters - quarter) as f64 / (b - a).as_secs_f64()
            }
            _ => f64::NAN,
        }
    }
}
