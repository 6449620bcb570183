//! Streaming joins of two inputs.
//!
//! - [`regular`]: equality keys (plus any residual condition) over
//!   insert-only or updating inputs: both sides' rows stay in state keyed by
//!   the join key, bounded by `table.exec.state.ttl`; inner, outer, semi and
//!   anti, as Flink's `StreamingJoinOperator` and `StreamingSemiAntiJoinOperator`.
//! - [`interval`]: equality keys plus bounds on the distance between the two
//!   sides' time attributes; rows leave the state as time passes. Window
//!   joins run on it too.
//! - [`temporal`]: `FOR SYSTEM_TIME AS OF`: each left row joins the version
//!   of a versioned table valid at its event time, or the rows of a table
//!   read into state when it arrives (processing time, a lookup).
//!
//! Every join reads its two inputs hash-partitioned by the join key, so the
//! rows of one key meet in one subtask, and keeps its state in the keyed
//! batch layer ([`super::batch_state`]), key group first: it is restored,
//! rescaled and moved between backends like every keyed state.

use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, UInt32Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{
    DataType, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;
use weir_state::codec::{get_varint, put_varint};

use crate::error::{EngineError, Result};
use crate::message::ChangeKind;

pub mod interval;
pub mod regular;
pub mod temporal;

/// Which rows a join emits, as SQL's join types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    /// Pairs that match.
    Inner,
    /// Pairs that match, and left rows without a match padded with nulls.
    Left,
    /// Pairs that match, and right rows without a match padded with nulls.
    Right,
    /// Pairs that match, and rows of either side without one, padded.
    Full,
    /// Left rows that have a match (`IN`, `EXISTS`), each once.
    LeftSemi,
    /// Left rows that have no match (`NOT IN`, `NOT EXISTS`).
    LeftAnti,
    /// Right rows that have a match.
    RightSemi,
    /// Right rows that have no match.
    RightAnti,
}

/// The left input.
pub const LEFT: usize = 0;
/// The right input.
pub const RIGHT: usize = 1;

impl JoinKind {
    /// Whether side `side` ([`LEFT`], [`RIGHT`]) emits its unmatched rows,
    /// padded with nulls for the other side's columns.
    pub fn pads(self, side: usize) -> bool {
        match self {
            JoinKind::Left => side == LEFT,
            JoinKind::Right => side == RIGHT,
            JoinKind::Full => true,
            _ => false,
        }
    }

    /// For semi and anti joins, the side whose rows are the output.
    pub fn output_side(self) -> Option<usize> {
        match self {
            JoinKind::LeftSemi | JoinKind::LeftAnti => Some(LEFT),
            JoinKind::RightSemi | JoinKind::RightAnti => Some(RIGHT),
            _ => None,
        }
    }

    /// Whether rows are emitted for having no match.
    pub fn is_anti(self) -> bool {
        matches!(self, JoinKind::LeftAnti | JoinKind::RightAnti)
    }

    /// Whether a side's stored rows count their matches on the other side
    /// (needed to know when a padded row or a semi/anti row changes).
    pub fn counts_matches(self, side: usize) -> bool {
        self.pads(side) || self.output_side() == Some(side)
    }

    /// Whether a row of `side` that never found a match is emitted in the
    /// end (when it can no longer find one): padded with nulls by an outer
    /// join, as it is by an anti join whose output side it is.
    pub fn emits_unmatched(self, side: usize) -> bool {
        self.pads(side) || (self.is_anti() && self.output_side() == Some(side))
    }

    /// Whether the join of two insert-only inputs is insert-only: no row it
    /// emits is ever taken back. Outer and anti joins take back the rows
    /// they emitted for a missing match when one arrives.
    pub fn insert_only_over_inserts(self) -> bool {
        matches!(
            self,
            JoinKind::Inner | JoinKind::LeftSemi | JoinKind::RightSemi
        )
    }

    /// The name `EXPLAIN` shows (Flink's).
    pub fn name(self) -> &'static str {
        match self {
            JoinKind::Inner => "InnerJoin",
            JoinKind::Left => "LeftOuterJoin",
            JoinKind::Right => "RightOuterJoin",
            JoinKind::Full => "FullOuterJoin",
            JoinKind::LeftSemi => "LeftSemiJoin",
            JoinKind::LeftAnti => "LeftAntiJoin",
            JoinKind::RightSemi => "RightSemiJoin",
            JoinKind::RightAnti => "RightAntiJoin",
        }
    }
}

pub(crate) fn column_types(schema: &Schema) -> Vec<DataType> {
    schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect()
}

/// What a batch emits, in order: each row refers to a row of the batch
/// and/or a candidate of the other side (none: nulls).
#[derive(Default)]
pub(crate) struct Emitted {
    pub(crate) this: Vec<Option<u32>>,
    pub(crate) other: Vec<Option<u32>>,
    pub(crate) ops: Vec<i8>,
}

impl Emitted {
    pub(crate) fn push(
        &mut self,
        this: Option<usize>,
        other: Option<usize>,
        insert: bool,
        copies: u64,
    ) {
        let kind = if insert {
            ChangeKind::Insert
        } else {
            ChangeKind::Delete
        } as i8;
        for _ in 0..copies {
            self.this.push(this.map(|i| i as u32));
            self.other.push(other.map(|i| i as u32));
            self.ops.push(kind);
        }
    }
}

pub(crate) fn decode_entry(mut value: &[u8]) -> Result<(u64, u64)> {
    let damaged =
        |_| EngineError::State("a join state entry does not decode (damaged state)".into());
    let copies = get_varint(&mut value).map_err(damaged)?;
    let matches = get_varint(&mut value).map_err(damaged)?;
    Ok((copies, matches))
}

pub(crate) fn encode_entry(copies: u64, matches: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(4);
    put_varint(&mut v, copies);
    put_varint(&mut v, matches);
    v
}

/// `[key group][varint key length][key]`: a prefix no other key's starts with.
pub(crate) fn key_prefix(group: u16, key: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(key.len() + 4);
    p.extend_from_slice(&group.to_be_bytes());
    put_varint(&mut p, key.len() as u64);
    p.extend_from_slice(key);
    p
}

/// `columns` taken at `indices`; a null index gives a null row. Columns
/// of no rows (no candidate at all) give nulls of their type.
pub(crate) fn take_rows(
    columns: &[ArrayRef],
    types: &[DataType],
    indices: &UInt32Array,
) -> Result<Vec<ArrayRef>> {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| match columns.get(i) {
            Some(c) if !c.is_empty() => Ok(take(c.as_ref(), indices, None)?),
            _ => Ok(new_null_array(t, indices.len())),
        })
        .collect()
}

/// A column of times (a time attribute) as milliseconds, nulls kept.
pub(crate) fn millis(
    column: &ArrayRef,
) -> Result<datafusion::arrow::array::PrimitiveArray<TimestampMillisecondType>> {
    let ms = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    Ok(ms.as_primitive::<TimestampMillisecondType>().clone())
}

/// An error unless `input` is one of a join's two inputs.
pub(crate) fn check_input(input: usize) -> Result<()> {
    if input > RIGHT {
        return Err(EngineError::Internal(format!(
            "a join has two inputs, got a batch on input {input}"
        )));
    }
    Ok(())
}

/// The join key columns of a batch, and the null masks of its key columns
/// (empty when NULL keys match each other).
pub(crate) fn key_columns(
    keys: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
    nulls_equal: bool,
) -> Result<(Vec<ArrayRef>, Vec<NullBuffer>)> {
    let n = batch.num_rows();
    let columns = keys
        .iter()
        .map(|e| Ok(e.evaluate(batch)?.into_array(n)?))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let nulls = if nulls_equal {
        Vec::new()
    } else {
        columns.iter().filter_map(|k| k.logical_nulls()).collect()
    };
    Ok((columns, nulls))
}

/// A left row's columns followed by a right row's, from this side's and
/// the other side's columns.
pub(crate) fn left_then_right(
    this: usize,
    this_cols: Vec<ArrayRef>,
    other_cols: Vec<ArrayRef>,
) -> Vec<ArrayRef> {
    if this == LEFT {
        [this_cols, other_cols].concat()
    } else {
        [other_cols, this_cols].concat()
    }
}

/// The pairs a residual condition is evaluated over: rows of this side's
/// batch and stored rows of the other side, by index.
pub(crate) struct Pairs<'a> {
    /// Which side the batch is.
    pub this: usize,
    /// The batch's columns and types.
    pub this_rows: (&'a [ArrayRef], &'a [DataType]),
    /// The other side's candidate rows, decoded, and their types.
    pub other_rows: (&'a [ArrayRef], &'a [DataType]),
    /// Row of the batch, per pair.
    pub at_this: &'a [u32],
    /// Candidate, per pair.
    pub at_other: &'a [u32],
}

/// Evaluates `filter` over every pair at once; `None` when there is no
/// filter (every pair passes) or no pair.
pub(crate) fn pair_mask(
    filter: Option<&Arc<dyn PhysicalExpr>>,
    pair_schema: &SchemaRef,
    pairs: Pairs<'_>,
) -> Result<Option<BooleanArray>> {
    let count = pairs.at_this.len();
    let Some(filter) = filter.filter(|_| count > 0) else {
        return Ok(None);
    };
    let this_cols = take_rows(
        pairs.this_rows.0,
        pairs.this_rows.1,
        &UInt32Array::from(pairs.at_this.to_vec()),
    )?;
    let other_cols = take_rows(
        pairs.other_rows.0,
        pairs.other_rows.1,
        &UInt32Array::from(pairs.at_other.to_vec()),
    )?;
    let batch = RecordBatch::try_new_with_options(
        pair_schema.clone(),
        left_then_right(pairs.this, this_cols, other_cols),
        &RecordBatchOptions::new().with_row_count(Some(count)),
    )?;
    let value = filter.evaluate(&batch)?.into_array(count)?;
    Ok(Some(value.as_boolean_opt().cloned().ok_or_else(|| {
        EngineError::Internal("a join condition that is not boolean".into())
    })?))
}

/// Whether pair `pair` passes the residual condition.
pub(crate) fn passes(mask: Option<&BooleanArray>, pair: usize) -> bool {
    mask.is_none_or(|m| m.is_valid(pair) && m.value(pair))
}

/// `name type, …` of a schema, for state signatures.
pub(crate) fn typed_columns(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fields of a left row followed by a right row's.
pub(crate) fn pair_schema(inputs: &[SchemaRef; 2]) -> SchemaRef {
    let mut fields: Vec<_> = inputs[LEFT].fields().iter().cloned().collect();
    fields.extend(inputs[RIGHT].fields().iter().cloned());
    Arc::new(Schema::new(fields))
}

/// What the joins' unit tests share: a subtask context over a fresh backend.
#[cfg(test)]
pub(crate) mod test_support {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use weir_state::BackendConfig;

    use crate::config::StateSettings;
    use crate::metrics::NodeMetrics;
    use crate::operators::{OperatorFactory, StateHandle, TaskContext};

    /// Subtask 0 of 1 (128 key groups) with a backend made from `config`
    /// and `factory`'s states registered, as the runtime would.
    pub(crate) fn task_context(
        factory: &dyn OperatorFactory,
        config: BackendConfig,
    ) -> TaskContext {
        let settings = StateSettings {
            backend: config.clone(),
            ttl: None,
            cache_entries: usize::MAX,
        };
        let mut state = config.create("join-test").unwrap();
        for d in factory.states(&settings) {
            state.register(&d).unwrap();
        }
        TaskContext {
            subtask: 0,
            parallelism: 1,
            max_parallelism: 128,
            batch_size: 1024,
            metrics: Arc::new(NodeMetrics::default()),
            job_id: "t".into(),
            node: 0,
            state: Arc::new(settings),
            backend: Some(StateHandle::new(state)),
            operator_state: Vec::new(),
            checkpointing: false,
        }
    }
}
