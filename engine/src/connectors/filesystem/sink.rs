//! Writing part files. Each sink subtask writes its own files, named
//! `part-<job>-<subtask>-<n>.<ext>`; while a file is written its name starts
//! with a dot and ends with `.inprogress`, so readers of the directory never
//! see a partial file.
//!
//! Without checkpoints a file is renamed when it is finished: on rolling
//! (size) and at the end of a bounded input. With checkpoints the sink is
//! two-phase and exactly once: on a barrier the open file is closed and
//! synced (pre-commit) and its name goes into the checkpoint; only when the
//! checkpoint completes are its files renamed (commit). Files are then named
//! `part-<job>-<subtask>-<attempt>-<n>.<ext>`, so that a restarted attempt
//! never reuses a name; on recovery the files the restored checkpoint
//! pre-committed are committed and every other hidden file of the subtask is
//! deleted.

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
        let subtask_prefix = format!("part-{}-{}-", ctx.job_id, ctx.subtask);
        let prefix = if ctx.checkpointing {
            let attempt = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            format!("{subtask_prefix}{attempt:x}")
        } else {
            format!("part-{}-{}", ctx.job_id, ctx.subtask)
        };
        Ok(Box::new(PartFileWriter {
            options: self.options.clone(),
            dir,
            schema,
            prefix,
            subtask_prefix,
            sequence: 0,
            open: None,
            two_phase: ctx.checkpointing,
            closed: Vec::new(),
            pre_committed: std::collections::BTreeMap::new(),
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
    /// `part-<job>-<subtask>-`: what this subtask's files start with.
    subtask_prefix: String,
    sequence: u64,
    open: Option<OpenPart>,
    /// Commit on checkpoints instead of on close.
    two_phase: bool,
    /// Finished files not pre-committed yet (visible names).
    closed: Vec<String>,
    /// Pre-committed files by checkpoint, not committed yet.
    pre_committed: std::collections::BTreeMap<u64, Vec<String>>,
}

/// The hidden name of part file `name` while it is not committed.
fn hidden_name(name: &str) -> String {
    format!(".{name}.inprogress")
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
            let hidden = self.dir.join(hidden_name(&name));
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
        let file = match part.encoder {
            Encoder::Csv(w) => w.into_inner().map_err(|e| io(e.into_error()))?,
            Encoder::Json(mut w) => {
                w.finish()?;
                w.into_inner()
                    .into_inner()
                    .map_err(|e| io(e.into_error()))?
            }
            Encoder::Parquet(w) => w
                .into_inner()
                .map_err(|e| EngineError::Internal(format!("parquet writer: {e}")))?,
        };
        if self.two_phase {
            // Pre-committed files must survive a crash of the machine.
            file.sync_all().map_err(io)?;
            let name = part
                .visible
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            self.closed.push(name);
            return Ok(());
        }
        std::fs::rename(&part.hidden, &part.visible).map_err(io)?;
        Ok(())
    }

    /// Renames a pre-committed file into view; done already is fine.
    fn publish(&self, name: &str) -> Result<()> {
        let hidden = self.dir.join(hidden_name(name));
        match std::fs::rename(&hidden, self.dir.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.dir.join(name).exists() => {
                Ok(())
            }
            Err(e) => Err(EngineError::io(
                format!("committing '{}'", hidden.display()),
                e,
            )),
        }
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
        self.close()?;
        // Two-phase without a final checkpoint (no input at all): nothing
        // else will commit these.
        for name in std::mem::take(&mut self.closed) {
            self.publish(&name)?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<serde_json::Value> {
        self.close()?;
        let files = std::mem::take(&mut self.closed);
        self.pre_committed.insert(checkpoint, files);
        let pending: Vec<&String> = self.pre_committed.values().flatten().collect();
        Ok(serde_json::json!({ "pending": pending }))
    }

    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        let later = self.pre_committed.split_off(&(checkpoint + 1));
        let due = std::mem::replace(&mut self.pre_committed, later);
        for name in due.values().flatten() {
            self.publish(name)?;
        }
        Ok(())
    }

    fn recover(&mut self, states: &[serde_json::Value]) -> Result<()> {
        let pending: Vec<String> = states
            .iter()
            .filter_map(|s| s.get("pending").and_then(|p| p.as_array()))
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for name in &pending {
            self.publish(name)?;
        }
        // Whatever else this subtask left hidden was never part of a
        // completed checkpoint: its rows will be produced again.
        let leftover = format!(".{}", self.subtask_prefix);
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| EngineError::io(format!("listing '{}'", self.dir.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(&leftover) && name.ends_with(".inprogress") {
                std::fs::remove_file(entry.path()).map_err(|e| {
                    EngineError::io(format!("removing '{}'", entry.path().display()), e)
                })?;
            }
        }
        Ok(())
    }
}
