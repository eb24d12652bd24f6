//! Per-event series counted by the one task that consumes, without an atomic operation per
//! event: the events consumed by channel and their event-time lag, kept in prometheus' local
//! (unsynchronised) counters and added to the shared series by [`EventTally::flush`], which the
//! daemon calls after each batch of fetched messages. A shared histogram's `observe` is four
//! atomic read-modify-writes (one a compare-and-swap loop on an `f64`), each a full barrier on
//! x86; in a profile of the daemon they were 2% of its thread.

use prometheus::local::{LocalHistogram, LocalIntCounter};

use super::Metrics;

/// Counts not yet added to the shared series; dropping a tally flushes it.
pub struct EventTally {
    by_channel: Vec<LocalIntCounter>,
    lag: LocalHistogram,
}

impl Metrics {
    /// A tally for one consuming task. `channels[i]` is the `channel` label of
    /// [`EventTally::consumed`]'s index `i`.
    pub fn event_tally(&self, channels: &[&str]) -> EventTally {
        EventTally {
            by_channel: channels
                .iter()
                .map(|c| self.events_consumed.with_label_values(&[c]).local())
                .collect(),
            lag: self.event_time_lag.local(),
        }
    }
}

impl EventTally {
    /// One well-formed event of channel `channel` consumed `lag_seconds` (wall clock minus
    /// `occurred_at`) after it occurred; a negative lag (clock skew, events from the future)
    /// counts as 0.
    pub fn consumed(&mut self, channel: usize, lag_seconds: f64) {
        self.by_channel[channel].inc();
        self.lag.observe(clamp_lag(lag_seconds));
    }

    /// Adds what was counted to the shared series.
    pub fn flush(&mut self) {
        for c in &mut self.by_channel {
            c.flush();
        }
        self.lag.flush();
    }
}

impl Drop for EventTally {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A lag fit for the histogram: 0 when negative or not a number.
fn clamp_lag(lag_seconds: f64) -> f64 {
    if lag_seconds.is_finite() {
        lag_seconds.max(0.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumed(m: &Metrics, channel: &str) -> u64 {
        m.events_consumed.with_label_values(&[channel]).get()
    }

    #[test]
    fn counts_show_after_a_flush_and_after_a_drop() {
        let m = Metrics::new();
        let mut tally = m.event_tally(&["call", "chat"]);
        tally.consumed(0, 1.5);
        tally.consumed(1, -3.0);
        tally.consumed(1, f64::NAN);
        assert_eq!(consumed(&m, "chat"), 0, "nothing is shared before a flush");
        tally.flush();
        assert_eq!((consumed(&m, "call"), consumed(&m, "chat")), (1, 2));
        assert_eq!(m.event_time_lag.get_sample_count(), 3);
        assert_eq!(
            m.event_time_lag.get_sample_sum(),
            1.5,
            "negative and NaN lags count as 0"
        );

        tally.consumed(0, 2.0);
        drop(tally);
        assert_eq!(consumed(&m, "call"), 2, "a dropped tally flushes");
        assert_eq!(m.event_time_lag.get_sample_count(), 4);
    }
}
