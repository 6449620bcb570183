//! An interval join: equality keys plus a bound on the distance between the
//! two sides' time attributes (`l.ts BETWEEN r.ts - INTERVAL '1' HOUR AND
//! r.ts`), over insert-only inputs, in event time or processing time.
//!
//! With `lower ≤ l.time − r.time ≤ upper`, a left row at `t` meets the right
//! rows in `[t − upper, t − lower]` and a right row at `t` the left rows in
//! `[t + lower, t + upper]`. Each side's rows are kept by key and time,
//!
//! ```text
//! [key group u16][varint key length][key][time, order-preserving 8 bytes][row]  →  [varint copies][varint matches]
//! ```
//!
//! so a batch reads, per distinct key, one ordered range of the other side.
//! A row is kept only while a row of the other side could still match it:
//! once the watermark (or processing time) passes `t − lower` (left) or
//! `t + upper` (right), a timer removes it, and an outer side's row that
//! never matched is emitted then, padded with nulls. So the output is
//! insert-only, the state is bounded by the interval, and the output
//! watermark is held back by `max(−lower, upper)`: joined and padded rows
//! are never late downstream.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt32Array};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
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
use crate::operators::batch_state::{time_bytes, time_from_bytes, KeyedBatchState};
use crate::operators::row_codec::RowCodec;
use crate::operators::{
    Operator, OperatorContext, OperatorFactory, TaskContext, TimeDomain, Timer,
};

/// Planner output for an interval join.
#[derive(Clone)]
pub struct IntervalJoinSpec {
    /// Inner, left, right or full; semi and anti too for window joins.
    pub kind: JoinKind,
    /// The join key of each side, over that side's rows (same types).
    pub keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    /// Whether NULL keys match each other.
    pub nulls_equal: bool,
    /// Each side's time attribute column.
    pub times: [usize; 2],
    /// `lower ≤ left time − right time ≤ upper`, in milliseconds, inclusive.
    pub bounds: (i64, i64),
    /// Event time (watermarks) or processing time (the job's clock).
    pub domain: TimeDomain,
    /// The whole non-equality condition (the time bounds too), over a left
    /// row's columns followed by a right row's.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// Each input's schema.
    pub inputs: [SchemaRef; 2],
    /// The output schema (insert-only).
    pub output_schema: SchemaRef,
    /// The equality condition, for `EXPLAIN`.
    pub condition: String,
    /// The non-equality condition, for `EXPLAIN`.
    pub residual: Option<String>,
    /// Whether this is a window join (the times are both sides'
    /// `window_end`, the bounds 0), for `EXPLAIN` and the uid.
    pub window: bool,
}

const STATE_NAMES: [&str; 2] = ["interval-join-left", "interval-join-right"];

impl IntervalJoinSpec {
    /// The other side's times that a row of `side` at `t` meets.
    fn other_range(&self, side: usize, t: i64) -> (i64, i64) {
        let (lower, upper) = self.bounds;
        if side == LEFT {
            (t.saturating_sub(upper), t.saturating_sub(lower))
        } else {
            (t.saturating_add(lower), t.saturating_add(upper))
        }
    }

    /// When a row of `side` at `t` can no longer meet a new row of the
    /// other side: the other side's rows come at or after the watermark.
    fn expiry(&self, side: usize, t: i64) -> i64 {
        let (lower, upper) = self.bounds;
        if side == LEFT {
            t.saturating_sub(lower).saturating_add(1)
        } else {
            t.saturating_add(upper).saturating_add(1)
        }
    }

    /// The rows of `side` that a timer at `time` removes: times up to this.
    fn expired_up_to(&self, side: usize, time: i64) -> i64 {
        let (lower, upper) = self.bounds;
        if side == LEFT {
            time.saturating_add(lower).saturating_sub(1)
        } else {
            time.saturating_sub(upper).saturating_sub(1)
        }
    }

    /// How far behind its input the output watermark stays.
    fn watermark_delay(&self) -> i64 {
        let (lower, upper) = self.bounds;
        0i64.max(lower.saturating_neg()).max(upper)
    }
}

impl OperatorFactory for IntervalJoinSpec {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let key_types: Vec<DataType> = self.keys[LEFT]
            .iter()
            .map(|k| Ok(k.data_type(&self.inputs[LEFT])?))
            .collect::<Result<_>>()?;
        let side = |s: usize| -> Result<Side> {
            Ok(Side {
                state: KeyedBatchState::open(
                    &StateDescriptor::new(STATE_NAMES[s], StateKind::Raw),
                    ctx,
                )?,
                keys: RowCodec::new(&key_types)?,
                rows: RowCodec::new(&column_types(&self.inputs[s]))?,
            })
        };
        Ok(Box::new(IntervalJoinOperator {
            spec: self.clone(),
            sides: [side(LEFT)?, side(RIGHT)?],
            pair_schema: pair_schema(&self.inputs),
            due: [HashMap::new(), HashMap::new()],
        }))
    }

    fn describe(&self) -> String {
        let residual = self
            .residual
            .as_ref()
            .map(|r| format!(", where=[{r}]"))
            .unwrap_or_default();
        let time = |s: usize| self.inputs[s].field(self.times[s]).name().clone();
        let domain = match self.domain {
            TimeDomain::EventTime => "event time",
            TimeDomain::ProcessingTime => "processing time",
        };
        if self.window {
            return format!(
                "WindowJoin(joinType=[{}], on=[{}]{residual}, window=[{domain}: {} = {}])",
                self.kind.name(),
                self.condition,
                time(LEFT),
                time(RIGHT),
            );
        }
        format!(
            "IntervalJoin(joinType=[{}], on=[{}]{residual}, time=[{domain}: {} - {} between {} ms and {} ms])",
            self.kind.name(),
            self.condition,
            time(LEFT),
            time(RIGHT),
            self.bounds.0,
            self.bounds.1,
        )
    }

    fn kind(&self) -> &'static str {
        if self.window {
            "WindowJoin"
        } else {
            "IntervalJoin"
        }
    }

    fn states(&self, _settings: &StateSettings) -> Vec<StateDescriptor> {
        STATE_NAMES
            .iter()
            .map(|n| StateDescriptor::new(*n, StateKind::Raw))
            .collect()
    }

    fn uses_timers(&self) -> bool {
        true
    }

    fn state_signature(&self) -> Option<Vec<(String, String)>> {
        let types = typed_columns;
        Some(vec![
            ("join type".into(), self.kind.name().into()),
            ("left row".into(), types(&self.inputs[LEFT])),
            ("right row".into(), types(&self.inputs[RIGHT])),
            (
                "time bounds".into(),
                format!("{} {}", self.bounds.0, self.bounds.1),
            ),
        ])
    }
}

struct Side {
    state: KeyedBatchState,
    keys: RowCodec,
    rows: RowCodec,
}

struct Candidate {
    address: Vec<u8>,
    row_at: usize,
    time: i64,
    copies: u64,
    matches: u64,
    changed: bool,
}

/// Runs an [`IntervalJoinSpec`] in one subtask.
pub struct IntervalJoinOperator {
    spec: IntervalJoinSpec,
    sides: [Side; 2],
    pair_schema: SchemaRef,
    /// Per side, the keys whose timers fired and the latest time up to
    /// which their rows go (`[key group][varint length][key]` → time).
    due: [HashMap<Vec<u8>, i64>; 2],
}

impl IntervalJoinOperator {
    fn now(&self, ctx: &OperatorContext<'_>) -> i64 {
        match self.spec.domain {
            TimeDomain::EventTime => ctx.watermark(),
            TimeDomain::ProcessingTime => ctx.processing_time(),
        }
    }

    fn emit(
        &self,
        this: usize,
        rows: &[ArrayRef],
        other_columns: &[ArrayRef],
        out: Emitted,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        if out.ops.is_empty() {
            return Ok(());
        }
        let len = out.ops.len();
        let other = 1 - this;
        let this_at = UInt32Array::from(out.this);
        let other_at = UInt32Array::from(out.other);
        let this_cols = take_rows(rows, &column_types(&self.spec.inputs[this]), &this_at)?;
        let other_cols = take_rows(
            other_columns,
            &column_types(&self.spec.inputs[other]),
            &other_at,
        )?;
        let columns = match self.spec.kind.output_side() {
            None => left_then_right(this, this_cols, other_cols),
            Some(side) if side == this => this_cols,
            Some(_) => other_cols,
        };
        ctx.emit(RecordBatch::try_new_with_options(
            self.spec.output_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(len)),
        )?);
        Ok(())
    }
}

impl IntervalJoinOperator {
    /// Removes the rows of `side` whose timers fired (per key, those up to
    /// the latest time due), all keys in one write, and emits the outer
    /// ones that never matched, padded, in one batch.
    fn expire(&mut self, side: usize, ctx: &mut OperatorContext<'_>) -> Result<()> {
        if self.due[side].is_empty() {
            return Ok(());
        }
        let mut due: Vec<(Vec<u8>, i64)> = self.due[side].drain().collect();
        due.sort();
        let mut found: Vec<(Vec<u8>, Vec<u8>, usize)> = Vec::new();
        for (prefix, up_to) in &due {
            let group = u16::from_be_bytes([prefix[0], prefix[1]]);
            let key = &prefix[2..];
            let start = [key, &time_bytes(i64::MIN)[..]].concat();
            let end = match up_to.checked_add(1) {
                Some(t) => Some([key, &time_bytes(t)[..]].concat()),
                None => weir_state::key::prefix_end(key),
            };
            let row_at = prefix.len() + 8;
            self.sides[side]
                .state
                .scan_range(group, &start, end.as_deref(), &mut |k, v| {
                    found.push((k.to_vec(), v.to_vec(), row_at));
                    Scan::Continue
                })?;
        }
        if found.is_empty() {
            return Ok(());
        }
        let pads = self.spec.kind.emits_unmatched(side);
        let mut padded: Vec<(usize, u64)> = Vec::new();
        for (i, (_, value, _)) in found.iter().enumerate() {
            let (copies, matches) = decode_entry(value)?;
            if pads && matches == 0 {
                padded.push((i, copies));
            }
        }
        let rows = if padded.is_empty() {
            Vec::new()
        } else {
            self.sides[side].rows.decode(padded.iter().map(|(i, _)| {
                let (address, _, at) = &found[*i];
                address.get(*at..).unwrap_or_default()
            }))?
        };
        let mut changes: Vec<weir_state::Change> = found
            .into_iter()
            .map(|(address, _, _)| (address, None))
            .collect();
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        self.sides[side].state.write(changes)?;
        if padded.is_empty() {
            return Ok(());
        }
        let mut out = Emitted::default();
        for (row, (_, copies)) in padded.iter().enumerate() {
            out.push(Some(row), None, true, *copies);
        }
        self.emit(side, &rows, &[], out, ctx)
    }
}

impl Operator for IntervalJoinOperator {
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
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let (this, other) = (input, 1 - input);
        let kind = self.spec.kind;
        let now = self.now(ctx);
        let (keys, nulls) = key_columns(&self.spec.keys[this], &batch, self.spec.nulls_equal)?;
        let times = millis(batch.column(self.spec.times[this]))?;
        let side = &mut self.sides[this];
        let groups = side.state.key_groups(&keys, n)?;
        let key_rows = side.keys.encode(&keys, n)?;
        let row_rows = side.rows.encode(batch.columns(), n)?;
        // A row with a NULL key or time matches nothing and is not stored.
        let prefixes: Vec<Option<Vec<u8>>> = (0..n)
            .map(|i| {
                (times.is_valid(i) && nulls.iter().all(|b| b.is_valid(i)))
                    .then(|| key_prefix(groups[i], key_rows.row(i)))
            })
            .collect();

        // Per distinct key, the union of its rows' ranges on the other side.
        let mut ranges: HashMap<&[u8], (i64, i64)> = HashMap::new();
        for (i, p) in prefixes.iter().enumerate() {
            if let Some(p) = p {
                let (from, to) = self.spec.other_range(this, times.value(i));
                let r = ranges.entry(p.as_slice()).or_insert((from, to));
                r.0 = r.0.min(from);
                r.1 = r.1.max(to);
            }
        }
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut lists: HashMap<&[u8], (usize, usize)> = HashMap::new();
        let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let state = &mut self.sides[other].state;
        for (prefix, (from, to)) in &ranges {
            let group = u16::from_be_bytes([prefix[0], prefix[1]]);
            let start = [&prefix[2..], &time_bytes(*from)[..]].concat();
            let end = match to.checked_add(1) {
                Some(t) => Some([&prefix[2..], &time_bytes(t)[..]].concat()),
                None => weir_state::key::prefix_end(&prefix[2..]),
            };
            found.clear();
            state.scan_range(group, &start, end.as_deref(), &mut |k, v| {
                found.push((k.to_vec(), v.to_vec()));
                Scan::Continue
            })?;
            let first = candidates.len();
            for (address, value) in found.drain(..) {
                let (copies, matches) = decode_entry(&value)?;
                let time_at = prefix.len();
                let time = address
                    .get(time_at..time_at + 8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(time_from_bytes)
                    .ok_or_else(|| {
                        EngineError::State(
                            "an interval join entry without its time (damaged state)".into(),
                        )
                    })?;
                candidates.push(Candidate {
                    address,
                    row_at: time_at + 8,
                    time,
                    copies,
                    matches,
                    changed: false,
                });
            }
            lists.insert(prefix, (first, candidates.len()));
        }
        let other_columns = self.sides[other]
            .rows
            .decode(candidates.iter().map(|c| &c.address[c.row_at..]))?;

        // The (row, candidate) pairs within the time bounds, then the
        // residual condition over all of them at once.
        let mut at_this: Vec<u32> = Vec::new();
        let mut at_other: Vec<u32> = Vec::new();
        for (i, p) in prefixes.iter().enumerate() {
            let Some(p) = p else { continue };
            let (from, to) = self.spec.other_range(this, times.value(i));
            let (s, e) = lists.get(p.as_slice()).copied().unwrap_or((0, 0));
            for (c, cand) in candidates.iter().enumerate().take(e).skip(s) {
                if (from..=to).contains(&cand.time) {
                    at_this.push(i as u32);
                    at_other.push(c as u32);
                }
            }
        }
        let this_types = column_types(&self.spec.inputs[this]);
        let other_types = column_types(&self.spec.inputs[other]);
        let pass = pair_mask(
            self.spec.filter.as_ref(),
            &self.pair_schema,
            Pairs {
                this,
                this_rows: (batch.columns(), &this_types),
                other_rows: (&other_columns, &other_types),
                at_this: &at_this,
                at_other: &at_other,
            },
        )?;

        let mut out = Emitted::default();
        let mut own: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
        let mut matches_of_row = vec![0u64; n];
        for (pair, (i, c)) in at_this.iter().zip(&at_other).enumerate() {
            if !passes(pass.as_ref(), pair) {
                continue;
            }
            let (i, c) = (*i as usize, *c as usize);
            let cand = &mut candidates[c];
            match kind.output_side() {
                None => out.push(Some(i), Some(c), true, cand.copies),
                // A semi join emits its row at the first match.
                Some(side) if side == this => {
                    if !kind.is_anti() && matches_of_row[i] == 0 {
                        out.push(Some(i), None, true, 1);
                    }
                }
                Some(_) => {
                    if !kind.is_anti() && cand.matches == 0 {
                        out.push(None, Some(c), true, cand.copies);
                    }
                }
            }
            matches_of_row[i] += cand.copies;
            if kind.counts_matches(other) {
                cand.matches += 1;
                cand.changed = true;
            }
        }
        for i in 0..n {
            let alive = prefixes[i].is_some() && now < self.spec.expiry(this, times.value(i));
            if !alive {
                // Late (or matching nothing ever): not kept; an outer row
                // without a match is final now.
                if kind.emits_unmatched(this) && matches_of_row[i] == 0 {
                    out.push(Some(i), None, true, 1);
                }
                continue;
            }
            let Some(prefix) = &prefixes[i] else { continue };
            let t = times.value(i);
            let address = [prefix.as_slice(), &time_bytes(t), row_rows.row(i)].concat();
            let entry = own.entry(address).or_insert((0, 0));
            entry.0 += 1;
            if kind.counts_matches(this) {
                entry.1 += matches_of_row[i];
            }
            ctx.timers().register(
                self.spec.domain,
                Timer {
                    time: self.spec.expiry(this, t),
                    key_group: groups[i],
                    key: prefix[2..].to_vec(),
                    namespace: vec![this as u8],
                },
            );
        }
        if !own.is_empty() {
            let wanted: Vec<Vec<u8>> = own.keys().cloned().collect();
            let refs: Vec<&[u8]> = wanted.iter().map(|a| a.as_slice()).collect();
            let stored = self.sides[this].state.multi_get(&refs)?;
            let mut changes: Vec<weir_state::Change> = Vec::with_capacity(wanted.len());
            for (address, stored) in wanted.into_iter().zip(stored) {
                let (copies, matches) = match stored {
                    Some(v) => decode_entry(&v)?,
                    None => (0, 0),
                };
                let (more, matched) = own[&address];
                changes.push((
                    address,
                    Some(encode_entry(copies + more, matches + matched)),
                ));
            }
            changes.sort_by(|a, b| a.0.cmp(&b.0));
            self.sides[this].state.write(changes)?;
        }
        let mut changed: Vec<weir_state::Change> = candidates
            .iter()
            .filter(|c| c.changed)
            .map(|c| (c.address.clone(), Some(encode_entry(c.copies, c.matches))))
            .collect();
        if !changed.is_empty() {
            changed.sort_by(|a, b| a.0.cmp(&b.0));
            self.sides[other].state.write(changed)?;
        }
        self.emit(this, batch.columns(), &other_columns, out, ctx)
    }

    fn on_timer(
        &mut self,
        domain: TimeDomain,
        timer: Timer,
        _ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        if domain != self.spec.domain {
            return Ok(());
        }
        let side = match timer.namespace.first() {
            Some(0) => LEFT,
            Some(1) => RIGHT,
            _ => {
                return Err(EngineError::State(
                    "an interval join timer without its side (damaged state)".into(),
                ))
            }
        };
        let up_to = self.spec.expired_up_to(side, timer.time);
        let prefix = [&timer.key_group.to_be_bytes()[..], &timer.key].concat();
        let due = self.due[side].entry(prefix).or_insert(up_to);
        *due = (*due).max(up_to);
        Ok(())
    }

    fn on_timers_fired(&mut self, domain: TimeDomain, ctx: &mut OperatorContext<'_>) -> Result<()> {
        if domain != self.spec.domain {
            return Ok(());
        }
        self.expire(LEFT, ctx)?;
        self.expire(RIGHT, ctx)
    }

    fn output_watermark(&self, watermark: i64) -> i64 {
        if self.spec.domain != TimeDomain::EventTime
            || watermark == i64::MAX
            || watermark == i64::MIN
        {
            return watermark;
        }
        watermark.saturating_sub(self.spec.watermark_delay())
    }
}
