//! A real Kafka-protocol broker for integration tests: tansu, installed by the project's own
//! script and started on a free loopback port per test; plus small clients to load and read
//! topics without a consumer group (joining a group on tansu takes half a session timeout).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

pub mod committed;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Broker {
    pub addr: String,
    state: tempfile::TempDir,
}

impl Broker {
    /// Installs tansu if needed (scripts/install-tansu.sh) and starts it on a free port.
    pub fn start() -> Broker {
        let state = tempfile::tempdir().expect("temp dir");
        let out = Command::new("bash")
            .arg(repo().join("scripts/start-tansu.sh"))
            .arg(state.path())
            .output()
            .expect("run scripts/start-tansu.sh");
        assert!(
            out.status.success(),
            "tansu did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Broker { addr, state }
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let tansu = repo().join(".tools/bin/tansu");
        let out = Command::new(tansu)
            .args(["topic", "create", "--broker"])
            .arg(format!("tcp://{}", self.addr))
            .args(["--partitions", &partitions.to_string(), name])
            .env_remove("RUST_LOG")
            .output()
            .expect("run tansu topic create");
        assert!(
            out.status.success(),
            "cannot create topic {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn producer(&self) -> FutureProducer {
        producer_for(&self.addr)
    }

    /// Sends each line keyed by its product id (as `recall-radar produce` does), in order.
    pub async fn produce_lines(&self, topic: &str, lines: &[String]) {
        send_keyed(&self.producer(), topic, lines).await;
    }

    /// Reads `topic` from the beginning until `want` records or `timeout`.
    pub fn read(
        &self,
        topic: &str,
        partitions: i32,
        want: usize,
        timeout: Duration,
    ) -> Vec<Record> {
        read_topic(&self.addr, topic, partitions, want, timeout)
    }
}

/// A producer for test input on the broker at `addr`.
pub fn producer_for(addr: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "1")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer")
}

/// Sends each line keyed by its product id (as `recall-radar produce` does), in order.
pub async fn send_keyed(producer: &FutureProducer, topic: &str, lines: &[String]) {
    for line in lines {
        let key = recall_radar::kafka::produce::product_key(line.as_bytes());
        let mut record = FutureRecord::to(topic).payload(line.as_bytes());
        if let Some(k) = key.as_deref() {
            record = record.key(k.as_bytes());
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("test record delivered");
    }
}

/// Reads `topic` from the beginning, without a consumer group, until `want` records or `timeout`.
pub fn read_topic(
    addr: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    timeout: Duration,
) -> Vec<Record> {
    {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", addr)
            .set("group.id", "test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < want && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_owned(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Record {
                    partition: m.partition(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    headers,
                });
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("scripts/stop-tansu.sh"))
            .arg(self.state.path())
            .output();
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub key: Option<String>,
    pub payload: String,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 GET on loopback: the status code and the body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

/// The first `n` NHTSA complaints of data/nhtsa, as sent.
pub fn nhtsa_lines(n: usize) -> Vec<String> {
    use std::io::BufRead;
    let path = repo().join("data/nhtsa/events-ford-toyota.jsonl.gz");
    let file = std::fs::File::open(path).unwrap();
    std::io::BufReader::new(flate2::read::MultiGzDecoder::new(file))
        .lines()
        .take(n)
        .map(Result::unwrap)
        .collect()
}

/// Sends SIGTERM to `child` and waits for it to exit: its status and how long that took, or
/// `None` (and the child killed) if it is still running after `within`.
pub fn sigterm_and_wait(child: &mut Child, within: Duration) -> Option<(ExitStatus, Duration)> {
    let signalled = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status, signalled.elapsed()));
        }
        if signalled.elapsed() > within {
            child.kill().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `within` for a daemon that must stop by itself (`why` it should, if it does not)
/// and gives the error it stopped with.
pub async fn error_it_stops_with(
    running: recall_radar::service::Running,
    within: Duration,
    why: &str,
) -> String {
    tokio::time::timeout(within, running.task)
        .await
        .unwrap_or_else(|_| panic!("{why}"))
        .unwrap()
        .expect_err("the daemon stops with an error")
        .to_string()
}
