//! `'connector' = 'filesystem'`: bounded reads of CSV, JSON-lines and Parquet
//! files, and a sink writing part files (CSV, JSON lines or Parquet) that stay
//! hidden until they are finished.

mod options;
mod sink;
mod source;

pub use options::{FileFormat, FileOptions};
pub use sink::FileSink;
pub use source::FileSource;

/// The `filesystem` connector's registration.
pub const CONNECTOR: super::Connector = super::Connector {
    name: "filesystem",
    source: Some(|options, schema| Ok(std::sync::Arc::new(FileSource::new(options, schema)?))),
    sink: Some(|options, schema| Ok(std::sync::Arc::new(FileSink::new(options, schema)?))),
    metadata: &[],
    validate: None,
};
