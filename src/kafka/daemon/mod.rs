//! The daemon loop: a consumer group on the input topics feeds one engine per partition; alerts go
//! to the alert topic, bad and late input to dead-letter topics, all through the outbox
//! (kafka/outbox.rs), which commits them with the input offsets.
//!
//! Partitions move between instances incrementally (cooperative-sticky); the rebalance callbacks
//! only signal this loop. When a partition arrives, after a rebalance or a restart, its windows
//! are rebuilt before its first message is handled: the input is replayed from the offset its
//! checkpoint names up to the committed offset (kafka/rebuild.rs). The loop waits meanwhile; the
//! messages wait in the fetch queue. Every `checkpoint_interval` the commit also records each
//! partition's checkpoint; before a partition is given up, it is committed and checkpointed.
//!
//! A commit runs beside the loop, which goes on consuming; what it sends meanwhile the outbox
//! holds for the next commit (with `kafka.confirm_offsets` the loop waits for it instead).
//! Rebalances, lost partitions and shutdown wait for the running commit first (`settle`), so
//! they see the partitions as committed. The commit bookkeeping is in `commit.rs`.
//!
//! A commit that fails and is aborted leaves the engines ahead of Kafka: every partition is
//! rebuilt and the consumer goes back to the committed offsets. On shutdown the loop stops
//! fetching, commits and flushes within the grace period.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use hashbrown::{Equivalent, HashMap};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::Offset;
use tokio::task::coop::cooperative;

use super::client::{finish_revocation, ConsumerEvent, Context};
use super::live::LiveWindows;
use super::member::{self, MemberError, Roles};
use super::outbox::{CommitError, Outbox, TopicPartition};
use super::partition::PartitionState;
use super::publish::{alert_headers, dead_letter_headers, Origin};
use super::restore::{self, RestoreError};
use crate::alert::Alert;
use crate::config::Config;
use crate::engine::Ingest;
use crate::event::{decode, Channel};
use crate::metrics::{EventTally, Health, Metrics};
use crate::policy::Policy;
use crate::shutdown::{self, Shutdown};
use crate::time::Timestamp;

mod commit;

use commit::Committing;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Member(#[from] MemberError),
    #[error("a record could not be sent to Kafka: {0}")]
    Delivery(KafkaError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(
        "shutdown did not finish within the grace period; what was not committed is consumed again"
    )]
    GraceExpired,
}

/// The shared things the daemon reports to.
#[derive(Clone)]
pub struct Services {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub live: Arc<LiveWindows>,
}

/// What a run did, for its last log line and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub messages: u64,
    pub events: u64,
    pub bad: u64,
    pub late: u64,
    pub alerts: u64,
    /// Messages replayed to rebuild partitions.
    pub replayed: u64,
    /// Alerts and dead letters sent while a commit ran: they went out with the next one.
    pub held: u64,
}

/// What was sent since the last commit, reported once it is committed.
struct Sent {
    alerts: Vec<Alert>,
    dead_letters: Vec<&'static str>,
    received: Instant,
}

struct Daemon {
    config: Config,
    services: Services,
    policy: Policy,
    consumer: Arc<StreamConsumer<Context>>,
    outbox: Outbox,
    partitions: HashMap<TopicPartition, PartitionState>,
    assigned: Vec<TopicPartition>,
    uncommitted: Vec<Sent>,
    /// The commit running beside the loop, if any.
    committing: Option<Committing>,
    /// Since when the input is paused because the running commit holds too much.
    paused: Option<Instant>,
    last_checkpoint: Instant,
    summary: RunSummary,
    /// `events_consumed` by [`Channel::index`] and the event-time lag, counted locally and
    /// flushed after each batch of messages: no atomic operation per message.
    tally: EventTally,
}

/// A partition by borrowed parts: finds a [`TopicPartition`] key without allocating one per
/// message. Hashes like the key: a `&str` like a `String`, then the number.
#[derive(Hash)]
struct PartitionRef<'a>(&'a str, i32);

impl Equivalent<TopicPartition> for PartitionRef<'_> {
    fn equivalent(&self, key: &TopicPartition) -> bool {
        self.1 == key.1 && self.0 == key.0
    }
}

/// Messages handled between two looks at shutdown, rebalances, commits and ticks.
const RECV_BATCH: usize = 64;

/// Runs until `shutdown` fires, then drains within the grace period.
///
/// The grace period counts from the signal, wherever the loop is then: a wait inside one of its
/// steps (a commit or abort through a broker outage, a full producer queue, a partition being
/// rebuilt) does not postpone it. When it runs out, what was not committed is dropped, to be
/// consumed again after the restart.
pub async fn run(
    config: Config,
    services: Services,
    shutdown: Shutdown,
) -> Result<RunSummary, DaemonError> {
    let grace = config.daemon.grace_period.as_std();
    shutdown::within_grace(
        shutdown.clone(),
        grace,
        "The daemon",
        run_until_drained(config, services, shutdown),
    )
    .await
    .unwrap_or(Err(DaemonError::GraceExpired))
}

async fn run_until_drained(
    config: Config,
    services: Services,
    mut shutdown: Shutdown,
) -> Result<RunSummary, DaemonError> {
    let detection_topics = config.kafka.detection_topics();
    let member = member::join(
        &config.kafka,
        &detection_topics,
        &config.kafka.detection_writes(),
        Roles {
            consumer: "consumer",
            producer: "producer",
        },
        services.metrics.clone(),
    )
    .await?;
    let (consumer, mut consumer_events, outbox) = (member.consumer, member.events, member.outbox);
    tracing::info!(topics = ?detection_topics, group = %config.kafka.group_id, delivery = ?config.kafka.delivery, "Subscribed; waiting for partitions.");
    services
        .health
        .set_ready(false, "waiting for partition assignment");
    let policy = Policy::new(config.detector.clone());
    let channels: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
    let tally = services.metrics.event_tally(&channels);
    let mut daemon = Daemon {
        policy,
        services,
        consumer: consumer.clone(),
        outbox,
        partitions: HashMap::new(),
        assigned: Vec::new(),
        uncommitted: Vec::new(),
        committing: None,
        paused: None,
        last_checkpoint: Instant::now(),
        summary: RunSummary::default(),
        tally,
        config,
    };
    let tick_every = if daemon.config.daemon.idle_tick.0 > 0 {
        daemon.config.daemon.idle_tick.as_std()
    } else {
        Duration::from_secs(1)
    };
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut commit = tokio::time::interval(daemon.config.daemon.commit_interval.as_std());
    commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One message stream for the loop's life: `recv()` builds a stream per message, and each
    // takes and gives back a slot of the consumer's waker slab, two locks a message. In the
    // bench's Kafka phase this stream cut the thread's CPU per message by ~7% (4 paired runs).
    let mut messages = consumer.stream();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            Some(event) = consumer_events.recv() => daemon.consumer_event(event).await?,
            outcome = daemon.outbox.finished(), if daemon.committing.is_some() => {
                daemon.commit_finished(outcome).await?
            }
            // A commit runs beside the loop; the next starts at the first tick after it finished.
            _ = commit.tick(), if daemon.committing.is_none() => {
                daemon.start_commit(false).await?;
                if daemon.config.kafka.confirm_offsets {
                    // A broker that applies offsets late: consume nothing more until it shows
                    // them. Running ahead meanwhile left offsets unapplied for 20-30 s on
                    // tansu (3 of 9 scale_out suite runs).
                    daemon.settle().await?;
                }
            }
            _ = tick.tick() => daemon.tick().await?,
            // Cooperative, like the tokio resources above; rdkafka's stream is not. Without it
            // this task never yielded while fetched messages kept waiting, and a commit it
            // started never ran: tokio puts a task spawned on a worker in that worker's LIFO
            // slot, which the other worker cannot steal. A 1M-message backlog got one commit,
            // at its end (tests/kafka_daemon.rs has a backlog test). One unit of the task's
            // budget a batch: the task yields to the scheduler every 128 batches.
            Some(message) = cooperative(messages.next()) => {
                // Take what is already fetched in one go, so that the select and its timers
                // are polled once per batch rather than once per message; the branches above
                // wait at most one batch.
                let mut next = Some(message);
                let mut taken = 0;
                // The batch was already fetched: one clock reading serves all of it.
                let received = Instant::now();
                let now = Timestamp::now();
                while let Some(message) = next.take() {
                    match message {
                        Ok(m) => daemon.handle(&m, received, now).await?,
                        Err(KafkaError::PartitionEOF(p)) => daemon.caught_up(p),
                        Err(e) => tracing::warn!(error = %e, "Consume error; retrying."),
                    }
                    taken += 1;
                    if taken < RECV_BATCH {
                        next = messages.next().now_or_never().flatten();
                    }
                }
                daemon.tally.flush();
                daemon.pause_if_holding_too_much();
            }
        }
    }
    daemon.drain().await
}

impl Daemon {
    /// One input message, taken from the fetch queue at `received` (`now` on the event-time
    /// clock): decode, count, send what it caused.
    async fn handle(
        &mut self,
        m: &BorrowedMessage<'_>,
        received: Instant,
        now: Timestamp,
    ) -> Result<(), DaemonError> {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        let key = PartitionRef(topic, partition);
        if !self.partitions.contains_key(&key) {
            let tp = (topic.to_owned(), partition);
            if !self.assigned.contains(&tp) {
                // Fetched before its partition was given up: its next owner consumes it.
                tracing::debug!(%topic, partition, offset, "Message of a revoked partition dropped.");
                return Ok(());
            }
            self.restore(vec![tp]).await?;
        }
        self.summary.messages += 1;
        let payload = m.payload().unwrap_or_default();
        let metrics = &self.services.metrics;
        let mut alerts = Vec::new();
        let mut dead: Option<(&'static str, String, String)> = None;
        let state = self.partitions.get_mut(&key).expect("restored above");
        match decode(payload) {
            Err(e) => {
                metrics
                    .events_bad
                    .with_label_values(&[e.reason().as_str()])
                    .inc();
                dead = Some(("bad", e.reason().as_str().to_owned(), e.to_string()));
            }
            Ok(event) => {
                let lag = now.0 - event.occurred_at.0;
                self.tally.consumed(event.channel.index(), lag as f64 / 1e6);
                match state.engine.ingest_at(&event, offset, &mut alerts) {
                    Ingest::Late { frontier } => {
                        metrics.events_late.inc();
                        dead = Some((
                            "late",
                            "late".to_owned(),
                            format!(
                                "occurred_at {} is before the partition's frontier {frontier}",
                                event.occurred_at
                            ),
                        ));
                    }
                    Ingest::Accepted {
                        reports,
                        duplicates,
                        refused,
                    } => {
                        if reports == 0 && duplicates > 0 {
                            metrics.events_duplicate.inc();
                        }
                        if refused > 0 {
                            tracing::debug!(refused, "Keys refused: max_keys reached.");
                        }
                    }
                }
            }
        };
        state.consumed(offset, received);
        match &dead {
            None => self.summary.events += 1,
            Some(("late", ..)) => self.summary.late += 1,
            Some(_) => self.summary.bad += 1,
        }
        let mut dead_letters = Vec::new();
        if let Some((kind, reason, error)) = dead {
            let target = if kind == "late" {
                self.config.kafka.late_topic.clone()
            } else {
                self.config.kafka.dlq_topic.clone()
            };
            let origin = Origin {
                topic,
                partition,
                offset,
            };
            let headers = dead_letter_headers(&reason, &error, &origin);
            self.outbox
                .send(&target, m.key(), payload, headers)
                .await
                .map_err(DaemonError::Delivery)?;
            dead_letters.push(kind);
        }
        self.send_alerts(alerts, dead_letters, received).await
    }

    /// Sends `alerts`; they are reported once committed.
    async fn send_alerts(
        &mut self,
        alerts: Vec<Alert>,
        dead_letters: Vec<&'static str>,
        received: Instant,
    ) -> Result<(), DaemonError> {
        if alerts.is_empty() && dead_letters.is_empty() {
            return Ok(());
        }
        let topic = self.config.kafka.alert_topic.clone();
        for alert in &alerts {
            let json = alert.to_json();
            self.outbox
                .send(
                    &topic,
                    Some(alert.product_id.as_bytes()),
                    json.as_bytes(),
                    alert_headers(alert),
                )
                .await
                .map_err(DaemonError::Delivery)?;
        }
        self.summary.alerts += alerts.len() as u64;
        self.uncommitted.push(Sent {
            alerts,
            dead_letters,
            received,
        });
        Ok(())
    }

    /// Drops every partition's state and rebuilds it from Kafka, the consumer back at the
    /// committed offsets.
    async fn rebuild_all(&mut self) -> Result<(), DaemonError> {
        debug_assert!(
            self.committing.is_none(),
            "rebuilt after the running commit"
        );
        self.uncommitted.clear();
        let tps: Vec<TopicPartition> = self.assigned.clone();
        for tp in &tps {
            self.partitions.remove(tp);
        }
        self.restore(tps.clone()).await?;
        for tp in &tps {
            let offset = self.partitions[tp]
                .committed
                .map_or(Offset::Beginning, Offset::Offset);
            // Going on from a later position would skip input the rebuilt state never saw.
            self.consumer
                .seek(&tp.0, tp.1, offset, Duration::from_secs(10))
                .map_err(|source| RestoreError::new(tp, source))?;
        }
        Ok(())
    }

    /// Rebuilds the windows of newly owned partitions from their checkpoints and the input.
    async fn restore(&mut self, tps: Vec<TopicPartition>) -> Result<(), DaemonError> {
        let tps: Vec<TopicPartition> = tps
            .into_iter()
            .filter(|tp| !self.partitions.contains_key(tp))
            .collect();
        let restored =
            restore::restore(&self.consumer, &self.config.kafka, &self.policy, tps).await?;
        let metrics = &self.services.metrics;
        for (tp, state, rebuilt) in restored {
            if let Some(r) = rebuilt {
                self.summary.replayed += r.messages;
                metrics.partition_rebuilds.inc();
                metrics.rebuild_replayed.inc_by(r.messages);
                metrics.rebuild_duration.observe(r.seconds);
            }
            self.services
                .live
                .insert(&tp.0, tp.1, state.engine.keys().clone());
            self.partitions.insert(tp, state);
        }
        Ok(())
    }

    fn forget(&mut self, tps: &[TopicPartition]) {
        for tp in tps {
            self.partitions.remove(tp);
            self.services.live.remove(&tp.0, tp.1);
            self.services.metrics.forget_consumer_lag(&tp.0, tp.1);
        }
    }

    async fn consumer_event(&mut self, event: ConsumerEvent) -> Result<(), DaemonError> {
        match event {
            ConsumerEvent::Assigned(tps) => {
                tracing::info!(partitions = ?tps, "Partitions assigned.");
                for tp in &tps {
                    if !self.assigned.contains(tp) {
                        self.assigned.push(tp.clone());
                    }
                }
                if self.paused.is_some() {
                    self.pause_input(&tps, true);
                }
                self.restore(tps).await?;
            }
            ConsumerEvent::Revoked(tps) => {
                tracing::info!(partitions = ?tps, "Partitions revoked.");
                self.assigned.retain(|tp| !tps.contains(tp));
                // Hand over what was consumed, with a fresh checkpoint, before letting go: the
                // rebalance waits for finish_revocation, so the next owner starts from here.
                let committed = self.commit(true).await;
                self.forget(&tps);
                if let Err(e) = finish_revocation(&*self.consumer, &tps) {
                    tracing::warn!(error = %e, "Giving up revoked partitions failed.");
                }
                committed?;
            }
            ConsumerEvent::Lost(tps) => {
                tracing::warn!(partitions = ?tps, "Partitions lost; what was not committed is redone by their next owner.");
                self.settle().await?;
                self.assigned.retain(|tp| !tps.contains(tp));
                self.forget(&tps);
                // The open transaction holds work on the lost partitions: throw it all away.
                self.outbox.abort().await?;
                self.rebuild_all().await?;
            }
            ConsumerEvent::RebalanceFailed(e) => tracing::warn!(error = %e, "Rebalance failed."),
            ConsumerEvent::EndOfPartition(p) => self.caught_up(p),
        }
        self.services
            .metrics
            .partitions_assigned
            .set(self.assigned.len() as i64);
        self.update_readiness();
        Ok(())
    }

    fn caught_up(&mut self, partition: i32) {
        for ((_, p), state) in self.partitions.iter_mut() {
            if *p == partition {
                state.caught_up = true;
                state.at_end = true;
            }
        }
        self.update_readiness();
    }

    fn update_readiness(&self) {
        let health = &self.services.health;
        if self.assigned.is_empty() {
            health.set_ready(false, "no partitions assigned");
            return;
        }
        let behind = self
            .assigned
            .iter()
            .filter(|tp| self.partitions.get(*tp).is_none_or(|s| !s.caught_up))
            .count();
        if behind == 0 {
            health.set_ready(true, "");
        } else {
            health.set_ready(false, format!("{behind} partitions still catching up"));
        }
    }

    /// Periodic work: the idle clock of quiet partitions, and the gauges.
    async fn tick(&mut self) -> Result<(), DaemonError> {
        let now = Instant::now();
        let quiet = self.config.daemon.idle_tick.as_std();
        let idle_clock = self.config.daemon.idle_tick.0 > 0;
        let mut steps = Vec::new();
        let (mut live_keys, mut open) = (0i64, [0i64; 3]);
        let metrics = self.services.metrics.clone();
        for state in self.partitions.values_mut() {
            let mut alerts = Vec::new();
            if idle_clock {
                state.idle_advance(now, quiet, &mut alerts);
            }
            if !alerts.is_empty() {
                steps.push(alerts);
            }
            let stats = state.engine.stats().clone();
            metrics
                .keys_evicted
                .inc_by(stats.evicted_keys - state.reported.evicted_keys);
            metrics
                .keys_refused
                .inc_by(stats.refused_keys - state.reported.refused_keys);
            live_keys += state.engine.live_keys() as i64;
            for (sum, n) in open.iter_mut().zip(stats.open_episodes) {
                *sum += n;
            }
            state.reported = stats;
        }
        metrics.live_keys.set(live_keys);
        for (level, n) in crate::policy::Level::ALL.iter().zip(open) {
            metrics
                .open_episodes
                .with_label_values(&[level.as_str()])
                .set(n);
        }
        for alerts in steps {
            self.send_alerts(alerts, Vec::new(), now).await?;
        }
        // The idle clock's alerts are held like any others while a commit runs.
        self.pause_if_holding_too_much();
        Ok(())
    }

    /// Stop fetching, commit with fresh checkpoints and flush (`run` holds this to the grace
    /// period).
    async fn drain(mut self) -> Result<RunSummary, DaemonError> {
        let grace = self.config.daemon.grace_period.as_std();
        tracing::info!(grace = ?grace, "Draining.");
        self.consumer.context().closing();
        self.commit(true).await?;
        if let Err(e) = self.outbox.flush(grace).await {
            tracing::warn!(error = %e, "Producer flush incomplete.");
        }
        self.consumer.unsubscribe();
        self.summary.held = self.outbox.held_total();
        tracing::info!(
            messages = self.summary.messages,
            events = self.summary.events,
            bad = self.summary.bad,
            late = self.summary.late,
            alerts = self.summary.alerts,
            replayed = self.summary.replayed,
            held = self.summary.held,
            "Stopped cleanly."
        );
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_partition_finds_its_owned_key() {
        let mut map: HashMap<TopicPartition, u32> = HashMap::new();
        for (i, topic) in ["contact-events", "contact-events-eu", "c"]
            .iter()
            .enumerate()
        {
            for partition in 0..40 {
                map.insert(
                    (topic.to_string(), partition),
                    i as u32 * 100 + partition as u32,
                );
            }
        }
        for (i, topic) in ["contact-events", "contact-events-eu", "c"]
            .iter()
            .enumerate()
        {
            for partition in 0..40 {
                assert_eq!(
                    map.get(&PartitionRef(topic, partition)),
                    Some(&(i as u32 * 100 + partition as u32)),
                    "{topic}/{partition}"
                );
            }
        }
        assert_eq!(map.get(&PartitionRef("contact-events", 40)), None);
        assert_eq!(map.get(&PartitionRef("contact-event", 0)), None);
    }
}
