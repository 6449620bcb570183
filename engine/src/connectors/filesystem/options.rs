//! Options shared by the filesystem source and sink.

use datafusion::arrow::datatypes::SchemaRef;

use super::super::Options;
use crate::error::{EngineError, Result};
use crate::formats::csv::CsvFormat;
use crate::formats::json::JsonFormat;
use crate::formats::Format;

/// The file format of a filesystem table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma (or `csv.field-delimiter`) separated values, no header.
    Csv,
    /// One JSON object per line.
    Json,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    /// The file extension written by the sink.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// Every option of a filesystem table.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// File or directory.
    pub path: String,
    /// The format.
    pub format: FileFormat,
    /// How a line reads and writes (CSV and JSON; `None` for Parquet).
    pub records: Option<Format>,
    /// Roll the sink's part file after this many bytes.
    pub rolling_file_size: u64,
}

impl FileOptions {
    /// Reads the options of both the source and the sink, so one table
    /// definition serves either use.
    pub fn parse(options: &mut Options, schema: SchemaRef) -> Result<Self> {
        let path = options.required("path")?;
        let format = match options.one_of("format", &["csv", "json", "parquet"])? {
            Some(f) if f == "csv" => FileFormat::Csv,
            Some(f) if f == "json" => FileFormat::Json,
            Some(_) => FileFormat::Parquet,
            None => {
                return Err(EngineError::option(
                    "filesystem",
                    "missing required option 'format' (csv, json or parquet)",
                ))
            }
        };
        // Both formats' options are accepted whichever is chosen, so that a
        // table can switch format without losing its other options.
        let csv = CsvFormat::from_options(options, "", schema.clone());
        let json = JsonFormat::from_options(options, "", schema)?;
        let records = match format {
            FileFormat::Csv => Some(Format::Csv(csv?)),
            FileFormat::Json => Some(Format::Json(json)),
            FileFormat::Parquet => None,
        };
        let rolling = options
            .string("sink.rolling-policy.file-size")
            .map(|v| parse_size(&v).ok_or_else(|| EngineError::option("filesystem", format!("option 'sink.rolling-policy.file-size' must be a size such as '128MB', found '{v}'"))))
            .transpose()?
            .unwrap_or(128 << 20);
        options.parse::<usize>("sink.parallelism", "a positive integer")?;
        Ok(Self {
            path,
            format,
            records,
            rolling_file_size: rolling,
        })
    }

    /// Whether bad lines are skipped and counted.
    pub fn ignore_parse_errors(&self) -> bool {
        self.records
            .as_ref()
            .is_some_and(Format::ignore_parse_errors)
    }

    /// The CSV options, when the format is CSV.
    pub fn csv(&self) -> Option<&CsvFormat> {
        match &self.records {
            Some(Format::Csv(c)) => Some(c),
            _ => None,
        }
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split].parse().ok()?;
    let mult = match t[split..].trim() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    Some(n * mult)
}
