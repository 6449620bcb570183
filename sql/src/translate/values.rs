//! `Values` and `EmptyRelation`: constant rows, as a bounded source.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::logical_expr::{EmptyRelation, Values};
use weir_engine::connectors::SourceSpec;
use weir_engine::graph::NodeKind;

use super::{Stream, Translator};
use crate::error::Result;
use crate::values::ValuesSource;

impl Translator<'_> {
    pub(super) fn empty_relation(&mut self, e: &EmptyRelation) -> Result<Stream> {
        let rows = usize::from(e.produce_one_row);
        let batch = RecordBatch::try_new_with_options(
            Arc::new(e.schema.as_arrow().clone()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        Ok(self.values(vec![batch], e.schema.clone()))
    }

    pub(super) fn values_node(&mut self, v: &Values) -> Result<Stream> {
        let one = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        let empty = DFSchema::empty();
        let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::new(); v.schema.fields().len()];
        for row in &v.values {
            for (c, e) in row.iter().enumerate() {
                let array = self.physical(e, &empty)?.evaluate(&one)?.into_array(1)?;
                let array =
                    datafusion::arrow::compute::cast(&array, v.schema.field(c).data_type())?;
                columns[c].push(array);
            }
        }
        let arrays = columns
            .iter()
            .map(|parts| {
                let refs: Vec<&dyn datafusion::arrow::array::Array> =
                    parts.iter().map(|a| a.as_ref()).collect();
                datafusion::arrow::compute::concat(&refs)
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let schema = Arc::new(v.schema.as_arrow().clone());
        let batch = RecordBatch::try_new_with_options(
            schema,
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(v.values.len())),
        )?;
        Ok(self.values(vec![batch], v.schema.clone()))
    }

    fn values(&mut self, batches: Vec<RecordBatch>, schema: DFSchemaRef) -> Stream {
        let arrow = Arc::new(schema.as_arrow().clone());
        let spec = SourceSpec {
            table: "values".into(),
            connector: Arc::new(ValuesSource { batches }),
            computed: None,
            watermark: None,
            watermark_sql: None,
            schema: arrow.clone(),
            idle_timeout: None,
        };
        let node = self
            .graph
            .add(NodeKind::Source(Arc::new(spec)), 1, vec![], arrow, false);
        Stream {
            node,
            schema,
            updating: false,
            window: None,
            parallelism: 1,
        }
    }
}
