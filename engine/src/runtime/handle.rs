//! A job as its starter sees it: the [`JobHandle`] (status, metrics,
//! checkpoints, savepoints, cancel) and job ids.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch, Notify};

use super::checkpoint;
use super::checkpoint::CheckpointStats;
use crate::error::{EngineError, Result};
use crate::metrics::{NodeMetrics, NodeMetricsSnapshot};

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

pub(super) struct Shared {
    /// Savepoint requests, to the coordinator of the running attempt.
    pub(super) savepoints: mpsc::UnboundedSender<checkpoint::SavepointRequest>,
    /// Restarts after failures so far.
    pub(super) restarts: std::sync::atomic::AtomicUsize,
    pub(super) cancelled: AtomicBool,
    pub(super) cancel: Notify,
    pub(super) error: Mutex<Option<EngineError>>,
    /// The savepoint or checkpoint the job's latest attempt restored.
    pub(super) restored_from: Mutex<Option<String>>,
    /// Set when [`JobHandle::stop`] asked the job to stop.
    pub(super) stop_requested: AtomicBool,
    /// When the job ended (ms since the epoch); 0 while it runs.
    pub(super) ended_ms: std::sync::atomic::AtomicI64,
}

/// A running (or finished) job.
#[derive(Clone)]
pub struct JobHandle {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) shared: Arc<Shared>,
    pub(super) status: watch::Receiver<JobStatus>,
    pub(super) metrics: Arc<Vec<(String, Arc<NodeMetrics>)>>,
    pub(super) bounded: bool,
    pub(super) checkpoints: checkpoint::StatsLog,
    /// Savepoints are possible (checkpointing or a savepoint directory is set).
    pub(super) savepoints_enabled: bool,
    /// `execution.checkpointing.savepoint-dir`.
    pub(super) savepoint_dir: Option<String>,
    /// When the job was started (ms since the epoch).
    pub(super) started_ms: i64,
    /// Periodic checkpoints are on: [`JobHandle::stop`] takes a final one.
    pub(super) periodic_checkpoints: bool,
    /// Names the job's checkpoint folder (see [`JobHandle::pipeline_id`]).
    pub(super) pipeline_id: String,
}

impl JobHandle {
    /// The job's id: 32 hex digits, like Flink's, new for every submission
    /// (a job restored from a savepoint or resumed from a checkpoint gets a
    /// new one too; [`JobHandle::restored_from`] says where it came from).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What names the job's checkpoint folder (`<dir>/<pipeline id>/chk-<n>`)
    /// and its part files: derived from `pipeline.name` when checkpointing
    /// is on and the job is named, so that the next run of the same job
    /// finds its checkpoints; the job id otherwise.
    pub fn pipeline_id(&self) -> &str {
        &self.pipeline_id
    }

    /// The savepoint or checkpoint the job restored its state from, once it
    /// has restored (after a restart: the latest one); `None` for a job that
    /// started empty.
    pub fn restored_from(&self) -> Option<String> {
        self.shared
            .restored_from
            .lock()
            .ok()
            .and_then(|r| r.clone())
    }

    /// Whether [`JobHandle::stop`] was called (a job that then reports
    /// `FINISHED` was stopped, it did not reach the end of its input).
    pub fn stop_requested(&self) -> bool {
        self.shared.stop_requested.load(Ordering::SeqCst)
    }

    /// When the job ended (ms since the epoch), `None` while it runs.
    pub fn end_time_ms(&self) -> Option<i64> {
        match self.shared.ended_ms.load(Ordering::SeqCst) {
            0 => None,
            t => Some(t),
        }
    }

    /// `pipeline.name`, or the statement that started the job.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the job was started (ms since the epoch).
    pub fn start_time_ms(&self) -> i64 {
        self.started_ms
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

    /// How often the job restarted after a failure (`restart-strategy.*`).
    pub fn restarts(&self) -> usize {
        self.shared.restarts.load(Ordering::SeqCst)
    }

    /// The job's checkpoints so far (completed and failed), oldest first.
    pub fn checkpoints(&self) -> Vec<CheckpointStats> {
        self.checkpoints
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Takes a savepoint of the running job into a new folder under
    /// `target_dir` (or `execution.checkpointing.savepoint-dir`), and returns
    /// the savepoint's path once it is complete. The job goes on.
    ///
    /// A savepoint is aligned, self-contained and in the canonical format:
    /// restore it with `execution.savepoint.path` into either backend and at
    /// any parallelism.
    pub async fn savepoint(&self, target_dir: Option<&str>) -> Result<String> {
        self.request_savepoint(target_dir, None).await
    }

    /// Stops the job with a savepoint: the sources stop, a final savepoint
    /// is taken, the sinks commit, and the job ends (`FINISHED`). Windows
    /// still open are not fired: they are in the savepoint and fire after
    /// a restore, so stopping and restoring gives the output of a job that
    /// never stopped. With `drain`, the sources first send the end-of-time
    /// watermark, so every window fires before the savepoint (Flink's
    /// `stop --drain`, for a job that is not to be resumed). Returns the
    /// savepoint's path.
    pub async fn stop_with_savepoint(
        &self,
        target_dir: Option<&str>,
        drain: bool,
    ) -> Result<String> {
        let path = self.request_savepoint(target_dir, Some(drain)).await?;
        self.wait().await.map(|()| path)
    }

    /// Stops the job gracefully. With periodic checkpoints, the sources stop
    /// reading, a final checkpoint is taken, the sinks commit it and the job
    /// ends `FINISHED`; the next run of the job resumes from that checkpoint,
    /// so nothing is lost or written twice. Windows still open are kept in
    /// the checkpoint, not fired. Without checkpoints this is
    /// [`JobHandle::cancel`]. Returns once the job has ended; a job that is
    /// not running is left as it is.
    ///
    /// # Errors
    ///
    /// When the final checkpoint fails, the job is cancelled instead (its
    /// next run resumes from its latest completed checkpoint) and the error
    /// says why.
    pub async fn stop(&self) -> Result<()> {
        if self.status() != JobStatus::Running {
            return Ok(());
        }
        self.shared.stop_requested.store(true, Ordering::SeqCst);
        if !self.periodic_checkpoints {
            self.cancel();
            return match self.wait().await {
                Err(EngineError::Cancelled) => Ok(()),
                other => other,
            };
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self.shared.savepoints.send(checkpoint::SavepointRequest {
            target: None,
            stop: true,
            drain: false,
            reply,
        });
        if sent.is_err() {
            return Ok(());
        }
        match answer.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                // The stop failed: end it for sure.
                self.cancel();
                let _ = self.wait().await;
                return Err(e);
            }
            // The job ended before it could take the checkpoint.
            Err(_) => {}
        }
        match self.wait().await {
            Err(EngineError::Cancelled) => Ok(()),
            other => other,
        }
    }

    /// `stop`: `None` to go on, `Some(drain)` to stop.
    async fn request_savepoint(
        &self,
        target_dir: Option<&str>,
        stop: Option<bool>,
    ) -> Result<String> {
        if !self.savepoints_enabled {
            return Err(EngineError::Config(
                "this job takes no checkpoints: set 'execution.checkpointing.interval' or 'execution.checkpointing.savepoint-dir' before starting it to take savepoints".into(),
            ));
        }
        let target = target_dir
            .filter(|d| !d.trim().is_empty())
            .map(str::to_string)
            .or_else(|| self.savepoint_dir.clone())
            .ok_or_else(|| {
                EngineError::Config(
                    "no savepoint directory: give one, or set 'execution.checkpointing.savepoint-dir' (alias 'state.savepoints.dir')".into(),
                )
            })?;
        if self.status() != JobStatus::Running {
            return Err(EngineError::Config(format!(
                "job {} is {}, not running",
                self.id,
                self.status().flink_name()
            )));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.shared
            .savepoints
            .send(checkpoint::SavepointRequest {
                target: Some(target),
                stop: stop.is_some(),
                drain: stop == Some(true),
                reply,
            })
            .map_err(|_| EngineError::Config(format!("job {} is not running", self.id)))?;
        answer.await.map_err(|_| {
            EngineError::Config(format!("job {} ended before the savepoint", self.id))
        })?
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
    format!(
        "{:016x}{:016x}",
        weir_checkpoint::random_u64(0),
        weir_checkpoint::random_u64(1)
    )
}

/// A job id derived from the job's name: a job started again under the same
/// name (and checkpoint directory) finds its checkpoints.
pub fn stable_job_id(name: &str) -> String {
    use std::hash::Hasher;
    let mut out = String::new();
    for seed in [0x5745_4952u64, 0x4a4f_4249] {
        let mut h = twox_hash::XxHash64::with_seed(seed);
        h.write(name.as_bytes());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}
