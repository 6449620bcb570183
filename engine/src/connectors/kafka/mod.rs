//! `'connector' = 'kafka'` and `'upsert-kafka'`: reading partitions with
//! their offsets in checkpoints, and writing with `none`, `at-least-once` or
//! `exactly-once` (transactions committed with the checkpoint) delivery.
//! The client is librdkafka (the `rdkafka` crate); every call to it runs on
//! the source's or sink's own thread, never on the async workers.
//! See `docs/kafka.md` for the options and guarantees.

use std::time::Duration;

use rdkafka::error::KafkaError;

mod options;
mod sink;
mod source;

pub use options::KafkaOptions;
pub use sink::KafkaSink;
pub use source::{owner, KafkaSource};

use super::Connector;
use crate::error::EngineError;

/// The metadata a Kafka source fills (`METADATA FROM '<key>'`).
const METADATA: &[&str] = &[
    "topic",
    "partition",
    "offset",
    "timestamp",
    "timestamp-type",
    "headers",
];

/// The `kafka` connector's registration.
pub const CONNECTOR: Connector = Connector {
    name: "kafka",
    source: Some(|options, schema| {
        Ok(std::sync::Arc::new(KafkaSource::new(KafkaOptions::parse(
            options, schema, false,
        )?)))
    }),
    sink: Some(|options, schema| {
        Ok(std::sync::Arc::new(KafkaSink::new(KafkaOptions::parse(
            options, schema, false,
        )?)?))
    }),
    metadata: METADATA,
    validate: Some(|options, schema| KafkaOptions::parse(options, schema, false).map(|_| ())),
};

/// The `upsert-kafka` connector's registration.
pub const UPSERT_CONNECTOR: Connector = Connector {
    name: "upsert-kafka",
    source: Some(|options, schema| {
        KafkaOptions::parse(options, schema, true)?;
        Err(EngineError::option(
            "upsert-kafka",
            "reading an upsert-kafka table is not supported yet (writing is); read the topic with 'kafka' and a key format",
        ))
    }),
    sink: Some(|options, schema| {
        Ok(std::sync::Arc::new(KafkaSink::new(KafkaOptions::parse(
            options, schema, true,
        )?)?))
    }),
    metadata: METADATA,
    validate: Some(|options, schema| KafkaOptions::parse(options, schema, true).map(|_| ())),
};

/// How long a metadata or offset request may take before the job fails
/// with an error naming the brokers.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// A client failure, naming the brokers and what Weir was doing.
fn client_error(options: &KafkaOptions, what: &str, e: KafkaError) -> EngineError {
    EngineError::External(format!("kafka ({}): {what}: {e}", options.servers()))
}

/// Java's `String.hashCode` (over UTF-16 code units), which Flink's
/// partition assignment uses.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}
