//! A regular join: equality keys and an optional residual condition, over
//! insert-only or updating inputs, with every row of both sides kept in
//! state (bounded by `table.exec.state.ttl`).
//!
//! Each side's state holds its rows by join key, with how many copies of
//! the row are live and, for a side whose unmatched rows matter (the outer
//! side of an outer join, the output side of a semi or anti join), how many
//! rows of the other side match it:
//!
//! ```text
//! [key group u16][varint key length][key row][row]  →  [varint copies][varint matches]
//! ```
//!
//! A row that arrives (`+I`, `+U`) or is taken back (`-U`, `-D`) looks up the
//! other side's rows of its key (one ordered scan per distinct key of the
//! batch), evaluates the residual condition over all candidate pairs of
//! the batch at once, then, row by row in arrival order, emits the joined
//! pairs (`+I` / `-D`), the null-padded rows that appear or disappear when a
//! row's first match arrives or its last one goes (Flink's rules), and the
//! semi/anti rows whose match status flips; its own and the touched rows'
//! entries are written back in one sorted batch. A row whose key is NULL
//! never matches (unless the condition is `IS NOT DISTINCT FROM`) and is not
//! stored. Expired entries are treated as absent and deleted when met.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Int8Array, UInt32Array};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;
use weir_state::{Scan, StateDescriptor, StateKind, StateTtlConfig};

use super::{
    check_input, column_types, decode_entry, encode_entry, key_columns, key_prefix,
    left_then_right, pair_mask, pair_schema, passes, take_rows, typed_columns, Emitted, JoinKind,
    Pairs, LEFT, RIGHT,
};
use crate::config::StateSettings;
use crate::error::{EngineError, Result};
use crate::message::split_changes;
use crate::operators::batch_state::KeyedBatchState;
use crate::operators::row_codec::RowCodec;
use crate::operators::{Operator, OperatorContext, OperatorFactory, TaskContext};

/// Planner output for a regular join.
#[derive(Clone)]
pub struct RegularJoinSpec {
    /// Which rows the join emits.
    pub kind: JoinKind,
    /// The join key of each side ([`LEFT`], [`RIGHT`]), evaluated over that
    /// side's rows; both sides' keys have the same types, and the inputs
    /// are hash-partitioned by them.
    pub keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    /// Whether NULL keys match each other (`IS NOT DISTINCT FROM`).
    pub nulls_equal: bool,
    /// The residual condition, over a left row's columns followed by a
    /// right row's.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// Each input's schema, without the op column.
    pub inputs: [SchemaRef; 2],
    /// The output schema (ending with the op column when updating).
    pub output_schema: SchemaRef,
    /// Whether the output is a changelog.
    pub updating: bool,
    /// How long each side's rows live in state (`table.exec.state.ttl`, or
    /// a `STATE_TTL` hint); `None`: forever.
    pub ttl: [Option<Duration>; 2],
    /// The equality condition, for `EXPLAIN`.
    pub condition: String,
    /// The residual condition, for `EXPLAIN`.
    pub residual: Option<String>,
}

const STATE_NAMES: [&str; 2] = ["join-left", "join-right"];

impl RegularJoinSpec {
    fn descriptor(&self, side: usize) -> StateDescriptor {
        let mut d = StateDescriptor::new(STATE_NAMES[side], StateKind::Raw);
        d.ttl = self.ttl[side].map(StateTtlConfig::new);
        d
    }

    fn key_types(&self, side: usize) -> Result<Vec<DataType>> {
        self.keys[side]
            .iter()
            .map(|k| Ok(k.data_type(&self.inputs[side])?))
            .collect()
    }
}

fn ttl_text(ttl: Option<Duration>) -> String {
    match ttl {
        None => "none".into(),
        Some(d) if d.as_millis() % 1000 == 0 => format!("{} s", d.as_secs()),
        Some(d) => format!("{} ms", d.as_millis()),
    }
}

impl OperatorFactory for RegularJoinSpec {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let key_types = self.key_types(LEFT)?;
        if key_types != self.key_types(RIGHT)? {
            return Err(EngineError::Internal(format!(
                "join keys of different types: {key_types:?} and {:?}",
                self.key_types(RIGHT)?
            )));
        }
        let side = |s: usize| -> Result<Side> {
            Ok(Side {
                state: KeyedBatchState::open(&self.descriptor(s), ctx)?,
                keys: RowCodec::new(&key_types)?,
                rows: RowCodec::new(&column_types(&self.inputs[s]))?,
            })
        };
        Ok(Box::new(RegularJoinOperator {
            spec: self.clone(),
            sides: [side(LEFT)?, side(RIGHT)?],
            pair_schema: pair_schema(&self.inputs),
        }))
    }

    fn describe(&self) -> String {
        let residual = self
            .residual
            .as_ref()
            .map(|r| format!(", where=[{r}]"))
            .unwrap_or_default();
        let ttl = if self.ttl[LEFT] == self.ttl[RIGHT] {
            ttl_text(self.ttl[LEFT])
        } else {
            format!(
                "left {}, right {}",
                ttl_text(self.ttl[LEFT]),
                ttl_text(self.ttl[RIGHT])
            )
        };
        format!(
            "Join(joinType=[{}], on=[{}]{residual}, stateTtl=[{ttl}])",
            self.kind.name(),
            self.condition
        )
    }

    fn kind(&self) -> &'static str {
        "Join"
    }

    fn states(&self, _settings: &StateSettings) -> Vec<StateDescriptor> {
        vec![self.descriptor(LEFT), self.descriptor(RIGHT)]
    }

    fn is_stateful(&self) -> bool {
        true
    }

    fn state_signature(&self) -> Option<Vec<(String, String)>> {
        let types = typed_columns;
        let keys = self
            .key_types(LEFT)
            .map(|t| {
                t.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        Some(vec![
            ("join type".into(), self.kind.name().into()),
            ("join key".into(), keys),
            ("left row".into(), types(&self.inputs[LEFT])),
            ("right row".into(), types(&self.inputs[RIGHT])),
        ])
    }
}

/// One side's state and codecs.
struct Side {
    state: KeyedBatchState,
    keys: RowCodec,
    rows: RowCodec,
}

/// A stored row of the other side that a row of the batch may match.
struct Candidate {
    address: Vec<u8>,
    /// Where the row's bytes start in the address.
    row_at: usize,
    copies: u64,
    matches: u64,
    changed: bool,
}

/// Runs a [`RegularJoinSpec`] in one subtask.
pub struct RegularJoinOperator {
    spec: RegularJoinSpec,
    sides: [Side; 2],
    /// A left row followed by a right row: what the residual condition reads.
    pair_schema: SchemaRef,
}

impl RegularJoinOperator {
    /// The other side's live rows for each distinct key of the batch: the
    /// candidates, and for each row the range of them it may match.
    #[allow(clippy::type_complexity)]
    fn candidates(
        &mut self,
        other: usize,
        prefixes: &[Option<Vec<u8>>],
        now: i64,
        expired: &mut Vec<Vec<u8>>,
    ) -> Result<(Vec<Candidate>, Vec<(usize, usize)>)> {
        let state = &mut self.sides[other].state;
        let mut by_prefix: HashMap<&[u8], (usize, usize)> = HashMap::new();
        let mut candidates = Vec::new();
        let mut ranges = Vec::with_capacity(prefixes.len());
        let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for prefix in prefixes {
            let Some(prefix) = prefix else {
                ranges.push((0, 0));
                continue;
            };
            if let Some(range) = by_prefix.get(prefix.as_slice()) {
                ranges.push(*range);
                continue;
            }
            let group = u16::from_be_bytes([prefix[0], prefix[1]]);
            let suffix = &prefix[2..];
            let end = weir_state::key::prefix_end(suffix);
            found.clear();
            state.scan_range(group, suffix, end.as_deref(), &mut |k, v| {
                found.push((k.to_vec(), v.to_vec()));
                Scan::Continue
            })?;
            let start = candidates.len();
            for (address, stored) in found.drain(..) {
                match state.unstamp(now, &stored)? {
                    Some(value) => {
                        let (copies, matches) = decode_entry(value)?;
                        if copies > 0 {
                            candidates.push(Candidate {
                                address,
                                row_at: prefix.len(),
                                copies,
                                matches,
                                changed: false,
                            });
                        }
                    }
                    None => expired.push(address),
                }
            }
            let range = (start, candidates.len());
            by_prefix.insert(prefix, range);
            ranges.push(range);
        }
        Ok((candidates, ranges))
    }
}

impl Operator for RegularJoinOperator {
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
        let (rows, ops) = split_changes(&batch);
        let accumulate: Vec<bool> = match &ops {
            Some(ops) => crate::message::additions(ops),
            None => vec![true; n],
        };
        let (keys, nulls) = key_columns(&self.spec.keys[this], &rows, self.spec.nulls_equal)?;
        let side = &mut self.sides[this];
        let groups = side.state.key_groups(&keys, n)?;
        let key_rows = side.keys.encode(&keys, n)?;
        let row_rows = side.rows.encode(rows.columns(), n)?;
        let now = side.state.now_ms()?;
        // A row with a NULL key matches nothing and is not stored.
        let prefixes: Vec<Option<Vec<u8>>> = (0..n)
            .map(|i| {
                nulls
                    .iter()
                    .all(|b| b.is_valid(i))
                    .then(|| key_prefix(groups[i], key_rows.row(i)))
            })
            .collect();

        let mut expired = Vec::new();
        let (mut candidates, ranges) = self.candidates(other, &prefixes, now, &mut expired)?;
        let other_types = column_types(&self.spec.inputs[other]);
        let other_columns = self.sides[other]
            .rows
            .decode(candidates.iter().map(|c| &c.address[c.row_at..]))?;

        // The residual condition over every (row, candidate) pair at once.
        let pairs: usize = ranges.iter().map(|(s, e)| e - s).sum();
        let this_types = column_types(&self.spec.inputs[this]);
        let mut at_this = Vec::with_capacity(pairs);
        let mut at_other = Vec::with_capacity(pairs);
        if self.spec.filter.is_some() {
            for (i, (s, e)) in ranges.iter().enumerate() {
                for c in *s..*e {
                    at_this.push(i as u32);
                    at_other.push(c as u32);
                }
            }
        }
        let pass = pair_mask(
            self.spec.filter.as_ref(),
            &self.pair_schema,
            Pairs {
                this,
                this_rows: (rows.columns(), &this_types),
                other_rows: (&other_columns, &other_types),
                at_this: &at_this,
                at_other: &at_other,
            },
        )?;

        // This side's entries for the batch's rows.
        let addresses: Vec<Option<Vec<u8>>> = prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| p.as_ref().map(|p| [p.as_slice(), row_rows.row(i)].concat()))
            .collect();
        // Each distinct entry once: its first row's address, its counts.
        let mut slot_of: HashMap<&[u8], usize> = HashMap::with_capacity(n);
        let mut slot_rows: Vec<usize> = Vec::with_capacity(n);
        let mut row_slot: Vec<Option<usize>> = Vec::with_capacity(n);
        for (i, a) in addresses.iter().enumerate() {
            row_slot.push(a.as_ref().map(|a| {
                *slot_of.entry(a.as_slice()).or_insert_with(|| {
                    slot_rows.push(i);
                    slot_rows.len() - 1
                })
            }));
        }
        let mut own: Vec<(u64, u64)> = Vec::with_capacity(slot_rows.len());
        {
            let wanted: Vec<&[u8]> = slot_rows
                .iter()
                .filter_map(|i| addresses[*i].as_deref())
                .collect();
            let side = &mut self.sides[this];
            let stored = side.state.multi_get(&wanted)?;
            for stored in stored {
                own.push(match stored {
                    Some(s) => match side.state.unstamp(now, &s)? {
                        Some(v) => decode_entry(v)?,
                        None => (0, 0),
                    },
                    None => (0, 0),
                });
            }
        }

        // Row by row, in arrival order.
        let mut out = Emitted::default();
        let mut matched: Vec<usize> = Vec::new();
        let mut pair = 0;
        for i in 0..n {
            let acc = accumulate[i];
            let (start, end) = ranges[i];
            matched.clear();
            for c in start..end {
                if passes(pass.as_ref(), pair) {
                    matched.push(c);
                }
                pair += 1;
            }
            let m: u64 = matched.iter().map(|c| candidates[*c].copies).sum();
            match kind.output_side() {
                None => {
                    if m == 0 && kind.pads(this) {
                        out.push(Some(i), None, acc, 1);
                    }
                    for &c in &matched {
                        let cand = &mut candidates[c];
                        let pads_other = kind.pads(other);
                        if acc {
                            if pads_other && cand.matches == 0 {
                                out.push(None, Some(c), false, cand.copies);
                            }
                            out.push(Some(i), Some(c), true, cand.copies);
                            if pads_other {
                                cand.matches += 1;
                                cand.changed = true;
                            }
                        } else {
                            out.push(Some(i), Some(c), false, cand.copies);
                            if pads_other && cand.matches > 0 {
                                cand.matches -= 1;
                                cand.changed = true;
                                if cand.matches == 0 {
                                    out.push(None, Some(c), true, cand.copies);
                                }
                            }
                        }
                    }
                }
                Some(side) if side == this => {
                    if (m == 0) == kind.is_anti() {
                        out.push(Some(i), None, acc, 1);
                    }
                }
                Some(_) => {
                    let anti = kind.is_anti();
                    for &c in &matched {
                        let cand = &mut candidates[c];
                        if acc {
                            cand.matches += 1;
                            cand.changed = true;
                            if cand.matches == 1 {
                                out.push(None, Some(c), !anti, cand.copies);
                            }
                        } else if cand.matches > 0 {
                            cand.matches -= 1;
                            cand.changed = true;
                            if cand.matches == 0 {
                                out.push(None, Some(c), anti, cand.copies);
                            }
                        }
                    }
                }
            }
            if let Some(slot) = row_slot[i] {
                let entry = &mut own[slot];
                if acc {
                    entry.0 += 1;
                    entry.1 = if kind.counts_matches(this) { m } else { 0 };
                } else {
                    entry.0 = entry.0.saturating_sub(1);
                }
            }
        }

        // Write back this side's rows and the other side's changed counts.
        drop(slot_of);
        let mut addresses = addresses;
        let mut own_changes: Vec<weir_state::Change> = slot_rows
            .iter()
            .zip(own)
            .filter_map(|(row, (copies, matches))| {
                let address = addresses[*row].take()?;
                let value = (copies > 0).then(|| {
                    self.sides[this]
                        .state
                        .stamp(now, &encode_entry(copies, matches))
                });
                Some((address, value))
            })
            .collect();
        own_changes.sort_by(|a, b| a.0.cmp(&b.0));
        self.sides[this].state.write(own_changes)?;
        let mut other_changes: Vec<weir_state::Change> =
            expired.into_iter().map(|a| (a, None)).collect();
        for c in &candidates {
            if c.changed {
                let value = self.sides[other]
                    .state
                    .stamp(now, &encode_entry(c.copies, c.matches));
                other_changes.push((c.address.clone(), Some(value)));
            }
        }
        if !other_changes.is_empty() {
            other_changes.sort_by(|a, b| a.0.cmp(&b.0));
            self.sides[other].state.write(other_changes)?;
        }
        candidates.clear();

        if out.ops.is_empty() {
            return Ok(());
        }
        let len = out.ops.len();
        let this_at = UInt32Array::from(std::mem::take(&mut out.this));
        let other_at = UInt32Array::from(std::mem::take(&mut out.other));
        let mut columns = match kind.output_side() {
            None => {
                let this_cols = take_rows(rows.columns(), &this_types, &this_at)?;
                let other_cols = take_rows(&other_columns, &other_types, &other_at)?;
                left_then_right(this, this_cols, other_cols)
            }
            Some(side) if side == this => take_rows(rows.columns(), &this_types, &this_at)?,
            Some(_) => take_rows(&other_columns, &other_types, &other_at)?,
        };
        if self.spec.updating {
            columns.push(Arc::new(Int8Array::from(std::mem::take(&mut out.ops))));
        }
        ctx.emit(RecordBatch::try_new_with_options(
            self.spec.output_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(len)),
        )?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::Duration;

    use crate::message::ChangeKind;
    use datafusion::arrow::array::{AsArray, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::logical_expr::Operator as BinaryOp;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column};
    use weir_state::{BackendConfig, BackendKind, ManualClock};

    use super::*;
    use crate::message::OP_COLUMN;
    use crate::operators::TimerService;

    fn side_schema(prefix: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(format!("{prefix}k"), DataType::Int64, true),
            Field::new(format!("{prefix}v"), DataType::Utf8, true),
        ]))
    }

    fn output_schema(kind: JoinKind, updating: bool) -> SchemaRef {
        let mut fields: Vec<Field> = Vec::new();
        let sides: Vec<&str> = match kind.output_side() {
            None => vec!["l", "r"],
            Some(LEFT) => vec!["l"],
            Some(_) => vec!["r"],
        };
        for s in sides {
            fields.extend(side_schema(s).fields().iter().map(|f| f.as_ref().clone()));
        }
        if updating {
            fields.push(Field::new(OP_COLUMN, DataType::Int8, false));
        }
        Arc::new(Schema::new(fields))
    }

    struct Harness {
        op: Box<dyn Operator>,
        clock: Arc<ManualClock>,
        _dir: tempfile::TempDir,
    }

    impl Harness {
        fn new(
            backend: BackendKind,
            kind: JoinKind,
            filter: Option<Arc<dyn PhysicalExpr>>,
            ttl: Option<Duration>,
        ) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let clock = ManualClock::new(1_000);
            let mut config = BackendConfig::new(backend);
            config.local_dir = Some(dir.path().to_path_buf());
            config.clock = clock.clone();
            let spec = RegularJoinSpec {
                kind,
                keys: [
                    vec![Arc::new(Column::new("lk", 0))],
                    vec![Arc::new(Column::new("rk", 0))],
                ],
                nulls_equal: false,
                filter,
                inputs: [side_schema("l"), side_schema("r")],
                output_schema: output_schema(kind, true),
                updating: true,
                ttl: [ttl, ttl],
                condition: "lk = rk".into(),
                residual: None,
            };
            let ctx = crate::operators::join::test_support::task_context(&spec, config);
            Self {
                op: spec.create(&ctx).unwrap(),
                clock,
                _dir: dir,
            }
        }

        /// Feeds rows `(op, key, value)` to `input`; returns what came out,
        /// one `op|column|column…` string per row.
        fn feed(&mut self, input: usize, rows: &[(&str, Option<i64>, &str)]) -> Vec<String> {
            let prefix = if input == LEFT { "l" } else { "r" };
            let mut fields: Vec<Field> = side_schema(prefix)
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.push(Field::new(OP_COLUMN, DataType::Int8, false));
            let ops: Vec<i8> = rows
                .iter()
                .map(|r| match r.0 {
                    "+I" => 0,
                    "-U" => 1,
                    "+U" => 2,
                    _ => 3,
                })
                .collect();
            let batch = RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                vec![
                    Arc::new(Int64Array::from(
                        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                    )),
                    Arc::new(Int8Array::from(ops)),
                ],
            )
            .unwrap();
            let mut out = Vec::new();
            let mut timers = TimerService::default();
            let clock = self.clock.clone();
            let mut ctx = OperatorContext::new(&mut out, &mut timers, clock.as_ref(), i64::MIN);
            self.op.process_input(input, batch, &mut ctx).unwrap();
            let options = FormatOptions::default().with_null("null");
            let mut lines = Vec::new();
            for b in &out {
                let n = b.num_columns();
                let formatters: Vec<_> = (0..n - 1)
                    .map(|c| ArrayFormatter::try_new(b.column(c).as_ref(), &options).unwrap())
                    .collect();
                let ops = b
                    .column(n - 1)
                    .as_primitive::<datafusion::arrow::datatypes::Int8Type>();
                for r in 0..b.num_rows() {
                    let mut line = ChangeKind::from_i8(ops.value(r)).short().to_string();
                    for f in &formatters {
                        line.push('|');
                        line.push_str(&f.value(r).to_string());
                    }
                    lines.push(line);
                }
            }
            lines
        }
    }

    const BACKENDS: [BackendKind; 2] = [BackendKind::HashMap, BackendKind::RocksDb];

    #[test]
    fn a_left_join_takes_back_its_padded_row_when_a_match_arrives_and_restores_it_when_the_last_goes(
    ) {
        for backend in BACKENDS {
            let mut h = Harness::new(backend, JoinKind::Left, None, None);
            assert_eq!(h.feed(LEFT, &[("+I", Some(1), "a")]), ["+I|1|a|null|null"]);
            assert_eq!(
                h.feed(RIGHT, &[("+I", Some(1), "x")]),
                ["-D|1|a|null|null", "+I|1|a|1|x"],
                "{backend:?}"
            );
            assert_eq!(h.feed(RIGHT, &[("+I", Some(1), "y")]), ["+I|1|a|1|y"]);
            assert_eq!(h.feed(RIGHT, &[("-D", Some(1), "x")]), ["-D|1|a|1|x"]);
            assert_eq!(
                h.feed(RIGHT, &[("-U", Some(1), "y")]),
                ["-D|1|a|1|y", "+I|1|a|null|null"],
                "{backend:?}"
            );
            // A right row of another key matches nothing and pads nothing.
            assert!(h.feed(RIGHT, &[("+I", Some(2), "z")]).is_empty());
            // A second copy of the left row: joined rows and pads twice.
            assert_eq!(h.feed(LEFT, &[("+I", Some(1), "a")]), ["+I|1|a|null|null"]);
            assert_eq!(
                h.feed(RIGHT, &[("+I", Some(1), "w")]),
                [
                    "-D|1|a|null|null",
                    "-D|1|a|null|null",
                    "+I|1|a|1|w",
                    "+I|1|a|1|w"
                ],
                "{backend:?}"
            );
        }
    }

    #[test]
    fn a_full_join_pads_both_sides_and_null_keys_never_match() {
        for backend in BACKENDS {
            let mut h = Harness::new(backend, JoinKind::Full, None, None);
            assert_eq!(h.feed(RIGHT, &[("+I", Some(1), "x")]), ["+I|null|null|1|x"]);
            assert_eq!(
                h.feed(LEFT, &[("+I", Some(1), "a"), ("+I", None, "n")]),
                ["-D|null|null|1|x", "+I|1|a|1|x", "+I|null|n|null|null"],
                "{backend:?}"
            );
            assert_eq!(h.feed(RIGHT, &[("+I", None, "m")]), ["+I|null|null|null|m"]);
            // Rows within one batch see each other's effects in order.
            assert_eq!(
                h.feed(LEFT, &[("-D", Some(1), "a"), ("+I", Some(1), "b")]),
                [
                    "-D|1|a|1|x",
                    "+I|null|null|1|x",
                    "-D|null|null|1|x",
                    "+I|1|b|1|x"
                ],
                "{backend:?}"
            );
        }
    }

    #[test]
    fn the_residual_condition_decides_which_pairs_match() {
        for backend in BACKENDS {
            // l.v < r.v over the pair (lk, lv, rk, rv).
            let filter: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
                Arc::new(Column::new("lv", 1)),
                BinaryOp::Lt,
                Arc::new(Column::new("rv", 3)),
            ));
            let mut h = Harness::new(backend, JoinKind::Left, Some(filter), None);
            assert_eq!(
                h.feed(RIGHT, &[("+I", Some(1), "b"), ("+I", Some(1), "d")]),
                Vec::<String>::new()
            );
            assert_eq!(
                h.feed(LEFT, &[("+I", Some(1), "c"), ("+I", Some(1), "e")]),
                ["+I|1|c|1|d", "+I|1|e|null|null"],
                "{backend:?}"
            );
        }
    }

    #[test]
    fn semi_and_anti_joins_emit_a_row_while_it_has_a_match_or_none() {
        for backend in BACKENDS {
            let mut semi = Harness::new(backend, JoinKind::LeftSemi, None, None);
            let mut anti = Harness::new(backend, JoinKind::LeftAnti, None, None);
            assert!(semi.feed(LEFT, &[("+I", Some(1), "a")]).is_empty());
            assert_eq!(anti.feed(LEFT, &[("+I", Some(1), "a")]), ["+I|1|a"]);
            let two = [("+I", Some(1), "x"), ("+I", Some(1), "y")];
            assert_eq!(semi.feed(RIGHT, &two), ["+I|1|a"], "{backend:?}");
            assert_eq!(anti.feed(RIGHT, &two), ["-D|1|a"], "{backend:?}");
            let back = [("-D", Some(1), "x")];
            assert!(semi.feed(RIGHT, &back).is_empty());
            assert!(anti.feed(RIGHT, &back).is_empty());
            let last = [("-D", Some(1), "y")];
            assert_eq!(semi.feed(RIGHT, &last), ["-D|1|a"]);
            assert_eq!(anti.feed(RIGHT, &last), ["+I|1|a"]);
            // A NULL key: never in a semi join, always in an anti join.
            assert!(semi.feed(LEFT, &[("+I", None, "n")]).is_empty());
            assert_eq!(anti.feed(LEFT, &[("+I", None, "n")]), ["+I|null|n"]);
        }
    }

    #[test]
    fn rows_expire_with_the_state_ttl() {
        for backend in BACKENDS {
            let mut h = Harness::new(
                backend,
                JoinKind::Inner,
                None,
                Some(Duration::from_secs(60)),
            );
            assert!(h.feed(RIGHT, &[("+I", Some(1), "x")]).is_empty());
            h.clock.advance(Duration::from_secs(30));
            assert_eq!(h.feed(LEFT, &[("+I", Some(1), "a")]), ["+I|1|a|1|x"]);
            h.clock.advance(Duration::from_secs(31));
            // The right row is gone; the left one (written 31 s ago) is not.
            assert!(
                h.feed(LEFT, &[("+I", Some(1), "b")]).is_empty(),
                "{backend:?}"
            );
            assert_eq!(
                h.feed(RIGHT, &[("+I", Some(1), "y")]),
                ["+I|1|a|1|y", "+I|1|b|1|y"],
                "{backend:?}"
            );
        }
    }
}
