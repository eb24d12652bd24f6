//! Decode and validate contact events, version 1 (`schemas/contact-event.v1.json`).
//!
//! Strings borrow from the input buffer where JSON allows it (no escapes), and up to three tags
//! live in the event itself ([`Tags`]), so the common event costs no allocation. Every limit of
//! the contract is checked here; what passes is a [`ContactEvent`] whose product id and tags are
//! trimmed and whose tags are unique.
//!
//! serde_json defines the wire shape and every parse error; the common shape (known fields,
//! no escapes) is read by a one-pass fast path, `event_scan`, into the same raw event, which
//! then goes through the same validation.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use smallvec::SmallVec;

pub use crate::tags::Tags;
use crate::time::{parse_date, parse_rfc3339, Timestamp};

/// How the customer got in touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Call,
    Chat,
    Email,
    Mail,
    Social,
    Web,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Call,
        Channel::Chat,
        Channel::Email,
        Channel::Mail,
        Channel::Social,
        Channel::Web,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Call => "call",
            Channel::Chat => "chat",
            Channel::Email => "email",
            Channel::Mail => "mail",
            Channel::Social => "social",
            Channel::Web => "web",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the customer said happened: injuries, deaths, fire, crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Severity {
    pub injuries: u32,
    pub deaths: u32,
    pub fire: bool,
    pub crash: bool,
}

/// A validated contact event. Strings borrow from the decoded buffer where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactEvent<'a> {
    pub event_id: Cow<'a, str>,
    pub occurred_at: Timestamp,
    pub channel: Channel,
    pub customer_id: Option<Cow<'a, str>>,
    pub product_id: Cow<'a, str>,
    pub defect_tags: Tags<'a>,
    pub lot: Option<Cow<'a, str>>,
    pub region: Option<Cow<'a, str>>,
    pub severity: Severity,
}

impl ContactEvent<'_> {
    /// Who reported: the customer, or the event itself when the customer is unknown.
    pub fn reporter(&self) -> &str {
        self.customer_id.as_deref().unwrap_or(&self.event_id)
    }
}

/// Why an input was rejected: a small closed set, used as a metric label and a dead-letter header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadReason {
    InvalidJson,
    WrongType,
    MissingField,
    BadTimestamp,
    BadChannel,
    BadDate,
    OutOfLimit,
}

impl BadReason {
    pub const ALL: [BadReason; 7] = [
        BadReason::InvalidJson,
        BadReason::WrongType,
        BadReason::MissingField,
        BadReason::BadTimestamp,
        BadReason::BadChannel,
        BadReason::BadDate,
        BadReason::OutOfLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::InvalidJson => "invalid_json",
            BadReason::WrongType => "wrong_type",
            BadReason::MissingField => "missing_field",
            BadReason::BadTimestamp => "bad_timestamp",
            BadReason::BadChannel => "bad_channel",
            BadReason::BadDate => "bad_date",
            BadReason::OutOfLimit => "out_of_limit",
        }
    }
}

/// A rejected input, with a message that says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("a field has the wrong type: {0}")]
    WrongType(String),
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    #[error("`occurred_at` is not an RFC 3339 timestamp: {0:?}")]
    BadTimestamp(String),
    #[error("`channel` must be one of call, chat, email, mail, social, web; got {0:?}")]
    BadChannel(String),
    #[error("`incident_date` is not a YYYY-MM-DD date: {0:?}")]
    BadDate(String),
    #[error("`{field}` {problem}")]
    OutOfLimit {
        field: &'static str,
        problem: String,
    },
}

impl DecodeError {
    pub fn reason(&self) -> BadReason {
        match self {
            DecodeError::InvalidJson(_) => BadReason::InvalidJson,
            DecodeError::WrongType(_) => BadReason::WrongType,
            DecodeError::MissingField(_) => BadReason::MissingField,
            DecodeError::BadTimestamp(_) => BadReason::BadTimestamp,
            DecodeError::BadChannel(_) => BadReason::BadChannel,
            DecodeError::BadDate(_) => BadReason::BadDate,
            DecodeError::OutOfLimit { .. } => BadReason::OutOfLimit,
        }
    }
}

pub const MAX_EVENT_ID_CHARS: usize = 128;
pub const MAX_CUSTOMER_ID_CHARS: usize = 128;
pub const MAX_PRODUCT_ID_CHARS: usize = 256;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_CHARS: usize = 128;
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// A string that borrows from the input when it has no escapes.
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// The length in bytes of a string field that is only checked, never kept (the free text).
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) struct Length(pub(crate) usize);

impl<'de> Deserialize<'de> for Length {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Length;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Length(v.len()))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) struct RawSeverity {
    pub(crate) injuries: Option<i64>,
    pub(crate) deaths: Option<i64>,
    pub(crate) fire: Option<bool>,
    pub(crate) crash: Option<bool>,
}

/// The wire shape: everything optional so that a missing field gets its own typed error.
/// Filled by serde, or by [`crate::event_scan`] for the common shape (the same values).
#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) struct RawEvent<'a> {
    #[serde(borrow)]
    pub(crate) event_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) occurred_at: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) channel: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) customer_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) product_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) defect_tags: Option<SmallVec<[Str<'a>; crate::tags::INLINE]>>,
    #[serde(borrow)]
    pub(crate) lot: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) region: Option<Str<'a>>,
    pub(crate) severity: Option<RawSeverity>,
    #[serde(borrow)]
    pub(crate) incident_date: Option<Str<'a>>,
    pub(crate) text: Option<Length>,
}

fn char_len_at_most(s: &str, max: usize) -> bool {
    s.len() <= max || s.chars().count() <= max
}

#[inline(always)]
fn limited<'a>(
    field: &'static str,
    value: Cow<'a, str>,
    max_chars: usize,
    trim: bool,
) -> Result<Cow<'a, str>, DecodeError> {
    // Nearly every value: not empty, no longer in bytes than the limit in characters, and (if
    // trimmed) printable ASCII at both ends, which no Unicode whitespace is. Nothing to change
    // or count then; `trim` and the character count were ~70 instructions a call.
    let b = value.as_bytes();
    if let (Some(first), Some(last)) = (b.first(), b.last()) {
        if b.len() <= max_chars && (!trim || (first.is_ascii_graphic() && last.is_ascii_graphic()))
        {
            return Ok(value);
        }
    }
    limited_slow(field, value, max_chars, trim)
}

#[cold]
#[inline(never)]
fn limited_slow<'a>(
    field: &'static str,
    value: Cow<'a, str>,
    max_chars: usize,
    trim: bool,
) -> Result<Cow<'a, str>, DecodeError> {
    let value = if trim { trim_cow(value) } else { value };
    if value.is_empty() {
        return Err(DecodeError::OutOfLimit {
            field,
            problem: "must not be empty".into(),
        });
    }
    if !char_len_at_most(&value, max_chars) {
        return Err(DecodeError::OutOfLimit {
            field,
            problem: format!("is longer than {max_chars} characters"),
        });
    }
    Ok(value)
}

fn trim_cow(value: Cow<'_, str>) -> Cow<'_, str> {
    match value {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
    }
}

fn count(field: &'static str, v: Option<i64>) -> Result<u32, DecodeError> {
    match v {
        None => Ok(0),
        Some(n) if n < 0 => Err(DecodeError::OutOfLimit {
            field,
            problem: format!("must be >= 0, got {n}"),
        }),
        Some(n) => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
    }
}

fn json_error(e: serde_json::Error) -> DecodeError {
    match e.classify() {
        serde_json::error::Category::Data => DecodeError::WrongType(e.to_string()),
        _ => DecodeError::InvalidJson(e.to_string()),
    }
}

/// Decodes one contact event from a JSON document (a Kafka message or a line of a file).
pub fn decode(input: &[u8]) -> Result<ContactEvent<'_>, DecodeError> {
    let text = utf8(input)?;
    // The common shape in one pass; anything else (and every error) through serde.
    let mut raw = RawEvent::default();
    if crate::event_scan::scan(text, &mut raw).is_none() {
        raw = parse_with_serde(text)?;
    }
    validate(raw)
}

/// [`decode`] without the fast path: the definition that the fast path is tested against.
#[cfg(test)]
pub(crate) fn decode_with_serde(input: &[u8]) -> Result<ContactEvent<'_>, DecodeError> {
    validate(parse_with_serde(utf8(input)?)?)
}

/// Validating UTF-8 once for the whole document is cheaper than per string while parsing.
/// simdutf8 checks a valid document with vector instructions (std's check was ~180 instructions
/// of an event's ~7,000 in replay); the message for an invalid one, with its position, is std's.
fn utf8(input: &[u8]) -> Result<&str, DecodeError> {
    simdutf8::basic::from_utf8(input).or_else(|_| {
        std::str::from_utf8(input).map_err(|e| DecodeError::InvalidJson(format!("not UTF-8: {e}")))
    })
}

/// The wire shape by serde_json: the definition of what parses and of every parse error.
pub(crate) fn parse_with_serde(text: &str) -> Result<RawEvent<'_>, DecodeError> {
    serde_json::from_str(text).map_err(json_error)
}

/// Every rule of the contract that JSON's shape does not already say.
#[inline(always)]
fn validate(raw: RawEvent<'_>) -> Result<ContactEvent<'_>, DecodeError> {
    let event_id = raw.event_id.ok_or(DecodeError::MissingField("event_id"))?;
    let event_id = limited("event_id", event_id.0, MAX_EVENT_ID_CHARS, false)?;
    let occurred_at = raw
        .occurred_at
        .ok_or(DecodeError::MissingField("occurred_at"))?
        .0;
    let occurred_at =
        parse_rfc3339(&occurred_at).ok_or_else(|| DecodeError::BadTimestamp(occurred_at.into()))?;
    let channel = raw.channel.ok_or(DecodeError::MissingField("channel"))?.0;
    let channel =
        Channel::parse(&channel).ok_or_else(|| DecodeError::BadChannel(channel.into()))?;
    let product_id = raw
        .product_id
        .ok_or(DecodeError::MissingField("product_id"))?;
    let product_id = limited("product_id", product_id.0, MAX_PRODUCT_ID_CHARS, true)?;
    let tags = raw
        .defect_tags
        .ok_or(DecodeError::MissingField("defect_tags"))?;
    if tags.is_empty() || tags.len() > MAX_TAGS {
        return Err(DecodeError::OutOfLimit {
            field: "defect_tags",
            problem: format!("must hold 1 to {MAX_TAGS} tags, got {}", tags.len()),
        });
    }
    // Each tag checked in order (the first bad one is the error), then kept unless an earlier
    // one is the same after trimming.
    let mut defect_tags = Tags::with_capacity(tags.len());
    for tag in tags {
        let tag = limited("defect_tags", tag.0, MAX_TAG_CHARS, true)?;
        if !defect_tags.contains(&tag) {
            defect_tags.push(tag);
        }
    }
    let customer_id = raw
        .customer_id
        .map(|c| limited("customer_id", c.0, MAX_CUSTOMER_ID_CHARS, false))
        .transpose()?;
    let severity = match raw.severity {
        None => Severity::default(),
        Some(s) => Severity {
            injuries: count("severity.injuries", s.injuries)?,
            deaths: count("severity.deaths", s.deaths)?,
            fire: s.fire.unwrap_or(false),
            crash: s.crash.unwrap_or(false),
        },
    };
    if let Some(date) = raw.incident_date {
        if parse_date(&date.0).is_none() {
            return Err(DecodeError::BadDate(date.0.into()));
        }
    }
    if let Some(Length(text)) = raw.text {
        if text > MAX_TEXT_BYTES {
            return Err(DecodeError::OutOfLimit {
                field: "text",
                problem: format!("is longer than {MAX_TEXT_BYTES} bytes"),
            });
        }
    }
    Ok(ContactEvent {
        event_id,
        occurred_at,
        channel,
        customer_id,
        product_id,
        defect_tags,
        lot: raw.lot.map(|s| s.0),
        region: raw.region.map(|s| s.0),
        severity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"event_id":"c-1","occurred_at":"2026-11-22T09:14:03Z","channel":"call",
        "customer_id":"cust-1","product_id":" kettle-kx200 ","defect_tags":["overheating"," lid-latch","overheating"],
        "lot":"L2026-41","region":"US-CA","severity":{"injuries":1,"deaths":0,"fire":false,"crash":false},
        "incident_date":"2026-11-20","text":"Lid popped open","new_field":{"x":1}}"#;

    /// metrics is a leaf that imports nothing from the stages, so it spells the label values
    /// out; they must stay the reasons and channels this module reports.
    #[test]
    fn metric_label_values_are_the_bad_reasons_and_channels() {
        let reasons: Vec<&str> = BadReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(reasons, crate::metrics::BAD_REASONS);
        let channels: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(channels, crate::metrics::CHANNELS);
    }

    /// Bytes that are not UTF-8 are invalid JSON, with std's message and position; valid
    /// multi-byte text passes the vectorised check.
    #[test]
    fn documents_that_are_not_utf8_are_rejected_with_the_position() {
        let mut doc = GOOD.as_bytes().to_vec();
        let at = GOOD.find("Lid").unwrap();
        doc[at] = 0xFF;
        let err = decode(&doc).unwrap_err();
        assert_eq!(err.reason(), BadReason::InvalidJson);
        assert_eq!(
            err.to_string(),
            DecodeError::InvalidJson(format!(
                "not UTF-8: invalid utf-8 sequence of 1 bytes from index {at}"
            ))
            .to_string()
        );
        let accented = GOOD.replace("Lid popped open", "Couvercle ouvert, très chaud ☕");
        assert_eq!(
            decode(accented.as_bytes()).unwrap().product_id,
            "kettle-kx200"
        );
    }

    fn with(field: &str, value: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        if value == "<absent>" {
            v.as_object_mut().unwrap().remove(field);
        } else {
            v[field] = serde_json::from_str(value).unwrap();
        }
        v.to_string()
    }

    fn reason(doc: &str) -> BadReason {
        decode(doc.as_bytes()).unwrap_err().reason()
    }

    #[test]
    fn decodes_trims_and_dedups_tags() {
        let e = decode(GOOD.as_bytes()).unwrap();
        assert_eq!(e.product_id, "kettle-kx200");
        assert_eq!(e.defect_tags[..], ["overheating", "lid-latch"]);
        assert_eq!(e.channel, Channel::Call);
        assert_eq!(e.severity.injuries, 1);
        assert_eq!(e.reporter(), "cust-1");
        assert!(
            matches!(e.event_id, Cow::Borrowed(_)),
            "plain strings borrow"
        );
    }

    #[test]
    fn reporter_defaults_to_event_id() {
        let e = with("customer_id", "<absent>");
        assert_eq!(decode(e.as_bytes()).unwrap().reporter(), "c-1");
        let e = with("customer_id", "null");
        assert_eq!(decode(e.as_bytes()).unwrap().reporter(), "c-1");
    }

    #[test]
    fn every_rule_of_the_contract_has_a_reason() {
        assert_eq!(reason("{not json"), BadReason::InvalidJson);
        assert_eq!(reason(""), BadReason::InvalidJson);
        assert_eq!(reason("[1,2]"), BadReason::WrongType);
        for f in [
            "event_id",
            "occurred_at",
            "channel",
            "product_id",
            "defect_tags",
        ] {
            assert_eq!(reason(&with(f, "<absent>")), BadReason::MissingField, "{f}");
        }
        assert_eq!(reason(&with("event_id", "17")), BadReason::WrongType);
        assert_eq!(
            reason(&with("occurred_at", "\"2026-11-22\"")),
            BadReason::BadTimestamp
        );
        assert_eq!(reason(&with("channel", "\"fax\"")), BadReason::BadChannel);
        assert_eq!(
            reason(&with("incident_date", "\"2026-02-30\"")),
            BadReason::BadDate
        );
        assert_eq!(reason(&with("product_id", "\"  \"")), BadReason::OutOfLimit);
        assert_eq!(reason(&with("defect_tags", "[]")), BadReason::OutOfLimit);
        let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
        let many = serde_json::to_string(&many).unwrap();
        assert_eq!(reason(&with("defect_tags", &many)), BadReason::OutOfLimit);
        let long = format!("\"{}\"", "é".repeat(129));
        assert_eq!(reason(&with("event_id", &long)), BadReason::OutOfLimit);
        let ok = format!("\"{}\"", "é".repeat(128));
        assert!(decode(with("event_id", &ok).as_bytes()).is_ok());
        assert_eq!(
            reason(&with("severity", r#"{"injuries":-1}"#)),
            BadReason::OutOfLimit
        );
        let text = format!("\"{}\"", "a".repeat(MAX_TEXT_BYTES + 1));
        assert_eq!(reason(&with("text", &text)), BadReason::OutOfLimit);
    }

    #[test]
    fn escaped_strings_are_owned_and_correct() {
        let e = with("product_id", r#""ket\u0074le""#);
        assert_eq!(decode(e.as_bytes()).unwrap().product_id, "kettle");
    }
}
