//! The state of a grouped aggregation: group keys and one accumulator per
//! aggregate call, updated a whole batch at a time.
//!
//! Window and updating aggregates keep their state through these types, so
//! the state backend work can put them behind a snapshottable backend without
//! touching the operators' logic.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use datafusion::physical_plan::aggregates::group_values::{new_group_values, GroupValues};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use crate::error::{EngineError, Result};

/// One aggregate call, such as `COUNT(DISTINCT x) FILTER (WHERE y > 0)`.
#[derive(Clone)]
pub struct AggregateCall {
    /// The aggregate function with its argument expressions.
    pub function: Arc<AggregateFunctionExpr>,
    /// Rows for which this is not true are not aggregated.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// Over a changelog: the accumulator that takes rows back (`None`:
    /// the function's own).
    pub retract: Option<crate::operators::retract::Retraction>,
}

impl AggregateCall {
    /// A call with the function's own accumulator.
    pub fn new(
        function: Arc<AggregateFunctionExpr>,
        filter: Option<Arc<dyn PhysicalExpr>>,
    ) -> Self {
        Self {
            function,
            filter,
            retract: None,
        }
    }

    /// The fields of the accumulator's state, as stored.
    pub fn state_fields(&self) -> Result<Vec<datafusion::arrow::datatypes::FieldRef>> {
        match &self.retract {
            Some(r) => Ok(r.state_fields()),
            None => Ok(self.function.state_fields()?),
        }
    }

    /// A fresh row accumulator.
    pub fn create_accumulator(&self) -> Result<Box<dyn datafusion::logical_expr::Accumulator>> {
        match &self.retract {
            Some(r) => r.create(),
            None => Ok(self.function.create_accumulator()?),
        }
    }
}

/// Grouping keys and aggregate calls of an aggregation.
#[derive(Clone)]
pub struct AggregateSpec {
    /// Key expressions over the input, with their output names.
    pub group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// The key columns' fields.
    pub group_schema: SchemaRef,
    /// The aggregate calls.
    pub aggregates: Vec<AggregateCall>,
    /// Keys then aggregate results (then the op column when updating).
    pub output_schema: SchemaRef,
}

impl AggregateSpec {
    /// Builds the spec; the output schema is the keys followed by the aggregates.
    pub fn new(
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        group_fields: Vec<Field>,
        aggregates: Vec<AggregateCall>,
        output_schema: SchemaRef,
    ) -> Self {
        Self {
            group_exprs,
            group_schema: Arc::new(Schema::new(group_fields)),
            aggregates,
            output_schema,
        }
    }

    /// Evaluates the key expressions on a batch.
    pub fn keys(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let rows = batch.num_rows();
        Ok(self
            .group_exprs
            .iter()
            .map(|e| e.evaluate(batch).and_then(|v| v.into_array(rows)))
            .collect::<datafusion::error::Result<_>>()?)
    }

    /// Evaluates the arguments and filter of aggregate `i` on a batch.
    pub fn arguments(
        &self,
        i: usize,
        batch: &RecordBatch,
    ) -> Result<(Vec<ArrayRef>, Option<BooleanArray>)> {
        let rows = batch.num_rows();
        let call = &self.aggregates[i];
        let args = call
            .function
            .expressions()
            .iter()
            .map(|e| e.evaluate(batch).and_then(|v| v.into_array(rows)))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let filter = match &call.filter {
            Some(f) => {
                let mask = f.evaluate(batch)?.into_array(rows)?;
                Some(
                    mask.as_any()
                        .downcast_ref::<BooleanArray>()
                        .cloned()
                        .ok_or_else(|| {
                            EngineError::Internal("FILTER clause is not boolean".into())
                        })?,
                )
            }
            None => None,
        };
        Ok((args, filter))
    }

    /// The shape of the state this aggregation stores: the key columns, the
    /// columns keys are partitioned by (they decide each key's key group),
    /// and each aggregate with its intermediate state's types.
    pub fn state_signature(&self, partition_keys: &[usize]) -> Vec<(String, String)> {
        let fields = self.group_schema.fields();
        let keys: Vec<String> = fields
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect();
        let partitioned: Vec<String> = partition_keys
            .iter()
            .filter_map(|i| fields.get(*i).map(|f| f.name().clone()))
            .collect();
        let aggregates: Vec<String> = self
            .aggregates
            .iter()
            .map(|a| {
                let state = a
                    .state_fields()
                    .map(|fs| {
                        fs.iter()
                            .map(|f| f.data_type().to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                let filter = a
                    .filter
                    .as_ref()
                    .map(|f| format!(" FILTER (WHERE {f})"))
                    .unwrap_or_default();
                format!("{}{filter} -> ({state})", a.function.name())
            })
            .collect();
        vec![
            ("keys".to_string(), keys.join(", ")),
            ("partitioned by".to_string(), partitioned.join(", ")),
            ("aggregates".to_string(), aggregates.join(", ")),
        ]
    }

    /// Short text for `EXPLAIN`.
    pub fn describe(&self) -> String {
        let keys: Vec<String> = self
            .group_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let aggs: Vec<String> = self
            .aggregates
            .iter()
            // The hidden row count of an aggregate over a changelog.
            .filter(|a| a.retract.is_none() || a.function.name() != "__weir_rows")
            .map(|a| {
                let mut s = a.function.name().to_string();
                if let Some(f) = &a.filter {
                    s.push_str(&format!(" FILTER (WHERE {f})"));
                }
                s
            })
            .collect();
        format!(
            "groupBy=[{}], select=[{}]",
            keys.join(", "),
            aggs.join(", ")
        )
    }
}

/// Creates the vectorized accumulator for a call, adapting row accumulators
/// (such as `COUNT(DISTINCT)`) when the function has no groups accumulator.
pub fn groups_accumulator(call: &AggregateCall) -> Result<Box<dyn GroupsAccumulator>> {
    if call.function.groups_accumulator_supported() {
        Ok(call.function.create_groups_accumulator()?)
    } else {
        let f = Arc::clone(&call.function);
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
            f.create_accumulator()
        })))
    }
}

/// Interns group keys into dense group ids. An aggregate without keys (a
/// global aggregate) has exactly one group.
pub enum GroupKeys {
    /// Keys interned by DataFusion's vectorized group tables.
    Columns(Box<dyn GroupValues>),
    /// No keys: one group once any row arrived.
    Global {
        /// Whether the single group exists.
        exists: bool,
    },
}

impl GroupKeys {
    /// A key table for keys of this schema.
    pub fn new(schema: &SchemaRef) -> Result<Self> {
        if schema.fields().is_empty() {
            Ok(GroupKeys::Global { exists: false })
        } else {
            Ok(GroupKeys::Columns(new_group_values(
                schema.clone(),
                &GroupOrdering::None,
            )?))
        }
    }

    /// Assigns a group id to each of the `rows` rows.
    pub fn intern(
        &mut self,
        keys: &[ArrayRef],
        rows: usize,
        group_ids: &mut Vec<usize>,
    ) -> Result<()> {
        match self {
            GroupKeys::Columns(values) => Ok(values.intern(keys, group_ids)?),
            GroupKeys::Global { exists } => {
                group_ids.clear();
                group_ids.resize(rows, 0);
                *exists |= rows > 0;
                Ok(())
            }
        }
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        match self {
            GroupKeys::Columns(values) => values.len(),
            GroupKeys::Global { exists } => usize::from(*exists),
        }
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate memory held, in bytes.
    pub fn size(&self) -> usize {
        match self {
            GroupKeys::Columns(values) => values.size(),
            GroupKeys::Global { .. } => 0,
        }
    }

    /// Emits every group's key columns and forgets them.
    pub fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        match self {
            GroupKeys::Columns(values) => Ok(values.emit(EmitTo::All)?),
            GroupKeys::Global { exists } => {
                *exists = false;
                Ok(Vec::new())
            }
        }
    }
}

/// Groups and their accumulators, for one window (or for all time).
pub struct GroupTable {
    values: GroupKeys,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    group_ids: Vec<usize>,
}

impl GroupTable {
    /// An empty table for `spec`.
    pub fn new(spec: &AggregateSpec) -> Result<Self> {
        Ok(Self {
            values: GroupKeys::new(&spec.group_schema)?,
            accumulators: spec
                .aggregates
                .iter()
                .map(groups_accumulator)
                .collect::<Result<_>>()?,
            group_ids: Vec::new(),
        })
    }

    /// Adds a batch whose keys were already evaluated.
    pub fn update(
        &mut self,
        spec: &AggregateSpec,
        batch: &RecordBatch,
        keys: &[ArrayRef],
    ) -> Result<()> {
        self.values
            .intern(keys, batch.num_rows(), &mut self.group_ids)?;
        let total = self.values.len();
        for (i, acc) in self.accumulators.iter_mut().enumerate() {
            let (args, filter) = spec.arguments(i, batch)?;
            acc.update_batch(&args, &self.group_ids, filter.as_ref(), total)?;
        }
        Ok(())
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Approximate memory held, in bytes.
    pub fn size(&self) -> usize {
        self.values.size() + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    /// Emits every group's key columns and the accumulators' intermediate
    /// states (for the state backend), and leaves the table empty.
    pub fn emit_states(&mut self) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>, usize)> {
        let rows = self.values.len();
        let keys = self.values.emit()?;
        let mut states = Vec::new();
        for acc in &mut self.accumulators {
            states.extend(acc.state(EmitTo::All)?);
        }
        Ok((keys, states, rows))
    }

    /// Adds groups given as key columns and intermediate states (what
    /// [`GroupTable::emit_states`] returned); `widths` are the number of
    /// state columns of each aggregate.
    pub fn merge_states(
        &mut self,
        keys: &[ArrayRef],
        states: &[ArrayRef],
        rows: usize,
        widths: &[usize],
    ) -> Result<()> {
        self.values.intern(keys, rows, &mut self.group_ids)?;
        let total = self.values.len();
        let mut offset = 0;
        for (acc, width) in self.accumulators.iter_mut().zip(widths) {
            acc.merge_batch(&states[offset..offset + width], &self.group_ids, total)?;
            offset += width;
        }
        Ok(())
    }

    /// Emits every group as key columns followed by aggregate results, and
    /// leaves the table empty.
    pub fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        let mut columns = self.values.emit()?;
        for acc in &mut self.accumulators {
            columns.push(acc.evaluate(EmitTo::All)?);
        }
        Ok(columns)
    }
}
