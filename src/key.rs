//! The (product, defect tag) key: hashed once when it is made, looked up without allocating.
//!
//! Every event looks up one key per tag, so the lookup must not build a `Key` (an
//! allocation). [`KeyRef`] borrows the two strings; both hash to the same precomputed 64-bit
//! value, which the map's hasher passes through instead of hashing strings again.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::hash::{BuildHasher, Hash, Hasher};
use triomphe::ThinArc;

/// The hash of a key: xxh3 of the product id, seeding xxh3 of the tag.
pub fn key_hash(product_id: &str, defect_tag: &str) -> u64 {
    let p = xxhash_rust::xxh3::xxh3_64(product_id.as_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(defect_tag.as_bytes(), p)
}

#[derive(Debug, Clone, Copy)]
struct Header {
    hash: u64,
    /// Where the defect tag starts in the bytes.
    split: u32,
}

/// A (product, defect tag) pair; cheap to clone, ordered by hash then by its strings.
///
/// The hash and both strings sit in one allocation behind a thin pointer: a live key is held
/// by the map and by the timer set, and every allocation saved counts per key.
#[derive(Clone)]
pub struct Key(ThinArc<Header, u8>);

impl Key {
    pub fn new(product_id: &str, defect_tag: &str) -> Key {
        Key::with_hash(key_hash(product_id, defect_tag), product_id, defect_tag)
    }

    fn with_hash(hash: u64, product_id: &str, defect_tag: &str) -> Key {
        let mut bytes = Vec::with_capacity(product_id.len() + defect_tag.len());
        bytes.extend_from_slice(product_id.as_bytes());
        bytes.extend_from_slice(defect_tag.as_bytes());
        let header = Header {
            hash,
            // Product ids are bounded by the decoder far below 4 GiB.
            split: product_id.len() as u32,
        };
        Key(ThinArc::from_header_and_slice(header, &bytes))
    }

    fn header(&self) -> Header {
        self.0.header.header
    }

    fn text(&self) -> &str {
        // Built from two `str`s above, so always UTF-8; the check costs a few nanoseconds.
        std::str::from_utf8(&self.0.slice).expect("a key holds two strings")
    }

    pub fn product_id(&self) -> &str {
        &self.text()[..self.header().split as usize]
    }

    pub fn defect_tag(&self) -> &str {
        &self.text()[self.header().split as usize..]
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("product_id", &self.product_id())
            .field("defect_tag", &self.defect_tag())
            .finish()
    }
}

/// A borrowed key, for lookups.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    hash: u64,
    product_id: &'a str,
    defect_tag: &'a str,
}

impl<'a> KeyRef<'a> {
    pub fn new(product_id: &'a str, defect_tag: &'a str) -> KeyRef<'a> {
        KeyRef {
            hash: key_hash(product_id, defect_tag),
            product_id,
            defect_tag,
        }
    }
    pub fn to_key(self) -> Key {
        Key::with_hash(self.hash, self.product_id, self.defect_tag)
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }
}

/// What owned and borrowed keys have in common, so a map of `Key` can be asked with a `KeyRef`.
pub trait AsKeyRef {
    fn key_ref(&self) -> KeyRef<'_>;
}

impl AsKeyRef for Key {
    fn key_ref(&self) -> KeyRef<'_> {
        let text = self.text();
        let (product_id, defect_tag) = text.split_at(self.header().split as usize);
        KeyRef {
            hash: self.header().hash,
            product_id,
            defect_tag,
        }
    }
}

impl AsKeyRef for KeyRef<'_> {
    fn key_ref(&self) -> KeyRef<'_> {
        *self
    }
}

impl<'a> Borrow<dyn AsKeyRef + 'a> for Key {
    fn borrow(&self) -> &(dyn AsKeyRef + 'a) {
        self
    }
}

impl Hash for dyn AsKeyRef + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.key_ref().hash);
    }
}

impl PartialEq for dyn AsKeyRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.key_ref(), other.key_ref());
        a.hash == b.hash && a.product_id == b.product_id && a.defect_tag == b.defect_tag
    }
}

impl Eq for dyn AsKeyRef + '_ {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.header().hash);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.ptr() == other.0.ptr() || (self as &dyn AsKeyRef) == (other as &dyn AsKeyRef)
    }
}

impl Eq for Key {}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.header().hash, &self.0.slice, self.header().split).cmp(&(
            other.header().hash,
            &other.0.slice,
            other.header().split,
        ))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Passes a precomputed 64-bit hash through (keys hash themselves once, when made).
#[derive(Debug, Clone, Copy, Default)]
pub struct Prehashed;

#[derive(Debug, Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

impl BuildHasher for Prehashed {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dashmap::DashMap;

    #[test]
    fn borrowed_lookup_finds_owned_keys() {
        let map: DashMap<Key, u32, Prehashed> = DashMap::with_hasher(Prehashed);
        map.insert(Key::new("kettle", "lid"), 1);
        map.insert(Key::new("kettle", "leak"), 2);
        let probe = KeyRef::new("kettle", "lid");
        assert_eq!(*map.get(&probe as &dyn AsKeyRef).unwrap(), 1);
        assert!(map
            .get(&KeyRef::new("kettl", "elid") as &dyn AsKeyRef)
            .is_none());
        assert_eq!(Key::new("a", "b"), KeyRef::new("a", "b").to_key());
        assert_ne!(Key::new("ab", ""), Key::new("a", "b"));
    }
}
