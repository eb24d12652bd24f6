//! Records recall-radar writes to Kafka: alerts keyed by product id, and dead letters that keep
//! the raw payload with headers saying why and where it came from.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use super::client::Context;
use crate::alert::Alert;

pub const HEADER_REASON: &str = "recall-radar.reason";
pub const HEADER_ERROR: &str = "recall-radar.error";
pub const HEADER_SOURCE_TOPIC: &str = "recall-radar.source.topic";
pub const HEADER_SOURCE_PARTITION: &str = "recall-radar.source.partition";
pub const HEADER_SOURCE_OFFSET: &str = "recall-radar.source.offset";

/// Where a dead letter came from.
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

pub fn alert_headers(alert: &Alert) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(header("content-type", "application/json"))
        .insert(header("recall-radar.alert-id", &alert.alert_id))
        .insert(header("recall-radar.level", alert.level.as_str()))
        .insert(header("recall-radar.status", alert.status.as_str()))
}

pub fn dead_letter_headers(reason: &str, error: &str, origin: &Origin<'_>) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(header(HEADER_REASON, reason))
        .insert(header(HEADER_ERROR, error))
        .insert(header(HEADER_SOURCE_TOPIC, origin.topic))
        .insert(header(
            HEADER_SOURCE_PARTITION,
            &origin.partition.to_string(),
        ))
        .insert(header(HEADER_SOURCE_OFFSET, &origin.offset.to_string()))
}

/// Hands a record to the producer, waiting while its queue is full (backpressure, in order).
pub async fn enqueue(
    producer: &FutureProducer<Context>,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: OwnedHeaders,
) -> Result<DeliveryFuture, KafkaError> {
    let mut record = FutureRecord::to(topic).payload(payload).headers(headers);
    if let Some(key) = key {
        record = record.key(key);
    }
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}
