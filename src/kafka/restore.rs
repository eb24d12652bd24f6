//! Taking over partitions: find each one's committed offset and newest valid checkpoint, and
//! rebuild its windows by replaying the input between them (kafka/rebuild.rs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::Offset;

use super::checkpoint;
use super::client::{partition_list, Context};
use super::outbox::TopicPartition;
use super::partition::PartitionState;
use super::rebuild::{rebuild, Plan, Rebuilt};
use crate::config::KafkaConfig;
use crate::engine::Engine;
use crate::policy::Policy;

/// How long fetching committed offsets or reading the checkpoint topic may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
#[error("cannot rebuild partition {topic}/{partition}: {source}")]
pub struct RestoreError {
    pub topic: String,
    pub partition: i32,
    pub source: KafkaError,
}

impl RestoreError {
    pub fn new(tp: &TopicPartition, source: KafkaError) -> RestoreError {
        RestoreError {
            topic: tp.0.clone(),
            partition: tp.1,
            source,
        }
    }
}

async fn blocking<T: Send + 'static>(
    tp: &TopicPartition,
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, RestoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(KafkaError::Canceled))
        .map_err(|e| RestoreError::new(tp, e))
}

/// The state of each of `tps`, with what its rebuild did (`None`: nothing to rebuild).
pub async fn restore(
    consumer: &Arc<StreamConsumer<Context>>,
    kafka: &KafkaConfig,
    policy: &Policy,
    tps: Vec<TopicPartition>,
) -> Result<Vec<(TopicPartition, PartitionState, Option<Rebuilt>)>, RestoreError> {
    let Some(first) = tps.first().cloned() else {
        return Ok(Vec::new());
    };
    let tpl = partition_list(&tps);
    let c = consumer.clone();
    let committed = blocking(&first, move || c.committed_offsets(tpl, LOOKUP_TIMEOUT)).await?;
    let (k, wanted) = (kafka.clone(), tps.clone());
    let history = blocking(&first, move || {
        checkpoint::load(&k, &wanted, LOOKUP_TIMEOUT)
    })
    .await?;
    let mut restored = Vec::new();
    for tp in tps {
        let at = committed
            .find_partition(&tp.0, tp.1)
            .and_then(|e| match e.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            });
        let chosen = at.and_then(|n| {
            history
                .get(&tp)
                .and_then(|h| checkpoint::choose(h, n))
                .cloned()
        });
        let mut rebuilt = None;
        let engine = match Plan::new(&tp.0, tp.1, at, chosen.as_ref()) {
            None => Engine::with_policy(policy.clone()),
            Some(plan) => {
                let (k, p) = (kafka.clone(), policy.clone());
                let (engine, done) = blocking(&tp, move || rebuild(&k, p, &plan)).await?;
                tracing::info!(
                    topic = %tp.0,
                    partition = tp.1,
                    from = ?chosen.as_ref().and_then(|c| c.replay_from),
                    committed = ?at,
                    replayed = done.messages,
                    seconds = done.seconds,
                    live_keys = engine.live_keys(),
                    "Partition rebuilt."
                );
                rebuilt = Some(done);
                engine
            }
        };
        let mut state = PartitionState::new(engine, at, Instant::now());
        state.checkpointed = chosen.map(|c| c.next_offset);
        restored.push((tp, state, rebuilt));
    }
    Ok(restored)
}
