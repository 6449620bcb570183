//! Writing part files. Each sink subtask writes its own files, named
//! `part-<job>-<subtask>-<n>.<ext>`; while a file is written its name starts
//! with a dot and ends with `.inprogress`, so readers of the directory never
//! see a partial file. It is renamed when it is finished: on rolling (size)
//! and at the end of a bounded input.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

use super::options::{FileFormat, FileOptions};
use crate::connectors::{Options, SinkFactory, SinkWriter};
use crate::error::{EngineError, Result};
use crate::format::column_strings;
use crate::operators::TaskContext;

/// A configured filesystem sink.
pub struct FileSink {
    options: FileOptions,
}

impl FileSink {
    /// Reads the options.
    pub fn new(mut options: Options, _schema: SchemaRef) -> Result<Self> {
        let opts = FileOptions::parse(&mut options)?;
        options.finish()?;
        Ok(Self { options: opts })
    }
}

impl SinkFactory for FileSink {
    fn create_writer(&self, ctx: &TaskContext, schema: SchemaRef) -> Result<Box<dyn SinkWriter>> {
        let dir = PathBuf::from(
            self.options
                .path
                .strip_prefix("file://")
                .unwrap_or(&self.options.path),
        );
        std::fs::create_dir_all(&dir).map_err(|e| {
            EngineError::io(format!("creating sink directory '{}'", dir.display()), e)
        })?;
        Ok(Box::new(PartFileWriter {
            options: self.options.clone(),
            dir,
            schema,
            prefix: format!("part-{}-{}", ctx.job_id, ctx.subtask),
            sequence: 0,
            open: None,
        }))
    }
    fn accepts_updates(&self) -> bool {
        false
    }
    fn describe(&self) -> String {
        format!(
            "connector=[filesystem], path=[{}], format=[{}]",
            self.options.path,
            self.options.format.extension()
        )
    }
}

enum Encoder {
    Csv(BufWriter<File>),
    Json(LineDelimitedWriter<BufWriter<File>>),
    Parquet(Box<ArrowWriter<File>>),
}

struct OpenPart {
    encoder: Encoder,
    hidden: PathBuf,
    visible: PathBuf,
    bytes: u64,
}

struct PartFileWriter {
    options: FileOptions,
    dir: PathBuf,
    schema: SchemaRef,
    prefix: String,
    sequence: u64,
    open: Option<OpenPart>,
}

impl PartFileWriter {
    fn open(&mut self) -> Result<&mut OpenPart> {
        if self.open.is_none() {
            let name = format!(
                "{}-{}.{}",
                self.prefix,
                self.sequence,
                self.options.format.extension()
            );
            self.sequence += 1;
            let hidden = self.dir.join(format!(".{name}.inprogress"));
            let visible = self.dir.join(name);
            let file = File::create(&hidden)
                .map_err(|e| EngineError::io(format!("creating '{}'", hidden.display()), e))?;
            let encoder = match self.options.format {
                FileFormat::Csv => Encoder::Csv(BufWriter::new(file)),
                FileFormat::Json => Encoder::Json(LineDelimitedWriter::new(BufWriter::new(file))),
                FileFormat::Parquet => Encoder::Parquet(Box::new(
                    ArrowWriter::try_new(file, self.schema.clone(), None)
                        .map_err(|e| EngineError::Internal(format!("parquet writer: {e}")))?,
                )),
            };
            self.open = Some(OpenPart {
                encoder,
                hidden,
                visible,
                bytes: 0,
            });
        }
        self.open
            .as_mut()
            .ok_or_else(|| EngineError::Internal("no open part file".into()))
    }

    fn close(&mut self) -> Result<()> {
        let Some(part) = self.open.take() else {
            return Ok(());
        };
        let io = |e: std::io::Error| {
            EngineError::io(format!("finishing '{}'", part.hidden.display()), e)
        };
        match part.encoder {
            Encoder::Csv(mut w) => w.flush().map_err(io)?,
            Encoder::Json(mut w) => {
                w.finish()?;
                w.into_inner().flush().map_err(io)?
            }
            Encoder::Parquet(w) => {
                w.close()
                    .map_err(|e| EngineError::Internal(format!("parquet writer: {e}")))?;
            }
        }
        std::fs::rename(&part.hidden, &part.visible).map_err(io)?;
        Ok(())
    }
}

fn csv_field(value: &str, delimiter: u8, quote: u8) -> String {
    let needs = value
        .bytes()
        .any(|b| b == delimiter || b == quote || b == b'\n' || b == b'\r');
    if needs {
        let q = quote as char;
        format!("{q}{}{q}", value.replace(q, &format!("{q}{q}")))
    } else {
        value.to_string()
    }
}

impl SinkWriter for PartFileWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let (delimiter, quote, rolling) = (
            self.options.delimiter,
            self.options.quote,
            self.options.rolling_file_size,
        );
        let null_text = self.options.null_literal.clone().unwrap_or_default();
        let part = self.open()?;
        let before = part.bytes;
        match &mut part.encoder {
            Encoder::Csv(w) => {
                let columns: Vec<Vec<String>> = batch
                    .columns()
                    .iter()
                    .map(column_strings)
                    .collect::<Result<_>>()?;
                let mut text = String::new();
                for row in 0..batch.num_rows() {
                    for (i, col) in columns.iter().enumerate() {
                        if i > 0 {
                            text.push(delimiter as char);
                        }
                        if batch.column(i).is_null(row) {
                            text.push_str(&null_text);
                        } else {
                            text.push_str(&csv_field(&col[row], delimiter, quote));
                        }
                    }
                    text.push('\n');
                }
                w.write_all(text.as_bytes())
                    .map_err(|e| EngineError::io("writing csv part file", e))?;
                part.bytes += text.len() as u64;
            }
            Encoder::Json(w) => {
                w.write(batch)?;
                part.bytes += batch.get_array_memory_size() as u64;
            }
            Encoder::Parquet(w) => {
                w.write(batch)
                    .map_err(|e| EngineError::Internal(format!("parquet writer: {e}")))?;
                part.bytes = w.bytes_written() as u64 + w.in_progress_size() as u64;
            }
        }
        let _ = before;
        if part.bytes >= rolling {
            self.close()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.close()
    }
}
