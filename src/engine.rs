//! The detection engine: contact events in, alerts out, pure and synchronous.
//!
//! Each (product, defect tag) key keeps its reports in a sliding event-time window. A key reaches
//! rung L at the earliest instant T at which the distinct reporters with time in (T - window, T]
//! number at least threshold(L). The engine decides that only once T is *final*: the watermark
//! (the latest event time seen) minus `allowed_lateness` has passed T, so no accepted event can
//! still land at or before T. Events older than that frontier are late and handed back. Because
//! every decision is made on final data, the alerts do not depend on arrival order.
//!
//! An episode is a stretch of time during which the key's window is never empty. Each rung fires
//! at most once per episode, only upwards; when the window drains (the frontier passes the last
//! report + window) a `resolved` alert closes the episode.
//!
//! Keys live in a [`KeyTable`] that readers (the admin API) can look at while the engine writes;
//! a timer set orders the keys by the next instant that needs a decision, each timer holding its
//! key's slot in the table.
//!
//! Rebuilding from the input: every key remembers the input position (offset) of the event that
//! created it and the watermark just before. Replaying the input from the lowest such position
//! of the live keys, starting from that watermark, rebuilds every live key exactly: its whole
//! life is in the replayed span, and the same watermark means the same events are late.

use std::sync::Arc;

use crate::alert::{Alert, AlertFacts};
use crate::config::DetectorConfig;
use crate::event::{ContactEvent, Severity};
pub use crate::key::Key;
use crate::key::KeyRef;
use crate::policy::{Level, Policy, Trigger};
use crate::summary::summarize;
use crate::table::{Handle, KeyTable, Slots};
use crate::time::{Span, Timestamp};
use crate::timers::Timers;
use crate::window::{hash_str, Report, Reports};

/// The open episode of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    pub start: Timestamp,
    pub last_report: Timestamp,
    /// The highest rung reached so far; `None` until the first threshold is met.
    pub level: Option<Level>,
}

#[derive(Debug, Clone)]
pub struct KeyState {
    pub class: u16,
    pub reports: Reports,
    pub episode: Option<Episode>,
    /// Every report instant before this has been decided.
    evaluated_before: Timestamp,
    /// The entry this key has in the timer set; [`NO_TIMER`] if none.
    timer: Timestamp,
    /// Where a replay must start to rebuild this key: the input offset, and the watermark
    /// before it ([`Timestamp::MIN`] for none). Two plain fields rather than a [`ReplayFrom`]:
    /// every live key carries them.
    since_offset: i64,
    since_watermark: Timestamp,
}

/// `KeyState::timer` when the key has no entry in the timer set.
const NO_TIMER: Timestamp = Timestamp(i64::MAX);

/// An input position to replay from and the watermark the engine had just before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayFrom {
    pub offset: i64,
    pub watermark: Option<Timestamp>,
}

impl KeyState {
    fn is_idle(&self) -> bool {
        self.reports.is_empty() && self.episode.is_none()
    }
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingest {
    /// Counted: `reports` keys took a new report, `duplicates` had its event id already,
    /// `refused` were new keys over `max_keys`.
    Accepted {
        reports: u32,
        duplicates: u32,
        refused: u32,
    },
    /// Older than the frontier (watermark - allowed lateness): not counted.
    Late { frontier: Timestamp },
}

/// Running totals, for the summary line and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub late: u64,
    pub duplicate_reports: u64,
    pub refused_keys: u64,
    pub evicted_keys: u64,
    pub firing: [u64; 3],
    pub resolved: u64,
    /// Open episodes by the level they reached.
    pub open_episodes: [i64; 3],
}

/// Shared read access to the live keys, for the admin API.
pub type KeyMap = Arc<KeyTable<KeyState>>;

/// What a timer holds: its key's slot, and the key's hash, by which timers due at one instant
/// are ordered (as by the key itself unless two keys' 64-bit hashes collide) without reading
/// the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TimerRef {
    hash: u64,
    handle: Handle,
}

pub struct Engine {
    keys: KeyMap,
    /// Everything else, apart from `keys` so that a method can hold the keys' lock (a borrow of
    /// `keys`) while it changes the rest: cloning the `Arc` per event instead cost two atomic
    /// operations.
    core: Core,
}

struct Core {
    policy: Policy,
    /// Keys by the next instant they need a decision at. An entry whose time is no longer the
    /// key's `timer` is stale and skipped: moving a timer earlier just pushes a new entry.
    timers: Timers<TimerRef>,
    watermark: Option<Timestamp>,
    /// Every instant before this is final.
    frontier: Timestamp,
    stats: EngineStats,
}

impl Engine {
    pub fn new(config: DetectorConfig) -> Engine {
        Engine::with_policy(Policy::new(config))
    }

    pub fn with_policy(policy: Policy) -> Engine {
        Engine {
            keys: Arc::new(KeyTable::default()),
            core: Core {
                policy,
                timers: Timers::default(),
                watermark: None,
                frontier: Timestamp::MIN,
                stats: EngineStats::default(),
            },
        }
    }

    pub fn stats(&self) -> &EngineStats {
        &self.core.stats
    }

    pub fn policy(&self) -> &Policy {
        &self.core.policy
    }

    pub fn keys(&self) -> &KeyMap {
        &self.keys
    }

    pub fn live_keys(&self) -> usize {
        self.keys.len()
    }

    pub fn watermark(&self) -> Option<Timestamp> {
        self.core.watermark
    }

    pub fn frontier(&self) -> Timestamp {
        self.core.frontier
    }

    /// Counts one event and appends the alerts that became final to `out`.
    pub fn ingest(&mut self, event: &ContactEvent<'_>, out: &mut Vec<Alert>) -> Ingest {
        self.ingest_at(event, 0, out)
    }

    /// Like [`Engine::ingest`], for an event at input position `offset` (offsets must not
    /// decrease from one call to the next): keys it creates remember it, see [`Engine::replay_from`].
    pub fn ingest_at(
        &mut self,
        event: &ContactEvent<'_>,
        offset: i64,
        out: &mut Vec<Alert>,
    ) -> Ingest {
        let mut slots = self.keys.write();
        self.core
            .ingest_locked(&self.keys, &mut slots, event, offset, out)
    }

    /// The position a replay must start from to rebuild every live key, `None` if no key is
    /// live. It never moves backwards as input is consumed: keys created later start later.
    /// A scan of all keys: call it at checkpoint intervals, not per event.
    pub fn replay_from(&self) -> Option<ReplayFrom> {
        self.keys
            .read()
            .iter()
            .map(|entry| ReplayFrom {
                offset: entry.state.since_offset,
                watermark: Some(entry.state.since_watermark).filter(|w| *w != Timestamp::MIN),
            })
            .min_by_key(|since| since.offset)
    }

    /// Moves the watermark to `t` if that is later (the idle clock of a quiet partition) and
    /// decides everything that became final.
    pub fn advance_to(&mut self, t: Timestamp, out: &mut Vec<Alert>) {
        let mut slots = self.keys.write();
        self.core.advance_locked(&self.keys, &mut slots, t, out);
    }

    /// End of input: every event seen is final, and episodes whose window drained by the
    /// watermark resolve. Events that arrive afterwards are late.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        let core = &mut self.core;
        if let Some(w) = core.watermark {
            let frontier = w.saturating_add(Span(1));
            if frontier > core.frontier {
                core.frontier = frontier;
                core.run_timers(&self.keys, &mut self.keys.write(), out);
            }
        }
    }
}

impl Core {
    fn ingest_locked(
        &mut self,
        table: &KeyTable<KeyState>,
        slots: &mut Slots<KeyState>,
        event: &ContactEvent<'_>,
        offset: i64,
        out: &mut Vec<Alert>,
    ) -> Ingest {
        let since_watermark = self.watermark;
        let at = event.occurred_at;
        let event_hash = hash_str(&event.event_id);
        if at < self.frontier {
            // A redelivery of an event already counted is a duplicate, however old it is.
            if let Some(duplicates) = self.already_counted(table, slots, event, event_hash) {
                self.stats.duplicate_reports += u64::from(duplicates);
                return Ingest::Accepted {
                    reports: 0,
                    duplicates,
                    refused: 0,
                };
            }
            self.stats.late += 1;
            return Ingest::Late {
                frontier: self.frontier,
            };
        }
        self.stats.events += 1;
        let reporter = hash_str(event.reporter());
        let (mut reports, mut duplicates, mut refused) = (0, 0, 0);
        for tag in &event.defect_tags {
            let report = Report::new(
                at,
                event_hash,
                reporter,
                event.channel,
                event.severity,
                &event.event_id,
                event.lot.as_deref(),
                event.region.as_deref(),
            );
            let probe = KeyRef::new(&event.product_id, tag);
            let handle = match table.find_exclusive(slots, &probe) {
                Some(handle) => handle,
                None if slots.len() >= self.policy.config().max_keys => {
                    refused += 1;
                    continue;
                }
                None => {
                    let state = KeyState {
                        class: self.policy.classify(tag),
                        reports: Reports::default(),
                        episode: None,
                        evaluated_before: self.frontier,
                        timer: NO_TIMER,
                        since_offset: offset,
                        since_watermark: since_watermark.unwrap_or(Timestamp::MIN),
                    };
                    table.insert(slots, probe, state)
                }
            };
            let entry = slots.get_mut(handle).expect("the index names live slots");
            let hash = probe.hash();
            let state = &mut entry.state;
            if state.reports.insert(report) {
                reports += 1;
                if state.timer > at {
                    let class = self.policy.class(state.class);
                    // A key that cannot climb (see `may_fire`) needs no decision per report:
                    // its reports are decided together, in order and with the same outcome, by
                    // a timer a window after the report (or by an earlier timer the key has).
                    // Most keys of a high-threshold class (routine contact reasons) are never
                    // touched again before that. Of the undecided reports only this one can be
                    // severe: a severe one before it would have set an earlier report timer.
                    if may_fire(&self.policy, state, || [event.severity]) {
                        // The first undecided report: one before `at` may have been deferred.
                        let due = state
                            .reports
                            .first_at_or_after(state.evaluated_before)
                            .unwrap_or(at);
                        state.timer = due;
                        self.timers.push_report(due, TimerRef { hash, handle });
                    } else {
                        let due = at.saturating_add(class.window);
                        if state.timer > due {
                            state.timer = due;
                            let timer = TimerRef { hash, handle };
                            self.timers
                                .push_deferred(state.class, due, timer, self.frontier);
                        }
                    }
                }
            } else {
                duplicates += 1;
            }
        }
        self.stats.duplicate_reports += u64::from(duplicates);
        self.stats.refused_keys += u64::from(refused);
        self.advance_locked(table, slots, at, out);
        Ingest::Accepted {
            reports,
            duplicates,
            refused,
        }
    }

    /// The number of tags if every key of `event` still holds its id, else `None`.
    fn already_counted(
        &self,
        table: &KeyTable<KeyState>,
        slots: &Slots<KeyState>,
        event: &ContactEvent<'_>,
        event_hash: u64,
    ) -> Option<u32> {
        let mut n = 0;
        for tag in &event.defect_tags {
            let probe = KeyRef::new(&event.product_id, tag);
            let state = &slots.get(table.find(slots, &probe)?)?.state;
            if !state.reports.contains_event(event_hash) {
                return None;
            }
            n += 1;
        }
        Some(n)
    }

    fn advance_locked(
        &mut self,
        table: &KeyTable<KeyState>,
        slots: &mut Slots<KeyState>,
        t: Timestamp,
        out: &mut Vec<Alert>,
    ) {
        if self.watermark.is_none_or(|w| t > w) {
            self.watermark = Some(t);
        }
        let frontier = t.saturating_sub(self.policy.allowed_lateness());
        if frontier > self.frontier {
            self.frontier = frontier;
            self.run_timers(table, slots, out);
        }
    }

    fn run_timers(
        &mut self,
        table: &KeyTable<KeyState>,
        slots: &mut Slots<KeyState>,
        out: &mut Vec<Alert>,
    ) {
        while let Some((due, timer)) = self.timers.pop_before(self.frontier) {
            let Some(entry) = slots.get_mut(timer.handle) else {
                continue;
            };
            let state = &mut entry.state;
            if state.timer != due {
                continue;
            }
            state.timer = NO_TIMER;
            let undecided = evaluate(
                &self.policy,
                &mut self.stats,
                self.frontier,
                &entry.key,
                state,
                out,
            );
            match next_due(&self.policy, state, undecided) {
                Some(Due::Report(at)) => {
                    self.timers.push_report(at, timer);
                    state.timer = at;
                }
                Some(Due::Drain(at)) => {
                    self.timers
                        .push_drain(state.class, at, timer, self.frontier);
                    state.timer = at;
                }
                Some(Due::Deferred(at)) => {
                    self.timers
                        .push_deferred(state.class, at, timer, self.frontier);
                    state.timer = at;
                }
                None if state.is_idle() => {
                    table.remove(slots, timer.handle, timer.hash);
                    self.stats.evicted_keys += 1;
                }
                None => {}
            }
        }
        self.timers.settle();
    }
}

/// What a key waits for next, and when.
enum Due {
    /// Its first undecided report becomes final.
    Report(Timestamp),
    /// Its window drains and its episode ends.
    Drain(Timestamp),
    /// Its undecided reports cannot reach a rung: they are decided together, a window after the
    /// first of them, as at ingest.
    Deferred(Timestamp),
}

/// The next instant at which this key needs a decision: its first undecided report (`report`,
/// as [`evaluate`] found it), or the instant its window drains. Called right after
/// [`evaluate`], so no timer is pending.
///
/// A key that cannot reach a rung with the reports it holds (fewer than its class's lowest
/// threshold, none of the undecided ones on the severity fast path) needs no decision per
/// report, as at ingest: deciding them a window after the first gives the same outcome, in the
/// same order. Without this, a routine key that gets a report more often than once a window was
/// decided report by report after its first deferral, a third of all timer pops of a replay.
/// An open episode that reached a rung still resolves at its drain.
fn next_due(policy: &Policy, state: &KeyState, report: Option<Timestamp>) -> Option<Due> {
    let class = policy.class(state.class);
    let window = class.window;
    let drain = state.episode.map(|e| e.last_report.saturating_add(window));
    match (report, drain) {
        (Some(r), d) if !may_fire(policy, state, || undecided_severities(state, r)) => {
            let deferred = r.saturating_add(window);
            let resolves = state.episode.is_some_and(|e| e.level.is_some());
            match d.filter(|_| resolves) {
                Some(d) if d < deferred => Some(Due::Drain(d)),
                _ => Some(Due::Deferred(deferred)),
            }
        }
        (Some(r), Some(d)) if d < r => Some(Due::Drain(d)),
        (Some(r), _) => Some(Due::Report(r)),
        (None, d) => d.map(Due::Drain),
    }
}

/// Whether the key can reach a rung at an instant still undecided: no instant can while it
/// holds fewer reports than its class's lowest threshold, unless one of the undecided reports
/// (`undecided` gives their severities, asked only when the count is not enough) takes the
/// severity fast path.
fn may_fire<I: IntoIterator<Item = Severity>>(
    policy: &Policy,
    state: &KeyState,
    undecided: impl FnOnce() -> I,
) -> bool {
    state.reports.len() >= policy.class(state.class).lowest_threshold() as usize
        || undecided()
            .into_iter()
            .any(|s| policy.fast_path(&s).is_some())
}

/// The severities of the reports at or after `from`.
fn undecided_severities(state: &KeyState, from: Timestamp) -> impl Iterator<Item = Severity> + '_ {
    let reports = state.reports.as_slice();
    reports[state.reports.first_index_at_or_after(from)..]
        .iter()
        .map(|r| r.severity())
}

/// Decides every report instant of one key before `frontier`, in time order, and returns the
/// instant of the first report left undecided (at or after `frontier`).
fn evaluate(
    policy: &Policy,
    stats: &mut EngineStats,
    frontier: Timestamp,
    key: &Key,
    state: &mut KeyState,
    out: &mut Vec<Alert>,
) -> Option<Timestamp> {
    let class = policy.class(state.class);
    let window = class.window;
    let evidence_limit = policy.config().evidence_limit;
    let facts = |reports: &Reports, episode: &Episode, end: Timestamp| AlertFacts {
        product_id: key.product_id(),
        defect_tag: key.defect_tag(),
        tag_class: &class.name,
        episode_start: episode.start,
        last_report: episode.last_report,
        window,
        window_end: end,
        summary: summarize(reports.window(end, window), evidence_limit),
    };
    let close = |state: &mut KeyState, stats: &mut EngineStats, out: &mut Vec<Alert>| {
        let episode = state.episode.take().expect("closing an open episode");
        if let Some(peak) = episode.level {
            let drained_at = episode.last_report.saturating_add(window);
            out.push(
                facts(&state.reports, &episode, episode.last_report).resolved(peak, drained_at),
            );
            stats.resolved += 1;
            stats.open_episodes[peak.index()] -= 1;
        }
    };
    // Index of the first undecided report: nothing in this loop adds or removes reports, so
    // one search finds it and the loop walks on from there.
    let mut next = state
        .reports
        .first_index_at_or_after(state.evaluated_before);
    let undecided = loop {
        let live = state.reports.as_slice();
        let Some(at) = live.get(next).map(|r| r.at) else {
            break None;
        };
        if at >= frontier {
            break Some(at);
        }
        // The reports at exactly `at` are live[next..through].
        let through = next + live[next..].iter().take_while(|r| r.at == at).count();
        let here = next..through;
        next = through;
        if state
            .episode
            .is_some_and(|e| at > e.last_report.saturating_add(window))
        {
            close(state, stats, out);
        }
        let episode = state.episode.get_or_insert(Episode {
            start: at,
            last_report: at,
            level: None,
        });
        episode.last_report = at;
        if episode.level == Some(Level::Problem) {
            continue;
        }
        // The distinct reporters are at most the reports up to `at`: with fewer than the lowest
        // threshold no rung is reachable, and the count (a search and a scan of reports that
        // left the caches long ago) is skipped. Most keys of a high-threshold class (routine
        // contact reasons) never get that far.
        let reporters = if through < class.lowest_threshold() as usize {
            0
        } else {
            state
                .reports
                .distinct_reporters_through(through, at, window, class.thresholds.problem)
        };
        let mut rung = class
            .rung(reporters)
            .map(|(level, threshold)| (level, Trigger::Threshold(threshold)));
        if rung.is_none_or(|(level, _)| level < Level::Problem) {
            let severe = state.reports.as_slice()[here]
                .iter()
                .find_map(|r| policy.fast_path(&r.severity()));
            if let Some(why) = severe {
                rung = Some((Level::Problem, Trigger::FastPath(why)));
            }
        }
        let Some((level, trigger)) = rung else {
            continue;
        };
        let episode = state.episode.as_mut().expect("opened above");
        let previous = episode.level;
        if previous.is_some_and(|p| p >= level) {
            continue;
        }
        let snapshot = *episode;
        episode.level = Some(level);
        out.push(facts(&state.reports, &snapshot, at).firing(level, previous, trigger));
        stats.firing[level.index()] += 1;
        if let Some(p) = previous {
            stats.open_episodes[p.index()] -= 1;
        }
        stats.open_episodes[level.index()] += 1;
    };
    state.evaluated_before = state.evaluated_before.max(frontier);
    if state
        .episode
        .is_some_and(|e| e.last_report.saturating_add(window) < frontier)
    {
        close(state, stats, out);
    }
    // Keep what a future decision can still look at: windows ending at or after the frontier,
    // and the last window of an open episode, which its resolved alert describes.
    let keep_after = match state.episode {
        Some(e) => frontier.min(e.last_report).saturating_sub(window),
        None => frontier.saturating_sub(window),
    };
    state.reports.prune_through(keep_after);
    undecided
}
