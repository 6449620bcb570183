//! The task of an operator chain: operators joined by forward edges of equal
//! parallelism run in one task, with no channel in between.
//!
//! The chain's head reads the gate (every input of its node, tagged); each
//! operator's output goes down the rest of the chain before anything else
//! happens, and what leaves the tail goes to the router. The runtime side of
//! the operator contract lives here: it fires each operator's timers (event
//! time at watermarks, processing time by the job's clock), takes the
//! snapshots of the states the operators declared, and tells operators when
//! checkpoints complete or fail.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;

use super::checkpoint;
use super::gate::{GateEvent, InputGate};
use super::router::Router;
use crate::error::{EngineError, Result};
use crate::graph::{Exchange, JobGraph, NodeKind};
use crate::message::Message;
use crate::metrics::NodeMetrics;
use crate::operators::{
    Operator, OperatorContext, OperatorFactory, StateHandle, TaskContext, TimeDomain, TimerService,
};

/// For each node, the input it is chained to: an operator whose only input
/// is a forward edge from an operator of the same parallelism that feeds
/// nothing else runs in that operator's task, with no channel in between.
pub(super) fn chained_inputs(graph: &JobGraph) -> Vec<Option<usize>> {
    let mut consumers = vec![0usize; graph.nodes.len()];
    for node in &graph.nodes {
        for (input, _) in &node.inputs {
            consumers[*input] += 1;
        }
    }
    graph
        .nodes
        .iter()
        .map(|node| match (&node.kind, node.inputs.as_slice()) {
            (NodeKind::Operator(_), [(input, Exchange::Forward)])
                if matches!(graph.nodes[*input].kind, NodeKind::Operator(_))
                    && graph.nodes[*input].parallelism == node.parallelism
                    && consumers[*input] == 1 =>
            {
                Some(*input)
            }
            _ => None,
        })
        .collect()
}

/// The nodes of the chain that starts at `head`, in order.
pub(super) fn chain_from(graph: &JobGraph, chained: &[Option<usize>], head: usize) -> Vec<usize> {
    let mut chain = vec![head];
    while let Some(next) = graph
        .nodes
        .iter()
        .find(|n| chained[n.id] == chain.last().copied())
    {
        chain.push(next.id);
    }
    chain
}

/// Snapshot folders an operator's state is restored from (one native
/// snapshot, or several parts: another parallelism, another backend, a
/// savepoint's canonical files).
pub(super) type RestoreParts = Vec<(std::path::PathBuf, weir_state::SnapshotFormat)>;

/// One operator of a chain with what the runtime keeps for it.
pub(super) struct Slot {
    op: Box<dyn Operator>,
    ctx: TaskContext,
    timers: TimerService,
    watermark: i64,
    /// The last checkpoint the operator was told about.
    notified: u64,
}

impl Slot {
    /// Creates the operator's backend (restored from `restore`), registers
    /// the states its factory declares, restores its timers, then the
    /// operator itself.
    pub(super) fn create(
        factory: &dyn OperatorFactory,
        mut ctx: TaskContext,
        restore: Option<RestoreParts>,
    ) -> Result<Self> {
        let mut timers = TimerService::default();
        if factory.is_stateful() {
            let name = format!("job-{}-op{}-{}", ctx.job_id, ctx.node, ctx.subtask);
            let settings = &ctx.state;
            let mut backend = match &restore {
                Some(parts) => {
                    weir_state::restore_merged(&settings.backend, &name, parts, ctx.key_groups())
                }
                None => settings.backend.create(&name),
            }
            .map_err(|e| EngineError::State(e.to_string()))?;
            for descriptor in factory.states(settings) {
                backend.register(&descriptor)?;
            }
            if factory.uses_timers() && restore.is_some() {
                timers = TimerService::restore(backend.as_mut())?;
            }
            ctx.backend = Some(StateHandle::new(backend));
        }
        let op = factory.create(&ctx)?;
        Ok(Self {
            op,
            ctx,
            timers,
            watermark: i64::MIN,
            notified: 0,
        })
    }

    /// The operator's operator state, as the metadata stores it.
    fn operator_state(&mut self) -> Result<Option<serde_json::Value>> {
        let lists = self.op.snapshot_operator_state()?;
        Ok((!lists.is_empty()).then(|| super::restore::encode_operator_state(&lists)))
    }

    /// Calls one hook with a context over this slot; returns what it emitted.
    fn call(
        &mut self,
        hook: impl FnOnce(&mut dyn Operator, &mut OperatorContext<'_>) -> Result<()>,
    ) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        let clock = self.ctx.state.backend.clock.clone();
        let mut ctx =
            OperatorContext::new(&mut out, &mut self.timers, clock.as_ref(), self.watermark);
        hook(self.op.as_mut(), &mut ctx)?;
        Ok(out)
    }

    /// The snapshot of the declared states and timers, written into `dir`
    /// (native, or canonical for savepoints); `None` for stateless ones.
    fn snapshot(
        &mut self,
        dir: &std::path::Path,
        canonical: bool,
        uses_timers: bool,
    ) -> Result<Option<weir_state::SnapshotInfo>> {
        let Some(handle) = self.ctx.backend.clone() else {
            return Ok(None);
        };
        self.op.prepare_snapshot()?;
        let mut backend = handle.lock()?;
        if uses_timers {
            self.timers.persist(backend.as_mut())?;
        }
        Ok(Some(if canonical {
            weir_state::write_canonical(backend.as_mut(), dir)?
        } else {
            backend.snapshot(dir)?
        }))
    }
}

/// The operators of a chain, head first.
pub(super) struct Chain {
    slots: Vec<Slot>,
    /// Per slot: whether its factory registers timers.
    uses_timers: Vec<bool>,
}

impl Chain {
    /// Creates the chain's operators.
    pub(super) fn create(
        factories: Vec<(Arc<dyn OperatorFactory>, TaskContext, Option<RestoreParts>)>,
    ) -> Result<Self> {
        let mut slots = Vec::with_capacity(factories.len());
        let mut uses_timers = Vec::with_capacity(factories.len());
        for (factory, ctx, restore) in factories {
            uses_timers.push(factory.uses_timers());
            slots.push(Slot::create(factory.as_ref(), ctx, restore)?);
        }
        Ok(Self { slots, uses_timers })
    }

    /// Runs batches of the head's input `input` through the chain from
    /// operator `start` on; returns what leaves the tail.
    fn push_through(
        &mut self,
        start: usize,
        input: usize,
        mut batches: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        for (i, slot) in self.slots.iter_mut().enumerate().skip(start) {
            let input = if i == start { input } else { 0 };
            let mut next = Vec::new();
            for batch in batches {
                NodeMetrics::add(&slot.ctx.metrics.records_in, batch.num_rows());
                next.extend(slot.call(|op, c| op.process_input(input, batch, c))?);
            }
            batches = next;
        }
        Ok(batches)
    }

    /// Calls `hook` on each operator in order; what an operator emits
    /// travels down the rest of the chain before the next one's hook runs.
    async fn fire_down(
        &mut self,
        router: &mut Router,
        hook: impl Fn(&mut dyn Operator, &mut OperatorContext<'_>) -> Result<()>,
    ) -> Result<()> {
        for i in 0..self.slots.len() {
            let emitted = self.slots[i].call(&hook)?;
            self.route(router, i, emitted).await?;
        }
        Ok(())
    }

    async fn route(
        &mut self,
        router: &mut Router,
        from: usize,
        emitted: Vec<RecordBatch>,
    ) -> Result<()> {
        if emitted.is_empty() {
            return Ok(());
        }
        for b in self.push_through(from + 1, 0, emitted)? {
            router.send_batch(b).await?;
        }
        Ok(())
    }

    /// The watermark advanced to `w`: each operator fires the event-time
    /// timers it made due, then sees the watermark.
    /// Returns the watermark the chain forwards (operators may hold it
    /// back, [`crate::operators::Operator::output_watermark`]).
    async fn watermark(&mut self, router: &mut Router, w: i64) -> Result<i64> {
        let mut w = w;
        for i in 0..self.slots.len() {
            self.slots[i].watermark = w;
            self.fire_timers(router, i, TimeDomain::EventTime, w)
                .await?;
            let emitted = self.slots[i].call(|op, c| op.on_watermark(w, c))?;
            self.route(router, i, emitted).await?;
            self.slots[i]
                .ctx
                .metrics
                .watermark
                .store(w, Ordering::Relaxed);
            w = self.slots[i].op.output_watermark(w);
        }
        Ok(w)
    }

    async fn fire_timers(
        &mut self,
        router: &mut Router,
        i: usize,
        domain: TimeDomain,
        now: i64,
    ) -> Result<()> {
        let mut fired = false;
        while let Some(timer) = self.slots[i].timers.pop_due(domain, now) {
            fired = true;
            let emitted = self.slots[i].call(|op, c| op.on_timer(domain, timer, c))?;
            self.route(router, i, emitted).await?;
        }
        if fired {
            let emitted = self.slots[i].call(|op, c| op.on_timers_fired(domain, c))?;
            self.route(router, i, emitted).await?;
        }
        Ok(())
    }

    /// Fires the processing-time timers that are due.
    async fn processing_time(&mut self, router: &mut Router) -> Result<()> {
        for i in 0..self.slots.len() {
            if self.slots[i]
                .timers
                .next_time(TimeDomain::ProcessingTime)
                .is_none()
            {
                continue;
            }
            let now = self.slots[i].ctx.state.backend.clock.now_ms();
            self.fire_timers(router, i, TimeDomain::ProcessingTime, now)
                .await?;
        }
        Ok(())
    }

    /// How long until the next processing-time timer is due (capped, so
    /// that a clock a test moves by hand is seen soon).
    fn next_wake(&self) -> Option<Duration> {
        self.slots
            .iter()
            .filter_map(|s| {
                let due = s.timers.next_time(TimeDomain::ProcessingTime)?;
                let now = s.ctx.state.backend.clock.now_ms();
                Some(due.saturating_sub(now).clamp(0, 50) as u64)
            })
            .min()
            .map(Duration::from_millis)
    }

    /// Tells every operator that checkpoint `id` completed.
    fn completed(&mut self, id: u64) -> Result<()> {
        for slot in &mut self.slots {
            if id > slot.notified {
                slot.notified = id;
                slot.op.on_checkpoint_complete(id)?;
            }
        }
        Ok(())
    }

    fn aborted(&mut self, id: u64) -> Result<()> {
        for slot in &mut self.slots {
            slot.op.on_checkpoint_aborted(id)?;
        }
        Ok(())
    }
}

/// A chain's part in checkpoints.
pub(super) struct ChainCheckpointing {
    pub tc: checkpoint::TaskCheckpointing,
    /// Per operator of the chain: its files already in `shared/`.
    pub shared: Vec<Arc<tokio::sync::Mutex<weir_checkpoint::SharedFiles>>>,
    /// Unaligned checkpoints whose in-flight data is still being recorded.
    pub pending: HashMap<u64, checkpoint::PendingUpload>,
}

/// What wakes a chain's task.
enum Wake {
    Input(Option<GateEvent>),
    Completed(u64),
    Aborted(u64),
    Timer,
}

pub(super) async fn run_chain(
    mut chain: Chain,
    mut gate: InputGate,
    mut router: Router,
    mut checkpointing: Option<ChainCheckpointing>,
) -> Result<()> {
    // Set by a stop-with-savepoint barrier: the input ends without draining.
    let mut stopping = false;
    let mut completed = checkpointing.as_ref().map(|c| c.tc.completed.clone());
    let mut aborted = checkpointing.as_ref().map(|c| c.tc.aborted.clone());
    loop {
        chain.processing_time(&mut router).await?;
        let wake = chain.next_wake();
        let event = tokio::select! {
            e = gate.next() => Wake::Input(e),
            Some(id) = changed(&mut completed) => Wake::Completed(id),
            Some(id) = changed(&mut aborted) => Wake::Aborted(id),
            _ = tokio::time::sleep(wake.unwrap_or_default()), if wake.is_some() => Wake::Timer,
        };
        let event = match event {
            Wake::Input(Some(e)) => e,
            // An upstream task stopped without an end marker (its own error
            // is what the job reports).
            Wake::Input(None) => return Err(EngineError::Cancelled),
            Wake::Completed(id) => {
                chain.completed(id)?;
                continue;
            }
            Wake::Aborted(id) => {
                chain.aborted(id)?;
                continue;
            }
            Wake::Timer => continue,
        };
        match event {
            GateEvent::Batch(input, batch) => {
                for b in chain.push_through(0, input, vec![batch])? {
                    router.send_batch(b).await?;
                }
            }
            GateEvent::InputEnded(input) => {
                let emitted = chain.slots[0].call(|op, c| op.on_input_end(input, c))?;
                chain.route(&mut router, 0, emitted).await?;
            }
            GateEvent::InputFinished(input) => {
                let emitted = chain.slots[0].call(|op, c| op.on_input_finished(input, c))?;
                chain.route(&mut router, 0, emitted).await?;
            }
            GateEvent::Watermark(w) => {
                let out = chain.watermark(&mut router, w).await?;
                router.broadcast(Message::Watermark(out)).await?;
            }
            GateEvent::Barrier {
                id,
                unaligned,
                alignment,
                complete,
                kind,
            } => {
                stopping |= kind.stops_without_draining();
                let Some(cp) = checkpointing.as_mut() else {
                    router.announce_barrier(id, kind)?;
                    continue;
                };
                // The synchronous part: each operator's state is written
                // locally (RocksDB: a checkpoint of hard links), then the
                // barrier goes on and the upload runs in the background.
                let mut snapshots = Vec::with_capacity(chain.slots.len());
                for ((slot, shared), uses_timers) in chain
                    .slots
                    .iter_mut()
                    .zip(&cp.shared)
                    .zip(chain.uses_timers.iter().copied())
                {
                    let dir = cp.tc.local_dir(id, slot.ctx.node, slot.ctx.subtask)?;
                    let state = match slot.snapshot(&dir, kind.is_savepoint(), uses_timers)? {
                        Some(info) => Some(checkpoint::StateFiles {
                            dir,
                            info,
                            shared: shared.clone(),
                        }),
                        None => {
                            let _ = std::fs::remove_dir(&dir);
                            None
                        }
                    };
                    snapshots.push(checkpoint::LocalSnapshot {
                        node: slot.ctx.node,
                        subtask: slot.ctx.subtask,
                        state,
                        sink_state: None,
                        operator_state: slot.operator_state()?,
                    });
                }
                router.announce_barrier(id, kind)?;
                let upload = cp.tc.upload(id, snapshots, unaligned, alignment);
                if complete {
                    cp.tc.finish(id, upload, Vec::new());
                } else {
                    cp.pending.insert(id, upload);
                }
            }
            GateEvent::InflightDone { id, recorded } => {
                if let Some(cp) = checkpointing.as_mut() {
                    if let Some(upload) = cp.pending.remove(&id) {
                        cp.tc.finish(id, upload, recorded);
                    }
                }
            }
            GateEvent::End => {
                if !stopping {
                    // Processing time stands still for a bounded input that
                    // ended: its pending timers fire now, as Flink's do.
                    for i in 0..chain.slots.len() {
                        chain
                            .fire_timers(&mut router, i, TimeDomain::ProcessingTime, i64::MAX)
                            .await?;
                        chain
                            .fire_timers(&mut router, i, TimeDomain::EventTime, i64::MAX)
                            .await?;
                    }
                    chain.fire_down(&mut router, |op, c| op.on_end(c)).await?;
                }
                router.broadcast(Message::End).await?;
                return Ok(());
            }
        }
    }
}

/// The new value of a watch, when it changes; pending forever without one.
async fn changed(watch: &mut Option<tokio::sync::watch::Receiver<u64>>) -> Option<u64> {
    match watch {
        Some(w) => match w.changed().await {
            Ok(()) => Some(*w.borrow_and_update()),
            Err(_) => {
                *watch = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::Schema;

    use super::{chain_from, chained_inputs};
    use crate::graph::{Exchange, JobGraph, NodeKind};
    use crate::operators::calc::CalcSpec;

    fn calc() -> NodeKind {
        NodeKind::Operator(Arc::new(CalcSpec {
            filter: None,
            projection: None,
            output_schema: Arc::new(Schema::empty()),
        }))
    }

    #[test]
    fn forward_operators_of_equal_parallelism_are_chained() {
        let schema = Arc::new(Schema::empty());
        let mut g = JobGraph::default();
        let a = g.add(calc(), 2, vec![], schema.clone(), false);
        let b = g.add(
            calc(),
            2,
            vec![(a, Exchange::Forward)],
            schema.clone(),
            false,
        );
        let c = g.add(
            calc(),
            2,
            vec![(b, Exchange::Hash(vec![]))],
            schema.clone(),
            false,
        );
        let d = g.add(
            calc(),
            2,
            vec![(c, Exchange::Forward)],
            schema.clone(),
            false,
        );
        let e = g.add(
            calc(),
            1,
            vec![(d, Exchange::Forward)],
            schema.clone(),
            false,
        );
        let chained = chained_inputs(&g);
        assert_eq!(chained, vec![None, Some(a), None, Some(c), None]);
        assert_eq!(chain_from(&g, &chained, a), vec![a, b]);
        assert_eq!(chain_from(&g, &chained, c), vec![c, d]);
        assert_eq!(chain_from(&g, &chained, e), vec![e]);
    }
}
