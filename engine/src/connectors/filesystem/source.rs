//! Reading CSV, JSON-lines and Parquet files as a bounded source.
//!
//! Lines are cut here (a quoted CSV field may span several) and decoded a
//! batch at a time by the shared formats ([`crate::formats`]), which name the
//! bad line or skip it.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::options::{FileFormat, FileOptions};
use crate::connectors::{Options, SourceFactory, SourcePoll, SourceReader};
use crate::error::{EngineError, Result};
use crate::metrics::NodeMetrics;
use crate::operators::TaskContext;

/// A configured filesystem source.
pub struct FileSource {
    options: FileOptions,
    schema: SchemaRef,
}

impl FileSource {
    /// Reads the options and checks that the format can hold the schema.
    pub fn new(mut options: Options, schema: SchemaRef) -> Result<Self> {
        let opts = FileOptions::parse(&mut options, schema.clone())?;
        options.finish()?;
        Ok(Self {
            options: opts,
            schema,
        })
    }
}

/// The files of `path` (itself, or the visible files of the directory, sorted).
pub fn list_files(path: &str) -> Result<Vec<PathBuf>> {
    let p = Path::new(path.strip_prefix("file://").unwrap_or(path));
    let meta = std::fs::metadata(p)
        .map_err(|e| EngineError::io(format!("filesystem source path '{path}'"), e))?;
    if meta.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    let mut files = Vec::new();
    let entries =
        std::fs::read_dir(p).map_err(|e| EngineError::io(format!("listing '{path}'"), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(format!("listing '{path}'"), e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

impl SourceFactory for FileSource {
    fn create_reader(&self, ctx: &TaskContext) -> Result<Box<dyn SourceReader>> {
        let files = list_files(&self.options.path)?
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % ctx.parallelism == ctx.subtask)
            .map(|(_, f)| f)
            .collect();
        Ok(Box::new(FileReader {
            options: self.options.clone(),
            schema: self.schema.clone(),
            files,
            next_file: 0,
            current: None,
            batch_size: ctx.batch_size,
            metrics: ctx.metrics.clone(),
            done: Default::default(),
            partial: Default::default(),
            line_buffer: Vec::new(),
        }))
    }

    fn redistribute(
        &self,
        old: &[Option<serde_json::Value>],
        parallelism: usize,
        subtask: usize,
    ) -> Result<Option<serde_json::Value>> {
        // What every old subtask had read, file by file: files each reader
        // had passed are done, the one it was in is partly read.
        let all = list_files(&self.options.path)?;
        let mut done = std::collections::BTreeSet::new();
        let mut partial = std::collections::BTreeMap::new();
        for (s, position) in old.iter().enumerate() {
            let Some(position) = position else { continue };
            let mine: Vec<&PathBuf> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| i % old.len() == s)
                .map(|(_, f)| f)
                .collect();
            let (index, at) = reader_progress(position, |name| {
                mine.iter().position(|f| f.display().to_string() == name)
            })?;
            for f in mine.iter().take(index) {
                done.insert(f.display().to_string());
            }
            if let (Some(f), Some(at)) = (mine.get(index), at) {
                partial.insert(f.display().to_string(), at);
            }
            let (d, p) = carried(position);
            done.extend(d);
            partial.extend(p);
        }
        for name in &done {
            partial.remove(name);
        }
        let mine: std::collections::BTreeSet<String> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % parallelism == subtask)
            .map(|(_, f)| f.display().to_string())
            .collect();
        done.retain(|f| mine.contains(f));
        partial.retain(|f, _| mine.contains(f));
        Ok(Some(serde_json::json!({
            "file_index": 0,
            "done": done,
            "partial": partial,
        })))
    }
    fn is_bounded(&self) -> bool {
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

enum OpenFile {
    Lines {
        reader: BufReader<File>,
        path: String,
        line: u64,
        /// Bytes read: where the next line starts.
        offset: u64,
    },
    Parquet {
        reader: datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader,
        /// Batches read.
        batches: u64,
    },
}

struct FileReader {
    options: FileOptions,
    schema: SchemaRef,
    files: Vec<PathBuf>,
    /// Index in `files` of the next file to open.
    next_file: usize,
    current: Option<OpenFile>,
    batch_size: usize,
    metrics: Arc<NodeMetrics>,
    /// Files not opened yet that an earlier run at another parallelism read
    /// to the end (skipped) or in part (resumed where it stopped).
    done: std::collections::BTreeSet<String>,
    partial: std::collections::BTreeMap<String, FileProgress>,
    /// The text of the batch being read (reused).
    line_buffer: Vec<u8>,
}

/// How far a file was read: bytes and lines (CSV, JSON) or batches (Parquet).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct FileProgress {
    offset: u64,
    line: u64,
    batches: u64,
}

/// Where a recorded position stands in its reader's file list: the index
/// of the file it was in (or about to open), and how far into it.
fn reader_progress(
    position: &serde_json::Value,
    find: impl Fn(&str) -> Option<usize>,
) -> Result<(usize, Option<FileProgress>)> {
    let number = |k: &str| position.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let mut index = number("file_index") as usize;
    if let Some(name) = position.get("file").and_then(|v| v.as_str()) {
        index = find(name).ok_or_else(|| {
            EngineError::Internal(format!(
                "the checkpoint's position is in '{name}', which is no longer in the source directory"
            ))
        })?;
    }
    let at = FileProgress {
        offset: number("offset"),
        line: number("line"),
        batches: number("batches"),
    };
    Ok((index, (at.offset > 0 || at.batches > 0).then_some(at)))
}

/// The files a position carries over from a redistribution (done, partly read).
fn carried(
    position: &serde_json::Value,
) -> (
    Vec<String>,
    std::collections::BTreeMap<String, FileProgress>,
) {
    let done = position
        .get("done")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_default();
    let partial = position
        .get("partial")
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default();
    (done, partial)
}

impl SourceReader for FileReader {
    fn poll_next(&mut self) -> Result<SourcePoll> {
        loop {
            if self.current.is_none() {
                if self.next_file >= self.files.len() {
                    return Ok(SourcePoll::End);
                }
                let name = self.files[self.next_file].display().to_string();
                let index = self.next_file;
                self.next_file += 1;
                if self.done.remove(&name) {
                    continue;
                }
                self.current = Some(match self.partial.remove(&name) {
                    Some(at) => self.open_at(index, at)?,
                    None => self.open(index)?,
                });
            }
            let batch = match self.current.as_mut() {
                Some(OpenFile::Parquet { reader, batches }) => match reader.next() {
                    Some(batch) => {
                        *batches += 1;
                        Some(cast_to_schema(&batch?, &self.schema)?)
                    }
                    None => None,
                },
                Some(OpenFile::Lines {
                    reader,
                    path,
                    line,
                    offset,
                }) => {
                    // The batch's lines go into one buffer (no allocation
                    // per line), checked as UTF-8 once.
                    let mut buf = std::mem::take(&mut self.line_buffer);
                    buf.clear();
                    let mut ends: Vec<usize> = Vec::with_capacity(self.batch_size);
                    // The line each record starts on.
                    let mut starts: Vec<u64> = Vec::with_capacity(self.batch_size);
                    // A CSV field in quotes may hold line breaks: a record
                    // goes on while it has an odd number of quotes.
                    let quote = self.options.csv().map(|c| c.quote);
                    while ends.len() < self.batch_size {
                        let start = buf.len();
                        let mut open_quote = false;
                        let mut record_line = None;
                        loop {
                            let from = buf.len();
                            let n = reader
                                .read_until(b'\n', &mut buf)
                                .map_err(|e| EngineError::io(format!("reading '{path}'"), e))?;
                            if n == 0 {
                                break;
                            }
                            *line += 1;
                            *offset += n as u64;
                            record_line.get_or_insert(*line);
                            if let Some(q) = quote {
                                let quotes = buf[from..].iter().filter(|b| **b == q).count();
                                open_quote ^= quotes % 2 == 1;
                            }
                            if !open_quote {
                                break;
                            }
                        }
                        let Some(record_line) = record_line else {
                            break;
                        };
                        let mut end = buf.len();
                        while end > start && matches!(buf[end - 1], b'\n' | b'\r') {
                            end -= 1;
                        }
                        buf.truncate(end);
                        ends.push(end);
                        starts.push(record_line);
                    }
                    let path = path.clone();
                    let batch = if ends.is_empty() {
                        None
                    } else {
                        let mut records: Vec<&[u8]> = Vec::with_capacity(ends.len());
                        let mut lines: Vec<u64> = Vec::with_capacity(ends.len());
                        let mut start = 0;
                        for (i, &end) in ends.iter().enumerate() {
                            let record = &buf[start..end];
                            start = end;
                            if record.iter().all(u8::is_ascii_whitespace) {
                                continue;
                            }
                            records.push(record);
                            lines.push(starts.get(i).copied().unwrap_or(*line));
                        }
                        match &self.options.records {
                            Some(format) => {
                                let ignore = format.ignore_parse_errors();
                                let metrics = &self.metrics;
                                let mut bad = |i: usize, reason: String| {
                                    bad_line(ignore, metrics, &path, lines[i], reason)
                                };
                                Some(format.decode(&records, &mut bad)?.batch)
                            }
                            None => None,
                        }
                    };
                    self.line_buffer = buf;
                    batch
                }
                None => None,
            };
            match batch {
                Some(b) if b.num_rows() > 0 => return Ok(SourcePoll::Batch(b)),
                Some(_) => continue,
                None => self.current = None,
            }
        }
    }

    fn position(&self) -> Option<serde_json::Value> {
        let (file, offset, line, batches) = match &self.current {
            Some(OpenFile::Lines { offset, line, .. }) => (self.next_file - 1, *offset, *line, 0),
            Some(OpenFile::Parquet { batches, .. }) => (self.next_file - 1, 0, 0, *batches),
            None => (self.next_file, 0, 0, 0),
        };
        Some(serde_json::json!({
            "file_index": file,
            "file": self.files.get(file).map(|f| f.display().to_string()),
            "offset": offset,
            "line": line,
            "batches": batches,
            "done": self.done,
            "partial": self.partial,
        }))
    }

    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        // The directory may have changed: the file is found by its name.
        let (index, at) = reader_progress(position, |name| {
            self.files
                .iter()
                .position(|f| f.display().to_string() == name)
        })?;
        let (done, partial) = carried(position);
        self.done = done.into_iter().collect();
        self.partial = partial;
        self.current = None;
        self.next_file = index;
        if let (true, Some(at)) = (index < self.files.len(), at) {
            self.current = Some(self.open_at(index, at)?);
            self.next_file = index + 1;
        }
        Ok(())
    }
}

impl FileReader {
    /// Opens file `index` where an earlier reader stopped in it.
    fn open_at(&self, index: usize, at: FileProgress) -> Result<OpenFile> {
        let mut open = self.open(index)?;
        match &mut open {
            OpenFile::Lines {
                reader,
                path,
                line,
                offset,
            } => {
                use std::io::Seek;
                reader
                    .seek(std::io::SeekFrom::Start(at.offset))
                    .map_err(|e| EngineError::io(format!("seeking in '{path}'"), e))?;
                *line = at.line;
                *offset = at.offset;
            }
            OpenFile::Parquet { reader, batches } => {
                for _ in 0..at.batches {
                    if reader.next().is_none() {
                        break;
                    }
                    *batches += 1;
                }
            }
        }
        Ok(open)
    }

    fn open(&self, index: usize) -> Result<OpenFile> {
        let path = &self.files[index];
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| EngineError::io(format!("opening '{name}'"), e))?;
        Ok(match self.options.format {
            FileFormat::Parquet => OpenFile::Parquet {
                reader: ParquetRecordBatchReaderBuilder::try_new(file)
                    .and_then(|b| b.with_batch_size(self.batch_size).build())
                    .map_err(|e| EngineError::BadRecord {
                        file: name.clone(),
                        line: 0,
                        reason: e.to_string(),
                    })?,
                batches: 0,
            },
            _ => OpenFile::Lines {
                reader: BufReader::new(file),
                path: name,
                line: 0,
                offset: 0,
            },
        })
    }
}

fn cast_to_schema(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let mut columns = Vec::new();
    for field in schema.fields() {
        let col = batch
            .column_by_name(field.name())
            .ok_or_else(|| EngineError::BadRecord {
                file: "parquet file".into(),
                line: 0,
                reason: format!("column '{}' is missing", field.name()),
            })?;
        columns.push(datafusion::arrow::compute::cast(col, field.data_type())?);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// A line that cannot be read: skipped and counted, or the job's error.
fn bad_line(
    ignore: bool,
    metrics: &NodeMetrics,
    path: &str,
    line: u64,
    reason: String,
) -> Result<()> {
    if ignore {
        NodeMetrics::add(&metrics.parse_errors_skipped, 1);
        tracing::debug!(file = path, line, reason = %reason, "skipped malformed record");
        Ok(())
    } else {
        Err(EngineError::BadRecord {
            file: path.to_string(),
            line,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    /// Found by the `json_decoder` fuzz target: a record ending in the lead
    /// byte of a UTF-8 character whose next record starts with a
    /// continuation byte. Joined, the two read as one valid character; each
    /// record is checked on its own and refused, naming its line.
    #[test]
    fn a_character_split_across_two_records_is_a_bad_record_not_a_panic() {
        use std::collections::BTreeMap;
        use std::sync::Arc;

        use datafusion::arrow::datatypes::{DataType, Field, Schema};

        use crate::connectors::{Options, SourceFactory, SourcePoll};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.json");
        std::fs::write(&path, b"{\"i(\": \"h \"v\":\xdc\n\x98").unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        for format in ["json", "csv"] {
            let values: BTreeMap<String, String> = [
                ("path".to_string(), path.to_string_lossy().to_string()),
                ("format".to_string(), format.to_string()),
            ]
            .into_iter()
            .collect();
            let source =
                super::FileSource::new(Options::new("filesystem", &values), schema.clone())
                    .unwrap();
            let ctx = crate::operators::TaskContext {
                subtask: 0,
                parallelism: 1,
                max_parallelism: 128,
                batch_size: 64,
                metrics: Arc::default(),
                job_id: "t".into(),
                node: 0,
                state: Arc::new(crate::config::StateSettings {
                    backend: weir_state::BackendConfig::new(weir_state::BackendKind::HashMap),
                    ttl: None,
                    cache_entries: usize::MAX,
                }),
                backend: None,
                operator_state: Vec::new(),
                checkpointing: false,
            };
            let mut reader = source.create_reader(&ctx).unwrap();
            let err = loop {
                match reader.poll_next() {
                    Ok(SourcePoll::Batch(_)) => continue,
                    Ok(_) => panic!("{format}: read without an error"),
                    Err(e) => break e.to_string(),
                }
            };
            assert!(
                err.contains("not valid UTF-8") && err.contains("line 1"),
                "{format}: {err}"
            );
        }
    }
}
