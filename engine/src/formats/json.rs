//! The `json` format: one JSON object per record, decoded by Arrow's JSON
//! decoder a batch at a time and encoded by its line writer.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::reader::ReaderBuilder;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::record_batch::RecordBatch;

use super::{kept_mask, utf8, BadRecord, Decoded};
use crate::connectors::Options;
use crate::error::{EngineError, Result};

/// The options of the `json` format.
#[derive(Debug, Clone)]
pub struct JsonFormat {
    /// The columns of a record (object fields by name; nested rows, arrays
    /// and maps as JSON objects and arrays).
    pub schema: SchemaRef,
    /// `json.ignore-parse-errors`: skip and count bad records.
    pub ignore_parse_errors: bool,
}

impl JsonFormat {
    /// Reads `{prefix}json.*`.
    pub fn from_options(options: &mut Options, prefix: &str, schema: SchemaRef) -> Result<Self> {
        let ignore_parse_errors =
            options.bool(&format!("{prefix}json.ignore-parse-errors"), false)?;
        // Accepted as Flink documents them; Weir reads missing fields as
        // NULL and timestamps in both standards.
        options.string(&format!("{prefix}json.fail-on-missing-field"));
        options.string(&format!("{prefix}json.timestamp-format.standard"));
        Ok(Self {
            schema,
            ignore_parse_errors,
        })
    }

    fn decode_all(&self, records: &[&[u8]]) -> std::result::Result<Option<RecordBatch>, String> {
        let mut decoder = ReaderBuilder::new(self.schema.clone())
            .with_batch_size(records.len().max(1))
            .build_decoder()
            .map_err(|e| e.to_string())?;
        for r in records {
            // A record of two objects, or of a character split in two,
            // must not merge with its neighbour: each is checked alone.
            utf8(r)?;
            if r.iter().all(|b| b.is_ascii_whitespace()) {
                return Err("the record is empty".into());
            }
            let read = decoder.decode(r).map_err(|e| e.to_string())?;
            if read != r.len() {
                return Err("more than one JSON value in the record".into());
            }
            decoder.decode(b"\n").map_err(|e| e.to_string())?;
        }
        decoder.flush().map_err(|e| e.to_string())
    }

    /// Decodes one object per record; bad records are reported in order.
    pub fn decode(&self, records: &[&[u8]], bad: &mut BadRecord<'_>) -> Result<Decoded> {
        if let Ok(batch) = self.decode_all(records) {
            let batch = batch.unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone()));
            if batch.num_rows() == records.len() {
                return Ok(Decoded { batch, kept: None });
            }
        }
        // Find the bad records one at a time.
        let mut good = Vec::new();
        let mut skipped = Vec::new();
        for (i, record) in records.iter().enumerate() {
            match self.decode_all(std::slice::from_ref(record)) {
                Ok(Some(b)) if b.num_rows() == 1 => good.push(b),
                Ok(_) => {
                    bad(i, "the record holds no JSON object".into())?;
                    skipped.push(i);
                }
                Err(reason) => {
                    bad(i, reason)?;
                    skipped.push(i);
                }
            }
        }
        let batch = datafusion::arrow::compute::concat_batches(&self.schema, &good)?;
        Ok(Decoded {
            batch,
            kept: kept_mask(records.len(), &skipped),
        })
    }

    /// One JSON object per row (no line break); NULL values are left out.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        let mut text = Vec::new();
        {
            let mut writer = LineDelimitedWriter::new(&mut text);
            writer.write(batch)?;
            writer.finish()?;
        }
        let mut out: Vec<Vec<u8>> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        if out.len() != batch.num_rows() {
            // An all-NULL row is written as `{}` by the writer; anything
            // else would be a bug in the splitting above.
            out.resize(batch.num_rows(), b"{}".to_vec());
            if out.len() != batch.num_rows() {
                return Err(EngineError::Internal("json encoder lost rows".into()));
            }
        }
        Ok(out)
    }
}
