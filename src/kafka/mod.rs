//! Kafka in, Kafka out: the daemon loop and what it needs around librdkafka.

pub mod checkpoint;
pub mod client;
pub mod daemon;
pub mod live;
pub mod member;
pub mod outbox;
pub mod partition;
pub mod produce;
pub mod publish;
pub mod rebuild;
pub mod repartition;
pub mod restore;
