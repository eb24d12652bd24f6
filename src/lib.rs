//! recall-radar spots product recalls in the making from what customers tell a contact center.
//!
//! One report about a (product, defect tag) is an anomaly, two are a pattern, three or more a
//! problem: a recall candidate. Data flows one way, and the core is pure and synchronous so the
//! daemon, replay and backtest give the same alerts for the same events.
//!
//! # Layout
//! - [`event`]: decode and validate contact events (the input contract).
//!   `event_scan`: its fast path, one pass over the common shape; serde_json for the rest.
//!   [`tags`]: an event's defect tags, the first three in place.
//! - [`report`]: one accepted event on one key, as a window keeps it.
//! - [`window`]: the reports of one key and what a sliding window asks of them;
//!   [`summary`]: what a window holds, as an alert shows it.
//! - [`policy`]: tag classes, thresholds, rungs and the severity fast path.
//! - [`key`]: the (product, defect tag) key, hashed once, looked up without allocating.
//! - [`engine`]: keys, event-time watermark, episodes; events in, [`alert::Alert`]s out.
//! - [`table`]: the live keys: states in a slab that timers point into, found by key hash in a map.
//! - [`timers`]: which key the engine must decide next (report timers and window drains).
//! - [`alert`]: the alert format and its deterministic ids.
//! - [`replay`] and [`backtest`]: the engine over JSON-lines files, and scoring against recalls;
//!   [`lines`] reads the files line by line without copying.
//! - [`kafka`]: the daemon: consumer group in (cooperative-sticky), one engine per partition,
//!   alerts and dead letters out through the outbox (one transaction per commit, or offsets
//!   after acknowledgement); a partition that arrives is rebuilt from its checkpoint by replay
//!   (`checkpoint`, `restore`, `rebuild`); `repartition` re-keys unkeyed input by product.
//! - [`admin`]: the HTTP server for metrics, health and live signals.
//! - [`demo`]: the daemon on an embedded broker with a synthetic load, for a first look.
//! - [`generate`]: a synthetic contact-center stream with known bursts, for demo, tests, benches.
//! - Leaves that import no stage: [`config`], [`time`], [`metrics`], [`shutdown`].

pub mod admin;
pub mod alert;
pub mod backtest;
pub mod config;
pub mod demo;
pub mod engine;
pub mod event;
mod event_scan;
pub mod generate;
pub mod kafka;
pub mod key;
pub mod lines;
pub mod metrics;
pub mod policy;
pub mod replay;
pub mod report;
pub mod service;
pub mod shutdown;
pub mod summary;
pub mod table;
pub mod tags;
pub mod time;
pub mod timers;
pub mod window;
