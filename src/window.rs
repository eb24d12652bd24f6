//! The reports of one (product, defect tag) key, sorted by event time, and the questions a sliding
//! window asks of them: who reported in (T - window, T], how often, through which channels.
//!
//! A report is one accepted event on one key. Reports are kept sorted by (time, event hash) so that
//! everything derived from them is independent of arrival order.

use std::collections::{HashMap, HashSet};

pub use crate::report::Report;

use crate::time::{Span, Timestamp};

/// 64-bit hash of a string; ids are compared by hash (collisions are ~1e-19 per pair).
pub fn hash_str(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

/// A report's place in the order: time first, the event hash breaks ties.
fn order(r: &Report) -> (Timestamp, u64) {
    (r.at, r.event)
}

/// A key with more reports than this keeps a hash index of their event ids, so that checking a
/// new report for a duplicate id stays O(1) on hot keys.
const INDEX_FROM: usize = 32;

/// The reports of one key. Most keys never get a second report, so the first one lives inline
/// in the key's state; a busier key's vector of reports is there too, in the same bytes, so
/// that reaching its reports is one pointer from the slot, not two (a visit of a busy key
/// missed the cache on a box first). The sliding count that only hot keys need is boxed. That
/// keeps a key's state at 144 bytes, which matters with millions of live keys.
#[derive(Debug, Clone, Default)]
pub struct Reports(Items);

#[derive(Debug, Clone, Default)]
enum Items {
    #[default]
    Empty,
    One(Report),
    Many(Many),
}

#[derive(Debug, Clone, Default)]
struct Many {
    /// Sorted by [`order`]; the live reports are `items[start..]`. Pruning moves `start` and
    /// compacts now and then, so dropping old reports from a hot key is not a memmove each time.
    items: Vec<Report>,
    start: usize,
    /// Event ids of the live reports, once there are more than [`INDEX_FROM`].
    index: Option<HashSet<u64, crate::key::Prehashed>>,
    /// Reporters in a sliding window, for keys whose thresholds are too high for a scan.
    sliding: Option<Box<SlidingDistinct>>,
}

impl Many {
    fn live(&self) -> &[Report] {
        &self.items[self.start..]
    }
}

/// Thresholds up to this are counted by scanning the newest reports; above it, incrementally.
const SCAN_UP_TO: u32 = 16;

/// Distinct reporters of the reports with time in (lo, hi], kept as the window slides forward.
#[derive(Debug, Clone, Default)]
struct SlidingDistinct {
    lo: Timestamp,
    hi: Timestamp,
    counts: HashMap<u64, u32, crate::key::Prehashed>,
}

impl SlidingDistinct {
    fn add(&mut self, reports: &[Report]) {
        for r in reports {
            *self.counts.entry(r.reporter).or_insert(0) += 1;
        }
    }

    fn remove(&mut self, reports: &[Report]) {
        for r in reports {
            if let Some(n) = self.counts.get_mut(&r.reporter) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&r.reporter);
                }
            }
        }
    }
}

impl Reports {
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_slice(&self) -> &[Report] {
        match &self.0 {
            Items::Empty => &[],
            Items::One(r) => std::slice::from_ref(r),
            Items::Many(m) => m.live(),
        }
    }

    pub fn contains_event(&self, event: u64) -> bool {
        if let Items::Many(m) = &self.0 {
            if let Some(index) = &m.index {
                return index.contains(&event);
            }
        }
        self.as_slice().iter().any(|r| r.event == event)
    }

    /// The vector form, which every key with more than one report (or a sliding count) has.
    fn many(&mut self) -> &mut Many {
        if !matches!(self.0, Items::Many(_)) {
            let items = match std::mem::take(&mut self.0) {
                Items::One(r) => vec![r],
                _ => Vec::new(),
            };
            self.0 = Items::Many(Many {
                items,
                ..Many::default()
            });
        }
        match &mut self.0 {
            Items::Many(m) => m,
            _ => unreachable!("made many above"),
        }
    }

    /// Adds a report unless its event id is already here; returns whether it was added.
    pub fn insert(&mut self, report: Report) -> bool {
        if self.contains_event(report.event) {
            return false;
        }
        if let Items::Empty = self.0 {
            self.0 = Items::One(report);
            return true;
        }
        let m = self.many();
        if let Some(index) = m.index.as_mut() {
            index.insert(report.event);
        } else if m.live().len() >= INDEX_FROM {
            let mut index: HashSet<u64, crate::key::Prehashed> =
                m.live().iter().map(|r| r.event).collect();
            index.insert(report.event);
            m.index = Some(index);
        }
        let key = order(&report);
        // Reports mostly arrive in time order: check the end before searching.
        let at = match m.items.last() {
            Some(last) if order(last) > key => {
                m.start + m.live().partition_point(|r| order(r) < key)
            }
            _ => m.items.len(),
        };
        m.items.insert(at, report);
        true
    }

    /// Distinct reporters with time in (end - window, end], counting no further than `cap`
    /// where that is cheaper. Calls for one key must come with `end` rising.
    pub fn distinct_reporters(&mut self, end: Timestamp, window: Span, cap: u32) -> u32 {
        let through = self.as_slice().partition_point(|r| r.at <= end);
        self.distinct_reporters_through(through, end, window, cap)
    }

    /// [`Reports::distinct_reporters`] for a caller that knows where the window ends: `through`
    /// is the index in [`Reports::as_slice`] just past the last report at or before `end`.
    pub fn distinct_reporters_through(
        &mut self,
        through: usize,
        end: Timestamp,
        window: Span,
        cap: u32,
    ) -> u32 {
        let before = &self.as_slice()[..through];
        let start = end.saturating_sub(window);
        let in_window = &before[partition_point_near_start(before, |r| r.at <= start)..];
        if cap <= SCAN_UP_TO || in_window.len() <= SCAN_UP_TO as usize {
            let n = distinct_reporters_capped(in_window, cap);
            // A scan was enough: drop the sliding count (it is rebuilt if the window fills
            // again), so that a quiet key of a high-threshold class can return to the inline
            // form instead of keeping a box and a map for one report.
            if let Items::Many(m) = &mut self.0 {
                m.sliding = None;
            }
            return n;
        }
        let m = self.many();
        let live = &m.items[m.start..];
        let range = |lo: Timestamp, hi: Timestamp| {
            let a = live.partition_point(|r| r.at <= lo);
            let b = live.partition_point(|r| r.at <= hi);
            &live[a..b.max(a)]
        };
        let sliding = m.sliding.get_or_insert_with(Default::default);
        if end < sliding.hi || start < sliding.lo || sliding.counts.is_empty() {
            **sliding = SlidingDistinct {
                lo: start,
                hi: start,
                counts: HashMap::default(),
            };
        }
        sliding.add(range(sliding.hi.max(start), end));
        sliding.remove(range(sliding.lo, start.min(sliding.hi)));
        sliding.lo = start;
        sliding.hi = end;
        sliding.counts.len() as u32
    }

    /// Drops every report at or before `t`.
    pub fn prune_through(&mut self, t: Timestamp) {
        let m = match &mut self.0 {
            Items::Empty => return,
            Items::One(r) => {
                if r.at <= t {
                    self.0 = Items::Empty;
                }
                return;
            }
            Items::Many(m) => m,
        };
        let n = partition_point_near_start(m.live(), |r| r.at <= t);
        if n == 0 {
            return;
        }
        let pruned = &m.items[m.start..m.start + n];
        if let Some(sliding) = m.sliding.as_mut() {
            // Reports counted in (lo, hi] that are pruned leave the count too.
            let (lo, hi) = (sliding.lo, sliding.hi);
            for r in pruned.iter().filter(|r| r.at > lo && r.at <= hi) {
                sliding.remove(std::slice::from_ref(r));
            }
            sliding.lo = sliding.lo.max(t);
            if sliding.hi < sliding.lo {
                sliding.hi = sliding.lo;
            }
        }
        // The next count rebuilds an empty one anyway. Dropping it lets a key that went quiet
        // return to the inline form: the engine does not count (which would drop it too) while
        // a key holds fewer reports than its class's lowest threshold.
        if m.sliding.as_ref().is_some_and(|s| s.counts.is_empty()) {
            m.sliding = None;
        }
        if let Some(index) = m.index.as_mut() {
            for r in pruned {
                index.remove(&r.event);
            }
        }
        m.start += n;
        if m.start * 2 >= m.items.len() {
            m.items.drain(..m.start);
            m.start = 0;
        }
        if m.index.as_ref().is_some_and(|i| i.len() < INDEX_FROM / 2) {
            m.index = None;
        }
        // Back to the inline form when nothing busy is left.
        if m.index.is_none() && m.sliding.is_none() && m.live().len() <= 1 {
            self.0 = match m.items.pop() {
                Some(r) => Items::One(r),
                None => Items::Empty,
            };
        }
    }

    /// The reports with time in (end - window, end].
    pub fn window(&self, end: Timestamp, window: Span) -> &[Report] {
        let start = end.saturating_sub(window);
        let live = self.as_slice();
        let lo = live.partition_point(|r| r.at <= start);
        let hi = live.partition_point(|r| r.at <= end);
        &live[lo..hi]
    }

    /// The earliest report time at or after `from`.
    pub fn first_at_or_after(&self, from: Timestamp) -> Option<Timestamp> {
        self.as_slice()
            .get(self.first_index_at_or_after(from))
            .map(|r| r.at)
    }

    /// The index in [`Reports::as_slice`] of the first report at or after `from`, searched
    /// from the end: the engine asks for its undecided reports, which are the newest.
    pub fn first_index_at_or_after(&self, from: Timestamp) -> usize {
        partition_point_near_end(self.as_slice(), |r| r.at < from)
    }
}

/// `s.partition_point(pred)` for a point expected near the start of `s` (a window's start,
/// what pruning drops): gallops forward, so a hot key's search touches its first few cache
/// lines instead of log2(len) scattered ones. `s` must be partitioned by `pred`.
fn partition_point_near_start<T>(s: &[T], pred: impl Fn(&T) -> bool) -> usize {
    let (mut lo, mut step) = (0, 1);
    loop {
        // Everything before `lo` satisfies `pred`.
        let probe = lo + step - 1;
        if probe >= s.len() {
            return lo + s[lo..].partition_point(&pred);
        }
        if !pred(&s[probe]) {
            return lo + s[lo..probe].partition_point(&pred);
        }
        lo = probe + 1;
        step *= 2;
    }
}

/// `s.partition_point(pred)` for a point expected near the end of `s` (the undecided reports
/// are the newest): gallops back from the end. `s` must be partitioned by `pred`.
fn partition_point_near_end<T>(s: &[T], pred: impl Fn(&T) -> bool) -> usize {
    let (mut hi, mut step) = (s.len(), 1);
    while hi > 0 {
        // Nothing from `hi` on satisfies `pred`.
        let probe = hi.saturating_sub(step);
        if pred(&s[probe]) {
            return probe + 1 + s[probe + 1..hi].partition_point(&pred);
        }
        hi = probe;
        step *= 2;
    }
    0
}

/// Distinct reporters in `reports`, counting no further than `cap` (the highest threshold), newest
/// first, so a hot key costs only as much as its latest few reporters.
pub fn distinct_reporters_capped(reports: &[Report], cap: u32) -> u32 {
    // Called for every decided report: the common case counts on the stack.
    let mut small = [0u64; SCAN_UP_TO as usize];
    let mut large = Vec::new();
    let limit = cap.min(reports.len() as u32) as usize;
    let seen: &mut [u64] = if limit <= small.len() {
        &mut small[..limit]
    } else {
        large.resize(limit, 0);
        &mut large
    };
    let mut n = 0;
    for r in reports.iter().rev() {
        if n == limit {
            break;
        }
        if !seen[..n].contains(&r.reporter) {
            seen[n] = r.reporter;
            n += 1;
        }
    }
    n as u32
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::{Channel, Severity};

    pub fn report(at: i64, event: &str, reporter: &str) -> Report {
        Report::new(
            Timestamp(at),
            hash_str(event),
            hash_str(reporter),
            Channel::Call,
            Severity::default(),
            event,
            None,
            None,
        )
    }

    /// The first report is in the key's state with its strings, so a key with one short report
    /// costs its slot in the table (see `table::tests`) and its key, nothing more. Every byte
    /// here counts per live key (issue 6 budget: under 300 bytes per live key).
    #[test]
    fn a_key_state_is_144_bytes() {
        assert_eq!(
            std::mem::size_of::<Reports>(),
            std::mem::size_of::<Report>()
        );
        assert!(std::mem::size_of::<crate::engine::KeyState>() <= 144);
    }

    /// One report inline, more in the box, and back inline once pruning leaves one: the
    /// questions give the same answers in every form.
    #[test]
    fn reports_answer_the_same_inline_and_boxed() {
        let mut r = Reports::default();
        assert!(r.insert(report(10, "a", "x")));
        assert!(!r.insert(report(10, "a", "x")), "same event id");
        assert_eq!(r.distinct_reporters(Timestamp(10), Span(100), 50), 1);
        assert!(r.insert(report(20, "c", "x")));
        assert!(
            r.insert(report(15, "b", "y")),
            "out of order, after the last count"
        );
        let order: Vec<i64> = r.as_slice().iter().map(|x| x.at.0).collect();
        assert_eq!(order, vec![10, 15, 20]);
        assert_eq!(r.distinct_reporters(Timestamp(20), Span(100), 50), 2);
        assert_eq!(r.distinct_reporters(Timestamp(20), Span(100), 2), 2);
        r.prune_through(Timestamp(15));
        assert_eq!(r.len(), 1);
        assert!(r.contains_event(hash_str("c")));
        assert!(!r.contains_event(hash_str("a")));
        assert_eq!(r.distinct_reporters(Timestamp(20), Span(100), 2), 1);
        r.prune_through(Timestamp(20));
        assert!(r.is_empty());
        assert!(r.insert(report(30, "d", "z")));
        assert_eq!(r.first_at_or_after(Timestamp(0)), Some(Timestamp(30)));
    }

    proptest::proptest! {
        /// The galloping searches find what a plain binary search finds, wherever the point is.
        #[test]
        fn galloping_searches_agree_with_partition_point(
            mut v in proptest::collection::vec(0i64..100, 0..200),
            t in -1i64..101,
        ) {
            v.sort_unstable();
            let want = v.partition_point(|x| *x < t);
            proptest::prop_assert_eq!(partition_point_near_start(&v, |x| *x < t), want);
            proptest::prop_assert_eq!(partition_point_near_end(&v, |x| *x < t), want);
        }
    }

    /// A high threshold counts incrementally only while the window holds more than a scan's
    /// worth of reports; the count is the same either way, and a quiet key of such a class goes
    /// back to the inline form instead of keeping a box and a map for one report.
    #[test]
    fn high_threshold_counts_agree_with_a_recount_as_the_window_fills_and_drains() {
        let mut r = Reports::default();
        let window = Span(100);
        // Dense (40 reports in a window), then sparse (one per window), then dense again.
        let times: Vec<i64> = (0..80)
            .map(|i| i * 3)
            .chain((1..6).map(|i| 240 + i * 150))
            .chain((0..60).map(|i| 1200 + i * 2))
            .collect();
        for (i, at) in times.iter().enumerate() {
            assert!(r.insert(report(*at, &format!("e{i}"), &format!("c{}", i % 23))));
            let end = *at;
            let recount: HashSet<u64> = r
                .as_slice()
                .iter()
                .filter(|x| x.at.0 > end - window.0 && x.at.0 <= end)
                .map(|x| x.reporter)
                .collect();
            assert_eq!(
                r.distinct_reporters(Timestamp(end), window, 400),
                recount.len() as u32,
                "at {end}"
            );
            r.prune_through(Timestamp(end - window.0));
            if (241..1200).contains(&end) {
                assert!(
                    matches!(r.0, Items::One(_)),
                    "a lone report stays inline at {end}"
                );
            }
        }
        assert!(matches!(r.0, Items::Many(_)));
    }

    /// The engine stops counting while a key holds fewer reports than its class's lowest
    /// threshold; a key that had a sliding count and went quiet must still return to the
    /// inline form once pruning leaves one report.
    #[test]
    fn a_quiet_key_drops_its_sliding_count_without_being_counted() {
        let mut r = Reports::default();
        let window = Span(100);
        for i in 0..40 {
            assert!(r.insert(report(i, &format!("e{i}"), &format!("c{i}"))));
        }
        assert_eq!(r.distinct_reporters(Timestamp(39), window, 400), 40);
        assert!(matches!(&r.0, Items::Many(m) if m.sliding.is_some()));
        assert!(r.insert(report(500, "late-one", "c0")));
        r.prune_through(Timestamp(400));
        assert!(
            matches!(r.0, Items::One(_)),
            "one report left, no count kept: inline"
        );
        assert_eq!(r.distinct_reporters(Timestamp(500), window, 400), 1);
    }

    #[test]
    fn keeps_time_order_whatever_the_arrival() {
        let mut a = Reports::default();
        let mut b = Reports::default();
        let rs = [
            report(5, "e1", "a"),
            report(1, "e2", "b"),
            report(5, "e3", "c"),
        ];
        for r in rs.iter() {
            assert!(a.insert(r.clone()));
        }
        for r in rs.iter().rev() {
            assert!(b.insert(r.clone()));
        }
        assert_eq!(a.as_slice(), b.as_slice());
        assert_eq!(a.first_at_or_after(Timestamp(0)), Some(Timestamp(1)));
        assert_eq!(a.first_at_or_after(Timestamp(2)), Some(Timestamp(5)));
        assert_eq!(a.first_at_or_after(Timestamp(6)), None);
        // Two reports at exactly 5, between the first index at or after 5 and the first after it.
        let at_5 = a.first_index_at_or_after(Timestamp(5))..a.first_index_at_or_after(Timestamp(6));
        assert_eq!(at_5.len(), 2);
    }

    #[test]
    fn hot_keys_index_their_ids_and_prune_without_losing_order() {
        let mut r = Reports::default();
        for i in 0..200 {
            assert!(r.insert(report(i, &format!("e{i}"), "a")));
        }
        assert!(!r.insert(report(5, "e5", "a")), "indexed duplicate");
        assert!(
            !r.insert(report(500, "e150", "a")),
            "same id at another time"
        );
        r.prune_through(Timestamp(149));
        assert_eq!(r.len(), 50);
        assert_eq!(r.as_slice()[0].at, Timestamp(150));
        assert!(r.insert(report(3, "e3", "a")), "pruned ids may come again");
        assert_eq!(r.as_slice()[0].at, Timestamp(3));
        r.prune_through(Timestamp(190));
        assert_eq!(r.len(), 9);
        assert!(!r.insert(report(199, "e199", "a")));
        assert!(r.insert(report(100, "e100", "b")));
    }

    #[test]
    fn sliding_distinct_count_equals_a_recount() {
        let mut r = Reports::default();
        // 300 reports from 40 reporters over 300 ticks.
        for i in 0..300i64 {
            r.insert(report(
                i * 10,
                &format!("e{i}"),
                &format!("c{}", (i * 7) % 40),
            ));
        }
        let window = Span(250);
        for end in (0..3000).step_by(10) {
            let want = r
                .window(Timestamp(end), window)
                .iter()
                .map(|x| x.reporter)
                .collect::<HashSet<_>>()
                .len() as u32;
            assert_eq!(
                r.distinct_reporters(Timestamp(end), window, 400),
                want,
                "at {end}"
            );
            if end % 500 == 0 {
                r.prune_through(Timestamp(end - 250));
            }
        }
    }

    #[test]
    fn duplicate_event_ids_are_refused() {
        let mut r = Reports::default();
        assert!(r.insert(report(1, "e1", "a")));
        assert!(!r.insert(report(1, "e1", "a")));
        assert!(!r.insert(report(7, "e1", "b")), "same id at another time");
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn window_is_open_at_the_start_and_closed_at_the_end() {
        let mut r = Reports::default();
        for (t, e) in [(10, "a"), (20, "b"), (30, "c")] {
            r.insert(report(t, e, e));
        }
        // (20, 30]: 20 is out, 30 is in.
        let w = r.window(Timestamp(30), Span(10));
        assert_eq!(w.iter().map(|x| x.at.0).collect::<Vec<_>>(), vec![30]);
        assert_eq!(r.window(Timestamp(30), Span(11)).len(), 2);
        r.prune_through(Timestamp(20));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn distinct_reporters_count_people_not_contacts() {
        let rs = vec![
            report(1, "e1", "alice"),
            report(2, "e2", "alice"),
            report(3, "e3", "alice"),
            report(4, "e4", "bob"),
        ];
        assert_eq!(distinct_reporters_capped(&rs, 3), 2);
        assert_eq!(distinct_reporters_capped(&rs, 1), 1);
    }
}
