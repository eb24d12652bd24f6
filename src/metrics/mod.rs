//! Prometheus metrics, an in-process latency recorder and the health flags of the daemon.
//!
//! A leaf: nothing here imports another module of the crate. [`Metrics`] registers every series
//! of recall-radar in one private [`Registry`] (not the process-wide default), so tests and several
//! instances in one process do not collide, and [`Metrics::render`] gives the text exposition
//! served on `/metrics`. The metric names are a contract with the Grafana dashboard and the
//! Prometheus rules under `deploy/`: do not rename them.
//!
//! [`LatencyRecorder`] keeps exact-enough quantiles (hdrhistogram, 3 significant digits) for logs
//! and the final report, next to the coarse Prometheus histogram. [`Health`] holds the liveness
//! and readiness flags that `/healthz` and `/readyz` report.
//!
//! # Layout
//! - this file: [`Metrics`], the registry of every series, and the label values and buckets.
//! - `latency`: [`LatencyRecorder`].
//! - `health`: [`Health`].
//! - `tally`: [`EventTally`], per-event counts added to the shared series once per batch.

mod health;
mod latency;
mod tally;

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub use health::Health;
pub use latency::LatencyRecorder;
pub use tally::EventTally;

/// Values of the `channel` label of `recall_radar_events_consumed_total`.
pub const CHANNELS: [&str; 6] = ["call", "chat", "email", "mail", "social", "web"];
/// Values of the `reason` label of `recall_radar_events_bad_total`.
pub const BAD_REASONS: [&str; 7] = [
    "invalid_json",
    "wrong_type",
    "missing_field",
    "bad_timestamp",
    "bad_channel",
    "bad_date",
    "out_of_limit",
];
/// Values of the `kind` label of `recall_radar_dead_letters_published_total`.
pub const DEAD_LETTER_KINDS: [&str; 2] = ["bad", "late"];
/// Values of the `level` label of the alert and episode series.
pub const ALERT_LEVELS: [&str; 3] = ["anomaly", "pattern", "problem"];
/// Values of the `status` label of `recall_radar_alerts_published_total`.
pub const ALERT_STATUSES: [&str; 2] = ["firing", "resolved"];
/// Values of the `kind` label of `recall_radar_rebalances_total`.
pub const REBALANCE_KINDS: [&str; 2] = ["assign", "revoke"];
/// Outcomes of a commit: a transaction (or offset commit) that went through, one that was
/// aborted (its work is redone), offsets that could not be committed (at least once: retried).
pub const COMMIT_OUTCOMES: [&str; 3] = ["committed", "aborted", "not_committed"];
/// Seconds a partition's rebuild may take: from an empty replay to millions of events.
pub const REBUILD_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Buckets of `recall_radar_processing_latency_seconds`: 0.5 ms to 30 s.
pub const PROCESSING_LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    30.0,
];
/// Buckets of `recall_radar_event_time_lag_seconds`: 1 s to 30 days.
pub const EVENT_TIME_LAG_BUCKETS: [f64; 17] = [
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    300.0,
    900.0,
    1_800.0,
    3_600.0,
    7_200.0,
    21_600.0,
    43_200.0,
    86_400.0,
    259_200.0,
    604_800.0,
    1_209_600.0,
    2_592_000.0,
];

/// Every series of recall-radar, registered in one private registry.
///
/// Counters and gauges are public so the stages update them directly, e.g.
/// `metrics.events_consumed.with_label_values(&["call"]).inc()`. Labelled series whose label
/// values are known in advance are pre-initialized to 0 so they show up before the first event.
pub struct Metrics {
    registry: Registry,
    /// `recall_radar_events_consumed_total{channel}`: well-formed events consumed.
    pub events_consumed: IntCounterVec,
    /// `recall_radar_events_bad_total{reason}`: messages rejected by validation.
    pub events_bad: IntCounterVec,
    /// `recall_radar_events_late_total`: events older than the lateness frontier.
    pub events_late: IntCounter,
    /// `recall_radar_events_duplicate_total`: events whose id a key had already counted.
    pub events_duplicate: IntCounter,
    /// `recall_radar_dead_letters_published_total{kind}`: messages sent to the dead-letter topic.
    pub dead_letters_published: IntCounterVec,
    /// `recall_radar_alerts_published_total{level,status}`: alerts acknowledged by the broker.
    pub alerts_published: IntCounterVec,
    /// `recall_radar_live_keys`: (product, defect tag) keys held in memory.
    pub live_keys: IntGauge,
    /// `recall_radar_open_episodes{level}`: open episodes by highest rung reached.
    pub open_episodes: IntGaugeVec,
    /// `recall_radar_keys_evicted_total`: idle keys dropped from memory.
    pub keys_evicted: IntCounter,
    /// `recall_radar_keys_refused_total`: new keys refused because `max_keys` was reached.
    pub keys_refused: IntCounter,
    /// `recall_radar_processing_latency_seconds`: message received to alert acknowledged.
    /// Prefer [`Metrics::observe_processing_latency`], which also feeds the hdr recorder.
    pub processing_latency: Histogram,
    /// The same latency at fine resolution, for logs and reports.
    pub processing_latency_hdr: LatencyRecorder,
    /// `recall_radar_event_time_lag_seconds`: wall clock minus `occurred_at` when processed.
    pub event_time_lag: Histogram,
    /// `recall_radar_consumer_lag_messages{topic,partition}`: high watermark minus position.
    pub consumer_lag: IntGaugeVec,
    /// `recall_radar_producer_queue_messages`: messages waiting in the producer queue.
    pub producer_queue: IntGauge,
    /// `recall_radar_rebalances_total{kind}`: consumer group rebalance callbacks.
    pub rebalances: IntCounterVec,
    /// `recall_radar_partitions_assigned`: partitions currently assigned to this consumer.
    pub partitions_assigned: IntGauge,
    /// `recall_radar_input_paused`: 1 while the input is paused because the running commit
    /// holds `daemon.max_held_records`.
    pub input_paused: IntGauge,
    /// `recall_radar_commits_total{outcome}`: transactions (or offset commits) by outcome.
    pub commits: IntCounterVec,
    /// `recall_radar_checkpoints_written_total`: partition checkpoints committed.
    pub checkpoints_written: IntCounter,
    /// `recall_radar_offsets_recommitted_total`: offset-only transactions sent because the broker
    /// did not show a committed transaction's offsets (`kafka.confirm_offsets`).
    pub offsets_recommitted: IntCounter,
    /// `recall_radar_partition_rebuilds_total`: partitions whose windows were rebuilt by replay.
    pub partition_rebuilds: IntCounter,
    /// `recall_radar_rebuild_replayed_messages_total`: input messages replayed by rebuilds.
    pub rebuild_replayed: IntCounter,
    /// `recall_radar_rebuild_duration_seconds`: how long one partition's rebuild took.
    pub rebuild_duration: Histogram,
    /// `recall_radar_repartitioned_messages_total`: records the repartitioner sent to the
    /// repartition topic (again, after an aborted transaction).
    pub repartitioned: IntCounter,
    /// `recall_radar_repartitioned_unkeyed_total`: of those, records without a product id.
    pub repartitioned_unkeyed: IntCounter,
    /// `recall_radar_repartition_commits_total{outcome}`: the repartitioner's transactions (or
    /// offset commits) by outcome, as `commits` for the detection loop.
    pub repartition_commits: IntCounterVec,
    /// `recall_radar_build_info{version}`: always 1.
    pub build_info: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::with_opts(Opts::new(name, help))?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::with_opts(Opts::new(name, help))?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

/// A counter vector with every combination of `values` (one list per label) set to 0.
fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    values: &[&[&str]],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    for combination in combinations(values) {
        c.with_label_values(&combination).reset();
    }
    Ok(c)
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    values: &[&[&str]],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    for combination in combinations(values) {
        g.with_label_values(&combination).set(0);
    }
    Ok(g)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> prometheus::Result<Histogram> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

/// The cartesian product of the value lists (empty input: no combination).
fn combinations<'a>(values: &[&[&'a str]]) -> Vec<Vec<&'a str>> {
    if values.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Vec<&'a str>> = vec![Vec::new()];
    for list in values {
        out = out
            .iter()
            .flat_map(|prefix| {
                list.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push(*v);
                    next
                })
            })
            .collect();
    }
    out
}

impl Metrics {
    /// Registers everything; panics only if two series share a name (a programming error).
    pub fn new() -> Arc<Metrics> {
        Metrics::try_new().expect("recall-radar metrics have distinct, valid names")
    }

    /// Registers everything, reporting a registration error instead of panicking.
    pub fn try_new() -> prometheus::Result<Arc<Metrics>> {
        let r = Registry::new();
        let metrics = Metrics {
            events_consumed: counter_vec(
                &r,
                "recall_radar_events_consumed_total",
                "Well-formed contact events consumed from the input topic, by contact channel.",
                &["channel"],
                &[&CHANNELS],
            )?,
            events_bad: counter_vec(
                &r,
                "recall_radar_events_bad_total",
                "Input messages rejected by validation, by reason.",
                &["reason"],
                &[&BAD_REASONS],
            )?,
            events_late: counter(
                &r,
                "recall_radar_events_late_total",
                "Events older than the watermark minus allowed lateness, not counted in windows.",
            )?,
            events_duplicate: counter(
                &r,
                "recall_radar_events_duplicate_total",
                "Events whose event id a key had already counted (redeliveries and replays).",
            )?,
            dead_letters_published: counter_vec(
                &r,
                "recall_radar_dead_letters_published_total",
                "Messages published to the dead-letter topic, by kind (bad input or late event).",
                &["kind"],
                &[&DEAD_LETTER_KINDS],
            )?,
            alerts_published: counter_vec(
                &r,
                "recall_radar_alerts_published_total",
                "Alerts acknowledged by the broker, by level and status.",
                &["level", "status"],
                &[&ALERT_LEVELS, &ALERT_STATUSES],
            )?,
            live_keys: gauge(
                &r,
                "recall_radar_live_keys",
                "(product, defect tag) keys currently held in memory.",
            )?,
            open_episodes: gauge_vec(
                &r,
                "recall_radar_open_episodes",
                "Open episodes, by the highest level reached so far.",
                &["level"],
                &[&ALERT_LEVELS],
            )?,
            keys_evicted: counter(
                &r,
                "recall_radar_keys_evicted_total",
                "Idle keys dropped from memory.",
            )?,
            keys_refused: counter(
                &r,
                "recall_radar_keys_refused_total",
                "New keys refused because the max_keys limit was reached (reports lost).",
            )?,
            processing_latency: histogram(
                &r,
                "recall_radar_processing_latency_seconds",
                "Seconds from receiving a message to the alert it caused being committed (acknowledged at least once).",
                &PROCESSING_LATENCY_BUCKETS,
            )?,
            processing_latency_hdr: LatencyRecorder::new(),
            event_time_lag: histogram(
                &r,
                "recall_radar_event_time_lag_seconds",
                "Seconds between an event's occurred_at and the wall clock when it was processed.",
                &EVENT_TIME_LAG_BUCKETS,
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "recall_radar_consumer_lag_messages",
                    "Messages behind the high watermark, by assigned topic and partition.",
                ),
                &["topic", "partition"],
            )?,
            producer_queue: gauge(
                &r,
                "recall_radar_producer_queue_messages",
                "Messages waiting in the Kafka producer queue (not yet acknowledged).",
            )?,
            rebalances: counter_vec(
                &r,
                "recall_radar_rebalances_total",
                "Consumer group rebalance callbacks, by kind (partitions assigned or revoked).",
                &["kind"],
                &[&REBALANCE_KINDS],
            )?,
            partitions_assigned: gauge(
                &r,
                "recall_radar_partitions_assigned",
                "Input partitions currently assigned to this consumer.",
            )?,
            input_paused: gauge(
                &r,
                "recall_radar_input_paused",
                "1 while the input is paused: the running commit holds daemon.max_held_records alerts and dead letters.",
            )?,
            commits: counter_vec(
                &r,
                "recall_radar_commits_total",
                "Commits of alerts with input offsets (transactions, or offset commits at least once), by outcome.",
                &["outcome"],
                &[&COMMIT_OUTCOMES],
            )?,
            checkpoints_written: counter(
                &r,
                "recall_radar_checkpoints_written_total",
                "Partition checkpoints committed to the checkpoint topic.",
            )?,
            offsets_recommitted: counter(
                &r,
                "recall_radar_offsets_recommitted_total",
                "Offset-only transactions sent because the broker did not show the offsets of a committed transaction (kafka.confirm_offsets).",
            )?,
            partition_rebuilds: counter(
                &r,
                "recall_radar_partition_rebuilds_total",
                "Partitions whose windows were rebuilt by replaying the input (assignment, restart, aborted commit).",
            )?,
            rebuild_replayed: counter(
                &r,
                "recall_radar_rebuild_replayed_messages_total",
                "Input messages replayed to rebuild partitions' windows.",
            )?,
            rebuild_duration: histogram(
                &r,
                "recall_radar_rebuild_duration_seconds",
                "Seconds one partition's rebuild took (the loop waits meanwhile).",
                &REBUILD_BUCKETS,
            )?,
            repartitioned: counter(
                &r,
                "recall_radar_repartitioned_messages_total",
                "Records the repartitioner sent to the repartition topic (again after an aborted transaction).",
            )?,
            repartitioned_unkeyed: counter(
                &r,
                "recall_radar_repartitioned_unkeyed_total",
                "Records the repartitioner sent unkeyed: they had no product id (the detector dead-letters them).",
            )?,
            repartition_commits: counter_vec(
                &r,
                "recall_radar_repartition_commits_total",
                "The repartitioner's commits of re-published records with input offsets, by outcome.",
                &["outcome"],
                &[&COMMIT_OUTCOMES],
            )?,
            build_info: IntGaugeVec::new(
                Opts::new(
                    "recall_radar_build_info",
                    "Always 1; the version label carries the recall-radar version.",
                ),
                &["version"],
            )?,
            registry: r,
        };
        metrics
            .registry
            .register(Box::new(metrics.consumer_lag.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.build_info.clone()))?;
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(target_os = "linux")]
        metrics.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Arc::new(metrics))
    }

    /// The registry holding every series, to register more collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Input messages counted so far: well-formed events over every channel (late ones
    /// included: they are consumed, then found late) and messages rejected as bad.
    pub fn messages_consumed(&self) -> u64 {
        let events: u64 = CHANNELS
            .iter()
            .map(|c| self.events_consumed.with_label_values(&[c]).get())
            .sum();
        let bad: u64 = BAD_REASONS
            .iter()
            .map(|r| self.events_bad.with_label_values(&[r]).get())
            .sum();
        events + bad
    }

    /// Records one message-received-to-alert-acknowledged latency in the Prometheus histogram
    /// and in [`Metrics::processing_latency_hdr`].
    pub fn observe_processing_latency(&self, d: Duration) {
        self.processing_latency.observe(d.as_secs_f64());
        self.processing_latency_hdr.record(d);
    }

    /// Sets the lag of one assigned partition.
    pub fn set_consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[topic, &partition.to_string()])
            .set(lag);
    }

    /// Drops the lag series of a revoked partition so no stale value stays exported.
    pub fn forget_consumer_lag(&self, topic: &str, partition: i32) {
        // An error only means the series did not exist.
        let _ = self
            .consumer_lag
            .remove_label_values(&[topic, &partition.to_string()]);
    }

    /// Every series in the Prometheus text exposition format (version 0.0.4), process metrics
    /// included.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric name of the contract with `deploy/`, with its type.
    const NAMES: [(&str, &str); 22] = [
        ("recall_radar_events_consumed_total", "counter"),
        ("recall_radar_events_bad_total", "counter"),
        ("recall_radar_events_late_total", "counter"),
        ("recall_radar_events_duplicate_total", "counter"),
        ("recall_radar_dead_letters_published_total", "counter"),
        ("recall_radar_alerts_published_total", "counter"),
        ("recall_radar_live_keys", "gauge"),
        ("recall_radar_open_episodes", "gauge"),
        ("recall_radar_keys_evicted_total", "counter"),
        ("recall_radar_keys_refused_total", "counter"),
        ("recall_radar_processing_latency_seconds", "histogram"),
        ("recall_radar_event_time_lag_seconds", "histogram"),
        ("recall_radar_consumer_lag_messages", "gauge"),
        ("recall_radar_producer_queue_messages", "gauge"),
        ("recall_radar_rebalances_total", "counter"),
        ("recall_radar_partitions_assigned", "gauge"),
        ("recall_radar_input_paused", "gauge"),
        ("recall_radar_repartitioned_messages_total", "counter"),
        ("recall_radar_repartitioned_unkeyed_total", "counter"),
        ("recall_radar_repartition_commits_total", "counter"),
        ("recall_radar_build_info", "gauge"),
        ("process_cpu_seconds_total", "counter"),
    ];

    #[test]
    fn render_has_every_name_with_type_and_help() {
        let m = Metrics::new();
        // The consumer lag vector has no known label values until partitions are assigned.
        m.set_consumer_lag("contacts", 3, 42);
        let text = m.render();
        for (name, kind) in NAMES {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "missing TYPE line for {name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "missing HELP line for {name}"
            );
        }
        assert!(text.contains(
            "recall_radar_consumer_lag_messages{partition=\"3\",topic=\"contacts\"} 42\n"
        ));
        assert!(text.contains("process_resident_memory_bytes "));
    }

    #[test]
    fn labelled_series_are_pre_initialized() {
        let text = Metrics::new().render();
        let has = |series: String| {
            assert!(
                text.contains(&format!("{series} 0\n")),
                "missing {series} 0"
            )
        };
        for c in CHANNELS {
            has(format!(
                "recall_radar_events_consumed_total{{channel=\"{c}\"}}"
            ));
        }
        for r in BAD_REASONS {
            has(format!("recall_radar_events_bad_total{{reason=\"{r}\"}}"));
        }
        for k in DEAD_LETTER_KINDS {
            has(format!(
                "recall_radar_dead_letters_published_total{{kind=\"{k}\"}}"
            ));
        }
        for l in ALERT_LEVELS {
            for s in ALERT_STATUSES {
                has(format!(
                    "recall_radar_alerts_published_total{{level=\"{l}\",status=\"{s}\"}}"
                ));
            }
            has(format!("recall_radar_open_episodes{{level=\"{l}\"}}"));
        }
        for k in REBALANCE_KINDS {
            has(format!("recall_radar_rebalances_total{{kind=\"{k}\"}}"));
        }
        for plain in [
            "recall_radar_events_late_total",
            "recall_radar_events_duplicate_total",
            "recall_radar_live_keys",
            "recall_radar_keys_evicted_total",
            "recall_radar_keys_refused_total",
            "recall_radar_producer_queue_messages",
            "recall_radar_partitions_assigned",
            "recall_radar_input_paused",
            "recall_radar_processing_latency_seconds_count",
            "recall_radar_event_time_lag_seconds_count",
        ] {
            has(plain.to_owned());
        }
        let version = env!("CARGO_PKG_VERSION");
        assert!(text.contains(&format!(
            "recall_radar_build_info{{version=\"{version}\"}} 1\n"
        )));
        // Buckets span 0.5 ms .. 30 s and 1 s .. 30 days.
        assert!(text.contains("recall_radar_processing_latency_seconds_bucket{le=\"0.0005\"} 0\n"));
        assert!(text.contains("recall_radar_processing_latency_seconds_bucket{le=\"30\"} 0\n"));
        assert!(text.contains("recall_radar_event_time_lag_seconds_bucket{le=\"1\"} 0\n"));
        assert!(text.contains("recall_radar_event_time_lag_seconds_bucket{le=\"2592000\"} 0\n"));
    }

    #[test]
    fn instances_do_not_share_a_registry() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.events_late.inc();
        assert!(a.render().contains("recall_radar_events_late_total 1\n"));
        assert!(b.render().contains("recall_radar_events_late_total 0\n"));
    }

    #[test]
    fn messages_consumed_counts_events_and_bad_messages_once() {
        let m = Metrics::new();
        m.event_tally(&["call", "web"]).consumed(1, 0.0);
        m.events_consumed.with_label_values(&["chat"]).inc_by(2);
        m.events_bad.with_label_values(&["bad_date"]).inc();
        // A late event was consumed first: it is in events_consumed already.
        m.events_late.inc();
        assert_eq!(m.messages_consumed(), 4);
    }

    #[test]
    fn observations_reach_the_exposition() {
        let m = Metrics::new();
        m.observe_processing_latency(Duration::from_millis(3));
        let mut tally = m.event_tally(&["call"]);
        tally.consumed(0, -5.0);
        tally.consumed(0, 90.0);
        drop(tally);
        m.set_consumer_lag("contacts", 0, 7);
        m.forget_consumer_lag("contacts", 0);
        m.forget_consumer_lag("contacts", 9);
        let text = m.render();
        assert!(text.contains("recall_radar_processing_latency_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("recall_radar_processing_latency_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("recall_radar_event_time_lag_seconds_bucket{le=\"1\"} 1\n"));
        assert!(text.contains("recall_radar_event_time_lag_seconds_count 2\n"));
        assert!(!text.contains("recall_radar_consumer_lag_messages{"));
        assert_eq!(m.processing_latency_hdr.count(), 1);
    }

    fn close(actual: Duration, expected: Duration) -> bool {
        let (a, e) = (actual.as_secs_f64(), expected.as_secs_f64());
        (a - e).abs() <= e * 0.002
    }

    #[test]
    fn processing_latency_feeds_both_recorders() {
        let m = Metrics::new();
        for ms in [1, 2, 3, 4, 100] {
            m.observe_processing_latency(Duration::from_millis(ms));
        }
        assert_eq!(m.processing_latency.get_sample_count(), 5);
        assert_eq!(m.processing_latency_hdr.count(), 5);
        assert!(close(
            m.processing_latency_hdr.quantile(0.5),
            Duration::from_millis(3)
        ));
        assert!(close(
            m.processing_latency_hdr.max(),
            Duration::from_millis(100)
        ));
    }
}
