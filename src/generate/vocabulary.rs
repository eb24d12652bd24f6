//! The words of the synthetic stream: routine contact reasons and real defect tags (with their
//! free texts and weights), regions and channel mixes, and the weighted picks over them.
//!
//! A tag is a [`TagIndex`]: an index into [`ROUTINE`], then [`DEFECTS`] after it.

use crate::event::Channel;

/// Routine contact reasons: (tag, relative weight, texts).
pub(super) const ROUTINE: &[(&str, u32, &[&str])] = &[
    (
        "billing",
        16,
        &[
            "Asks about a charge on the last invoice",
            "Card was billed twice for one order",
        ],
    ),
    (
        "delivery-status",
        18,
        &[
            "Parcel shows delivered, never arrived",
            "Asks when the order will ship",
        ],
    ),
    (
        "setup-help",
        14,
        &[
            "Needs help pairing the unit with the app",
            "Walked through the first-time setup",
        ],
    ),
    (
        "returns",
        10,
        &[
            "Wants to return an unopened gift",
            "Asks for a prepaid return label",
        ],
    ),
    (
        "account",
        8,
        &[
            "Cannot log in after a password reset",
            "Wants to update the email on file",
        ],
    ),
    (
        "warranty-question",
        6,
        &["Asks how long the warranty lasts"],
    ),
    ("order-change", 6, &["Wants to change the delivery address"]),
    ("refund-status", 6, &["Refund has not shown up on the card"]),
    (
        "product-question",
        8,
        &["Asks if the parts are dishwasher safe"],
    ),
    (
        "compatibility",
        4,
        &["Asks if it works with the older model"],
    ),
    (
        "replacement-part",
        4,
        &["Needs a replacement filter cartridge"],
    ),
    ("manual-request", 3, &["Lost the manual, wants a PDF copy"]),
    ("price-match", 3, &["Saw a lower price, asks for a match"]),
    (
        "cancellation",
        4,
        &["Wants to cancel an order placed by mistake"],
    ),
];

/// Real defect tags: (tag, texts).
pub(super) const DEFECTS: &[(&str, &[&str])] = &[
    (
        "overheating",
        &["Too hot to touch after ten minutes of use"],
    ),
    (
        "battery-swelling",
        &["Battery bulged and pushed the cover off"],
    ),
    (
        "lid-latch",
        &["Lid popped open while boiling, scalded hand"],
    ),
    ("power-failure", &["Stopped turning on after a week"]),
    ("leak", &["Water pools under the base after use"]),
    ("sharp-edge", &["Cut a finger on the housing edge"]),
    ("smoke", &["Smoke came out of the vents"]),
    ("display-dead", &["Display shows \"E4\" then goes blank"]),
    ("cracked-housing", &["Housing cracked along the seam"]),
    ("loose-wiring", &["Cord sparks where it enters the base"]),
    ("strong-odor", &["Burning plastic smell when it runs"]),
    (
        "noise-rattle",
        &["Loud rattle, something came loose inside"],
    ),
    (
        "button-stuck",
        &["Power button sticks, will not switch off"],
    ),
    ("door-hinge", &["Door hinge snapped on the second day"]),
];

/// The routine contact reasons background traffic uses.
pub fn routine_tags() -> impl Iterator<Item = &'static str> {
    ROUTINE.iter().map(|r| r.0)
}

/// The tag class a deployment would give the generator's routine contact reasons (billing,
/// delivery...): they are not defects, so only a flood within a day should alert. The demo and
/// the benchmarks run with it; without it every popular product climbs the ladder on billing.
pub fn routine_class() -> crate::config::RawTagClass {
    crate::config::RawTagClass {
        name: "routine".into(),
        tags: routine_tags().map(str::to_owned).collect(),
        patterns: Vec::new(),
        window: Some("1d".into()),
        thresholds: Some(crate::config::Thresholds {
            anomaly: 100,
            pattern: 200,
            problem: 400,
        }),
    }
}

/// The real defect tags background traffic (at `defect_rate`) and bursts use.
pub fn defect_tags() -> impl Iterator<Item = &'static str> {
    DEFECTS.iter().map(|d| d.0)
}

pub(super) const REGIONS: &[&str] = &[
    "US-CA", "US-TX", "US-NY", "US-FL", "US-IL", "US-PA", "US-OH", "US-GA", "US-WA", "US-MA",
    "CA-ON", "CA-QC", "CA-BC", "GB-ENG", "GB-SCT", "DE-BY", "DE-NW", "FR-IDF", "MX-CMX", "AU-NSW",
];

/// Background channel mix, per mille: call, chat, email, web, social, mail.
const CHANNELS: &[(Channel, u32)] = &[
    (Channel::Call, 400),
    (Channel::Chat, 250),
    (Channel::Email, 200),
    (Channel::Web, 70),
    (Channel::Social, 50),
    (Channel::Mail, 30),
];

/// Channel pairs of a customer who reports a burst twice: first, then second.
pub(super) const REPEAT_CHANNELS: &[(Channel, Channel)] = &[
    (Channel::Call, Channel::Chat),
    (Channel::Chat, Channel::Email),
    (Channel::Email, Channel::Call),
    (Channel::Call, Channel::Web),
];

pub(super) fn pick_routine(roll: u32) -> usize {
    let mut acc = 0;
    for (i, r) in ROUTINE.iter().enumerate() {
        acc += r.1;
        if roll < acc {
            return i;
        }
    }
    0
}

pub(super) fn pick_channel(roll: u32) -> Channel {
    let mut acc = 0;
    for &(c, w) in CHANNELS {
        acc += w;
        if roll < acc {
            return c;
        }
    }
    Channel::Call
}

/// A tag: index into [`ROUTINE`], then [`DEFECTS`] after it.
pub(super) type TagIndex = u8;

pub(super) fn defect_tag_index(defect: usize) -> TagIndex {
    (ROUTINE.len() + defect) as TagIndex
}

pub(super) const RETURNS: TagIndex = 3;
