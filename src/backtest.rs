//! Backtest: score the problem rung against recalls that really happened.
//!
//! Definitions (as in `data/nhtsa/README.md`): a campaign is caught when, for one of its
//! (product, tag) rows, the first problem alert on that key came strictly before the recall date;
//! its lead is the recall date minus that alert's `triggered_at`, in days, the largest over its
//! caught rows. Precision is the share of alerted keys whose first problem alert came strictly
//! before some recall date on that key.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Status};
use crate::policy::Level;
use crate::replay::{open_input, ReplayError};
use crate::time::{parse_date, Timestamp, MICROS_PER_DAY};

#[derive(Debug, Clone, Deserialize)]
pub struct Recall {
    pub campaign: String,
    pub product_id: String,
    pub defect_tag: String,
    pub recall_date: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error(transparent)]
    Read(#[from] ReplayError),
    #[error("{path} line {line}: {problem}")]
    BadRecall {
        path: String,
        line: usize,
        problem: String,
    },
}

/// A recall row with its date as the first instant of that day, UTC.
#[derive(Debug, Clone)]
pub struct RecallRow {
    pub campaign: String,
    pub product_id: String,
    pub defect_tag: String,
    pub recall_at: Timestamp,
}

pub fn load_recalls(path: &Path) -> Result<Vec<RecallRow>, BacktestError> {
    let reader = open_input(path, Arc::new(AtomicU64::new(0)))?;
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| ReplayError::Read {
            path: path.display().to_string(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |problem: String| BacktestError::BadRecall {
            path: path.display().to_string(),
            line: i + 1,
            problem,
        };
        let r: Recall = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let day = parse_date(&r.recall_date)
            .ok_or_else(|| bad(format!("recall_date {:?} is not YYYY-MM-DD", r.recall_date)))?;
        rows.push(RecallRow {
            campaign: r.campaign,
            product_id: r.product_id.trim().to_owned(),
            defect_tag: r.defect_tag.trim().to_owned(),
            recall_at: Timestamp(day * MICROS_PER_DAY),
        });
    }
    Ok(rows)
}

/// Collects what scoring needs while alerts stream past.
#[derive(Debug, Default)]
pub struct AlertLog {
    first_problem: HashMap<(String, String), Timestamp>,
    firing: BTreeMap<&'static str, u64>,
    first_at: Option<Timestamp>,
    last_at: Option<Timestamp>,
}

impl AlertLog {
    pub fn record(&mut self, alert: &Alert) {
        if alert.status != Status::Firing {
            return;
        }
        *self.firing.entry(alert.level.as_str()).or_default() += 1;
        self.first_at = Some(
            self.first_at
                .map_or(alert.triggered_at, |t| t.min(alert.triggered_at)),
        );
        self.last_at = Some(
            self.last_at
                .map_or(alert.triggered_at, |t| t.max(alert.triggered_at)),
        );
        if alert.level == Level::Problem {
            self.first_problem
                .entry((alert.product_id.clone(), alert.defect_tag.clone()))
                .and_modify(|t| *t = (*t).min(alert.triggered_at))
                .or_insert(alert.triggered_at);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub campaigns: usize,
    pub caught: usize,
    pub coverage: f64,
    pub lead_days_median: Option<f64>,
    pub lead_days_p25: Option<f64>,
    pub lead_days_p75: Option<f64>,
    pub alerted_keys: usize,
    pub precision: Option<f64>,
    /// Firing alerts per 30-day month over the span between the first and last alert.
    pub alerts_per_month: BTreeMap<&'static str, f64>,
}

/// The q-quantile of sorted values, by linear interpolation between closest ranks.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

pub fn score(recalls: &[RecallRow], log: &AlertLog) -> Score {
    let mut lead_by_campaign: HashMap<&str, f64> = HashMap::new();
    let mut campaigns: Vec<&str> = recalls.iter().map(|r| r.campaign.as_str()).collect();
    campaigns.sort_unstable();
    campaigns.dedup();
    let mut recall_dates: HashMap<(&str, &str), Vec<Timestamp>> = HashMap::new();
    for r in recalls {
        recall_dates
            .entry((&r.product_id, &r.defect_tag))
            .or_default()
            .push(r.recall_at);
        let key = (r.product_id.clone(), r.defect_tag.clone());
        if let Some(&first) = log.first_problem.get(&key) {
            if first < r.recall_at {
                let lead = (r.recall_at.0 - first.0) as f64 / MICROS_PER_DAY as f64;
                let best = lead_by_campaign.entry(&r.campaign).or_insert(lead);
                *best = best.max(lead);
            }
        }
    }
    let mut leads: Vec<f64> = lead_by_campaign.values().copied().collect();
    leads.sort_by(f64::total_cmp);
    let alerted_keys = log.first_problem.len();
    let true_alerts = log
        .first_problem
        .iter()
        .filter(|((p, t), first)| {
            recall_dates
                .get(&(p.as_str(), t.as_str()))
                .is_some_and(|dates| dates.iter().any(|d| *first < d))
        })
        .count();
    let months = match (log.first_at, log.last_at) {
        (Some(a), Some(b)) => ((b.0 - a.0) as f64 / (30.0 * MICROS_PER_DAY as f64)).max(1.0),
        _ => 1.0,
    };
    let median = match leads.len() {
        0 => None,
        n if n % 2 == 1 => Some(leads[n / 2]),
        n => Some((leads[n / 2 - 1] + leads[n / 2]) / 2.0),
    };
    Score {
        campaigns: campaigns.len(),
        caught: leads.len(),
        coverage: if campaigns.is_empty() {
            0.0
        } else {
            leads.len() as f64 / campaigns.len() as f64
        },
        lead_days_median: median,
        lead_days_p25: quantile(&leads, 0.25),
        lead_days_p75: quantile(&leads, 0.75),
        alerted_keys,
        precision: (alerted_keys > 0).then(|| true_alerts as f64 / alerted_keys as f64),
        alerts_per_month: log
            .firing
            .iter()
            .map(|(level, n)| (*level, *n as f64 / months))
            .collect(),
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.decimals$}"))
}

/// The table the backtest prints: one row per window.
pub fn render_table(rows: &[(String, Score)]) -> String {
    let mut out = String::from(
        "| window | campaigns caught | coverage | lead days median (p25, p75) | alerted keys | precision | problem alerts/month |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for (window, s) in rows {
        out.push_str(&format!(
            "| {window} | {} / {} | {:.3} | {} ({}, {}) | {} | {} | {:.2} |\n",
            s.caught,
            s.campaigns,
            s.coverage,
            opt(s.lead_days_median, 1),
            opt(s.lead_days_p25, 1),
            opt(s.lead_days_p75, 1),
            s.alerted_keys,
            opt(s.precision, 3),
            s.alerts_per_month.get("problem").copied().unwrap_or(0.0),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.25), Some(1.75));
        assert_eq!(quantile(&v, 0.75), Some(3.25));
        assert_eq!(quantile(&[5.0], 0.75), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
