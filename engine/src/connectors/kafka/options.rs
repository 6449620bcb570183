//! The options of a `kafka` / `upsert-kafka` table, Flink's names: read once
//! for both the source and the sink, so one table definition serves either.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};

use crate::config::parse_duration;
use crate::connectors::{is_secret, metadata_key, Options};
use crate::error::{EngineError, Result};
use crate::formats::Format;

/// Where a partition's reading starts when no checkpoint says.
#[derive(Debug, Clone, PartialEq)]
pub enum StartupMode {
    /// The oldest offset still in the log.
    Earliest,
    /// The end of the log when the job starts.
    Latest,
    /// The group's committed offset (`properties.auto.offset.reset` when there is none).
    GroupOffsets,
    /// The first offset whose record timestamp is at or after this (ms).
    Timestamp(i64),
    /// Given offsets per partition (others: the group's, as Flink does).
    SpecificOffsets(BTreeMap<i32, i64>),
}

/// Where a bounded source stops (exclusive end offsets).
#[derive(Debug, Clone, PartialEq)]
pub enum BoundedMode {
    /// Reads for ever.
    Unbounded,
    /// The end of each partition when the job starts.
    Latest,
    /// The group's committed offsets when the job starts.
    GroupOffsets,
    /// The first offset at or after this record timestamp (ms).
    Timestamp(i64),
    /// Given end offsets per partition.
    SpecificOffsets(BTreeMap<i32, i64>),
}

/// What the sink promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// Fire and forget: rows in flight at a failure may be lost.
    None,
    /// Every row is acknowledged before a checkpoint completes; after a
    /// failure rows since the last checkpoint are written again.
    AtLeastOnce,
    /// Kafka transactions committed with the checkpoint (two-phase commit).
    ExactlyOnce,
}

/// How the sink picks a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    /// By the key's hash (Kafka's default), or spread when there is no key.
    Default,
    /// Subtask `i` writes to partition `i % partitions`.
    Fixed,
    /// Rows go round the partitions.
    RoundRobin,
}

/// Everything a Kafka table's options say.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// `'kafka'` or `'upsert-kafka'`.
    pub connector: &'static str,
    /// `topic`: one or several (`;`-separated).
    pub topics: Vec<String>,
    /// `topic-pattern`: a regular expression over topic names (source only).
    pub topic_pattern: Option<regex::Regex>,
    /// `properties.*` (without the prefix), given to the client as they are.
    pub properties: BTreeMap<String, String>,
    /// The value's format and the columns it holds.
    pub value_format: Format,
    /// The key's format and the columns it holds (`key.fields`).
    pub key_format: Option<Format>,
    /// Indices in the physical schema of the key columns.
    pub key_columns: Vec<usize>,
    /// Indices in the physical schema of the value columns.
    pub value_columns: Vec<usize>,
    /// Indices and keys of the metadata columns.
    pub metadata_columns: Vec<(usize, String)>,
    /// Where reading starts.
    pub startup: StartupMode,
    /// Where reading stops.
    pub bounded: BoundedMode,
    /// `scan.topic-partition-discovery.interval` (`None`: off).
    pub discovery_interval: Option<Duration>,
    /// `scan.watermark.idle-timeout`: a partition without records this long
    /// stops holding the watermark back.
    pub idle_timeout: Option<Duration>,
    /// `sink.delivery-guarantee`.
    pub delivery: DeliveryGuarantee,
    /// `sink.transactional-id-prefix`.
    pub transactional_id_prefix: Option<String>,
    /// `sink.partitioner`.
    pub partitioner: Partitioner,
    /// The physical schema: value, key and metadata columns.
    pub schema: SchemaRef,
}

fn bad(connector: &str, message: String) -> EngineError {
    EngineError::option(connector, message)
}

/// `partition:0,offset:42;partition:1,offset:300`.
fn parse_specific_offsets(connector: &str, key: &str, text: &str) -> Result<BTreeMap<i32, i64>> {
    let mut out = BTreeMap::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let mut partition = None;
        let mut offset = None;
        for kv in part.split(',') {
            let (k, v) = kv.split_once(':').unwrap_or((kv, ""));
            match k.trim() {
                "partition" => partition = v.trim().parse::<i32>().ok(),
                "offset" => offset = v.trim().parse::<i64>().ok(),
                _ => {}
            }
        }
        match (partition, offset) {
            (Some(p), Some(o)) if p >= 0 && o >= 0 => {
                out.insert(p, o);
            }
            _ => {
                return Err(bad(
                    connector,
                    format!("option '{key}' must read like 'partition:0,offset:42;partition:1,offset:300', found '{part}'"),
                ))
            }
        }
    }
    Ok(out)
}

impl KafkaOptions {
    /// Reads and checks every option against the table's physical columns.
    pub fn parse(mut options: Options, schema: SchemaRef, upsert: bool) -> Result<Self> {
        let connector: &'static str = if upsert { "upsert-kafka" } else { "kafka" };
        let topics: Vec<String> = options
            .string("topic")
            .map(|t| {
                t.split(';')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let topic_pattern = match options.string("topic-pattern") {
            Some(p) if upsert => {
                return Err(bad(connector, format!("option 'topic-pattern' ('{p}') is not available for upsert-kafka; name the 'topic'")))
            }
            Some(p) => Some(regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                bad(connector, format!("option 'topic-pattern' is not a valid regular expression: {e}"))
            })?),
            None => None,
        };
        if topics.is_empty() && topic_pattern.is_none() {
            return Err(bad(
                connector,
                "missing required option 'topic' (or 'topic-pattern')".into(),
            ));
        }
        if !topics.is_empty() && topic_pattern.is_some() {
            return Err(bad(
                connector,
                "options 'topic' and 'topic-pattern' cannot both be set".into(),
            ));
        }
        let properties: BTreeMap<String, String> = options
            .with_prefix("properties.")
            .into_iter()
            .map(|(k, v)| (k["properties.".len()..].to_string(), v))
            .collect();
        if !properties.contains_key("bootstrap.servers") {
            return Err(bad(
                connector,
                "missing required option 'properties.bootstrap.servers'".into(),
            ));
        }

        // Columns: metadata, key and value.
        let mut metadata_columns = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            if let Some(k) = metadata_key(f) {
                metadata_columns.push((i, k.to_string()));
            }
        }
        let key_field_names: Vec<String> = match options.string("key.fields") {
            Some(k) => k
                .split(';')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => Vec::new(),
        };
        let key_prefix = options.string("key.fields-prefix").unwrap_or_default();
        let include = options
            .one_of("value.fields-include", &["ALL", "EXCEPT_KEY"])?
            .unwrap_or_else(|| "all".into());
        let primary_key: Vec<String> = schema
            .metadata()
            .get("weir.primary-key")
            .map(|k| k.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let key_names = if upsert {
            if primary_key.is_empty() {
                return Err(bad(connector, "an upsert-kafka table needs a PRIMARY KEY (...) NOT ENFORCED: it is the message key".into()));
            }
            if !key_field_names.is_empty() {
                return Err(bad(connector, "option 'key.fields' is not available for upsert-kafka: the PRIMARY KEY is the key".into()));
            }
            primary_key
        } else {
            key_field_names
        };
        let mut key_columns = Vec::new();
        for name in &key_names {
            let i = schema.index_of(name).map_err(|_| {
                bad(
                    connector,
                    format!("key field '{name}' is not a physical column of the table"),
                )
            })?;
            if metadata_key(schema.field(i)).is_some() {
                return Err(bad(
                    connector,
                    format!("key field '{name}' is a METADATA column"),
                ));
            }
            key_columns.push(i);
        }
        let value_columns: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !metadata_columns.iter().any(|(m, _)| m == i))
            .filter(|i| include == "all" || !key_columns.contains(i))
            .collect();
        let project = |cols: &[usize], strip: &str| -> SchemaRef {
            Arc::new(Schema::new(
                cols.iter()
                    .map(|&i| {
                        let f = schema.field(i);
                        let name = f.name().strip_prefix(strip).unwrap_or(f.name());
                        Field::new(name, f.data_type().clone(), true)
                    })
                    .collect::<Vec<_>>(),
            ))
        };
        let value_schema = project(&value_columns, "");
        let plain = Format::from_options(&mut options, "format", value_schema.clone())?;
        let prefixed = Format::from_options(&mut options, "value.format", value_schema)?;
        let value_format = match (plain, prefixed) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    connector,
                    "options 'format' and 'value.format' cannot both be set".into(),
                ))
            }
            (Some(f), None) | (None, Some(f)) => f,
            (None, None) => {
                return Err(bad(
                    connector,
                    "missing required option 'format' (or 'value.format'): csv, json or raw".into(),
                ))
            }
        };
        let key_format = match Format::from_options(
            &mut options,
            "key.format",
            project(&key_columns, &key_prefix),
        )? {
            Some(_) if key_columns.is_empty() => {
                return Err(bad(
                    connector,
                    "option 'key.format' needs 'key.fields' (the columns the key holds)".into(),
                ));
            }
            Some(f) => Some(f),
            None if !key_columns.is_empty() => {
                return Err(bad(
                    connector,
                    "option 'key.fields' needs 'key.format'".into(),
                ))
            }
            None => None,
        };

        let startup = match options
            .one_of(
                "scan.startup.mode",
                &[
                    "earliest-offset",
                    "latest-offset",
                    "group-offsets",
                    "timestamp",
                    "specific-offsets",
                ],
            )?
            .as_deref()
        {
            None if upsert => StartupMode::Earliest,
            None | Some("group-offsets") => StartupMode::GroupOffsets,
            Some("earliest-offset") => StartupMode::Earliest,
            Some("latest-offset") => StartupMode::Latest,
            Some("timestamp") => StartupMode::Timestamp(
                options
                    .parse::<i64>(
                        "scan.startup.timestamp-millis",
                        "milliseconds since the epoch",
                    )?
                    .ok_or_else(|| {
                        bad(
                            connector,
                            "scan.startup.mode 'timestamp' needs 'scan.startup.timestamp-millis'"
                                .into(),
                        )
                    })?,
            ),
            Some(_) => {
                let text = options.string("scan.startup.specific-offsets").ok_or_else(|| {
                    bad(connector, "scan.startup.mode 'specific-offsets' needs 'scan.startup.specific-offsets'".into())
                })?;
                StartupMode::SpecificOffsets(parse_specific_offsets(
                    connector,
                    "scan.startup.specific-offsets",
                    &text,
                )?)
            }
        };
        // Read even when the mode does not use them, as Flink does.
        options.string("scan.startup.timestamp-millis");
        options.string("scan.startup.specific-offsets");
        let bounded = match options
            .one_of(
                "scan.bounded.mode",
                &[
                    "unbounded",
                    "latest-offset",
                    "group-offsets",
                    "timestamp",
                    "specific-offsets",
                ],
            )?
            .as_deref()
        {
            None | Some("unbounded") => BoundedMode::Unbounded,
            Some("latest-offset") => BoundedMode::Latest,
            Some("group-offsets") => BoundedMode::GroupOffsets,
            Some("timestamp") => BoundedMode::Timestamp(
                options
                    .parse::<i64>(
                        "scan.bounded.timestamp-millis",
                        "milliseconds since the epoch",
                    )?
                    .ok_or_else(|| {
                        bad(
                            connector,
                            "scan.bounded.mode 'timestamp' needs 'scan.bounded.timestamp-millis'"
                                .into(),
                        )
                    })?,
            ),
            Some(_) => {
                let text = options.string("scan.bounded.specific-offsets").ok_or_else(|| {
                    bad(connector, "scan.bounded.mode 'specific-offsets' needs 'scan.bounded.specific-offsets'".into())
                })?;
                BoundedMode::SpecificOffsets(parse_specific_offsets(
                    connector,
                    "scan.bounded.specific-offsets",
                    &text,
                )?)
            }
        };
        options.string("scan.bounded.timestamp-millis");
        options.string("scan.bounded.specific-offsets");
        if matches!(bounded, BoundedMode::GroupOffsets) && !properties.contains_key("group.id") {
            return Err(bad(
                connector,
                "scan.bounded.mode 'group-offsets' needs 'properties.group.id'".into(),
            ));
        }
        let duration = |options: &mut Options, key: &str| -> Result<Option<Duration>> {
            match options.string(key) {
                None => Ok(None),
                Some(v) => parse_duration(&v)
                    .map(|d| (!d.is_zero()).then_some(d))
                    .map_err(|e| bad(connector, format!("option '{key}': {e}"))),
            }
        };
        let discovery_interval = match options.string("scan.topic-partition-discovery.interval") {
            None => Some(Duration::from_secs(300)),
            Some(v) => parse_duration(&v)
                .map(|d| (!d.is_zero()).then_some(d))
                .map_err(|e| {
                    bad(
                        connector,
                        format!("option 'scan.topic-partition-discovery.interval': {e}"),
                    )
                })?,
        };
        let idle_timeout = duration(&mut options, "scan.watermark.idle-timeout")?;
        options.string("scan.parallelism");
        options.string("sink.parallelism");

        let delivery = match options
            .one_of(
                "sink.delivery-guarantee",
                &["none", "at-least-once", "exactly-once"],
            )?
            .as_deref()
        {
            Some("none") => DeliveryGuarantee::None,
            Some("exactly-once") => DeliveryGuarantee::ExactlyOnce,
            _ => DeliveryGuarantee::AtLeastOnce,
        };
        let transactional_id_prefix = options.string("sink.transactional-id-prefix");
        let partitioner = match options
            .one_of("sink.partitioner", &["default", "fixed", "round-robin"])?
            .as_deref()
        {
            Some("fixed") => Partitioner::Fixed,
            Some("round-robin") => Partitioner::RoundRobin,
            _ => Partitioner::Default,
        };
        options.finish()?;
        for key in ["transactional.id", "enable.idempotence"] {
            if properties.contains_key(key) {
                return Err(bad(connector, format!("option 'properties.{key}' is set by Weir (see 'sink.delivery-guarantee' and 'sink.transactional-id-prefix')")));
            }
        }
        Ok(Self {
            connector,
            topics,
            topic_pattern,
            properties,
            value_format,
            key_format,
            key_columns,
            value_columns,
            metadata_columns,
            startup,
            bounded,
            discovery_interval,
            idle_timeout,
            delivery,
            transactional_id_prefix,
            partitioner,
            schema,
        })
    }

    /// What a table must say to be read.
    pub fn check_source(&self) -> Result<()> {
        if matches!(self.startup, StartupMode::GroupOffsets)
            && !self.properties.contains_key("group.id")
        {
            return Err(bad(self.connector, "scan.startup.mode 'group-offsets' (the default) needs 'properties.group.id'; or set 'scan.startup.mode' = 'earliest-offset'".into()));
        }
        Ok(())
    }

    /// What a table must say to be written.
    pub fn check_sink(&self) -> Result<()> {
        if self.delivery == DeliveryGuarantee::ExactlyOnce && self.transactional_id_prefix.is_none()
        {
            return Err(bad(self.connector, "sink.delivery-guarantee 'exactly-once' needs 'sink.transactional-id-prefix' (unique to this job: its transactions are named after it)".into()));
        }
        Ok(())
    }

    /// `bootstrap.servers`, for error messages.
    pub fn servers(&self) -> &str {
        self.properties
            .get("bootstrap.servers")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The client configuration: `properties.*` plus what Weir sets.
    pub fn client_config(&self, extra: &[(&str, &str)]) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        for (k, v) in extra {
            config.set(*k, *v);
        }
        config
    }

    /// The options as `EXPLAIN` shows them, secrets masked.
    pub fn describe(&self) -> String {
        let topics = match &self.topic_pattern {
            Some(p) => format!(
                "topic-pattern=[{}]",
                p.as_str().trim_start_matches("^(?:").trim_end_matches(")$")
            ),
            None => format!("topic=[{}]", self.topics.join(";")),
        };
        let props: Vec<String> = self
            .properties
            .iter()
            .map(|(k, v)| {
                if is_secret(k) || k.starts_with("ssl.key") {
                    format!("properties.{k}=[****]")
                } else {
                    format!("properties.{k}=[{v}]")
                }
            })
            .collect();
        format!(
            "connector=[{}], {topics}, format=[{}], {}",
            self.connector,
            self.value_format.name(),
            props.join(", ")
        )
    }
}
