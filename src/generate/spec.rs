//! [`GenSpec`]: what stream to generate, its defaults, validation and the clamping the generator
//! applies to out-of-range values.

use crate::time::{Span, Timestamp, MICROS_PER_SECOND};

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
    ///
    /// [`Generator::new`]: super::Generator::new
    /// [`ground_truth`]: super::ground_truth
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

    pub(super) fn normalized(&self) -> GenSpec {
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
