//! The parse-only baseline both benches compare `decode` against: the contact-event fields
//! deserialized by serde_json alone (strings borrowed, owned only when escaped), with no
//! trimming, limits, timestamp or channel parsing and no tag dedup.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct BaselineSeverity {
    #[allow(dead_code)]
    injuries: Option<i64>,
    #[allow(dead_code)]
    deaths: Option<i64>,
    #[allow(dead_code)]
    fire: Option<bool>,
    #[allow(dead_code)]
    crash: Option<bool>,
}

/// A string borrowed from the input, or owned when it has escapes (as `decode` does it).
pub struct Text<'a>(#[allow(dead_code)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// The fields of a contact event, deserialized by serde_json alone: strings borrowed (owned only
/// when escaped), no trimming, no limits, no timestamp or channel parsing, no tag dedup.
/// `decode` minus this is its validation overhead.
#[derive(Deserialize)]
#[allow(dead_code)]
pub struct BaselineEvent<'a> {
    #[serde(borrow)]
    event_id: Option<Text<'a>>,
    #[serde(borrow)]
    occurred_at: Option<Text<'a>>,
    #[serde(borrow)]
    channel: Option<Text<'a>>,
    #[serde(borrow)]
    customer_id: Option<Text<'a>>,
    #[serde(borrow)]
    product_id: Option<Text<'a>>,
    #[serde(borrow)]
    defect_tags: Option<Vec<Text<'a>>>,
    #[serde(borrow)]
    lot: Option<Text<'a>>,
    #[serde(borrow)]
    region: Option<Text<'a>>,
    severity: Option<BaselineSeverity>,
    #[serde(borrow)]
    incident_date: Option<Text<'a>>,
    #[serde(borrow)]
    text: Option<Text<'a>>,
}
