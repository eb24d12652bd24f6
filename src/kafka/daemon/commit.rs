//! The daemon's commits: what one holds, starting it beside the loop, waiting for it, and
//! applying its outcome to the partitions (committed and checkpointed offsets, what was sent
//! and is now reported, or, after an abort, a rebuild of every partition).
//!
//! One commit runs at a time. The loop starts one every `commit_interval` and goes on (with
//! `kafka.confirm_offsets` it waits for each); the outbox holds what is sent meanwhile for the
//! next. Whatever must see the partitions as committed (a rebalance, lost partitions,
//! shutdown) settles the running one first.
//!
//! A commit that cannot finish (the brokers take no writes) would let the held records grow
//! with everything consumed meanwhile; at `daemon.max_held_records` the input partitions are
//! paused until it ends. The consumer is still polled, so the group keeps the instance.

use std::time::Instant;

use rdkafka::consumer::Consumer;

use super::{Daemon, DaemonError, PartitionRef, Sent};
use crate::alert::Status;
use crate::kafka::checkpoint::Checkpoint;
use crate::kafka::client::partition_list;
use crate::kafka::member;
use crate::kafka::outbox::{count_commit, CommitError, TopicPartition};

/// What a running commit holds, applied to the partitions once it has finished.
pub(super) struct Committing {
    offsets: Vec<(TopicPartition, i64)>,
    /// The checkpoints' partitions and next offsets.
    checkpoints: Vec<(TopicPartition, i64)>,
    /// Checkpoints were due: the interval starts again once they are written.
    due: bool,
    sent: Vec<Sent>,
    /// Nothing to commit: not counted as a commit.
    empty: bool,
}

impl Daemon {
    /// Commits the offsets consumed with what was sent since the last commit, and the
    /// checkpoints when they are due (or `force`d), and waits for the outcome.
    pub(super) async fn commit(&mut self, force_checkpoints: bool) -> Result<(), DaemonError> {
        self.settle().await?;
        self.start_commit(force_checkpoints).await?;
        self.settle().await
    }

    /// Waits for the running commit, if any, and applies its outcome.
    pub(super) async fn settle(&mut self) -> Result<(), DaemonError> {
        if self.committing.is_none() {
            return Ok(());
        }
        let outcome = self.outbox.finished().await;
        self.commit_finished(outcome).await
    }

    /// Starts committing the offsets consumed with what was sent since the last commit, and
    /// the checkpoints when they are due (or `force`d); the loop goes on meanwhile.
    pub(super) async fn start_commit(
        &mut self,
        force_checkpoints: bool,
    ) -> Result<(), DaemonError> {
        let offsets: Vec<(TopicPartition, i64)> = self
            .partitions
            .iter()
            .filter_map(|(tp, s)| s.to_commit().map(|n| (tp.clone(), n)))
            .collect();
        let due = force_checkpoints
            || self.last_checkpoint.elapsed() >= self.config.daemon.checkpoint_interval.as_std()
            || self.partitions.values().any(|s| s.idle_alerts);
        let checkpoints: Vec<Checkpoint> = if due { self.checkpoints() } else { Vec::new() };
        for c in &checkpoints {
            // Idle-clock alerts from now on need a checkpoint of their own.
            if let Some(state) = self
                .partitions
                .get_mut(&PartitionRef(&c.topic, c.partition))
            {
                state.idle_alerts = false;
            }
        }
        let committing = Committing {
            empty: offsets.is_empty() && checkpoints.is_empty() && self.uncommitted.is_empty(),
            checkpoints: checkpoints
                .iter()
                .map(|c| ((c.topic.clone(), c.partition), c.next_offset))
                .collect(),
            offsets: offsets.clone(),
            due,
            sent: std::mem::take(&mut self.uncommitted),
        };
        self.outbox
            .start_commit(offsets, checkpoints)
            .await
            .map_err(DaemonError::Delivery)?;
        self.committing = Some(committing);
        Ok(())
    }

    /// Applies the outcome of the commit that was running.
    pub(super) async fn commit_finished(
        &mut self,
        outcome: Result<(), CommitError>,
    ) -> Result<(), DaemonError> {
        let Some(done) = self.committing.take() else {
            return Ok(());
        };
        if !matches!(
            outcome,
            Err(CommitError::Aborted(_) | CommitError::Fatal(_) | CommitError::Unabortable { .. })
        ) {
            // Alerts held while the commit ran go out now, not with the next send or commit.
            self.outbox
                .release_held()
                .await
                .map_err(DaemonError::Delivery)?;
        }
        // Nothing is held any more: released, or dropped with an aborted transaction.
        self.resume_input();
        count_commit(&self.services.metrics.commits, &outcome, done.empty);
        match outcome {
            Ok(()) => {}
            Err(CommitError::NotCommitted(error)) => {
                tracing::warn!(%error, "Offsets not committed; retrying at the next commit.");
                // Sent and acknowledged; reported with the next commit. The checkpoints were
                // not written: ask for them again.
                let later = std::mem::take(&mut self.uncommitted);
                self.uncommitted = done.sent;
                self.uncommitted.extend(later);
                for (tp, _) in &done.checkpoints {
                    if let Some(state) = self.partitions.get_mut(tp) {
                        state.idle_alerts = true;
                    }
                }
                return Ok(());
            }
            Err(CommitError::Aborted(error)) => {
                tracing::warn!(%error, "Transaction aborted; rebuilding every partition from the last commit.");
                self.check_written_topics().await?;
                return self.rebuild_all().await;
            }
            Err(e) => {
                self.check_written_topics().await?;
                return Err(e.into());
            }
        }
        if done.due {
            self.last_checkpoint = Instant::now();
        }
        self.services
            .metrics
            .checkpoints_written
            .inc_by(done.checkpoints.len() as u64);
        for (tp, next) in done.offsets {
            if let Some(state) = self.partitions.get_mut(&tp) {
                state.committed = Some(next);
            }
        }
        for (tp, next) in done.checkpoints {
            if let Some(state) = self.partitions.get_mut(&tp) {
                state.checkpointed = Some(next);
            }
        }
        for sent in done.sent {
            self.report(sent);
        }
        Ok(())
    }

    /// A topic the daemon writes to that was deleted since the start fails every commit: stop
    /// and name it, rather than redo the same input for ever (exactly once) or stop on an
    /// error that names no topic (at least once). (`&mut self`: `Daemon` is not `Sync`, and the
    /// loop's future must stay `Send`.)
    async fn check_written_topics(&mut self) -> Result<(), DaemonError> {
        let writes = self.config.kafka.detection_writes();
        member::check_writes(self.outbox.producer(), &writes).await?;
        Ok(())
    }

    /// Pauses the input while the running commit holds `max_held_records` records.
    pub(super) fn pause_if_holding_too_much(&mut self) {
        let held = self.outbox.held();
        if self.paused.is_some() || held < self.config.daemon.max_held_records {
            return;
        }
        tracing::warn!(held, "Input paused: the running commit has not finished, and the records sent meanwhile reached daemon.max_held_records.");
        self.pause_input(&self.assigned, true);
        self.paused = Some(Instant::now());
        self.services.metrics.input_paused.set(1);
    }

    /// Resumes the input paused by [`Daemon::pause_if_holding_too_much`].
    fn resume_input(&mut self) {
        let Some(since) = self.paused.take() else {
            return;
        };
        tracing::info!(paused = ?since.elapsed(), "Input resumed: the commit has finished.");
        self.pause_input(&self.assigned, false);
        self.services.metrics.input_paused.set(0);
    }

    /// Pauses (or resumes) fetching `tps`. librdkafka drops what it had fetched of them and
    /// goes on after the last message the loop was given.
    pub(super) fn pause_input(&self, tps: &[TopicPartition], pause: bool) {
        let tpl = partition_list(tps);
        let done = if pause {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        if let Err(error) = done {
            tracing::warn!(%error, pause, "Pausing or resuming the input failed.");
        }
    }

    /// A checkpoint for each partition consumed since its last commit or checkpoint.
    fn checkpoints(&self) -> Vec<Checkpoint> {
        let group = &self.config.kafka.group_id;
        self.partitions
            .iter()
            .filter_map(|((topic, partition), s)| {
                let next = s.next_offset?;
                (s.checkpointed != Some(next) || s.idle_alerts)
                    .then(|| Checkpoint::of(group, topic, *partition, &s.engine, next))
            })
            .collect()
    }

    /// Alerts are committed: count and log them.
    fn report(&mut self, sent: Sent) {
        let metrics = &self.services.metrics;
        if !sent.alerts.is_empty() {
            metrics.observe_processing_latency(sent.received.elapsed());
        }
        for alert in &sent.alerts {
            metrics
                .alerts_published
                .with_label_values(&[alert.level.as_str(), alert.status.as_str()])
                .inc();
            if alert.status == Status::Firing {
                tracing::info!(
                    alert_id = %alert.alert_id,
                    level = alert.level.as_str(),
                    product_id = %alert.product_id,
                    defect_tag = %alert.defect_tag,
                    reporters = alert.reporters,
                    recall_candidate = alert.recall_candidate,
                    "Alert published."
                );
            }
        }
        for kind in &sent.dead_letters {
            metrics
                .dead_letters_published
                .with_label_values(&[kind])
                .inc();
        }
    }
}
