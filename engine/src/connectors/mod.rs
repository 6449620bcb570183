//! Connectors: sources that read rows and sinks that write them, found by the
//! table's `'connector'` option.
//!
//! Each connector lives in its own folder with its options, source and sink.
//! Sources and sinks do blocking I/O, so the runtime runs each of their
//! subtasks on a thread of its own, never on the async workers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{EngineError, Result};
use crate::operators::TaskContext;

pub mod blackhole;
pub mod collect;
pub mod datagen;
pub mod filesystem;
pub mod kafka;
pub mod nexmark;
pub mod print;
pub mod strided;

/// Every connector a table can name in `'connector'`. Adding one is its
/// folder plus a line here.
pub const CONNECTORS: &[Connector] = &[
    blackhole::CONNECTOR,
    datagen::CONNECTOR,
    filesystem::CONNECTOR,
    kafka::CONNECTOR,
    kafka::UPSERT_CONNECTOR,
    nexmark::CONNECTOR,
    print::CONNECTOR,
];

/// Makes a connector's source from a table's options and physical columns.
pub type SourceConstructor = fn(Options, SchemaRef) -> Result<Arc<dyn SourceFactory>>;
/// Makes a connector's sink from a table's options and physical columns.
pub type SinkConstructor = fn(Options, SchemaRef) -> Result<Arc<dyn SinkFactory>>;

/// A connector's registration: its name, and what it can read and write.
pub struct Connector {
    /// The `'connector'` value.
    pub name: &'static str,
    /// Reading the table, when the connector can.
    pub source: Option<SourceConstructor>,
    /// Writing the table, when the connector can.
    pub sink: Option<SinkConstructor>,
    /// The keys of `METADATA FROM '<key>'` columns the connector fills.
    pub metadata: &'static [&'static str],
    /// Checks a table's options at `CREATE TABLE`, for either role; `None`:
    /// by making the source (or, for a sink-only connector, the sink).
    pub validate: Option<fn(Options, SchemaRef) -> Result<()>>,
}

/// The registration of connector `name`.
pub fn connector(name: &str) -> Option<&'static Connector> {
    CONNECTORS.iter().find(|c| c.name == name)
}

/// The names of the connectors that can be read.
pub fn source_connectors() -> Vec<&'static str> {
    CONNECTORS
        .iter()
        .filter(|c| c.source.is_some())
        .map(|c| c.name)
        .collect()
}

/// The names of the connectors that can be written.
pub fn sink_connectors() -> Vec<&'static str> {
    CONNECTORS
        .iter()
        .filter(|c| c.sink.is_some())
        .map(|c| c.name)
        .collect()
}

/// The field-metadata key that marks a `METADATA` column of a table's
/// physical schema; its value is the metadata key (`'timestamp'`).
pub const METADATA_KEY: &str = "weir.metadata";
/// The field-metadata key that marks a `METADATA … VIRTUAL` column (read,
/// never written).
pub const METADATA_VIRTUAL: &str = "weir.metadata.virtual";

/// The metadata key of a physical column, when it is a `METADATA` column.
pub fn metadata_key(field: &datafusion::arrow::datatypes::Field) -> Option<&str> {
    field.metadata().get(METADATA_KEY).map(String::as_str)
}

/// What a source subtask's reader returns on each call.
pub enum SourcePoll {
    /// The next rows.
    Batch(RecordBatch),
    /// The next rows, all of one split (a Kafka partition): the source's
    /// watermark is the minimum over its splits' watermarks.
    SplitBatch(u32, RecordBatch),
    /// From now on the reader reads these splits (at the start, when
    /// partitions are discovered, when one is read to its end). A split that
    /// brought no rows for `table.exec.source.idle-timeout` (or the
    /// connector's own idle timeout) stops holding the watermark back.
    Splits(Vec<u32>),
    /// Nothing yet: call again after this long (rate limits, a watched directory).
    Idle(Duration),
    /// The input is exhausted.
    End,
}

/// Reads one subtask's share of a source.
pub trait SourceReader: Send {
    /// Returns the next batch. May block on I/O.
    fn poll_next(&mut self) -> Result<SourcePoll>;

    /// Where the reader is, for a checkpoint: reading again from this
    /// position yields exactly the rows not returned yet. `None`: the source
    /// cannot be replayed, and a checkpointed job that reads it is refused.
    fn position(&self) -> Option<serde_json::Value> {
        None
    }

    /// The position at barrier `checkpoint` (what [`SourceReader::position`]
    /// returns, remembered by readers that act when that checkpoint
    /// completes).
    fn checkpoint_position(&mut self, _checkpoint: u64) -> Option<serde_json::Value> {
        self.position()
    }

    /// A split that brings no rows this long stops holding the watermark
    /// back (`scan.watermark.idle-timeout`); `None`: the job's
    /// `table.exec.source.idle-timeout`.
    fn idle_timeout(&self) -> Option<Duration> {
        None
    }

    /// Checkpoint `checkpoint` completed: the position recorded for it is
    /// durable (a Kafka source commits its offsets to the group here, never
    /// before). Called from the source's own thread, between two batches.
    fn on_checkpoint_complete(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `checkpoint` will not complete.
    fn on_checkpoint_aborted(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }

    /// Moves to a position returned by [`SourceReader::position`] (of a
    /// reader of the same subtask), before the first `poll_next`.
    fn seek(&mut self, _position: &serde_json::Value) -> Result<()> {
        Err(EngineError::Internal(
            "this source cannot be restored from a checkpoint".into(),
        ))
    }
}

/// What a sink pre-commits on a checkpoint barrier and commits when the
/// checkpoint completes (two-phase commit).
pub trait SinkWriter: Send {
    /// Writes rows. May block on I/O.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Called once at the end of a bounded input when the job takes no
    /// checkpoints: make everything visible.
    fn finish(&mut self) -> Result<()>;

    /// On barrier `checkpoint`: make what was written durable but not yet
    /// visible, and return what must be committed (stored in the checkpoint).
    /// Sinks without transactions return `Null` (at-least-once).
    fn pre_commit(&mut self, _checkpoint: u64) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }

    /// Checkpoint `checkpoint` completed: make what was pre-committed up to
    /// it visible.
    fn commit(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }

    /// Before the first write of a checkpointed job: commit what the
    /// restored checkpoint pre-committed (`states`: what this subtask
    /// pre-committed, or what several subtasks did when the job was
    /// rescaled; empty on a fresh start) and discard what an earlier attempt
    /// left uncommitted.
    fn recover(&mut self, _states: &[serde_json::Value]) -> Result<()> {
        Ok(())
    }

    /// The job resumes from checkpoint `checkpoint` (triggered at
    /// `triggered_ms`, ms since the epoch): take back what checkpoints after
    /// it committed, since those rows are produced again. There is such
    /// output only when the newer checkpoints were damaged and skipped.
    /// Called after [`SinkWriter::recover`], on subtask 0 only, for the
    /// output of every subtask. Returns whether the sink can take back
    /// committed output (`false`, the default: sinks that are at least once
    /// anyway, or whose commits are final).
    fn withdraw_after(&mut self, _checkpoint: u64, _triggered_ms: i64) -> Result<bool> {
        Ok(false)
    }
}

/// A configured source connector.
pub trait SourceFactory: Send + Sync {
    /// Opens the reader of one subtask.
    fn create_reader(&self, ctx: &TaskContext) -> Result<Box<dyn SourceReader>>;
    /// Whether the source ends by itself.
    fn is_bounded(&self) -> bool;
    /// One line for `EXPLAIN` (no secrets).
    fn describe(&self) -> String;
    /// The position of `subtask` out of `parallelism`, when a snapshot
    /// taken at another parallelism is restored: `old[i]` is what subtask
    /// `i` of the earlier run recorded. The subtasks' new positions together
    /// must read exactly what none of the old ones had read.
    fn redistribute(
        &self,
        _old: &[Option<serde_json::Value>],
        _parallelism: usize,
        _subtask: usize,
    ) -> Result<Option<serde_json::Value>> {
        Err(EngineError::Config(format!(
            "the source {} cannot be restored at another parallelism; restore it at the parallelism it was saved with",
            self.describe()
        )))
    }
}

/// A source as placed in the job graph: the connector plus the table's
/// computed columns and watermark, evaluated on each batch it reads.
pub struct SourceSpec {
    /// The table's name.
    pub table: String,
    /// The connector reading the physical columns.
    pub connector: Arc<dyn SourceFactory>,
    /// The table's columns over the physical ones, when it has computed columns.
    pub computed: Option<Vec<Arc<dyn PhysicalExpr>>>,
    /// `WATERMARK FOR … AS <expr>` over the table's columns.
    pub watermark: Option<Arc<dyn PhysicalExpr>>,
    /// The watermark declaration as the user wrote it, for `EXPLAIN`.
    pub watermark_sql: Option<String>,
    /// The schema of the table (physical and computed columns).
    pub schema: SchemaRef,
    /// `table.exec.source.idle-timeout`: a split without rows this long
    /// stops holding the watermark back (a connector's own option wins).
    pub idle_timeout: Option<Duration>,
}

impl SourceSpec {
    /// One line for `EXPLAIN`.
    pub fn describe(&self) -> String {
        let wm = self
            .watermark_sql
            .as_ref()
            .map(|w| format!(", watermark=[{w}]"))
            .unwrap_or_default();
        format!(
            "TableSourceScan(table=[{}], {}{wm})",
            self.table,
            self.connector.describe()
        )
    }
}

/// A configured sink connector.
pub trait SinkFactory: Send + Sync {
    /// Opens the writer of one subtask for rows of `schema`.
    fn create_writer(&self, ctx: &TaskContext, schema: SchemaRef) -> Result<Box<dyn SinkWriter>>;
    /// Whether the sink can take an updating stream (rows with change kinds).
    fn accepts_updates(&self) -> bool;
    /// One line for `EXPLAIN` (no secrets).
    fn describe(&self) -> String;
    /// Whether the sink takes back what checkpoints after the one a job
    /// resumes from committed ([`SinkWriter::withdraw_after`]), so that a
    /// fall-back past damaged checkpoints writes nothing twice.
    fn takes_back_committed_output(&self) -> bool {
        false
    }
    /// Whether the sink promises exactly-once output (two-phase commit).
    /// Such a sink that cannot take output back makes a fall-back past
    /// damaged checkpoints refused unless
    /// `execution.checkpointing.allow-fallback-duplicates` is set.
    fn is_exactly_once(&self) -> bool {
        false
    }
}

/// Connector options, consumed as they are read, so that what is left over
/// can be reported as unknown.
pub struct Options {
    connector: String,
    values: BTreeMap<String, String>,
    accepted: Vec<String>,
}

impl Options {
    /// Wraps a table's options (without `'connector'`).
    pub fn new(connector: &str, values: &BTreeMap<String, String>) -> Self {
        let mut values = values.clone();
        values.remove("connector");
        Self {
            connector: connector.to_string(),
            values,
            accepted: Vec::new(),
        }
    }

    /// The connector's name.
    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// Takes an optional string option.
    pub fn string(&mut self, key: &str) -> Option<String> {
        self.accepted.push(key.to_string());
        self.values.remove(key)
    }

    /// Takes a required string option.
    pub fn required(&mut self, key: &str) -> Result<String> {
        self.string(key).ok_or_else(|| {
            EngineError::option(&self.connector, format!("missing required option '{key}'"))
        })
    }

    /// Takes an optional option parsed as `T`.
    pub fn parse<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Result<Option<T>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                EngineError::option(
                    &self.connector,
                    format!("option '{key}' must be {what}, found '{v}'"),
                )
            }),
        }
    }

    /// Takes a boolean option.
    pub fn bool(&mut self, key: &str, default: bool) -> Result<bool> {
        match self.string(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(EngineError::option(
                &self.connector,
                format!("option '{key}' must be 'true' or 'false', found '{v}'"),
            )),
        }
    }

    /// Takes an option that must be one of `choices`.
    pub fn one_of(&mut self, key: &str, choices: &[&str]) -> Result<Option<String>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) if choices.iter().any(|c| c.eq_ignore_ascii_case(&v)) => {
                Ok(Some(v.to_ascii_lowercase()))
            }
            Some(v) => Err(EngineError::option(
                &self.connector,
                format!(
                    "option '{key}' must be one of {}, found '{v}'",
                    choices.join(", ")
                ),
            )),
        }
    }

    /// Takes every option whose key starts with `prefix`.
    pub fn with_prefix(&mut self, prefix: &str) -> BTreeMap<String, String> {
        self.accepted.push(format!("{prefix}*"));
        let keys: Vec<String> = self
            .values
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| self.values.remove(&k).map(|v| (k, v)))
            .collect()
    }

    /// Fails on options that no `take` consumed, listing the accepted ones.
    pub fn finish(self) -> Result<()> {
        if let Some(key) = self.values.keys().next() {
            let mut accepted = self.accepted.clone();
            accepted.sort();
            accepted.dedup();
            return Err(EngineError::option(
                &self.connector,
                format!(
                    "unknown option '{key}'. Accepted options: connector, {}",
                    accepted.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// Whether an option's value must never be shown (credentials).
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "access-key",
        "access_key",
        "sasl.jaas",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Checks a table's `METADATA` columns against what the connector fills.
fn check_metadata(c: &Connector, schema: &SchemaRef) -> Result<()> {
    for field in schema.fields() {
        if let Some(key) = metadata_key(field) {
            if !c.metadata.contains(&key) {
                let accepted = if c.metadata.is_empty() {
                    "it has no metadata columns".to_string()
                } else {
                    format!("available: {}", c.metadata.join(", "))
                };
                return Err(EngineError::option(
                    c.name,
                    format!(
                        "column '{}' reads metadata '{key}', which connector '{}' does not provide ({accepted})",
                        field.name(),
                        c.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Creates the source connector named by `'connector'`.
pub fn create_source(
    connector_name: &str,
    options: &BTreeMap<String, String>,
    schema: SchemaRef,
) -> Result<Arc<dyn SourceFactory>> {
    let c = connector(connector_name).ok_or_else(|| unknown_connector(connector_name))?;
    check_metadata(c, &schema)?;
    match c.source {
        Some(make) => make(Options::new(connector_name, options), schema),
        None => Err(EngineError::option(
            connector_name,
            format!(
                "connector '{connector_name}' can only be written to; sources are: {}",
                source_connectors().join(", ")
            ),
        )),
    }
}

/// Creates the sink connector named by `'connector'`.
pub fn create_sink(
    connector_name: &str,
    options: &BTreeMap<String, String>,
    schema: SchemaRef,
) -> Result<Arc<dyn SinkFactory>> {
    let c = connector(connector_name).ok_or_else(|| unknown_connector(connector_name))?;
    check_metadata(c, &schema)?;
    match c.sink {
        Some(make) => make(Options::new(connector_name, options), schema),
        None => Err(EngineError::option(
            connector_name,
            format!(
                "connector '{connector_name}' can only be read; sinks are: {}",
                sink_connectors().join(", ")
            ),
        )),
    }
}

/// Checks a table's options without creating anything (as a source when
/// the connector reads, else as a sink; a connector that does both accepts
/// the options of both in either role).
pub fn validate_options(
    connector_name: &str,
    options: &BTreeMap<String, String>,
    schema: SchemaRef,
) -> Result<()> {
    match connector(connector_name) {
        Some(c) if c.validate.is_some() => {
            check_metadata(c, &schema)?;
            match c.validate {
                Some(validate) => validate(Options::new(connector_name, options), schema),
                None => Ok(()),
            }
        }
        Some(c) if c.source.is_none() => create_sink(connector_name, options, schema).map(|_| ()),
        _ => create_source(connector_name, options, schema).map(|_| ()),
    }
}

fn unknown_connector(name: &str) -> EngineError {
    let mut all: Vec<&str> = CONNECTORS.iter().map(|c| c.name).collect();
    all.sort();
    EngineError::option(
        name,
        format!(
            "unknown connector '{name}'. Available connectors: {}",
            all.join(", ")
        ),
    )
}
