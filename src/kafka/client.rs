//! librdkafka clients as recall-radar needs them: the settings its delivery guarantees rest on,
//! the user's pass-through properties, and a context that turns librdkafka callbacks into logs,
//! metrics and signals for the async loop (callbacks never do the work themselves).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::mpsc;

use crate::config::{is_secret, Delivery, KafkaConfig};
use crate::metrics::Metrics;

/// What the consumer's callbacks tell the async loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerEvent {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
    RebalanceFailed(String),
    /// The fetcher reached the end of this partition number (of some input topic).
    EndOfPartition(i32),
}

/// Shared by the consumer and the producer.
pub struct Context {
    role: &'static str,
    metrics: Arc<Metrics>,
    events: Option<mpsc::UnboundedSender<ConsumerEvent>>,
    brokers_down: AtomicBool,
}

impl Context {
    pub fn new(
        role: &'static str,
        metrics: Arc<Metrics>,
        events: Option<mpsc::UnboundedSender<ConsumerEvent>>,
    ) -> Context {
        Context {
            role,
            metrics,
            events,
            brokers_down: AtomicBool::new(false),
        }
    }

    fn signal(&self, event: ConsumerEvent) {
        if let Some(tx) = &self.events {
            // The loop has gone only when shutting down; nothing to tell then.
            let _ = tx.send(event);
        }
    }

    /// A request succeeded: if the brokers were down, say once that they are back.
    pub fn brokers_reachable(&self) {
        if self.brokers_down.swap(false, Ordering::Relaxed) {
            tracing::info!(client = self.role, "Brokers reachable again.");
        }
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(client = self.role, facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(client = self.role, facility = fac, "librdkafka: {message}")
            }
            _ => tracing::debug!(client = self.role, facility = fac, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(partition) => {
                self.signal(ConsumerEvent::EndOfPartition(partition));
                return;
            }
            // The same end of partition, without its number; the consumer's queue carries it.
            KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => return,
            _ => {}
        }
        let all_down = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
        );
        if all_down {
            // Logged once per state change: a broker outage is not a stream of errors.
            if !self.brokers_down.swap(true, Ordering::Relaxed) {
                tracing::warn!(client = self.role, %reason, "Brokers unreachable; retrying.");
            }
        } else {
            tracing::error!(client = self.role, %error, %reason, "Kafka client error.");
        }
    }

    fn stats(&self, stats: Statistics) {
        if self.role == "producer" {
            self.metrics.producer_queue.set(stats.msg_cnt as i64);
            return;
        }
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .set_consumer_lag(topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

fn partitions(rebalance: &Rebalance<'_>) -> Option<Vec<(String, i32)>> {
    let tpl = match rebalance {
        Rebalance::Assign(tpl) | Rebalance::Revoke(tpl) => tpl,
        Rebalance::Error(_) => return None,
    };
    Some(
        tpl.elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect(),
    )
}

impl ConsumerContext for Context {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let event = match (rebalance, partitions(rebalance)) {
            (Rebalance::Assign(_), Some(p)) => {
                self.metrics.rebalances.with_label_values(&["assign"]).inc();
                ConsumerEvent::Assigned(p)
            }
            (Rebalance::Revoke(_), Some(p)) => {
                self.metrics.rebalances.with_label_values(&["revoke"]).inc();
                ConsumerEvent::Revoked(p)
            }
            (Rebalance::Error(e), _) => ConsumerEvent::RebalanceFailed(e.to_string()),
            _ => return,
        };
        self.signal(event);
    }
}

/// Settings under the user's properties: sensible defaults they may change.
fn apply(config: &mut ClientConfig, defaults: &[(&str, &str)], user: &BTreeMap<String, String>) {
    for (k, v) in defaults {
        config.set(*k, *v);
    }
    for (k, v) in user {
        config.set(k, v);
    }
}

/// The properties of a client config with secrets redacted, for logs.
pub fn describe(config: &ClientConfig) -> String {
    let mut pairs: Vec<String> = config
        .config_map()
        .iter()
        .map(|(k, v)| {
            if is_secret(k) {
                format!("{k}=<redacted>")
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    pairs.sort();
    pairs.join(" ")
}

/// The input consumer. recall-radar commits offsets itself (inside the alert transaction, or
/// after the alerts are acknowledged), reads only committed input, and moves partitions between
/// instances incrementally (cooperative-sticky) so a rebalance does not stop every partition.
pub fn consumer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    apply(
        &mut c,
        &[
            ("auto.offset.reset", "earliest"),
            ("statistics.interval.ms", "5000"),
            ("client.id", "recall-radar"),
            ("partition.assignment.strategy", "cooperative-sticky"),
        ],
        &kafka.consumer,
    );
    c.set("bootstrap.servers", &kafka.brokers)
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    c
}

/// The alert, dead-letter and checkpoint producer: idempotent and acknowledged by all in-sync
/// replicas. Exactly-once: transactional, with this instance's transactional id (stable across
/// restarts, so a restart aborts what a crash left open). At-least-once: retrying for as long as
/// it takes (an outage delays alerts, it does not lose them).
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    let mut defaults = vec![
        ("linger.ms", "1"),
        ("statistics.interval.ms", "5000"),
        ("partitioner", "murmur2_random"),
        ("client.id", "recall-radar"),
    ];
    if kafka.delivery == Delivery::AtLeastOnce {
        // A transaction bounds its messages' timeout instead (transaction.timeout.ms).
        defaults.push(("message.timeout.ms", "0"));
    }
    apply(&mut c, &defaults, &kafka.producer);
    c.set("bootstrap.servers", &kafka.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all");
    if kafka.delivery == Delivery::ExactlyOnce {
        c.set("transactional.id", &kafka.transactional_id);
    }
    c
}
