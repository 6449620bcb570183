//! Filter and projection, evaluated as DataFusion physical expressions over
//! whole batches (Flink calls this a Calc).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;

use super::{Operator, OperatorFactory, TaskContext};
use crate::error::{EngineError, Result};
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
        Ok(Box::new(CalcOperator { spec: self.clone() }))
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
}

impl Operator for CalcOperator {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let batch = match &self.spec.filter {
            Some(filter) => {
                let mask = filter.evaluate(&batch)?.into_array(batch.num_rows())?;
                let mask = mask
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| {
                        EngineError::Internal("filter did not return booleans".into())
                    })?;
                if mask.true_count() == batch.num_rows() && mask.null_count() == 0 {
                    batch
                } else {
                    filter_record_batch(&batch, mask)?
                }
            }
            None => batch,
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let Some(projection) = &self.spec.projection else {
            out.push(batch);
            return Ok(());
        };
        let rows = batch.num_rows();
        let mut columns: Vec<ArrayRef> = projection
            .iter()
            .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(rows)))
            .collect::<datafusion::error::Result<_>>()?;
        let schema = batch.schema();
        if let Some(last) = schema.fields().last() {
            if last.name() == OP_COLUMN
                && self.spec.output_schema.fields().len() == columns.len() + 1
            {
                columns.push(batch.column(schema.fields().len() - 1).clone());
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        out.push(RecordBatch::try_new_with_options(
            self.spec.output_schema.clone(),
            columns,
            &options,
        )?);
        Ok(())
    }
}
