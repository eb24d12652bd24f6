//! The (product, defect tag) key: hashed once when it is made, looked up without allocating.
//!
//! Every event looks up one key per tag, so the lookup must not build a `Key` (an allocation):
//! [`KeyRef`] borrows the two strings and carries their 64-bit hash, by which the table's index
//! finds the key's slot. The slot holds the [`Key`], whose strings live in the key itself when
//! short, as they nearly always are: a key in an allocation of its own cost a cache miss on every
//! lookup (comparing the strings) and a malloc and a cold free over the key's life, about a
//! tenth of a replay's time.

use std::hash::{BuildHasher, Hasher};

/// The hash of a key: xxh3 of the product id, seeding xxh3 of the tag.
pub fn key_hash(product_id: &str, defect_tag: &str) -> u64 {
    let p = xxhash_rust::xxh3::xxh3_64(product_id.as_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(defect_tag.as_bytes(), p)
}

/// Product id and tag bytes up to this many in all live in the key: 37 makes a key 40 bytes,
/// the size of the allocation (plus its 16-byte pointer) a longer key costs. The synthetic
/// catalog's keys are 14-27 bytes, 96% of NHTSA's (make/model/year and component) fit too.
const INLINE: usize = 37;

/// A (product, defect tag) pair: the product id's bytes followed by the tag's.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Text);

#[derive(Clone, PartialEq, Eq)]
enum Text {
    /// `split` is where the tag starts, `len` the bytes used.
    Inline {
        split: u8,
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap {
        split: u32,
        text: Box<str>,
    },
}

impl Key {
    pub fn new(product_id: &str, defect_tag: &str) -> Key {
        let len = product_id.len() + defect_tag.len();
        if len > INLINE {
            return Key(Text::Heap {
                // Product ids are bounded by the decoder far below 4 GiB.
                split: product_id.len() as u32,
                text: [product_id, defect_tag].concat().into_boxed_str(),
            });
        }
        let mut bytes = [0; INLINE];
        bytes[..product_id.len()].copy_from_slice(product_id.as_bytes());
        bytes[product_id.len()..len].copy_from_slice(defect_tag.as_bytes());
        Key(Text::Inline {
            split: product_id.len() as u8,
            len: len as u8,
            bytes,
        })
    }

    /// The bytes of both strings, and where the tag starts.
    fn parts(&self) -> (&[u8], usize) {
        match &self.0 {
            Text::Inline { split, len, bytes } => {
                (&bytes[..usize::from(*len)], usize::from(*split))
            }
            Text::Heap { split, text } => (text.as_bytes(), *split as usize),
        }
    }

    fn str(bytes: &[u8]) -> &str {
        // Copied from two whole `str`s, so UTF-8 (checked only here: alerts and the admin API
        // ask, lookups compare bytes).
        std::str::from_utf8(bytes).expect("a key holds two strings")
    }

    pub fn product_id(&self) -> &str {
        let (bytes, split) = self.parts();
        Key::str(&bytes[..split])
    }

    pub fn defect_tag(&self) -> &str {
        let (bytes, split) = self.parts();
        Key::str(&bytes[split..])
    }

    /// Whether this is the key `probe` names.
    pub fn is(&self, probe: &KeyRef<'_>) -> bool {
        let (bytes, split) = self.parts();
        let (product, tag) = (probe.product_id.as_bytes(), probe.defect_tag.as_bytes());
        split == product.len()
            && bytes.len() == product.len() + tag.len()
            && &bytes[..split] == product
            && &bytes[split..] == tag
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

/// A borrowed key and its hash, for lookups.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    hash: u64,
    product_id: &'a str,
    defect_tag: &'a str,
}

impl<'a> KeyRef<'a> {
    pub fn new(product_id: &'a str, defect_tag: &'a str) -> KeyRef<'a> {
        KeyRef::with_hash(key_hash(product_id, defect_tag), product_id, defect_tag)
    }

    /// A key with a given hash: the table's tests make distinct keys collide.
    pub(crate) fn with_hash(hash: u64, product_id: &'a str, defect_tag: &'a str) -> KeyRef<'a> {
        KeyRef {
            hash,
            product_id,
            defect_tag,
        }
    }

    pub fn to_key(self) -> Key {
        Key::new(self.product_id, self.defect_tag)
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }
}

/// Passes a precomputed 64-bit hash through (keys and ids are hashed once, when read).
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

    #[test]
    fn keys_give_back_their_strings_inline_or_not() {
        let long = "é".repeat(30);
        for (product, tag) in [
            ("sku-019382", "delivery-status"),
            ("FORD/EXPLORER/2015", "ELECTRICAL SYSTEM"),
            ("", ""),
            ("a", ""),
            ("", "b"),
            (long.as_str(), "SERVICE BRAKES, HYDRAULIC"),
        ] {
            let key = Key::new(product, tag);
            assert_eq!((key.product_id(), key.defect_tag()), (product, tag));
            assert!(key.is(&KeyRef::new(product, tag)));
            assert_eq!(KeyRef::new(product, tag).to_key(), key);
        }
        assert!(matches!(
            Key::new("sku-019382", "delivery-status").0,
            Text::Inline { .. }
        ));
        assert!(matches!(Key::new(&long, "x").0, Text::Heap { .. }));
    }

    /// The same bytes split elsewhere are another key.
    #[test]
    fn a_key_is_its_two_strings_not_their_concatenation() {
        let key = Key::new("ab", "c");
        assert!(!key.is(&KeyRef::new("a", "bc")));
        assert!(!key.is(&KeyRef::new("ab", "")));
        assert!(!key.is(&KeyRef::new("ab", "cd")));
        assert_ne!(key, Key::new("a", "bc"));
        let long = "x".repeat(40);
        assert!(!Key::new(&long, "y").is(&KeyRef::new(&long[..39], "xy")));
    }

    /// A live key's slot holds its key: every byte counts per live key.
    #[test]
    fn a_key_is_40_bytes() {
        assert_eq!(std::mem::size_of::<Key>(), 40);
        assert_eq!(std::mem::size_of::<Option<Key>>(), 40);
    }
}
