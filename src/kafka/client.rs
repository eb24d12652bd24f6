//! librdkafka clients as recall-radar needs them: the settings its delivery guarantees rest on,
//! the user's pass-through properties, and a context that turns librdkafka callbacks into logs,
//! metrics and signals for the async loop (callbacks never do the work themselves).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::TopicPartitionList;
use tokio::sync::mpsc;

use crate::config::{is_secret, Delivery, KafkaConfig};
use crate::metrics::Metrics;

/// What the consumer's callbacks tell the async loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerEvent {
    Assigned(Vec<(String, i32)>),
    /// Partitions being taken away. The rebalance waits: the loop commits what it consumed from
    /// them, drops them, then calls [`finish_revocation`], so their next owner starts from that
    /// commit.
    Revoked(Vec<(String, i32)>),
    /// Partitions lost without a revocation (the group moved on, e.g. after a session timeout):
    /// whatever was not committed for them is their next owner's to redo.
    Lost(Vec<(String, i32)>),
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
    /// The loop is shutting down: revocations are finished in the callback, not deferred.
    closing: AtomicBool,
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
            closing: AtomicBool::new(false),
        }
    }

    /// Whether the loop got `event` (it has gone only when shutting down).
    fn signal(&self, event: ConsumerEvent) -> bool {
        self.events
            .as_ref()
            .is_some_and(|tx| tx.send(event).is_ok())
    }

    /// From now on revocations complete at once: the loop no longer commits before them.
    pub fn closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
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

/// `tps` as librdkafka's list, without offsets (for assignment, pause, committed offsets).
pub fn partition_list(tps: &[(String, i32)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in tps {
        tpl.add_partition(topic, *partition);
    }
    tpl
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// Gives up revoked partitions (incrementally with the cooperative protocol), which lets the
/// rebalance go on.
pub fn finish_revocation<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    revoked: &[(String, i32)],
) -> KafkaResult<()> {
    match consumer.rebalance_protocol() {
        RebalanceProtocol::Cooperative => consumer.incremental_unassign(&partition_list(revoked)),
        _ => consumer.unassign(),
    }
}

impl ConsumerContext for Context {
    /// Assignments take effect at once. A revocation is deferred to the loop, which commits
    /// before giving the partitions up (librdkafka waits for that call); lost partitions, errors
    /// and shutdown are handled here.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let tps = partitions(tpl);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.metrics.rebalances.with_label_values(&["assign"]).inc();
                let r = match consumer.rebalance_protocol() {
                    RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
                    _ => consumer.assign(tpl),
                };
                self.signal(ConsumerEvent::Assigned(tps));
                r
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.metrics.rebalances.with_label_values(&["revoke"]).inc();
                if consumer.assignment_lost() {
                    let r = finish_revocation(consumer, &tps);
                    self.signal(ConsumerEvent::Lost(tps));
                    r
                } else if !self.closing.load(Ordering::Relaxed)
                    && self.signal(ConsumerEvent::Revoked(tps.clone()))
                {
                    return;
                } else {
                    finish_revocation(consumer, &tps)
                }
            }
            _ => {
                let code: RDKafkaErrorCode = err.into();
                self.signal(ConsumerEvent::RebalanceFailed(code.to_string()));
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, client = self.role, "Rebalance call failed.");
        }
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
            // librdkafka's default (1000 ms) pauses fetching a partition for a second whenever
            // its local queue is full, which a daemon slower than the fetcher hits all the time
            // on a backlog: it then waits for input with the broker full of it (preloaded-topic
            // bench on tansu, one run each: 117,600 events/s with 1000, 187,655 with 10).
            ("fetch.queue.backoff.ms", "10"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RawConfig};

    fn kafka(text: &str) -> KafkaConfig {
        let raw = RawConfig::parse(text, "test.toml").expect("parses");
        Config::from_raw(&raw).expect("valid").kafka
    }

    /// librdkafka's 1 s fetch backoff halved throughput on a backlog; a user's value still wins.
    #[test]
    fn the_consumer_backs_off_10ms_on_a_full_queue_unless_told_otherwise() {
        let c = consumer_config(&kafka(""));
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
        let c = consumer_config(&kafka(
            "[kafka.consumer]\n\"fetch.queue.backoff.ms\" = \"250\"",
        ));
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("250"));
    }
}
