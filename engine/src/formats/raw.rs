//! The `raw` format: a record's bytes are the value of the one column, a
//! `STRING` (UTF-8) or `BYTES`; a NULL value is a record without bytes.

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{option_error, Decoded};
use crate::error::{EngineError, Result};

/// The `raw` format over its single column.
#[derive(Debug, Clone)]
pub struct RawFormat {
    /// One column, `STRING` or `BYTES`.
    pub schema: SchemaRef,
}

impl RawFormat {
    /// Checks that the format covers exactly one text or binary column.
    pub fn new(connector: &str, schema: SchemaRef) -> Result<Self> {
        let ok = schema.fields().len() == 1
            && matches!(
                schema.field(0).data_type(),
                DataType::Utf8 | DataType::Binary | DataType::LargeUtf8 | DataType::LargeBinary
            );
        if !ok {
            return Err(option_error(
                connector,
                format!(
                    "the 'raw' format reads and writes one STRING or BYTES column, found {} column(s): {}",
                    schema.fields().len(),
                    schema
                        .fields()
                        .iter()
                        .map(|f| format!("{} {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(Self { schema })
    }

    /// Each record becomes one value (invalid UTF-8 is replaced for STRING).
    pub fn decode(&self, records: &[&[u8]]) -> Result<Decoded> {
        let field = self.schema.field(0);
        let column: ArrayRef = match field.data_type() {
            DataType::Binary | DataType::LargeBinary => cast(
                &BinaryArray::from_iter_values(records.iter()),
                field.data_type(),
            )?,
            _ => {
                let texts: StringArray = records
                    .iter()
                    .map(|r| Some(String::from_utf8_lossy(r)))
                    .collect();
                cast(&texts, field.data_type())?
            }
        };
        Ok(Decoded {
            batch: RecordBatch::try_new(self.schema.clone(), vec![column])?,
            kept: None,
        })
    }

    /// The column's bytes per row (empty for NULL).
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        let column = cast(batch.column(0), &DataType::Binary)?;
        let values = column
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| EngineError::Internal("raw encoder: not binary".into()))?;
        Ok((0..values.len())
            .map(|i| {
                if values.is_null(i) {
                    Vec::new()
                } else {
                    values.value(i).to_vec()
                }
            })
            .collect())
    }
}
