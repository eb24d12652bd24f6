//! Fuzz `recall_radar::event::decode` and `recall_radar::time::parse_rfc3339` with arbitrary bytes.
//!
//! Neither may panic. On top of that, whatever they accept must satisfy the input contract:
//! - an accepted event has a non-empty, trimmed product id of at most 256 characters; 1 to 32
//!   unique, non-empty, trimmed tags of at most 128 characters each; an event id of 1 to 128
//!   characters; and writing its fields back out as a JSON object (with `occurred_at` formatted by
//!   `format_rfc3339`) decodes to an equal event;
//! - an accepted timestamp formats with `format_rfc3339` to a string that parses to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use recall_radar::event::{
    decode, ContactEvent, MAX_EVENT_ID_CHARS, MAX_PRODUCT_ID_CHARS, MAX_TAGS, MAX_TAG_CHARS,
};
use recall_radar::time::{format_rfc3339, parse_rfc3339};
use serde_json::{json, Map, Value};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        check_timestamp(s);
    }
    if let Ok(event) = decode(data) {
        check_event(&event, data);
    }
});

fn check_timestamp(s: &str) {
    let Some(t) = parse_rfc3339(s) else { return };
    let formatted = format_rfc3339(t);
    let again = parse_rfc3339(&formatted);
    assert_eq!(
        again,
        Some(t),
        "timestamp round trip: parse_rfc3339({s:?}) = {t:?}, format_rfc3339 gives {formatted:?}, \
         which parses to {again:?}"
    );
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn check_event(e: &ContactEvent<'_>, input: &[u8]) {
    let input = String::from_utf8_lossy(input);

    let n = chars(&e.event_id);
    assert!(
        (1..=MAX_EVENT_ID_CHARS).contains(&n),
        "event_id has {n} chars: {:?}\ninput: {input:?}",
        e.event_id
    );

    let p = &e.product_id;
    assert!(!p.is_empty(), "empty product_id accepted\ninput: {input:?}");
    assert_eq!(p.trim(), &**p, "product_id not trimmed\ninput: {input:?}");
    assert!(
        chars(p) <= MAX_PRODUCT_ID_CHARS,
        "product_id has {} chars\ninput: {input:?}",
        chars(p)
    );

    let tags = &e.defect_tags;
    assert!(
        (1..=MAX_TAGS).contains(&tags.len()),
        "{} tags accepted\ninput: {input:?}",
        tags.len()
    );
    for (i, tag) in tags.iter().enumerate() {
        assert!(!tag.is_empty(), "empty tag accepted\ninput: {input:?}");
        assert_eq!(tag.trim(), &**tag, "tag not trimmed\ninput: {input:?}");
        assert!(
            chars(tag) <= MAX_TAG_CHARS,
            "tag has {} chars\ninput: {input:?}",
            chars(tag)
        );
        assert!(
            !tags[..i].contains(tag),
            "duplicate tag {tag:?} in {tags:?}\ninput: {input:?}"
        );
    }

    // Write the accepted fields back out and decode again: the decoder must accept its own output
    // and give back the same event.
    let mut obj = Map::new();
    obj.insert("event_id".into(), json!(e.event_id));
    obj.insert("occurred_at".into(), json!(format_rfc3339(e.occurred_at)));
    obj.insert("channel".into(), json!(e.channel.as_str()));
    if let Some(c) = &e.customer_id {
        obj.insert("customer_id".into(), json!(c));
    }
    obj.insert("product_id".into(), json!(e.product_id));
    obj.insert("defect_tags".into(), json!(e.defect_tags));
    if let Some(l) = &e.lot {
        obj.insert("lot".into(), json!(l));
    }
    if let Some(r) = &e.region {
        obj.insert("region".into(), json!(r));
    }
    obj.insert(
        "severity".into(),
        json!({
            "injuries": e.severity.injuries,
            "deaths": e.severity.deaths,
            "fire": e.severity.fire,
            "crash": e.severity.crash,
        }),
    );
    let bytes = serde_json::to_vec(&Value::Object(obj)).expect("serialize a JSON object");
    match decode(&bytes) {
        Ok(again) => assert_eq!(
            &again,
            e,
            "re-encoded event decodes differently\ninput:      {input:?}\nre-encoded: {:?}",
            String::from_utf8_lossy(&bytes)
        ),
        Err(err) => panic!(
            "re-encoded event is rejected: {err}\ninput:      {input:?}\nre-encoded: {:?}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}
