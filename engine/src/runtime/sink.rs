//! The task of a sink subtask: writes what its gate delivers (blocking I/O,
//! on a blocking thread), pre-commits at barriers, commits when the
//! checkpoint completes, and takes back or recovers output on restore.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::checkpoint;
use super::gate::{GateEvent, InputGate};
use super::handle::Shared;
use crate::error::{EngineError, Result};
use crate::metrics::NodeMetrics;
use crate::operators::TaskContext;

/// What a sink task reacts to: its input, or a completed checkpoint.
enum SinkEvent {
    Input(Option<GateEvent>),
    Completed,
    Closed,
}

/// A sink's part in checkpoints.
pub(super) struct SinkCheckpointing {
    pub tc: checkpoint::TaskCheckpointing,
    /// What the restored checkpoint's subtasks pre-committed.
    pub restored: Vec<serde_json::Value>,
    /// Take back what checkpoints after this one (id, trigger time)
    /// committed.
    pub withdraw: Option<(u64, i64)>,
}

pub(super) fn run_sink(
    mut writer: Box<dyn crate::connectors::SinkWriter>,
    ctx: TaskContext,
    mut gate: InputGate,
    checkpointing: Option<SinkCheckpointing>,
    handle: tokio::runtime::Handle,
    shared: Arc<Shared>,
) -> Result<()> {
    let (tc, restored, withdraw) = match checkpointing {
        Some(c) => (Some(c.tc), c.restored, c.withdraw),
        None => (None, Vec::new(), None),
    };
    if tc.is_some() {
        writer.recover(&restored)?;
        if let Some((checkpoint, triggered_ms)) = withdraw {
            writer.withdraw_after(checkpoint, triggered_ms)?;
        }
    }
    let mut completed = tc.as_ref().map(|t| t.completed.clone());
    let mut pending: HashMap<u64, checkpoint::PendingUpload> = HashMap::new();
    let mut last_barrier = None;
    loop {
        let event = handle.block_on(async {
            match completed.as_mut() {
                Some(c) => tokio::select! {
                    e = gate.next() => SinkEvent::Input(e),
                    changed = c.changed() => if changed.is_ok() { SinkEvent::Completed } else { SinkEvent::Closed },
                },
                None => SinkEvent::Input(gate.next().await),
            }
        });
        match event {
            SinkEvent::Completed => {
                if let Some(c) = &completed {
                    let id = *c.borrow();
                    writer.commit(id)?;
                }
            }
            SinkEvent::Closed => completed = None,
            SinkEvent::Input(None) => return Err(EngineError::Cancelled),
            SinkEvent::Input(Some(event)) => match event {
                GateEvent::Batch(_, b) => {
                    NodeMetrics::add(&ctx.metrics.records_in, b.num_rows());
                    writer.write(&b)?;
                }
                GateEvent::Watermark(w) => ctx.metrics.watermark.store(w, Ordering::Relaxed),
                GateEvent::InputEnded(_) | GateEvent::InputFinished(_) => {}
                GateEvent::Barrier {
                    id,
                    unaligned,
                    alignment,
                    complete,
                    ..
                } => {
                    let Some(tc) = &tc else { continue };
                    let state = writer.pre_commit(id)?;
                    last_barrier = Some(id);
                    let snapshot = checkpoint::LocalSnapshot {
                        node: ctx.node,
                        subtask: ctx.subtask,
                        state: None,
                        sink_state: Some(state),
                        operator_state: None,
                    };
                    let _guard = handle.enter();
                    let upload = tc.upload(id, vec![snapshot], unaligned, alignment);
                    if complete {
                        tc.finish(id, upload, Vec::new());
                    } else {
                        pending.insert(id, upload);
                    }
                }
                GateEvent::InflightDone { id, recorded } => {
                    if let (Some(tc), Some(upload)) = (&tc, pending.remove(&id)) {
                        let _guard = handle.enter();
                        tc.finish(id, upload, recorded);
                    }
                }
                GateEvent::End => {
                    let (Some(_), Some(last)) = (&tc, last_barrier) else {
                        return writer.finish();
                    };
                    // The final checkpoint covers everything written: commit
                    // once it is complete.
                    let Some(c) = completed.as_mut() else {
                        return Err(EngineError::Cancelled);
                    };
                    loop {
                        if *c.borrow() >= last {
                            return writer.commit(last);
                        }
                        if shared.cancelled.load(Ordering::Relaxed)
                            || tc
                                .as_ref()
                                .is_some_and(|t| t.failed.load(Ordering::Relaxed))
                        {
                            return Err(EngineError::Cancelled);
                        }
                        let wait = std::time::Duration::from_millis(50);
                        if let Ok(Err(_)) = handle.block_on(tokio::time::timeout(wait, c.changed()))
                        {
                            // The coordinator is gone: the attempt is over.
                            return Err(EngineError::Cancelled);
                        }
                    }
                }
            },
        }
    }
}
