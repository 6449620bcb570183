//! Runtime operators: each transforms the batches of its inputs.
//!
//! An operator is written once as an [`Operator`]; the runtime calls it from
//! one subtask (never concurrently), routes what it emits, fires its timers
//! and snapshots the state its [`OperatorFactory`] declares. The factory is
//! what the planner puts into the job graph.

use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::record_batch::RecordBatch;

use crate::config::StateSettings;
use crate::error::{EngineError, Result};
use crate::metrics::NodeMetrics;
pub use timers::{TimeDomain, Timer, TimerService};

pub mod aggregate_state;
pub mod aggregate_store;
pub mod batch_state;
pub mod calc;
pub mod join;
pub mod keyed_process;
pub mod narrow;
pub mod retract;
pub mod row_codec;
pub mod timers;
pub mod union;
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
    /// The operator's state backend, created (and restored) by the runtime
    /// when the factory declares states ([`OperatorFactory::states`]).
    pub backend: Option<StateHandle>,
    /// The operator (non-keyed) state lists this subtask restores, already
    /// redistributed when the parallelism changed.
    pub operator_state: Vec<weir_state::OperatorStateSnapshot>,
    /// Whether the job takes checkpoints (sinks then commit on them).
    pub checkpointing: bool,
}

impl TaskContext {
    /// The operator's state backend, with its declared states registered.
    /// An error for an operator whose factory declared none.
    pub fn state(&self) -> Result<StateHandle> {
        self.backend.clone().ok_or_else(|| {
            EngineError::Internal(format!(
                "node {} uses state but its factory declares none",
                self.node
            ))
        })
    }

    /// The key groups this subtask owns.
    pub fn key_groups(&self) -> weir_state::KeyGroupRange {
        weir_state::KeyGroupRange::for_subtask(self.max_parallelism, self.parallelism, self.subtask)
    }
}

/// An operator subtask's state backend. The runtime creates it, restores
/// it and takes its snapshots; the operator reads and writes it between.
/// Hooks run on one thread, so the lock is never contended.
#[derive(Clone)]
pub struct StateHandle(Arc<Mutex<Box<dyn weir_state::StateBackend>>>);

impl StateHandle {
    /// Wraps a backend.
    pub fn new(backend: Box<dyn weir_state::StateBackend>) -> Self {
        Self(Arc::new(Mutex::new(backend)))
    }

    /// The backend, for a few calls.
    pub fn lock(&self) -> Result<MutexGuard<'_, Box<dyn weir_state::StateBackend>>> {
        self.0
            .lock()
            .map_err(|_| EngineError::Internal("a state backend was poisoned by a panic".into()))
    }
}

impl StateHandle {
    /// The backend as a `StateBackend` of its own, for code written against
    /// the trait (the keyed state primitives): every call locks the handle.
    pub fn shared(&self) -> Box<dyn weir_state::StateBackend> {
        Box::new(SharedBackend(self.clone()))
    }
}

/// A [`StateHandle`] seen as a backend: each call takes the lock.
struct SharedBackend(StateHandle);

impl SharedBackend {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut dyn weir_state::StateBackend) -> weir_state::Result<T>,
    ) -> weir_state::Result<T> {
        let mut guard = (self.0).0.lock().map_err(|_| {
            weir_state::StateError::Internal("a state backend was poisoned by a panic".into())
        })?;
        f(guard.as_mut())
    }
}

impl weir_state::StateBackend for SharedBackend {
    fn kind(&self) -> weir_state::BackendKind {
        self.with(|b| Ok(b.kind()))
            .unwrap_or(weir_state::BackendKind::HashMap)
    }
    fn register(
        &mut self,
        descriptor: &weir_state::StateDescriptor,
    ) -> weir_state::Result<weir_state::StateId> {
        self.with(|b| b.register(descriptor))
    }
    fn descriptors(&self) -> Vec<weir_state::StateDescriptor> {
        self.with(|b| Ok(b.descriptors())).unwrap_or_default()
    }
    fn get(
        &mut self,
        state: weir_state::StateId,
        address: &[u8],
    ) -> weir_state::Result<Option<Vec<u8>>> {
        self.with(|b| b.get(state, address))
    }
    fn multi_get(
        &mut self,
        state: weir_state::StateId,
        addresses: &[&[u8]],
    ) -> weir_state::Result<Vec<Option<Vec<u8>>>> {
        self.with(|b| b.multi_get(state, addresses))
    }
    fn write(
        &mut self,
        state: weir_state::StateId,
        changes: Vec<weir_state::Change>,
    ) -> weir_state::Result<()> {
        self.with(|b| b.write(state, changes))
    }
    fn scan(
        &mut self,
        state: weir_state::StateId,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut weir_state::backend::Visit<'_>,
    ) -> weir_state::Result<()> {
        self.with(|b| b.scan(state, start, end, visit))
    }
    fn delete_range(
        &mut self,
        state: weir_state::StateId,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> weir_state::Result<()> {
        self.with(|b| b.delete_range(state, start, end))
    }
    fn stats(&self) -> weir_state::Result<weir_state::StateStats> {
        self.with(|b| b.stats())
    }
    fn now_ms(&self) -> i64 {
        self.with(|b| Ok(b.now_ms())).unwrap_or(0)
    }
    fn snapshot(&mut self, dir: &std::path::Path) -> weir_state::Result<weir_state::SnapshotInfo> {
        self.with(|b| b.snapshot(dir))
    }
}

/// What an operator's hooks act through: the batches they emit, the
/// subtask's timers and clock, and the input watermark.
pub struct OperatorContext<'a> {
    out: &'a mut Vec<RecordBatch>,
    timers: &'a mut TimerService,
    clock: &'a dyn weir_state::Clock,
    watermark: i64,
}

impl<'a> OperatorContext<'a> {
    /// A context over these parts (the runtime builds one per hook call;
    /// tests of single operators build their own).
    pub fn new(
        out: &'a mut Vec<RecordBatch>,
        timers: &'a mut TimerService,
        clock: &'a dyn weir_state::Clock,
        watermark: i64,
    ) -> Self {
        Self {
            out,
            timers,
            clock,
            watermark,
        }
    }

    /// Sends a batch downstream (after the hook returns, before the
    /// watermark or end marker that triggered it).
    pub fn emit(&mut self, batch: RecordBatch) {
        self.out.push(batch);
    }

    /// The subtask's timers: register and delete them here.
    pub fn timers(&mut self) -> &mut TimerService {
        self.timers
    }

    /// Processing time now, in milliseconds since the epoch, from the job's
    /// clock (the one TTL uses; tests can replace it).
    pub fn processing_time(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The operator's watermark: the minimum over its inputs that have not
    /// ended (`i64::MIN` before any).
    pub fn watermark(&self) -> i64 {
        self.watermark
    }
}

/// A streaming operator over one or more inputs.
///
/// # Contract
/// - Hooks are called from one task, never concurrently, and must not block
///   on I/O: blocking work belongs in sources and sinks.
/// - Input `i` is the node's `i`th input in the job graph. Single-input
///   operators implement [`Operator::process_batch`]; the others
///   [`Operator::process_input`].
/// - The watermark is the minimum over the inputs that have not ended.
///   Event-time timers due at a watermark fire, in time order, before
///   [`Operator::on_watermark`] sees it; processing-time timers fire when
///   the job's clock reaches them.
/// - Barriers are aligned across every input (or overtaken, unaligned) by
///   the runtime, which then calls [`Operator::prepare_snapshot`] and
///   snapshots the declared states and timers itself.
/// - Errors fail the job; an operator never panics on input data.
pub trait Operator: Send {
    /// Processes one batch of a single-input operator's rows.
    fn process_batch(&mut self, batch: RecordBatch, ctx: &mut OperatorContext<'_>) -> Result<()>;

    /// Processes one batch of input `input`; by default, as
    /// [`Operator::process_batch`].
    fn process_input(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        let _ = input;
        self.process_batch(batch, ctx)
    }

    /// Called when the operator's watermark advances to `watermark` (ms),
    /// after the event-time timers it made due and before it is forwarded.
    fn on_watermark(&mut self, _watermark: i64, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        Ok(())
    }

    /// The watermark the operator forwards when its own is `watermark`: the
    /// same by default. An operator that emits rows older than its
    /// watermark (an interval join's padded rows) holds the output back so
    /// that they are not late downstream. Must not decrease as `watermark`
    /// grows, and must return `i64::MAX` for `i64::MAX` (end of input).
    fn output_watermark(&self, watermark: i64) -> i64 {
        watermark
    }

    /// Called for each timer that is due, in time order.
    fn on_timer(
        &mut self,
        domain: TimeDomain,
        timer: Timer,
        _ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        Err(EngineError::Internal(format!(
            "an operator registered a {domain:?} timer for {} but has no on_timer",
            timer.time
        )))
    }

    /// Called after the timers of `domain` due at one moment (a watermark,
    /// a tick of the job's clock) have all gone through
    /// [`Operator::on_timer`], and only if at least one did: an operator
    /// that notes its fired timers there acts on all of them here at once
    /// (one scan, one write, one output batch) instead of per timer.
    fn on_timers_fired(
        &mut self,
        _domain: TimeDomain,
        _ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        Ok(())
    }

    /// Called once when input `input` has ended (before [`Operator::on_end`]
    /// when it is the last).
    fn on_input_end(&mut self, _input: usize, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        Ok(())
    }

    /// Called once when every channel of input `input` has delivered the
    /// end-of-time watermark (`i64::MAX`): none of its rows comes any more.
    /// A bounded source sends it when it has read everything; with
    /// checkpoints its end marker ([`Operator::on_input_end`]) comes only
    /// after the job's final checkpoint, so an operator that waits for a
    /// bounded input (a lookup join's table) waits for this instead.
    fn on_input_finished(&mut self, _input: usize, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        Ok(())
    }

    /// Called once when every input has ended, before the end is forwarded.
    fn on_end(&mut self, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        Ok(())
    }

    /// Called at a barrier, before the runtime snapshots the declared
    /// states: move whatever is cached in memory into the backend. The state
    /// must then not change until the next hook.
    fn prepare_snapshot(&mut self) -> Result<()> {
        Ok(())
    }

    /// The operator's operator (non-keyed) state lists, for a snapshot;
    /// each is split evenly or given whole (union) to the subtasks of a
    /// job restored at another parallelism, and comes back in
    /// [`TaskContext::operator_state`].
    fn snapshot_operator_state(&mut self) -> Result<Vec<weir_state::OperatorStateSnapshot>> {
        Ok(Vec::new())
    }

    /// Checkpoint `checkpoint` completed: every subtask's snapshot of it is
    /// durable (at most once per checkpoint; a later one may subsume an
    /// earlier one's notification).
    fn on_checkpoint_complete(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `checkpoint` will not complete (declined, timed out).
    fn on_checkpoint_aborted(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }
}

/// Builds one [`Operator`] per subtask; this is what the job graph holds.
pub trait OperatorFactory: Send + Sync {
    /// Creates the operator for one subtask. Its declared states are in
    /// `ctx.backend`, restored when the job resumes.
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>>;
    /// One line for `EXPLAIN` (free to change: snapshots do not depend on it).
    fn describe(&self) -> String;
    /// What kind of operator this is, as part of its node's uid (see
    /// [`crate::graph::JobGraph::operator_infos`]): stable across versions,
    /// since savepoints match state by it.
    fn kind(&self) -> &'static str;
    /// The keyed and operator states the operator keeps: the runtime creates
    /// the subtask's backend with them, snapshots, restores and
    /// redistributes them. Empty for stateless operators. `settings` give
    /// the job's defaults (`table.exec.state.ttl`).
    fn states(&self, _settings: &StateSettings) -> Vec<weir_state::StateDescriptor> {
        Vec::new()
    }
    /// Whether the operator registers timers (they are state too).
    fn uses_timers(&self) -> bool {
        false
    }
    /// Whether the runtime keeps a backend for the operator: it declares
    /// states or uses timers. With a blocking backend (RocksDB) its task
    /// runs on a thread where blocking is allowed.
    fn is_stateful(&self) -> bool {
        self.uses_timers()
    }
    /// The shape of the operator's keyed state, part by part (keys,
    /// aggregates), as stored in snapshots: a restore into an operator whose
    /// shape differs is refused, naming the part that changed. `None` for
    /// operators without keyed state.
    fn state_signature(&self) -> Option<Vec<(String, String)>> {
        None
    }
}
