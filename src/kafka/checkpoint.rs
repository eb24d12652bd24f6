//! Checkpoints: where a replay of an input partition rebuilds its windows, kept in a compacted
//! Kafka topic (one key per consumer group, topic and partition), so state is rebuilt from Kafka
//! alone.
//!
//! A checkpoint written when the partition's next offset was `next_offset` says: replaying from
//! `replay_from`, with the engine's watermark first set to `replay_watermark`, up to the committed
//! offset, then moving the watermark to `watermark`, rebuilds every live key (see
//! `Engine::replay_from`). It stays valid for any later committed offset, because keys created
//! later start later; it is not valid for an earlier one. So the newest checkpoint whose
//! `next_offset` is at or below the committed offset is used, and with none the partition is
//! replayed from its beginning. (An aborted transaction's checkpoint, which a broker that fails to
//! filter aborted records would show, is newer than the committed offset and so is skipped.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::KafkaConfig;
use crate::engine::{Engine, ReplayFrom};
use crate::time::Timestamp;

/// One checkpoint record (JSON, version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub v: u32,
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// The offset to replay from; `None`: no live key, nothing to replay.
    pub replay_from: Option<i64>,
    /// The watermark (microseconds since the epoch) to start the replay with.
    pub replay_watermark: Option<i64>,
    /// The watermark (microseconds) the engine had, idle clock included.
    pub watermark: Option<i64>,
    /// The partition's next offset when this was written.
    pub next_offset: i64,
}

impl Checkpoint {
    pub fn of(group: &str, topic: &str, partition: i32, engine: &Engine, next: i64) -> Checkpoint {
        let from: Option<ReplayFrom> = engine.replay_from();
        Checkpoint {
            v: 1,
            group: group.to_owned(),
            topic: topic.to_owned(),
            partition,
            replay_from: from.map(|f| f.offset),
            replay_watermark: from.and_then(|f| f.watermark).map(|w| w.0),
            watermark: engine.watermark().map(|w| w.0),
            next_offset: next,
        }
    }

    pub fn key(&self) -> String {
        key(&self.group, &self.topic, self.partition)
    }

    pub fn replay_watermark(&self) -> Option<Timestamp> {
        self.replay_watermark.map(Timestamp)
    }

    pub fn watermark(&self) -> Option<Timestamp> {
        self.watermark.map(Timestamp)
    }
}

/// The record key: checkpoints of one group's partition compact to the newest.
pub fn key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}")
}

/// The newest checkpoint that is valid for `committed` (see the module doc).
pub fn choose(history: &[Checkpoint], committed: i64) -> Option<&Checkpoint> {
    history.iter().rev().find(|c| c.next_offset <= committed)
}

/// A consumer outside the consumer group that reads assigned partitions, committed data only.
pub fn reader_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in &kafka.consumer {
        c.set(k, v);
    }
    c.set("bootstrap.servers", &kafka.brokers)
        .set("group.id", format!("{}-reader", kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest");
    c.remove("partition.assignment.strategy");
    c
}

/// Reads the whole checkpoint topic and returns, for each wanted (topic, partition) of this
/// group, its checkpoints in the order written. A missing topic means no checkpoints.
pub fn load(
    kafka: &KafkaConfig,
    wanted: &[(String, i32)],
    timeout: Duration,
) -> Result<HashMap<(String, i32), Vec<Checkpoint>>, KafkaError> {
    let mut found: HashMap<(String, i32), Vec<Checkpoint>> = HashMap::new();
    let consumer: BaseConsumer = reader_config(kafka).create()?;
    let topic = &kafka.checkpoint_topic;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Ok(found);
    }
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut open: Vec<i32> = partitions;
    let deadline = Instant::now() + timeout;
    while !open.is_empty() {
        if Instant::now() > deadline {
            return Err(KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => open.retain(|x| *x != p),
            Some(Err(e)) => return Err(e),
            Some(Ok(m)) => {
                let Some(c) = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<Checkpoint>(p).ok())
                else {
                    tracing::warn!(offset = m.offset(), "Unreadable checkpoint record skipped.");
                    continue;
                };
                let tp = (c.topic.clone(), c.partition);
                if c.group == kafka.group_id && wanted.contains(&tp) {
                    found.entry(tp).or_default().push(c);
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(next_offset: i64) -> Checkpoint {
        Checkpoint {
            v: 1,
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            replay_from: Some(next_offset / 2),
            replay_watermark: None,
            watermark: None,
            next_offset,
        }
    }

    #[test]
    fn the_newest_checkpoint_not_past_the_committed_offset_is_chosen() {
        let history = [at(10), at(20), at(30)];
        assert_eq!(choose(&history, 25).unwrap().next_offset, 20);
        assert_eq!(choose(&history, 30).unwrap().next_offset, 30);
        assert_eq!(choose(&history, 31).unwrap().next_offset, 30);
        assert!(
            choose(&history, 9).is_none(),
            "all are newer than the commit"
        );
        assert!(choose(&[], 100).is_none());
    }

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let c = at(42);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Checkpoint>(&json).unwrap(), c);
        assert_eq!(c.key(), "g/t/0");
    }
}
