//! Writing a table to a Kafka topic: `none`, `at-least-once` (every row
//! acknowledged before the checkpoint) or `exactly-once` (Kafka
//! transactions, two-phase commit with the checkpoint).
//!
//! ## Exactly once
//!
//! Each subtask writes the rows between two barriers into one transaction.
//! On barrier `n` it flushes the transaction (every record acknowledged:
//! pre-commit) and records in the checkpoint the transaction and the
//! offsets its records got; when checkpoint `n` completes it commits it.
//! The next rows go into a transaction of another producer of the
//! subtask's small pool (`<prefix>-<subtask>-<slot>`), so a transaction can
//! wait for its checkpoint while the next one fills.
//!
//! A commit also stores, atomically with the rows, the checkpoint id as the
//! committed offset of a marker consumer group (`<prefix>-marker-<subtask>`):
//! after a crash that is how recovery tells whether the transaction of the
//! restored checkpoint was committed. Recovery first fences every
//! transactional id of the pool (a new producer with the same id aborts
//! what the dead one left open, so no abandoned transaction blocks
//! `read_committed` readers), then, for each transaction the checkpoint
//! pre-committed that the marker says is not committed, reads its records
//! back (they are still in the log, aborted) and writes them again in a new
//! transaction that commits them together with the marker. librdkafka cannot
//! resume another producer's transaction (Flink's connector does so by
//! reflection into the Java client), so this replays it instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::options::{DeliveryGuarantee, KafkaOptions, Partitioner};
use super::{client_error, METADATA_TIMEOUT};
use crate::connectors::{metadata_key, SinkFactory, SinkWriter};
use crate::error::{EngineError, Result};
use crate::message::{split_changes, ChangeKind};
use crate::operators::TaskContext;

/// Producers per subtask: one transaction filling, the rest waiting for
/// their checkpoints to complete (more than one only when checkpoints
/// fail or overlap).
const POOL: usize = 4;
/// How long a flush or a transaction call may take before the job fails.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// A configured Kafka sink.
pub struct KafkaSink {
    options: Arc<KafkaOptions>,
    topic: String,
}

impl KafkaSink {
    /// Checks that the table names one topic to write to.
    pub fn new(options: KafkaOptions) -> Result<Self> {
        options.check_sink()?;
        if options.topic_pattern.is_some() || options.topics.len() != 1 {
            return Err(EngineError::option(
                options.connector,
                "a table written to must name exactly one 'topic'",
            ));
        }
        let topic = options.topics[0].clone();
        Ok(Self {
            options: Arc::new(options),
            topic,
        })
    }
}

impl SinkFactory for KafkaSink {
    fn create_writer(&self, ctx: &TaskContext, schema: SchemaRef) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(KafkaWriter::new(
            self.options.clone(),
            self.topic.clone(),
            ctx,
            schema,
        )?))
    }

    fn accepts_updates(&self) -> bool {
        self.options.connector == "upsert-kafka"
    }

    fn describe(&self) -> String {
        let guarantee = match self.options.delivery {
            DeliveryGuarantee::None => "none",
            DeliveryGuarantee::AtLeastOnce => "at-least-once",
            DeliveryGuarantee::ExactlyOnce => "exactly-once",
        };
        format!(
            "{}, sink.delivery-guarantee=[{guarantee}]",
            self.options.describe()
        )
    }

    fn is_exactly_once(&self) -> bool {
        self.options.delivery == DeliveryGuarantee::ExactlyOnce
    }
}

/// What delivery reports tell: the offsets records got per partition (as
/// ranges), and the first failure.
#[derive(Default)]
struct Deliveries {
    ranges: BTreeMap<i32, Vec<(i64, i64)>>,
    failed: Option<String>,
    outstanding: usize,
}

/// The producer's callback side: collects [`Deliveries`].
#[derive(Clone, Default)]
struct DeliveryContext {
    deliveries: Arc<Mutex<Deliveries>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let Ok(mut d) = self.deliveries.lock() else {
            return;
        };
        d.outstanding = d.outstanding.saturating_sub(1);
        match result {
            Ok(m) => {
                let ranges = d.ranges.entry(m.partition()).or_default();
                match ranges.last_mut() {
                    Some((_, end)) if *end + 1 == m.offset() => *end = m.offset(),
                    _ => ranges.push((m.offset(), m.offset())),
                }
            }
            Err((e, _)) => {
                if d.failed.is_none() {
                    d.failed = Some(e.to_string());
                }
            }
        }
    }
}

impl DeliveryContext {
    fn take(&self) -> Deliveries {
        self.deliveries
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }

    fn failure(&self) -> Option<String> {
        self.deliveries.lock().ok().and_then(|d| d.failed.clone())
    }
}

/// A transaction the checkpoint pre-committed, as stored in it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PendingTxn {
    /// The checkpoint whose completion commits it.
    checkpoint: u64,
    /// Its producer's `transactional.id`.
    transactional_id: String,
    /// The offsets its records got: partition → inclusive ranges.
    ranges: BTreeMap<i32, Vec<(i64, i64)>>,
}

/// A sink subtask's exactly-once state, as stored in checkpoints.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct SinkState {
    /// The subtask that wrote it (its transactional ids are fenced on restore).
    #[serde(default)]
    subtask: usize,
    /// The marker group whose committed offset tells the last committed checkpoint.
    marker_group: String,
    /// Every transaction pre-committed and not yet committed, oldest first.
    pending: Vec<PendingTxn>,
}

struct Slot {
    producer: BaseProducer<DeliveryContext>,
    context: DeliveryContext,
}

/// One subtask's writer.
struct KafkaWriter {
    options: Arc<KafkaOptions>,
    topic: String,
    subtask: usize,
    partitions: i32,
    round_robin: i32,
    /// `none` and `at-least-once`: one producer, no transactions.
    plain: Option<Slot>,
    /// `exactly-once`: the pool, by slot.
    slots: Vec<Option<Slot>>,
    /// The slot whose transaction takes rows now.
    open: Option<usize>,
    /// Pre-committed transactions by slot, oldest first.
    pending: Vec<(usize, PendingTxn)>,
    marker_group: String,
    /// A consumer of the marker group (its metadata goes into commits).
    marker: Option<BaseConsumer>,
    /// Columns of the key, the value and the record timestamp in the input.
    key_columns: Vec<usize>,
    value_columns: Vec<usize>,
    timestamp_column: Option<usize>,
}

impl KafkaWriter {
    fn new(
        options: Arc<KafkaOptions>,
        topic: String,
        ctx: &TaskContext,
        schema: SchemaRef,
    ) -> Result<Self> {
        if options.delivery == DeliveryGuarantee::ExactlyOnce && !ctx.checkpointing {
            return Err(EngineError::option(
                options.connector,
                "sink.delivery-guarantee 'exactly-once' commits with checkpoints: set 'execution.checkpointing.interval' (or use 'at-least-once')",
            ));
        }
        // The input's columns by the table's names (metadata columns that
        // are only read are not written).
        let find = |name: &str| schema.index_of(name).ok();
        let names = |cols: &[usize]| -> Result<Vec<usize>> {
            cols.iter()
                .map(|&i| {
                    let name = options.schema.field(i).name();
                    find(name).ok_or_else(|| {
                        EngineError::Internal(format!(
                            "kafka sink: column '{name}' is not in the input"
                        ))
                    })
                })
                .collect()
        };
        let key_columns = names(&options.key_columns)?;
        let value_columns = names(&options.value_columns)?;
        let timestamp_column = options
            .schema
            .fields()
            .iter()
            .find(|f| metadata_key(f) == Some("timestamp"))
            .and_then(|f| find(f.name()));
        let marker_group = format!(
            "{}-marker-{}",
            options.transactional_id_prefix.as_deref().unwrap_or("weir"),
            ctx.subtask
        );
        let mut writer = Self {
            options,
            topic,
            subtask: ctx.subtask,
            partitions: 0,
            round_robin: ctx.subtask as i32,
            plain: None,
            slots: (0..POOL).map(|_| None).collect(),
            open: None,
            pending: Vec::new(),
            marker_group,
            marker: None,
            key_columns,
            value_columns,
            timestamp_column,
        };
        writer.partitions = writer.partition_count()?;
        if writer.options.delivery != DeliveryGuarantee::ExactlyOnce {
            writer.plain = Some(writer.producer(None)?);
        }
        Ok(writer)
    }

    fn producer(&self, transactional_id: Option<&str>) -> Result<Slot> {
        let context = DeliveryContext::default();
        let acks = match self.options.delivery {
            DeliveryGuarantee::None => "1",
            _ => "all",
        };
        let mut extra: Vec<(&str, &str)> = vec![("acks", acks)];
        if let Some(id) = transactional_id {
            extra.push(("transactional.id", id));
        }
        let mut config = self.options.client_config(&extra);
        if transactional_id.is_some()
            && !self
                .options
                .properties
                .contains_key("transaction.timeout.ms")
        {
            // Kafka's largest default: a checkpoint may take long.
            config.set("transaction.timeout.ms", "900000");
        }
        let producer: BaseProducer<DeliveryContext> =
            config
                .create_with_context(context.clone())
                .map_err(|e| client_error(&self.options, "creating the producer", e))?;
        if transactional_id.is_some() {
            producer
                .init_transactions(METADATA_TIMEOUT)
                .map_err(|e| client_error(&self.options, "initializing transactions", e))?;
        }
        Ok(Slot { producer, context })
    }

    fn partition_count(&self) -> Result<i32> {
        let probe: BaseConsumer = self
            .options
            .client_config(&[])
            .create()
            .map_err(|e| client_error(&self.options, "creating a metadata client", e))?;
        let md = probe
            .fetch_metadata(Some(&self.topic), METADATA_TIMEOUT)
            .map_err(|e| client_error(&self.options, "reading the topic's metadata", e))?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == self.topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .unwrap_or(0);
        if n == 0 {
            return Err(EngineError::External(format!(
                "kafka: topic '{}' does not exist on {}",
                self.topic,
                self.options.servers()
            )));
        }
        Ok(n)
    }

    fn transactional_id(&self, subtask: usize, slot: usize) -> String {
        format!(
            "{}-{subtask}-{slot}",
            self.options
                .transactional_id_prefix
                .as_deref()
                .unwrap_or("weir")
        )
    }

    fn marker_consumer(&mut self, group: &str) -> Result<BaseConsumer> {
        self.options
            .client_config(&[("group.id", group), ("enable.auto.commit", "false")])
            .create()
            .map_err(|e| client_error(&self.options, "creating the marker client", e))
    }

    /// The slot whose transaction takes rows, opening one when needed.
    fn open_slot(&mut self) -> Result<usize> {
        if let Some(s) = self.open {
            return Ok(s);
        }
        let busy: Vec<usize> = self.pending.iter().map(|(s, _)| *s).collect();
        let slot = (0..POOL).find(|s| !busy.contains(s)).ok_or_else(|| {
            EngineError::Checkpoint(format!(
                "kafka sink: {POOL} transactions are waiting for checkpoints that have not completed"
            ))
        })?;
        if self.slots[slot].is_none() {
            let id = self.transactional_id(self.subtask, slot);
            self.slots[slot] = Some(self.producer(Some(&id))?);
        }
        let s = self.slots[slot]
            .as_ref()
            .ok_or_else(|| EngineError::Internal("kafka sink: no producer".into()))?;
        s.producer
            .begin_transaction()
            .map_err(|e| client_error(&self.options, "beginning a transaction", e))?;
        self.open = Some(slot);
        Ok(slot)
    }

    fn current(&mut self) -> Result<&Slot> {
        match self.options.delivery {
            DeliveryGuarantee::ExactlyOnce => {
                let slot = self.open_slot()?;
                self.slots[slot]
                    .as_ref()
                    .ok_or_else(|| EngineError::Internal("kafka sink: no producer".into()))
            }
            _ => self
                .plain
                .as_ref()
                .ok_or_else(|| EngineError::Internal("kafka sink: no producer".into())),
        }
    }

    /// Waits until every record sent is acknowledged, or fails.
    fn flush(&self, slot: &Slot) -> Result<()> {
        slot.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| client_error(&self.options, "flushing records", e))?;
        if let Some(e) = slot.context.failure() {
            return Err(EngineError::External(format!(
                "kafka: writing to topic '{}' on {} failed: {e}",
                self.topic,
                self.options.servers()
            )));
        }
        Ok(())
    }

    /// Commits pending transactions of checkpoints up to `checkpoint`, each
    /// with its marker.
    fn commit_up_to(&mut self, checkpoint: u64) -> Result<()> {
        while let Some((slot, txn)) = self.pending.first().cloned() {
            if txn.checkpoint > checkpoint {
                break;
            }
            let group = self.marker_group.clone();
            if self.marker.is_none() {
                self.marker = Some(self.marker_consumer(&group)?);
            }
            let s = self.slots[slot]
                .as_ref()
                .ok_or_else(|| EngineError::Internal("kafka sink: no producer".into()))?;
            let marker = self
                .marker
                .as_ref()
                .and_then(|m| m.group_metadata())
                .ok_or_else(|| {
                    EngineError::Internal("kafka sink: no group metadata for the marker".into())
                })?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&self.topic, 0, Offset::Offset(txn.checkpoint as i64))
                .map_err(|e| client_error(&self.options, "marking the transaction", e))?;
            s.producer
                .send_offsets_to_transaction(&tpl, &marker, METADATA_TIMEOUT)
                .map_err(|e| client_error(&self.options, "marking the transaction", e))?;
            s.producer
                .commit_transaction(FLUSH_TIMEOUT)
                .map_err(|e| client_error(&self.options, "committing the transaction", e))?;
            self.pending.remove(0);
        }
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(SinkState {
            subtask: self.subtask,
            marker_group: self.marker_group.clone(),
            pending: self.pending.iter().map(|(_, t)| t.clone()).collect(),
        })
        .unwrap_or_default()
    }

    /// The last checkpoint whose transaction `group` marks as committed.
    fn marked(&mut self, group: &str) -> Result<Option<u64>> {
        let consumer = self.marker_consumer(group)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, 0);
        let got = consumer
            .committed_offsets(tpl, METADATA_TIMEOUT)
            .map_err(|e| client_error(&self.options, "reading the transaction marker", e))?;
        Ok(got
            .find_partition(&self.topic, 0)
            .and_then(|e| e.offset().to_raw())
            .filter(|o| *o >= 0)
            .map(|o| o as u64))
    }

    /// Writes again the records of a pre-committed transaction that was not
    /// committed (read back from the log, where they stay aborted), in a
    /// transaction committed with `group`'s marker.
    fn replay(&mut self, txn: &PendingTxn, group: &str) -> Result<()> {
        let reader: BaseConsumer = self
            .options
            .client_config(&[
                ("group.id", "weir-sink-recovery"),
                ("enable.auto.commit", "false"),
                ("isolation.level", "read_uncommitted"),
                ("enable.partition.eof", "true"),
            ])
            .create()
            .map_err(|e| client_error(&self.options, "creating the recovery reader", e))?;
        let slot = self.open_slot()?;
        let mut copied = 0usize;
        for (partition, ranges) in &txn.ranges {
            for &(first, last) in ranges {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&self.topic, *partition, Offset::Offset(first))
                    .map_err(|e| client_error(&self.options, "recovering a transaction", e))?;
                reader
                    .assign(&tpl)
                    .map_err(|e| client_error(&self.options, "recovering a transaction", e))?;
                let deadline = Instant::now() + FLUSH_TIMEOUT;
                let mut at = first;
                while at <= last {
                    if Instant::now() > deadline {
                        return Err(EngineError::External(format!(
                            "kafka: recovering transaction '{}' of checkpoint {}: records {at}..={last} of {}-{partition} could not be read back",
                            txn.transactional_id, txn.checkpoint, self.topic
                        )));
                    }
                    match reader.poll(Duration::from_millis(200)) {
                        Some(Ok(m)) => {
                            if m.offset() < at {
                                continue;
                            }
                            if m.offset() > last {
                                break;
                            }
                            at = m.offset() + 1;
                            let mut record: BaseRecord<'_, [u8], [u8], ()> =
                                BaseRecord::to(&self.topic).partition(*partition);
                            if let Some(k) = m.key() {
                                record = record.key(k);
                            }
                            if let Some(v) = m.payload() {
                                record = record.payload(v);
                            }
                            if let Some(ts) = m.timestamp().to_millis() {
                                record = record.timestamp(ts);
                            }
                            let s = self.slots[slot].as_ref().ok_or_else(|| {
                                EngineError::Internal("kafka sink: no producer".into())
                            })?;
                            send(&s.producer, record)?;
                            copied += 1;
                        }
                        Some(Err(KafkaError::PartitionEOF(_))) if at <= last => {
                            return Err(EngineError::External(format!(
                                "kafka: recovering transaction '{}' of checkpoint {}: records {at}..={last} of {}-{partition} are no longer in the log (retention?)",
                                txn.transactional_id, txn.checkpoint, self.topic
                            )));
                        }
                        Some(Err(KafkaError::PartitionEOF(_))) => {}
                        Some(Err(e)) => {
                            return Err(client_error(&self.options, "recovering a transaction", e))
                        }
                        None => {}
                    }
                }
            }
        }
        let s = self.slots[slot]
            .as_ref()
            .ok_or_else(|| EngineError::Internal("kafka sink: no producer".into()))?;
        self.flush(s)?;
        s.context.take();
        self.open = None;
        tracing::info!(
            checkpoint = txn.checkpoint,
            transactional_id = %txn.transactional_id,
            records = copied,
            "kafka sink: wrote again the rows of a pre-committed transaction that was not committed"
        );
        // Committed together with the marker of the group that owns it.
        let own = std::mem::replace(&mut self.marker_group, group.to_string());
        let saved_marker = self.marker.take();
        self.pending.insert(
            0,
            (
                slot,
                PendingTxn {
                    checkpoint: txn.checkpoint,
                    transactional_id: self.transactional_id(self.subtask, slot),
                    ranges: BTreeMap::new(),
                },
            ),
        );
        let result = self.commit_up_to(txn.checkpoint);
        self.marker_group = own;
        self.marker = saved_marker;
        result
    }
}

/// Sends one record, waiting while the producer's queue is full.
fn send(
    producer: &BaseProducer<DeliveryContext>,
    mut record: BaseRecord<'_, [u8], [u8], ()>,
) -> Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => {
                return Err(EngineError::External(format!(
                    "kafka: producing a record: {e}"
                )))
            }
        }
    }
}

impl SinkWriter for KafkaWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let (data, ops) = split_changes(batch);
        let upsert = self.options.connector == "upsert-kafka";
        let kind = |row: usize| {
            ops.as_ref()
                .map_or(ChangeKind::Insert, |o| ChangeKind::from_i8(o.value(row)))
        };
        if !upsert && (0..data.num_rows()).any(|r| kind(r) != ChangeKind::Insert) {
            return Err(EngineError::Internal(
                "kafka sink: an updating stream reached an append-only sink".into(),
            ));
        }
        let values = self
            .options
            .value_format
            .encode(&data.project(&self.value_columns)?)?;
        let keys = match &self.options.key_format {
            Some(f) => Some(f.encode(&data.project(&self.key_columns)?)?),
            None => None,
        };
        let timestamps = match self.timestamp_column {
            Some(i) => {
                let t = cast(
                    data.column(i),
                    &DataType::Timestamp(TimeUnit::Millisecond, None),
                )?;
                t.as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .cloned()
            }
            None => None,
        };
        let partitioner = self.options.partitioner;
        let partitions = self.partitions;
        let subtask = self.subtask as i32;
        let mut round_robin = self.round_robin;
        let topic = self.topic.clone();
        let slot = self.current()?;
        for (row, value) in values.iter().enumerate() {
            let mut record: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(&topic);
            // upsert-kafka: the latest row per key, a delete a tombstone;
            // the row an update replaces needs no message.
            match kind(row) {
                ChangeKind::UpdateBefore => continue,
                ChangeKind::Delete if upsert => {}
                _ => record = record.payload(value.as_slice()),
            }
            if let Some(keys) = &keys {
                record = record.key(keys[row].as_slice());
            }
            match partitioner {
                Partitioner::Default => {}
                Partitioner::Fixed => record = record.partition(subtask % partitions),
                Partitioner::RoundRobin => {
                    record = record.partition(round_robin.rem_euclid(partitions));
                    round_robin = round_robin.wrapping_add(1);
                }
            }
            if let Some(ts) = &timestamps {
                if ts.is_valid(row) {
                    record = record.timestamp(ts.value(row));
                }
            }
            send(&slot.producer, record)?;
        }
        slot.producer.poll(Duration::ZERO);
        if let Some(e) = slot.context.failure() {
            return Err(EngineError::External(format!(
                "kafka: writing to topic '{}' on {} failed: {e}",
                topic,
                self.options.servers()
            )));
        }
        self.round_robin = round_robin;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(p) = &self.plain {
            self.flush(p)?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<serde_json::Value> {
        match self.options.delivery {
            DeliveryGuarantee::None => Ok(serde_json::Value::Null),
            DeliveryGuarantee::AtLeastOnce => {
                if let Some(p) = &self.plain {
                    self.flush(p)?;
                }
                Ok(serde_json::Value::Null)
            }
            DeliveryGuarantee::ExactlyOnce => {
                if let Some(slot) = self.open.take() {
                    let s = self.slots[slot]
                        .as_ref()
                        .ok_or_else(|| EngineError::Internal("kafka sink: no producer".into()))?;
                    self.flush(s)?;
                    let ranges = s.context.take().ranges;
                    let transactional_id = self.transactional_id(self.subtask, slot);
                    self.pending.push((
                        slot,
                        PendingTxn {
                            checkpoint,
                            transactional_id,
                            ranges,
                        },
                    ));
                }
                Ok(self.state())
            }
        }
    }

    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        if self.options.delivery == DeliveryGuarantee::ExactlyOnce {
            self.commit_up_to(checkpoint)?;
        }
        Ok(())
    }

    fn recover(&mut self, states: &[serde_json::Value]) -> Result<()> {
        if self.options.delivery != DeliveryGuarantee::ExactlyOnce {
            return Ok(());
        }
        // Fence the pool: whatever a dead attempt left open is aborted.
        for slot in 0..POOL {
            let id = self.transactional_id(self.subtask, slot);
            self.slots[slot] = Some(self.producer(Some(&id))?);
        }
        let mut restored: Vec<SinkState> = Vec::new();
        for s in states {
            let state: SinkState = serde_json::from_value(s.clone())
                .map_err(|e| EngineError::Checkpoint(format!("kafka sink state: {e}")))?;
            restored.push(state);
        }
        // The pools of the old subtasks whose state this one restores (a
        // rescaled restore) are fenced too.
        for state in &restored {
            if state.subtask != self.subtask {
                for slot in 0..POOL {
                    let id = self.transactional_id(state.subtask, slot);
                    drop(self.producer(Some(&id))?);
                }
            }
        }
        for state in restored {
            let marked = self.marked(&state.marker_group)?;
            for txn in &state.pending {
                if marked.is_some_and(|m| m >= txn.checkpoint) {
                    continue;
                }
                self.replay(txn, &state.marker_group)?;
            }
        }
        Ok(())
    }
}
