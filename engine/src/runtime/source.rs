//! The task of a source subtask: reads its share of the input (blocking
//! I/O, on a blocking thread), computes computed columns and watermarks,
//! and injects checkpoint barriers between two batches.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;

use super::checkpoint;
use super::handle::Shared;
use super::router::Router;
use super::watermark;
use crate::connectors::{SourcePoll, SourceSpec};
use crate::error::{EngineError, Result};
use crate::message::{BarrierKind, Message};
use crate::metrics::NodeMetrics;
use crate::operators::narrow::NarrowExprs;
use crate::operators::TaskContext;

pub(super) type SourceCheckpointing = (
    checkpoint::TaskCheckpointing,
    std::sync::mpsc::Receiver<checkpoint::Trigger>,
);

/// A source subtask's part of checkpoint `trigger`: its position, then
/// the barrier downstream.
fn checkpoint_source(
    reader: &dyn crate::connectors::SourceReader,
    spec: &SourceSpec,
    ctx: &TaskContext,
    router: &Router,
    tc: &checkpoint::TaskCheckpointing,
    trigger: checkpoint::Trigger,
) -> Result<()> {
    let position = reader.position().ok_or_else(|| {
        EngineError::Checkpoint(format!(
            "the source of table '{}' cannot be replayed, so the job cannot take checkpoints",
            spec.table
        ))
    })?;
    router.announce_barrier(trigger.id, trigger.kind)?;
    let _ = tc.to_coordinator.send(checkpoint::ToCoordinator::Ack {
        id: trigger.id,
        tasks: vec![weir_checkpoint::TaskSnapshot {
            node: ctx.node,
            subtask: ctx.subtask,
            source_position: Some(position),
            ..Default::default()
        }],
        uploaded: 0,
        state_bytes: 0,
        unaligned: false,
        alignment: std::time::Duration::ZERO,
    });
    Ok(())
}

pub(super) fn run_source(
    spec: Arc<SourceSpec>,
    ctx: TaskContext,
    mut router: Router,
    shared: Arc<Shared>,
    mut checkpointing: Option<SourceCheckpointing>,
    position: Option<serde_json::Value>,
) -> Result<()> {
    let mut reader = spec.connector.create_reader(&ctx)?;
    if let Some(p) = &position {
        reader.seek(p)?;
    }
    // Computed columns read only the columns and fields they use (planned
    // on the first batch, which brings the physical schema).
    let mut computed: Option<NarrowExprs> = None;
    let mut watermark = i64::MIN;
    let generator = spec
        .watermark
        .clone()
        .map(|expr| watermark::WatermarkGenerator::new(expr, &spec.schema));
    loop {
        if shared.cancelled.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        if let Some((tc, _)) = &mut checkpointing {
            notify(reader.as_mut(), tc)?;
        }
        if let Some((tc, triggers)) = &checkpointing {
            while let Ok(t) = triggers.try_recv() {
                if t.kind == BarrierKind::DrainSavepoint {
                    // Drain: every window fires before the barrier.
                    ctx.metrics.watermark.store(i64::MAX, Ordering::Relaxed);
                    router.blocking_broadcast(Message::Watermark(i64::MAX))?;
                }
                checkpoint_source(reader.as_ref(), &spec, &ctx, &router, tc, t)?;
                if t.kind.ends_input() {
                    // Without draining no end-of-time watermark was sent,
                    // so open windows stay in the savepoint.
                    router.blocking_broadcast(Message::End)?;
                    return Ok(());
                }
            }
        }
        match reader.poll_next()? {
            SourcePoll::Batch(batch) => {
                if let (Some(exprs), None) = (&spec.computed, &computed) {
                    computed = Some(NarrowExprs::new(exprs, &batch.schema())?);
                }
                let batch = match &computed {
                    Some(narrow) => {
                        let rows = batch.num_rows();
                        let leaves = narrow.leaves(&batch)?;
                        let columns = (0..spec.schema.fields().len())
                            .map(|i| narrow.evaluate(i, &leaves, rows))
                            .collect::<Result<Vec<_>>>()?;
                        RecordBatch::try_new(spec.schema.clone(), columns)?
                    }
                    None => batch,
                };
                NodeMetrics::add(&ctx.metrics.records_out, batch.num_rows());
                let mut advanced = None;
                if let Some(generator) = &generator {
                    if let Some(max) = generator.batch_watermark(&batch)? {
                        if max > watermark {
                            watermark = max;
                            advanced = Some(max);
                        }
                    }
                }
                router.blocking_send_batch(batch)?;
                if let Some(w) = advanced {
                    ctx.metrics.watermark.store(w, Ordering::Relaxed);
                    router.blocking_broadcast(Message::Watermark(w))?;
                }
            }
            SourcePoll::Idle(wait) => std::thread::sleep(wait),
            SourcePoll::End => {
                router.blocking_broadcast(Message::Watermark(i64::MAX))?;
                if let Some((tc, triggers)) = &mut checkpointing {
                    // Everything is read; what was produced is committed by
                    // the final checkpoint, taken once every source is here.
                    let _ = tc
                        .to_coordinator
                        .send(checkpoint::ToCoordinator::SourceFinished);
                    loop {
                        match triggers.recv_timeout(std::time::Duration::from_millis(50)) {
                            Ok(t) => {
                                checkpoint_source(reader.as_ref(), &spec, &ctx, &router, tc, t)?;
                                if t.kind.ends_input() {
                                    break;
                                }
                            }
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                                notify(reader.as_mut(), tc)?;
                                if shared.cancelled.load(Ordering::Relaxed)
                                    || tc.failed.load(Ordering::Relaxed)
                                {
                                    return Err(EngineError::Cancelled);
                                }
                            }
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                                return Err(EngineError::Cancelled)
                            }
                        }
                    }
                }
                router.blocking_broadcast(Message::End)?;
                return Ok(());
            }
        }
    }
}

/// Tells the reader about checkpoints that completed or failed since it
/// last looked (a later one may subsume an earlier one's notice).
fn notify(
    reader: &mut dyn crate::connectors::SourceReader,
    tc: &mut checkpoint::TaskCheckpointing,
) -> Result<()> {
    if tc.completed.has_changed().unwrap_or(false) {
        let id = *tc.completed.borrow_and_update();
        reader.on_checkpoint_complete(id)?;
    }
    if tc.aborted.has_changed().unwrap_or(false) {
        let id = *tc.aborted.borrow_and_update();
        reader.on_checkpoint_aborted(id)?;
    }
    Ok(())
}
