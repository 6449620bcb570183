//! What travels on the channels between operator subtasks.

use datafusion::arrow::array::{Array, Int8Array};
use datafusion::arrow::record_batch::RecordBatch;

/// One message on the data lane of a channel between two subtasks.
/// Checkpoint barriers travel on the channel's control lane (see
/// `runtime::channel`), with their position in this stream.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows. On an updating stream the last column is the change kind
    /// (see [`ChangeKind`] and [`OP_COLUMN`]).
    Batch(RecordBatch),
    /// Event time has reached this value (milliseconds since the epoch):
    /// no later row on this channel has a smaller timestamp, except late ones.
    Watermark(i64),
    /// The upstream subtask has no more input.
    End,
}

/// What a checkpoint barrier is for. Every kind but [`BarrierKind::Checkpoint`]
/// is aligned whatever `execution.checkpointing.mode` says: nothing may be
/// in flight in a final checkpoint or a savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierKind {
    /// A periodic checkpoint.
    Checkpoint,
    /// The last checkpoint of a bounded job, after every source ended.
    Final,
    /// A savepoint; the job goes on.
    Savepoint,
    /// A savepoint after which the sources stop, without draining: open
    /// windows stay in the savepoint instead of firing.
    StopSavepoint,
    /// A savepoint after which the sources stop, drained: the sources send
    /// the end-of-time watermark before the barrier, so every window fires
    /// and the savepoint holds no open window (Flink's `stop --drain`).
    DrainSavepoint,
    /// A checkpoint after which the sources stop, without draining: a
    /// graceful stop. What was processed is committed, open windows stay in
    /// the checkpoint, and the next run of the job resumes from it.
    StopCheckpoint,
}

impl BarrierKind {
    /// Whether the barrier must be aligned.
    pub fn forces_alignment(self) -> bool {
        !matches!(self, BarrierKind::Checkpoint)
    }

    /// Whether the sources end after this barrier.
    pub fn ends_input(self) -> bool {
        matches!(
            self,
            BarrierKind::Final
                | BarrierKind::StopSavepoint
                | BarrierKind::DrainSavepoint
                | BarrierKind::StopCheckpoint
        )
    }

    /// Whether the sources stop after this barrier without ending their
    /// input: operators keep what is open (windows) in the snapshot instead
    /// of flushing it.
    pub fn stops_without_draining(self) -> bool {
        matches!(
            self,
            BarrierKind::StopSavepoint | BarrierKind::StopCheckpoint
        )
    }

    /// Whether operators store their state in the canonical savepoint form.
    pub fn is_savepoint(self) -> bool {
        matches!(
            self,
            BarrierKind::Savepoint | BarrierKind::StopSavepoint | BarrierKind::DrainSavepoint
        )
    }
}

/// Name of the trailing column that carries the change kind on updating streams.
pub const OP_COLUMN: &str = "_weir_op";

/// The kind of change a row of an updating stream carries (Flink's `RowKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ChangeKind {
    /// `+I`: a new row.
    Insert = 0,
    /// `-U`: the previous version of an updated row.
    UpdateBefore = 1,
    /// `+U`: the new version of an updated row.
    UpdateAfter = 2,
    /// `-D`: a deleted row.
    Delete = 3,
}

impl ChangeKind {
    /// Decodes the value stored in the op column.
    pub fn from_i8(v: i8) -> ChangeKind {
        match v {
            1 => ChangeKind::UpdateBefore,
            2 => ChangeKind::UpdateAfter,
            3 => ChangeKind::Delete,
            _ => ChangeKind::Insert,
        }
    }

    /// The short form used by Flink's print sink and SQL client.
    pub fn short(self) -> &'static str {
        match self {
            ChangeKind::Insert => "+I",
            ChangeKind::UpdateBefore => "-U",
            ChangeKind::UpdateAfter => "+U",
            ChangeKind::Delete => "-D",
        }
    }
}

/// For each change kind of an op column, whether the row is added (`+I`,
/// `+U`) rather than taken back (`-U`, `-D`).
pub fn additions(ops: &Int8Array) -> Vec<bool> {
    ops.values()
        .iter()
        .map(|k| {
            matches!(
                ChangeKind::from_i8(*k),
                ChangeKind::Insert | ChangeKind::UpdateAfter
            )
        })
        .collect()
}

/// Splits an updating batch into its data columns and its change kinds.
/// Returns `None` for the kinds when the batch has no op column.
pub fn split_changes(batch: &RecordBatch) -> (RecordBatch, Option<Int8Array>) {
    let schema = batch.schema();
    let n = schema.fields().len();
    if n > 0 && schema.field(n - 1).name() == OP_COLUMN {
        let ops = batch
            .column(n - 1)
            .as_any()
            .downcast_ref::<Int8Array>()
            .cloned();
        let data = batch
            .project(&(0..n - 1).collect::<Vec<_>>())
            .unwrap_or_else(|_| batch.clone());
        (data, ops.filter(|o| o.len() == batch.num_rows()))
    } else {
        (batch.clone(), None)
    }
}
