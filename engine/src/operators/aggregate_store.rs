//! The state of SQL aggregates in a state backend, a batch at a time.
//!
//! An aggregate's state is, per group, the group key and the intermediate
//! state of each accumulator (DataFusion's `GroupsAccumulator::state`, the
//! same form a two-phase aggregation sends between its phases). Both are
//! encoded with a [`RowCodec`] a whole batch at once and addressed by
//! key group first:
//!
//! ```text
//! window aggregate:   [key group u16 BE][window end, order-preserving 8 bytes][key row]
//! updating aggregate: [key group u16 BE][key row]
//! ```
//!
//! so that one window's groups are contiguous within each key group (firing
//! a window is one range scan per key group) and every entry can be split by
//! key group. Reads and writes go to the backend in batches, through the
//! operators' keyed batch-state layer ([`KeyedBatchState`]).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::logical_expr::GroupsAccumulator;
use weir_state::{StateDescriptor, StateId};

use super::batch_state::KeyedBatchState;

use super::aggregate_state::{groups_accumulator, AggregateSpec};
use super::row_codec::{split_columns, EncodedRows, RowCodec};
use super::TaskContext;
use crate::error::Result;
use crate::metrics::NodeMetrics;

/// An aggregate's state in its subtask's backend, with the codecs for its
/// keys and accumulator states.
pub struct AggregateStore {
    batch: KeyedBatchState,
    keys: RowCodec,
    states: RowCodec,
    /// State columns of each aggregate call.
    widths: Vec<usize>,
    /// Which key columns the exchange hashed (the key group's inputs).
    partition_columns: Vec<usize>,
    /// Groups stored in the backend, counted by the operator as it writes
    /// and deletes them (RocksDB's own count is an estimate that counts
    /// overwrites until it compacts).
    stored: u64,
    published: (u64, u64),
    metrics: Arc<NodeMetrics>,
}

impl AggregateStore {
    /// Opens the aggregate's state, `descriptor`, in the backend the
    /// runtime created for the subtask.
    pub fn open(
        spec: &AggregateSpec,
        partition_columns: Vec<usize>,
        descriptor: &StateDescriptor,
        ctx: &TaskContext,
    ) -> Result<Self> {
        let batch = KeyedBatchState::open(descriptor, ctx)?;
        let key_types: Vec<_> = spec
            .group_schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let mut state_types = Vec::new();
        let mut widths = Vec::new();
        for call in &spec.aggregates {
            let fields = call.state_fields()?;
            widths.push(fields.len());
            state_types.extend(fields.iter().map(|f| f.data_type().clone()));
        }
        Ok(Self {
            batch,
            keys: RowCodec::new(&key_types)?,
            states: RowCodec::new(&state_types)?,
            widths,
            partition_columns,
            stored: 0,
            published: (0, 0),
            metrics: ctx.metrics.clone(),
        })
    }

    /// The backend, for a few calls.
    pub fn backend(&self) -> Result<std::sync::MutexGuard<'_, Box<dyn weir_state::StateBackend>>> {
        self.batch.backend()
    }

    /// The node's counters.
    pub fn metrics(&self) -> Arc<NodeMetrics> {
        self.metrics.clone()
    }

    /// The state's id in the backend.
    pub fn state_id(&self) -> StateId {
        self.batch.state_id()
    }

    /// The key codec.
    pub fn key_codec(&self) -> &RowCodec {
        &self.keys
    }

    /// Key group of each group, from its key columns.
    pub fn key_groups(&mut self, key_columns: &[ArrayRef], rows: usize) -> Result<Vec<u16>> {
        let partition: Vec<ArrayRef> = self
            .partition_columns
            .iter()
            .filter_map(|i| key_columns.get(*i).cloned())
            .collect();
        self.batch.key_groups(&partition, rows)
    }

    /// Encodes group keys.
    pub fn encode_keys(&self, key_columns: &[ArrayRef], rows: usize) -> Result<EncodedRows> {
        self.keys.encode(key_columns, rows)
    }

    /// The codec of accumulator states (all calls' state columns, in order).
    pub fn state_codec(&self) -> &RowCodec {
        &self.states
    }

    /// How many state columns each aggregate call has.
    pub fn state_widths(&self) -> &[usize] {
        &self.widths
    }

    /// Encodes accumulator states (all calls' state columns, in order).
    pub fn encode_states(&self, state_columns: &[ArrayRef], rows: usize) -> Result<EncodedRows> {
        self.states.encode(state_columns, rows)
    }

    /// Fresh accumulators, one per call.
    pub fn accumulators(&self, spec: &AggregateSpec) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        spec.aggregates.iter().map(groups_accumulator).collect()
    }

    /// Merges encoded states into `accumulators`: `rows[i]` into group
    /// `groups[i]` of `total` groups.
    pub fn merge_encoded(
        &self,
        accumulators: &mut [Box<dyn GroupsAccumulator>],
        rows: &[&[u8]],
        groups: &[usize],
        total: usize,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let columns = self.states.decode(rows.iter().copied())?;
        for (acc, cols) in accumulators
            .iter_mut()
            .zip(split_columns(columns, &self.widths))
        {
            acc.merge_batch(&cols, groups, total)?;
        }
        Ok(())
    }

    /// Reads many entries.
    pub fn multi_get(&mut self, addresses: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.batch.multi_get(addresses)
    }

    /// Writes puts and deletes.
    pub fn write(&mut self, changes: Vec<weir_state::Change>) -> Result<()> {
        self.batch.write(changes)
    }

    /// Calls `visit` for every entry whose address starts with
    /// `[key group][suffix]`, for each key group of the subtask.
    pub fn scan_groups(
        &mut self,
        suffix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        self.batch.scan_prefix(suffix, &mut |k, v| {
            visit(k, v);
            weir_state::Scan::Continue
        })
    }

    /// The distinct window ends (8 bytes after the key group) stored.
    pub fn stored_prefixes(&mut self) -> Result<std::collections::BTreeSet<[u8; 8]>> {
        self.batch.stored_prefixes::<8>()
    }

    /// Deletes every entry whose address starts with `[key group][suffix]`.
    pub fn delete_groups(&mut self, suffix: &[u8]) -> Result<()> {
        self.batch.delete_prefix(suffix)
    }

    /// Processing time of the backend's clock (for TTL stamps).
    pub fn now_ms(&self) -> Result<i64> {
        self.batch.now_ms()
    }

    /// Counts groups written to (positive) or deleted from (negative) the
    /// backend.
    pub fn count_stored(&mut self, delta: i64) {
        self.stored = self.stored.saturating_add_signed(delta);
    }

    /// Groups stored in the backend, as counted.
    pub fn stored(&self) -> u64 {
        self.stored
    }

    /// Publishes state size: `entries` groups, and the backend's bytes plus
    /// `cached_bytes` held in memory.
    pub fn publish(&mut self, entries_now: u64, cached_bytes: usize) -> Result<()> {
        let stats = self.batch.backend()?.stats()?;
        let (mut entries, mut bytes) = self.published;
        NodeMetrics::set_share(&self.metrics.state_entries, &mut entries, entries_now);
        NodeMetrics::set_share(
            &self.metrics.state_bytes,
            &mut bytes,
            stats.bytes + cached_bytes as u64,
        );
        self.published = (entries, bytes);
        Ok(())
    }
}

/// Takes rows `indices` of each column.
pub fn take_columns(columns: &[ArrayRef], indices: &[u32]) -> Result<Vec<ArrayRef>> {
    let indices = UInt32Array::from(indices.to_vec());
    Ok(columns
        .iter()
        .map(|c| take(c, &indices, None))
        .collect::<std::result::Result<_, _>>()?)
}

/// An order-preserving encoding of a window end (sign bit flipped, big
/// endian), so windows sort by time within a key group.
pub fn window_bytes(end: i64) -> [u8; 8] {
    super::batch_state::time_bytes(end)
}

/// The window end that [`window_bytes`] encoded.
pub fn window_from_bytes(bytes: [u8; 8]) -> i64 {
    super::batch_state::time_from_bytes(bytes)
}
