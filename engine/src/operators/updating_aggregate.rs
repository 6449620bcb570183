//! `GROUP BY` without a window: every input batch updates its groups, and the
//! operator emits the changes as a changelog — `+I` for a new group, `-U`/`+U`
//! for a changed result. Nothing is emitted for a group whose result did not
//! change.
//!
//! Per batch, vectorized: the batch's distinct keys are interned, their
//! stored accumulator states fetched (from the in-memory cache, or from the
//! backend in one batched read), merged with the batch's rows, and the new
//! results compared with what each group last emitted. A group's entry holds
//! its accumulator state and its last emitted result:
//!
//! ```text
//! [varint length][state row][emitted row]
//! ```
//!
//! With `table.exec.state.ttl`, a group idle for longer is forgotten: its
//! next row starts it afresh (`+I`), as in Flink.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{new_empty_array, ArrayRef, Int8Array};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::EmitTo;
use weir_state::codec::{get_varint, put_varint};
use weir_state::ttl::{unwrap_stamp, wrap_stamp};
use weir_state::StateTtlConfig;

use super::aggregate_state::{AggregateSpec, GroupKeys};
use super::aggregate_store::{take_columns, AggregateStore};
use super::row_codec::RowCodec;
use super::{Operator, OperatorFactory, TaskContext};
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
}

impl OperatorFactory for UpdatingAggregateSpec {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let ttl = ctx.state.ttl.map(StateTtlConfig::new);
        let store = AggregateStore::open(
            &self.aggregate,
            self.partition_keys.clone(),
            "group-aggregate",
            ttl.clone(),
            ctx,
        )?;
        let result_types: Vec<_> = self
            .aggregate
            .output_schema
            .fields()
            .iter()
            .skip(self.aggregate.group_schema.fields().len())
            .take(self.aggregate.aggregates.len())
            .map(|f| f.data_type().clone())
            .collect();
        Ok(Box::new(UpdatingAggregateOperator {
            spec: self.clone(),
            group_ids: Vec::new(),
            results: RowCodec::new(&result_types)?,
            store,
            ttl,
            cache: HashMap::new(),
            cache_limit: ctx.state.cache_entries,
            cached_bytes: 0,
            sweep_from: Vec::new(),
            batches: 0,
        }))
    }

    fn describe(&self) -> String {
        format!("GroupAggregate({})", self.aggregate.describe())
    }

    fn is_stateful(&self) -> bool {
        true
    }
}

/// A group's entry while it is cached in memory.
struct Cached {
    /// `[varint length][state row][emitted row]`.
    entry: Vec<u8>,
    /// When it was last written (for TTL).
    stamp: i64,
    /// Whether the backend's copy is older.
    dirty: bool,
}

/// Runs an [`UpdatingAggregateSpec`].
pub struct UpdatingAggregateOperator {
    spec: UpdatingAggregateSpec,
    group_ids: Vec<usize>,
    /// Encodes aggregate results, to compare and retract them.
    results: RowCodec,
    store: AggregateStore,
    ttl: Option<StateTtlConfig>,
    cache: HashMap<Vec<u8>, Cached>,
    cache_limit: usize,
    cached_bytes: usize,
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

impl UpdatingAggregateOperator {
    /// Each group's stored entry, `None` for a new (or expired) group; and
    /// how many of the groups were not held at all (new to the state).
    fn fetch(&mut self, addresses: &[Vec<u8>], now: i64) -> Result<(Vec<Option<Vec<u8>>>, u64)> {
        let mut found: Vec<Option<Vec<u8>>> = Vec::with_capacity(addresses.len());
        let mut missing = Vec::new();
        let mut new_groups = 0;
        for (i, a) in addresses.iter().enumerate() {
            match self.cache.get(a) {
                Some(c) if !self.ttl.as_ref().is_some_and(|t| t.expired(c.stamp, now)) => {
                    found.push(Some(c.entry.clone()))
                }
                Some(_) => found.push(None),
                None => {
                    found.push(None);
                    missing.push(i);
                }
            }
        }
        if !missing.is_empty() {
            let refs: Vec<&[u8]> = missing.iter().map(|i| addresses[*i].as_slice()).collect();
            for (i, stored) in missing.iter().zip(self.store.multi_get(&refs)?) {
                if stored.is_none() {
                    new_groups += 1;
                }
                found[*i] = match (stored, &self.ttl) {
                    (None, _) => None,
                    (Some(v), None) => Some(v),
                    (Some(v), Some(ttl)) => match unwrap_stamp(&v) {
                        Some((stamp, entry)) if !ttl.expired(stamp, now) => Some(entry.to_vec()),
                        _ => None,
                    },
                };
            }
        }
        Ok((found, new_groups))
    }

    /// Writes the cache's changed entries to the backend and empties it;
    /// with TTL, also sweeps some stored entries for expired ones.
    fn flush(&mut self) -> Result<()> {
        let ttl = self.ttl.is_some();
        let mut changes: Vec<weir_state::Change> = self
            .cache
            .drain()
            .filter(|(_, c)| c.dirty)
            .map(|(a, c)| {
                let value = if ttl {
                    wrap_stamp(c.stamp, &c.entry)
                } else {
                    c.entry
                };
                (a, Some(value))
            })
            .collect();
        self.cached_bytes = 0;
        // Address order makes RocksDB's batch cheaper to apply.
        changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let written = changes.len();
        self.store.write(changes)?;
        if ttl {
            self.sweep_expired(2 * written.max(64))?;
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
        let now = self.store.now_ms();
        let mut seen = 0usize;
        let mut expired = Vec::new();
        let mut last = None;
        let start = std::mem::take(&mut self.sweep_from);
        let id = self.store.state_id();
        self.store.backend().scan(id, &start, None, &mut |k, v| {
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
}

impl Operator for UpdatingAggregateOperator {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let spec = self.spec.aggregate.clone();
        let spec = &spec;
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let keys = spec.keys(&batch)?;
        // A fresh key table per batch: DataFusion's multi-column group
        // values do not support interning again after emitting everything.
        let mut values = GroupKeys::new(&spec.group_schema)?;
        values.intern(&keys, rows, &mut self.group_ids)?;
        let groups = values.len();
        let distinct = values.emit()?;

        let key_groups = self.store.key_groups(&distinct, groups)?;
        let key_rows = self.store.encode_keys(&distinct, groups)?;
        let addresses: Vec<Vec<u8>> = (0..groups)
            .map(|g| {
                let key = key_rows.row(g);
                let mut a = Vec::with_capacity(2 + key.len());
                a.extend_from_slice(&key_groups[g].to_be_bytes());
                a.extend_from_slice(key);
                a
            })
            .collect();
        let now = self.store.now_ms();
        let (previous, new_groups) = self.fetch(&addresses, now)?;
        self.store.count_stored(new_groups as i64);
        let mut prior_states: Vec<&[u8]> = Vec::new();
        let mut prior_groups: Vec<usize> = Vec::new();
        for (g, entry) in previous.iter().enumerate() {
            if let Some(entry) = entry {
                prior_states.push(split_entry(entry)?.0);
                prior_groups.push(g);
            }
        }

        // Accumulate: stored states, then this batch's rows.
        let mut accs = self.store.accumulators(spec)?;
        self.store
            .merge_encoded(&mut accs, &prior_states, &prior_groups, groups)?;
        for (i, acc) in accs.iter_mut().enumerate() {
            let (args, filter) = spec.arguments(i, &batch)?;
            acc.update_batch(&args, &self.group_ids, filter.as_ref(), groups)?;
        }
        let states = AggregateStore::take_states(&mut accs)?;
        let state_rows = self.store.encode_states(&states, groups)?;
        // The results, from a copy of the new states (evaluating consumes
        // an accumulator).
        let mut eval = self.store.accumulators(spec)?;
        let all: Vec<usize> = (0..groups).collect();
        self.store.merge_columns(&mut eval, states, &all, groups)?;
        let results: Vec<ArrayRef> = eval
            .iter_mut()
            .map(|a| a.evaluate(EmitTo::All))
            .collect::<datafusion::error::Result<_>>()?;
        let result_rows = self.results.encode(&results, groups)?;

        // Compare with what each group emitted last.
        let mut picks: Vec<(usize, usize)> = Vec::new(); // (0: new / 1: old, row)
        let mut key_picks: Vec<u32> = Vec::new();
        let mut ops: Vec<i8> = Vec::new();
        let mut retracted: Vec<&[u8]> = Vec::new();
        for (g, entry) in previous.iter().enumerate() {
            let new = result_rows.row(g);
            match entry {
                None => {
                    picks.push((0, g));
                    key_picks.push(g as u32);
                    ops.push(ChangeKind::Insert as i8);
                }
                Some(entry) => {
                    let old = split_entry(entry)?.1;
                    if old != new {
                        picks.push((1, retracted.len()));
                        retracted.push(old);
                        picks.push((0, g));
                        key_picks.extend([g as u32, g as u32]);
                        ops.extend([
                            ChangeKind::UpdateBefore as i8,
                            ChangeKind::UpdateAfter as i8,
                        ]);
                    }
                }
            }
        }
        let old_results = if retracted.is_empty() {
            results
                .iter()
                .map(|r| new_empty_array(r.data_type()))
                .collect()
        } else {
            self.results.decode(retracted.iter().copied())?
        };

        for (g, address) in addresses.into_iter().enumerate() {
            let state = state_rows.row(g);
            let result = result_rows.row(g);
            let mut entry = Vec::with_capacity(state.len() + result.len() + 3);
            put_varint(&mut entry, state.len() as u64);
            entry.extend_from_slice(state);
            entry.extend_from_slice(result);
            self.cached_bytes += entry.len() + address.len();
            self.cache.insert(
                address,
                Cached {
                    entry,
                    stamp: now,
                    dirty: true,
                },
            );
        }
        if self.cache.len() > self.cache_limit {
            self.flush()?;
            self.store.publish(self.store.stored(), 0)?;
        } else {
            self.batches += 1;
            if self.batches.is_multiple_of(16) {
                self.store.publish(self.store.stored(), self.cached_bytes)?;
            }
        }

        if ops.is_empty() {
            return Ok(());
        }
        let mut columns = take_columns(&distinct, &key_picks)?;
        for (new, old) in results.iter().zip(&old_results) {
            columns.push(interleave(&[new.as_ref(), old.as_ref()], &picks)?);
        }
        columns.push(Arc::new(Int8Array::from(ops)));
        let batch = RecordBatch::try_new(spec.output_schema.clone(), columns)?;
        NodeMetrics::add(&self.store.metrics().records_out, batch.num_rows());
        out.push(batch);
        Ok(())
    }

    fn on_end(&mut self, _out: &mut Vec<RecordBatch>) -> Result<()> {
        self.store.publish(self.store.stored(), self.cached_bytes)
    }

    fn snapshot_state(
        &mut self,
        dir: &std::path::Path,
    ) -> Result<Option<weir_state::SnapshotInfo>> {
        self.flush()?;
        Ok(Some(self.store.backend().snapshot(dir)?))
    }
}
