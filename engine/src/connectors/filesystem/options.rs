//! Options shared by the filesystem source and sink.

use super::super::Options;
use crate::error::{EngineError, Result};

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
    /// CSV field delimiter.
    pub delimiter: u8,
    /// CSV quote character.
    pub quote: u8,
    /// Text that reads as NULL in CSV (besides an empty field).
    pub null_literal: Option<String>,
    /// Skip (and count) malformed records instead of failing.
    pub ignore_parse_errors: bool,
    /// Roll the sink's part file after this many bytes.
    pub rolling_file_size: u64,
}

impl FileOptions {
    /// Reads the options of both the source and the sink, so one table
    /// definition serves either use.
    pub fn parse(options: &mut Options) -> Result<Self> {
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
        let single_char = |key: &str, v: Option<String>, default: u8| -> Result<u8> {
            match v {
                None => Ok(default),
                Some(v) => {
                    let v = if v == "\\t" { "\t".to_string() } else { v };
                    if v.len() == 1 {
                        Ok(v.as_bytes()[0])
                    } else {
                        Err(EngineError::option(
                            "filesystem",
                            format!("option '{key}' must be a single character, found '{v}'"),
                        ))
                    }
                }
            }
        };
        let delimiter = single_char(
            "csv.field-delimiter",
            options.string("csv.field-delimiter"),
            b',',
        )?;
        let quote = single_char(
            "csv.quote-character",
            options.string("csv.quote-character"),
            b'"',
        )?;
        let null_literal = options.string("csv.null-literal");
        let csv_ignore = options.bool("csv.ignore-parse-errors", false)?;
        let json_ignore = options.bool("json.ignore-parse-errors", false)?;
        let rolling = options
            .string("sink.rolling-policy.file-size")
            .map(|v| parse_size(&v).ok_or_else(|| EngineError::option("filesystem", format!("option 'sink.rolling-policy.file-size' must be a size such as '128MB', found '{v}'"))))
            .transpose()?
            .unwrap_or(128 << 20);
        options.parse::<usize>("sink.parallelism", "a positive integer")?;
        let ignore_parse_errors = match format {
            FileFormat::Csv => csv_ignore,
            FileFormat::Json => json_ignore,
            FileFormat::Parquet => false,
        };
        Ok(Self {
            path,
            format,
            delimiter,
            quote,
            null_literal,
            ignore_parse_errors,
            rolling_file_size: rolling,
        })
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
