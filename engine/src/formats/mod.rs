//! Record formats shared by every connector: how one record's bytes (a line
//! of a file, the key or value of a Kafka message) become a row of a batch,
//! and how a row becomes bytes again.
//!
//! - `csv`: one record per line, no header, Flink's `csv.*` options.
//! - `json`: one JSON object per record (Arrow's JSON decoder, a batch at a time).
//! - `raw`: the whole record as one `STRING` or `BYTES` column.
//!
//! Decoding works on a whole batch of records; only when that fails are the
//! records looked at one at a time, to name (or skip) the bad ones. Which
//! record is bad is reported by its index; the connector turns the index into
//! an origin the user can find (file and line; topic, partition and offset).

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::connectors::Options;
use crate::error::{EngineError, Result};

pub mod csv;
pub mod json;
pub mod raw;

/// The formats a connector can name in `'format'` (or `'key.format'`,
/// `'value.format'`).
pub const FORMATS: &[&str] = &["csv", "json", "raw"];

/// Called with the index of a record that could not be read and why:
/// returns an error naming the record's origin, or `Ok` after counting it
/// when bad records are skipped.
pub type BadRecord<'a> = dyn FnMut(usize, String) -> Result<()> + 'a;

/// Rows decoded from a batch of records.
pub struct Decoded {
    /// The rows, in record order.
    pub batch: RecordBatch,
    /// Which records became rows, when some were skipped as bad.
    pub kept: Option<Vec<bool>>,
}

/// A configured record format over a fixed set of columns.
#[derive(Debug, Clone)]
pub enum Format {
    /// Delimited text.
    Csv(csv::CsvFormat),
    /// JSON objects.
    Json(json::JsonFormat),
    /// The record's bytes as they are.
    Raw(raw::RawFormat),
}

impl Format {
    /// Reads the format named by option `key` (`format`, `key.format`,
    /// `value.format`) and its own options, which Flink prefixes with the
    /// format's name and, for a message's key or value, with `key.` or
    /// `value.` (`value.json.ignore-parse-errors`). `schema`: the columns
    /// the format reads and writes. `None` when the option is not set.
    pub fn from_options(
        options: &mut Options,
        key: &str,
        schema: SchemaRef,
    ) -> Result<Option<Self>> {
        let Some(name) = options.one_of(key, FORMATS)? else {
            return Ok(None);
        };
        let prefix = key.strip_suffix("format").unwrap_or_default().to_string();
        let format = match name.as_str() {
            "csv" => Format::Csv(csv::CsvFormat::from_options(options, &prefix, schema)?),
            "json" => Format::Json(json::JsonFormat::from_options(options, &prefix, schema)?),
            _ => Format::Raw(raw::RawFormat::new(options.connector(), schema)?),
        };
        Ok(Some(format))
    }

    /// The format's name, as in `'format'`.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Csv(_) => "csv",
            Format::Json(_) => "json",
            Format::Raw(_) => "raw",
        }
    }

    /// Whether bad records are skipped and counted instead of failing the job.
    pub fn ignore_parse_errors(&self) -> bool {
        match self {
            Format::Csv(c) => c.ignore_parse_errors,
            Format::Json(j) => j.ignore_parse_errors,
            Format::Raw(_) => false,
        }
    }

    /// The columns the format reads and writes.
    pub fn schema(&self) -> &SchemaRef {
        match self {
            Format::Csv(c) => &c.schema,
            Format::Json(j) => &j.schema,
            Format::Raw(r) => &r.schema,
        }
    }

    /// Decodes `records` into rows; `bad` hears of each record that cannot
    /// be read, in record order.
    pub fn decode(&self, records: &[&[u8]], bad: &mut BadRecord<'_>) -> Result<Decoded> {
        match self {
            Format::Csv(c) => c.decode(records, bad),
            Format::Json(j) => j.decode(records, bad),
            Format::Raw(r) => r.decode(records),
        }
    }

    /// Encodes every row of `batch` (whose columns are the format's).
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        match self {
            Format::Csv(c) => c.encode(batch),
            Format::Json(j) => j.encode(batch),
            Format::Raw(r) => r.encode(batch),
        }
    }
}

/// The `kept` mask for `n` records when `skipped` (sorted, distinct) were bad.
fn kept_mask(n: usize, skipped: &[usize]) -> Option<Vec<bool>> {
    if skipped.is_empty() {
        return None;
    }
    let mut kept = vec![true; n];
    for &i in skipped {
        kept[i] = false;
    }
    Some(kept)
}

/// A record's bytes as text, or why not.
fn utf8(record: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(record).map_err(|_| "the record is not valid UTF-8".to_string())
}

fn option_error(connector: &str, message: String) -> EngineError {
    EngineError::option(connector, message)
}
