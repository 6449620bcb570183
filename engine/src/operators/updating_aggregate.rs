//! `GROUP BY` without a window: every input batch updates its groups, and the
//! operator emits the changes as a changelog — `+I` for a new group, `-U`/`+U`
//! for a changed result. Nothing is emitted for a group whose result did not
//! change.
//!
//! Groups in use live in memory as accumulators (the cache, bounded by
//! `table.exec.state.cache-size`): per batch, the batch's distinct keys are
//! interned, the rows ordered by group, and each touched group's
//! accumulators updated once with its slice of the batch. A group that is
//! not cached is loaded from the backend (one batched read for the batch's
//! missing groups). When the cache is full, and before a snapshot, the
//! changed groups are written to the backend in one sorted batch, as
//!
//! ```text
//! [varint length][accumulator state row][last emitted result row]
//! ```
//!
//! Keeping accumulators alive matters for aggregates whose state grows with
//! the data (`COUNT(DISTINCT)`): rebuilding them from bytes on every batch
//! would cost the whole state each time.
//!
//! With `table.exec.state.ttl`, a group idle for longer is forgotten: its
//! next row starts it afresh (`+I`), as in Flink.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int8Array, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::Accumulator;
use datafusion::scalar::ScalarValue;
use weir_state::codec::{get_varint, put_varint};
use weir_state::ttl::{unwrap_stamp, wrap_stamp};
use weir_state::{StateDescriptor, StateKind, StateTtlConfig};

use super::aggregate_state::{AggregateSpec, GroupKeys};
use super::aggregate_store::{take_columns, AggregateStore};
use super::row_codec::{split_columns, RowCodec};
use super::{Operator, OperatorContext, OperatorFactory, TaskContext};
use crate::config::StateSettings;
use crate::error::{EngineError, Result};
use crate::message::ChangeKind;
use crate::metrics::NodeMetrics;

/// Planner output for an updating (non-windowed) aggregate.
#[derive(Clone)]
pub struct UpdatingAggregateSpec {
    /// Keys and aggregate calls; the output schema ends with the op column.
    pub aggregate: AggregateSpec,
    /// The keys the input was hash-partitioned by (indexes into the keys).
    pub partition_keys: Vec<usize>,
    /// Whether the input is a changelog: its `-U`/`-D` rows are taken back
    /// (every call has a retractable accumulator), and the last call is a
    /// hidden count of each group's rows, which deletes (`-D`) a group
    /// whose rows are all gone.
    pub changelog_input: bool,
}

impl UpdatingAggregateSpec {
    /// The calls whose results are output (all but the hidden row count).
    fn visible(&self) -> usize {
        self.aggregate.aggregates.len() - usize::from(self.changelog_input)
    }
}

impl OperatorFactory for UpdatingAggregateSpec {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let descriptor = self.descriptor(&ctx.state);
        let ttl = descriptor.ttl.clone();
        let store = AggregateStore::open(
            &self.aggregate,
            self.partition_keys.clone(),
            &descriptor,
            ctx,
        )?;
        let result_types: Vec<_> = self
            .aggregate
            .output_schema
            .fields()
            .iter()
            .skip(self.aggregate.group_schema.fields().len())
            .take(self.visible())
            .map(|f| f.data_type().clone())
            .collect();
        Ok(Box::new(UpdatingAggregateOperator {
            spec: self.clone(),
            group_ids: Vec::new(),
            results: RowCodec::new(&result_types)?,
            store,
            ttl,
            groups: Vec::new(),
            index: HashMap::new(),
            cache_limit: ctx.state.cache_entries,
            sweep_from: Vec::new(),
            batches: 0,
        }))
    }

    fn describe(&self) -> String {
        format!("GroupAggregate({})", self.aggregate.describe())
    }

    fn kind(&self) -> &'static str {
        "GroupAggregate"
    }

    fn states(&self, settings: &StateSettings) -> Vec<StateDescriptor> {
        vec![self.descriptor(settings)]
    }

    fn is_stateful(&self) -> bool {
        true
    }

    fn state_signature(&self) -> Option<Vec<(String, String)>> {
        Some(self.aggregate.state_signature(&self.partition_keys))
    }
}

impl UpdatingAggregateSpec {
    /// The groups' state: `table.exec.state.ttl` bounds it.
    fn descriptor(&self, settings: &StateSettings) -> StateDescriptor {
        let mut d = StateDescriptor::new("group-aggregate", StateKind::Raw);
        d.ttl = settings.ttl.map(StateTtlConfig::new);
        d
    }
}

/// A group held in memory.
struct Group {
    address: Vec<u8>,
    accumulators: Vec<Box<dyn Accumulator>>,
    /// What was last emitted for the group, to retract it on change.
    emitted: Option<Vec<ScalarValue>>,
    /// When it was last written (for TTL).
    stamp: i64,
    /// Whether the backend's copy is older.
    dirty: bool,
}

impl Group {
    /// An empty group, while the real one is borrowed elsewhere.
    fn placeholder() -> Self {
        Group {
            address: Vec::new(),
            accumulators: Vec::new(),
            emitted: None,
            stamp: 0,
            dirty: false,
        }
    }
}

/// Runs an [`UpdatingAggregateSpec`].
pub struct UpdatingAggregateOperator {
    spec: UpdatingAggregateSpec,
    group_ids: Vec<usize>,
    /// Encodes aggregate results (the last emitted row of each group).
    results: RowCodec,
    /// The backend, with the codecs of keys and accumulator states.
    store: AggregateStore,
    ttl: Option<StateTtlConfig>,
    /// Cached groups, and their slots by address.
    groups: Vec<Group>,
    index: HashMap<Vec<u8>, usize>,
    cache_limit: usize,
    /// Where the next sweep for expired entries starts.
    sweep_from: Vec<u8>,
    batches: u64,
}

fn split_entry(entry: &[u8]) -> Result<(&[u8], &[u8])> {
    let mut rest = entry;
    let len = get_varint(&mut rest)? as usize;
    if len > rest.len() {
        return Err(EngineError::State("aggregate entry is truncated".into()));
    }
    Ok(rest.split_at(len))
}

/// Row `row` of each column, as scalars.
fn scalars(columns: &[ArrayRef], row: usize) -> Result<Vec<ScalarValue>> {
    Ok(columns
        .iter()
        .map(|c| ScalarValue::try_from_array(c, row))
        .collect::<datafusion::error::Result<_>>()?)
}

/// Scalars of one type into an array (an empty array when there are none).
fn to_array(
    values: Vec<ScalarValue>,
    data_type: &datafusion::arrow::datatypes::DataType,
) -> Result<ArrayRef> {
    if values.is_empty() {
        Ok(datafusion::arrow::array::new_empty_array(data_type))
    } else {
        Ok(ScalarValue::iter_to_array(values)?)
    }
}

impl UpdatingAggregateOperator {
    fn fresh_accumulators(&self) -> Result<Vec<Box<dyn Accumulator>>> {
        self.spec
            .aggregate
            .aggregates
            .iter()
            .map(|a| a.create_accumulator())
            .collect()
    }

    /// How many live rows a group has (over a changelog; otherwise at
    /// least one).
    fn live_rows(&self, group: &mut Group) -> Result<i64> {
        if !self.spec.changelog_input {
            return Ok(1);
        }
        match group.accumulators.last_mut().map(|a| a.evaluate()) {
            Some(Ok(ScalarValue::Int64(Some(n)))) => Ok(n),
            Some(Err(e)) => Err(e.into()),
            _ => Err(EngineError::Internal(
                "a changelog aggregate without its row count".into(),
            )),
        }
    }

    /// Makes sure every address has a cached group, loading the missing
    /// ones from the backend in one read; returns the slots, in order.
    fn slots(&mut self, addresses: Vec<Vec<u8>>, now: i64) -> Result<Vec<usize>> {
        let mut slots = vec![usize::MAX; addresses.len()];
        let mut missing = Vec::new();
        for (i, a) in addresses.iter().enumerate() {
            match self.index.get(a) {
                Some(&s) => {
                    if self
                        .ttl
                        .as_ref()
                        .is_some_and(|t| t.expired(self.groups[s].stamp, now))
                    {
                        // Forgotten: start afresh (it is still counted).
                        self.groups[s].accumulators = self.fresh_accumulators()?;
                        self.groups[s].emitted = None;
                    }
                    slots[i] = s;
                }
                None => missing.push(i),
            }
        }
        if missing.is_empty() {
            return Ok(slots);
        }
        let refs: Vec<&[u8]> = missing.iter().map(|i| addresses[*i].as_slice()).collect();
        let stored = self.store.multi_get(&refs)?;
        let mut loaded: Vec<(usize, Vec<u8>)> = Vec::new(); // (index in missing, entry)
        let mut new_groups = 0i64;
        for (m, value) in stored.into_iter().enumerate() {
            match (value, &self.ttl) {
                (None, _) => new_groups += 1,
                (Some(v), None) => loaded.push((m, v)),
                (Some(v), Some(ttl)) => {
                    if let Some((stamp, entry)) = unwrap_stamp(&v) {
                        if !ttl.expired(stamp, now) {
                            loaded.push((m, entry.to_vec()));
                        }
                    }
                }
            }
        }
        self.store.count_stored(new_groups);
        // Decode the loaded states and results a batch at a time.
        let mut state_rows = Vec::with_capacity(loaded.len());
        let mut result_rows = Vec::with_capacity(loaded.len());
        for (_, entry) in &loaded {
            let (state, result) = split_entry(entry)?;
            state_rows.push(state);
            result_rows.push(result);
        }
        let state_columns = if loaded.is_empty() {
            Vec::new()
        } else {
            self.store
                .state_codec()
                .decode(state_rows.iter().copied())?
        };
        let result_columns = if loaded.is_empty() {
            Vec::new()
        } else {
            self.results.decode(result_rows.iter().copied())?
        };
        let per_call = split_columns(state_columns, self.store.state_widths());
        let mut from_store: HashMap<usize, usize> = HashMap::new();
        for (row, (m, _)) in loaded.iter().enumerate() {
            from_store.insert(*m, row);
        }
        for (m, i) in missing.into_iter().enumerate() {
            let mut accumulators = self.fresh_accumulators()?;
            let mut emitted = None;
            if let Some(&row) = from_store.get(&m) {
                for (acc, cols) in accumulators.iter_mut().zip(&per_call) {
                    let slices: Vec<ArrayRef> = cols.iter().map(|c| c.slice(row, 1)).collect();
                    acc.merge_batch(&slices)?;
                }
                emitted = Some(scalars(&result_columns, row)?);
            }
            let slot = self.groups.len();
            self.index.insert(addresses[i].clone(), slot);
            self.groups.push(Group {
                address: addresses[i].clone(),
                accumulators,
                emitted,
                stamp: now,
                dirty: true,
            });
            slots[i] = slot;
        }
        Ok(slots)
    }

    /// Writes the changed groups to the backend and empties the cache; with
    /// TTL, also sweeps some stored entries for expired ones.
    fn flush(&mut self) -> Result<()> {
        let mut dirty: Vec<Group> = self.groups.drain(..).filter(|g| g.dirty).collect();
        self.index.clear();
        // Groups whose rows were all taken back leave the state.
        let mut gone: Vec<weir_state::Change> = Vec::new();
        if self.spec.changelog_input {
            let mut live = Vec::with_capacity(dirty.len());
            for mut g in dirty {
                if self.live_rows(&mut g)? > 0 {
                    live.push(g);
                } else {
                    gone.push((g.address, None));
                }
            }
            dirty = live;
        }
        if !gone.is_empty() {
            gone.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            self.store.write(gone)?;
        }
        let visible = self.spec.visible();
        if !dirty.is_empty() {
            let n = dirty.len();
            let mut state_values: Vec<Vec<ScalarValue>> =
                vec![Vec::with_capacity(n); self.store.state_codec().types().len()];
            let mut result_values: Vec<Vec<ScalarValue>> =
                vec![Vec::with_capacity(n); self.results.types().len()];
            let mut groups = dirty;
            for g in &mut groups {
                let mut column = 0;
                for acc in &mut g.accumulators {
                    for v in acc.state()? {
                        state_values[column].push(v);
                        column += 1;
                    }
                }
                let emitted = match g.emitted.take() {
                    Some(e) => e,
                    None => g
                        .accumulators
                        .iter_mut()
                        .take(visible)
                        .map(|a| a.evaluate())
                        .collect::<datafusion::error::Result<_>>()?,
                };
                for (c, v) in emitted.into_iter().enumerate() {
                    result_values[c].push(v);
                }
            }
            let state_columns = state_values
                .into_iter()
                .zip(self.store.state_codec().types())
                .map(|(v, t)| to_array(v, t))
                .collect::<Result<Vec<_>>>()?;
            let result_columns = result_values
                .into_iter()
                .zip(self.results.types())
                .map(|(v, t)| to_array(v, t))
                .collect::<Result<Vec<_>>>()?;
            let state_rows = self.store.encode_states(&state_columns, n)?;
            let result_rows = self.results.encode(&result_columns, n)?;
            let ttl = self.ttl.is_some();
            let mut changes: Vec<weir_state::Change> = groups
                .into_iter()
                .enumerate()
                .map(|(i, g)| {
                    let state = state_rows.row(i);
                    let result = result_rows.row(i);
                    let mut entry = Vec::with_capacity(state.len() + result.len() + 3);
                    put_varint(&mut entry, state.len() as u64);
                    entry.extend_from_slice(state);
                    entry.extend_from_slice(result);
                    let value = if ttl {
                        wrap_stamp(g.stamp, &entry)
                    } else {
                        entry
                    };
                    (g.address, Some(value))
                })
                .collect();
            // Address order makes RocksDB's batch cheaper to apply.
            changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let written = changes.len();
            self.store.write(changes)?;
            if ttl {
                self.sweep_expired(2 * written.max(64))?;
            }
        }
        Ok(())
    }

    /// Deletes expired entries among the next `limit` stored ones, going
    /// round the key space across calls (incremental clean-up, so that
    /// `hashmap` state does not keep forgotten keys forever).
    fn sweep_expired(&mut self, limit: usize) -> Result<()> {
        let Some(ttl) = self.ttl.clone() else {
            return Ok(());
        };
        let now = self.store.now_ms()?;
        let mut seen = 0usize;
        let mut expired = Vec::new();
        let mut last = None;
        let start = std::mem::take(&mut self.sweep_from);
        let id = self.store.state_id();
        self.store.backend()?.scan(id, &start, None, &mut |k, v| {
            if seen == limit {
                return Ok(weir_state::Scan::Stop);
            }
            seen += 1;
            if unwrap_stamp(v).is_none_or(|(stamp, _)| ttl.expired(stamp, now)) {
                expired.push((k.to_vec(), None));
            }
            last = Some(k.to_vec());
            Ok(weir_state::Scan::Continue)
        })?;
        if seen == limit {
            if let Some(mut k) = last {
                k.push(0);
                self.sweep_from = k;
            }
        }
        if !expired.is_empty() {
            let n = expired.len() as i64;
            self.store.write(expired)?;
            self.store.count_stored(-n);
        }
        Ok(())
    }

    fn cached_bytes(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.address.len() + g.accumulators.iter().map(|a| a.size()).sum::<usize>())
            .sum()
    }
}

impl Operator for UpdatingAggregateOperator {
    fn process_batch(&mut self, batch: RecordBatch, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let spec = self.spec.aggregate.clone();
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let keys = spec.keys(&batch)?;
        // A fresh key table per batch: DataFusion's multi-column group
        // values do not support interning again after emitting everything.
        let mut values = GroupKeys::new(&spec.group_schema)?;
        values.intern(&keys, rows, &mut self.group_ids)?;
        let touched = values.len();
        let distinct = values.emit()?;
        let key_groups = self.store.key_groups(&distinct, touched)?;
        let key_rows = self.store.encode_keys(&distinct, touched)?;
        let addresses: Vec<Vec<u8>> = (0..touched)
            .map(|g| {
                let key = key_rows.row(g);
                let mut a = Vec::with_capacity(2 + key.len());
                a.extend_from_slice(&key_groups[g].to_be_bytes());
                a.extend_from_slice(key);
                a
            })
            .collect();
        let now = self.store.now_ms()?;
        let slots = self.slots(addresses, now)?;

        // Order the rows by group (a stable counting sort), so that each
        // group's accumulators see one contiguous slice of the batch.
        let mut offsets = vec![0usize; touched + 1];
        for &g in &self.group_ids {
            offsets[g + 1] += 1;
        }
        for g in 0..touched {
            offsets[g + 1] += offsets[g];
        }
        let mut cursor = offsets.clone();
        let mut order = vec![0u32; rows];
        for (row, &g) in self.group_ids.iter().enumerate() {
            order[cursor[g]] = row as u32;
            cursor[g] += 1;
        }
        let all_rows = UInt32Array::from(order.clone());
        // Over a changelog, `+I`/`+U` rows are added and `-U`/`-D` rows taken
        // back: one pass each.
        let adds: Option<Vec<bool>> = if self.spec.changelog_input {
            let (_, ops) = crate::message::split_changes(&batch);
            let ops = ops.ok_or_else(|| {
                EngineError::Internal("a changelog aggregate got rows without change kinds".into())
            })?;
            Some(crate::message::additions(&ops))
        } else {
            None
        };
        let passes: &[bool] = if adds.is_some() {
            &[true, false]
        } else {
            &[true]
        };
        for a in 0..spec.aggregates.len() {
            let (args, mask) = spec.arguments(a, &batch)?;
            for &adding in passes {
                // Keep the rows of this pass that pass the FILTER, still
                // ordered by group: one index array and one take per
                // argument, not a filter per group.
                let (indices, bounds) = match (&mask, &adds) {
                    (None, None) => (all_rows.clone(), offsets.clone()),
                    _ => {
                        let mut kept = Vec::with_capacity(rows);
                        let mut bounds = Vec::with_capacity(touched + 1);
                        bounds.push(0);
                        for g in 0..touched {
                            for &row in &order[offsets[g]..offsets[g + 1]] {
                                let r = row as usize;
                                let passes_filter =
                                    mask.as_ref().is_none_or(|m| m.is_valid(r) && m.value(r));
                                let in_pass = adds.as_ref().is_none_or(|s| s[r] == adding);
                                if passes_filter && in_pass {
                                    kept.push(row);
                                }
                            }
                            bounds.push(kept.len());
                        }
                        (UInt32Array::from(kept), bounds)
                    }
                };
                if indices.is_empty() {
                    continue;
                }
                let args: Vec<ArrayRef> = args
                    .iter()
                    .map(|c| take(c, &indices, None))
                    .collect::<std::result::Result<_, _>>()?;
                for g in 0..touched {
                    let (start, len) = (bounds[g], bounds[g + 1] - bounds[g]);
                    if len == 0 {
                        continue;
                    }
                    let slice: Vec<ArrayRef> = args.iter().map(|c| c.slice(start, len)).collect();
                    let acc = &mut self.groups[slots[g]].accumulators[a];
                    if adding {
                        acc.update_batch(&slice)?;
                    } else {
                        acc.retract_batch(&slice)?;
                    }
                }
            }
        }

        // Compare each touched group's result with what it emitted last.
        let mut key_picks: Vec<u32> = Vec::new();
        let visible = self.spec.visible();
        let mut out_values: Vec<Vec<ScalarValue>> = vec![Vec::new(); visible];
        let mut ops: Vec<i8> = Vec::new();
        for (g, &slot) in slots.iter().enumerate() {
            let mut group = std::mem::replace(&mut self.groups[slot], Group::placeholder());
            let live = self.live_rows(&mut group);
            let group = {
                self.groups[slot] = group;
                &mut self.groups[slot]
            };
            let live = live?;
            group.stamp = now;
            group.dirty = true;
            if live <= 0 {
                // Every row of the group was taken back: it is deleted.
                if let Some(old) = group.emitted.take() {
                    key_picks.push(g as u32);
                    for (col, v) in out_values.iter_mut().zip(&old) {
                        col.push(v.clone());
                    }
                    ops.push(ChangeKind::Delete as i8);
                }
                continue;
            }
            let new: Vec<ScalarValue> = group
                .accumulators
                .iter_mut()
                .take(visible)
                .map(|acc| acc.evaluate())
                .collect::<datafusion::error::Result<_>>()?;
            let mut push = |values: &[ScalarValue], kind: ChangeKind| {
                key_picks.push(g as u32);
                for (col, v) in out_values.iter_mut().zip(values) {
                    col.push(v.clone());
                }
                ops.push(kind as i8);
            };
            match &group.emitted {
                None => push(&new, ChangeKind::Insert),
                Some(old) if *old != new => {
                    push(old, ChangeKind::UpdateBefore);
                    push(&new, ChangeKind::UpdateAfter);
                }
                Some(_) => continue,
            }
            group.emitted = Some(new);
        }

        if self.groups.len() > self.cache_limit {
            self.flush()?;
            self.store.publish(self.store.stored(), 0)?;
        } else {
            self.batches += 1;
            if self.batches.is_multiple_of(16) {
                let bytes = self.cached_bytes();
                self.store.publish(self.store.stored(), bytes)?;
            }
        }

        if ops.is_empty() {
            return Ok(());
        }
        let mut columns = take_columns(&distinct, &key_picks)?;
        for (values, data_type) in out_values.into_iter().zip(self.results.types()) {
            columns.push(to_array(values, data_type)?);
        }
        columns.push(Arc::new(Int8Array::from(ops)));
        let batch = RecordBatch::try_new(spec.output_schema.clone(), columns)?;
        NodeMetrics::add(&self.store.metrics().records_out, batch.num_rows());
        ctx.emit(batch);
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        let bytes = self.cached_bytes();
        self.store.publish(self.store.stored(), bytes)
    }

    fn prepare_snapshot(&mut self) -> Result<()> {
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int8Type, Schema};
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::col;
    use weir_state::{BackendConfig, BackendKind, KeyGroupRange};

    use super::*;
    use crate::config::StateSettings;
    use crate::operators::aggregate_state::AggregateCall;

    /// `SELECT k, COUNT(v) FROM t GROUP BY k` on one subtask.
    fn operator(
        kind: BackendKind,
        dir: &std::path::Path,
    ) -> (Box<dyn Operator>, BackendConfig, super::super::StateHandle) {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let count = AggregateExprBuilder::new(count_udaf(), vec![col("v", &input).unwrap()])
            .schema(input.clone())
            .alias("c")
            .build()
            .unwrap();
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("c", DataType::Int64, false),
            Field::new(crate::message::OP_COLUMN, DataType::Int8, false),
        ]));
        let spec = UpdatingAggregateSpec {
            aggregate: AggregateSpec::new(
                vec![col("k", &input).unwrap()],
                vec![Field::new("k", DataType::Int64, false)],
                vec![AggregateCall::new(Arc::new(count), None)],
                output,
            ),
            partition_keys: vec![0],
            changelog_input: false,
        };
        let mut backend = BackendConfig::new(kind);
        backend.local_dir = Some(dir.join("local"));
        let settings = StateSettings {
            backend: backend.clone(),
            ttl: None,
            // Large: every group stays cached until the snapshot.
            cache_entries: 1000,
        };
        let mut state = backend.create("test").unwrap();
        for d in spec.states(&settings) {
            state.register(&d).unwrap();
        }
        let handle = super::super::StateHandle::new(state);
        let ctx = TaskContext {
            subtask: 0,
            parallelism: 1,
            max_parallelism: 128,
            batch_size: 1024,
            metrics: Arc::new(NodeMetrics::new()),
            job_id: "test".into(),
            node: 0,
            state: Arc::new(settings),
            backend: Some(handle.clone()),
            operator_state: Vec::new(),
            checkpointing: false,
        };
        (spec.create(&ctx).unwrap(), backend, handle)
    }

    fn batch(keys: Vec<i64>) -> RecordBatch {
        let v = Int64Array::from(vec![1; keys.len()]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(keys)), Arc::new(v)]).unwrap()
    }

    /// A snapshot holds the groups the operator caches in memory: they are
    /// written to the backend first.
    #[test]
    fn snapshots_include_cached_groups() {
        for kind in [BackendKind::HashMap, BackendKind::RocksDb] {
            let dir = tempfile::tempdir().unwrap();
            let (mut op, config, handle) = operator(kind, dir.path());
            let mut out = Vec::new();
            let mut timers = crate::operators::TimerService::default();
            let clock = weir_state::SystemClock;
            let mut ctx = OperatorContext::new(&mut out, &mut timers, &clock, i64::MIN);
            op.process_batch(batch(vec![1, 2, 3, 1]), &mut ctx).unwrap();
            op.process_batch(batch(vec![2]), &mut ctx).unwrap();
            let ops: Vec<i8> = out
                .iter()
                .flat_map(|b| b.column(2).as_primitive::<Int8Type>().values().to_vec())
                .collect();
            // +I 1, +I 2, +I 3, then -U/+U for key 2.
            assert_eq!(ops, vec![0, 0, 0, 1, 2], "{kind:?}");

            let snapshot = dir.path().join("snapshot");
            std::fs::create_dir_all(&snapshot).unwrap();
            // What the runtime does at a barrier.
            op.prepare_snapshot().unwrap();
            let info = handle.lock().unwrap().snapshot(&snapshot).unwrap();
            assert!(info.bytes > 0);
            let mut restored = weir_state::restore_backend(
                &config,
                "restored",
                &snapshot,
                KeyGroupRange::all(128),
            )
            .unwrap();
            let mut canonical = Vec::new();
            let entries = restored
                .export(&mut canonical, KeyGroupRange::all(128))
                .unwrap();
            assert_eq!(entries, 3, "{kind:?}: one entry per group");
        }
    }
}
