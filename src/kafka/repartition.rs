//! The repartitioner (`[kafka] repartition = true`): window state lives per partition, so every
//! report of a product must reach the same partition. Input that is not keyed by product_id is
//! re-published, payload and headers unchanged, to an internal topic keyed by product_id, and
//! detection consumes that topic instead of the input.
//!
//! It has its own consumer group (`<group_id>-repartition`) and transactional id
//! (`<transactional_id>-repartition`), and sends through the same outbox as the daemon: with
//! exactly-once delivery a record reaches the internal topic once, committed together with the
//! input offset it came from. A record without a product id is sent unkeyed; the detector
//! dead-letters it with the reason.
//!
//! Like the daemon, it is held to the grace period from the signal, wherever it waits, and a
//! failed commit that turns out to be the repartition topic's absence stops it, naming the topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{finish_revocation, partition_list, ConsumerEvent, Context};
use super::member::{self, MemberError, Roles};
use super::outbox::{count_commit, CommitError, Outbox, TopicPartition};
use super::produce::product_key;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::shutdown::{self, Shutdown};

/// How long rewinding to the committed offsets (lookup, then seek) may take.
const REWIND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RepartitionError {
    #[error("repartition is off: kafka.repartition_topic is not set")]
    NotConfigured,
    #[error("repartitioner: {0}")]
    Member(#[from] MemberError),
    #[error("a record could not be sent to the repartition topic {topic}: {source}")]
    Send { topic: String, source: KafkaError },
    #[error("repartitioner: {0}")]
    Commit(#[from] CommitError),
    #[error("cannot rewind to the committed offsets after an aborted transaction: {0}")]
    Rewind(KafkaError),
    #[error("the repartitioner did not finish within the grace period; what was not committed is re-published")]
    GraceExpired,
}

/// What a run did, for its last log line and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepartitionSummary {
    /// Records sent to the repartition topic (again, after an aborted transaction).
    pub messages: u64,
    /// Of those, records without a product id, sent unkeyed.
    pub unkeyed: u64,
}

struct Repartitioner {
    config: Config,
    metrics: Arc<Metrics>,
    topic: String,
    consumer: Arc<StreamConsumer<Context>>,
    outbox: Outbox,
    assigned: Vec<TopicPartition>,
    /// The next offset to consume per partition, consumed since the last commit.
    pending: HashMap<TopicPartition, i64>,
    summary: RepartitionSummary,
}

/// Runs until `shutdown` fires, then commits within the grace period, which counts from the
/// signal wherever the loop is then (a commit through an outage does not postpone it).
pub async fn run(
    config: Config,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> Result<RepartitionSummary, RepartitionError> {
    let grace = config.daemon.grace_period.as_std();
    shutdown::within_grace(
        shutdown.clone(),
        grace,
        "The repartitioner",
        run_until_drained(config, metrics, shutdown),
    )
    .await
    .unwrap_or(Err(RepartitionError::GraceExpired))
}

async fn run_until_drained(
    config: Config,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) -> Result<RepartitionSummary, RepartitionError> {
    let topic = config
        .kafka
        .repartition_topic
        .clone()
        .ok_or(RepartitionError::NotConfigured)?;
    // Its own group and transactional id; it writes no checkpoints, so the outbox's checkpoint
    // topic goes unused.
    let mut kafka = config.kafka.clone();
    kafka.group_id = format!("{}-repartition", config.kafka.group_id);
    kafka.transactional_id = format!("{}-repartition", config.kafka.transactional_id);
    let member = member::join(
        &kafka,
        &config.kafka.input_topics,
        std::slice::from_ref(&topic),
        Roles {
            consumer: "repartition consumer",
            producer: "repartition producer",
        },
        metrics.clone(),
    )
    .await?;
    let (consumer, mut consumer_events, outbox) = (member.consumer, member.events, member.outbox);
    tracing::info!(
        inputs = ?config.kafka.input_topics,
        topic = %topic,
        group = %kafka.group_id,
        transactional_id = %kafka.transactional_id,
        delivery = ?config.kafka.delivery,
        "Repartitioner subscribed; waiting for partitions."
    );
    let mut commit = tokio::time::interval(config.daemon.commit_interval.as_std());
    commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut r = Repartitioner {
        config,
        metrics,
        topic,
        consumer: consumer.clone(),
        outbox,
        assigned: Vec::new(),
        pending: HashMap::new(),
        summary: RepartitionSummary::default(),
    };
    // One stream for the loop's life: `recv()` builds one per message.
    let mut messages = consumer.stream();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            Some(event) = consumer_events.recv() => r.consumer_event(event).await?,
            _ = commit.tick() => r.commit().await?,
            Some(message) = messages.next() => match message {
                Ok(m) => r.forward(&m).await?,
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(e) => tracing::warn!(error = %e, "Repartition consume error; retrying."),
            },
        }
    }
    drop(messages);
    r.drain().await
}

impl Repartitioner {
    /// Sends one input record to the repartition topic, keyed by its product id.
    async fn forward(&mut self, m: &BorrowedMessage<'_>) -> Result<(), RepartitionError> {
        let payload = m.payload().unwrap_or_default();
        let key = product_key(payload);
        let headers = m.headers().map_or_else(OwnedHeaders::new, |h| h.detach());
        if key.is_none() {
            self.summary.unkeyed += 1;
            self.metrics.repartitioned_unkeyed.inc();
            tracing::debug!(
                topic = m.topic(),
                partition = m.partition(),
                offset = m.offset(),
                "No product id; re-publishing unkeyed."
            );
        }
        self.outbox
            .send(
                &self.topic,
                key.as_deref().map(str::as_bytes),
                payload,
                headers,
            )
            .await
            .map_err(|source| RepartitionError::Send {
                topic: self.topic.clone(),
                source,
            })?;
        self.summary.messages += 1;
        self.metrics.repartitioned.inc();
        self.pending
            .insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
        Ok(())
    }

    /// Commits the offsets consumed since the last commit with what was sent for them.
    async fn commit(&mut self) -> Result<(), RepartitionError> {
        let offsets: Vec<(TopicPartition, i64)> = self
            .pending
            .iter()
            .map(|(tp, next)| (tp.clone(), *next))
            .collect();
        let outcome = self.outbox.commit(&offsets, &[]).await;
        count_commit(
            &self.metrics.repartition_commits,
            &outcome,
            offsets.is_empty(),
        );
        match outcome {
            Ok(()) => {
                self.pending.clear();
                Ok(())
            }
            Err(CommitError::NotCommitted(error)) => {
                tracing::warn!(%error, "Repartition offsets not committed; retrying at the next commit.");
                Ok(())
            }
            Err(CommitError::Aborted(error)) => {
                tracing::warn!(%error, "Repartition transaction aborted; going back to the committed offsets.");
                self.check_written_topic().await?;
                self.pending.clear();
                self.rewind().await
            }
            Err(e) => {
                self.check_written_topic().await?;
                Err(e.into())
            }
        }
    }

    /// A repartition topic deleted while the repartitioner runs fails every commit: stop and
    /// name it, rather than re-publish the same input for ever (as the daemon does for the
    /// topics it writes).
    async fn check_written_topic(&self) -> Result<(), RepartitionError> {
        member::check_writes(self.outbox.producer(), std::slice::from_ref(&self.topic)).await?;
        Ok(())
    }

    /// Seeks every assigned partition back to its committed offset: nothing of the aborted
    /// transaction is visible, so all of it is consumed and sent again.
    async fn rewind(&mut self) -> Result<(), RepartitionError> {
        if self.assigned.is_empty() {
            return Ok(());
        }
        let tpl = partition_list(&self.assigned);
        let consumer = self.consumer.clone();
        let failed = tokio::task::spawn_blocking(move || {
            let committed = consumer.committed_offsets(tpl, REWIND_TIMEOUT)?;
            let mut to = TopicPartitionList::new();
            for e in committed.elements() {
                // Never committed: from the beginning, as auto.offset.reset = earliest would.
                let offset = match e.offset() {
                    Offset::Offset(n) => Offset::Offset(n),
                    _ => Offset::Beginning,
                };
                to.add_partition_offset(e.topic(), e.partition(), offset)?;
            }
            let sought = consumer.seek_partitions(to, REWIND_TIMEOUT)?;
            // A partition revoked meanwhile is its new owner's to consume from the commit.
            let owned = consumer.assignment()?;
            let failed: Vec<(String, i32, KafkaError)> = sought
                .elements()
                .iter()
                .filter_map(|e| {
                    let error = e.error().err()?;
                    owned
                        .find_partition(e.topic(), e.partition())
                        .map(|_| (e.topic().to_owned(), e.partition(), error))
                })
                .collect();
            Ok::<_, KafkaError>(failed)
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled))
        .map_err(RepartitionError::Rewind)?;
        if let Some((topic, partition, error)) = failed.into_iter().next() {
            tracing::error!(%topic, partition, %error, "Seek failed; records after the commit would be skipped.");
            return Err(RepartitionError::Rewind(error));
        }
        tracing::info!(partitions = ?self.assigned, "Rewound to the committed offsets.");
        Ok(())
    }

    async fn consumer_event(&mut self, event: ConsumerEvent) -> Result<(), RepartitionError> {
        match event {
            ConsumerEvent::Assigned(tps) => {
                tracing::info!(partitions = ?tps, "Repartition partitions assigned.");
                for tp in tps {
                    if !self.assigned.contains(&tp) {
                        self.assigned.push(tp);
                    }
                }
            }
            ConsumerEvent::Revoked(tps) => {
                tracing::info!(partitions = ?tps, "Repartition partitions revoked.");
                self.assigned.retain(|tp| !tps.contains(tp));
                // Hand over what was sent before letting go; the rebalance waits for this.
                let committed = self.commit().await;
                for tp in &tps {
                    self.pending.remove(tp);
                    self.metrics.forget_consumer_lag(&tp.0, tp.1);
                }
                if let Err(e) = finish_revocation(&*self.consumer, &tps) {
                    tracing::warn!(error = %e, "Giving up revoked partitions failed.");
                }
                committed?;
            }
            ConsumerEvent::Lost(tps) => {
                tracing::warn!(partitions = ?tps, "Repartition partitions lost; their next owner redoes what was not committed.");
                self.assigned.retain(|tp| !tps.contains(tp));
                for tp in &tps {
                    self.metrics.forget_consumer_lag(&tp.0, tp.1);
                }
                self.pending.clear();
                self.outbox.abort().await?;
                self.rewind().await?;
            }
            ConsumerEvent::RebalanceFailed(e) => {
                tracing::warn!(error = %e, "Repartition rebalance failed.")
            }
            ConsumerEvent::EndOfPartition(_) => {}
        }
        Ok(())
    }

    /// Stops fetching, commits and flushes (`run` holds this to the grace period).
    async fn drain(mut self) -> Result<RepartitionSummary, RepartitionError> {
        let grace = self.config.daemon.grace_period.as_std();
        tracing::info!(grace = ?grace, "Repartitioner draining.");
        self.consumer.context().closing();
        self.commit().await?;
        if let Err(e) = self.outbox.flush(grace).await {
            tracing::warn!(error = %e, "Repartition producer flush incomplete.");
        }
        self.consumer.unsubscribe();
        tracing::info!(
            messages = self.summary.messages,
            unkeyed = self.summary.unkeyed,
            "Repartitioner stopped cleanly."
        );
        Ok(self.summary)
    }
}
