//! An event's defect tags: up to [`INLINE`] in place, more in a vector.
//!
//! Nearly every event has one to three tags (NHTSA: 28,356 of 28,367 events), and a `Vec` cost
//! each event a malloc and a free (~140 of ~6,400 instructions an event in replay). `SmallVec`
//! saved that, but its `Array` trait made [`crate::event::ContactEvent`] invariant in its
//! lifetime, so two events decoded from different buffers could no longer be compared. An enum
//! of an array and a vector is covariant, as `Vec` is.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

/// Tags held without an allocation.
pub const INLINE: usize = 3;

/// A short list of tags that derefs to a slice. Equality, ordering of items and formatting are
/// the slice's, whichever form holds them.
#[derive(Clone)]
pub enum Tags<'a> {
    /// The first `len` items are the tags; the rest are empty placeholders.
    Inline {
        len: u8,
        items: [Cow<'a, str>; INLINE],
    },
    Heap(Vec<Cow<'a, str>>),
}

impl<'a> Tags<'a> {
    pub const fn new() -> Tags<'a> {
        Tags::Inline {
            len: 0,
            items: [const { Cow::Borrowed("") }; INLINE],
        }
    }

    /// Room for `n` tags: in place up to [`INLINE`].
    pub fn with_capacity(n: usize) -> Tags<'a> {
        if n <= INLINE {
            Tags::new()
        } else {
            Tags::Heap(Vec::with_capacity(n))
        }
    }

    pub fn push(&mut self, tag: Cow<'a, str>) {
        match self {
            Tags::Inline { len, items } if usize::from(*len) < INLINE => {
                items[usize::from(*len)] = tag;
                *len += 1;
            }
            Tags::Inline { items, .. } => {
                let mut all = Vec::with_capacity(2 * INLINE);
                all.extend(items.iter_mut().map(std::mem::take));
                all.push(tag);
                *self = Tags::Heap(all);
            }
            Tags::Heap(all) => all.push(tag),
        }
    }

    pub fn as_slice(&self) -> &[Cow<'a, str>] {
        match self {
            Tags::Inline { len, items } => &items[..usize::from(*len)],
            Tags::Heap(all) => all,
        }
    }

    pub fn into_vec(self) -> Vec<Cow<'a, str>> {
        match self {
            Tags::Inline { len, items } => items.into_iter().take(usize::from(len)).collect(),
            Tags::Heap(all) => all,
        }
    }
}

impl Default for Tags<'_> {
    fn default() -> Self {
        Tags::new()
    }
}

impl<'a> Deref for Tags<'a> {
    type Target = [Cow<'a, str>];
    fn deref(&self) -> &[Cow<'a, str>] {
        self.as_slice()
    }
}

impl PartialEq for Tags<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl fmt::Debug for Tags<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl serde::Serialize for Tags<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'a> FromIterator<Cow<'a, str>> for Tags<'a> {
    fn from_iter<I: IntoIterator<Item = Cow<'a, str>>>(iter: I) -> Self {
        let mut tags = Tags::new();
        for tag in iter {
            tags.push(tag);
        }
        tags
    }
}

impl<'t, 'a> IntoIterator for &'t Tags<'a> {
    type Item = &'t Cow<'a, str>;
    type IntoIter = std::slice::Iter<'t, Cow<'a, str>>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<'a> IntoIterator for Tags<'a> {
    type Item = Cow<'a, str>;
    type IntoIter = std::vec::IntoIter<Cow<'a, str>>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_any_number_of_tags_in_order_in_place_or_not() {
        for n in 0..8 {
            let names: Vec<String> = (0..n).map(|i| format!("tag-{i}")).collect();
            let tags: Tags<'_> = names.iter().map(|s| Cow::Borrowed(s.as_str())).collect();
            assert_eq!(tags.len(), n);
            assert_eq!(matches!(tags, Tags::Inline { .. }), n <= INLINE, "{n} tags");
            assert!(tags
                .iter()
                .map(|t| t.as_ref())
                .eq(names.iter().map(String::as_str)));
            assert_eq!(tags.clone().into_vec(), tags.as_slice());
            assert_eq!(format!("{tags:?}"), format!("{names:?}"));
            assert_eq!(
                serde_json::to_value(&tags).unwrap(),
                serde_json::json!(names)
            );
        }
    }

    #[test]
    fn equality_is_the_slices_whatever_the_form() {
        let inline: Tags<'_> = ["a", "b"].into_iter().map(Cow::Borrowed).collect();
        let heap = Tags::Heap(vec![Cow::Borrowed("a"), Cow::Owned("b".to_owned())]);
        assert_eq!(inline, heap);
        assert_ne!(inline, Tags::new());
        assert_eq!(Tags::with_capacity(INLINE + 1), Tags::new());
    }

    /// Events decoded from buffers of different lifetimes compare: `Tags`, like `Vec`, is
    /// covariant in its lifetime (this does not compile if it is not).
    #[test]
    fn is_covariant_in_its_lifetime() {
        fn shorten<'short>(t: Tags<'static>) -> Tags<'short> {
            t
        }
        let owned = String::from("a");
        let local: Tags<'_> = std::iter::once(Cow::Borrowed(owned.as_str())).collect();
        let forever: Tags<'static> = std::iter::once(Cow::Borrowed("a")).collect();
        assert_eq!(local, shorten(forever));
    }
}
