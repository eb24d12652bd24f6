//! A read_committed reader at the Kafka protocol level, for the exactly-once tests.
//!
//! tansu 0.6 writes transaction markers (commit/abort control batches) into the log, but its
//! Fetch responses never list aborted transactions, so librdkafka's
//! `isolation.level=read_committed` delivers the records of aborted transactions. This reader
//! fetches everything read_uncommitted, markers included, and applies the markers itself.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{Record, RecordBatchDecoder};

/// Fetch v12 is the newest version that still names topics (v13 on uses topic ids).
const FETCH_VERSION: i16 = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl CommittedRecord {
    /// The value as text (lossy), empty for a null value.
    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Reads every partition of `topic` from offset 0 to the end of the log and returns, per
/// partition in offset order, exactly what a correct read_committed consumer would deliver:
/// non-transactional records; transactional records once their producer's COMMIT marker follows
/// on that partition (dropped on ABORT); nothing from the first record of a still open
/// transaction on (the last stable offset). Control records are never delivered.
///
/// A partition's end is where a fetch returns no new records twice in a row (tansu's high
/// watermark is not trusted), or `timeout`.
pub fn read_committed(
    addr: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Vec<CommittedRecord> {
    try_read_committed(addr, topic, partitions, timeout)
        .unwrap_or_else(|e| panic!("read_committed {topic} at {addr}: {e:#}"))
}

pub fn try_read_committed(
    addr: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<Vec<CommittedRecord>> {
    let deadline = Instant::now() + timeout;
    let mut conn = Conn::connect(addr)?;
    let versions = conn.call(&ApiVersionsRequest::default(), 3)?;
    let fetch = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Fetch as i16)
        .context("broker does not support Fetch")?;
    let version = fetch.max_version.min(FETCH_VERSION);
    ensure!(
        version >= 4,
        "broker supports Fetch up to v{version}, need v4"
    );

    let mut out = Vec::new();
    for partition in 0..partitions {
        let log = conn.read_log(version, topic, partition, deadline)?;
        out.extend(committed(partition, log)?);
    }
    Ok(out)
}

/// Applies the transaction markers of one partition's whole log, read in offset order.
pub fn committed(partition: i32, log: Vec<Record>) -> Result<Vec<CommittedRecord>> {
    // Transactional records whose producer has not written a marker yet, by producer id.
    let mut open: HashMap<i64, Vec<Record>> = HashMap::new();
    let mut delivered = Vec::new();
    for record in log {
        if record.control {
            let key = record.key.as_deref().unwrap_or_default();
            ensure!(
                key.len() >= 4,
                "control record at {} without type",
                record.offset
            );
            let pending = open.remove(&record.producer_id).unwrap_or_default();
            match i16::from_be_bytes([key[2], key[3]]) {
                0 => {}                         // ABORT
                1 => delivered.extend(pending), // COMMIT
                t => bail!("unknown control record type {t} at {}", record.offset),
            }
        } else if record.transactional {
            open.entry(record.producer_id).or_default().push(record);
        } else {
            delivered.push(record);
        }
    }
    let last_stable = open.values().map(|r| r[0].offset).min().unwrap_or(i64::MAX);
    delivered.retain(|r| r.offset < last_stable);
    delivered.sort_by_key(|r| r.offset);
    Ok(delivered
        .into_iter()
        .map(|r| CommittedRecord {
            partition,
            offset: r.offset,
            key: r.key.map(|k| k.to_vec()),
            value: r.value.map(|v| v.to_vec()),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_deref().unwrap_or_default().to_vec()))
                .collect(),
        })
        .collect())
}

/// Decodes a Fetch response's record batches; a partial batch at the end is left out.
fn decode_batches(mut buf: &[u8]) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    while buf.len() >= 12 {
        // Each batch: base offset (8 bytes), then its length (4 bytes), then the rest.
        let len = i32::from_be_bytes(buf[8..12].try_into().unwrap());
        let end = 12 + usize::try_from(len).context("negative batch length")?;
        if buf.len() < end {
            break;
        }
        let mut batch = &buf[..end];
        records.extend(RecordBatchDecoder::decode(&mut batch)?.records);
        buf = &buf[end..];
    }
    Ok(records)
}

struct Conn {
    stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    fn connect(addr: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn {
            stream,
            correlation_id: 0,
        })
    }

    /// One request and its response, each framed by a 4-byte size.
    fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("committed-reader")));
        let mut body = Vec::new();
        header.encode(&mut body, R::header_version(version))?;
        request.encode(&mut body, version)?;
        self.stream.write_all(&(body.len() as i32).to_be_bytes())?;
        self.stream.write_all(&body)?;

        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut response)?;
        let mut buf = response.as_slice();
        let header = ResponseHeader::decode(&mut buf, R::Response::header_version(version))?;
        ensure!(
            header.correlation_id == self.correlation_id,
            "correlation id {} for request {}",
            header.correlation_id,
            self.correlation_id
        );
        R::Response::decode(&mut buf, version)
    }

    /// Every record of one partition from offset 0, control records included.
    fn read_log(
        &mut self,
        version: i16,
        topic: &str,
        partition: i32,
        deadline: Instant,
    ) -> Result<Vec<Record>> {
        let mut log: Vec<Record> = Vec::new();
        let mut next = 0;
        let mut empty = 0;
        while empty < 2 && Instant::now() < deadline {
            let request = FetchRequest::default()
                .with_max_wait_ms(100)
                .with_min_bytes(1)
                .with_isolation_level(0) // read_uncommitted: we want the markers too
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(next)
                        .with_partition_max_bytes(1 << 20)])]);
            let response = self.call(&request, version)?;
            ensure!(
                response.error_code == 0,
                "fetch error {}",
                response.error_code
            );
            let mut fresh = Vec::new();
            for data in response.responses.iter().flat_map(|t| &t.partitions) {
                ensure!(
                    data.error_code == 0,
                    "fetch {topic}/{partition} at {next}: error {}",
                    data.error_code
                );
                let records = decode_batches(data.records.as_deref().unwrap_or_default())
                    .with_context(|| format!("decode {topic}/{partition} at {next}"))?;
                // A fetch may start inside a batch: skip what was already read.
                fresh.extend(records.into_iter().filter(|r| r.offset >= next));
            }
            match fresh.last() {
                None => empty += 1,
                Some(last) => {
                    empty = 0;
                    next = last.offset + 1;
                    log.extend(fresh);
                }
            }
        }
        Ok(log)
    }
}

/// For a failure to be read: prints, for the records of `topic` whose value contains one of
/// `needles`, where they are and which producer (id, epoch) wrote them, with each partition's
/// transaction markers, so a repeat shows whether a broker or a client wrote it twice.
pub fn explain(addr: &str, topic: &str, partitions: i32, needles: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let Ok(mut conn) = Conn::connect(addr) else {
        return;
    };
    for partition in 0..partitions {
        let Ok(log) = conn.read_log(FETCH_VERSION, topic, partition, deadline) else {
            return;
        };
        let hit = |r: &Record| {
            let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
            needles.iter().find(|n| v.contains(n.as_str())).cloned()
        };
        let hits: Vec<i64> = log
            .iter()
            .filter(|r| !r.control && hit(r).is_some())
            .map(|r| r.offset)
            .collect();
        let (Some(first), Some(last)) = (hits.first(), hits.last()) else {
            continue;
        };
        // The markers between the first and the last copy, and the first one after.
        let end = log
            .iter()
            .find(|r| r.control && r.offset > *last)
            .map_or(*last, |r| r.offset);
        for r in log.iter().filter(|r| (*first..=end).contains(&r.offset)) {
            let what = if r.control {
                let k = r.key.as_deref().unwrap_or_default();
                match k.get(2..4) {
                    Some([0, 0]) => "ABORT".to_owned(),
                    Some([0, 1]) => "COMMIT".to_owned(),
                    _ => "control".to_owned(),
                }
            } else {
                match hit(r) {
                    Some(n) => n,
                    None => continue,
                }
            };
            eprintln!(
                "{topic}/{partition} @{} producer {} epoch {}: {what}",
                r.offset, r.producer_id, r.producer_epoch
            );
        }
    }
}
