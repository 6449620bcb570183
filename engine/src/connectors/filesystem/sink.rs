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
//! `part-<job>-<subtask>-<attempt>-<n>-chk<checkpoint>.<ext>`: a restarted
//! attempt never reuses a name, and each file says which checkpoint
//! committed it. On recovery the files the restored checkpoint pre-committed
//! are committed and every other hidden file of the subtask is deleted; when
//! the job resumes from an older checkpoint than the newest that completed
//! (the newer ones were damaged), the files later checkpoints committed are
//! withdrawn, since their rows are produced again ([`SinkWriter::withdraw_after`]).
//! `<job>` is the job's pipeline id, the same across runs of a named job.

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
use crate::formats::csv::field_text;
use crate::operators::TaskContext;

/// A configured filesystem sink.
pub struct FileSink {
    options: FileOptions,
}

impl FileSink {
    /// Reads the options.
    pub fn new(mut options: Options, schema: SchemaRef) -> Result<Self> {
        let opts = FileOptions::parse(&mut options, schema)?;
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
        let job_prefix = format!("part-{}-", ctx.job_id);
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
            job_prefix,
            orphans_from: (ctx.subtask + 1 == ctx.parallelism).then_some(ctx.parallelism),
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
    fn is_exactly_once(&self) -> bool {
        true
    }

    fn takes_back_committed_output(&self) -> bool {
        true
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
    /// `part-<job>-`: what every subtask's files start with.
    job_prefix: String,
    /// For the last subtask: the first subtask index that no longer exists
    /// (a job restored at a lower parallelism), whose hidden files it
    /// removes on recovery.
    orphans_from: Option<usize>,
    sequence: u64,
    open: Option<OpenPart>,
    /// Commit on checkpoints instead of on close.
    two_phase: bool,
    /// Finished files not pre-committed yet (visible names).
    closed: Vec<String>,
    /// Pre-committed files by checkpoint, not committed yet.
    pre_committed: std::collections::BTreeMap<u64, Vec<String>>,
}

/// `name` with the checkpoint that commits it before its extension:
/// `part-…-3.csv` → `part-…-3-chk12.csv`.
fn with_checkpoint(name: &str, checkpoint: u64) -> String {
    match name.split_once('.') {
        Some((stem, ext)) => format!("{stem}-chk{checkpoint}.{ext}"),
        None => format!("{name}-chk{checkpoint}"),
    }
}

/// The checkpoint that committed a visible part file (the rest of its name
/// after `part-<job>-`), if its name records one.
fn committed_by(rest: &str) -> Option<u64> {
    let stem = rest.split('.').next()?;
    let (_, id) = stem.rsplit_once("-chk")?;
    id.parse().ok()
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
        Self::publish_in(&self.dir, name)
    }

    /// Commits part file `name` of folder `dir` (idempotent: a file already
    /// committed is left as it is).
    fn publish_in(dir: &std::path::Path, name: &str) -> Result<()> {
        let hidden = dir.join(hidden_name(name));
        match std::fs::rename(&hidden, dir.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.join(name).exists() => Ok(()),
            Err(e) => Err(EngineError::io(
                format!("committing '{}'", hidden.display()),
                e,
            )),
        }
    }
}

impl SinkWriter for PartFileWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let rolling = self.options.rolling_file_size;
        let (delimiter, quote, null_text) = match self.options.csv() {
            Some(c) => (
                c.delimiter,
                c.quote,
                c.null_literal.clone().unwrap_or_default(),
            ),
            None => (b',', b'"', String::new()),
        };
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
                            text.push_str(&field_text(&col[row], delimiter, quote));
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
        // Each file's final name says which checkpoint commits it.
        let mut files = Vec::new();
        for name in std::mem::take(&mut self.closed) {
            let named = with_checkpoint(&name, checkpoint);
            let (from, to) = (
                self.dir.join(hidden_name(&name)),
                self.dir.join(hidden_name(&named)),
            );
            std::fs::rename(&from, &to).map_err(|e| {
                EngineError::io(
                    format!("naming '{}' for checkpoint {checkpoint}", from.display()),
                    e,
                )
            })?;
            files.push(named);
        }
        self.pre_committed.insert(checkpoint, files);
        let pending: Vec<&String> = self.pre_committed.values().flatten().collect();
        let dir = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        Ok(serde_json::json!({ "dir": dir.to_string_lossy(), "pending": pending }))
    }

    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        let later = self.pre_committed.split_off(&(checkpoint + 1));
        let due = std::mem::replace(&mut self.pre_committed, later);
        for name in due.values().flatten() {
            self.publish(name)?;
        }
        Ok(())
    }

    fn withdraw_after(&mut self, checkpoint: u64, triggered_ms: i64) -> Result<bool> {
        // A later checkpoint's file was opened after this checkpoint's
        // barrier, so it was written after its trigger. A file of an
        // earlier run of the pipeline (before `--fresh` restarted the
        // numbering) is older: it is not this run's to take back.
        let triggered = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(triggered_ms).unwrap_or(0));
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| EngineError::io(format!("listing '{}'", self.dir.display()), e))?;
        let mut withdrawn = 0usize;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let later = name
                .strip_prefix(&self.job_prefix)
                .and_then(committed_by)
                .is_some_and(|c| c > checkpoint)
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified >= triggered);
            if later {
                std::fs::remove_file(entry.path()).map_err(|e| {
                    EngineError::io(format!("withdrawing '{}'", entry.path().display()), e)
                })?;
                withdrawn += 1;
            }
        }
        if withdrawn > 0 {
            tracing::warn!(
                target: crate::USER,
                "filesystem sink '{}': withdrew {withdrawn} part file{} committed after checkpoint {checkpoint}, which the job resumes from: their rows are written again",
                self.dir.display(),
                if withdrawn == 1 { "" } else { "s" }
            );
        }
        Ok(true)
    }

    fn recover(&mut self, states: &[serde_json::Value]) -> Result<()> {
        // Pending files are committed where they were written: a job
        // restored from a savepoint may write into another folder.
        for state in states {
            let dir = state
                .get("dir")
                .and_then(|d| d.as_str())
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| self.dir.clone());
            let names = state.get("pending").and_then(|p| p.as_array());
            for name in names.into_iter().flatten().filter_map(|v| v.as_str()) {
                Self::publish_in(&dir, name)?;
            }
        }
        // Whatever else this subtask left hidden was never part of a
        // completed checkpoint: its rows will be produced again.
        // The last subtask also removes those of subtasks that a job
        // restored at a lower parallelism no longer has.
        let leftover = format!(".{}", self.subtask_prefix);
        let job = format!(".{}", self.job_prefix);
        let orphaned = |name: &str| {
            let Some(from) = self.orphans_from else {
                return false;
            };
            name.strip_prefix(&job)
                .and_then(|rest| rest.split('-').next())
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n >= from)
        };
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| EngineError::io(format!("listing '{}'", self.dir.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if (name.starts_with(&leftover) || orphaned(&name)) && name.ends_with(".inprogress") {
                std::fs::remove_file(entry.path()).map_err(|e| {
                    EngineError::io(format!("removing '{}'", entry.path().display()), e)
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use crate::config::StateSettings;
    use crate::connectors::create_sink;
    use crate::metrics::NodeMetrics;
    use crate::operators::TaskContext;

    fn context(subtask: usize, parallelism: usize) -> TaskContext {
        TaskContext {
            subtask,
            parallelism,
            max_parallelism: 128,
            batch_size: 64,
            metrics: Arc::new(NodeMetrics::default()),
            job_id: "j".into(),
            node: 0,
            state: Arc::new(StateSettings {
                backend: weir_state::BackendConfig::new(weir_state::BackendKind::HashMap),
                ttl: None,
                cache_entries: 1,
            }),
            backend: None,
            operator_state: Vec::new(),
            checkpointing: true,
        }
    }

    /// A job killed at parallelism 2 and restored at 1: the remaining
    /// subtask removes the hidden file the vanished subtask 1 was writing
    /// (it was in no completed checkpoint), but never another job's.
    #[test]
    fn a_restore_at_lower_parallelism_removes_the_vanished_subtasks_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = BTreeMap::new();
        options.insert("path".to_string(), dir.path().display().to_string());
        options.insert("format".to_string(), "csv".to_string());
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let sink = create_sink("filesystem", &options, schema.clone()).unwrap();
        let hidden = |name: &str| dir.path().join(name);
        for name in [
            ".part-j-0-aa-0.csv.inprogress",
            ".part-j-1-aa-3.csv.inprogress",
            ".part-other-1-aa-0.csv.inprogress",
        ] {
            std::fs::write(hidden(name), "1\n").unwrap();
        }
        // At parallelism 2, subtask 0 removes only its own.
        let mut w = sink.create_writer(&context(0, 2), schema.clone()).unwrap();
        w.recover(&[]).unwrap();
        assert!(!hidden(".part-j-0-aa-0.csv.inprogress").exists());
        assert!(hidden(".part-j-1-aa-3.csv.inprogress").exists());
        // At parallelism 1, subtask 0 is the last and removes subtask 1's too.
        let mut w = sink.create_writer(&context(0, 1), schema).unwrap();
        w.recover(&[]).unwrap();
        assert!(!hidden(".part-j-1-aa-3.csv.inprogress").exists());
        assert!(hidden(".part-other-1-aa-0.csv.inprogress").exists());
    }
}
