//! `UNION ALL`: the rows of every input, as they come, under one schema.
//!
//! The planner casts each input to the union's column types first, so a
//! batch only gets the union's schema (its names and nullability); the
//! columns are shared, not copied. The watermark is the minimum over the
//! inputs that have not ended, as for every operator with several inputs.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::{Operator, OperatorContext, OperatorFactory, TaskContext};
use crate::error::Result;

/// Planner output for a `UNION ALL` of several inputs.
#[derive(Clone)]
pub struct UnionSpec {
    /// The union's schema (every input has its column types).
    pub output_schema: SchemaRef,
}

impl OperatorFactory for UnionSpec {
    fn create(&self, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(UnionOperator {
            schema: self.output_schema.clone(),
        }))
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = self
            .output_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| *n != crate::message::OP_COLUMN)
            .collect();
        format!("Union(all=[true], union=[{}])", names.join(", "))
    }

    fn kind(&self) -> &'static str {
        "Union"
    }
}

/// Runs a [`UnionSpec`].
pub struct UnionOperator {
    schema: SchemaRef,
}

impl Operator for UnionOperator {
    fn process_batch(&mut self, batch: RecordBatch, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        ctx.emit(RecordBatch::try_new_with_options(
            self.schema.clone(),
            batch.columns().to_vec(),
            &options,
        )?);
        Ok(())
    }
}
