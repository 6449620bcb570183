//! The engine's error type. Variants say who is at fault: the user's
//! configuration or input, an external system, or Weir itself.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// Result alias used throughout the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can go wrong while building or running a job.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A configuration key or value the user gave is wrong.
    #[error("{0}")]
    Config(String),
    /// A connector option is missing, unknown or has a bad value.
    #[error("connector '{connector}': {message}")]
    ConnectorOption {
        /// The `'connector'` value of the table.
        connector: String,
        /// What is wrong, naming the option and the accepted values.
        message: String,
    },
    /// An input record could not be parsed.
    #[error("malformed record in {file}{}: {reason}", at_line(*.line))]
    BadRecord {
        /// The file the record came from.
        file: String,
        /// 1-based line number; 0 for formats without lines (Parquet).
        line: u64,
        /// Why it could not be read.
        reason: String,
    },
    /// A message read from Kafka could not be parsed.
    #[error(
        "malformed record in topic '{topic}', partition {partition}, offset {offset}: {reason}"
    )]
    BadMessage {
        /// The topic it came from.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// Why it could not be read.
        reason: String,
    },
    /// A system outside Weir failed or refused (a Kafka broker).
    #[error("{0}")]
    External(String),
    /// An I/O failure outside Weir (file system, network).
    #[error("{context}: {source}")]
    Io {
        /// What Weir was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error raised while evaluating an expression or kernel.
    #[error("{0}")]
    DataFusion(Box<DataFusionError>),
    /// An Arrow kernel failed.
    #[error("{0}")]
    Arrow(Box<ArrowError>),
    /// The state backend failed (disk, RocksDB, damaged state).
    #[error("state backend: {0}")]
    State(String),
    /// Taking, storing or restoring a checkpoint failed.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A user-defined function (a Rust process function) failed.
    #[error("function '{function}': {message}")]
    Function {
        /// The function's name.
        function: String,
        /// What it reported.
        message: String,
    },
    /// A task of the job panicked or failed in a way that is Weir's bug.
    #[error("internal error (a bug in Weir): {0}")]
    Internal(String),
    /// The job was cancelled by the user.
    #[error("job cancelled")]
    Cancelled,
}

impl EngineError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EngineError::Io {
            context: context.into(),
            source,
        }
    }

    /// Builds a [`EngineError::ConnectorOption`].
    pub fn option(connector: &str, message: impl Into<String>) -> Self {
        EngineError::ConnectorOption {
            connector: connector.to_string(),
            message: message.into(),
        }
    }
}

impl From<DataFusionError> for EngineError {
    fn from(e: DataFusionError) -> Self {
        EngineError::DataFusion(Box::new(e))
    }
}

impl From<weir_state::StateError> for EngineError {
    fn from(e: weir_state::StateError) -> Self {
        match e {
            weir_state::StateError::Config(m) => EngineError::Config(m),
            other => EngineError::State(other.to_string()),
        }
    }
}

impl From<ArrowError> for EngineError {
    fn from(e: ArrowError) -> Self {
        EngineError::Arrow(Box::new(e))
    }
}

/// ` at line N`, or nothing for a record without a line.
fn at_line(line: u64) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" at line {line}")
    }
}
