//! Starting a [`JobGraph`]: channels between subtasks, one task per subtask,
//! and a supervisor that ends the job on the first failure.
//!
//! Operator subtasks are tokio tasks; source and sink subtasks do blocking
//! I/O and run on tokio's blocking threads. Channels are bounded
//! (`execution.buffer-capacity` batches): a full channel is backpressure.

mod gate;
pub(crate) mod router;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::compute::max as max_kernel;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

pub use gate::{GateEvent, InputGate};
pub use router::{subtask_for_key_group, Route, Router};

use crate::config::Config;
use crate::connectors::{SourcePoll, SourceSpec};
use crate::error::{EngineError, Result};
use crate::graph::{Exchange, JobGraph, NodeKind};
use crate::message::Message;
use crate::metrics::{NodeMetrics, NodeMetricsSnapshot};
use crate::operators::window_assign::as_millis;
use crate::operators::TaskContext;

/// Where a job is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// Still processing.
    Running,
    /// Every source ended and every sink finished.
    Finished,
    /// A task failed; the message says why.
    Failed(String),
    /// Stopped by the user.
    Cancelled,
}

impl JobStatus {
    /// Flink's name for the state (`RUNNING`, `FINISHED`, `FAILED`, `CANCELED`).
    pub fn flink_name(&self) -> &'static str {
        match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Finished => "FINISHED",
            JobStatus::Failed(_) => "FAILED",
            JobStatus::Cancelled => "CANCELED",
        }
    }
}

struct Shared {
    cancelled: AtomicBool,
    cancel: Notify,
    error: Mutex<Option<EngineError>>,
}

/// A running (or finished) job.
#[derive(Clone)]
pub struct JobHandle {
    id: String,
    name: String,
    shared: Arc<Shared>,
    status: watch::Receiver<JobStatus>,
    metrics: Arc<Vec<(String, Arc<NodeMetrics>)>>,
    bounded: bool,
}

impl JobHandle {
    /// The job's id: 32 hex digits, like Flink's.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `pipeline.name`, or the statement that started the job.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether every source of the job is bounded.
    pub fn is_bounded(&self) -> bool {
        self.bounded
    }

    /// The current status.
    pub fn status(&self) -> JobStatus {
        self.status.borrow().clone()
    }

    /// Asks the job to stop; [`JobHandle::wait`] then returns `Cancelled`.
    pub fn cancel(&self) {
        self.shared.cancelled.store(true, Ordering::SeqCst);
        self.shared.cancel.notify_one();
    }

    /// Waits until the job ends. `Ok` when it finished; the first task's
    /// error when it failed; [`EngineError::Cancelled`] when it was cancelled.
    pub async fn wait(&self) -> Result<()> {
        let mut status = self.status.clone();
        loop {
            let current = status.borrow_and_update().clone();
            match current {
                JobStatus::Running => {
                    if status.changed().await.is_err() {
                        return Err(EngineError::Internal("job supervisor vanished".into()));
                    }
                }
                JobStatus::Finished => return Ok(()),
                JobStatus::Cancelled => return Err(EngineError::Cancelled),
                JobStatus::Failed(message) => {
                    let taken = self.shared.error.lock().ok().and_then(|mut e| e.take());
                    return Err(taken.unwrap_or(EngineError::Internal(message)));
                }
            }
        }
    }

    /// State held by the job's operators, summed over nodes and subtasks.
    pub fn state_size(&self) -> weir_state::StateStats {
        let mut total = weir_state::StateStats::default();
        for (_, m) in self.metrics.iter() {
            total.entries += m.state_entries.load(Ordering::Relaxed);
            total.bytes += m.state_bytes.load(Ordering::Relaxed);
        }
        total
    }

    /// Counters per node, in graph order, with each node's description.
    pub fn metrics(&self) -> Vec<(String, NodeMetricsSnapshot)> {
        self.metrics
            .iter()
            .map(|(n, m)| (n.clone(), m.snapshot()))
            .collect()
    }
}

/// A fresh random job id (32 hex digits).
pub fn new_job_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

enum Inputs {
    Gate(Vec<mpsc::Receiver<Message>>),
    Merged(mpsc::Receiver<Message>, usize),
}

/// Starts `graph` on the current tokio runtime.
pub fn start_job(graph: &JobGraph, config: &Config, name: &str) -> Result<JobHandle> {
    let id = new_job_id();
    let capacity = config.buffer_capacity();
    let max_parallelism = config.max_parallelism();
    let metrics: Vec<(String, Arc<NodeMetrics>)> = graph
        .nodes
        .iter()
        .map(|n| (n.describe(), Arc::new(NodeMetrics::new())))
        .collect();

    let chained = chained_inputs(graph);

    // Channels: routes[(node, subtask)] are the output edges of a subtask,
    // inputs[(node, subtask)] what it reads.
    let mut routes: HashMap<(usize, usize), Vec<Route>> = HashMap::new();
    let mut inputs: HashMap<(usize, usize), Inputs> = HashMap::new();
    for node in &graph.nodes {
        let p = node.parallelism;
        let is_sink = matches!(node.kind, NodeKind::Sink(_));
        let mut merged: Vec<Option<mpsc::Sender<Message>>> = vec![None; p];
        let mut merged_counts = vec![0usize; p];
        #[allow(clippy::needless_range_loop)]
        for s in 0..p {
            if is_sink {
                let (tx, rx) = mpsc::channel(capacity);
                merged[s] = Some(tx);
                inputs.insert((node.id, s), Inputs::Merged(rx, 0));
            } else {
                inputs.insert((node.id, s), Inputs::Gate(Vec::new()));
            }
        }
        for (upstream, exchange) in &node.inputs {
            if chained[node.id] == Some(*upstream) {
                // Runs in its input's task: no channel.
                continue;
            }
            let up = &graph.nodes[*upstream];
            for us in 0..up.parallelism {
                let connected: Vec<usize> = match exchange {
                    Exchange::Forward if up.parallelism == p => vec![us],
                    Exchange::Single => vec![0],
                    _ => (0..p).collect(),
                };
                let mut senders = Vec::new();
                for s in &connected {
                    let tx = if is_sink {
                        merged_counts[*s] += 1;
                        merged[*s]
                            .clone()
                            .ok_or_else(|| EngineError::Internal("sink channel missing".into()))?
                    } else {
                        let (tx, rx) = mpsc::channel(capacity);
                        if let Some(Inputs::Gate(list)) = inputs.get_mut(&(node.id, *s)) {
                            list.push(rx);
                        }
                        tx
                    };
                    senders.push(tx);
                }
                let route = match exchange {
                    Exchange::Hash(keys) => Route::Hash {
                        keys: keys.clone(),
                        targets: senders,
                        max_parallelism,
                        hashes: Vec::new(),
                    },
                    _ if senders.len() == 1 => Route::One(senders.remove(0)),
                    _ => Route::RoundRobin {
                        targets: senders,
                        next: us,
                    },
                };
                routes.entry((up.id, us)).or_default().push(route);
            }
        }
        if is_sink {
            for (s, count) in merged_counts.iter().enumerate() {
                if let Some(Inputs::Merged(_, expected)) = inputs.get_mut(&(node.id, s)) {
                    *expected = *count;
                }
            }
        }
    }

    let state = Arc::new(config.state_settings()?);
    state.validate()?;
    let job_id_for_tasks = id.clone();
    let shared = Arc::new(Shared {
        cancelled: AtomicBool::new(false),
        cancel: Notify::new(),
        error: Mutex::new(None),
    });
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    for node in &graph.nodes {
        if chained[node.id].is_some() {
            // Started as part of its chain's head.
            continue;
        }
        let chain = chain_from(graph, &chained, node.id);
        let tail = *chain.last().unwrap_or(&node.id);
        for s in 0..node.parallelism {
            let context = |id: usize| TaskContext {
                subtask: s,
                parallelism: node.parallelism,
                max_parallelism,
                batch_size: config.batch_size(),
                metrics: metrics[id].1.clone(),
                job_id: job_id_for_tasks.clone(),
                node: id,
                state: state.clone(),
            };
            let ctx = context(node.id);
            let router = Router::new(routes.remove(&(tail, s)).unwrap_or_default());
            let input = inputs.remove(&(node.id, s));
            match (&node.kind, input) {
                (NodeKind::Source(spec), _) => {
                    let spec = spec.clone();
                    let shared = shared.clone();
                    tasks.spawn_blocking(move || run_source(spec, ctx, router, shared));
                }
                (NodeKind::Operator(_), Some(Inputs::Gate(receivers))) => {
                    let mut factories = Vec::with_capacity(chain.len());
                    for id in &chain {
                        let NodeKind::Operator(factory) = &graph.nodes[*id].kind else {
                            return Err(EngineError::Internal(format!(
                                "node {id} chained but not an operator"
                            )));
                        };
                        factories.push((factory.clone(), context(*id)));
                    }
                    let gate = InputGate::new(receivers);
                    let stateful = factories.iter().any(|(f, _)| f.is_stateful());
                    if stateful && state.backend.kind.is_blocking() {
                        // RocksDB calls block on disk: the chain opens its
                        // instances and runs on a blocking thread, waiting
                        // for its channels there.
                        let handle = tokio::runtime::Handle::current();
                        tasks.spawn_blocking(move || {
                            let ops = create_operators(factories)?;
                            handle.block_on(run_chain(ops, gate, router))
                        });
                    } else {
                        let ops = create_operators(factories)?;
                        tasks.spawn(run_chain(ops, gate, router));
                    }
                }
                (NodeKind::Sink(factory), Some(Inputs::Merged(rx, expected))) => {
                    let writer = factory.create_writer(&ctx, node.schema.clone())?;
                    tasks.spawn_blocking(move || run_sink(writer, ctx, rx, expected));
                }
                _ => {
                    return Err(EngineError::Internal(format!(
                        "node {} has no inputs wired",
                        node.id
                    )))
                }
            }
        }
    }

    let (status_tx, status_rx) = watch::channel(JobStatus::Running);
    let supervisor_shared = shared.clone();
    tokio::spawn(async move {
        let status = supervise(tasks, &supervisor_shared).await;
        tracing::info!(status = status.flink_name(), "job ended");
        let _ = status_tx.send(status);
    });
    Ok(JobHandle {
        id,
        name: name.to_string(),
        shared,
        status: status_rx,
        metrics: Arc::new(metrics),
        bounded: graph.is_bounded(),
    })
}

async fn supervise(mut tasks: JoinSet<Result<()>>, shared: &Shared) -> JobStatus {
    let mut failure: Option<EngineError> = None;
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(EngineError::Cancelled))) => {
                    // A channel closed because another task stopped; the
                    // cause (if any) is reported by that task.
                }
                Some(Ok(Err(e))) => {
                    if failure.is_none() {
                        tracing::error!(error = %e, "task failed, stopping the job");
                        failure = Some(e);
                    }
                    shared.cancelled.store(true, Ordering::SeqCst);
                    tasks.abort_all();
                }
                Some(Err(join)) if join.is_panic() => {
                    if failure.is_none() {
                        let msg = join.into_panic();
                        let text = msg.downcast_ref::<String>().cloned()
                            .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "unknown panic".into());
                        failure = Some(EngineError::Internal(format!("a task panicked: {text}")));
                    }
                    shared.cancelled.store(true, Ordering::SeqCst);
                    tasks.abort_all();
                }
                Some(Err(_)) => {}
            },
            _ = shared.cancel.notified() => {
                shared.cancelled.store(true, Ordering::SeqCst);
                tasks.abort_all();
            }
        }
    }
    match failure {
        Some(e) => {
            let text = e.to_string();
            if let Ok(mut slot) = shared.error.lock() {
                *slot = Some(e);
            }
            JobStatus::Failed(text)
        }
        None if shared.cancelled.load(Ordering::SeqCst) => JobStatus::Cancelled,
        None => JobStatus::Finished,
    }
}

fn run_source(
    spec: Arc<SourceSpec>,
    ctx: TaskContext,
    mut router: Router,
    shared: Arc<Shared>,
) -> Result<()> {
    let mut reader = spec.connector.create_reader(&ctx)?;
    let mut watermark = i64::MIN;
    loop {
        if shared.cancelled.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        match reader.poll_next()? {
            SourcePoll::Batch(batch) => {
                let batch = match &spec.computed {
                    Some(exprs) => {
                        let rows = batch.num_rows();
                        let columns = exprs
                            .iter()
                            .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(rows)))
                            .collect::<datafusion::error::Result<Vec<_>>>()?;
                        RecordBatch::try_new(spec.schema.clone(), columns)?
                    }
                    None => batch,
                };
                NodeMetrics::add(&ctx.metrics.records_out, batch.num_rows());
                let mut advanced = None;
                if let Some(expr) = &spec.watermark {
                    let times = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
                    if let Some(max) = max_kernel(&as_millis(&times)?) {
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
                router.blocking_broadcast(Message::End)?;
                return Ok(());
            }
        }
    }
}

/// For each node, the input it is chained to: an operator whose only input
/// is a forward edge from an operator of the same parallelism that feeds
/// nothing else runs in that operator's task, with no channel in between.
fn chained_inputs(graph: &JobGraph) -> Vec<Option<usize>> {
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
fn chain_from(graph: &JobGraph, chained: &[Option<usize>], head: usize) -> Vec<usize> {
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

type ChainOperators = Vec<(Box<dyn crate::operators::Operator>, TaskContext)>;

fn create_operators(
    factories: Vec<(Arc<dyn crate::operators::OperatorFactory>, TaskContext)>,
) -> Result<ChainOperators> {
    factories
        .into_iter()
        .map(|(f, ctx)| Ok((f.create(&ctx)?, ctx)))
        .collect()
}

/// Runs batches through the chain from operator `start` on.
fn push_through(
    ops: &mut [(Box<dyn crate::operators::Operator>, TaskContext)],
    start: usize,
    mut batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    for (op, ctx) in ops.iter_mut().skip(start) {
        let mut next = Vec::new();
        for batch in batches {
            NodeMetrics::add(&ctx.metrics.records_in, batch.num_rows());
            op.process_batch(batch, &mut next)?;
        }
        batches = next;
    }
    Ok(batches)
}

/// Calls `hook` (a watermark or end-of-input hook) on each operator of the
/// chain in order; what an operator emits travels down the rest of the chain
/// before the next operator's hook runs.
async fn fire_down_chain(
    ops: &mut [(Box<dyn crate::operators::Operator>, TaskContext)],
    router: &mut Router,
    hook: impl Fn(&mut dyn crate::operators::Operator, &mut Vec<RecordBatch>) -> Result<()>,
) -> Result<()> {
    for i in 0..ops.len() {
        let mut emitted = Vec::new();
        hook(ops[i].0.as_mut(), &mut emitted)?;
        for b in push_through(ops, i + 1, emitted)? {
            router.send_batch(b).await?;
        }
    }
    Ok(())
}

async fn run_chain(
    mut ops: Vec<(Box<dyn crate::operators::Operator>, TaskContext)>,
    mut gate: InputGate,
    mut router: Router,
) -> Result<()> {
    while let Some(event) = gate.next().await {
        match event {
            GateEvent::Batch(batch) => {
                for b in push_through(&mut ops, 0, vec![batch])? {
                    router.send_batch(b).await?;
                }
            }
            GateEvent::Watermark(w) => {
                fire_down_chain(&mut ops, &mut router, |op, out| op.on_watermark(w, out)).await?;
                for (_, ctx) in &ops {
                    ctx.metrics.watermark.store(w, Ordering::Relaxed);
                }
                router.broadcast(Message::Watermark(w)).await?;
            }
            GateEvent::Barrier(n) => router.broadcast(Message::Barrier(n)).await?,
            GateEvent::End => {
                fire_down_chain(&mut ops, &mut router, |op, out| op.on_end(out)).await?;
                router.broadcast(Message::End).await?;
                break;
            }
        }
    }
    Ok(())
}

fn run_sink(
    mut writer: Box<dyn crate::connectors::SinkWriter>,
    ctx: TaskContext,
    mut rx: mpsc::Receiver<Message>,
    expected_ends: usize,
) -> Result<()> {
    let mut ends = 0;
    if expected_ends == 0 {
        return writer.finish();
    }
    while let Some(message) = rx.blocking_recv() {
        match message {
            Message::Batch(b) => {
                NodeMetrics::add(&ctx.metrics.records_in, b.num_rows());
                writer.write(&b)?;
            }
            Message::End => {
                ends += 1;
                if ends == expected_ends {
                    return writer.finish();
                }
            }
            Message::Watermark(w) => ctx.metrics.watermark.store(w, Ordering::Relaxed),
            Message::Barrier(_) => {}
        }
    }
    Err(EngineError::Cancelled)
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
