//! A consumer-group member as the daemon and the repartitioner both run one: a consumer whose
//! callbacks signal the loop, an outbox for everything it writes, subscribed to its topics.
//! Before it subscribes it checks that the topics it writes to are on the broker.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use tokio::sync::mpsc;

use super::client::{consumer_config, describe, producer_config, ConsumerEvent, Context};
use super::outbox::Outbox;
use crate::config::KafkaConfig;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("cannot create the Kafka {role}: {source}")]
    Client {
        role: &'static str,
        source: KafkaError,
    },
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: KafkaError,
    },
    /// Topics this member writes to that the broker does not have (or will not let it see),
    /// each with the broker's error.
    #[error(
        "the broker cannot take records for {}: create the topics first (recall-radar does not create them)",
        missing_list(.0)
    )]
    MissingTopics(Vec<(String, RDKafkaErrorCode)>),
}

fn missing_list(missing: &[(String, RDKafkaErrorCode)]) -> String {
    missing
        .iter()
        .map(|(topic, code)| format!("{topic} ({code})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How long the check of the written topics waits for the broker before it lets the member
/// start anyway (a broker that is away is waited for like any outage).
const TOPIC_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Member {
    /// Shared: the loop borrows messages from it while the outbox commits through it.
    pub consumer: Arc<StreamConsumer<Context>>,
    /// What the consumer's callbacks tell the loop.
    pub events: mpsc::UnboundedReceiver<ConsumerEvent>,
    pub outbox: Outbox,
}

/// What the member's clients are called in logs and errors.
pub struct Roles {
    pub consumer: &'static str,
    pub producer: &'static str,
}

/// Creates the clients of `kafka` (its group id and transactional id), checks that the broker
/// has the topics in `writes`, registers the transactional id and subscribes to `topics`.
pub async fn join(
    kafka: &KafkaConfig,
    topics: &[String],
    writes: &[String],
    roles: Roles,
    metrics: Arc<Metrics>,
) -> Result<Member, MemberError> {
    let confirm = kafka
        .confirm_offsets
        .then(|| metrics.offsets_recommitted.clone());
    let consumer_cfg = consumer_config(kafka);
    let producer_cfg = producer_config(kafka);
    tracing::info!(client = roles.consumer, config = %describe(&consumer_cfg), "Creating the consumer.");
    tracing::info!(client = roles.producer, config = %describe(&producer_cfg), "Creating the producer.");
    let (events_tx, events) = mpsc::unbounded_channel();
    let consumer: StreamConsumer<Context> = consumer_cfg
        .create_with_context(Context::new(
            roles.consumer,
            metrics.clone(),
            Some(events_tx),
        ))
        .map_err(|source| MemberError::Client {
            role: roles.consumer,
            source,
        })?;
    let producer: FutureProducer<Context> = producer_cfg
        .create_with_context(Context::new(roles.producer, metrics, None))
        .map_err(|source| MemberError::Client {
            role: roles.producer,
            source,
        })?;
    check_writes(&producer, writes).await?;
    let consumer = Arc::new(consumer);
    let outbox = Outbox::new(
        kafka.delivery,
        confirm,
        producer,
        consumer.clone(),
        kafka.checkpoint_topic.clone(),
    )
    .await
    .map_err(|source| MemberError::Client {
        role: "transactional producer",
        source,
    })?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|source| MemberError::Subscribe {
            topics: topics.to_vec(),
            source,
        })?;
    Ok(Member {
        consumer,
        events,
        outbox,
    })
}

/// Fails when the broker answers that a topic in `writes` does not exist (or may not be
/// written). Without this check the member would run until its first commit, then stop on an
/// error that names no topic (at least once), or abort every transaction and consume the same
/// input again and again (exactly once); the daemon asks again after a failed commit, for a
/// topic deleted while it runs. The question goes through the producer's metadata request,
/// which lets a broker that creates topics on first use create them here, as the first record
/// would. A broker that does not answer in time is not an error here: the clients wait for it
/// as for any outage.
pub(super) async fn check_writes(
    producer: &FutureProducer<Context>,
    writes: &[String],
) -> Result<(), MemberError> {
    let producer = producer.clone();
    let writes = writes.to_vec();
    let checked = tokio::task::spawn_blocking(move || {
        let mut missing = Vec::new();
        for topic in &writes {
            let metadata = producer
                .client()
                .fetch_metadata(Some(topic), TOPIC_CHECK_TIMEOUT)?;
            let error = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .and_then(|t| t.error());
            if let Some(e) = error.filter(|e| is_missing(*e)) {
                missing.push((topic.clone(), RDKafkaErrorCode::from(e)));
            }
        }
        Ok::<_, KafkaError>(missing)
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled));
    match checked {
        Ok(missing) if missing.is_empty() => Ok(()),
        Ok(missing) => Err(MemberError::MissingTopics(missing)),
        Err(error) => {
            tracing::warn!(%error, "Cannot check the written topics now; going on without.");
            Ok(())
        }
    }
}

/// A metadata error that means the topic cannot be written (a topic just created on first use
/// answers `LEADER_NOT_AVAILABLE` for a while: not missing).
fn is_missing(error: RDKafkaRespErr) -> bool {
    matches!(
        RDKafkaErrorCode::from(error),
        RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::InvalidTopic
    )
}
