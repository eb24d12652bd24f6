//! Configuration in two stages: [`RawConfig`] is the TOML file as written (unknown keys are an
//! error, every key has a documented default), and [`Config`] is what was checked before any I/O:
//! thresholds ascending, windows positive, tag classes unambiguous, patterns compiled.
//!
//! `config/recall-radar.toml` documents every key with its default. This module is a leaf: it
//! knows nothing of the stages that read it. The detector's part lives in `detector.rs`; Kafka,
//! daemon and admin settings here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::time::{parse_span, Span};

mod detector;
pub use detector::{
    DetectorConfig, FastPath, RawDetector, RawTagClass, TagClassConfig, Thresholds,
};

/// The window every command uses unless told otherwise.
pub const DEFAULT_WINDOW: &str = "30d";
pub const DEFAULT_ALLOWED_LATENESS: &str = "1h";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("config key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub detector: RawDetector,
    pub kafka: RawKafka,
    pub daemon: RawDaemon,
    pub admin: RawAdmin,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawKafka {
    pub brokers: String,
    pub input_topics: Vec<String>,
    pub alert_topic: String,
    pub dlq_topic: String,
    /// Empty: late events go to the dead-letter topic with reason `late`.
    pub late_topic: String,
    pub group_id: String,
    /// `exactly-once` (transactions) or `at-least-once` (for brokers without transactions).
    pub delivery: String,
    /// Transactional id of this instance; empty: `<group_id>-<hostname>`.
    pub transactional_id: String,
    /// Compacted topic recording, per input partition, where a replay rebuilds its windows.
    pub checkpoint_topic: String,
    /// Exactly-once: after each transaction, read the committed offsets back and commit them
    /// again until the broker shows them (for brokers that acknowledge a transaction before
    /// applying its offsets).
    pub confirm_offsets: bool,
    /// Re-publish input keyed by product_id to an internal topic and detect from there.
    pub repartition: bool,
    /// The internal topic of `repartition`; empty: `<group_id>-repartition`.
    pub repartition_topic: String,
    /// librdkafka consumer properties, passed through (`security.protocol`, `sasl.*`, `ssl.*` ...).
    pub consumer: BTreeMap<String, String>,
    /// librdkafka producer properties, passed through.
    pub producer: BTreeMap<String, String>,
}

impl Default for RawKafka {
    fn default() -> Self {
        RawKafka {
            brokers: "localhost:9092".into(),
            input_topics: vec!["contact-events".into()],
            alert_topic: "recall-alerts".into(),
            dlq_topic: "recall-radar-dead-letters".into(),
            late_topic: String::new(),
            group_id: "recall-radar".into(),
            delivery: "exactly-once".into(),
            transactional_id: String::new(),
            checkpoint_topic: "recall-radar-checkpoints".into(),
            confirm_offsets: false,
            repartition: false,
            repartition_topic: String::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDaemon {
    /// How long SIGINT/SIGTERM may take to drain, flush and commit before the process exits.
    pub grace_period: String,
    /// When a partition is quiet, its event-time clock advances by the wall-clock time that
    /// passes, checked this often. "0s" turns the idle clock off.
    pub idle_tick: String,
    /// How often offsets are committed: with exactly-once delivery, the length of a
    /// transaction, so also how long a read_committed reader waits for an alert.
    pub commit_interval: String,
    /// How often a checkpoint (where a replay rebuilds each partition) is written.
    pub checkpoint_interval: String,
    /// Alerts and dead letters kept in memory while a commit runs (they go out with the next);
    /// at this many the input is paused until that commit ends.
    pub max_held_records: usize,
}

impl Default for RawDaemon {
    fn default() -> Self {
        RawDaemon {
            grace_period: "30s".into(),
            idle_tick: "1s".into(),
            commit_interval: "100ms".into(),
            checkpoint_interval: "10s".into(),
            max_held_records: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    /// Address of the admin HTTP server (/metrics, /healthz, /readyz, /api/...). Empty: off.
    pub addr: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            addr: "127.0.0.1:9898".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub input_topics: Vec<String>,
    pub alert_topic: String,
    pub dlq_topic: String,
    pub late_topic: String,
    pub group_id: String,
    pub delivery: Delivery,
    pub transactional_id: String,
    pub checkpoint_topic: String,
    /// Read committed offsets back after each transaction (exactly-once only).
    pub confirm_offsets: bool,
    /// The internal topic input is re-published to, keyed by product_id; `None`: no repartition.
    pub repartition_topic: Option<String>,
    pub consumer: BTreeMap<String, String>,
    pub producer: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// The topics detection consumes: the repartition topic if input is re-published, else
    /// the input topics.
    pub fn detection_topics(&self) -> Vec<String> {
        match &self.repartition_topic {
            Some(t) => vec![t.clone()],
            None => self.input_topics.clone(),
        }
    }

    /// The topics detection writes to: alerts, dead letters, late events (the dead-letter
    /// topic unless set apart) and checkpoints.
    pub fn detection_writes(&self) -> Vec<String> {
        let mut writes = vec![
            self.alert_topic.clone(),
            self.dlq_topic.clone(),
            self.late_topic.clone(),
            self.checkpoint_topic.clone(),
        ];
        // `late_topic` is `dlq_topic` when not set apart: the two stand side by side.
        writes.dedup();
        writes
    }
}

/// How alerts, checkpoints and input offsets reach Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// One transaction per commit interval: a read_committed reader sees each alert once.
    ExactlyOnce,
    /// Offsets committed after the alerts are acknowledged: a crash can repeat alerts (same ids).
    AtLeastOnce,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub grace_period: Span,
    pub idle_tick: Span,
    pub commit_interval: Span,
    pub checkpoint_interval: Span,
    pub max_held_records: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub detector: DetectorConfig,
    pub kafka: KafkaConfig,
    pub daemon: DaemonConfig,
    pub admin_addr: Option<SocketAddr>,
}

fn span(key: &str, value: &str) -> Result<Span, ConfigError> {
    parse_span(value).map_err(|e| invalid(key, e))
}

fn topic(key: &str, value: &str) -> Result<String, ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 249
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(invalid(
            key,
            format!("{value:?} is not a Kafka topic name (1-249 of [a-zA-Z0-9._-])"),
        ));
    }
    Ok(value.to_owned())
}

/// Properties the daemon sets itself; overriding them would break its delivery guarantees.
const RESERVED_PROPERTIES: [&str; 7] = [
    "enable.auto.commit",
    "enable.auto.offset.store",
    "group.id",
    "bootstrap.servers",
    "enable.idempotence",
    "transactional.id",
    "isolation.level",
];

fn passthrough(
    key: &str,
    props: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    for name in props.keys() {
        if RESERVED_PROPERTIES.contains(&name.as_str()) {
            return Err(invalid(
                format!("{key}.\"{name}\""),
                "is set by recall-radar itself; use the dedicated key (brokers, group_id, transactional_id) or leave it",
            ));
        }
    }
    Ok(props.clone())
}

impl Config {
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let detector = DetectorConfig::from_raw(&raw.detector)?;
        let k = &raw.kafka;
        if k.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "must list at least one host:port"));
        }
        if k.input_topics.is_empty() {
            return Err(invalid(
                "kafka.input_topics",
                "must name at least one topic",
            ));
        }
        let input_topics = k
            .input_topics
            .iter()
            .map(|t| topic("kafka.input_topics", t))
            .collect::<Result<Vec<_>, _>>()?;
        let alert_topic = topic("kafka.alert_topic", &k.alert_topic)?;
        let dlq_topic = topic("kafka.dlq_topic", &k.dlq_topic)?;
        let late_topic = if k.late_topic.is_empty() {
            dlq_topic.clone()
        } else {
            topic("kafka.late_topic", &k.late_topic)?
        };
        for (name, t) in [("alert_topic", &alert_topic), ("dlq_topic", &dlq_topic)] {
            if input_topics.contains(t) {
                return Err(invalid(
                    format!("kafka.{name}"),
                    format!("{t:?} is also an input topic; the daemon would read its own output"),
                ));
            }
        }
        if k.group_id.trim().is_empty() {
            return Err(invalid("kafka.group_id", "must not be empty"));
        }
        let delivery = match k.delivery.as_str() {
            "exactly-once" => Delivery::ExactlyOnce,
            "at-least-once" => Delivery::AtLeastOnce,
            other => {
                return Err(invalid(
                    "kafka.delivery",
                    format!("{other:?} is neither \"exactly-once\" nor \"at-least-once\""),
                ))
            }
        };
        let transactional_id = if k.transactional_id.is_empty() {
            format!("{}-{}", k.group_id, hostname())
        } else {
            k.transactional_id.clone()
        };
        let checkpoint_topic = topic("kafka.checkpoint_topic", &k.checkpoint_topic)?;
        if k.confirm_offsets && delivery != Delivery::ExactlyOnce {
            return Err(invalid(
                "kafka.confirm_offsets",
                "applies to delivery = \"exactly-once\" only (at least once, offsets are committed directly)",
            ));
        }
        let repartition_topic = if k.repartition {
            let name = if k.repartition_topic.is_empty() {
                format!("{}-repartition", k.group_id)
            } else {
                k.repartition_topic.clone()
            };
            Some(topic("kafka.repartition_topic", &name)?)
        } else {
            None
        };
        let internal = [
            ("checkpoint_topic", Some(&checkpoint_topic)),
            ("repartition_topic", repartition_topic.as_ref()),
        ];
        for (name, t) in internal {
            let Some(t) = t else { continue };
            if input_topics.contains(t) || [&alert_topic, &dlq_topic, &late_topic].contains(&t) {
                return Err(invalid(
                    format!("kafka.{name}"),
                    format!(
                        "{t:?} is also an input or output topic; it must be recall-radar's own"
                    ),
                ));
            }
        }
        let d = &raw.daemon;
        let grace_period = span("daemon.grace_period", &d.grace_period)?;
        let idle_tick = span("daemon.idle_tick", &d.idle_tick)?;
        let commit_interval = span("daemon.commit_interval", &d.commit_interval)?;
        if commit_interval.0 <= 0 {
            return Err(invalid("daemon.commit_interval", "must be longer than 0s"));
        }
        let checkpoint_interval = span("daemon.checkpoint_interval", &d.checkpoint_interval)?;
        if checkpoint_interval < commit_interval {
            return Err(invalid(
                "daemon.checkpoint_interval",
                format!(
                    "must be at least daemon.commit_interval ({})",
                    d.commit_interval
                ),
            ));
        }
        if d.max_held_records == 0 {
            return Err(invalid("daemon.max_held_records", "must be at least 1"));
        }
        let admin_addr = if raw.admin.addr.is_empty() {
            None
        } else {
            Some(raw.admin.addr.parse().map_err(|e| {
                invalid(
                    "admin.addr",
                    format!("{:?} is not host:port ({e})", raw.admin.addr),
                )
            })?)
        };
        Ok(Config {
            detector,
            kafka: KafkaConfig {
                brokers: k.brokers.clone(),
                input_topics,
                alert_topic,
                dlq_topic,
                late_topic,
                group_id: k.group_id.clone(),
                delivery,
                transactional_id,
                checkpoint_topic,
                confirm_offsets: k.confirm_offsets,
                repartition_topic,
                consumer: passthrough("kafka.consumer", &k.consumer)?,
                producer: passthrough("kafka.producer", &k.producer)?,
            },
            daemon: DaemonConfig {
                grace_period,
                idle_tick,
                commit_interval,
                checkpoint_interval,
                max_held_records: d.max_held_records,
            },
            admin_addr,
        })
    }
}

/// This machine's name, for a default transactional id that survives restarts.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl RawConfig {
    /// Reads a TOML file; a missing `path` means all defaults.
    pub fn load(path: Option<&Path>) -> Result<RawConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(RawConfig::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        RawConfig::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, path: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// The effective configuration as TOML, with secrets in pass-through properties redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        for props in [&mut shown.kafka.consumer, &mut shown.kafka.producer] {
            for (name, value) in props.iter_mut() {
                if is_secret(name) {
                    *value = "<redacted>".into();
                }
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

/// librdkafka properties whose values must never be printed or logged.
pub fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "key.pem",
        "oauthbearer.config",
        "jaas",
        "token",
    ]
    .iter()
    .any(|s| n.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, ConfigError> {
        Config::from_raw(&RawConfig::parse(text, "test.toml")?)
    }

    #[test]
    fn defaults_are_valid() {
        let c = check("").unwrap();
        assert_eq!(c.detector.window, Span::from_days(30));
        assert_eq!(c.detector.allowed_lateness, Span::from_secs(3600));
        assert_eq!(c.kafka.late_topic, c.kafka.dlq_topic);
        assert_eq!(c.admin_addr.unwrap().port(), 9898);
    }

    #[test]
    fn detection_writes_each_topic_once() {
        let c = check("").unwrap();
        assert_eq!(
            c.kafka.detection_writes(),
            [
                "recall-alerts",
                "recall-radar-dead-letters",
                "recall-radar-checkpoints"
            ]
        );
        let c = check("[kafka]\nlate_topic = \"late\"\n").unwrap();
        assert_eq!(
            c.kafka.detection_writes(),
            [
                "recall-alerts",
                "recall-radar-dead-letters",
                "late",
                "recall-radar-checkpoints"
            ]
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = check("[detector]\nwindow_size = \"3d\"\n").unwrap_err();
        assert!(e.to_string().contains("window_size"), "{e}");
    }

    #[test]
    fn cross_field_errors_name_the_key() {
        let cases = [
            (
                "[detector]\nthresholds = { anomaly = 2, pattern = 2, problem = 3 }",
                "detector.thresholds",
            ),
            ("[detector]\nwindow = \"0s\"", "detector.window"),
            ("[detector]\nwindow = \"ten days\"", "detector.window"),
            (
                "[[detector.tag_class]]\nname = \"x\"\npatterns = [\"(\"]",
                "detector.tag_class[0].patterns",
            ),
            (
                "[[detector.tag_class]]\nname = \"a\"\ntags=[\"t\"]\n[[detector.tag_class]]\nname = \"b\"\ntags=[\"t\"]",
                "detector.tag_class[1].tags",
            ),
            ("[kafka]\nalert_topic = \"contact-events\"", "kafka.alert_topic"),
            ("[kafka]\ndlq_topic = \"bad topic\"", "kafka.dlq_topic"),
            ("[kafka.consumer]\n\"enable.auto.commit\" = \"true\"", "kafka.consumer"),
            ("[admin]\naddr = \"nowhere\"", "admin.addr"),
            ("[daemon]\nmax_held_records = 0", "daemon.max_held_records"),
            (
                "[kafka]\ndelivery = \"at-least-once\"\nconfirm_offsets = true",
                "kafka.confirm_offsets",
            ),
        ];
        for (text, key) in cases {
            let e = check(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text:?} gave {e}");
        }
    }

    #[test]
    fn the_shipped_file_documents_the_defaults() {
        let text = include_str!("../../config/recall-radar.toml");
        let shipped = RawConfig::parse(text, "config/recall-radar.toml").unwrap();
        let defaults = RawConfig::default();
        assert_eq!(
            toml::to_string(&shipped).unwrap(),
            toml::to_string(&defaults).unwrap(),
            "config/recall-radar.toml must show the defaults"
        );
        Config::from_raw(&shipped).unwrap();
    }

    #[test]
    fn secrets_are_redacted() {
        let raw = RawConfig::parse(
            "[kafka.consumer]\n\"sasl.password\" = \"hunter2\"\n\"sasl.username\" = \"bob\"",
            "t",
        )
        .unwrap();
        let shown = raw.to_redacted_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("bob"));
    }
}
