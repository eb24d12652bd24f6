//! The engine's timer set: which key needs a decision next, in (instant, key) order.
//!
//! Two kinds of timers with very different shapes share it. A *report* timer (a report waiting
//! to become final) is due within `allowed_lateness` of the watermark: few are pending, and they
//! go to a small binary heap that stays in cache. A *drain* timer (an episode ends one window
//! after its last report) is due a whole window ahead, and every live key has one: in one big
//! heap, each pop walked ~18 levels of cold memory. But drain timers arrive almost in order: a
//! report decided at one frontier step is later than every report decided at an earlier step,
//! so within one tag class (one window) the drains of a step come after all earlier ones. They
//! are collected per step, sorted, and appended to a queue per class; popping takes the least
//! of the heap's top and the queues' fronts. The order is exactly that of one heap.
//!
//! A *deferred* timer (the decisions of a key that cannot reach a rung yet, one window after
//! its report) is as far ahead, and in order too, but in the order of the events, which the
//! decided reports trail by the lateness: it gets a queue per class of its own, beside the
//! drains' (in the drains' queues it would be out of order, and inserted).
//!
//! Report timers mostly arrive in order too (events in time order): one not before the last
//! one pushed goes to a plain queue, and only the others pay for the heap.
//!
//! Some drains do come out of order: a key whose decisions were deferred is decided a window
//! after its first report, and its last report, which its drain follows by a window, can be
//! anywhere in that window, behind the drains of keys decided report by report. Those go to
//! the heap too. (Inserted into the queue, they moved ~430 entries each: 12% of the events of
//! a replay scheduled one, and the memmoves were a sixth of the replay's memory reads.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::time::Timestamp;

#[derive(Debug)]
pub struct Timers<K> {
    near: BinaryHeap<Reverse<(Timestamp, K)>>,
    /// Report timers pushed in (due, key) order.
    soon: VecDeque<(Timestamp, K)>,
    /// Timers a window ahead, sorted by (due, key): class c's drains in queue 2c, its deferred
    /// timers in queue 2c + 1.
    far: Vec<VecDeque<(Timestamp, K)>>,
    /// Timers for `far` scheduled since the last [`Timers::settle`]: (queue, due, key).
    staged: Vec<(u16, Timestamp, K)>,
    /// No timer is due before this. Most frontier steps have nothing due, and this answers them
    /// without looking at every queue's front.
    earliest: Timestamp,
}

impl<K: Ord> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            near: BinaryHeap::new(),
            soon: VecDeque::new(),
            far: Vec::new(),
            staged: Vec::new(),
            earliest: Timestamp(i64::MAX),
        }
    }
}

impl<K: Ord> Timers<K> {
    /// Entries, stale ones included (the tests look; the engine never needs to).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.near.len()
            + self.soon.len()
            + self.far.iter().map(VecDeque::len).sum::<usize>()
            + self.staged.len()
    }

    /// A timer for a report that becomes final soon.
    pub fn push_report(&mut self, due: Timestamp, key: K) {
        self.earliest = self.earliest.min(due);
        append_or_heap(&mut self.soon, &mut self.near, due, key);
    }

    /// A timer for the end of an episode of a key in tag class `class`.
    pub fn push_drain(&mut self, class: u16, due: Timestamp, key: K, frontier: Timestamp) {
        self.push_far(2 * class, due, key, frontier);
    }

    /// A timer for the deferred decisions of a key in tag class `class`.
    pub fn push_deferred(&mut self, class: u16, due: Timestamp, key: K, frontier: Timestamp) {
        self.push_far(2 * class + 1, due, key, frontier);
    }

    /// One due before `frontier` must be popped in the current step, so it goes where pops
    /// look at once.
    fn push_far(&mut self, queue: u16, due: Timestamp, key: K, frontier: Timestamp) {
        self.earliest = self.earliest.min(due);
        if due < frontier {
            self.near.push(Reverse((due, key)));
        } else {
            self.staged.push((queue, due, key));
        }
    }

    /// Moves the staged timers into their queues; call it when a step is done.
    pub fn settle(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        self.staged
            .sort_unstable_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
        for (class, due, key) in self.staged.drain(..) {
            let class = usize::from(class);
            if self.far.len() <= class {
                self.far.resize_with(class + 1, VecDeque::new);
            }
            append_or_heap(&mut self.far[class], &mut self.near, due, key);
        }
    }

    /// The earliest timer if it is due before `frontier`, removed.
    pub fn pop_before(&mut self, frontier: Timestamp) -> Option<(Timestamp, K)> {
        if self.earliest >= frontier {
            return None;
        }
        self.settle();
        let mut best: Option<(Source, Timestamp, &K)> = None;
        if let Some(Reverse((due, key))) = self.near.peek() {
            best = Some((Source::Heap, *due, key));
        }
        let queues = std::iter::once((Source::Soon, &self.soon)).chain(
            self.far
                .iter()
                .enumerate()
                .map(|(i, queue)| (Source::Far(i), queue)),
        );
        for (source, queue) in queues {
            if let Some((due, key)) = queue.front() {
                if best.is_none_or(|(_, d, k)| (*due, key) < (d, k)) {
                    best = Some((source, *due, key));
                }
            }
        }
        let Some((source, due, _)) = best else {
            self.earliest = Timestamp(i64::MAX);
            return None;
        };
        if due >= frontier {
            self.earliest = due;
            return None;
        }
        match source {
            Source::Heap => self.near.pop().map(|Reverse(t)| t),
            Source::Soon => self.soon.pop_front(),
            Source::Far(i) => self.far[i].pop_front(),
        }
    }
}

/// Appends a timer to a queue kept in (due, key) order, or puts it in the heap if it sorts
/// before the queue's last: inserting it into the queue would move everything after it.
fn append_or_heap<K: Ord>(
    queue: &mut VecDeque<(Timestamp, K)>,
    heap: &mut BinaryHeap<Reverse<(Timestamp, K)>>,
    due: Timestamp,
    key: K,
) {
    match queue.back() {
        Some((last, last_key)) if (*last, last_key) > (due, &key) => heap.push(Reverse((due, key))),
        _ => queue.push_back((due, key)),
    }
}

/// Where the next timer is.
#[derive(Debug, Clone, Copy)]
enum Source {
    Heap,
    Soon,
    Far(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: i64) -> Timestamp {
        Timestamp(v)
    }

    fn drain_all(timers: &mut Timers<u32>, frontier: i64) -> Vec<(i64, u32)> {
        std::iter::from_fn(|| timers.pop_before(t(frontier)))
            .map(|(d, k)| (d.0, k))
            .collect()
    }

    #[test]
    fn pops_in_instant_then_key_order_across_heap_and_queues() {
        let mut timers = Timers::default();
        timers.push_report(t(5), 2);
        timers.push_report(t(5), 1);
        timers.push_drain(0, t(7), 9, t(0));
        timers.push_drain(1, t(6), 3, t(0));
        timers.push_drain(1, t(5), 0, t(0));
        timers.push_report(t(8), 4);
        timers.settle();
        assert_eq!(timers.len(), 6);
        assert_eq!(
            drain_all(&mut timers, 7),
            vec![(5, 0), (5, 1), (5, 2), (6, 3)]
        );
        assert_eq!(drain_all(&mut timers, 100), vec![(7, 9), (8, 4)]);
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn a_drain_already_due_is_popped_in_the_same_step() {
        let mut timers = Timers::default();
        timers.push_drain(0, t(3), 1, t(10));
        assert_eq!(timers.pop_before(t(10)), Some((t(3), 1)));
    }

    #[test]
    fn out_of_order_drains_are_still_popped_in_order() {
        let mut timers = Timers::default();
        timers.push_drain(0, t(50), 1, t(0));
        timers.settle();
        timers.push_drain(0, t(20), 2, t(0));
        timers.push_drain(0, t(60), 3, t(0));
        timers.push_drain(0, t(50), 0, t(0));
        assert_eq!(
            drain_all(&mut timers, 100),
            vec![(20, 2), (50, 0), (50, 1), (60, 3)]
        );
    }

    proptest::proptest! {
        /// Any schedule the engine can make pops in the order of one binary heap: report
        /// timers at or after the frontier, drains at or after the frontier of their step
        /// (the engine's are later than every earlier step's), steps with rising frontiers.
        #[test]
        fn pops_like_one_heap(steps in proptest::collection::vec(
            (1i64..50, proptest::collection::vec((0u8..3, 0u16..3, 0i64..200, 0u32..20), 0..12)),
            1..40,
        )) {
            let mut timers = Timers::default();
            let mut heap = BinaryHeap::new();
            let mut frontier = 0i64;
            for (advance, pushes) in steps {
                for (kind, class, ahead, key) in pushes {
                    let due = t(frontier + ahead);
                    match kind {
                        0 => timers.push_report(due, key),
                        1 => timers.push_drain(class, due, key, t(frontier)),
                        _ => timers.push_deferred(class, due, key, t(frontier)),
                    }
                    heap.push(Reverse((due, key)));
                }
                timers.settle();
                frontier += advance;
                let got = drain_all(&mut timers, frontier);
                let mut want = Vec::new();
                while heap.peek().is_some_and(|Reverse((d, _))| d.0 < frontier) {
                    let Reverse((d, k)) = heap.pop().expect("peeked");
                    want.push((d.0, k));
                }
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
