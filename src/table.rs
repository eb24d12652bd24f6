//! The engine's live keys: their states in a slab, found by key hash through a sharded map.
//!
//! Most of a replay's time went to cache misses, and a timer paid four of them before it could
//! look at its key: the key's hash (in the key's allocation), the map's control bytes, its
//! bucket, and the boxed state. Timers now carry a [`Handle`], the state's slot in a slab, so a
//! due timer reads one slot; the map from key hash to handle ([`DashMap`]) is only asked when an
//! event names a key, and when a key is evicted.
//!
//! The index maps a key's 64-bit hash to its slot, and a lookup checks the key held in the slot,
//! which the engine reads next anyway: no key of its own to fetch from memory. Two live keys
//! whose hashes collide (expected never: about 3e-8 with a million live keys) stay correct: the
//! second one goes to a list that lookups search when the slot's key is not theirs.
//!
//! The admin API reads the states while the engine writes them, so the slab and the index sit
//! behind one lock. Only the engine writes, once per event (uncontended: one atomic operation);
//! readers hold it to walk the keys.
//!
//! The index is a [`DashMap`], whose readers take a shard's lock per lookup. The engine, the one
//! writer, holds the table exclusively already, so it reaches a shard's table through `&mut`
//! instead (dashmap's `raw-api`): no atomic operation per lookup, insert or eviction. Those were
//! two to six locked instructions an event, each a full barrier that keeps one event's cache
//! misses from overlapping the next one's. Replay of 5M generated events, 9 rotating rounds in
//! a quiet hour: median ratio 1.026 against the locking path (a plain map under the table's
//! lock: 1.035; in a busier hour 1.149 over 9 pairs). Both paths hash a key the same way, the
//! key's own hash ([`Prehashed`]), which a test checks.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use dashmap::{DashMap, SharedValue};

use crate::key::{Key, KeyRef, Prehashed};

/// A slot in the slab, and which of its occupants: a slot is reused after its key is evicted,
/// and a timer of the old key must not find the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle {
    slot: u32,
    generation: u32,
}

/// Slots a reader looks at per hold of the lock. The admin API describes each key it visits (a
/// window summary and a JSON value, a few microseconds), so the engine waits about a
/// millisecond at most.
const VISIT_CHUNK: usize = 256;

/// A live key and its state.
#[derive(Debug)]
pub struct Entry<S> {
    pub key: Key,
    pub state: S,
}

/// Aligned so that a slot of the engine's (192 bytes) is exactly three cache lines: a timer or
/// an event that visits a key reads all of them, and an unaligned slot spans four.
#[derive(Debug)]
#[repr(align(64))]
struct Slot<S> {
    generation: u32,
    entry: Option<Entry<S>>,
}

/// The states, by slot.
#[derive(Debug)]
pub struct Slots<S> {
    slots: Vec<Slot<S>>,
    free: Vec<u32>,
    live: usize,
    /// Key hash to slot; see the module doc for keys whose hashes collide.
    index: DashMap<u64, Handle, Prehashed>,
    /// Live keys whose hash another live key had in the index when they came.
    collided: Vec<Handle>,
}

impl<S> Default for Slots<S> {
    fn default() -> Self {
        Slots {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            index: DashMap::with_hasher(Prehashed),
            collided: Vec::new(),
        }
    }
}

impl<S> Slots<S> {
    pub fn get_mut(&mut self, handle: Handle) -> Option<&mut Entry<S>> {
        let slot = self.slots.get_mut(handle.slot as usize)?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.entry.as_mut()
    }

    pub fn get(&self, handle: Handle) -> Option<&Entry<S>> {
        let slot = self.slots.get(handle.slot as usize)?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.entry.as_ref()
    }

    /// The live entries, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry<S>> {
        self.slots.iter().filter_map(|s| s.entry.as_ref())
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    // The index through the exclusive hold: each shard's table (hashbrown's raw table of
    // (hash, handle) pairs, stored under the key hash itself, which is what `Prehashed` makes
    // DashMap's hash of a `u64`) without its lock.

    /// The slot the index names for `hash`.
    fn indexed(&mut self, hash: u64) -> Option<Handle> {
        let shard = self.index.determine_shard(hash as usize);
        let table = self.index.shards_mut()[shard].get_mut();
        table.get(hash, |(k, _)| *k == hash).map(|(_, h)| *h.get())
    }

    /// Makes the index name `handle` for `hash`, unless it names a slot for `hash` already.
    fn index_insert(&mut self, hash: u64, handle: Handle) -> bool {
        let shard = self.index.determine_shard(hash as usize);
        let table = self.index.shards_mut()[shard].get_mut();
        if table.get(hash, |(k, _)| *k == hash).is_some() {
            return false;
        }
        table.insert(hash, (hash, SharedValue::new(handle)), |(k, _)| *k);
        true
    }

    /// Drops the index's entry for `hash` if it names `handle`.
    fn index_remove(&mut self, hash: u64, handle: Handle) -> bool {
        let shard = self.index.determine_shard(hash as usize);
        let table = self.index.shards_mut()[shard].get_mut();
        table
            .remove_entry(hash, |(k, h)| *k == hash && *h.get() == handle)
            .is_some()
    }
}

/// The live keys of one engine, shared with the admin API.
#[derive(Debug)]
pub struct KeyTable<S> {
    slots: RwLock<Slots<S>>,
}

impl<S> Default for KeyTable<S> {
    fn default() -> Self {
        KeyTable {
            slots: RwLock::new(Slots::default()),
        }
    }
}

impl<S> KeyTable<S> {
    /// For readers: the states while the guard lives (the engine waits for it).
    pub fn read(&self) -> RwLockReadGuard<'_, Slots<S>> {
        // A panic while holding the lock leaves the engine's task dead anyway; readers go on.
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    /// For the engine, once per event.
    pub fn write(&self) -> RwLockWriteGuard<'_, Slots<S>> {
        self.slots.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Calls `f` with every live entry, taking the lock for 256 slots (`VISIT_CHUNK`) at a
    /// time so that a reader walking a million keys does not stop the engine for the whole
    /// walk. Like a walk over a sharded map, it is not a snapshot: keys added or evicted
    /// meanwhile may or may not be seen.
    pub fn visit(&self, mut f: impl FnMut(&Entry<S>)) {
        let mut from = 0;
        loop {
            let slots = self.read();
            let Some(chunk) = slots.slots.get(from..) else {
                return;
            };
            if chunk.is_empty() {
                return;
            }
            for slot in chunk.iter().take(VISIT_CHUNK) {
                if let Some(entry) = &slot.entry {
                    f(entry);
                }
            }
            from += VISIT_CHUNK;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live key `key` names.
    pub fn find(&self, slots: &Slots<S>, key: &KeyRef<'_>) -> Option<Handle> {
        let indexed = slots.index.get(&key.hash()).map(|h| *h);
        find_from(slots, indexed, key)
    }

    /// [`KeyTable::find`] for the writer, which holds the table exclusively: no shard lock.
    pub fn find_exclusive(&self, slots: &mut Slots<S>, key: &KeyRef<'_>) -> Option<Handle> {
        let indexed = slots.indexed(key.hash());
        find_from(slots, indexed, key)
    }

    /// Adds a key that is not here yet.
    pub fn insert(&self, slots: &mut Slots<S>, key: KeyRef<'_>, state: S) -> Handle {
        let hash = key.hash();
        let entry = Entry {
            key: key.to_key(),
            state,
        };
        let handle = match slots.free.pop() {
            Some(slot) => {
                let s = &mut slots.slots[slot as usize];
                s.entry = Some(entry);
                Handle {
                    slot,
                    generation: s.generation,
                }
            }
            None => {
                let slot = u32::try_from(slots.slots.len()).expect("fewer than 4G live keys");
                slots.slots.push(Slot {
                    generation: 0,
                    entry: Some(entry),
                });
                Handle {
                    slot,
                    generation: 0,
                }
            }
        };
        slots.live += 1;
        if !slots.index_insert(hash, handle) {
            slots.collided.push(handle);
        }
        handle
    }

    /// Evicts a key; its handle finds nothing from now on. `hash` is the key's hash as it was
    /// inserted (timers carry it; the slot does not, to stay three cache lines).
    pub fn remove(&self, slots: &mut Slots<S>, handle: Handle, hash: u64) -> Option<Entry<S>> {
        let slot = slots.slots.get_mut(handle.slot as usize)?;
        if slot.generation != handle.generation {
            return None;
        }
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        slots.free.push(handle.slot);
        slots.live -= 1;
        if !slots.index_remove(hash, handle) {
            let before = slots.collided.len();
            slots.collided.retain(|h| *h != handle);
            // With a wrong hash the index keeps an entry naming a dead slot: lookups of that
            // hash then check the collided list, so this costs time, never a wrong key.
            debug_assert!(slots.collided.len() < before, "removed with the key's hash");
        }
        Some(entry)
    }
}

/// The key `indexed` names if it is `key`, else the collided key that is.
fn find_from<S>(slots: &Slots<S>, indexed: Option<Handle>, key: &KeyRef<'_>) -> Option<Handle> {
    let is = |handle: &Handle| slots.get(*handle).is_some_and(|e| e.key.is(key));
    if let Some(handle) = indexed.filter(is) {
        return Some(handle);
    }
    slots.collided.iter().copied().find(is)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_does_not_answer_an_old_handle() {
        let table: KeyTable<u32> = KeyTable::default();
        let mut slots = table.write();
        let lid = KeyRef::new("kettle", "lid");
        let a = table.insert(&mut slots, lid, 1);
        let b = table.insert(&mut slots, KeyRef::new("kettle", "leak"), 2);
        assert_eq!(table.find(&slots, &lid), Some(a));
        assert_eq!(table.find_exclusive(&mut slots, &lid), Some(a));
        assert_eq!(slots.get(b).map(|e| e.state), Some(2));
        assert_eq!(
            table.remove(&mut slots, a, lid.hash()).map(|e| e.state),
            Some(1)
        );
        assert_eq!(table.find(&slots, &lid), None);
        assert_eq!(table.find_exclusive(&mut slots, &lid), None);
        assert!(table.remove(&mut slots, a, lid.hash()).is_none());
        let c = table.insert(&mut slots, KeyRef::new("toaster", "fire"), 3);
        assert_eq!(c.slot, a.slot, "the free slot is reused");
        assert!(slots.get_mut(a).is_none(), "the old handle finds nothing");
        assert_eq!(slots.get(c).map(|e| e.key.product_id()), Some("toaster"));
        assert_eq!(slots.len(), 2);
        let mut keys: Vec<&str> = slots.iter().map(|e| e.key.defect_tag()).collect();
        keys.sort();
        assert_eq!(keys, ["fire", "leak"]);
    }

    /// A live key costs its slot and its entry in the index (16 bytes at the map's load); its
    /// key lives in the slot (see `key::tests`). The slot is the state, the key and a
    /// generation: three cache lines.
    #[test]
    fn a_slot_is_three_cache_lines() {
        let state = std::mem::size_of::<crate::engine::KeyState>();
        let slot = std::mem::size_of::<Slot<crate::engine::KeyState>>();
        assert_eq!(slot, 192);
        assert!(state + 40 + 4 <= slot);
        assert_eq!(std::mem::align_of::<Slot<crate::engine::KeyState>>(), 64);
    }

    /// Keys whose hashes collide are told apart by the key in the slot, whichever of them holds
    /// the hash's place in the index, and whatever order they leave in.
    #[test]
    fn keys_with_the_same_hash_are_found_and_removed_apart() {
        let table: KeyTable<u32> = KeyTable::default();
        let mut slots = table.write();
        let same = |tag| KeyRef::with_hash(7, "kettle", tag);
        let a = table.insert(&mut slots, same("lid"), 1);
        let b = table.insert(&mut slots, same("leak"), 2);
        let c = table.insert(&mut slots, same("fuse"), 3);
        assert_eq!(table.find(&slots, &same("lid")), Some(a));
        assert_eq!(table.find(&slots, &same("leak")), Some(b));
        assert_eq!(table.find(&slots, &same("fuse")), Some(c));
        assert_eq!(table.find(&slots, &same("handle")), None);
        // The one in the index leaves: the others are still found, and a new one takes its place.
        assert_eq!(table.remove(&mut slots, a, 7).map(|e| e.state), Some(1));
        assert_eq!(table.find(&slots, &same("lid")), None);
        assert_eq!(table.find(&slots, &same("leak")), Some(b));
        let d = table.insert(&mut slots, same("cord"), 4);
        assert_eq!(table.find(&slots, &same("cord")), Some(d));
        assert_eq!(table.find(&slots, &same("fuse")), Some(c));
        // A collided one leaves.
        assert_eq!(table.remove(&mut slots, b, 7).map(|e| e.state), Some(2));
        assert_eq!(table.find(&slots, &same("leak")), None);
        assert_eq!(table.find(&slots, &same("fuse")), Some(c));
        assert_eq!(table.find(&slots, &same("cord")), Some(d));
        table.remove(&mut slots, c, 7);
        table.remove(&mut slots, d, 7);
        assert!(slots.is_empty() && slots.collided.is_empty() && slots.index.is_empty());
    }

    /// The writer's lock-free path and DashMap's own API agree on where a key's hash lives:
    /// what one inserts the other finds, across all shards, and removals show in both.
    #[test]
    fn the_exclusive_path_and_the_shared_one_see_the_same_index() {
        let table: KeyTable<usize> = KeyTable::default();
        let mut slots = table.write();
        let names: Vec<String> = (0..2_000).map(|i| format!("tag-{i}")).collect();
        let keys: Vec<KeyRef<'_>> = names.iter().map(|n| KeyRef::new("p", n)).collect();
        let handles: Vec<Handle> = (0..keys.len())
            .map(|i| table.insert(&mut slots, keys[i], i))
            .collect();
        assert!(slots.index.shards().len() > 1);
        for (key, handle) in keys.iter().zip(&handles) {
            assert_eq!(slots.index.get(&key.hash()).map(|h| *h), Some(*handle));
            assert_eq!(table.find_exclusive(&mut slots, key), Some(*handle));
        }
        for (key, handle) in keys.iter().zip(&handles).step_by(2) {
            table.remove(&mut slots, *handle, key.hash());
        }
        for (i, key) in keys.iter().enumerate() {
            let want = (i % 2 == 1).then_some(handles[i]);
            assert_eq!(table.find(&slots, key), want);
            assert_eq!(table.find_exclusive(&mut slots, key), want);
        }
        assert_eq!(slots.index.len(), keys.len() / 2);
        assert!(slots.collided.is_empty());
    }

    #[test]
    fn a_visit_sees_every_live_key_across_chunks() {
        let table: KeyTable<usize> = KeyTable::default();
        let n = VISIT_CHUNK * 2 + 7;
        let handles: Vec<Handle> = {
            let mut slots = table.write();
            (0..n)
                .map(|i| table.insert(&mut slots, KeyRef::new("p", &i.to_string()), i))
                .collect()
        };
        let gone = VISIT_CHUNK.to_string();
        let gone = KeyRef::new("p", &gone);
        table.remove(&mut table.write(), handles[VISIT_CHUNK], gone.hash());
        let mut seen = Vec::new();
        table.visit(|e| seen.push(e.state));
        let expected: Vec<usize> = (0..n).filter(|i| *i != VISIT_CHUNK).collect();
        assert_eq!(seen, expected);
        assert_eq!(table.len(), n - 1);
    }
}
