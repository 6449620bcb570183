//! `'connector' = 'blackhole'`: discards every row (for benchmarks).

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::{Options, SinkFactory, SinkWriter};
use crate::error::Result;
use crate::operators::TaskContext;

/// A sink that drops its input.
pub struct BlackholeSink;

impl BlackholeSink {
    /// Checks the options (it takes none).
    pub fn new(options: Options) -> Result<Self> {
        options.finish()?;
        Ok(Self)
    }
}

/// The `blackhole` connector's registration.
pub const CONNECTOR: super::Connector = super::Connector {
    name: "blackhole",
    source: None,
    sink: Some(|options, _schema| Ok(std::sync::Arc::new(BlackholeSink::new(options)?))),
    metadata: &[],
    validate: None,
};

impl SinkFactory for BlackholeSink {
    fn create_writer(&self, _ctx: &TaskContext, _schema: SchemaRef) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(BlackholeSink))
    }
    fn accepts_updates(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        "connector=[blackhole]".into()
    }
}

impl SinkWriter for BlackholeSink {
    fn write(&mut self, _batch: &RecordBatch) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
