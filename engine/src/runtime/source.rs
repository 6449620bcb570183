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
    reader: &mut dyn crate::connectors::SourceReader,
    spec: &SourceSpec,
    ctx: &TaskContext,
    router: &Router,
    tc: &checkpoint::TaskCheckpointing,
    trigger: checkpoint::Trigger,
) -> Result<()> {
    let position = reader.checkpoint_position(trigger.id).ok_or_else(|| {
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
    let mut splits = SplitWatermarks::new(reader.idle_timeout().or(spec.idle_timeout));
    let generator = spec
        .watermark
        .clone()
        .map(|expr| watermark::WatermarkGenerator::new(expr, &spec.schema));
    let mut end = false;
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
                checkpoint_source(reader.as_mut(), &spec, &ctx, &router, tc, t)?;
                if t.kind.ends_input() {
                    // Without draining no end-of-time watermark was sent,
                    // so open windows stay in the savepoint.
                    router.blocking_broadcast(Message::End)?;
                    return Ok(());
                }
            }
        }
        let (split, batch) = match reader.poll_next()? {
            SourcePoll::Batch(batch) => (None, batch),
            SourcePoll::SplitBatch(split, batch) => (Some(split), batch),
            SourcePoll::Splits(list) => {
                splits.assign(&list);
                advance(&ctx, &mut router, &mut watermark, splits.watermark())?;
                continue;
            }
            SourcePoll::Idle(wait) => {
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                // A split quiet past the idle timeout stops holding back.
                advance(&ctx, &mut router, &mut watermark, splits.watermark())?;
                continue;
            }
            SourcePoll::End => {
                end = true;
                (None, RecordBatch::new_empty(spec.schema.clone()))
            }
        };
        if end {
            break;
        }
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
        let mut next = None;
        if let Some(generator) = &generator {
            let max = generator.batch_watermark(&batch)?;
            next = match split {
                Some(split) => {
                    splits.observe(split, max);
                    splits.watermark()
                }
                None => max,
            };
        } else if let Some(split) = split {
            splits.observe(split, None);
        }
        router.blocking_send_batch(batch)?;
        advance(&ctx, &mut router, &mut watermark, next)?;
    }
    end_of_input(reader, &spec, &ctx, router, checkpointing, &shared)
}

/// Sends watermark `next` downstream when it is past the last one sent.
fn advance(
    ctx: &TaskContext,
    router: &mut Router,
    watermark: &mut i64,
    next: Option<i64>,
) -> Result<()> {
    if let Some(w) = next {
        if w > *watermark {
            *watermark = w;
            ctx.metrics.watermark.store(w, Ordering::Relaxed);
            router.blocking_broadcast(Message::Watermark(w))?;
        }
    }
    Ok(())
}

/// The watermarks of a source's splits: the source's is their minimum,
/// leaving out splits idle past the timeout (and splits that have ended).
struct SplitWatermarks {
    idle_timeout: Option<std::time::Duration>,
    /// Split → (its watermark, when it last brought rows).
    splits: std::collections::BTreeMap<u32, (i64, std::time::Instant)>,
}

impl SplitWatermarks {
    fn new(idle_timeout: Option<std::time::Duration>) -> Self {
        Self {
            idle_timeout,
            splits: Default::default(),
        }
    }

    fn assign(&mut self, list: &[u32]) {
        let now = std::time::Instant::now();
        self.splits.retain(|s, _| list.contains(s));
        for s in list {
            self.splits.entry(*s).or_insert((i64::MIN, now));
        }
    }

    fn observe(&mut self, split: u32, watermark: Option<i64>) {
        let entry = self
            .splits
            .entry(split)
            .or_insert((i64::MIN, std::time::Instant::now()));
        entry.1 = std::time::Instant::now();
        if let Some(w) = watermark {
            entry.0 = entry.0.max(w);
        }
    }

    /// The minimum over the active splits; `None` when every split is idle
    /// (the watermark stays where it is) or there are none.
    fn watermark(&self) -> Option<i64> {
        let now = std::time::Instant::now();
        self.splits
            .values()
            .filter(|(_, last)| {
                self.idle_timeout
                    .is_none_or(|t| now.duration_since(*last) < t)
            })
            .map(|(w, _)| *w)
            .min()
            .filter(|w| *w > i64::MIN)
    }
}

/// The input is read: the end-of-time watermark, then (with checkpoints)
/// the final checkpoint, whose completion the reader hears of.
fn end_of_input(
    mut reader: Box<dyn crate::connectors::SourceReader>,
    spec: &SourceSpec,
    ctx: &TaskContext,
    mut router: Router,
    mut checkpointing: Option<SourceCheckpointing>,
    shared: &Shared,
) -> Result<()> {
    router.blocking_broadcast(Message::Watermark(i64::MAX))?;
    let Some((tc, triggers)) = &mut checkpointing else {
        router.blocking_broadcast(Message::End)?;
        return Ok(());
    };
    // Everything is read; what was produced is committed by the final
    // checkpoint, taken once every source is here.
    let _ = tc
        .to_coordinator
        .send(checkpoint::ToCoordinator::SourceFinished);
    let final_id = loop {
        match triggers.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(t) => {
                checkpoint_source(reader.as_mut(), spec, ctx, &router, tc, t)?;
                if t.kind.ends_input() {
                    break t.id;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                notify(reader.as_mut(), tc)?;
                if shared.cancelled.load(Ordering::Relaxed) || tc.failed.load(Ordering::Relaxed) {
                    return Err(EngineError::Cancelled);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(EngineError::Cancelled)
            }
        }
    };
    router.blocking_broadcast(Message::End)?;
    // The reader hears that the final checkpoint completed (a Kafka source
    // commits its last offsets then); the job ends once every task has.
    loop {
        if *tc.completed.borrow() >= final_id {
            // The coordinator may be gone already (it ends with the final
            // checkpoint): tell the reader directly.
            return reader.on_checkpoint_complete(final_id);
        }
        if shared.cancelled.load(Ordering::Relaxed) || tc.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        match tc.completed.has_changed() {
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(_) => return Ok(()),
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
