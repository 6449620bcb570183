//! Runtime operators: each transforms batches of one input stream.
//!
//! An operator is written once as an [`Operator`]; the runtime calls it from
//! one subtask (never concurrently) and routes what it emits. Its factory, an
//! [`OperatorFactory`], is what the planner puts into the job graph.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;

use crate::config::StateSettings;
use crate::error::{EngineError, Result};
use crate::metrics::NodeMetrics;

pub mod aggregate_state;
pub mod aggregate_store;
pub mod calc;
pub mod narrow;
pub mod row_codec;
pub mod updating_aggregate;
pub mod window_aggregate;
pub mod window_assign;

/// What a subtask knows about where it runs.
#[derive(Clone)]
pub struct TaskContext {
    /// This subtask's index, `0..parallelism`.
    pub subtask: usize,
    /// Number of subtasks of the node.
    pub parallelism: usize,
    /// Number of key groups of the job.
    pub max_parallelism: usize,
    /// Rows per batch that sources should produce.
    pub batch_size: usize,
    /// The node's counters.
    pub metrics: Arc<NodeMetrics>,
    /// The job's pipeline id ([`crate::JobHandle::pipeline_id`]): the same
    /// across restarts and runs of a named, checkpointed job, for file names
    /// a restarted job must recognise as its own.
    pub job_id: String,
    /// The node's index in the job graph.
    pub node: usize,
    /// Where and how operators keep state.
    pub state: Arc<StateSettings>,
    /// Snapshot folders to restore the operator's state from: one native
    /// snapshot of the same backend and key groups, or several (another
    /// parallelism, another backend, a savepoint's canonical files).
    pub restore: Option<Vec<(std::path::PathBuf, weir_state::SnapshotFormat)>>,
    /// Whether the job takes checkpoints (sinks then commit on them).
    pub checkpointing: bool,
}

impl TaskContext {
    /// Creates this subtask's state backend (one RocksDB instance per
    /// operator subtask with `rocksdb`).
    pub fn create_state_backend(&self) -> Result<Box<dyn weir_state::StateBackend>> {
        let name = format!("job-{}-op{}-{}", self.job_id, self.node, self.subtask);
        match &self.restore {
            Some(parts) => {
                weir_state::restore_merged(&self.state.backend, &name, parts, self.key_groups())
            }
            None => self.state.backend.create(&name),
        }
        .map_err(|e| EngineError::State(e.to_string()))
    }

    /// The key groups this subtask owns.
    pub fn key_groups(&self) -> weir_state::KeyGroupRange {
        weir_state::KeyGroupRange::for_subtask(self.max_parallelism, self.parallelism, self.subtask)
    }
}

/// A streaming operator over one input.
///
/// # Contract
/// - Hooks are called from one task, in the order of the input stream, and
///   must not block on I/O: blocking work belongs in sources and sinks.
/// - Batches pushed to `out` are sent downstream after the hook returns, before
///   the watermark or end marker that triggered them.
/// - Errors fail the job; an operator never panics on input data.
pub trait Operator: Send {
    /// Processes one batch of rows.
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()>;

    /// Called when the input's watermark advances to `watermark` (ms), before
    /// the watermark is forwarded. Windows whose end it passed fire here.
    fn on_watermark(&mut self, _watermark: i64, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }

    /// Called once when every input has ended, before the end is forwarded.
    fn on_end(&mut self, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }

    /// Writes the operator's state into the empty directory `dir`, after
    /// moving anything it caches in memory into the backend: in its
    /// backend's native snapshot form for checkpoints, or in the canonical,
    /// backend-independent form when `canonical` (savepoints). Stateless
    /// operators return `None`.
    ///
    /// Called between two batches; the state must not change while it runs.
    fn snapshot_state(
        &mut self,
        _dir: &std::path::Path,
        _canonical: bool,
    ) -> Result<Option<weir_state::SnapshotInfo>> {
        Ok(None)
    }
}

/// Builds one [`Operator`] per subtask; this is what the job graph holds.
pub trait OperatorFactory: Send + Sync {
    /// Creates the operator for one subtask.
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>>;
    /// One line for `EXPLAIN`.
    fn describe(&self) -> String;
    /// Whether the operator keeps keyed state in a backend: with a blocking
    /// backend (RocksDB), its task runs on a thread where blocking is
    /// allowed.
    fn is_stateful(&self) -> bool {
        false
    }
    /// The shape of the operator's keyed state, part by part (keys,
    /// aggregates), as stored in snapshots: a restore into an operator whose
    /// shape differs is refused, naming the part that changed. `None` for
    /// operators without keyed state.
    fn state_signature(&self) -> Option<Vec<(String, String)>> {
        None
    }
}
