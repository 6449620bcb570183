//! Temporal joins (`JOIN t FOR SYSTEM_TIME AS OF l.time`): each left row
//! joins the right side *as it was* at the left row's time.
//!
//! - **Event time** ([`TemporalTime::Event`]): the right side is a versioned
//!   table (a primary key and an event-time attribute, insert-only or a
//!   changelog), kept as versions by key and time,
//!
//!   ```text
//!   [key group u16][varint key length][key][time, order-preserving 8 bytes]  →  [1][row] | [0] (deleted)
//!   ```
//!
//!   A left row waits in state (`[key group][key][time][row] → copies`) until
//!   the watermark — the minimum of both inputs' — passes its time, so every
//!   version up to that time has arrived; then it joins the latest version
//!   of its key at or before its time (none, or a deletion: no match; a
//!   `LEFT` join emits it padded with nulls). Versions older than the last
//!   one before the watermark can match no row any more and are deleted, so
//!   the state holds the current version per key plus what is newer than
//!   the watermark. The output is insert-only, emitted before the watermark
//!   that made it due, so it is never late downstream (Flink's
//!   `TemporalRowTimeJoinOperator`).
//! - **Processing time** ([`TemporalTime::Processing`]): the right side is
//!   read into state (`[key group][key][row] → copies`, retractions taken
//!   out) and each left row joins the rows of its key there when it
//!   arrives, as a lookup would. When the right side is bounded (a
//!   `filesystem` table), left rows that arrive before it has been read to
//!   its end wait in state, so every left row sees the whole table, as
//!   Flink's lookup join against a file does. Insert-only output.
//!
//! Both kinds are `INNER` or `LEFT`, as in Flink.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt32Array};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimestampMillisecondType};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;
use weir_state::{Scan, StateDescriptor, StateKind};

use super::{
    check_input, column_types, decode_entry, encode_entry, key_columns, key_prefix,
    left_then_right, millis, pair_mask, pair_schema, passes, take_rows, typed_columns, Emitted,
    JoinKind, Pairs, LEFT, RIGHT,
};
use crate::config::StateSettings;
use crate::error::{EngineError, Result};
use crate::message::{split_changes, ChangeKind};
use crate::operators::batch_state::{time_bytes, time_from_bytes, KeyedBatchState};
use crate::operators::row_codec::RowCodec;
use crate::operators::{
    Operator, OperatorContext, OperatorFactory, TaskContext, TimeDomain, Timer,
};

/// Which time a temporal join looks the right side up at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemporalTime {
    /// The version valid at the left row's event time.
    Event {
        /// The left input's time attribute (its column index).
        left: usize,
        /// The versioned table's time attribute, which each version is valid from.
        right: usize,
    },
    /// The right rows in state when the left row arrives.
    Processing {
        /// Whether left rows wait until the (bounded) right input has been
        /// read whole (its end-of-time watermark).
        wait_for_right: bool,
    },
}

/// Planner output for a temporal join.
#[derive(Clone)]
pub struct TemporalJoinSpec {
    /// [`JoinKind::Inner`] or [`JoinKind::Left`].
    pub kind: JoinKind,
    /// The join key of each side (same types); on event time, the right
    /// side's key is its primary key.
    pub keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    /// Whether NULL keys match each other.
    pub nulls_equal: bool,
    /// The rest of the condition, over a left row's columns followed by a
    /// right row's.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// Each input's schema, without the op column.
    pub inputs: [SchemaRef; 2],
    /// The output schema (insert-only).
    pub output_schema: SchemaRef,
    /// Event or processing time.
    pub time: TemporalTime,
    /// The equality condition, for `EXPLAIN`.
    pub condition: String,
    /// The residual condition, for `EXPLAIN`.
    pub residual: Option<String>,
}

const EVENT_STATES: [&str; 2] = ["temporal-join-left", "temporal-join-versions"];
const LOOKUP_STATES: [&str; 2] = ["lookup-join-waiting", "lookup-join-right"];

impl TemporalJoinSpec {
    fn state_names(&self) -> [&'static str; 2] {
        match self.time {
            TemporalTime::Event { .. } => EVENT_STATES,
            TemporalTime::Processing { .. } => LOOKUP_STATES,
        }
    }
}

impl OperatorFactory for TemporalJoinSpec {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        if !matches!(self.kind, JoinKind::Inner | JoinKind::Left) {
            return Err(EngineError::Internal(format!(
                "a temporal join is inner or left, not {}",
                self.kind.name()
            )));
        }
        let key_types: Vec<DataType> = self.keys[LEFT]
            .iter()
            .map(|k| Ok(k.data_type(&self.inputs[LEFT])?))
            .collect::<Result<_>>()?;
        let names = self.state_names();
        let state =
            |s: usize| KeyedBatchState::open(&StateDescriptor::new(names[s], StateKind::Raw), ctx);
        Ok(Box::new(TemporalJoinOperator {
            spec: self.clone(),
            states: [state(0)?, state(1)?],
            keys: RowCodec::new(&key_types)?,
            rows: [
                RowCodec::new(&column_types(&self.inputs[LEFT]))?,
                RowCodec::new(&column_types(&self.inputs[RIGHT]))?,
            ],
            pair_schema: pair_schema(&self.inputs),
            due: HashMap::new(),
            right_ended: false,
        }))
    }

    fn describe(&self) -> String {
        let residual = self
            .residual
            .as_ref()
            .map(|r| format!(", where=[{r}]"))
            .unwrap_or_default();
        let name = |s: usize, i: usize| self.inputs[s].field(i).name().clone();
        match self.time {
            TemporalTime::Event { left, right } => format!(
                "TemporalJoin(joinType=[{}], on=[{}]{residual}, time=[event time: left {}, versions by {}])",
                self.kind.name(),
                self.condition,
                name(LEFT, left),
                name(RIGHT, right),
            ),
            TemporalTime::Processing { wait_for_right } => format!(
                "LookupJoin(joinType=[{}], on=[{}]{residual}, time=[processing time], right=[read into state{}])",
                self.kind.name(),
                self.condition,
                if wait_for_right {
                    ", bounded: left rows wait for its end"
                } else {
                    ""
                },
            ),
        }
    }

    fn kind(&self) -> &'static str {
        match self.time {
            TemporalTime::Event { .. } => "TemporalJoin",
            TemporalTime::Processing { .. } => "LookupJoin",
        }
    }

    fn states(&self, _settings: &StateSettings) -> Vec<StateDescriptor> {
        self.state_names()
            .iter()
            .map(|n| StateDescriptor::new(*n, StateKind::Raw))
            .collect()
    }

    fn uses_timers(&self) -> bool {
        matches!(self.time, TemporalTime::Event { .. })
    }

    fn is_stateful(&self) -> bool {
        true
    }

    fn state_signature(&self) -> Option<Vec<(String, String)>> {
        let keys = self.keys[LEFT]
            .iter()
            .map(|k| {
                k.data_type(&self.inputs[LEFT])
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(", ");
        Some(vec![
            ("join type".into(), self.kind.name().into()),
            ("join key".into(), keys),
            ("left row".into(), typed_columns(&self.inputs[LEFT])),
            ("right row".into(), typed_columns(&self.inputs[RIGHT])),
        ])
    }
}

/// Runs a [`TemporalJoinSpec`] in one subtask.
pub struct TemporalJoinOperator {
    spec: TemporalJoinSpec,
    /// Event time: waiting left rows, versions. Processing time: waiting
    /// left rows, the right side's rows.
    states: [KeyedBatchState; 2],
    keys: RowCodec,
    rows: [RowCodec; 2],
    pair_schema: SchemaRef,
    /// Event time: the keys whose timers fired at this watermark (joined in
    /// `on_timers_fired`), with the latest time due (`[key group][varint length][key]` → time).
    due: HashMap<Vec<u8>, i64>,
    /// Processing time: whether the right input has been read whole.
    right_ended: bool,
}

/// The time that follows `[key group][varint length][key]` in an address.
fn time_at(address: &[u8], at: usize) -> Result<i64> {
    address
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(time_from_bytes)
        .ok_or_else(|| {
            EngineError::State("a temporal join entry without its time (damaged state)".into())
        })
}

/// Adds `delta` copies to each address (one multi-get, one sorted write;
/// an entry left with no copy is deleted).
fn add_copies(state: &mut KeyedBatchState, deltas: BTreeMap<Vec<u8>, i64>) -> Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let refs: Vec<&[u8]> = deltas.keys().map(|a| a.as_slice()).collect();
    let stored = state.multi_get(&refs)?;
    let mut changes: Vec<weir_state::Change> = Vec::with_capacity(deltas.len());
    for ((address, delta), stored) in deltas.into_iter().zip(stored) {
        let copies = match stored {
            Some(v) => decode_entry(&v)?.0,
            None => 0,
        };
        let copies = (copies as i64).saturating_add(delta).max(0) as u64;
        let value = (copies > 0).then(|| encode_entry(copies, 0));
        changes.push((address, value));
    }
    state.write(changes)
}

impl TemporalJoinOperator {
    /// Per row of a batch of `side`, its `[key group][key]` prefix (none for
    /// a NULL key, or a NULL time on event time).
    fn prefixes(
        &mut self,
        side: usize,
        rows: &RecordBatch,
        times: Option<&datafusion::arrow::array::PrimitiveArray<TimestampMillisecondType>>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let n = rows.num_rows();
        let (keys, nulls) = key_columns(&self.spec.keys[side], rows, self.spec.nulls_equal)?;
        let groups = self.states[0].key_groups(&keys, n)?;
        let key_rows = self.keys.encode(&keys, n)?;
        Ok((0..n)
            .map(|i| {
                (nulls.iter().all(|b| b.is_valid(i)) && times.is_none_or(|t| t.is_valid(i)))
                    .then(|| key_prefix(groups[i], key_rows.row(i)))
            })
            .collect())
    }

    /// Emits left rows joined with right rows: `pairs` are (left row,
    /// right row) candidates; each left row `i` is emitted `copies[i]`
    /// times, with each candidate that passes the residual condition, or
    /// padded (a `LEFT` join) when none does.
    fn emit_pairs(
        &self,
        left: &[ArrayRef],
        copies: &[u64],
        right: &[ArrayRef],
        pairs: (&[u32], &[u32]),
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        let left_types = column_types(&self.spec.inputs[LEFT]);
        let right_types = column_types(&self.spec.inputs[RIGHT]);
        let pass = pair_mask(
            self.spec.filter.as_ref(),
            &self.pair_schema,
            Pairs {
                this: LEFT,
                this_rows: (left, &left_types),
                other_rows: (right, &right_types),
                at_this: pairs.0,
                at_other: pairs.1,
            },
        )?;
        let mut out = Emitted::default();
        let mut p = 0;
        for (i, copies) in copies.iter().enumerate() {
            let mut matched = false;
            while p < pairs.0.len() && pairs.0[p] as usize == i {
                if passes(pass.as_ref(), p) {
                    out.push(Some(i), Some(pairs.1[p] as usize), true, *copies);
                    matched = true;
                }
                p += 1;
            }
            if !matched && self.spec.kind == JoinKind::Left {
                out.push(Some(i), None, true, *copies);
            }
        }
        if out.ops.is_empty() {
            return Ok(());
        }
        let len = out.ops.len();
        let left_cols = take_rows(left, &left_types, &UInt32Array::from(out.this))?;
        let right_cols = take_rows(right, &right_types, &UInt32Array::from(out.other))?;
        ctx.emit(RecordBatch::try_new_with_options(
            self.spec.output_schema.clone(),
            left_then_right(LEFT, left_cols, right_cols),
            &RecordBatchOptions::new().with_row_count(Some(len)),
        )?);
        Ok(())
    }

    // ----- event time -----

    fn buffer_left(
        &mut self,
        batch: &RecordBatch,
        time: usize,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        let n = batch.num_rows();
        let times = millis(batch.column(time))?;
        let prefixes = self.prefixes(LEFT, batch, Some(&times))?;
        let row_rows = self.rows[LEFT].encode(batch.columns(), n)?;
        let mut deltas: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        let mut unmatched: Vec<u64> = Vec::new();
        let mut unmatched_rows: Vec<u32> = Vec::new();
        for (i, prefix) in prefixes.iter().enumerate() {
            let Some(prefix) = prefix else {
                // A NULL key or time matches no version.
                unmatched_rows.push(i as u32);
                unmatched.push(1);
                continue;
            };
            let t = times.value(i);
            *deltas
                .entry([prefix.as_slice(), &time_bytes(t), row_rows.row(i)].concat())
                .or_default() += 1;
            ctx.timers().register(
                TimeDomain::EventTime,
                Timer {
                    time: t,
                    key_group: u16::from_be_bytes([prefix[0], prefix[1]]),
                    key: prefix[2..].to_vec(),
                    namespace: vec![LEFT as u8],
                },
            );
        }
        add_copies(&mut self.states[0], deltas)?;
        if self.spec.kind == JoinKind::Left && !unmatched.is_empty() {
            let left = take_rows(
                batch.columns(),
                &column_types(&self.spec.inputs[LEFT]),
                &UInt32Array::from(unmatched_rows),
            )?;
            self.emit_pairs(&left, &unmatched, &[], (&[], &[]), ctx)?;
        }
        Ok(())
    }

    fn store_versions(
        &mut self,
        batch: &RecordBatch,
        time: usize,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        let (rows, ops) = split_changes(batch);
        let n = rows.num_rows();
        let times = millis(rows.column(time))?;
        let prefixes = self.prefixes(RIGHT, &rows, Some(&times))?;
        let row_rows = self.rows[RIGHT].encode(rows.columns(), n)?;
        // A later row of the batch for the same key and time wins.
        let mut versions: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (i, prefix) in prefixes.iter().enumerate() {
            let Some(prefix) = prefix else { continue };
            let kind = ops
                .as_ref()
                .map(|o| ChangeKind::from_i8(o.value(i)))
                .unwrap_or(ChangeKind::Insert);
            let value = match kind {
                // The row that replaces it comes next (+U), at its own time.
                ChangeKind::UpdateBefore => continue,
                ChangeKind::Delete => vec![0],
                ChangeKind::Insert | ChangeKind::UpdateAfter => {
                    [&[1u8][..], row_rows.row(i)].concat()
                }
            };
            let t = times.value(i);
            versions.insert([prefix.as_slice(), &time_bytes(t)].concat(), value);
            ctx.timers().register(
                TimeDomain::EventTime,
                Timer {
                    time: t,
                    key_group: u16::from_be_bytes([prefix[0], prefix[1]]),
                    key: prefix[2..].to_vec(),
                    namespace: vec![RIGHT as u8],
                },
            );
        }
        self.states[1].write(versions.into_iter().map(|(a, v)| (a, Some(v))).collect())
    }

    /// Joins every waiting left row the watermark made due with its version,
    /// and drops the versions no row can match any more.
    fn join_due(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        if self.due.is_empty() {
            return Ok(());
        }
        let mut due: Vec<(Vec<u8>, i64)> = self.due.drain().collect();
        due.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        let mut left_rows: Vec<Vec<u8>> = Vec::new();
        let mut row_at: Vec<usize> = Vec::new();
        let mut copies: Vec<u64> = Vec::new();
        let mut version_rows: Vec<Vec<u8>> = Vec::new();
        let (mut at_left, mut at_version): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        let mut version_changes: Vec<weir_state::Change> = Vec::new();
        let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (prefix, up_to) in due {
            let group = u16::from_be_bytes([prefix[0], prefix[1]]);
            let start = [&prefix[2..], &time_bytes(i64::MIN)[..]].concat();
            let end = match up_to.checked_add(1) {
                Some(t) => Some([&prefix[2..], &time_bytes(t)[..]].concat()),
                None => weir_state::key::prefix_end(&prefix[2..]),
            };
            let mut versions: Vec<(i64, Vec<u8>, Vec<u8>)> = Vec::new();
            found.clear();
            self.states[1].scan_range(group, &start, end.as_deref(), &mut |k, v| {
                found.push((k.to_vec(), v.to_vec()));
                Scan::Continue
            })?;
            for (address, value) in found.drain(..) {
                versions.push((time_at(&address, prefix.len())?, address, value));
            }
            self.states[0].scan_range(group, &start, end.as_deref(), &mut |k, v| {
                found.push((k.to_vec(), v.to_vec()));
                Scan::Continue
            })?;
            // Both are in time order: walk the versions along the rows.
            let mut current: Option<usize> = None;
            let mut used: HashMap<usize, u32> = HashMap::new();
            for (address, value) in found.drain(..) {
                let t = time_at(&address, prefix.len())?;
                while current.map_or(0, |c| c + 1) < versions.len()
                    && versions[current.map_or(0, |c| c + 1)].0 <= t
                {
                    current = Some(current.map_or(0, |c| c + 1));
                }
                let row = left_rows.len() as u32;
                if let Some(c) = current.filter(|c| versions[*c].2.first() == Some(&1)) {
                    let at = *used.entry(c).or_insert_with(|| {
                        version_rows.push(versions[c].2[1..].to_vec());
                        (version_rows.len() - 1) as u32
                    });
                    at_left.push(row);
                    at_version.push(at);
                }
                copies.push(decode_entry(&value)?.0);
                row_at.push(prefix.len() + 8);
                left_rows.push(address);
            }
            // Keep the last version at or before `up_to` (unless it is a
            // deletion) and every later one.
            if let Some(last) = versions.len().checked_sub(1) {
                let keep_from = if versions[last].2.first() == Some(&1) {
                    last
                } else {
                    last + 1
                };
                for (_, address, _) in versions.drain(..).take(keep_from) {
                    version_changes.push((address, None));
                }
            }
        }
        version_changes.sort_by(|a, b| a.0.cmp(&b.0));
        if !version_changes.is_empty() {
            self.states[1].write(version_changes)?;
        }
        if left_rows.is_empty() {
            return Ok(());
        }
        let left = self.rows[LEFT].decode(
            left_rows
                .iter()
                .zip(&row_at)
                .map(|(a, at)| a.get(*at..).unwrap_or_default()),
        )?;
        let right = self.rows[RIGHT].decode(version_rows.iter().map(|r| r.as_slice()))?;
        let mut done: Vec<weir_state::Change> = left_rows.into_iter().map(|a| (a, None)).collect();
        done.sort_by(|a, b| a.0.cmp(&b.0));
        self.states[0].write(done)?;
        self.emit_pairs(&left, &copies, &right, (&at_left, &at_version), ctx)
    }

    // ----- processing time -----

    /// Joins a batch of left rows with the right rows in state now.
    fn look_up(
        &mut self,
        batch: &RecordBatch,
        copies: &[u64],
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        let prefixes = self.prefixes(LEFT, batch, None)?;
        let mut by_prefix: HashMap<&[u8], (usize, usize)> = HashMap::new();
        let mut candidates: Vec<(Vec<u8>, usize, u64)> = Vec::new();
        let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let (mut at_left, mut at_right): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        for (i, prefix) in prefixes.iter().enumerate() {
            let Some(prefix) = prefix else { continue };
            let (s, e) = match by_prefix.get(prefix.as_slice()) {
                Some(r) => *r,
                None => {
                    let group = u16::from_be_bytes([prefix[0], prefix[1]]);
                    let end = weir_state::key::prefix_end(&prefix[2..]);
                    found.clear();
                    self.states[1].scan_range(
                        group,
                        &prefix[2..],
                        end.as_deref(),
                        &mut |k, v| {
                            found.push((k.to_vec(), v.to_vec()));
                            Scan::Continue
                        },
                    )?;
                    let s = candidates.len();
                    for (address, value) in found.drain(..) {
                        candidates.push((address, prefix.len(), decode_entry(&value)?.0));
                    }
                    by_prefix.insert(prefix, (s, candidates.len()));
                    (s, candidates.len())
                }
            };
            for (c, (_, _, copies)) in candidates.iter().enumerate().take(e).skip(s) {
                // A right row stored twice joins twice.
                for _ in 0..*copies {
                    at_left.push(i as u32);
                    at_right.push(c as u32);
                }
            }
        }
        let right = self.rows[RIGHT].decode(candidates.iter().map(|(a, at, _)| &a[*at..]))?;
        self.emit_pairs(batch.columns(), copies, &right, (&at_left, &at_right), ctx)
    }

    fn store_right(&mut self, batch: &RecordBatch) -> Result<()> {
        let (rows, ops) = split_changes(batch);
        let n = rows.num_rows();
        let prefixes = self.prefixes(RIGHT, &rows, None)?;
        let row_rows = self.rows[RIGHT].encode(rows.columns(), n)?;
        let adds: Vec<bool> = match &ops {
            Some(ops) => crate::message::additions(ops),
            None => vec![true; n],
        };
        let mut deltas: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for (i, prefix) in prefixes.iter().enumerate() {
            let Some(prefix) = prefix else { continue };
            *deltas
                .entry([prefix.as_slice(), row_rows.row(i)].concat())
                .or_default() += if adds[i] { 1 } else { -1 };
        }
        add_copies(&mut self.states[1], deltas)
    }

    fn hold_left(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        let prefixes = self.prefixes(LEFT, batch, None)?;
        let row_rows = self.rows[LEFT].encode(batch.columns(), n)?;
        let mut deltas: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        // A NULL key waits too (a LEFT join emits it padded later), under
        // the empty key of a key group this subtask owns.
        let no_key = key_prefix(self.states[0].range().start, &[]);
        for (i, prefix) in prefixes.iter().enumerate() {
            let prefix = prefix.as_ref().unwrap_or(&no_key);
            *deltas
                .entry([prefix.as_slice(), row_rows.row(i)].concat())
                .or_default() += 1;
        }
        add_copies(&mut self.states[0], deltas)
    }

    /// The right input has been read whole: join the left rows that waited.
    fn release_waiting(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        const CHUNK: usize = 8192;
        let mut waiting: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut failed = None;
        self.states[0].scan_prefix(&[], &mut |k, v| {
            match decode_entry(v) {
                Ok((copies, _)) => waiting.push((k.to_vec(), copies)),
                Err(e) => failed = Some(e),
            }
            Scan::Continue
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        let deletes: Vec<weir_state::Change> =
            waiting.iter().map(|(a, _)| (a.clone(), None)).collect();
        for chunk in waiting.chunks(CHUNK) {
            let mut rows = Vec::with_capacity(chunk.len());
            for (address, _) in chunk {
                let mut rest = address.get(2..).unwrap_or_default();
                let len = weir_state::codec::get_varint(&mut rest).map_err(|_| {
                    EngineError::State(
                        "a waiting lookup row does not decode (damaged state)".into(),
                    )
                })? as usize;
                rows.push(rest.get(len..).unwrap_or_default());
            }
            let columns = self.rows[LEFT].decode(rows)?;
            let batch = RecordBatch::try_new_with_options(
                self.spec.inputs[LEFT].clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(chunk.len())),
            )?;
            let copies: Vec<u64> = chunk.iter().map(|(_, c)| *c).collect();
            self.look_up(&batch, &copies, ctx)?;
        }
        if !deletes.is_empty() {
            self.states[0].write(deletes)?;
        }
        Ok(())
    }
}

impl Operator for TemporalJoinOperator {
    fn process_batch(&mut self, batch: RecordBatch, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.process_input(LEFT, batch, ctx)
    }

    fn process_input(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        check_input(input)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        match (self.spec.time, input) {
            (TemporalTime::Event { left, .. }, LEFT) => self.buffer_left(&batch, left, ctx),
            (TemporalTime::Event { right, .. }, _) => self.store_versions(&batch, right, ctx),
            (TemporalTime::Processing { wait_for_right }, LEFT) => {
                if wait_for_right && !self.right_ended {
                    self.hold_left(&batch)
                } else {
                    let copies = vec![1; batch.num_rows()];
                    self.look_up(&batch, &copies, ctx)
                }
            }
            (TemporalTime::Processing { .. }, _) => self.store_right(&batch),
        }
    }

    fn on_timer(
        &mut self,
        _domain: TimeDomain,
        timer: Timer,
        _ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        let prefix = [&timer.key_group.to_be_bytes()[..], &timer.key].concat();
        let t = self.due.entry(prefix).or_insert(timer.time);
        *t = (*t).max(timer.time);
        Ok(())
    }

    fn on_timers_fired(
        &mut self,
        _domain: TimeDomain,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        self.join_due(ctx)
    }

    /// While left rows wait for a bounded right side, the output watermark
    /// stays back: the rows released at its end may be older than anything
    /// the inputs' watermark has passed.
    fn output_watermark(&self, watermark: i64) -> i64 {
        match self.spec.time {
            TemporalTime::Processing {
                wait_for_right: true,
            } if !self.right_ended && watermark != i64::MAX => i64::MIN,
            _ => watermark,
        }
    }

    /// The right side has been read whole: the waiting rows join it. (Not
    /// at its end marker: a job stopped with a savepoint ends its inputs
    /// without finishing them, and the waiting rows belong in the savepoint.)
    fn on_input_finished(&mut self, input: usize, ctx: &mut OperatorContext<'_>) -> Result<()> {
        if input == RIGHT
            && !self.right_ended
            && matches!(self.spec.time, TemporalTime::Processing { .. })
        {
            self.right_ended = true;
            self.release_waiting(ctx)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::arrow::array::{Int64Array, Int8Array, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::physical_expr::expressions::Column;
    use weir_state::{BackendConfig, BackendKind, ManualClock};

    use super::*;
    use crate::message::OP_COLUMN;
    use crate::operators::TimerService;

    fn ts() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, None)
    }

    fn left_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("lk", DataType::Int64, true),
            Field::new("lt", ts(), true),
        ]))
    }

    fn right_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("rk", DataType::Int64, true),
            Field::new("rv", DataType::Utf8, true),
            Field::new("rt", ts(), true),
        ]))
    }

    struct Harness {
        op: Box<dyn Operator>,
        timers: TimerService,
        clock: Arc<ManualClock>,
        watermark: i64,
        _dir: tempfile::TempDir,
    }

    impl Harness {
        fn new(backend: BackendKind, time: TemporalTime) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let clock = ManualClock::new(1_000);
            let mut config = BackendConfig::new(backend);
            config.local_dir = Some(dir.path().to_path_buf());
            config.clock = clock.clone();
            let mut fields: Vec<Field> = left_schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.extend(right_schema().fields().iter().map(|f| f.as_ref().clone()));
            let spec = TemporalJoinSpec {
                kind: JoinKind::Left,
                keys: [
                    vec![Arc::new(Column::new("lk", 0))],
                    vec![Arc::new(Column::new("rk", 0))],
                ],
                nulls_equal: false,
                filter: None,
                inputs: [left_schema(), right_schema()],
                output_schema: Arc::new(Schema::new(fields)),
                time,
                condition: "lk = rk".into(),
                residual: None,
            };
            let ctx = crate::operators::join::test_support::task_context(&spec, config);
            Self {
                op: spec.create(&ctx).unwrap(),
                timers: TimerService::default(),
                clock,
                watermark: i64::MIN,
                _dir: dir,
            }
        }

        fn lines(out: &[RecordBatch]) -> Vec<String> {
            let options = FormatOptions::default().with_null("null");
            let mut lines = Vec::new();
            for b in out {
                let formatters: Vec<_> = b
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                    .collect();
                for r in 0..b.num_rows() {
                    let cells: Vec<String> =
                        formatters.iter().map(|f| f.value(r).to_string()).collect();
                    lines.push(cells.join("|"));
                }
            }
            lines
        }

        /// Left rows `(key, time)`.
        fn left(&mut self, rows: &[(Option<i64>, i64)]) -> Vec<String> {
            let batch = RecordBatch::try_new(
                left_schema(),
                vec![
                    Arc::new(Int64Array::from(
                        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                    )),
                    Arc::new(TimestampMillisecondArray::from(
                        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                    )),
                ],
            )
            .unwrap();
            self.feed(LEFT, batch)
        }

        /// Right rows `(op, key, value, time)`.
        fn right(&mut self, rows: &[(ChangeKind, i64, &str, i64)]) -> Vec<String> {
            let mut fields: Vec<Field> = right_schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.push(Field::new(OP_COLUMN, DataType::Int8, false));
            let batch = RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                vec![
                    Arc::new(Int64Array::from(
                        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                    )),
                    Arc::new(TimestampMillisecondArray::from(
                        rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                    )),
                    Arc::new(Int8Array::from(
                        rows.iter().map(|r| r.0 as i8).collect::<Vec<_>>(),
                    )),
                ],
            )
            .unwrap();
            self.feed(RIGHT, batch)
        }

        fn feed(&mut self, input: usize, batch: RecordBatch) -> Vec<String> {
            let mut out = Vec::new();
            let clock = self.clock.clone();
            let mut ctx =
                OperatorContext::new(&mut out, &mut self.timers, clock.as_ref(), self.watermark);
            self.op.process_input(input, batch, &mut ctx).unwrap();
            Self::lines(&out)
        }

        /// Moves the watermark to `w`: due timers fire, then the timers-fired hook.
        fn advance(&mut self, w: i64) -> Vec<String> {
            self.watermark = w;
            let mut out = Vec::new();
            let clock = self.clock.clone();
            while let Some(t) = self.timers.pop_due(TimeDomain::EventTime, w) {
                let mut ctx = OperatorContext::new(&mut out, &mut self.timers, clock.as_ref(), w);
                self.op
                    .on_timer(TimeDomain::EventTime, t, &mut ctx)
                    .unwrap();
            }
            let mut ctx = OperatorContext::new(&mut out, &mut self.timers, clock.as_ref(), w);
            self.op
                .on_timers_fired(TimeDomain::EventTime, &mut ctx)
                .unwrap();
            let mut lines = Self::lines(&out);
            lines.sort();
            lines
        }
    }

    const BACKENDS: [BackendKind; 2] = [BackendKind::HashMap, BackendKind::RocksDb];

    /// How Arrow prints a timestamp of `ms` (< 1000) milliseconds.
    fn ts_text(ms: i64) -> String {
        if ms == 0 {
            "1970-01-01T00:00:00".into()
        } else {
            format!("1970-01-01T00:00:00.{ms:03}")
        }
    }

    #[test]
    fn each_left_row_joins_the_version_valid_at_its_time_deletions_included() {
        use ChangeKind::*;
        for backend in BACKENDS {
            let mut h = Harness::new(backend, TemporalTime::Event { left: 1, right: 2 });
            assert!(h
                .right(&[
                    (Insert, 1, "a", 0),
                    (Insert, 1, "b", 10),
                    (Delete, 1, "b", 20),
                    (UpdateBefore, 1, "b", 30),
                    (UpdateAfter, 1, "c", 30),
                ])
                .is_empty());
            // Left rows wait for the watermark; a NULL key is padded at once.
            assert_eq!(
                h.left(&[(None, 7)]),
                [format!("null|{}|null|null|null", ts_text(7))]
            );
            assert!(h
                .left(&[
                    (Some(1), 5),
                    (Some(1), 10),
                    (Some(1), 15),
                    (Some(1), 25),
                    (Some(1), 30),
                    (Some(2), 5)
                ])
                .is_empty());
            // Only rows at or before the watermark come out.
            assert_eq!(
                h.advance(12),
                [
                    format!("1|{}|1|a|{}", ts_text(5), ts_text(0)),
                    format!("1|{}|1|b|{}", ts_text(10), ts_text(10)),
                    format!("2|{}|null|null|null", ts_text(5)),
                ],
                "{backend:?}"
            );
            assert_eq!(
                h.advance(100),
                [
                    format!("1|{}|1|b|{}", ts_text(15), ts_text(10)),
                    format!("1|{}|null|null|null", ts_text(25)),
                    format!("1|{}|1|c|{}", ts_text(30), ts_text(30)),
                ],
                "{backend:?}"
            );
            // Versions older than the last one before the watermark are gone:
            // a row late by that much finds none (as in Flink).
            assert!(h.left(&[(Some(1), 12)]).is_empty());
            assert_eq!(
                h.advance(101),
                [format!("1|{}|null|null|null", ts_text(12))]
            );
            // A row after it still finds the current one.
            assert!(h.left(&[(Some(1), 150)]).is_empty());
            assert_eq!(
                h.advance(200),
                [format!("1|{}|1|c|{}", ts_text(150), ts_text(30))]
            );
        }
    }

    #[test]
    fn a_lookup_waits_for_a_bounded_right_side_then_sees_its_retractions() {
        use ChangeKind::*;
        for backend in BACKENDS {
            let mut h = Harness::new(
                backend,
                TemporalTime::Processing {
                    wait_for_right: true,
                },
            );
            assert!(h
                .left(&[(Some(1), 0), (Some(1), 0), (Some(3), 0)])
                .is_empty());
            assert!(h
                .right(&[
                    (Insert, 1, "a", 0),
                    (Insert, 1, "b", 0),
                    (Delete, 1, "b", 0)
                ])
                .is_empty());
            let mut out = Vec::new();
            let clock = h.clock.clone();
            let mut ctx = OperatorContext::new(&mut out, &mut h.timers, clock.as_ref(), i64::MIN);
            h.op.on_input_finished(RIGHT, &mut ctx).unwrap();
            let mut lines = Harness::lines(&out);
            lines.sort();
            let row = |k: &str, v: &str| format!("{k}|{}|{v}", ts_text(0));
            assert_eq!(
                lines,
                [
                    row("1", "1|a|1970-01-01T00:00:00"),
                    row("1", "1|a|1970-01-01T00:00:00"),
                    row("3", "null|null|null")
                ],
                "{backend:?}"
            );
            // After the end, rows look up at once.
            assert_eq!(
                h.left(&[(Some(1), 0)]),
                [row("1", "1|a|1970-01-01T00:00:00")]
            );
        }
    }
}
