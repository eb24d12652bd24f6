//! The detector's settings: windows, lateness, thresholds, the severity fast path and tag
//! classes, as written (raw) and as checked (validated before any I/O).

use std::collections::HashSet;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{invalid, span, ConfigError, DEFAULT_ALLOWED_LATENESS, DEFAULT_WINDOW};
use crate::time::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub anomaly: u32,
    pub pattern: u32,
    pub problem: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            anomaly: 1,
            pattern: 2,
            problem: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FastPath {
    pub injuries: bool,
    pub deaths: bool,
    pub fire: bool,
}

impl Default for FastPath {
    fn default() -> Self {
        FastPath {
            injuries: true,
            deaths: true,
            fire: true,
        }
    }
}

impl FastPath {
    pub const OFF: FastPath = FastPath {
        injuries: false,
        deaths: false,
        fire: false,
    };
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDetector {
    pub window: String,
    pub allowed_lateness: String,
    pub thresholds: Thresholds,
    pub fast_path: FastPath,
    pub max_keys: usize,
    pub evidence_limit: usize,
    pub tag_class: Vec<RawTagClass>,
}

impl Default for RawDetector {
    fn default() -> Self {
        RawDetector {
            window: DEFAULT_WINDOW.into(),
            allowed_lateness: DEFAULT_ALLOWED_LATENESS.into(),
            thresholds: Thresholds::default(),
            fast_path: FastPath::default(),
            max_keys: 1_000_000,
            evidence_limit: 20,
            tag_class: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTagClass {
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub patterns: Vec<String>,
    pub window: Option<String>,
    pub thresholds: Option<Thresholds>,
}

/// The checked detector settings the engine runs on.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    pub window: Span,
    pub allowed_lateness: Span,
    pub thresholds: Thresholds,
    pub fast_path: FastPath,
    pub max_keys: usize,
    pub evidence_limit: usize,
    pub tag_classes: Vec<TagClassConfig>,
}

#[derive(Debug, Clone)]
pub struct TagClassConfig {
    pub name: String,
    pub tags: Vec<String>,
    pub patterns: Vec<Regex>,
    pub window: Span,
    pub thresholds: Thresholds,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig::from_raw(&RawDetector::default()).expect("defaults are valid")
    }
}

fn check_thresholds(key: &str, t: &Thresholds) -> Result<(), ConfigError> {
    if t.anomaly < 1 || t.anomaly >= t.pattern || t.pattern >= t.problem {
        return Err(invalid(
            key,
            format!(
                "thresholds must rise strictly from at least 1 (anomaly < pattern < problem), got {} / {} / {}",
                t.anomaly, t.pattern, t.problem
            ),
        ));
    }
    Ok(())
}

impl DetectorConfig {
    pub fn from_raw(raw: &RawDetector) -> Result<DetectorConfig, ConfigError> {
        let window = span("detector.window", &raw.window)?;
        if window.0 <= 0 {
            return Err(invalid("detector.window", "must be longer than 0s"));
        }
        let allowed_lateness = span("detector.allowed_lateness", &raw.allowed_lateness)?;
        check_thresholds("detector.thresholds", &raw.thresholds)?;
        if raw.max_keys == 0 {
            return Err(invalid("detector.max_keys", "must be at least 1"));
        }
        if raw.evidence_limit > 1000 {
            return Err(invalid("detector.evidence_limit", "must be at most 1000"));
        }
        let mut names = HashSet::new();
        let mut seen_tags = HashSet::new();
        let mut tag_classes = Vec::new();
        for (i, class) in raw.tag_class.iter().enumerate() {
            let key = format!("detector.tag_class[{i}]");
            if class.name.trim().is_empty() || class.name == "default" {
                return Err(invalid(
                    format!("{key}.name"),
                    "needs a name other than \"default\"",
                ));
            }
            if !names.insert(class.name.clone()) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("class {:?} is defined twice", class.name),
                ));
            }
            if class.tags.is_empty() && class.patterns.is_empty() {
                return Err(invalid(
                    key.as_str(),
                    "a tag class needs at least one entry in `tags` or `patterns`",
                ));
            }
            for tag in &class.tags {
                if !seen_tags.insert(tag.trim().to_owned()) {
                    return Err(invalid(
                        format!("{key}.tags"),
                        format!("tag {tag:?} is listed in more than one class"),
                    ));
                }
            }
            let patterns = class
                .patterns
                .iter()
                .map(|p| {
                    Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                        invalid(
                            format!("{key}.patterns"),
                            format!("{p:?} is not a regex: {e}"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let window = match &class.window {
                Some(w) => span(&format!("{key}.window"), w)?,
                None => window,
            };
            if window.0 <= 0 {
                return Err(invalid(format!("{key}.window"), "must be longer than 0s"));
            }
            let thresholds = class.thresholds.unwrap_or(raw.thresholds);
            check_thresholds(&format!("{key}.thresholds"), &thresholds)?;
            tag_classes.push(TagClassConfig {
                name: class.name.clone(),
                tags: class.tags.iter().map(|t| t.trim().to_owned()).collect(),
                patterns,
                window,
                thresholds,
            });
        }
        Ok(DetectorConfig {
            window,
            allowed_lateness,
            thresholds: raw.thresholds,
            fast_path: raw.fast_path,
            max_keys: raw.max_keys,
            evidence_limit: raw.evidence_limit,
            tag_classes,
        })
    }
}
