//! A job's driver: its attempts, what each restores from (a savepoint, the
//! latest intact checkpoint, or nothing), restarts per `restart-strategy`,
//! and the wiring of one attempt: channels, tasks, the coordinator.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::channel::{self, Inlet};
use super::gate::InputGate;
use super::handle::{JobStatus, Shared};
use super::router::{Route, Router};
use super::sink::{run_sink, SinkCheckpointing};
use super::source::run_source;
use super::{chain, checkpoint, restore, supervise, task_span};
use crate::config::Config;
use crate::error::{EngineError, Result};
use crate::graph::{Exchange, JobGraph, NodeKind};
use crate::metrics::NodeMetrics;
use crate::operators::TaskContext;

/// Runs a job's attempts: restores, restarts, reports.
pub(super) struct Driver {
    pub(super) graph: Arc<JobGraph>,
    pub(super) config: Config,
    pub(super) name: String,
    /// The job's checkpoint folder, scratch folders and file names:
    /// [`JobHandle::pipeline_id`].
    pub(super) folder: String,
    pub(super) state: Arc<crate::config::StateSettings>,
    pub(super) checkpointing: Option<crate::config::CheckpointSettings>,
    pub(super) storage: Option<weir_checkpoint::CheckpointStorage>,
    pub(super) metrics: Vec<(String, Arc<NodeMetrics>)>,
    pub(super) shared: Arc<Shared>,
    pub(super) stats: checkpoint::StatsLog,
    pub(super) requests:
        Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<checkpoint::SavepointRequest>>>,
}

/// A description of the graph's shape, stored in checkpoints: restoring into
/// a job whose operators differ is refused.
pub(super) fn graph_fingerprint(graph: &JobGraph) -> String {
    graph
        .nodes
        .iter()
        .map(|n| format!("{}:{}@{}", n.id, n.describe(), n.parallelism))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Driver {
    pub(super) async fn run(self) -> JobStatus {
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
                self.warn_of_fallback(&job, metadata.checkpoint_id).await?;
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
    async fn warn_of_fallback(
        &self,
        job: &weir_checkpoint::JobCheckpoints,
        restored: u64,
    ) -> Result<()> {
        let skipped = job
            .completed_ids()
            .await
            .map(|ids| ids.into_iter().filter(|id| *id > restored).count())
            .unwrap_or(0);
        if skipped == 0 {
            return Ok(());
        }
        let sinks: Vec<FallbackSink> = self
            .graph
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Sink(f) => Some(FallbackSink {
                    describe: f.describe(),
                    exactly_once: f.is_exactly_once(),
                    takes_back: f.takes_back_committed_output(),
                }),
                _ => None,
            })
            .collect();
        refuse_fallback(
            &sinks,
            restored,
            skipped,
            self.config
                .bool("execution.checkpointing.allow-fallback-duplicates"),
        )?;
        let again: Vec<String> = sinks
            .iter()
            .filter(|s| !s.takes_back)
            .map(|s| s.describe.clone())
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
        Ok(())
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

/// A sink, as a fall-back past damaged checkpoints concerns it.
struct FallbackSink {
    describe: String,
    exactly_once: bool,
    takes_back: bool,
}

/// Refuses to resume from checkpoint `restored` when `skipped` newer ones
/// committed output that an exactly-once sink cannot take back — it would
/// be written twice — unless the user allows it.
fn refuse_fallback(
    sinks: &[FallbackSink],
    restored: u64,
    skipped: usize,
    allowed: bool,
) -> Result<()> {
    let stuck: Vec<&str> = sinks
        .iter()
        .filter(|s| s.exactly_once && !s.takes_back)
        .map(|s| s.describe.as_str())
        .collect();
    if skipped == 0 || stuck.is_empty() || allowed {
        return Ok(());
    }
    Err(EngineError::Checkpoint(format!(
        "resuming from checkpoint {restored} would write the output of the {skipped} newer completed checkpoint{} again into exactly-once sinks that cannot take it back: {}. Nothing ran. Repair the newer checkpoints, or SET 'execution.checkpointing.allow-fallback-duplicates' = 'true' to resume anyway",
        if skipped == 1 { "" } else { "s" },
        stuck.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(exactly_once: bool, takes_back: bool) -> FallbackSink {
        FallbackSink {
            describe: format!("sink(eo={exactly_once}, back={takes_back})"),
            exactly_once,
            takes_back,
        }
    }

    #[test]
    fn a_fallback_that_would_duplicate_exactly_once_output_is_refused_unless_allowed() {
        // Kafka-like: exactly once, committed transactions cannot be taken back.
        let stuck = [sink(true, false), sink(false, false)];
        let err = refuse_fallback(&stuck, 19, 2, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("checkpoint 19")
                && err.contains("2 newer completed checkpoints")
                && err.contains("execution.checkpointing.allow-fallback-duplicates")
                && err.contains("eo=true"),
            "{err}"
        );
        assert!(refuse_fallback(&stuck, 19, 2, true).is_ok(), "allowed");
        assert!(
            refuse_fallback(&stuck, 19, 0, false).is_ok(),
            "nothing skipped"
        );
        // The filesystem sink takes back; at-least-once sinks promise nothing.
        assert!(refuse_fallback(&[sink(true, true), sink(false, false)], 19, 3, false).is_ok());
    }
}
