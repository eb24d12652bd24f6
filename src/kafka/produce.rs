//! Loading contact events into Kafka (`recall-radar produce`, `generate --topic`, the demo):
//! each line is sent as is, keyed by its product id so a product's reports share a partition.
//! Lines that are not events are sent too, unkeyed: the daemon's dead-letter path must see them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureProducer;
use serde::Deserialize;

use super::client::Context;
use super::publish::enqueue;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Deliveries awaited before more are sent.
const WINDOW: usize = 100_000;

#[derive(Debug, Clone, Default)]
pub struct ProduceReport {
    pub sent: u64,
    pub unkeyed: u64,
    pub elapsed: Duration,
}

impl ProduceReport {
    pub fn render(&self, topic: &str) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "produced {} records to {topic} in {secs:.2}s ({:.0}/s); {} without a product id were sent unkeyed",
            self.sent,
            self.sent as f64 / secs,
            self.unkeyed
        )
    }
}

#[derive(Deserialize)]
struct KeyOnly<'a> {
    #[serde(borrow)]
    product_id: Option<std::borrow::Cow<'a, str>>,
}

/// The Kafka key of an event line: its trimmed product id, if it has one.
pub fn product_key(line: &[u8]) -> Option<String> {
    let k: KeyOnly<'_> = serde_json::from_slice(line).ok()?;
    let p = k.product_id?;
    let p = p.trim();
    (!p.is_empty()).then(|| p.to_owned())
}

/// A producer for loading: idempotent, like the daemon's.
pub fn loader(
    brokers: &str,
    extra: &[(&str, &str)],
) -> Result<FutureProducer<Context>, KafkaError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .set("partitioner", "murmur2_random");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create_with_context(Context::new("producer", Metrics::new(), None))
}

/// Sends every line to `topic`, at most `rate` lines per second if given, until the lines end
/// or `shutdown` fires; waits for every acknowledgement.
pub async fn produce_lines<I>(
    producer: &FutureProducer<Context>,
    topic: &str,
    lines: I,
    rate: Option<f64>,
    shutdown: Option<Shutdown>,
) -> Result<ProduceReport, KafkaError>
where
    I: IntoIterator<Item = Vec<u8>>,
{
    let started = Instant::now();
    let mut report = ProduceReport::default();
    let mut pending = FuturesUnordered::new();
    let stop = shutdown.unwrap_or_else(|| crate::shutdown::channel().1);
    let producer = Arc::new(producer.clone());
    for line in lines {
        if stop.is_triggered() {
            break;
        }
        let key = product_key(&line);
        report.unkeyed += u64::from(key.is_none());
        let delivery = enqueue(
            &producer,
            topic,
            key.as_deref().map(str::as_bytes),
            &line,
            OwnedHeaders::new(),
        )
        .await?;
        pending.push(delivery);
        report.sent += 1;
        while pending.len() >= WINDOW {
            check(pending.next().await)?;
        }
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(report.sent as f64 / rate);
            let elapsed = started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
    while let Some(d) = pending.next().await {
        check(Some(d))?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The non-empty lines of the inputs in order, read as they are sent (files may be larger than
/// memory). A read error ends the lines and is kept in `error` for the caller to report.
pub fn input_lines<'a>(
    inputs: &'a [PathBuf],
    error: &'a std::cell::RefCell<Option<anyhow::Error>>,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    inputs.iter().flat_map(move |path| {
        let reader = match crate::replay::open_input(path, Default::default()) {
            Ok(r) => Some(r),
            Err(e) => {
                error.borrow_mut().get_or_insert(e.into());
                None
            }
        };
        reader
            .into_iter()
            .flat_map(|r| std::io::BufRead::split(r, b'\n'))
            .map_while(move |line| match line {
                Ok(line) => Some(line),
                Err(e) => {
                    error.borrow_mut().get_or_insert(
                        anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
                    );
                    None
                }
            })
            .filter_map(|line| {
                let n = line.trim_ascii_end().len();
                (n > 0).then(|| line[..n].to_vec())
            })
    })
}

type Delivered = <rdkafka::producer::DeliveryFuture as std::future::Future>::Output;

fn check(delivery: Option<Delivered>) -> Result<(), KafkaError> {
    match delivery {
        None | Some(Ok(Ok(_))) => Ok(()),
        Some(Ok(Err((e, _)))) => Err(e),
        Some(Err(_)) => Err(KafkaError::Canceled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_trimmed_product_ids() {
        assert_eq!(
            product_key(br#"{"product_id":" kettle ","x":1}"#).as_deref(),
            Some("kettle")
        );
        assert_eq!(product_key(b"not json"), None);
        assert_eq!(product_key(br#"{"product_id":"  "}"#), None);
    }
}
