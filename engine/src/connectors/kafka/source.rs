//! Reading Kafka partitions as a source, with Flink's semantics: each
//! subtask owns a fixed share of the partitions (assigned, not subscribed:
//! no group rebalances), its position is the next offset of each of them,
//! offsets go to the consumer group only once the checkpoint that holds them
//! has completed, and the watermark is the minimum over the partitions.
//!
//! The consumer is polled on the source's own thread (blocking calls are
//! fine there). Messages of one poll round are decoded a partition at a
//! time into one batch each, so the runtime can keep a watermark per
//! partition ([`SourcePoll::SplitBatch`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanArray, Int32Array, Int64Array, MapBuilder, StringArray,
    StringBuilder, TimestampMillisecondArray,
};
use datafusion::arrow::compute::{cast, filter};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::options::{BoundedMode, KafkaOptions, StartupMode};
use super::{client_error, java_string_hash, METADATA_TIMEOUT};
use crate::connectors::{SourceFactory, SourcePoll, SourceReader};
use crate::error::{EngineError, Result};
use crate::metrics::NodeMetrics;
use crate::operators::TaskContext;

/// A configured Kafka source.
pub struct KafkaSource {
    options: Arc<KafkaOptions>,
    /// The physical columns without Weir's field annotations.
    output: SchemaRef,
}

impl KafkaSource {
    /// Wraps parsed options.
    pub fn new(options: KafkaOptions) -> Self {
        let output = Arc::new(Schema::new(
            options
                .schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_metadata(Default::default()))
                .collect::<Vec<_>>(),
        ));
        Self {
            options: Arc::new(options),
            output,
        }
    }
}

/// The subtask that reads `partition` of `topic`, as Flink's Kafka source
/// assigns them: topics start at a subtask given by their name's hash and
/// their partitions go round from there.
pub fn owner(topic: &str, partition: i32, parallelism: usize) -> usize {
    let p = parallelism.max(1) as i64;
    let start = ((java_string_hash(topic) as i64 * 31) & 0x7FFF_FFFF) % p;
    ((start + partition as i64) % p) as usize
}

/// One partition's progress, as stored in checkpoints.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
struct PartitionPosition {
    topic: String,
    partition: i32,
    /// The next offset to read.
    next: i64,
    /// Exclusive end offset of a bounded read.
    #[serde(default)]
    stop: Option<i64>,
}

fn positions_of(value: &serde_json::Value) -> Result<Vec<PartitionPosition>> {
    let list = value.get("partitions").cloned().unwrap_or_default();
    serde_json::from_value(list)
        .map_err(|e| EngineError::Checkpoint(format!("kafka source position: {e}")))
}

impl SourceFactory for KafkaSource {
    fn create_reader(&self, ctx: &TaskContext) -> Result<Box<dyn SourceReader>> {
        Ok(Box::new(KafkaReader::open(
            self.options.clone(),
            self.output.clone(),
            ctx,
        )?))
    }

    fn is_bounded(&self) -> bool {
        self.options.bounded != BoundedMode::Unbounded
    }

    fn describe(&self) -> String {
        self.options.describe()
    }

    fn redistribute(
        &self,
        old: &[Option<serde_json::Value>],
        parallelism: usize,
        subtask: usize,
    ) -> Result<Option<serde_json::Value>> {
        let mut mine = Vec::new();
        for position in old.iter().flatten() {
            for p in positions_of(position)? {
                if owner(&p.topic, p.partition, parallelism) == subtask {
                    mine.push(p);
                }
            }
        }
        Ok(Some(serde_json::json!({ "partitions": mine })))
    }
}

/// What the reader hands on next, and how far that moves a partition.
struct Ready {
    poll: Option<SourcePoll>,
    advance: Option<((String, i32), i64)>,
}

struct Partition {
    position: PartitionPosition,
    /// Read to its end (bounded).
    done: bool,
    /// The split id the runtime knows it by.
    split: u32,
}

/// One subtask's reader.
pub struct KafkaReader {
    options: Arc<KafkaOptions>,
    output: SchemaRef,
    consumer: BaseConsumer,
    subtask: usize,
    parallelism: usize,
    batch_size: usize,
    metrics: Arc<NodeMetrics>,
    /// Keyed by (topic, partition).
    partitions: BTreeMap<(String, i32), Partition>,
    /// Set by `seek` before the first poll.
    restored: Option<Vec<PartitionPosition>>,
    started: bool,
    ready: VecDeque<Ready>,
    next_split: u32,
    last_discovery: Instant,
    /// Offsets recorded at each checkpoint, committed when it completes.
    recorded: BTreeMap<u64, Vec<PartitionPosition>>,
}

impl KafkaReader {
    fn open(options: Arc<KafkaOptions>, output: SchemaRef, ctx: &TaskContext) -> Result<Self> {
        let isolation = options
            .properties
            .get("isolation.level")
            .cloned()
            .unwrap_or_else(|| "read_committed".into());
        let group = options
            .properties
            .get("group.id")
            .cloned()
            .unwrap_or_else(|| format!("weir-{}", ctx.job_id));
        let consumer: BaseConsumer = options
            .client_config(&[
                ("group.id", &group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "true"),
                ("isolation.level", &isolation),
            ])
            .create()
            .map_err(|e| client_error(&options, "creating the consumer", e))?;
        Ok(Self {
            options,
            output,
            consumer,
            subtask: ctx.subtask,
            parallelism: ctx.parallelism,
            batch_size: ctx.batch_size.max(1),
            metrics: ctx.metrics.clone(),
            partitions: BTreeMap::new(),
            restored: None,
            started: false,
            ready: VecDeque::new(),
            next_split: 0,
            last_discovery: Instant::now(),
            recorded: BTreeMap::new(),
        })
    }

    /// Every (topic, partition) of the table's topics, from the broker.
    fn list_partitions(&self) -> Result<Vec<(String, i32)>> {
        let metadata = self
            .consumer
            .fetch_metadata(None, METADATA_TIMEOUT)
            .map_err(|e| client_error(&self.options, "reading the topics' metadata", e))?;
        let mut out = Vec::new();
        let mut found: Vec<&str> = Vec::new();
        for t in metadata.topics() {
            let wanted = match &self.options.topic_pattern {
                Some(p) => p.is_match(t.name()),
                None => self.options.topics.iter().any(|n| n == t.name()),
            };
            if !wanted || t.error().is_some() || t.partitions().is_empty() {
                continue;
            }
            found.push(t.name());
            for p in t.partitions() {
                out.push((t.name().to_string(), p.id()));
            }
        }
        if self.options.topic_pattern.is_none() {
            if let Some(missing) = self
                .options
                .topics
                .iter()
                .find(|t| !found.contains(&t.as_str()))
            {
                return Err(EngineError::External(format!(
                    "kafka: topic '{missing}' does not exist on {}",
                    self.options.servers()
                )));
            }
        }
        out.sort();
        Ok(out)
    }

    fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64)> {
        self.consumer
            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
            .map_err(|e| {
                client_error(
                    &self.options,
                    &format!("reading the offsets of {topic}-{partition}"),
                    e,
                )
            })
    }

    fn committed(&self, topic: &str, partition: i32) -> Result<Option<i64>> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let got = self
            .consumer
            .committed_offsets(tpl, METADATA_TIMEOUT)
            .map_err(|e| client_error(&self.options, "reading the group's committed offsets", e))?;
        Ok(got
            .find_partition(topic, partition)
            .and_then(|e| e.offset().to_raw())
            .filter(|o| *o >= 0))
    }

    fn for_time(&self, topic: &str, partition: i32, ms: i64) -> Result<i64> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(ms))
            .map_err(|e| client_error(&self.options, "looking up offsets by time", e))?;
        let got = self
            .consumer
            .offsets_for_times(tpl, METADATA_TIMEOUT)
            .map_err(|e| client_error(&self.options, "looking up offsets by time", e))?;
        match got.find_partition(topic, partition).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Ok(o),
            // No record that late: the end of the log.
            _ => Ok(self.watermarks(topic, partition)?.1),
        }
    }

    /// Where a partition without a checkpointed position starts.
    fn start_offset(&self, topic: &str, partition: i32, discovered: bool) -> Result<i64> {
        let (low, high) = self.watermarks(topic, partition)?;
        if discovered {
            // A partition created while the job runs is read from its start.
            return Ok(low);
        }
        let group_or_reset = || -> Result<i64> {
            if let Some(o) = self.committed(topic, partition)? {
                return Ok(o);
            }
            match self
                .options
                .properties
                .get("auto.offset.reset")
                .map(|s| s.to_ascii_lowercase())
                .as_deref()
            {
                Some("earliest") | Some("smallest") | Some("beginning") => Ok(low),
                Some("latest") | Some("largest") | Some("end") => Ok(high),
                _ => Err(EngineError::External(format!(
                    "kafka: the group '{}' has no committed offset for {topic}-{partition}; set 'properties.auto.offset.reset' ('earliest' or 'latest') or another 'scan.startup.mode'",
                    self.options.properties.get("group.id").map(String::as_str).unwrap_or("")
                ))),
            }
        };
        match &self.options.startup {
            StartupMode::Earliest => Ok(low),
            StartupMode::Latest => Ok(high),
            StartupMode::GroupOffsets => group_or_reset(),
            StartupMode::Timestamp(ms) => self.for_time(topic, partition, *ms),
            StartupMode::SpecificOffsets(map) => match map.get(&partition) {
                Some(o) => Ok(*o),
                None => group_or_reset(),
            },
        }
    }

    fn stop_offset(&self, topic: &str, partition: i32) -> Result<Option<i64>> {
        Ok(match &self.options.bounded {
            BoundedMode::Unbounded => None,
            BoundedMode::Latest => Some(self.watermarks(topic, partition)?.1),
            BoundedMode::GroupOffsets => Some(match self.committed(topic, partition)? {
                Some(o) => o,
                None => self.watermarks(topic, partition)?.1,
            }),
            BoundedMode::Timestamp(ms) => Some(self.for_time(topic, partition, *ms)?),
            BoundedMode::SpecificOffsets(map) => Some(match map.get(&partition) {
                Some(o) => *o,
                None => self.watermarks(topic, partition)?.1,
            }),
        })
    }

    fn add_partition(&mut self, position: PartitionPosition) {
        let split = self.next_split;
        self.next_split += 1;
        let done = position.stop.is_some_and(|s| position.next >= s);
        self.partitions.insert(
            (position.topic.clone(), position.partition),
            Partition {
                position,
                done,
                split,
            },
        );
    }

    /// Assigns this subtask's partitions to the consumer at their offsets.
    fn assign(&mut self) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), p) in &self.partitions {
            if !p.done {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(p.position.next))
                    .map_err(|e| client_error(&self.options, "assigning partitions", e))?;
            }
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| client_error(&self.options, "assigning partitions", e))
    }

    /// The splits of the partitions not read to their end.
    fn active_splits(&self) -> Vec<u32> {
        self.partitions
            .values()
            .filter(|p| !p.done)
            .map(|p| p.split)
            .collect()
    }

    fn announce_splits(&mut self) {
        self.ready.push_back(Ready {
            poll: Some(SourcePoll::Splits(self.active_splits())),
            advance: None,
        });
    }

    fn start(&mut self) -> Result<()> {
        self.started = true;
        let all = self.list_partitions()?;
        match self.restored.take() {
            Some(restored) => {
                let known: Vec<(String, i32)> = restored
                    .iter()
                    .map(|p| (p.topic.clone(), p.partition))
                    .collect();
                for p in restored {
                    self.add_partition(p);
                }
                // Partitions that appeared since the checkpoint.
                for (topic, partition) in all {
                    if owner(&topic, partition, self.parallelism) == self.subtask
                        && !known.contains(&(topic.clone(), partition))
                    {
                        let next = self.start_offset(&topic, partition, true)?;
                        let stop = self.stop_offset(&topic, partition)?;
                        self.add_partition(PartitionPosition {
                            topic,
                            partition,
                            next,
                            stop,
                        });
                    }
                }
            }
            None => {
                for (topic, partition) in all {
                    if owner(&topic, partition, self.parallelism) == self.subtask {
                        let next = self.start_offset(&topic, partition, false)?;
                        let stop = self.stop_offset(&topic, partition)?;
                        self.add_partition(PartitionPosition {
                            topic,
                            partition,
                            next,
                            stop,
                        });
                    }
                }
            }
        }
        for p in self.partitions.values() {
            tracing::info!(
                topic = %p.position.topic,
                partition = p.position.partition,
                from = p.position.next,
                until = ?p.position.stop,
                "kafka source: reading partition"
            );
        }
        self.assign()?;
        self.announce_splits();
        self.last_discovery = Instant::now();
        Ok(())
    }

    fn discover(&mut self) -> Result<()> {
        self.last_discovery = Instant::now();
        let mut added = false;
        for (topic, partition) in self.list_partitions()? {
            if owner(&topic, partition, self.parallelism) == self.subtask
                && !self.partitions.contains_key(&(topic.clone(), partition))
            {
                let next = self.start_offset(&topic, partition, true)?;
                let stop = self.stop_offset(&topic, partition)?;
                tracing::info!(topic = %topic, partition, "kafka source: new partition");
                self.add_partition(PartitionPosition {
                    topic,
                    partition,
                    next,
                    stop,
                });
                added = true;
            }
        }
        if added {
            self.assign()?;
            self.announce_splits();
        }
        Ok(())
    }

    /// Rows (or offsets without rows) of a partition went downstream: the
    /// position moves past them, and a bounded partition read to its stop
    /// offset is done.
    fn emitted(&mut self, key: &(String, i32), next: i64) {
        let Some(p) = self.partitions.get_mut(key) else {
            return;
        };
        let next = next.min(p.position.stop.unwrap_or(i64::MAX));
        p.position.next = p.position.next.max(next);
        if !p.done && p.position.stop.is_some_and(|s| p.position.next >= s) {
            p.done = true;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&key.0, key.1);
            let _ = self.consumer.pause(&tpl);
            self.ready.push_front(Ready {
                poll: Some(SourcePoll::Splits(self.active_splits())),
                advance: None,
            });
        }
    }

    /// The consumer's position in a partition (past control records).
    fn consumer_position(&self, topic: &str, partition: i32) -> Option<i64> {
        let tpl = self.consumer.position().ok()?;
        tpl.find_partition(topic, partition)?
            .offset()
            .to_raw()
            .filter(|o| *o >= 0)
    }

    /// One poll round: up to a batch of messages, decoded per partition.
    fn fill(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut by_partition: BTreeMap<(String, i32), Vec<BorrowedMessage<'_>>> = BTreeMap::new();
        let mut eof: Vec<(String, i32)> = Vec::new();
        let mut count = 0;
        let consumer = &self.consumer;
        while count < self.batch_size {
            let wait = deadline.saturating_duration_since(Instant::now());
            let Some(item) = consumer.poll(if count == 0 { wait } else { Duration::ZERO }) else {
                break;
            };
            match item {
                Ok(m) => {
                    count += 1;
                    by_partition
                        .entry((m.topic().to_string(), m.partition()))
                        .or_default()
                        .push(m);
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    // Which topic: the error carries only the partition.
                    for (topic, partition) in self.partitions.keys() {
                        if *partition == p {
                            eof.push((topic.clone(), p));
                        }
                    }
                }
                Err(e) => return Err(client_error(&self.options, "reading messages", e)),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        // The position moves only when the rows are handed on (a
        // checkpoint between two of these batches must not skip the rest).
        for ((topic, partition), messages) in by_partition {
            let Some(p) = self.partitions.get(&(topic.clone(), partition)) else {
                continue;
            };
            let stop = p.position.stop;
            let split = p.split;
            let kept: Vec<&BorrowedMessage<'_>> = messages
                .iter()
                .filter(|m| stop.is_none_or(|s| m.offset() < s))
                .collect();
            let Some(last) = messages.last().map(|m| m.offset()) else {
                continue;
            };
            let mut poll = None;
            if !kept.is_empty() {
                let batch = decode(&self.options, &self.output, &self.metrics, &kept)?;
                if batch.num_rows() > 0 {
                    poll = Some(SourcePoll::SplitBatch(split, batch));
                }
            }
            if stop.is_some_and(|s| last + 1 >= s) {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&topic, partition);
                let _ = self.consumer.pause(&tpl);
            }
            self.ready.push_back(Ready {
                poll,
                advance: Some(((topic, partition), last + 1)),
            });
        }
        for (topic, partition) in eof {
            // Past control records (transaction markers) at the end.
            if let Some(at) = self.consumer_position(&topic, partition) {
                self.ready.push_back(Ready {
                    poll: None,
                    advance: Some(((topic, partition), at)),
                });
            }
        }
        Ok(())
    }
}

/// Decodes one partition's messages into rows of the table.
fn decode(
    options: &KafkaOptions,
    output: &SchemaRef,
    metrics: &NodeMetrics,
    messages: &[&BorrowedMessage<'_>],
) -> Result<RecordBatch> {
    // Messages without a value (tombstones) carry no row for `kafka`.
    let with_value: Vec<&BorrowedMessage<'_>> = messages
        .iter()
        .copied()
        .filter(|m| m.payload().is_some())
        .collect();
    let ignore = options.value_format.ignore_parse_errors()
        || options
            .key_format
            .as_ref()
            .is_some_and(|k| k.ignore_parse_errors());
    let mut bad = |i: usize, reason: String| -> Result<()> {
        let m = with_value[i];
        if ignore {
            NodeMetrics::add(&metrics.parse_errors_skipped, 1);
            tracing::debug!(topic = m.topic(), partition = m.partition(), offset = m.offset(), reason = %reason, "skipped malformed record");
            Ok(())
        } else {
            Err(EngineError::BadMessage {
                topic: m.topic().to_string(),
                partition: m.partition(),
                offset: m.offset(),
                reason,
            })
        }
    };
    let values: Vec<&[u8]> = with_value
        .iter()
        .map(|m| m.payload().unwrap_or_default())
        .collect();
    let value = options.value_format.decode(&values, &mut bad)?;
    let mut keep: Vec<bool> = value
        .kept
        .clone()
        .unwrap_or_else(|| vec![true; values.len()]);
    let key = match &options.key_format {
        Some(format) => {
            let keys: Vec<&[u8]> = with_value
                .iter()
                .map(|m| m.key().unwrap_or_default())
                .collect();
            let decoded = format.decode(&keys, &mut bad)?;
            if let Some(k) = &decoded.kept {
                for (a, b) in keep.iter_mut().zip(k) {
                    *a &= *b;
                }
            }
            Some(decoded)
        }
        None => None,
    };
    // Rows of each decoded batch that are kept overall.
    let restrict = |kept: &Option<Vec<bool>>| -> Option<BooleanArray> {
        let own: Vec<usize> = match kept {
            Some(k) => (0..k.len()).filter(|i| k[*i]).collect(),
            None => (0..keep.len()).collect(),
        };
        let mask: Vec<bool> = own.iter().map(|i| keep[*i]).collect();
        (!mask.iter().all(|b| *b)).then(|| BooleanArray::from(mask))
    };
    let value_mask = restrict(&value.kept);
    let key_mask = key.as_ref().and_then(|k| restrict(&k.kept));
    let rows: Vec<&BorrowedMessage<'_>> = with_value
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(m, _)| *m)
        .collect();
    let mut columns: Vec<Option<ArrayRef>> = vec![None; output.fields().len()];
    for (j, &i) in options.value_columns.iter().enumerate() {
        let col = value.batch.column(j).clone();
        columns[i] = Some(match &value_mask {
            Some(m) => filter(&col, m)?,
            None => col,
        });
    }
    if let Some(key) = &key {
        for (j, &i) in options.key_columns.iter().enumerate() {
            if columns[i].is_some() {
                continue;
            }
            let col = key.batch.column(j).clone();
            columns[i] = Some(match &key_mask {
                Some(m) => filter(&col, m)?,
                None => col,
            });
        }
    }
    for (i, name) in &options.metadata_columns {
        columns[*i] = Some(metadata_column(name, &rows)?);
    }
    let columns = columns
        .into_iter()
        .zip(output.fields())
        .map(|(c, f)| {
            let c = c.ok_or_else(|| {
                EngineError::Internal(format!("kafka source: column '{}' has no origin", f.name()))
            })?;
            if c.data_type() == f.data_type() {
                Ok(c)
            } else {
                Ok(cast(&c, f.data_type())?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(output.clone(), columns)?)
}

/// The values of metadata column `name` for `rows`.
fn metadata_column(name: &str, rows: &[&BorrowedMessage<'_>]) -> Result<ArrayRef> {
    Ok(match name {
        "topic" => Arc::new(
            rows.iter()
                .map(|m| Some(m.topic()))
                .collect::<StringArray>(),
        ),
        "partition" => Arc::new(rows.iter().map(|m| m.partition()).collect::<Int32Array>()),
        "offset" => Arc::new(rows.iter().map(|m| m.offset()).collect::<Int64Array>()),
        "timestamp" => Arc::new(
            rows.iter()
                .map(|m| m.timestamp().to_millis())
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        ),
        "timestamp-type" => Arc::new(
            rows.iter()
                .map(|m| {
                    Some(match m.timestamp() {
                        rdkafka::Timestamp::CreateTime(_) => "CreateTime",
                        rdkafka::Timestamp::LogAppendTime(_) => "LogAppendTime",
                        rdkafka::Timestamp::NotAvailable => "NoTimestampType",
                    })
                })
                .collect::<StringArray>(),
        ),
        "headers" => {
            let mut b = MapBuilder::new(None, StringBuilder::new(), BinaryBuilder::new());
            for m in rows {
                if let Some(h) = m.headers() {
                    for header in h.iter() {
                        b.keys().append_value(header.key);
                        match header.value {
                            Some(v) => b.values().append_value(v),
                            None => b.values().append_null(),
                        }
                    }
                }
                b.append(true)?;
            }
            Arc::new(b.finish())
        }
        other => {
            return Err(EngineError::Internal(format!(
                "kafka source: unknown metadata '{other}'"
            )))
        }
    })
}

impl SourceReader for KafkaReader {
    fn poll_next(&mut self) -> Result<SourcePoll> {
        if !self.started {
            self.start()?;
        }
        loop {
            if let Some(ready) = self.ready.pop_front() {
                if let Some((key, next)) = &ready.advance {
                    self.emitted(key, *next);
                }
                match ready.poll {
                    Some(poll) => return Ok(poll),
                    None => continue,
                }
            }
            if !self.partitions.is_empty() && self.partitions.values().all(|p| p.done) {
                return Ok(SourcePoll::End);
            }
            if self.partitions.is_empty() && self.options.bounded != BoundedMode::Unbounded {
                return Ok(SourcePoll::End);
            }
            if let Some(every) = self.options.discovery_interval {
                if self.options.bounded == BoundedMode::Unbounded
                    && self.last_discovery.elapsed() >= every
                {
                    self.discover()?;
                    continue;
                }
            }
            if self.partitions.is_empty() {
                // Nothing assigned to this subtask (yet).
                return Ok(SourcePoll::Idle(Duration::from_millis(100)));
            }
            self.fill()?;
            if self.ready.is_empty() {
                return Ok(SourcePoll::Idle(Duration::ZERO));
            }
        }
    }

    fn position(&self) -> Option<serde_json::Value> {
        let list: Vec<&PartitionPosition> = match (&self.restored, self.started) {
            (Some(r), false) => r.iter().collect(),
            _ => self.partitions.values().map(|p| &p.position).collect(),
        };
        Some(serde_json::json!({ "partitions": list }))
    }

    fn idle_timeout(&self) -> Option<Duration> {
        self.options.idle_timeout
    }

    fn checkpoint_position(&mut self, checkpoint: u64) -> Option<serde_json::Value> {
        let position = self.position()?;
        if let Ok(list) = positions_of(&position) {
            self.recorded.insert(checkpoint, list);
        }
        Some(position)
    }

    fn on_checkpoint_complete(&mut self, checkpoint: u64) -> Result<()> {
        let Some((&id, _)) = self.recorded.range(..=checkpoint).next_back() else {
            return Ok(());
        };
        let offsets = self.recorded.remove(&id).unwrap_or_default();
        self.recorded = self.recorded.split_off(&(id + 1));
        if !self.options.properties.contains_key("group.id") || offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in &offsets {
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                .map_err(|e| client_error(&self.options, "committing offsets", e))?;
        }
        // A failed commit loses nothing (the checkpoint holds the offsets);
        // Flink only logs it too.
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Sync) {
            tracing::warn!(checkpoint, error = %e, "kafka source: committing offsets to the group failed");
        }
        Ok(())
    }

    fn on_checkpoint_aborted(&mut self, checkpoint: u64) -> Result<()> {
        self.recorded.remove(&checkpoint);
        Ok(())
    }

    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        self.restored = Some(positions_of(position)?);
        Ok(())
    }
}
