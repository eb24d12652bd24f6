//! Escalation policy: which tag class a defect tag belongs to (its window and thresholds), which
//! rung a count of distinct reporters reaches, and when severity takes a key straight to problem.

use serde::{Deserialize, Serialize};

use crate::config::{DetectorConfig, FastPath, Thresholds};
use crate::event::Severity;
use crate::time::Span;

/// The rungs of the ladder; `Problem` makes the key a recall candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Anomaly,
    Pattern,
    Problem,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Anomaly, Level::Pattern, Level::Problem];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Anomaly => "anomaly",
            Level::Pattern => "pattern",
            Level::Problem => "problem",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a rung was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Threshold(u32),
    FastPath(&'static str),
}

/// A tag class with everything the engine needs per key.
#[derive(Debug, Clone)]
pub struct Class {
    pub name: String,
    pub window: Span,
    pub thresholds: Thresholds,
}

impl Class {
    /// The fewest distinct reporters that reach a rung.
    pub fn lowest_threshold(&self) -> u32 {
        let t = &self.thresholds;
        t.anomaly.min(t.pattern).min(t.problem)
    }

    /// The highest rung `reporters` distinct reporters reach, if any.
    pub fn rung(&self, reporters: u32) -> Option<(Level, u32)> {
        let t = &self.thresholds;
        [
            (Level::Problem, t.problem),
            (Level::Pattern, t.pattern),
            (Level::Anomaly, t.anomaly),
        ]
        .into_iter()
        .find(|(_, threshold)| reporters >= *threshold)
    }
}

/// Bounds the tag -> class cache so a flood of unique tags cannot grow it without limit.
const CLASS_CACHE_LIMIT: usize = 100_000;

#[derive(Debug, Clone)]
pub struct Policy {
    config: DetectorConfig,
    /// Index 0..n: the configured classes in order; index n: the default class.
    classes: Vec<Class>,
    /// Asked for every new key. foldhash (hashbrown's default, seeded per process) rather than
    /// std's SipHash: ~290 instructions a lookup, at 0.37 new keys per event.
    cache: hashbrown::HashMap<Box<str>, u16>,
}

impl Policy {
    pub fn new(config: DetectorConfig) -> Policy {
        let mut classes: Vec<Class> = config
            .tag_classes
            .iter()
            .map(|c| Class {
                name: c.name.clone(),
                window: c.window,
                thresholds: c.thresholds,
            })
            .collect();
        classes.push(Class {
            name: "default".into(),
            window: config.window,
            thresholds: config.thresholds,
        });
        Policy {
            config,
            classes,
            cache: hashbrown::HashMap::new(),
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    pub fn allowed_lateness(&self) -> Span {
        self.config.allowed_lateness
    }

    /// The classes by index: the configured ones in order, then the default class.
    pub fn classes(&self) -> &[Class] {
        &self.classes
    }

    pub fn class(&self, index: u16) -> &Class {
        &self.classes[usize::from(index)]
    }

    /// The longest window of any class: how far back state must reach.
    pub fn max_window(&self) -> Span {
        self.classes
            .iter()
            .map(|c| c.window)
            .max()
            .unwrap_or_default()
    }

    /// The class a tag belongs to: listed by name first, then the first matching pattern, else
    /// the default class.
    pub fn classify(&mut self, tag: &str) -> u16 {
        if let Some(&i) = self.cache.get(tag) {
            return i;
        }
        let configured = &self.config.tag_classes;
        let index = configured
            .iter()
            .position(|c| c.tags.iter().any(|t| t == tag))
            .or_else(|| {
                configured
                    .iter()
                    .position(|c| c.patterns.iter().any(|p| p.is_match(tag)))
            })
            .unwrap_or(configured.len());
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        if self.cache.len() >= CLASS_CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(tag.into(), index);
        index
    }

    /// The severity that takes a key straight to problem, if any, as a rule description.
    pub fn fast_path(&self, severity: &Severity) -> Option<&'static str> {
        fast_path_reason(&self.config.fast_path, severity)
    }
}

pub fn fast_path_reason(fast: &FastPath, s: &Severity) -> Option<&'static str> {
    if fast.deaths && s.deaths > 0 {
        Some("deaths reported")
    } else if fast.injuries && s.injuries > 0 {
        Some("injuries reported")
    } else if fast.fire && s.fire {
        Some("fire reported")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RawDetector, RawTagClass};

    fn policy() -> Policy {
        let raw = RawDetector {
            tag_class: vec![
                RawTagClass {
                    name: "safety".into(),
                    tags: vec!["AIR BAGS".into()],
                    patterns: vec!["(?i).*brake.*".into()],
                    window: Some("7d".into()),
                    thresholds: Some(Thresholds {
                        anomaly: 1,
                        pattern: 2,
                        problem: 4,
                    }),
                },
                RawTagClass {
                    name: "noise".into(),
                    tags: vec!["UNKNOWN OR OTHER".into()],
                    patterns: vec!["SERVICE BRAKES".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        Policy::new(DetectorConfig::from_raw(&raw).unwrap())
    }

    #[test]
    fn tags_match_by_name_then_pattern_then_default() {
        let mut p = policy();
        let mut class_of = |tag: &str| {
            let i = p.classify(tag);
            p.class(i).clone()
        };
        assert_eq!(class_of("AIR BAGS").name, "safety");
        // The pattern of the first class wins over the later class's pattern.
        assert_eq!(class_of("SERVICE BRAKES").name, "safety");
        assert_eq!(class_of("UNKNOWN OR OTHER").name, "noise");
        assert_eq!(class_of("ENGINE").name, "default");
        // Names match exactly; patterns are anchored, so they must match the whole tag.
        assert_eq!(class_of("AIR BAGS 2").name, "default");
        assert_eq!(class_of("XSERVICE BRAKESX").name, "safety");
        assert_eq!(class_of("SERVICE BRAKES X").name, "safety");
        assert_eq!(class_of("UNKNOWN OR OTHER X").name, "default");
        assert_eq!(class_of("AIR BAGS").window, Span::from_days(7));
        assert_eq!(p.max_window(), Span::from_days(30));
    }

    #[test]
    fn rungs_follow_thresholds() {
        let mut p = policy();
        let i = p.classify("AIR BAGS");
        let safety = p.class(i).clone();
        assert_eq!(safety.rung(0), None);
        assert_eq!(safety.rung(1), Some((Level::Anomaly, 1)));
        assert_eq!(safety.rung(3), Some((Level::Pattern, 2)));
        assert_eq!(safety.rung(4), Some((Level::Problem, 4)));
        assert_eq!(safety.lowest_threshold(), 1);
    }

    #[test]
    fn fast_path_is_configurable() {
        let hurt = Severity {
            injuries: 1,
            ..Default::default()
        };
        let fire = Severity {
            fire: true,
            ..Default::default()
        };
        let fast = FastPath::default();
        assert_eq!(fast_path_reason(&fast, &hurt), Some("injuries reported"));
        assert_eq!(fast_path_reason(&fast, &fire), Some("fire reported"));
        assert_eq!(fast_path_reason(&FastPath::OFF, &hurt), None);
        let crash = Severity {
            crash: true,
            ..Default::default()
        };
        assert_eq!(fast_path_reason(&fast, &crash), None);
    }
}
