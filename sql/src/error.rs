//! The SQL layer's error type: the user's SQL, the user's configuration, a
//! construct Weir cannot run as a stream, or an engine failure.

use datafusion::error::DataFusionError;
use weir_engine::EngineError;

/// Result alias of this crate.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

/// Why a statement could not be parsed, planned or run.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The SQL text is malformed; the message carries the line and column.
    #[error("SQL parse error: {0}")]
    Parse(String),
    /// The statement is well-formed but wrong (unknown table, bad types, …).
    #[error("SQL validation error: {0}")]
    Plan(String),
    /// A construct that Weir cannot (yet) run on a stream, named.
    #[error("unsupported in streaming mode: {0}")]
    Unsupported(String),
    /// Configuration, connector or runtime error.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        match e {
            DataFusionError::SQL(p, _) => SqlError::Parse(p.to_string()),
            DataFusionError::NotImplemented(m) => SqlError::Unsupported(m),
            DataFusionError::Plan(m) => SqlError::Plan(m),
            DataFusionError::SchemaError(s, _) => SqlError::Plan(s.to_string()),
            DataFusionError::Diagnostic(_, inner) => SqlError::from(*inner),
            DataFusionError::Context(ctx, inner) => match SqlError::from(*inner) {
                SqlError::Plan(m) => SqlError::Plan(format!("{ctx}: {m}")),
                other => other,
            },
            other => SqlError::Engine(EngineError::from(other)),
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for SqlError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        SqlError::Engine(EngineError::from(e))
    }
}

impl From<datafusion::sql::sqlparser::parser::ParserError> for SqlError {
    fn from(e: datafusion::sql::sqlparser::parser::ParserError) -> Self {
        use datafusion::sql::sqlparser::parser::ParserError;
        match e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => SqlError::Parse(m),
            other => SqlError::Parse(other.to_string()),
        }
    }
}
