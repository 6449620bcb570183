//! Starting a [`JobGraph`]: channels between subtasks, one task per subtask,
//! and a supervisor that ends the job on the first failure.
//!
//! Operator subtasks are tokio tasks; source and sink subtasks do blocking
//! I/O and run on tokio's blocking threads. Channels are bounded
//! (`execution.buffer-capacity` batches): a full channel is backpressure.
//!
//! - `channel`, `gate`, `router`: how messages and barriers move.
//! - `checkpoint`: the coordinator (checkpoints and savepoints) and the
//!   subtasks' side of snapshots.
//! - `restore`: which snapshot state goes to which subtask of a restored job.
//! - `handle`: [`JobHandle`], what the starter of a job holds.

mod chain;
mod channel;
pub(crate) mod checkpoint;
mod gate;
mod handle;
mod restore;
pub(crate) mod router;
mod schedule;
mod watermark;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tracing::Instrument;

pub use channel::{channel, Announcement, Inlet, Outlet};
pub use checkpoint::CheckpointStats;
pub use gate::{GateEvent, InputGate};
use handle::Shared;
pub use handle::{new_job_id, stable_job_id, JobHandle, JobStatus};
pub use restore::{check_restore, plan_restore};
pub use router::{subtask_for_key_group, Route, Router};

use crate::config::Config;
use crate::connectors::{SourcePoll, SourceSpec};
use crate::error::{EngineError, Result};
use crate::graph::{Exchange, JobGraph, NodeKind};
use crate::message::{BarrierKind, Message};
use crate::metrics::NodeMetrics;
use crate::operators::narrow::NarrowExprs;
use crate::operators::TaskContext;

/// Starts `graph` on the current tokio runtime.
///
/// With `execution.checkpointing.interval` set, the job takes checkpoints,
/// resumes from the latest one of a job with the same `pipeline.name` in the
/// same checkpoint directory (or from `execution.savepoint.path`), and
/// restarts after a failure per `restart-strategy.*`.
pub fn start_job(graph: &JobGraph, config: &Config, name: &str) -> Result<JobHandle> {
    // Every subtask owns at least one key group.
    let max_parallelism = config.max_parallelism();
    if let Some(node) = graph.nodes.iter().find(|n| n.parallelism > max_parallelism) {
        return Err(EngineError::Config(format!(
            "parallelism {} of {} is above pipeline.max-parallelism ({max_parallelism}), the number of key groups: lower parallelism.default or raise pipeline.max-parallelism",
            node.parallelism,
            node.describe()
        )));
    }
    let checkpointing = config.checkpoint_settings()?;
    let state = Arc::new(config.state_settings()?);
    state.validate()?;
    let storage = match &checkpointing {
        Some(c) => Some(
            weir_checkpoint::CheckpointStorage::open(&c.dir, &c.storage)
                .map_err(|e| EngineError::Config(format!("execution.checkpointing.dir: {e}")))?,
        ),
        None => None,
    };
    // Every submission is a new job. A job named with `pipeline.name` keeps
    // its checkpoint folder across runs, so that the next run finds its
    // checkpoints; an unnamed one has a folder of its own each time.
    let id = new_job_id();
    let pipeline_id = if checkpointing.is_some() && config.get("pipeline.name").is_some() {
        stable_job_id(name)
    } else {
        id.clone()
    };
    let metrics: Vec<(String, Arc<NodeMetrics>)> = graph
        .nodes
        .iter()
        .map(|n| (n.describe(), Arc::new(NodeMetrics::new())))
        .collect();
    let (savepoints_tx, savepoints_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        savepoints: savepoints_tx,
        restarts: Default::default(),
        cancelled: AtomicBool::new(false),
        cancel: Notify::new(),
        error: Mutex::new(None),
        restored_from: Mutex::new(None),
        stop_requested: AtomicBool::new(false),
        ended_ms: Default::default(),
    });
    let stats: checkpoint::StatsLog = Arc::default();
    let (status_tx, status_rx) = watch::channel(JobStatus::Running);
    let savepoints_enabled = checkpointing.is_some();
    let periodic_checkpoints = checkpointing.as_ref().is_some_and(|c| c.periodic);
    let savepoint_dir = checkpointing.as_ref().and_then(|c| c.savepoint_dir.clone());
    let driver = Driver {
        requests: Arc::new(tokio::sync::Mutex::new(savepoints_rx)),
        graph: Arc::new(graph.clone()),
        config: config.clone(),
        name: name.to_string(),
        folder: pipeline_id.clone(),
        state,
        checkpointing,
        storage,
        metrics: metrics.clone(),
        shared: shared.clone(),
        stats: stats.clone(),
    };
    let supervisor_shared = shared.clone();
    // Every event of the job, its tasks' included, carries its id and name.
    let span = tracing::info_span!("job", id = %id, name = %name);
    tokio::spawn(
        async move {
            let status = driver.run().await;
            tracing::info!(status = status.flink_name(), "job ended");
            supervisor_shared
                .ended_ms
                .store(now_ms().max(1), Ordering::SeqCst);
            let _ = status_tx.send(status);
            drop(supervisor_shared);
        }
        .instrument(span),
    );
    Ok(JobHandle {
        id,
        name: name.to_string(),
        shared,
        status: status_rx,
        metrics: Arc::new(metrics),
        bounded: graph.is_bounded(),
        checkpoints: stats,
        savepoints_enabled,
        savepoint_dir,
        started_ms: now_ms(),
        periodic_checkpoints,
        pipeline_id,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs a job's attempts: restores, restarts, reports.
struct Driver {
    graph: Arc<JobGraph>,
    config: Config,
    name: String,
    /// The job's checkpoint folder, scratch folders and file names:
    /// [`JobHandle::pipeline_id`].
    folder: String,
    state: Arc<crate::config::StateSettings>,
    checkpointing: Option<crate::config::CheckpointSettings>,
    storage: Option<weir_checkpoint::CheckpointStorage>,
    metrics: Vec<(String, Arc<NodeMetrics>)>,
    shared: Arc<Shared>,
    stats: checkpoint::StatsLog,
    requests: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<checkpoint::SavepointRequest>>>,
}

/// A description of the graph's shape, stored in checkpoints: restoring into
/// a job whose operators differ is refused.
fn graph_fingerprint(graph: &JobGraph) -> String {
    graph
        .nodes
        .iter()
        .map(|n| format!("{}:{}@{}", n.id, n.describe(), n.parallelism))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Driver {
    async fn run(self) -> JobStatus {
        self.remove_stale_scratch();
        let (attempts, delay) = self.config.restart_strategy();
        let mut restore = match self.first_restore().await {
            Ok(r) => r,
            Err(e) => return self.fail(e),
        };
        let mut restarts = 0;
        loop {
            let outcome = self.attempt(restore.take()).await;
            match outcome {
                Err(e)
                    if self.shared.cancelled.load(Ordering::SeqCst)
                        && matches!(e, EngineError::Cancelled) =>
                {
                    return self.cancelled().await;
                }
                Err(e) if restarts < attempts && !self.shared.cancelled.load(Ordering::SeqCst) => {
                    restarts += 1;
                    self.shared.restarts.store(restarts, Ordering::SeqCst);
                    tracing::warn!(
                        target: crate::USER,
                        "Job {} failed: {e}. Restarting in {:?} (attempt {restarts} of {attempts}, restart-strategy.fixed-delay.attempts).",
                        self.name, delay
                    );
                    tokio::time::sleep(delay).await;
                    restore = match self.latest_restore().await {
                        Ok(r) => r,
                        Err(e) => return self.fail(e),
                    };
                }
                Err(e) => return self.fail(e),
                Ok(()) if self.shared.cancelled.load(Ordering::SeqCst) => {
                    return self.cancelled().await
                }
                Ok(()) => return JobStatus::Finished,
            }
        }
    }

    /// Local snapshot folders of this job left by processes that died
    /// (killed while a checkpoint was being uploaded).
    fn remove_stale_scratch(&self) {
        let base = std::env::temp_dir().join("weir-checkpoints");
        let Ok(entries) = std::fs::read_dir(&base) else {
            return;
        };
        let prefix = format!("{}-", self.folder);
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or_default();
            let alive = std::path::Path::new("/proc").join(pid).exists();
            if !alive {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    fn fail(&self, e: EngineError) -> JobStatus {
        let text = e.to_string();
        if let Ok(mut slot) = self.shared.error.lock() {
            *slot = Some(e);
        }
        JobStatus::Failed(text)
    }

    async fn cancelled(&self) -> JobStatus {
        if let (Some(c), Some(storage)) = (&self.checkpointing, &self.storage) {
            if c.delete_on_cancel {
                let _ = storage.job(&self.folder).delete_job().await;
            }
        }
        JobStatus::Cancelled
    }

    /// The snapshot the first attempt starts from: `execution.savepoint.path`
    /// (a savepoint or a checkpoint), else the latest intact checkpoint of
    /// this job.
    async fn first_restore(&self) -> Result<Option<restore::Restore>> {
        if let Some(path) = self
            .config
            .get("execution.savepoint.path")
            .filter(|p| !p.trim().is_empty())
        {
            let (job, metadata) =
                weir_checkpoint::open_snapshot(&path, &self.config.storage_options())
                    .await
                    .map_err(|e| {
                        EngineError::Checkpoint(format!("execution.savepoint.path: {e}"))
                    })?;
            tracing::info!(target: crate::USER, "Restoring job '{}' from {path}", self.name);
            self.record_restore(&path);
            return self.checked(metadata, job);
        }
        let Some(c) = &self.checkpointing else {
            return Ok(None);
        };
        if !c.resume {
            if let Some(storage) = &self.storage {
                storage
                    .job(&self.folder)
                    .delete_job()
                    .await
                    .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
            }
            return Ok(None);
        }
        self.latest_restore().await
    }

    async fn latest_restore(&self) -> Result<Option<restore::Restore>> {
        let Some(storage) = &self.storage else {
            return Ok(None);
        };
        let job = storage.job(&self.folder);
        let (found, warnings) = job
            .latest_valid()
            .await
            .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
        if found.is_none() && !warnings.is_empty() {
            // Starting over would write again every row the damaged
            // checkpoints' job committed: only on request.
            return Err(EngineError::Checkpoint(format!(
                "no retained checkpoint of job '{}' in {} can be restored:\n  {}\nNothing was restored and nothing ran. `weir run --fresh` (or SET 'execution.checkpointing.resume' = 'false') deletes these checkpoints and starts the job over, writing its output again",
                self.name,
                job.url(),
                warnings.join("\n  ")
            )));
        }
        for w in &warnings {
            tracing::warn!(target: crate::USER, "{w}");
        }
        match found {
            Some(metadata) => {
                tracing::info!(
                    target: crate::USER,
                    "Resuming job '{}' from checkpoint {} ({})",
                    self.name,
                    metadata.checkpoint_id,
                    job.checkpoint_url(metadata.checkpoint_id)
                );
                self.record_restore(&job.checkpoint_url(metadata.checkpoint_id));
                self.warn_of_fallback(&job, metadata.checkpoint_id).await;
                let mut restore = self.checked(metadata, job)?;
                if let Some(r) = restore.as_mut() {
                    r.resumed = true;
                }
                Ok(restore)
            }
            None => Ok(None),
        }
    }

    /// Says what resuming from `restored`, older than the newest completed
    /// checkpoint, means for each sink: filesystem sinks take back what the
    /// skipped checkpoints committed; the others write it again.
    async fn warn_of_fallback(&self, job: &weir_checkpoint::JobCheckpoints, restored: u64) {
        let skipped = job
            .completed_ids()
            .await
            .map(|ids| ids.into_iter().filter(|id| *id > restored).count())
            .unwrap_or(0);
        if skipped == 0 {
            return;
        }
        let again: Vec<String> = self
            .graph
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Sink(f) if !f.takes_back_committed_output() => Some(f.describe()),
                _ => None,
            })
            .collect();
        let what = if again.is_empty() {
            "its sinks take back what they committed".to_string()
        } else {
            format!(
                "these sinks write their output of {} checkpoint{} again: {}",
                skipped,
                if skipped == 1 { "" } else { "s" },
                again.join(", ")
            )
        };
        tracing::warn!(
            target: crate::USER,
            "Job '{}' resumes from checkpoint {restored}, older than {skipped} newer completed checkpoint{} that could not be used: {what}",
            self.name,
            if skipped == 1 { "" } else { "s" }
        );
    }

    fn record_restore(&self, from: &str) {
        if let Ok(mut slot) = self.shared.restored_from.lock() {
            *slot = Some(from.to_string());
        }
    }

    /// Matches the snapshot's state to this job's operators, or refuses it.
    fn checked(
        &self,
        metadata: weir_checkpoint::CheckpointMetadata,
        job: weir_checkpoint::JobCheckpoints,
    ) -> Result<Option<restore::Restore>> {
        if metadata.operators.is_empty() {
            // Written before operators had stable ids: the graph must match.
            let ours = graph_fingerprint(&self.graph);
            if metadata.graph != ours {
                return Err(EngineError::Checkpoint(format!(
                    "checkpoint {} was taken by a job with other operators or parallelism; start over with --fresh (weir run) or another pipeline.name.\ncheckpoint:\n{}\nthis job:\n{ours}",
                    metadata.checkpoint_id, metadata.graph
                )));
            }
            let from = self
                .graph
                .nodes
                .iter()
                .map(|n| Some((n.id, n.parallelism)))
                .collect();
            return Ok(Some(restore::Restore {
                metadata,
                job,
                from,
                same_layout: true,
                resumed: false,
            }));
        }
        let (restore, warnings) = restore::Restore::plan(
            metadata,
            job,
            &self.graph.operator_infos(),
            self.config.max_parallelism(),
            self.config
                .bool("execution.savepoint.ignore-unclaimed-state"),
        )?;
        for w in warnings {
            tracing::warn!(target: crate::USER, "{w}");
        }
        Ok(Some(restore))
    }

    /// Runs the job once, from `restore` if given, until it ends.
    async fn attempt(&self, restore: Option<restore::Restore>) -> Result<()> {
        let graph = &*self.graph;
        let config = &self.config;
        let capacity = config.buffer_capacity();
        let max_parallelism = config.max_parallelism();
        let mode = self
            .checkpointing
            .as_ref()
            .map_or(crate::config::BarrierMode::Aligned, |c| c.mode);
        let chained = chain::chained_inputs(graph);

        // Channels: routes[(node, subtask)] are the output edges of a subtask,
        // inputs[(node, subtask)] what it reads.
        let mut routes: HashMap<(usize, usize), Vec<Route>> = HashMap::new();
        let mut inputs: HashMap<(usize, usize), Vec<(usize, Inlet)>> = HashMap::new();
        for node in &graph.nodes {
            let p = node.parallelism;
            for s in 0..p {
                inputs.insert((node.id, s), Vec::new());
            }
            for (input_index, (upstream, exchange)) in node.inputs.iter().enumerate() {
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
                    let mut outlets = Vec::new();
                    for s in &connected {
                        let (outlet, inlet) = channel::channel(capacity);
                        if let Some(list) = inputs.get_mut(&(node.id, *s)) {
                            list.push((input_index, inlet));
                        }
                        outlets.push(outlet);
                    }
                    let route = match exchange {
                        Exchange::Hash(keys) => Route::Hash {
                            keys: keys.clone(),
                            targets: outlets,
                            max_parallelism,
                            hashes: Vec::new(),
                        },
                        _ if outlets.len() == 1 => Route::One(outlets.remove(0)),
                        _ => Route::RoundRobin {
                            targets: outlets,
                            next: us,
                        },
                    };
                    routes.entry((up.id, us)).or_default().push(route);
                }
            }
        }

        // Checkpointing: the coordinator and what each task gets of it.
        let attempt_tag = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        );
        let scratch = std::env::temp_dir().join("weir-checkpoints").join(format!(
            "{}-{}-{attempt_tag}",
            self.folder,
            std::process::id()
        ));
        let (to_coordinator, events) = mpsc::unbounded_channel();
        let (completed_tx, completed_rx) = watch::channel(0u64);
        let (aborted_tx, aborted_rx) = watch::channel(0u64);
        let (fail_tx, mut fail_rx) = mpsc::unbounded_channel::<EngineError>();
        let attempt_failed = Arc::new(AtomicBool::new(false));
        let savepoint_targets: checkpoint::SavepointTargets = Arc::default();
        let task_cp = match (&self.checkpointing, &self.storage) {
            (Some(c), Some(storage)) => Some(checkpoint::TaskCheckpointing {
                savepoints: savepoint_targets.clone(),
                to_coordinator,
                job: storage.job(&self.folder),
                scratch: scratch.clone(),
                incremental: c.incremental,
                completed: completed_rx,
                aborted: aborted_rx,
                failed: attempt_failed.clone(),
            }),
            _ => None,
        };
        let mut triggers = Vec::new();
        let mut expected_acks = 0;

        let mut tasks: JoinSet<Result<()>> = JoinSet::new();
        for node in &graph.nodes {
            if chained[node.id].is_some() {
                // Started as part of its chain's head.
                continue;
            }
            let chain = chain::chain_from(graph, &chained, node.id);
            let tail = *chain.last().unwrap_or(&node.id);
            for s in 0..node.parallelism {
                expected_acks += 1;
                let context = |id: usize| TaskContext {
                    subtask: s,
                    parallelism: node.parallelism,
                    max_parallelism,
                    batch_size: config.batch_size(),
                    metrics: self.metrics[id].1.clone(),
                    job_id: self.folder.clone(),
                    node: id,
                    state: self.state.clone(),
                    backend: None,
                    operator_state: Vec::new(),
                    checkpointing: task_cp.is_some(),
                };
                let ctx = context(node.id);
                let router = Router::new(routes.remove(&(tail, s)).unwrap_or_default());
                let inlets = inputs.remove(&(node.id, s)).unwrap_or_default();
                match &node.kind {
                    NodeKind::Source(spec) => {
                        let spec = spec.clone();
                        let shared = self.shared.clone();
                        let position = match &restore {
                            Some(r) => r.source_position(
                                node.id,
                                s,
                                node.parallelism,
                                spec.connector.as_ref(),
                            )?,
                            None => None,
                        };
                        let cp = match &task_cp {
                            Some(tc) => {
                                let (tx, rx) = std::sync::mpsc::channel();
                                triggers.push(tx);
                                Some((tc.clone(), rx))
                            }
                            None => None,
                        };
                        let span = task_span(node.id, s, &node.describe());
                        tasks.spawn_blocking(move || {
                            let _span = span.enter();
                            run_source(spec, ctx, router, shared, cp, position)
                        });
                    }
                    NodeKind::Operator(_) => {
                        let mut factories = Vec::with_capacity(chain.len());
                        let mut shared_files = Vec::with_capacity(chain.len());
                        for id in &chain {
                            let NodeKind::Operator(factory) = &graph.nodes[*id].kind else {
                                return Err(EngineError::Internal(format!(
                                    "node {id} chained but not an operator"
                                )));
                            };
                            let mut ctx = context(*id);
                            if let Some(r) = &restore {
                                ctx.operator_state = r.operator_state(*id, s, node.parallelism)?;
                            }
                            let parts = match &restore {
                                Some(r) => {
                                    let dir = scratch.join("restore").join(format!("op{id}-{s}"));
                                    r.download(*id, s, node.parallelism, &dir).await?
                                }
                                None => None,
                            };
                            shared_files.push(Arc::new(tokio::sync::Mutex::new(match &restore {
                                Some(r) => r.shared_files(*id, s, &attempt_tag, &self.folder),
                                None => weir_checkpoint::SharedFiles::new(attempt_tag.clone()),
                            })));
                            factories.push((factory.clone(), ctx, parts));
                        }
                        let mut gate = InputGate::with_inputs(inlets, mode);
                        if let Some(r) = &restore {
                            gate.replay_first(r.inflight(node.id, s).await?);
                        }
                        let cp = task_cp.clone().map(|tc| chain::ChainCheckpointing {
                            tc,
                            shared: shared_files,
                            pending: HashMap::new(),
                        });
                        let stateful = factories.iter().any(|(f, _, _)| f.is_stateful());
                        if stateful && (self.state.backend.kind.is_blocking() || cp.is_some()) {
                            // RocksDB calls and snapshots block on disk: the
                            // chain opens its state and runs on a blocking
                            // thread, waiting for its channels there.
                            let handle = tokio::runtime::Handle::current();
                            let span = task_span(node.id, s, &node.describe());
                            tasks.spawn_blocking(move || {
                                let _span = span.enter();
                                let ops = chain::Chain::create(factories)?;
                                handle.block_on(chain::run_chain(ops, gate, router, cp))
                            });
                        } else {
                            let ops = chain::Chain::create(factories)?;
                            let span = task_span(node.id, s, &node.describe());
                            tasks.spawn(chain::run_chain(ops, gate, router, cp).instrument(span));
                        }
                    }
                    NodeKind::Sink(factory) => {
                        let writer = factory.create_writer(&ctx, node.schema.clone())?;
                        let mut gate = InputGate::with_inputs(inlets, mode);
                        if let Some(r) = &restore {
                            gate.replay_first(r.inflight(node.id, s).await?);
                        }
                        let sink_states = restore
                            .as_ref()
                            .map(|r| r.sink_states(node.id, s, node.parallelism))
                            .unwrap_or_default();
                        // Subtask 0 takes back, for every subtask, what
                        // checkpoints after the resumed one committed.
                        let withdraw = restore
                            .as_ref()
                            .filter(|r| r.resumed && s == 0)
                            .map(|r| (r.metadata.checkpoint_id, r.metadata.trigger_time_ms));
                        let cp = task_cp.clone().map(|tc| SinkCheckpointing {
                            tc,
                            restored: sink_states,
                            withdraw,
                        });
                        let handle = tokio::runtime::Handle::current();
                        let shared = self.shared.clone();
                        let span = task_span(node.id, s, &node.describe());
                        tasks.spawn_blocking(move || {
                            let _span = span.enter();
                            run_sink(writer, ctx, gate, cp, handle, shared)
                        });
                    }
                }
            }
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut coordinator_task = None;
        if let (Some(c), Some(tc)) = (&self.checkpointing, &task_cp) {
            let job = tc.job.clone();
            let mut retained = Vec::new();
            let mut last = restore.as_ref().map_or(0, |r| r.metadata.checkpoint_id);
            if let Ok(ids) = job.completed_ids().await {
                for id in ids {
                    last = last.max(id);
                    if let Ok(m) = job.read_metadata(id).await {
                        retained.push((id, m));
                    }
                }
            }
            let coordinator = checkpoint::Coordinator {
                settings: c.clone(),
                job,
                job_id: self.folder.clone(),
                job_name: self.name.clone(),
                graph: graph_fingerprint(graph),
                operators: graph.operator_infos(),
                max_parallelism,
                expected_acks,
                sources: triggers,
                events,
                requests: self.requests.clone(),
                savepoints: savepoint_targets.clone(),
                completed: completed_tx,
                aborted: aborted_tx,
                next_id: last + 1,
                retained: checkpoint::retained_from(&retained),
                stats: self.stats.clone(),
                fail: fail_tx,
            };
            coordinator_task = Some(tokio::spawn(
                coordinator
                    .run(stop_rx)
                    .instrument(tracing::Span::current()),
            ));
        } else {
            drop(fail_tx);
        }
        let result = supervise(tasks, &self.shared, &mut fail_rx, &attempt_failed).await;
        let _ = stop_tx.send(true);
        // The coordinator finishes what it is doing (writing metadata,
        // deleting checkpoints beyond the retained number) before the job
        // reports its end.
        if let Some(task) = coordinator_task {
            let _ = task.await;
        }
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }
}

/// The span of one subtask's task (inside its job's span).
fn task_span(node: usize, subtask: usize, what: &str) -> tracing::Span {
    let what = what.split('(').next().unwrap_or(what);
    tracing::info_span!("task", node, subtask, operator = %what)
}

/// Waits for the tasks of an attempt; the first failure stops the others.
async fn supervise(
    mut tasks: JoinSet<Result<()>>,
    shared: &Shared,
    fail: &mut mpsc::UnboundedReceiver<EngineError>,
    failed: &AtomicBool,
) -> Result<()> {
    let mut failure: Option<EngineError> = None;
    let mut fail_open = true;
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
                        tracing::error!(error = %e, "task failed, stopping the attempt");
                        failure = Some(e);
                    }
                    failed.store(true, Ordering::SeqCst);
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
                    failed.store(true, Ordering::SeqCst);
                    tasks.abort_all();
                }
                Some(Err(_)) => {}
            },
            e = fail.recv(), if fail_open => match e {
                Some(e) => {
                    if failure.is_none() {
                        failure = Some(e);
                    }
                    failed.store(true, Ordering::SeqCst);
                    tasks.abort_all();
                }
                None => fail_open = false,
            },
            _ = shared.cancel.notified() => {
                shared.cancelled.store(true, Ordering::SeqCst);
                failed.store(true, Ordering::SeqCst);
                tasks.abort_all();
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None if shared.cancelled.load(Ordering::SeqCst) => Err(EngineError::Cancelled),
        None => Ok(()),
    }
}

type SourceCheckpointing = (
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

fn run_source(
    spec: Arc<SourceSpec>,
    ctx: TaskContext,
    mut router: Router,
    shared: Arc<Shared>,
    checkpointing: Option<SourceCheckpointing>,
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
                if let Some((tc, triggers)) = &checkpointing {
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

/// What a sink task reacts to: its input, or a completed checkpoint.
enum SinkEvent {
    Input(Option<GateEvent>),
    Completed,
    Closed,
}

/// A sink's part in checkpoints.
struct SinkCheckpointing {
    tc: checkpoint::TaskCheckpointing,
    /// What the restored checkpoint's subtasks pre-committed.
    restored: Vec<serde_json::Value>,
    /// Take back what checkpoints after this one (id, trigger time)
    /// committed.
    withdraw: Option<(u64, i64)>,
}

fn run_sink(
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
                GateEvent::InputEnded(_) => {}
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
