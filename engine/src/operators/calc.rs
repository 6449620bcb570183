//! Filter and projection, evaluated as DataFusion physical expressions over
//! whole batches (Flink calls this a Calc). Expressions read only the
//! columns and fields they use, and a filter copies only those (see
//! [`NarrowExprs`]).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;

use super::narrow::NarrowExprs;
use super::{Operator, OperatorContext, OperatorFactory, TaskContext};
use crate::error::Result;
use crate::message::OP_COLUMN;

/// A filter followed by a projection.
#[derive(Clone)]
pub struct CalcSpec {
    /// Rows for which this is not true are dropped.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// Output columns; `None` keeps the input columns.
    pub projection: Option<Vec<Arc<dyn PhysicalExpr>>>,
    /// Schema of the output, including the op column on updating streams.
    pub output_schema: SchemaRef,
}

impl OperatorFactory for CalcSpec {
    fn create(&self, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(CalcOperator {
            spec: self.clone(),
            narrow: None,
        }))
    }

    fn kind(&self) -> &'static str {
        "Calc"
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(f) = &self.filter {
            parts.push(format!("where=[{f}]"));
        }
        if let Some(p) = &self.projection {
            let names: Vec<String> = self
                .output_schema
                .fields()
                .iter()
                .zip(p)
                .map(|(f, e)| {
                    let e = e.to_string();
                    let short = e.split('@').next().unwrap_or(&e).to_string();
                    if short == *f.name() {
                        short
                    } else {
                        format!("{e} AS {}", f.name())
                    }
                })
                .collect();
            parts.push(format!("select=[{}]", names.join(", ")));
        }
        format!("Calc({})", parts.join(", "))
    }
}

/// Runs a [`CalcSpec`].
pub struct CalcOperator {
    spec: CalcSpec,
    /// The filter (first, if any), the projection and the op column (last,
    /// on updating streams) over the input's leaves; planned on the first
    /// batch, which brings the input schema.
    narrow: Option<Narrowed>,
}

struct Narrowed {
    exprs: NarrowExprs,
    has_filter: bool,
    /// The leaves the outputs read (those a filter must keep rows of).
    read_by_outputs: Vec<bool>,
    outputs: usize,
}

impl CalcOperator {
    fn plan(&self, schema: &Schema) -> Result<Narrowed> {
        let mut exprs: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        exprs.extend(self.spec.filter.iter().cloned());
        let has_filter = !exprs.is_empty();
        match &self.spec.projection {
            Some(projection) => {
                exprs.extend(projection.iter().cloned());
                if let Some(last) = schema.fields().last() {
                    if last.name() == OP_COLUMN
                        && self.spec.output_schema.fields().len() == projection.len() + 1
                    {
                        exprs.push(Arc::new(Column::new(OP_COLUMN, schema.fields().len() - 1)));
                    }
                }
            }
            None => {
                for (i, f) in schema.fields().iter().enumerate() {
                    exprs.push(Arc::new(Column::new(f.name(), i)));
                }
            }
        }
        let narrow = NarrowExprs::new(&exprs, schema)?;
        let first = usize::from(has_filter);
        Ok(Narrowed {
            read_by_outputs: narrow.leaves_read_by(first..exprs.len()),
            outputs: exprs.len() - first,
            exprs: narrow,
            has_filter,
        })
    }
}

impl Operator for CalcOperator {
    fn process_batch(&mut self, batch: RecordBatch, ctx: &mut OperatorContext<'_>) -> Result<()> {
        if self.narrow.is_none() {
            self.narrow = Some(self.plan(&batch.schema())?);
        }
        let Some(narrow) = &self.narrow else {
            return Ok(());
        };
        let mut rows = batch.num_rows();
        let mut leaves = narrow.exprs.leaves(&batch)?;
        if narrow.has_filter {
            let mask = narrow.exprs.evaluate(0, &leaves, rows)?;
            let all = mask.null_count() == 0
                && mask
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .is_some_and(|m| m.true_count() == rows);
            if !all {
                rows = NarrowExprs::filter_leaves(&mut leaves, &narrow.read_by_outputs, &mask)?;
            }
        }
        if rows == 0 {
            return Ok(());
        }
        let first = usize::from(narrow.has_filter);
        let columns: Vec<ArrayRef> = (first..first + narrow.outputs)
            .map(|i| narrow.exprs.evaluate(i, &leaves, rows))
            .collect::<Result<_>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        ctx.emit(RecordBatch::try_new_with_options(
            self.spec.output_schema.clone(),
            columns,
            &options,
        )?);
        Ok(())
    }
}
