//! Rebuilding a partition's windows from Kafka: replay the input from the checkpoint's offset to
//! the committed offset through the same decode and engine as live traffic, alerts discarded
//! (they were published before the commit), then move the watermark to where it was.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::checkpoint::{reader_config, Checkpoint};
use crate::config::KafkaConfig;
use crate::engine::Engine;
use crate::event::decode;
use crate::policy::Policy;
use crate::time::Timestamp;

/// What to replay for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub topic: String,
    pub partition: i32,
    /// First offset to replay; `None`: the partition's beginning.
    pub from: Option<i64>,
    /// The watermark to start with.
    pub start_watermark: Option<Timestamp>,
    /// Replay stops before this offset (the committed offset).
    pub until: i64,
    /// The watermark to move to after the replay.
    pub end_watermark: Option<Timestamp>,
}

impl Plan {
    /// The plan for a partition committed at `committed` (`None`: never committed, nothing to
    /// rebuild) given its chosen checkpoint (`None`: replay from the beginning).
    pub fn new(
        topic: &str,
        partition: i32,
        committed: Option<i64>,
        checkpoint: Option<&Checkpoint>,
    ) -> Option<Plan> {
        let until = committed?;
        let (from, start_watermark, end_watermark) = match checkpoint {
            Some(c) => match c.replay_from {
                Some(from) => (Some(from), c.replay_watermark(), c.watermark()),
                // No live key then: nothing to replay, only the clock to restore.
                None => (Some(until), None, c.watermark()),
            },
            None => (None, None, None),
        };
        Some(Plan {
            topic: topic.to_owned(),
            partition,
            from,
            start_watermark,
            until,
            end_watermark,
        })
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rebuilt {
    pub messages: u64,
    pub seconds: f64,
}

/// Replays `plan` into a fresh engine. Blocking: run it off the async threads.
pub fn rebuild(
    kafka: &KafkaConfig,
    policy: Policy,
    plan: &Plan,
) -> Result<(Engine, Rebuilt), KafkaError> {
    let started = Instant::now();
    let mut engine = Engine::with_policy(policy);
    let mut discarded = Vec::new();
    if let Some(w) = plan.start_watermark {
        engine.advance_to(w, &mut discarded);
    }
    let mut messages = 0u64;
    if plan.from.is_none_or(|from| from < plan.until) {
        let consumer: BaseConsumer = reader_config(kafka).create()?;
        let mut tpl = TopicPartitionList::new();
        let start = plan.from.map_or(Offset::Beginning, Offset::Offset);
        tpl.add_partition_offset(&plan.topic, plan.partition, start)?;
        consumer.assign(&tpl)?;
        let mut last_progress = Instant::now();
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                // The end of the log before `until`: the rest were control records (transaction
                // markers), which take offsets but are never delivered.
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(e),
                Some(Ok(m)) => {
                    if m.offset() >= plan.until {
                        break;
                    }
                    messages += 1;
                    if let Ok(event) = decode(m.payload().unwrap_or_default()) {
                        engine.ingest_at(&event, m.offset(), &mut discarded);
                        discarded.clear();
                    }
                    if m.offset() + 1 >= plan.until {
                        break;
                    }
                }
            }
            // Reading the clock for every message showed in profiles; every 4096 is plenty.
            if messages % 4096 == 0 && last_progress.elapsed() > Duration::from_secs(5) {
                last_progress = Instant::now();
                tracing::info!(topic = %plan.topic, partition = plan.partition, messages, until = plan.until, "Rebuilding.");
            }
        }
    }
    if let Some(w) = plan.end_watermark {
        engine.advance_to(w, &mut discarded);
    }
    let rebuilt = Rebuilt {
        messages,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((engine, rebuilt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(replay_from: Option<i64>, next_offset: i64) -> Checkpoint {
        Checkpoint {
            v: 1,
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            replay_from,
            replay_watermark: Some(5),
            watermark: Some(9),
            next_offset,
        }
    }

    #[test]
    fn plans_follow_the_checkpoint_or_replay_everything() {
        assert_eq!(Plan::new("t", 3, None, None), None, "never committed");
        let c = checkpoint(Some(40), 90);
        let p = Plan::new("t", 3, Some(100), Some(&c)).unwrap();
        assert_eq!(
            (p.from, p.start_watermark, p.until, p.end_watermark),
            (Some(40), Some(Timestamp(5)), 100, Some(Timestamp(9)))
        );
        let none_live = checkpoint(None, 90);
        let p = Plan::new("t", 3, Some(100), Some(&none_live)).unwrap();
        assert_eq!((p.from, p.start_watermark), (Some(100), None));
        let p = Plan::new("t", 3, Some(100), None).unwrap();
        assert_eq!(
            (p.from, p.until),
            (None, 100),
            "no checkpoint: from the beginning"
        );
    }
}
