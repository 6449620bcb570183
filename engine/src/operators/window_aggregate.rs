//! Aggregation per window: `GROUP BY window_start, window_end, keys…` over a
//! window table function. A window fires — emits its rows and frees its
//! state — when the watermark passes its end. Rows of a window that already
//! fired are late: they are dropped and counted.
//!
//! Each open window aggregates incoming batches into an in-memory
//! [`GroupTable`] of partial results. When the cached groups of all windows
//! exceed `table.exec.state.cache-size`, the partials are moved into the
//! state backend (see [`AggregateStore`]). A window that never left memory
//! fires straight from its table; one that did is merged with its stored
//! groups and read back, then deleted from the backend.
//!
//! A snapshot writes a *copy* of each in-memory table into the backend
//! (under a reserved sequence number, replaced by the next snapshot) and
//! keeps the table, so checkpoints do not push windows onto the slower
//! read-back path. A restored window's stored partials, copies included,
//! are merged when it fires.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, ArrayRef, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::EmitTo;

use super::aggregate_state::{AggregateSpec, GroupKeys, GroupTable};
use super::aggregate_store::{window_bytes, AggregateStore};
use super::window_assign::as_millis;
use super::{Operator, OperatorContext, OperatorFactory, TaskContext, TimeDomain, Timer};
use crate::error::Result;
use crate::metrics::NodeMetrics;
use weir_state::{StateDescriptor, StateKind};

/// Planner output for a window aggregate.
#[derive(Clone)]
pub struct WindowAggregateSpec {
    /// Keys (including the window columns) and aggregate calls.
    pub aggregate: AggregateSpec,
    /// Which key is `window_end`.
    pub window_end_key: usize,
    /// Event time: a window fires when the watermark passes its end.
    /// Processing time: when the job's clock does, through a
    /// processing-time timer per window and key group.
    pub time: TimeDomain,
    /// The keys the input was hash-partitioned by (indexes into the keys).
    pub partition_keys: Vec<usize>,
}

impl OperatorFactory for WindowAggregateSpec {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let mut store = AggregateStore::open(
            &self.aggregate,
            self.partition_keys.clone(),
            &Self::descriptor(),
            ctx,
        )?;
        // A restored backend holds flushed windows: they fire as usual.
        let mut windows = BTreeMap::new();
        for prefix in store.stored_prefixes()? {
            windows.insert(
                super::aggregate_store::window_from_bytes(prefix),
                OpenWindow {
                    table: None,
                    flushed: true,
                    copied: 0,
                },
            );
        }
        Ok(Box::new(WindowAggregateOperator {
            spec: self.clone(),
            windows,
            opened: Vec::new(),
            key_groups: ctx.key_groups(),
            watermark: i64::MIN,
            cache_limit: ctx.state.cache_entries,
            store,
            batches: 0,
            sequence: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        }))
    }

    fn describe(&self) -> String {
        match self.time {
            TimeDomain::EventTime => format!("WindowAggregate({})", self.aggregate.describe()),
            TimeDomain::ProcessingTime => format!(
                "WindowAggregate({}, time=[processing])",
                self.aggregate.describe()
            ),
        }
    }

    fn uses_timers(&self) -> bool {
        self.time == TimeDomain::ProcessingTime
    }

    fn kind(&self) -> &'static str {
        "WindowAggregate"
    }

    fn states(&self, _settings: &crate::config::StateSettings) -> Vec<StateDescriptor> {
        vec![Self::descriptor()]
    }

    fn is_stateful(&self) -> bool {
        true
    }

    fn state_signature(&self) -> Option<Vec<(String, String)>> {
        Some(self.aggregate.state_signature(&self.partition_keys))
    }
}

impl WindowAggregateSpec {
    /// The windows' partial aggregates; a window's state goes when it
    /// fires, so no TTL.
    fn descriptor() -> StateDescriptor {
        StateDescriptor::new("window-aggregate", StateKind::Raw)
    }
}

/// One open window in memory.
struct OpenWindow {
    /// Partial aggregates since the window was last flushed.
    table: Option<GroupTable>,
    /// Whether some of its partials are in the backend (evicted, or restored).
    flushed: bool,
    /// Groups of the snapshot copy of `table` in the backend (0: none).
    copied: usize,
}

/// The sequence number of a window's snapshot copy: the in-memory table
/// written for a snapshot, replaced by the next snapshot, and deleted when
/// the window fires from memory or its table is flushed.
const SNAPSHOT_COPY: u64 = u64::MAX;

/// Runs a [`WindowAggregateSpec`].
pub struct WindowAggregateOperator {
    spec: WindowAggregateSpec,
    windows: BTreeMap<i64, OpenWindow>,
    /// Windows opened by the current batch (processing time: they get
    /// their timers).
    opened: Vec<i64>,
    key_groups: weir_state::KeyGroupRange,
    watermark: i64,
    cache_limit: usize,
    store: AggregateStore,
    batches: u64,
    /// Numbers the flushes, so that partials of one group never overwrite
    /// each other. Starts from the wall clock in nanoseconds, so that a
    /// restored operator continues past the numbers already stored.
    sequence: u64,
}

/// A window is complete once the watermark reaches its last millisecond.
fn fired(end: i64, watermark: i64) -> bool {
    end - 1 <= watermark
}

impl WindowAggregateOperator {
    fn update_window(&mut self, end: i64, batch: &RecordBatch, keys: &[ArrayRef]) -> Result<()> {
        let window = match self.windows.entry(end) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                self.opened.push(end);
                e.insert(OpenWindow {
                    table: None,
                    flushed: false,
                    copied: 0,
                })
            }
        };
        let table = match &mut window.table {
            Some(t) => t,
            None => window.table.insert(GroupTable::new(&self.spec.aggregate)?),
        };
        table.update(&self.spec.aggregate, batch, keys)
    }

    fn cached(&self) -> (usize, usize) {
        self.windows
            .values()
            .filter_map(|w| w.table.as_ref())
            .fold((0, 0), |(n, b), t| (n + t.len(), b + t.size()))
    }

    /// Moves a window's in-memory partial aggregates into the backend.
    ///
    /// Partials are appended, not merged: each flush writes its groups under
    /// a new sequence number, so a flush is writes only, and the window's
    /// partials are merged once, when it fires.
    fn flush_window(
        store: &mut AggregateStore,
        end: i64,
        window: &mut OpenWindow,
        sequence: &mut u64,
    ) -> Result<()> {
        let Some(mut table) = window.table.take() else {
            return Ok(());
        };
        let (keys, states, n) = table.emit_states()?;
        if n == 0 {
            return Ok(());
        }
        *sequence += 1;
        // The table holds every group of its snapshot copy (it only grows
        // until flushed): the copy goes, the table takes its place.
        let replaces_copy = std::mem::take(&mut window.copied);
        Self::write_partials(store, end, &keys, &states, n, *sequence, replaces_copy > 0)?;
        store.count_stored(n as i64 - replaces_copy as i64);
        window.flushed = true;
        Ok(())
    }

    /// Writes partials of window `end` under sequence `seq`; with
    /// `delete_copy`, deletes the same groups' snapshot copies.
    fn write_partials(
        store: &mut AggregateStore,
        end: i64,
        keys: &[ArrayRef],
        states: &[ArrayRef],
        n: usize,
        seq: u64,
        delete_copy: bool,
    ) -> Result<()> {
        let groups = store.key_groups(keys, n)?;
        let key_rows = store.encode_keys(keys, n)?;
        let state_rows = store.encode_states(states, n)?;
        let address = |i: usize, seq: u64| {
            let key = key_rows.row(i);
            let mut a = Vec::with_capacity(18 + key.len());
            a.extend_from_slice(&groups[i].to_be_bytes());
            a.extend_from_slice(&window_bytes(end));
            a.extend_from_slice(key);
            a.extend_from_slice(&seq.to_be_bytes());
            a
        };
        let mut changes: Vec<weir_state::Change> =
            Vec::with_capacity(if delete_copy { 2 * n } else { n });
        for i in 0..n {
            changes.push((address(i, seq), Some(state_rows.row(i).to_vec())));
            if delete_copy && seq != SNAPSHOT_COPY {
                changes.push((address(i, SNAPSHOT_COPY), None));
            }
        }
        // In address order, RocksDB applies the batch faster.
        changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        store.write(changes)
    }

    /// For a snapshot: writes a copy of the window's in-memory partials into
    /// the backend and keeps them in memory, so that the window can still
    /// fire from memory. Windows with partials in the backend already are
    /// flushed as usual.
    fn copy_for_snapshot(
        store: &mut AggregateStore,
        spec: &WindowAggregateSpec,
        end: i64,
        window: &mut OpenWindow,
        sequence: &mut u64,
    ) -> Result<()> {
        if window.flushed {
            return Self::flush_window(store, end, window, sequence);
        }
        let Some(table) = window.table.as_mut() else {
            return Ok(());
        };
        let (keys, states, n) = table.emit_states()?;
        let mut rebuilt = GroupTable::new(&spec.aggregate)?;
        rebuilt.merge_states(&keys, &states, n, store.state_widths())?;
        *table = rebuilt;
        if n == 0 {
            return Ok(());
        }
        // Replaces the previous copy: its groups are among these.
        Self::write_partials(store, end, &keys, &states, n, SNAPSHOT_COPY, false)?;
        store.count_stored(n as i64 - window.copied as i64);
        window.copied = n;
        Ok(())
    }

    fn flush_all(&mut self) -> Result<()> {
        for (end, window) in self.windows.iter_mut() {
            Self::flush_window(&mut self.store, *end, window, &mut self.sequence)?;
        }
        Ok(())
    }

    /// Reads a flushed window's partials back, merges them per group,
    /// evaluates them and deletes them.
    fn read_window(&mut self, end: i64) -> Result<Option<RecordBatch>> {
        let mut addresses: Vec<Vec<u8>> = Vec::new();
        let mut values: Vec<Vec<u8>> = Vec::new();
        self.store.scan_groups(&window_bytes(end), &mut |k, v| {
            addresses.push(k.to_vec());
            values.push(v.to_vec());
        })?;
        let n = addresses.len();
        if n == 0 {
            return Ok(None);
        }
        // [key group 2][window end 8][key row][sequence 8]
        if addresses.iter().any(|a| a.len() < 18) {
            return Err(crate::error::EngineError::State(
                "window aggregate entry with a truncated address (damaged state)".into(),
            ));
        }
        let keys = self
            .store
            .key_codec()
            .decode(addresses.iter().map(|a| &a[10..a.len() - 8]))?;
        let mut interned = GroupKeys::new(&self.spec.aggregate.group_schema)?;
        let mut group_ids = Vec::with_capacity(n);
        interned.intern(&keys, n, &mut group_ids)?;
        let total = interned.len();
        let mut accs = self.store.accumulators(&self.spec.aggregate)?;
        let rows: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        self.store
            .merge_encoded(&mut accs, &rows, &group_ids, total)?;
        let mut columns = interned.emit()?;
        for acc in &mut accs {
            columns.push(acc.evaluate(EmitTo::All)?);
        }
        self.store.delete_groups(&window_bytes(end))?;
        self.store.count_stored(-(n as i64));
        Ok(Some(RecordBatch::try_new(
            self.spec.aggregate.output_schema.clone(),
            columns,
        )?))
    }

    fn publish_state_size(&mut self) -> Result<()> {
        let (entries, bytes) = self.cached();
        let stored = self.store.stored();
        self.store.publish(stored + entries as u64, bytes)
    }
}

impl Operator for WindowAggregateOperator {
    fn process_batch(&mut self, batch: RecordBatch, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let keys = self.spec.aggregate.keys(&batch)?;
        let ends: TimestampMillisecondArray = as_millis(&keys[self.spec.window_end_key])?;
        let values = ends.values();
        let (min, max) = values
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        if ends.null_count() == 0 && min == max && !fired(min, self.watermark) {
            // The common case: the whole batch falls into one open window.
            self.update_window(min, &batch, &keys)?;
        } else {
            let mut by_window: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
            let mut late = 0usize;
            for (i, end) in ends.iter().enumerate() {
                match end {
                    Some(end) if !fired(end, self.watermark) => {
                        by_window.entry(end).or_default().push(i as u32)
                    }
                    _ => late += 1,
                }
            }
            NodeMetrics::add(&self.store_metrics().late_records_dropped, late);
            for (end, rows) in by_window {
                let indices = UInt32Array::from(rows);
                let columns = batch
                    .columns()
                    .iter()
                    .map(|c| take(c, &indices, None))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let part = RecordBatch::try_new(batch.schema(), columns)?;
                let part_keys = keys
                    .iter()
                    .map(|k| take(k, &indices, None))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                self.update_window(end, &part, &part_keys)?;
            }
        }
        if self.spec.time == TimeDomain::ProcessingTime {
            // One timer per key group: they move with their key groups when
            // the job is restored at another parallelism.
            for end in self.opened.drain(..) {
                for group in self.key_groups.start..self.key_groups.end {
                    ctx.timers().register(
                        TimeDomain::ProcessingTime,
                        Timer {
                            time: end - 1,
                            key_group: group,
                            key: Vec::new(),
                            namespace: end.to_be_bytes().to_vec(),
                        },
                    );
                }
            }
        } else {
            self.opened.clear();
        }
        let (cached, _) = self.cached();
        if cached > self.cache_limit {
            self.flush_all()?;
            self.publish_state_size()?;
        } else {
            self.batches += 1;
            if self.batches.is_multiple_of(16) {
                self.publish_state_size()?;
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, ctx: &mut OperatorContext<'_>) -> Result<()> {
        if self.spec.time == TimeDomain::ProcessingTime {
            return Ok(());
        }
        self.watermark = self.watermark.max(watermark);
        while let Some(&end) = self.windows.keys().next() {
            if !fired(end, self.watermark) {
                break;
            }
            self.fire(end, ctx)?;
        }
        self.publish_state_size()
    }

    fn on_timer(
        &mut self,
        _domain: TimeDomain,
        timer: Timer,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        let Ok(end) = <[u8; 8]>::try_from(timer.namespace.as_slice()) else {
            return Err(crate::error::EngineError::State(
                "a window timer without its window (damaged state)".into(),
            ));
        };
        let end = i64::from_be_bytes(end);
        // The first of the window's timers (one per key group) fires it.
        if self.windows.contains_key(&end) {
            self.fire(end, ctx)?;
            self.publish_state_size()?;
        }
        Ok(())
    }

    fn prepare_snapshot(&mut self) -> Result<()> {
        for (end, window) in self.windows.iter_mut() {
            Self::copy_for_snapshot(
                &mut self.store,
                &self.spec,
                *end,
                window,
                &mut self.sequence,
            )?;
        }
        Ok(())
    }
}

impl WindowAggregateOperator {
    /// Emits window `end` and frees its state.
    fn fire(&mut self, end: i64, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let Some(mut window) = self.windows.remove(&end) else {
            return Ok(());
        };
        let batch = if window.flushed {
            Self::flush_window(&mut self.store, end, &mut window, &mut self.sequence)?;
            self.read_window(end)?
        } else {
            if window.copied > 0 {
                // Only its snapshot copy is in the backend.
                self.store.delete_groups(&window_bytes(end))?;
                self.store.count_stored(-(window.copied as i64));
            }
            match window.table.as_mut() {
                Some(table) => {
                    let columns = table.emit()?;
                    Some(RecordBatch::try_new(
                        self.spec.aggregate.output_schema.clone(),
                        columns,
                    )?)
                }
                None => None,
            }
        };
        if let Some(batch) = batch {
            NodeMetrics::add(&self.store_metrics().records_out, batch.num_rows());
            ctx.emit(batch);
        }
        Ok(())
    }

    fn store_metrics(&self) -> std::sync::Arc<NodeMetrics> {
        self.store.metrics()
    }
}
