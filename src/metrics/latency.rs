//! [`LatencyRecorder`]: latency quantiles at fine resolution (hdrhistogram, 3 significant
//! digits), for logs and the final report, next to the coarse Prometheus histogram.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram as HdrHistogram;

/// Highest latency the recorder tracks exactly: one hour, in microseconds; longer ones saturate.
const LATENCY_MAX_MICROS: u64 = 3_600_000_000;

/// Latency quantiles at 3 significant digits, from 1 µs to 1 h (longer values count as 1 h).
pub struct LatencyRecorder {
    hist: Mutex<HdrHistogram<u64>>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder::new()
    }
}

impl std::fmt::Debug for LatencyRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyRecorder")
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max())
            .finish()
    }
}

impl LatencyRecorder {
    pub fn new() -> LatencyRecorder {
        let hist = HdrHistogram::new_with_bounds(1, LATENCY_MAX_MICROS, 3)
            .expect("valid hdrhistogram bounds");
        LatencyRecorder {
            hist: Mutex::new(hist),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HdrHistogram<u64>> {
        // A panic while holding the lock cannot leave the histogram half-updated in a way that
        // matters for statistics, so a poisoned lock is still usable.
        self.hist.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one latency (microsecond resolution, saturating at one hour).
    pub fn record(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.lock()
            .saturating_record(micros.min(LATENCY_MAX_MICROS));
    }

    /// The latency at quantile `q` (0.0..=1.0, clamped); zero when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Duration {
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let h = self.lock();
        if h.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(h.value_at_quantile(q))
    }

    /// The largest recorded latency (at the recorder's resolution); zero when empty.
    pub fn max(&self) -> Duration {
        let h = self.lock();
        if h.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(h.max())
    }

    /// How many latencies were recorded since creation or the last [`LatencyRecorder::reset`].
    pub fn count(&self) -> u64 {
        self.lock().len()
    }

    /// Forgets every recorded latency.
    pub fn reset(&self) {
        self.lock().reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: Duration, expected: Duration) -> bool {
        let (a, e) = (actual.as_secs_f64(), expected.as_secs_f64());
        (a - e).abs() <= e * 0.002
    }

    #[test]
    fn latency_quantiles_of_a_known_set() {
        let r = LatencyRecorder::new();
        assert_eq!(r.count(), 0);
        assert_eq!(r.quantile(0.5), Duration::ZERO);
        assert_eq!(r.max(), Duration::ZERO);
        // 1 ms, 2 ms, ..., 1000 ms.
        for i in 1..=1000 {
            r.record(Duration::from_millis(i));
        }
        assert_eq!(r.count(), 1000);
        for (q, ms) in [(0.0, 1), (0.5, 500), (0.9, 900), (0.99, 990), (1.0, 1000)] {
            let got = r.quantile(q);
            assert!(
                close(got, Duration::from_millis(ms)),
                "q{q}: {got:?} != {ms} ms"
            );
        }
        assert!(close(r.max(), Duration::from_secs(1)));
        r.reset();
        assert_eq!(r.count(), 0);
        assert_eq!(r.quantile(0.99), Duration::ZERO);
    }

    #[test]
    fn latency_recorder_clamps_extremes() {
        let r = LatencyRecorder::new();
        r.record(Duration::ZERO);
        r.record(Duration::from_secs(10 * 3600));
        assert_eq!(r.count(), 2);
        assert_eq!(r.quantile(0.0), Duration::ZERO);
        assert!(close(r.max(), Duration::from_secs(3600)));
        assert_eq!(r.quantile(f64::NAN), Duration::ZERO);
    }
}
