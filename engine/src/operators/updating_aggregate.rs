//! `GROUP BY` without a window: every input batch updates its groups, and the
//! operator emits the changes as a changelog — `+I` for a new group, `-U`/`+U`
//! for a changed result. Nothing is emitted for a group whose result did not
//! change.
//!
//! Keys are interned a batch at a time; rows are then sorted by group so that
//! each touched group's accumulators see one contiguous slice per batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int8Array, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::Accumulator;
use datafusion::scalar::ScalarValue;

use super::aggregate_state::{AggregateSpec, GroupKeys};
use super::{Operator, OperatorFactory, TaskContext};
use crate::error::Result;
use crate::message::ChangeKind;
use crate::metrics::NodeMetrics;

/// Planner output for an updating (non-windowed) aggregate.
#[derive(Clone)]
pub struct UpdatingAggregateSpec {
    /// Keys and aggregate calls; the output schema ends with the op column.
    pub aggregate: AggregateSpec,
}

impl OperatorFactory for UpdatingAggregateSpec {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(UpdatingAggregateOperator {
            values: GroupKeys::new(&self.aggregate.group_schema)?,
            spec: self.clone(),
            groups: Vec::new(),
            group_ids: Vec::new(),
            ctx: ctx.clone(),
        }))
    }

    fn describe(&self) -> String {
        format!("GroupAggregate({})", self.aggregate.describe())
    }
}

struct GroupState {
    accumulators: Vec<Box<dyn Accumulator>>,
    /// What was last emitted for this group, to retract it on change.
    emitted: Option<Vec<ScalarValue>>,
}

/// Runs an [`UpdatingAggregateSpec`].
pub struct UpdatingAggregateOperator {
    spec: UpdatingAggregateSpec,
    values: GroupKeys,
    groups: Vec<GroupState>,
    group_ids: Vec<usize>,
    ctx: TaskContext,
}

impl Operator for UpdatingAggregateOperator {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let spec = &self.spec.aggregate;
        let keys = spec.keys(&batch)?;
        self.values
            .intern(&keys, batch.num_rows(), &mut self.group_ids)?;
        while self.groups.len() < self.values.len() {
            let accumulators = spec
                .aggregates
                .iter()
                .map(|a| a.function.create_accumulator())
                .collect::<datafusion::error::Result<_>>()?;
            self.groups.push(GroupState {
                accumulators,
                emitted: None,
            });
        }

        // Order the rows by group (stable counting sort over the touched groups).
        let mut touched: Vec<usize> = Vec::new();
        let mut slot_of: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
        let mut row_slot: Vec<usize> = Vec::with_capacity(self.group_ids.len());
        for &g in &self.group_ids {
            let next = touched.len();
            let slot = *slot_of.entry(g).or_insert(next);
            if slot == next {
                touched.push(g);
            }
            row_slot.push(slot);
        }
        let mut offsets = vec![0usize; touched.len() + 1];
        for &s in &row_slot {
            offsets[s + 1] += 1;
        }
        for i in 0..touched.len() {
            offsets[i + 1] += offsets[i];
        }
        let mut cursor = offsets.clone();
        let mut order = vec![0u32; row_slot.len()];
        let mut first_row = vec![0u32; touched.len()];
        for (row, &s) in row_slot.iter().enumerate() {
            if cursor[s] == offsets[s] {
                first_row[s] = row as u32;
            }
            order[cursor[s]] = row as u32;
            cursor[s] += 1;
        }
        let order = UInt32Array::from(order);

        for (a, _) in spec.aggregates.iter().enumerate() {
            let (args, filter) = spec.arguments(a, &batch)?;
            let args: Vec<ArrayRef> = args
                .iter()
                .map(|c| take(c, &order, None))
                .collect::<std::result::Result<_, _>>()?;
            let filter = match filter {
                Some(f) => Some(take(&f, &order, None)?),
                None => None,
            };
            for (slot, &g) in touched.iter().enumerate() {
                let (start, len) = (offsets[slot], offsets[slot + 1] - offsets[slot]);
                let mut slice: Vec<ArrayRef> = args.iter().map(|c| c.slice(start, len)).collect();
                if let Some(f) = &filter {
                    let mask = f.slice(start, len);
                    let mask = mask
                        .as_any()
                        .downcast_ref::<datafusion::arrow::array::BooleanArray>()
                        .cloned()
                        .unwrap_or_else(|| {
                            datafusion::arrow::array::BooleanArray::from(vec![false; len])
                        });
                    slice = slice
                        .iter()
                        .map(|c| datafusion::arrow::compute::filter(c, &mask))
                        .collect::<std::result::Result<_, _>>()?;
                }
                self.groups[g].accumulators[a].update_batch(&slice)?;
            }
        }

        // Compare each touched group's result with what it last emitted.
        let mut out_rows: Vec<u32> = Vec::new();
        let mut out_values: Vec<Vec<ScalarValue>> = vec![Vec::new(); spec.aggregates.len()];
        let mut out_ops: Vec<i8> = Vec::new();
        for (slot, &g) in touched.iter().enumerate() {
            let state = &mut self.groups[g];
            let new: Vec<ScalarValue> = state
                .accumulators
                .iter_mut()
                .map(|acc| acc.evaluate())
                .collect::<datafusion::error::Result<_>>()?;
            let mut push = |values: &[ScalarValue], kind: ChangeKind| {
                out_rows.push(first_row[slot]);
                for (col, v) in out_values.iter_mut().zip(values) {
                    col.push(v.clone());
                }
                out_ops.push(kind as i8);
            };
            match &state.emitted {
                None => push(&new, ChangeKind::Insert),
                Some(old) if *old != new => {
                    push(old, ChangeKind::UpdateBefore);
                    push(&new, ChangeKind::UpdateAfter);
                }
                Some(_) => continue,
            }
            state.emitted = Some(new);
        }
        self.ctx
            .metrics
            .state_entries
            .store(self.values.len() as u64, Ordering::Relaxed);
        if out_rows.is_empty() {
            return Ok(());
        }
        let rows = UInt32Array::from(out_rows);
        let mut columns: Vec<ArrayRef> = keys
            .iter()
            .map(|k| take(k, &rows, None))
            .collect::<std::result::Result<_, _>>()?;
        for (values, field) in out_values
            .into_iter()
            .zip(spec.output_schema.fields().iter().skip(keys.len()))
        {
            let array = if values.is_empty() {
                datafusion::arrow::array::new_empty_array(field.data_type())
            } else {
                ScalarValue::iter_to_array(values)?
            };
            columns.push(array);
        }
        columns.push(Arc::new(Int8Array::from(out_ops)));
        let batch = RecordBatch::try_new(spec.output_schema.clone(), columns)?;
        NodeMetrics::add(&self.ctx.metrics.records_out, batch.num_rows());
        out.push(batch);
        Ok(())
    }
}
