//! The daemon loop: a consumer group on the input topics feeds one engine per partition; alerts go
//! to the alert topic, bad and late input to dead-letter topics.
//!
//! Delivery chain (at least once, end to end): an input offset is stored for commit only after
//! its event is final in the engine and every record produced up to that point has been
//! acknowledged by the broker. Steps complete in the order they were made, so offsets are stored
//! in order. On shutdown the loop stops fetching, waits for outstanding acknowledgements, flushes
//! the producer and commits, all within the grace period.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, Producer};
use tokio::sync::mpsc;

use super::client::{consumer_config, describe, producer_config, ConsumerEvent, Context};
use super::live::LiveWindows;
use super::partition::PartitionState;
use super::publish::{alert_headers, dead_letter_headers, enqueue, Origin};
use crate::alert::{Alert, Status};
use crate::config::Config;
use crate::engine::Ingest;
use crate::event::decode;
use crate::metrics::{Health, Metrics};
use crate::policy::Policy;
use crate::shutdown::Shutdown;
use crate::time::Timestamp;

/// Steps waiting for acknowledgements before the consumer fetches more.
const MAX_IN_FLIGHT: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
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
    #[error("a record could not be delivered to Kafka: {0}")]
    Delivery(KafkaError),
    #[error("shutdown did not finish within the grace period ({0} steps unacknowledged; their offsets are not committed and will be consumed again)")]
    GraceExpired(usize),
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
}

type TopicPartition = (String, i32);

/// A step is acknowledged: store `offset` (if any) for `tp`.
struct StepDone {
    tp: Option<TopicPartition>,
    offset: Option<i64>,
    alerts: Vec<Alert>,
    dead_letters: Vec<&'static str>,
    received: Instant,
}

struct Daemon {
    config: Config,
    services: Services,
    policy: Policy,
    consumer: Arc<StreamConsumer<Context>>,
    producer: FutureProducer<Context>,
    partitions: HashMap<TopicPartition, PartitionState>,
    assigned: Vec<TopicPartition>,
    in_flight: FuturesOrdered<BoxFuture<'static, Result<StepDone, DaemonError>>>,
    summary: RunSummary,
}

/// Runs until `shutdown` fires, then drains within the grace period.
pub async fn run(
    config: Config,
    services: Services,
    mut shutdown: Shutdown,
) -> Result<RunSummary, DaemonError> {
    let (events_tx, mut consumer_events) = mpsc::unbounded_channel();
    let commit_ms = config.daemon.commit_interval.as_std().as_millis() as u64;
    let consumer_cfg = consumer_config(&config.kafka, commit_ms);
    let producer_cfg = producer_config(&config.kafka);
    tracing::info!(config = %describe(&consumer_cfg), "Creating the consumer.");
    tracing::info!(config = %describe(&producer_cfg), "Creating the producer.");
    let consumer: StreamConsumer<Context> = consumer_cfg
        .create_with_context(Context::new(
            "consumer",
            services.metrics.clone(),
            Some(events_tx),
        ))
        .map_err(|source| DaemonError::Client {
            role: "consumer",
            source,
        })?;
    let producer: FutureProducer<Context> = producer_cfg
        .create_with_context(Context::new("producer", services.metrics.clone(), None))
        .map_err(|source| DaemonError::Client {
            role: "producer",
            source,
        })?;
    let topics: Vec<&str> = config
        .kafka
        .input_topics
        .iter()
        .map(String::as_str)
        .collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| DaemonError::Subscribe {
            topics: config.kafka.input_topics.clone(),
            source,
        })?;
    tracing::info!(topics = ?topics, group = %config.kafka.group_id, "Subscribed; waiting for partitions.");
    services
        .health
        .set_ready(false, "waiting for partition assignment");
    let policy = Policy::new(config.detector.clone());
    // The loop borrows messages from its own handle while the daemon state is borrowed mutably.
    let consumer = Arc::new(consumer);
    let mut daemon = Daemon {
        policy,
        services,
        consumer: consumer.clone(),
        producer,
        partitions: HashMap::new(),
        assigned: Vec::new(),
        in_flight: FuturesOrdered::new(),
        summary: RunSummary::default(),
        config,
    };
    let tick_every = if daemon.config.daemon.idle_tick.0 > 0 {
        daemon.config.daemon.idle_tick.as_std()
    } else {
        Duration::from_secs(1)
    };
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            Some(done) = daemon.in_flight.next(), if !daemon.in_flight.is_empty() => {
                daemon.complete(done?);
            }
            Some(event) = consumer_events.recv() => daemon.consumer_event(event),
            _ = tick.tick() => daemon.tick().await?,
            message = consumer.recv(), if daemon.in_flight.len() < MAX_IN_FLIGHT => {
                match message {
                    Ok(m) => daemon.handle(&m).await?,
                    Err(KafkaError::PartitionEOF(p)) => daemon.caught_up(p),
                    Err(e) => tracing::warn!(error = %e, "Consume error; retrying."),
                }
            }
        }
    }
    daemon.drain().await
}

impl Daemon {
    fn state(&mut self, topic: &str, partition: i32) -> &mut PartitionState {
        let key = (topic.to_owned(), partition);
        if !self.partitions.contains_key(&key) {
            let state = PartitionState::new(self.policy.clone(), Instant::now());
            self.services
                .live
                .insert(topic, partition, state.engine.keys().clone());
            self.partitions.insert(key.clone(), state);
        }
        self.partitions.get_mut(&key).expect("inserted above")
    }

    /// One input message: decode, count, publish what it caused.
    async fn handle(&mut self, m: &BorrowedMessage<'_>) -> Result<(), DaemonError> {
        let received = Instant::now();
        let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
        self.summary.messages += 1;
        let payload = m.payload().unwrap_or_default();
        let metrics = self.services.metrics.clone();
        let mut alerts = Vec::new();
        let mut dead: Option<(&'static str, String, String)> = None;
        let state = self.state(&topic, partition);
        let waits_for = match decode(payload) {
            Err(e) => {
                metrics
                    .events_bad
                    .with_label_values(&[e.reason().as_str()])
                    .inc();
                dead = Some(("bad", e.reason().as_str().to_owned(), e.to_string()));
                None
            }
            Ok(event) => {
                metrics
                    .events_consumed
                    .with_label_values(&[event.channel.as_str()])
                    .inc();
                let lag = Timestamp::now().0 - event.occurred_at.0;
                metrics.observe_event_time_lag_seconds(lag as f64 / 1e6);
                match state.engine.ingest(&event, &mut alerts) {
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
                        None
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
                        (reports > 0).then_some(event.occurred_at)
                    }
                }
            }
        };
        state.track(offset, waits_for, received);
        let final_offset = state.take_final();
        match &dead {
            None => self.summary.events += 1,
            Some(("late", ..)) => self.summary.late += 1,
            Some(_) => self.summary.bad += 1,
        }
        let mut deliveries = Vec::new();
        let mut dead_letters = Vec::new();
        if let Some((kind, reason, error)) = dead {
            let target = if kind == "late" {
                &self.config.kafka.late_topic
            } else {
                &self.config.kafka.dlq_topic
            };
            let origin = Origin {
                topic: &topic,
                partition,
                offset,
            };
            let headers = dead_letter_headers(&reason, &error, &origin);
            deliveries.push(
                enqueue(&self.producer, target, m.key(), payload, headers)
                    .await
                    .map_err(DaemonError::Delivery)?,
            );
            dead_letters.push(kind);
        }
        self.publish(
            Some((topic, partition)),
            final_offset,
            alerts,
            deliveries,
            dead_letters,
            received,
        )
        .await
    }

    /// Sends `alerts` and queues the step; its offset is stored once all of it is acknowledged.
    async fn publish(
        &mut self,
        tp: Option<TopicPartition>,
        offset: Option<i64>,
        alerts: Vec<Alert>,
        mut deliveries: Vec<rdkafka::producer::DeliveryFuture>,
        dead_letters: Vec<&'static str>,
        received: Instant,
    ) -> Result<(), DaemonError> {
        if alerts.is_empty() && deliveries.is_empty() && offset.is_none() {
            return Ok(());
        }
        for alert in &alerts {
            let json = alert.to_json();
            deliveries.push(
                enqueue(
                    &self.producer,
                    &self.config.kafka.alert_topic,
                    Some(alert.product_id.as_bytes()),
                    json.as_bytes(),
                    alert_headers(alert),
                )
                .await
                .map_err(DaemonError::Delivery)?,
            );
        }
        self.summary.alerts += alerts.len() as u64;
        let step = async move {
            for delivery in deliveries {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err(DaemonError::Delivery(e)),
                    Err(_) => return Err(DaemonError::Delivery(KafkaError::Canceled)),
                }
            }
            Ok(StepDone {
                tp,
                offset,
                alerts,
                dead_letters,
                received,
            })
        };
        self.in_flight.push_back(Box::pin(step));
        Ok(())
    }

    /// A step is acknowledged: count it and store its offset.
    fn complete(&mut self, done: StepDone) {
        let metrics = &self.services.metrics;
        if !done.alerts.is_empty() {
            metrics.observe_processing_latency(done.received.elapsed());
        }
        for alert in &done.alerts {
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
        for kind in &done.dead_letters {
            metrics
                .dead_letters_published
                .with_label_values(&[kind])
                .inc();
        }
        if let (Some((topic, partition)), Some(offset)) = (&done.tp, done.offset) {
            if let Err(e) = self.consumer.store_offset(topic, *partition, offset) {
                // The partition was revoked meanwhile; its new owner consumes it again.
                tracing::debug!(%topic, partition, offset, error = %e, "Offset not stored.");
            }
        }
    }

    fn consumer_event(&mut self, event: ConsumerEvent) {
        match event {
            ConsumerEvent::Assigned(tps) => {
                tracing::info!(partitions = ?tps, "Partitions assigned.");
                for (topic, partition) in &tps {
                    self.state(topic, *partition);
                }
                self.assigned.extend(tps);
            }
            ConsumerEvent::Revoked(tps) => {
                tracing::info!(partitions = ?tps, "Partitions revoked.");
                for tp in &tps {
                    self.partitions.remove(tp);
                    self.services.live.remove(&tp.0, tp.1);
                    self.services.metrics.forget_consumer_lag(&tp.0, tp.1);
                }
                self.assigned.retain(|tp| !tps.contains(tp));
            }
            ConsumerEvent::RebalanceFailed(e) => tracing::warn!(error = %e, "Rebalance failed."),
            ConsumerEvent::EndOfPartition(p) => self.caught_up(p),
        }
        self.services
            .metrics
            .partitions_assigned
            .set(self.assigned.len() as i64);
        self.update_readiness();
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
        for ((topic, partition), state) in self.partitions.iter_mut() {
            let mut alerts = Vec::new();
            if idle_clock {
                state.idle_advance(now, quiet, &mut alerts);
            }
            let offset = state.take_final();
            if !alerts.is_empty() || offset.is_some() {
                steps.push(((topic.clone(), *partition), offset, alerts));
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
        for (tp, offset, alerts) in steps {
            self.publish(Some(tp), offset, alerts, Vec::new(), Vec::new(), now)
                .await?;
        }
        Ok(())
    }

    /// Stop fetching, wait for acknowledgements, flush, commit: within the grace period.
    async fn drain(mut self) -> Result<RunSummary, DaemonError> {
        let grace = self.config.daemon.grace_period.as_std();
        let deadline = Instant::now() + grace;
        tracing::info!(in_flight = self.in_flight.len(), grace = ?grace, "Draining.");
        let acked = tokio::time::timeout(grace, async {
            while let Some(done) = self.in_flight.next().await {
                self.complete(done?);
            }
            Ok::<(), DaemonError>(())
        })
        .await;
        match acked {
            Err(_) => return Err(DaemonError::GraceExpired(self.in_flight.len())),
            Ok(result) => result?,
        }
        let producer = self.producer.clone();
        let left = deadline.saturating_duration_since(Instant::now());
        let flushed = tokio::task::spawn_blocking(move || producer.flush(left)).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "Producer flush incomplete.");
        }
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!("Offsets committed."),
            // Nothing stored since the last auto-commit is not a failure.
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Final commit failed; the last offsets will be consumed again.")
            }
        }
        self.consumer.unsubscribe();
        tracing::info!(
            messages = self.summary.messages,
            events = self.summary.events,
            bad = self.summary.bad,
            late = self.summary.late,
            alerts = self.summary.alerts,
            "Stopped cleanly."
        );
        Ok(self.summary)
    }
}
