//! `VALUES (…)` and `SELECT` without `FROM`: a bounded source of rows that
//! the planner computed up front.

use datafusion::arrow::record_batch::RecordBatch;
use weir_engine::connectors::{SourceFactory, SourcePoll, SourceReader};
use weir_engine::operators::TaskContext;

/// A source that emits fixed batches once (from subtask 0).
pub struct ValuesSource {
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl SourceFactory for ValuesSource {
    fn create_reader(&self, ctx: &TaskContext) -> weir_engine::Result<Box<dyn SourceReader>> {
        let batches = if ctx.subtask == 0 {
            self.batches.clone()
        } else {
            Vec::new()
        };
        Ok(Box::new(ValuesReader { batches }))
    }
    fn is_bounded(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        let rows: usize = self.batches.iter().map(|b| b.num_rows()).sum();
        format!("Values(rows=[{rows}])")
    }
}

struct ValuesReader {
    batches: Vec<RecordBatch>,
}

impl SourceReader for ValuesReader {
    fn poll_next(&mut self) -> weir_engine::Result<SourcePoll> {
        if self.batches.is_empty() {
            Ok(SourcePoll::End)
        } else {
            Ok(SourcePoll::Batch(self.batches.remove(0)))
        }
    }
}
