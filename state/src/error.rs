use std::path::PathBuf;

/// Errors of the state layer.
///
/// `Config` is the user's mistake; `Storage` an external failure (disk,
/// RocksDB); `Corrupt` is state that cannot be read back; `Internal` a bug.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A bad backend choice or option; names the key and what is accepted.
    #[error("{0}")]
    Config(String),
    /// The local directory or a snapshot file could not be used.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),
    /// Stored bytes that do not decode: a damaged snapshot or a value
    /// written with another type.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// A broken invariant in Weir.
    #[error("internal error in the state backend: {0}")]
    Internal(String),
}

impl StateError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StateError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result of the state layer.
pub type Result<T, E = StateError> = std::result::Result<T, E>;
