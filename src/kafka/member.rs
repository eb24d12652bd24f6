//! A consumer-group member as the daemon and the repartitioner both run one: a consumer whose
//! callbacks signal the loop, an outbox for everything it writes, subscribed to its topics.

use std::sync::Arc;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
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
}

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

/// Creates the clients of `kafka` (its group id and transactional id), registers the
/// transactional id and subscribes to `topics`.
pub async fn join(
    kafka: &KafkaConfig,
    topics: &[String],
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
