//! Aggregation per window: `GROUP BY window_start, window_end, keys…` over a
//! window table function. Each window's groups live in their own
//! [`GroupTable`]; a window fires — emits its rows and frees its state — when
//! the watermark passes its end. Rows of a window that already fired are late:
//! they are dropped and counted.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::{Array, ArrayRef, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::record_batch::RecordBatch;

use super::aggregate_state::{AggregateSpec, GroupTable};
use super::window_assign::as_millis;
use super::{Operator, OperatorFactory, TaskContext};
use crate::error::Result;
use crate::metrics::NodeMetrics;

/// Planner output for a window aggregate.
#[derive(Clone)]
pub struct WindowAggregateSpec {
    /// Keys (including the window columns) and aggregate calls.
    pub aggregate: AggregateSpec,
    /// Which key is `window_end`.
    pub window_end_key: usize,
}

impl OperatorFactory for WindowAggregateSpec {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(WindowAggregateOperator {
            spec: self.clone(),
            windows: BTreeMap::new(),
            watermark: i64::MIN,
            ctx: ctx.clone(),
        }))
    }

    fn describe(&self) -> String {
        format!("WindowAggregate({})", self.aggregate.describe())
    }
}

/// Runs a [`WindowAggregateSpec`].
pub struct WindowAggregateOperator {
    spec: WindowAggregateSpec,
    /// Open windows by end time; each holds its groups.
    windows: BTreeMap<i64, GroupTable>,
    watermark: i64,
    ctx: TaskContext,
}

impl WindowAggregateOperator {
    fn update_window(&mut self, end: i64, batch: &RecordBatch, keys: &[ArrayRef]) -> Result<()> {
        let table = match self.windows.entry(end) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(GroupTable::new(&self.spec.aggregate)?)
            }
        };
        table.update(&self.spec.aggregate, batch, keys)
    }

    fn publish_state_size(&self) {
        let entries: usize = self.windows.values().map(GroupTable::len).sum();
        self.ctx
            .metrics
            .state_entries
            .store(entries as u64, Ordering::Relaxed);
    }
}

/// A window is complete once the watermark reaches its last millisecond.
fn fired(end: i64, watermark: i64) -> bool {
    end - 1 <= watermark
}

impl Operator for WindowAggregateOperator {
    fn process_batch(&mut self, batch: RecordBatch, _out: &mut Vec<RecordBatch>) -> Result<()> {
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
            NodeMetrics::add(&self.ctx.metrics.late_records_dropped, late);
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
        self.publish_state_size();
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        while let Some(entry) = self.windows.first_entry() {
            if !fired(*entry.key(), self.watermark) {
                break;
            }
            let mut table = entry.remove();
            let columns = table.emit()?;
            let batch = RecordBatch::try_new(self.spec.aggregate.output_schema.clone(), columns)?;
            NodeMetrics::add(&self.ctx.metrics.records_out, batch.num_rows());
            out.push(batch);
        }
        self.publish_state_size();
        Ok(())
    }
}
