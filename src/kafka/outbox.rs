//! Everything the daemon writes to Kafka goes through the outbox, which makes input offsets,
//! alerts, dead letters and checkpoints visible together.
//!
//! - Exactly-once: what one commit interval sends and the input offsets it consumed form one
//!   transaction (offsets sent to the transaction with the consumer's group metadata), so a
//!   read_committed reader sees each alert once, whatever crashes: an aborted or unfinished
//!   transaction's alerts are never seen and its input is consumed again.
//! - At-least-once: sends are acknowledged first, then the offsets are committed, then the
//!   checkpoints written. A crash in between repeats alerts, with the same ids.
//!
//! - Confirmed offsets (`kafka.confirm_offsets`): some brokers acknowledge a transaction before
//!   its offsets are applied. tansu 0.6 applies them only once no other producer's transaction
//!   on the same partitions is open, and until then keeps them with the producer's next
//!   transaction, so that transaction's abort (a crash, then the restart's re-init) drops them:
//!   the input is consumed again and its alerts published twice. With the option on, each
//!   commit reads the offsets back and commits them again, in offsets-only transactions, until
//!   the broker shows them; nothing new is begun before.
//!
//! A commit runs in a task of its own while the caller goes on consuming ([`Outbox::start_commit`],
//! [`Outbox::finished`]): a transaction being committed takes no new records, so records sent
//! meanwhile are held and released into the next one. librdkafka's transaction calls block;
//! they run on the blocking thread pool, and one that times out (it goes on in the background)
//! is made again until it ends (`until_finished`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use prometheus::{IntCounter, IntCounterVec};

use super::checkpoint::Checkpoint;
use super::client::Context;
use super::publish::enqueue;
use crate::config::Delivery;

/// How long one blocking Kafka call (init, send offsets, commit, abort) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a commit keeps committing offsets again that the broker does not show.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// The first and the longest pause between two reads of the committed offsets.
const CONFIRM_PAUSE: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(200));

pub type TopicPartition = (String, i32);

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Nothing sent since the last commit is visible, and the offsets did not move: the
    /// partitions' state is ahead of Kafka and must be rebuilt.
    #[error("the transaction was aborted: {0}")]
    Aborted(KafkaError),
    /// At-least-once: the offsets were not committed (a rebalance took the partitions, the
    /// broker is away); everything sent is acknowledged, the next commit tries again.
    #[error("offsets not committed: {0}")]
    NotCommitted(KafkaError),
    /// The producer cannot go on (fenced by another instance with the same transactional id,
    /// or a fatal broker error).
    #[error("cannot commit: {0}")]
    Fatal(KafkaError),
    /// A commit failed and so did the abort that followed: the producer cannot go on.
    #[error("cannot commit ({commit}), nor abort the transaction ({abort})")]
    Unabortable {
        commit: KafkaError,
        abort: KafkaError,
    },
}

/// Counts a commit's `outcome` in `commits` (labelled by `metrics::COMMIT_OUTCOMES`); a
/// commit of nothing (`empty`) is not counted, nor one that stops the loop (it says so itself).
pub fn count_commit(commits: &IntCounterVec, outcome: &Result<(), CommitError>, empty: bool) {
    let label = match outcome {
        Ok(()) if empty => return,
        Ok(()) => "committed",
        Err(CommitError::Aborted(_)) => "aborted",
        Err(CommitError::NotCommitted(_)) => "not_committed",
        Err(CommitError::Fatal(_) | CommitError::Unabortable { .. }) => return,
    };
    commits.with_label_values(&[label]).inc();
}

/// What a commit needs of the outbox: cloned into the task that runs it.
#[derive(Clone)]
struct Link {
    delivery: Delivery,
    /// Counts offset-only transactions when confirming offsets; `None`: commits are trusted.
    confirm_offsets: Option<IntCounter>,
    producer: FutureProducer<Context>,
    consumer: Arc<StreamConsumer<Context>>,
    checkpoint_topic: String,
}

/// A record sent while a commit runs. The running transaction is closed to new records, so it
/// waits and goes out with the next commit.
struct Held {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: OwnedHeaders,
}

pub struct Outbox {
    link: Link,
    in_transaction: bool,
    /// At-least-once: sends not yet known to be acknowledged.
    unacknowledged: Vec<DeliveryFuture>,
    /// The commit running beside the caller, if one was started and has not been awaited.
    running: Option<JoinHandle<Result<(), CommitError>>>,
    /// Sent while `running`; released into the next transaction.
    held: Vec<Held>,
    /// Records held so far, for the run's summary.
    held_total: u64,
}

/// A transaction error the producer cannot recover from (fenced, or a fatal broker error).
fn is_fatal(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.is_fatal())
}

/// Runs one of librdkafka's transactional calls (send offsets, commit, abort) until it finishes.
/// Such a call that times out goes on in the background and returns a retriable error, and the
/// same call must then be made again: librdkafka refuses any other (an abort while a commit is
/// under way is a "conflicting API call"). Before this, a commit that outlasted `CALL_TIMEOUT`
/// was aborted, the abort was refused, and the daemon stopped. A timeout is waited out for as
/// long as it lasts; other retriable errors come back at once, and after `QUICK_RETRIES` of
/// them the error is returned (a broker without transactions answers every commit with one:
/// "EndTxnRequest not supported").
async fn until_finished(
    what: &'static str,
    call: impl FnOnce() -> Result<(), KafkaError> + Clone + Send + 'static,
) -> Result<(), KafkaError> {
    let mut quick = 0;
    loop {
        match blocking(call.clone()).await {
            Err(KafkaError::Transaction(e)) if e.is_retriable() => {
                if e.code() != RDKafkaErrorCode::OperationTimedOut {
                    quick += 1;
                    if quick > QUICK_RETRIES {
                        return Err(KafkaError::Transaction(e));
                    }
                }
                tracing::warn!(call = what, error = %e, "Transaction call not finished; making it again.");
                // A retriable error that comes at once (not a timeout) must not spin.
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            done => return done,
        }
    }
}

/// The pause before a transactional call that failed retriably is made again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Retriable errors other than timeouts that a transactional call may return in a row before
/// the error stands: 25 at `RETRY_PAUSE` apart, about 5 s.
const QUICK_RETRIES: u32 = 25;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}

impl Outbox {
    /// With exactly-once delivery, registers the transactional id, which aborts whatever a
    /// previous run with the same id left open.
    pub async fn new(
        delivery: Delivery,
        confirm_offsets: Option<IntCounter>,
        producer: FutureProducer<Context>,
        consumer: Arc<StreamConsumer<Context>>,
        checkpoint_topic: String,
    ) -> Result<Outbox, KafkaError> {
        if delivery == Delivery::ExactlyOnce {
            let p = producer.clone();
            blocking(move || p.init_transactions(CALL_TIMEOUT)).await?;
        }
        Ok(Outbox {
            link: Link {
                delivery,
                confirm_offsets,
                producer,
                consumer,
                checkpoint_topic,
            },
            in_transaction: false,
            unacknowledged: Vec::new(),
            running: None,
            held: Vec::new(),
            held_total: 0,
        })
    }

    /// Sends a record with the next commit. While a commit runs, the record is held until it
    /// has finished.
    pub async fn send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        if self.running.is_some() {
            self.held.push(Held {
                topic: topic.to_owned(),
                key: key.map(<[u8]>::to_vec),
                payload: payload.to_vec(),
                headers,
            });
            self.held_total += 1;
            return Ok(());
        }
        self.release_held().await?;
        self.send_now(topic, key, payload, headers).await
    }

    async fn send_now(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        if self.link.delivery == Delivery::ExactlyOnce && !self.in_transaction {
            self.link.producer.begin_transaction()?;
            self.in_transaction = true;
        }
        let delivery = enqueue(&self.link.producer, topic, key, payload, headers).await?;
        if self.link.delivery == Delivery::AtLeastOnce {
            self.unacknowledged.push(delivery);
        }
        Ok(())
    }

    /// Sends what was held while the last commit ran (the next send or commit would, too; the
    /// caller does it at once so held alerts do not wait for either).
    pub async fn release_held(&mut self) -> Result<(), KafkaError> {
        for h in std::mem::take(&mut self.held) {
            self.send_now(&h.topic, h.key.as_deref(), &h.payload, h.headers)
                .await?;
        }
        Ok(())
    }

    /// The producer everything goes out through (to ask the broker about the written topics).
    pub fn producer(&self) -> &FutureProducer<Context> {
        &self.link.producer
    }

    /// Records held now, waiting for the running commit to end.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// How many records were held for a later commit because one was running.
    pub fn held_total(&self) -> u64 {
        self.held_total
    }

    /// Starts committing everything sent so far together with `offsets` (the next offset to
    /// consume per partition) and `checkpoints`, in a task of its own, so the caller can go on
    /// consuming. Sends meanwhile are held for the next commit. [`Outbox::finished`] gives
    /// the outcome.
    ///
    /// # Panics
    /// If a commit is already running: the caller awaits each before starting the next.
    pub async fn start_commit(
        &mut self,
        offsets: Vec<(TopicPartition, i64)>,
        checkpoints: Vec<Checkpoint>,
    ) -> Result<(), KafkaError> {
        assert!(self.running.is_none(), "one commit at a time");
        self.release_held().await?;
        let in_transaction = std::mem::take(&mut self.in_transaction);
        let unacknowledged = std::mem::take(&mut self.unacknowledged);
        let link = self.link.clone();
        self.running = Some(tokio::spawn(async move {
            match link.delivery {
                Delivery::ExactlyOnce => {
                    link.commit_transaction(in_transaction, &offsets, &checkpoints)
                        .await
                }
                Delivery::AtLeastOnce => {
                    link.commit_acknowledged(unacknowledged, &offsets, &checkpoints)
                        .await
                }
            }
        }));
        Ok(())
    }

    /// The outcome of the running commit once it has finished (`Ok` if none runs). Cancel
    /// safe: dropped before the commit finishes, it leaves the commit running. After an abort
    /// the held records are dropped too: they came from input after the committed offsets,
    /// which is consumed again.
    pub async fn finished(&mut self) -> Result<(), CommitError> {
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        let outcome = running
            .await
            .unwrap_or(Err(CommitError::Fatal(KafkaError::Canceled)));
        self.running = None;
        if matches!(outcome, Err(CommitError::Aborted(_))) {
            self.held.clear();
        }
        outcome
    }

    /// Commits and waits for the outcome ([`Outbox::start_commit`], then [`Outbox::finished`]).
    /// A commit still running is waited for first, and its error returned if it failed.
    pub async fn commit(
        &mut self,
        offsets: &[(TopicPartition, i64)],
        checkpoints: &[Checkpoint],
    ) -> Result<(), CommitError> {
        self.finished().await?;
        self.start_commit(offsets.to_vec(), checkpoints.to_vec())
            .await
            .map_err(CommitError::Fatal)?;
        self.finished().await
    }

    /// Throws away what was sent since the last commit, when some of it belongs to partitions
    /// that were lost: their next owner redoes it. At least once, sends cannot be taken back;
    /// their repeats carry the same alert ids. Records held during a commit are dropped.
    ///
    /// # Panics
    /// If a commit is running: its outcome is awaited first.
    pub async fn abort(&mut self) -> Result<(), CommitError> {
        assert!(self.running.is_none(), "abort after the running commit");
        self.held.clear();
        if self.link.delivery == Delivery::AtLeastOnce || !self.in_transaction {
            return Ok(());
        }
        let p = self.link.producer.clone();
        until_finished("abort", move || p.abort_transaction(CALL_TIMEOUT))
            .await
            .map_err(CommitError::Fatal)?;
        self.in_transaction = false;
        Ok(())
    }

    /// Waits until every send is acknowledged (shutdown).
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let p = self.link.producer.clone();
        blocking(move || p.flush(timeout)).await
    }
}

impl Link {
    /// Sends `checkpoints` (in the open transaction, exactly once), returning their deliveries.
    async fn send_checkpoints(
        &self,
        checkpoints: &[Checkpoint],
    ) -> Result<Vec<DeliveryFuture>, KafkaError> {
        let mut deliveries = Vec::with_capacity(checkpoints.len());
        for c in checkpoints {
            let json = serde_json::to_vec(c).expect("a checkpoint serializes");
            let key = c.key();
            deliveries.push(
                enqueue(
                    &self.producer,
                    &self.checkpoint_topic,
                    Some(key.as_bytes()),
                    &json,
                    OwnedHeaders::new(),
                )
                .await?,
            );
        }
        Ok(deliveries)
    }

    async fn commit_transaction(
        &self,
        in_transaction: bool,
        offsets: &[(TopicPartition, i64)],
        checkpoints: &[Checkpoint],
    ) -> Result<(), CommitError> {
        if offsets.is_empty() && checkpoints.is_empty() && !in_transaction {
            return Ok(());
        }
        let result = async {
            if !in_transaction {
                self.producer.begin_transaction()?;
            }
            self.send_checkpoints(checkpoints).await?;
            if !offsets.is_empty() {
                let tpl = offset_list(offsets)?;
                // Shared: each repeat of the call needs it (the metadata is not Clone).
                let group = Arc::new(self.consumer.group_metadata().ok_or(KafkaError::Canceled)?);
                let p = self.producer.clone();
                until_finished("send offsets", move || {
                    p.send_offsets_to_transaction(&tpl, &group, CALL_TIMEOUT)
                })
                .await?;
            }
            let p = self.producer.clone();
            until_finished("commit", move || p.commit_transaction(CALL_TIMEOUT)).await
        }
        .await;
        let Err(error) = result else {
            return self.confirm(offsets).await;
        };
        if is_fatal(&error) {
            return Err(CommitError::Fatal(error));
        }
        tracing::warn!(%error, "Commit failed; aborting the transaction.");
        Err(CommitError::Aborted(self.abort_after(error).await?))
    }

    /// Aborts the open transaction, whose commit failed with `error`: gives `error` back once
    /// aborted, or both errors if the abort fails too.
    async fn abort_after(&self, error: KafkaError) -> Result<KafkaError, CommitError> {
        let p = self.producer.clone();
        match until_finished("abort", move || p.abort_transaction(CALL_TIMEOUT)).await {
            Ok(()) => Ok(error),
            Err(abort) => Err(CommitError::Unabortable {
                commit: error,
                abort,
            }),
        }
    }

    /// With `confirm_offsets`, waits until the broker shows `offsets` as committed, committing
    /// them again in offsets-only transactions meanwhile. The transaction itself is committed:
    /// after `CONFIRM_TIMEOUT` this logs an error and gives up (a crash could then repeat alerts).
    async fn confirm(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), CommitError> {
        let Some(recommitted) = self.confirm_offsets.clone() else {
            return Ok(());
        };
        if offsets.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut pause = CONFIRM_PAUSE.0;
        let mut retries = 0u32;
        loop {
            let behind = match self.not_shown(offsets).await {
                Ok(behind) if behind.is_empty() => {
                    // Every time, not only after retries: a later commit shown also ends the
                    // risk a wait that gave up left (tests read this to know a crash is safe).
                    tracing::debug!(retries, waited = ?started.elapsed(), "Committed offsets shown by the broker.");
                    return Ok(());
                }
                Ok(behind) => behind,
                Err(error) => {
                    tracing::debug!(%error, "Reading the committed offsets failed; retrying.");
                    offsets.to_vec()
                }
            };
            if started.elapsed() >= CONFIRM_TIMEOUT {
                tracing::error!(partitions = ?behind, waited = ?started.elapsed(), "The broker does not show the committed offsets; a crash now would repeat alerts.");
                return Ok(());
            }
            tokio::time::sleep(jittered(pause)).await;
            pause = (pause * 2).min(CONFIRM_PAUSE.1);
            tracing::debug!(partitions = ?behind, "Committed offsets not shown by the broker; committing them again.");
            recommitted.inc();
            retries += 1;
            self.commit_offsets_only(&behind).await?;
        }
    }

    /// The offsets of `offsets` the broker does not show as committed (yet).
    async fn not_shown(
        &self,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<Vec<(TopicPartition, i64)>, KafkaError> {
        let tpl = offset_list(offsets)?;
        let consumer = self.consumer.clone();
        let shown = blocking(move || consumer.committed_offsets(tpl, CALL_TIMEOUT)).await?;
        Ok(offsets
            .iter()
            .filter(|((topic, partition), next)| {
                let at = shown
                    .find_partition(topic, *partition)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
                at < Some(*next)
            })
            .cloned()
            .collect())
    }

    /// A transaction that holds nothing but `offsets`. If it fails it is aborted (nothing else
    /// is in it) and the caller reads the offsets again.
    async fn commit_offsets_only(
        &self,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<(), CommitError> {
        let tpl = offset_list(offsets).map_err(CommitError::Fatal)?;
        let group = Arc::new(
            self.consumer
                .group_metadata()
                .ok_or(CommitError::Fatal(KafkaError::Canceled))?,
        );
        let p = self.producer.clone();
        let result = async {
            let begin = p.clone();
            blocking(move || begin.begin_transaction()).await?;
            let send = p.clone();
            until_finished("send offsets", move || {
                send.send_offsets_to_transaction(&tpl, &group, CALL_TIMEOUT)
            })
            .await?;
            until_finished("commit", move || p.commit_transaction(CALL_TIMEOUT)).await
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(error) if is_fatal(&error) => Err(CommitError::Fatal(error)),
            Err(error) => {
                tracing::warn!(%error, "Committing offsets again failed; aborting that transaction.");
                self.abort_after(error).await.map(drop)
            }
        }
    }

    async fn commit_acknowledged(
        &self,
        unacknowledged: Vec<DeliveryFuture>,
        offsets: &[(TopicPartition, i64)],
        checkpoints: &[Checkpoint],
    ) -> Result<(), CommitError> {
        acknowledged(unacknowledged).await?;
        if !offsets.is_empty() {
            let tpl = offset_list(offsets).map_err(CommitError::Fatal)?;
            let consumer = self.consumer.clone();
            // A failed commit (a rebalance took the partitions) only means their new owner
            // consumes again from the previous commit: at least once still holds.
            blocking(move || consumer.commit(&tpl, CommitMode::Sync))
                .await
                .map_err(CommitError::NotCommitted)?;
        }
        // After the commit: a checkpoint must not be newer than the committed offset.
        let deliveries = self
            .send_checkpoints(checkpoints)
            .await
            .map_err(CommitError::Fatal)?;
        acknowledged(deliveries).await
    }
}

/// A pause between half and one and a half times `pause`, at random. Instances whose commits
/// waited for the same open transaction would otherwise commit again in step, each one's
/// transaction keeping the other's offsets from being applied, until the confirmation gives up.
fn jittered(pause: Duration) -> Duration {
    pause / 2 + pause.mul_f64(rand::random::<f64>())
}

/// Waits until every one of `deliveries` is acknowledged.
async fn acknowledged(deliveries: Vec<DeliveryFuture>) -> Result<(), CommitError> {
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(CommitError::Fatal(e)),
            Err(_) => return Err(CommitError::Fatal(KafkaError::Canceled)),
        }
    }
    Ok(())
}

fn offset_list(offsets: &[(TopicPartition, i64)]) -> Result<TopicPartitionList, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    Ok(tpl)
}
