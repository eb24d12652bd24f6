//! `recall-radar demo`: the whole daemon on an embedded broker (librdkafka's in-process mock
//! cluster) fed by the synthetic contact center, with alerts printed as they fire.
//!
//! Event time runs fast (about 33 hours per second at the default rate) so that windows fill,
//! bursts escalate and episodes resolve within a short run. Routine contact reasons (billing,
//! delivery...) go into a tag class with high thresholds, as a real deployment would configure.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};

use crate::alert::{Alert, Status};
use crate::config::{Config, RawConfig};
use crate::generate::{ground_truth, routine_class, GenSpec, Generator};
use crate::kafka::produce::{loader, produce_lines};
use crate::policy::Level;
use crate::service;
use crate::shutdown::{self, Shutdown};
use crate::time::{Span, Timestamp};

const INPUT: &str = "contact-events";
const ALERTS: &str = "recall-alerts";
const DEAD_LETTERS: &str = "recall-radar-dead-letters";
const PARTITIONS: i32 = 3;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How long to feed events; `None` runs until Ctrl-C.
    pub duration: Option<Duration>,
    /// Contact events per second.
    pub rate: f64,
    pub seed: u64,
    pub admin_addr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("embedded broker: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Service(#[from] service::ServiceError),
    #[error("the daemon task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What the demo saw, printed at the end.
#[derive(Debug, Default, Clone)]
pub struct DemoReport {
    pub events_sent: u64,
    pub alerts: BTreeMap<String, u64>,
    pub bursts: usize,
    pub bursts_caught: usize,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub admin_addr: Option<SocketAddr>,
}

/// Event time per event: at the default 2,000 events/s, 33 hours of event time per second.
const EVENT_GAP: Span = Span::from_secs(60);

fn spec(options: &DemoOptions) -> GenSpec {
    let seconds = options.duration.map_or(3600.0, |d| d.as_secs_f64());
    let events = (options.rate * seconds).max(1000.0) as u64;
    GenSpec {
        seed: options.seed,
        events,
        products: 5_000,
        start: Timestamp::now().saturating_sub(Span::from_days(365)),
        mean_gap: EVENT_GAP,
        bursts: ((seconds / 4.0) as u32).max(1),
        burst_span: Span::from_secs(36 * 3600),
        defect_rate: 0.01,
        ..GenSpec::default()
    }
}

fn config(brokers: &str, admin_addr: &str) -> Result<Config, crate::config::ConfigError> {
    let mut raw = RawConfig::default();
    raw.detector.tag_class.push(routine_class());
    raw.kafka.brokers = brokers.into();
    raw.kafka.input_topics = vec![INPUT.into()];
    raw.kafka.alert_topic = ALERTS.into();
    raw.kafka.dlq_topic = DEAD_LETTERS.into();
    raw.kafka
        .consumer
        .insert("session.timeout.ms".into(), "6000".into());
    raw.daemon.idle_tick = "100ms".into();
    raw.daemon.grace_period = "10s".into();
    raw.admin.addr = admin_addr.into();
    Config::from_raw(&raw)
}

fn plural(n: u32, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// One readable line per alert worth a person's attention.
fn describe(alert: &Alert, elapsed: Duration, burst: Option<usize>) -> Option<String> {
    let when = format!("{:>6.1}s", elapsed.as_secs_f64());
    let key = format!("{} · {}", alert.product_id, alert.defect_tag);
    let channels: Vec<String> = alert
        .channels
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let truth = burst.map_or(String::new(), |i| format!("  [injected burst #{}]", i + 1));
    match (alert.status, alert.level) {
        (Status::Firing, Level::Problem) => Some(format!(
            "{when}  PROBLEM  recall candidate  {key}  {}, {} in {}d ({})  rule: {}{}{truth}",
            plural(alert.reporters, "reporter"),
            plural(alert.reports, "report"),
            alert.window.seconds / 86_400,
            channels.join(", "),
            alert.rule.description,
            if alert.severity.injuries + alert.severity.deaths > 0 {
                format!(
                    "  injuries {} deaths {}",
                    alert.severity.injuries, alert.severity.deaths
                )
            } else {
                String::new()
            },
        )),
        (Status::Firing, Level::Pattern) => Some(format!(
            "{when}  pattern  {key}  {} reporters in {}d{truth}",
            alert.reporters,
            alert.window.seconds / 86_400
        )),
        (Status::Resolved, Level::Problem) => Some(format!(
            "{when}  resolved {key}  (was a recall candidate; no reports for {}d)",
            alert.window.seconds / 86_400
        )),
        _ => None,
    }
}

/// Reads the alert topic and prints what fires; returns counts and which bursts were caught.
async fn watch_alerts(
    brokers: String,
    bursts: HashMap<(String, String), usize>,
    started: Instant,
    mut stop: Shutdown,
) -> Result<(BTreeMap<String, u64>, Vec<bool>), DemoError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "recall-radar-demo-viewer")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(ALERTS, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut counts = BTreeMap::new();
    let mut caught = vec![false; bursts.len()];
    loop {
        let message = tokio::select! {
            _ = stop.wait() => break,
            m = consumer.recv() => m,
        };
        let Ok(m) = message else { continue };
        let Some(alert) = m
            .payload()
            .and_then(|p| serde_json::from_slice::<Alert>(p).ok())
        else {
            continue;
        };
        let name = format!("{} {}", alert.level.as_str(), alert.status.as_str());
        *counts.entry(name).or_insert(0u64) += 1;
        let burst = bursts
            .get(&(alert.product_id.clone(), alert.defect_tag.clone()))
            .copied();
        if let (Some(i), Level::Problem, Status::Firing) = (burst, alert.level, alert.status) {
            caught[i] = true;
        }
        if let Some(line) = describe(&alert, started.elapsed(), burst) {
            println!("{line}");
        }
    }
    Ok((counts, caught))
}

/// Runs the demo until the duration passes or `shutdown` fires.
pub async fn run(options: DemoOptions, mut shutdown: Shutdown) -> Result<DemoReport, DemoError> {
    let cluster = MockCluster::new(1)?;
    for topic in [INPUT, ALERTS, DEAD_LETTERS] {
        cluster.create_topic(topic, PARTITIONS, 1)?;
    }
    let brokers = cluster.bootstrap_servers();
    let config = config(&brokers, &options.admin_addr)?;
    let spec = spec(&options);
    let truth = ground_truth(&spec);
    let bursts: HashMap<(String, String), usize> = truth
        .iter()
        .enumerate()
        .map(|(i, b)| ((b.product_id.clone(), b.defect_tag.clone()), i))
        .collect();
    println!(
        "recall-radar demo: embedded broker at {brokers}; {} contact events/s, {} injected defect bursts; window 30d, rungs 1/2/3 reporters (anomaly, pattern, problem).",
        options.rate,
        truth.len()
    );
    let (stop_daemon, daemon_shutdown) = shutdown::channel();
    let running = service::start(config, daemon_shutdown).await?;
    if let Some(addr) = running.admin_addr {
        println!("metrics: http://{addr}/metrics   open episodes: http://{addr}/api/signals");
    }
    println!("anomalies are counted, patterns and problems printed as they fire:\n");
    let started = Instant::now();
    let (stop_viewer, viewer_shutdown) = shutdown::channel();
    let viewer = tokio::spawn(watch_alerts(
        brokers.clone(),
        bursts,
        started,
        viewer_shutdown,
    ));
    let (stop_feed, feed_shutdown) = shutdown::channel();
    let producer = loader(&brokers, &[])?;
    let rate = options.rate;
    let feed = tokio::spawn(async move {
        let lines = Generator::new(spec).map(|e| e.json.into_bytes());
        produce_lines(&producer, INPUT, lines, Some(rate), Some(feed_shutdown)).await
    });
    let until = async {
        match options.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = until => {},
        _ = shutdown.wait() => {},
    }
    stop_feed.fire();
    let sent = feed.await?.map(|r| r.sent)?;
    // Let the last events become final (1h of event time at the demo's pace) and publish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = running.services.metrics.clone();
    stop_daemon.fire();
    running.task.await??;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_viewer.fire();
    let (alerts, caught) = viewer.await??;
    Ok(DemoReport {
        events_sent: sent,
        alerts,
        bursts: caught.len(),
        bursts_caught: caught.iter().filter(|c| **c).count(),
        latency_p50: metrics.processing_latency_hdr.quantile(0.5),
        latency_p99: metrics.processing_latency_hdr.quantile(0.99),
        admin_addr: running.admin_addr,
    })
}

impl DemoReport {
    pub fn render(&self) -> String {
        let alerts: Vec<String> = self
            .alerts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "\ndemo summary: {} events sent; alerts {}; injected bursts caught as recall candidates: {} of {}; event-to-alert-acknowledged latency p50 {:.1} ms, p99 {:.1} ms",
            self.events_sent,
            alerts.join(", "),
            self.bursts_caught,
            self.bursts,
            self.latency_p50.as_secs_f64() * 1e3,
            self.latency_p99.as_secs_f64() * 1e3,
        )
    }
}
