//! Replay: JSON-lines files (plain, `.gz`, or `-` for stdin) through the engine, alerts out.
//!
//! The same engine the daemon runs, so history gives the same alerts as live traffic. Bad lines
//! and late events are not dropped: they are counted and, when asked, written to a rejects file
//! with their reason and where they came from.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use serde::Serialize;

use crate::alert::{Alert, Status};
use crate::engine::{Engine, Ingest};
use crate::event::{decode, BadReason};
use crate::lines::{for_each_line, trim_end};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("cannot write {what}: {source}")]
    Write {
        what: &'static str,
        source: io::Error,
    },
}

/// Counts for the end-of-run summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    pub lines: u64,
    pub events: u64,
    pub bad: BTreeMap<&'static str, u64>,
    pub late: u64,
    pub duplicate_reports: u64,
    pub refused_keys: u64,
    pub alerts_firing: BTreeMap<&'static str, u64>,
    pub alerts_resolved: u64,
    #[serde(skip)]
    pub elapsed: Duration,
}

impl ReplaySummary {
    pub fn bad_total(&self) -> u64 {
        self.bad.values().sum()
    }

    fn count_alert(&mut self, alert: &Alert) {
        match alert.status {
            Status::Firing => *self.alerts_firing.entry(alert.level.as_str()).or_default() += 1,
            Status::Resolved => self.alerts_resolved += 1,
        }
    }

    /// One human line for stderr.
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let bad: Vec<String> = self.bad.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let firing: Vec<String> = ["anomaly", "pattern", "problem"]
            .iter()
            .map(|l| format!("{l}={}", self.alerts_firing.get(l).copied().unwrap_or(0)))
            .collect();
        format!(
            "replayed {} events from {} lines in {:.2}s ({:.0} events/s); bad: {} [{}]; late: {}; duplicate reports: {}; refused keys: {}; alerts firing: {}; resolved: {}",
            self.events,
            self.lines,
            secs,
            self.events as f64 / secs,
            self.bad_total(),
            bad.join(" "),
            self.late,
            self.duplicate_reports,
            self.refused_keys,
            firing.join(" "),
            self.alerts_resolved
        )
    }
}

/// A rejected line, as written to the rejects file.
#[derive(Serialize)]
struct Reject<'a> {
    source: &'a str,
    line: u64,
    reason: &'a str,
    error: String,
    raw: std::borrow::Cow<'a, str>,
}

/// Counts the compressed or plain bytes read from a file, for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens an input: `-` is stdin, a name ending in `.gz` is decompressed.
pub fn open_input(path: &Path, read: Arc<AtomicU64>) -> Result<Box<dyn BufRead>, ReplayError> {
    let err = |source| ReplayError::Read {
        path: path.display().to_string(),
        source,
    };
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::with_capacity(1 << 16, io::stdin())));
    }
    let file = File::open(path).map_err(err)?;
    let counted = Counting { inner: file, read };
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(BufReader::new(counted)),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 16, counted)))
    }
}

/// Where replay sends things; alerts are handed over as the engine emits them.
pub struct ReplaySinks<'a> {
    pub on_alert: &'a mut dyn FnMut(&Alert) -> io::Result<()>,
    pub rejects: Option<&'a mut dyn Write>,
}

/// Replays `inputs` in order through `engine`, then finishes it (end of input makes every event
/// final). `progress` shows a bar on stderr.
pub fn replay(
    engine: &mut Engine,
    inputs: &[PathBuf],
    sinks: ReplaySinks<'_>,
    progress: bool,
) -> Result<ReplaySummary, ReplayError> {
    let started = Instant::now();
    let ReplaySinks {
        on_alert,
        mut rejects,
    } = sinks;
    let mut summary = ReplaySummary::default();
    let read = Arc::new(AtomicU64::new(0));
    let total: u64 = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress.then(|| progress_bar(total));
    let mut alerts: Vec<Alert> = Vec::new();
    let write_err = |source| ReplayError::Write {
        what: "alerts",
        source,
    };
    for path in inputs {
        let source = path.display().to_string();
        let mut reader = open_input(path, read.clone())?;
        let mut number = 0u64;
        let read_error = |source| ReplayError::Read {
            path: path.display().to_string(),
            source,
        };
        for_each_line(
            &mut reader,
            |line| {
                number += 1;
                let body = trim_end(line);
                if body.is_empty() {
                    return Ok(());
                }
                summary.lines += 1;
                let reject = match decode(body) {
                    Ok(event) => match engine.ingest(&event, &mut alerts) {
                        Ingest::Accepted { .. } => {
                            summary.events += 1;
                            None
                        }
                        Ingest::Late { frontier } => {
                            summary.late += 1;
                            Some((
                                "late",
                                format!(
                                    "occurred_at {} is before the frontier {frontier} (watermark - allowed_lateness)",
                                    event.occurred_at
                                ),
                            ))
                        }
                    },
                    Err(e) => {
                        let reason = e.reason();
                        *summary.bad.entry(reason.as_str()).or_default() += 1;
                        Some((reason.as_str(), e.to_string()))
                    }
                };
                if let (Some((reason, error)), Some(out)) = (reject, rejects.as_deref_mut()) {
                    let record = Reject {
                        source: &source,
                        line: number,
                        reason,
                        error,
                        raw: String::from_utf8_lossy(body),
                    };
                    serde_json::to_writer(&mut *out, &record)
                        .map_err(io::Error::from)
                        .and_then(|_| out.write_all(b"\n"))
                        .map_err(|source| ReplayError::Write {
                            what: "rejects",
                            source,
                        })?;
                }
                for alert in alerts.drain(..) {
                    summary.count_alert(&alert);
                    on_alert(&alert).map_err(write_err)?;
                }
                if let Some(bar) = &bar {
                    if summary.lines % 4096 == 0 {
                        bar.set_position(read.load(Ordering::Relaxed));
                    }
                }
                Ok(())
            },
            read_error,
        )?;
    }
    engine.finish(&mut alerts);
    for alert in alerts.drain(..) {
        summary.count_alert(&alert);
        on_alert(&alert).map_err(write_err)?;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    summary.duplicate_reports = engine.stats().duplicate_reports;
    summary.refused_keys = engine.stats().refused_keys;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} replay [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .expect("valid template"),
    );
    bar
}

/// Every reason a line can be rejected for, in a stable order (for docs and tests).
pub fn reject_reasons() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = BadReason::ALL.iter().map(|r| r.as_str()).collect();
    v.push("late");
    v
}
