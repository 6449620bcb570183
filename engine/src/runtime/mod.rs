//! Starting a [`JobGraph`]: channels between subtasks, one task per subtask,
//! and a supervisor that ends the job on the first failure.
//!
//! Operator subtasks are tokio tasks; source and sink subtasks do blocking
//! I/O and run on tokio's blocking threads. Channels are bounded
//! (`execution.buffer-capacity` batches): a full channel is backpressure.
//!
//! - `driver`: a job's attempts, restores and restarts, and the wiring of
//!   one attempt (channels, tasks, coordinator).
//! - `source`, `chain`, `sink`: the task loops of source subtasks, operator
//!   chains (the runtime side of the operator contract: inputs, timers,
//!   snapshots, notifications) and sink subtasks.
//! - `channel`, `gate`, `router`: how messages and barriers move.
//! - `schedule`: the coordinator's decisions, a state machine over events;
//!   `checkpoint`: the coordinator carrying them out, and the subtasks' side
//!   of snapshots.
//! - `restore`: which snapshot state goes to which subtask of a restored job.
//! - `handle`: [`JobHandle`], what the starter of a job holds.

mod chain;
mod channel;
pub(crate) mod checkpoint;
mod driver;
mod gate;
mod handle;
mod restore;
pub(crate) mod router;
mod schedule;
mod sink;
mod source;
mod watermark;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tracing::Instrument;

pub use channel::{channel, Announcement, Inlet, Outlet};
pub use checkpoint::CheckpointStats;
use driver::Driver;
pub use gate::{GateEvent, InputGate};
use handle::Shared;
pub use handle::{new_job_id, stable_job_id, JobHandle, JobStatus};
pub use restore::{check_restore, plan_restore};
pub use router::{subtask_for_key_group, Route, Router};

use crate::config::Config;
use crate::error::{EngineError, Result};
use crate::graph::JobGraph;
use crate::metrics::NodeMetrics;

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
