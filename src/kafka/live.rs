//! The live windows of every assigned partition, read by the admin API while the daemon writes:
//! open episodes (`/api/signals`) and the hottest keys (`/api/top`).

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde_json::{json, Value};

use crate::admin::SignalSource;
use crate::engine::{Key, KeyMap, KeyState};
use crate::policy::{Class, Level};
use crate::summary::summarize;

pub struct LiveWindows {
    partitions: RwLock<BTreeMap<(String, i32), KeyMap>>,
    classes: Vec<Class>,
    evidence_limit: usize,
}

impl LiveWindows {
    pub fn new(classes: Vec<Class>, evidence_limit: usize) -> LiveWindows {
        LiveWindows {
            partitions: RwLock::new(BTreeMap::new()),
            classes,
            evidence_limit,
        }
    }

    pub fn insert(&self, topic: &str, partition: i32, keys: KeyMap) {
        self.partitions
            .write()
            .expect("not poisoned")
            .insert((topic.to_owned(), partition), keys);
    }

    pub fn remove(&self, topic: &str, partition: i32) {
        self.partitions
            .write()
            .expect("not poisoned")
            .remove(&(topic.to_owned(), partition));
    }

    fn describe(&self, key: &Key, state: &KeyState, level: Option<Level>) -> Option<(u32, Value)> {
        let class = self.classes.get(usize::from(state.class))?;
        let end = state
            .episode
            .map(|e| e.last_report)
            .or_else(|| state.reports.as_slice().last().map(|r| r.at))?;
        let s = summarize(state.reports.window(end, class.window), self.evidence_limit);
        let value = json!({
            "product_id": key.product_id(),
            "defect_tag": key.defect_tag(),
            "tag_class": class.name,
            "level": level.map(Level::as_str),
            "recall_candidate": level == Some(Level::Problem),
            "episode_start": state.episode.map(|e| e.start.to_string()),
            "last_report": end.to_string(),
            "window_seconds": class.window.as_secs(),
            "reporters": s.reporters,
            "reports": s.reports,
            "channels": s.channels,
            "severity": {"injuries": s.injuries, "deaths": s.deaths, "fires": s.fires, "crashes": s.crashes},
            "evidence": s.evidence,
        });
        Some((s.reporters, value))
    }

    fn collect(&self, only_open: bool) -> Vec<(u32, Value)> {
        let partitions = self.partitions.read().expect("not poisoned");
        let mut out = Vec::new();
        for keys in partitions.values() {
            keys.visit(|entry| {
                let level = entry.state.episode.and_then(|e| e.level);
                if only_open && level.is_none() {
                    return;
                }
                if let Some(v) = self.describe(&entry.key, &entry.state, level) {
                    out.push(v);
                }
            });
        }
        out
    }
}

impl SignalSource for LiveWindows {
    /// Open episodes, recall candidates first, then by reporters.
    fn signals(&self) -> Value {
        let mut open = self.collect(true);
        let rank = |v: &Value| match v["level"].as_str() {
            Some("problem") => 0,
            Some("pattern") => 1,
            _ => 2,
        };
        open.sort_by(|a, b| {
            rank(&a.1)
                .cmp(&rank(&b.1))
                .then(b.0.cmp(&a.0))
                .then_with(|| a.1["product_id"].as_str().cmp(&b.1["product_id"].as_str()))
        });
        let signals: Vec<Value> = open.into_iter().map(|(_, v)| v).collect();
        json!({"count": signals.len(), "signals": signals})
    }

    /// The `n` keys with the most distinct reporters in their current window.
    fn top(&self, n: usize) -> Value {
        let mut all = self.collect(false);
        all.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| a.1["product_id"].as_str().cmp(&b.1["product_id"].as_str()))
                .then_with(|| a.1["defect_tag"].as_str().cmp(&b.1["defect_tag"].as_str()))
        });
        all.truncate(n);
        let keys: Vec<Value> = all.into_iter().map(|(_, v)| v).collect();
        json!({"keys": keys})
    }
}
