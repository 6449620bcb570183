//! The sink behind a `SELECT` in the shell or `StreamContext::sql`: hands the
//! result batches to the caller through a channel.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

use super::{SinkFactory, SinkWriter};
use crate::error::{EngineError, Result};
use crate::operators::TaskContext;

/// Sends each batch to the job's result stream.
pub struct CollectSink {
    sender: mpsc::Sender<RecordBatch>,
}

impl CollectSink {
    /// A sink feeding `sender`.
    pub fn new(sender: mpsc::Sender<RecordBatch>) -> Self {
        Self { sender }
    }
}

impl SinkFactory for CollectSink {
    fn create_writer(&self, _ctx: &TaskContext, _schema: SchemaRef) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(CollectWriter {
            sender: self.sender.clone(),
        }))
    }
    fn accepts_updates(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        "connector=[collect]".into()
    }
}

struct CollectWriter {
    sender: mpsc::Sender<RecordBatch>,
}

impl SinkWriter for CollectWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        // The reader went away (the user stopped the query): stop the job.
        self.sender
            .blocking_send(batch.clone())
            .map_err(|_| EngineError::Cancelled)
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
