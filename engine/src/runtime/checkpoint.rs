//! The checkpoint coordinator and the subtasks' side of checkpoints.
//!
//! The coordinator triggers checkpoint `n` at the sources; each source
//! records its position and announces barrier `n` downstream. Operators
//! snapshot when their gate says so (aligned or not), forward the barrier,
//! and upload their files in the background; sinks pre-commit. Every task
//! acknowledges with what it stored. When all have, the coordinator writes
//! the metadata (the checkpoint is now complete), tells the sinks to commit,
//! and deletes checkpoints beyond the number retained.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use tokio::sync::{mpsc, watch};
use weir_checkpoint::{
    CheckpointMetadata, InflightChannel, InflightItem, JobCheckpoints, SharedFiles, TaskSnapshot,
};

use crate::config::CheckpointSettings;
use crate::error::{EngineError, Result};
use crate::message::Message;

/// What tasks tell the coordinator.
pub(crate) enum ToCoordinator {
    /// A task stored its part of checkpoint `id`.
    Ack {
        id: u64,
        tasks: Vec<TaskSnapshot>,
        uploaded: u64,
        state_bytes: u64,
        unaligned: bool,
        alignment: Duration,
    },
    /// A task could not store its part: the checkpoint fails.
    Decline { id: u64, reason: String },
    /// A source subtask has read all its input and waits for the final checkpoint.
    SourceFinished,
}

/// A trigger sent to a source subtask.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trigger {
    pub id: u64,
    /// The last checkpoint: the source ends after its barrier.
    pub last: bool,
}

/// One completed, failed or running checkpoint, as `SHOW CHECKPOINTS` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointStats {
    /// The checkpoint's number.
    pub id: u64,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub status: &'static str,
    /// When it was triggered (ms since the epoch).
    pub trigger_time_ms: i64,
    /// From trigger to completion (or failure).
    pub duration: Duration,
    /// Size of the state it covers.
    pub state_bytes: u64,
    /// Bytes uploaded for it (less than `state_bytes` when incremental).
    pub uploaded_bytes: u64,
    /// Whether some subtask went unaligned.
    pub unaligned: bool,
    /// The longest alignment of a subtask.
    pub alignment: Duration,
    /// Where it is stored (completed ones).
    pub path: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
    /// The final checkpoint of a bounded job.
    pub is_final: bool,
}

/// Checkpoint statistics of a job, shared with its handle.
pub(crate) type StatsLog = Arc<Mutex<Vec<CheckpointStats>>>;

/// What each task needs to take part in checkpoints.
#[derive(Clone)]
pub(crate) struct TaskCheckpointing {
    pub to_coordinator: mpsc::UnboundedSender<ToCoordinator>,
    pub job: JobCheckpoints,
    /// Scratch directory for local snapshots.
    pub scratch: PathBuf,
    pub incremental: bool,
    /// The latest completed checkpoint.
    pub completed: watch::Receiver<u64>,
    /// Set when the attempt fails: tasks waiting for a checkpoint give up.
    pub failed: Arc<std::sync::atomic::AtomicBool>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What one subtask captured synchronously for a checkpoint, to be uploaded.
pub(crate) struct LocalSnapshot {
    pub node: usize,
    pub subtask: usize,
    /// An operator's state snapshot, in a local scratch folder.
    pub state: Option<StateFiles>,
    /// A sink's pre-committed output.
    pub sink_state: Option<serde_json::Value>,
}

/// A state backend's snapshot folder and the operator's uploaded files.
pub(crate) struct StateFiles {
    pub dir: PathBuf,
    pub info: weir_state::SnapshotInfo,
    pub shared: Arc<tokio::sync::Mutex<SharedFiles>>,
}

/// The upload of a chain's snapshots, then (for unaligned checkpoints) of
/// its in-flight data, then the acknowledgement.
pub(crate) struct PendingUpload {
    handle: tokio::task::JoinHandle<Result<(Vec<TaskSnapshot>, u64, u64)>>,
    unaligned: bool,
    alignment: Duration,
}

impl TaskCheckpointing {
    /// The scratch directory for one subtask's snapshot of checkpoint `id`.
    pub fn local_dir(&self, id: u64, node: usize, subtask: usize) -> Result<PathBuf> {
        let dir = self
            .scratch
            .join(format!("chk-{id}"))
            .join(format!("op{node}-{subtask}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| EngineError::io(format!("clearing '{}'", dir.display()), e))?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| EngineError::io(format!("creating '{}'", dir.display()), e))?;
        Ok(dir)
    }

    /// Starts uploading the snapshots; processing goes on meanwhile.
    pub fn upload(
        &self,
        id: u64,
        snapshots: Vec<LocalSnapshot>,
        unaligned: bool,
        alignment: Duration,
    ) -> PendingUpload {
        let job = self.job.clone();
        let incremental = self.incremental;
        let handle = tokio::spawn(async move {
            let mut tasks = Vec::new();
            let (mut uploaded, mut total) = (0, 0);
            for s in snapshots {
                let mut task = TaskSnapshot {
                    node: s.node,
                    subtask: s.subtask,
                    sink_state: s.sink_state.clone(),
                    ..Default::default()
                };
                if let Some(state) = &s.state {
                    let mut shared = state.shared.lock().await;
                    let name = format!("op{}-{}", s.node, s.subtask);
                    let (files, up) = weir_checkpoint::upload_snapshot(
                        &job,
                        id,
                        &name,
                        &state.dir,
                        &state.info.files,
                        incremental.then_some(&mut *shared),
                    )
                    .await
                    .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
                    uploaded += up;
                    total += state.info.bytes;
                    task.backend = Some(state.info.backend.name().to_string());
                    task.files = files;
                    let _ = tokio::fs::remove_dir_all(&state.dir).await;
                }
                tasks.push(task);
            }
            Ok((tasks, uploaded, total))
        });
        PendingUpload {
            handle,
            unaligned,
            alignment,
        }
    }

    /// Waits for the upload, stores the in-flight data with the chain's
    /// first task, and acknowledges. Runs in the background.
    pub fn finish(&self, id: u64, pending: PendingUpload, recorded: Vec<(usize, Vec<Message>)>) {
        let me = self.clone();
        tokio::spawn(async move {
            let result = async {
                let (mut tasks, mut uploaded, mut total) = pending
                    .handle
                    .await
                    .map_err(|e| EngineError::Internal(format!("upload task: {e}")))??;
                if let Some(first) = tasks.first_mut() {
                    for (channel, messages) in recorded {
                        let object = format!(
                            "chk-{id}/op{}-{}/inflight-{channel}.arrow",
                            first.node, first.subtask
                        );
                        let (bytes, items) = encode_inflight(&messages)?;
                        let size = bytes.len() as u64;
                        let has_batches = items.iter().any(|i| matches!(i, InflightItem::Batch));
                        if has_batches {
                            me.job
                                .put(&object, Bytes::from(bytes))
                                .await
                                .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
                            uploaded += size;
                            total += size;
                        }
                        first.inflight.push(InflightChannel {
                            channel,
                            object: has_batches.then_some(object),
                            items,
                            bytes: if has_batches { size } else { 0 },
                        });
                    }
                }
                Ok::<_, EngineError>((tasks, uploaded, total))
            }
            .await;
            let message = match result {
                Ok((tasks, uploaded, state_bytes)) => ToCoordinator::Ack {
                    id,
                    tasks,
                    uploaded,
                    state_bytes,
                    unaligned: pending.unaligned,
                    alignment: pending.alignment,
                },
                Err(e) => ToCoordinator::Decline {
                    id,
                    reason: e.to_string(),
                },
            };
            let _ = me.to_coordinator.send(message);
        });
    }
}

/// Serializes in-flight messages: batches as one Arrow IPC stream, with
/// the order of batches and watermarks in the metadata.
fn encode_inflight(messages: &[Message]) -> Result<(Vec<u8>, Vec<InflightItem>)> {
    let mut items = Vec::with_capacity(messages.len());
    let mut writer: Option<StreamWriter<Vec<u8>>> = None;
    for m in messages {
        match m {
            Message::Batch(b) => {
                if writer.is_none() {
                    writer = Some(StreamWriter::try_new(Vec::new(), &b.schema())?);
                }
                if let Some(w) = writer.as_mut() {
                    w.write(b)?;
                }
                items.push(InflightItem::Batch);
            }
            Message::Watermark(w) => items.push(InflightItem::Watermark(*w)),
            Message::End => {}
        }
    }
    let bytes = match writer {
        Some(mut w) => {
            w.finish()?;
            w.into_inner()?
        }
        None => Vec::new(),
    };
    Ok((bytes, items))
}

/// Reads back what [`encode_inflight`] wrote.
pub(crate) async fn decode_inflight(
    job: &JobCheckpoints,
    channel: &InflightChannel,
) -> Result<Vec<Message>> {
    let mut batches = match &channel.object {
        Some(object) => {
            let bytes = job
                .get(object)
                .await
                .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
            StreamReader::try_new(std::io::Cursor::new(bytes), None)?
                .collect::<std::result::Result<Vec<_>, _>>()?
                .into_iter()
        }
        None => Vec::new().into_iter(),
    };
    channel
        .items
        .iter()
        .map(|item| match item {
            InflightItem::Batch => batches.next().map(Message::Batch).ok_or_else(|| {
                EngineError::Checkpoint("in-flight data has fewer batches than listed".into())
            }),
            InflightItem::Watermark(w) => Ok(Message::Watermark(*w)),
        })
        .collect()
}

struct Running {
    trigger_ms: i64,
    started: Instant,
    is_final: bool,
    acks: usize,
    tasks: Vec<TaskSnapshot>,
    uploaded: u64,
    state_bytes: u64,
    unaligned: bool,
    alignment: Duration,
}

/// Drives the checkpoints of one attempt of a job.
pub(crate) struct Coordinator {
    pub settings: CheckpointSettings,
    pub job: JobCheckpoints,
    pub job_id: String,
    pub job_name: String,
    pub graph: String,
    /// Tasks that acknowledge each checkpoint.
    pub expected_acks: usize,
    pub sources: Vec<std::sync::mpsc::Sender<Trigger>>,
    pub events: mpsc::UnboundedReceiver<ToCoordinator>,
    pub completed: watch::Sender<u64>,
    pub next_id: u64,
    /// Completed checkpoints kept, oldest first, with their shared files.
    pub retained: Vec<(u64, Vec<String>)>,
    pub stats: StatsLog,
    /// Tells the job to fail (too many failed checkpoints).
    pub fail: mpsc::UnboundedSender<EngineError>,
}

impl Coordinator {
    /// Runs until the final checkpoint completed or the attempt ends.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut running: BTreeMap<u64, Running> = BTreeMap::new();
        let mut last_completed_at: Option<Instant> = None;
        let mut finished_sources = 0usize;
        let mut final_triggered = false;
        let mut failures = 0usize;
        let mut timeout_check = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = ticker.tick() => {
                    let paused = last_completed_at
                        .is_some_and(|t| t.elapsed() < self.settings.min_pause);
                    if final_triggered || paused || running.len() >= self.settings.max_concurrent {
                        continue;
                    }
                    self.trigger(&mut running, false);
                }
                _ = timeout_check.tick() => {
                    let expired: Vec<u64> = running
                        .iter()
                        .filter(|(_, r)| r.started.elapsed() > self.settings.timeout)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in expired {
                        if let Some(r) = running.remove(&id) {
                            let reason = format!(
                                "expired after {:?} (execution.checkpointing.timeout)",
                                self.settings.timeout
                            );
                            if self.failed(id, r, reason, &mut failures).await {
                                return;
                            }
                            if final_triggered {
                                // The final checkpoint must complete: try again.
                                self.trigger(&mut running, true);
                            }
                        }
                    }
                }
                event = self.events.recv() => {
                    let Some(event) = event else { return };
                    match event {
                        ToCoordinator::SourceFinished => {
                            finished_sources += 1;
                            if finished_sources == self.sources.len() && !final_triggered {
                                final_triggered = true;
                                self.trigger(&mut running, true);
                            }
                        }
                        ToCoordinator::Decline { id, reason } => {
                            if let Some(r) = running.remove(&id) {
                                if self.failed(id, r, reason, &mut failures).await {
                                    return;
                                }
                                if final_triggered {
                                    self.trigger(&mut running, true);
                                }
                            }
                        }
                        ToCoordinator::Ack { id, tasks, uploaded, state_bytes, unaligned, alignment } => {
                            let Some(r) = running.get_mut(&id) else { continue };
                            r.acks += 1;
                            r.tasks.extend(tasks);
                            r.uploaded += uploaded;
                            r.state_bytes += state_bytes;
                            r.unaligned |= unaligned;
                            r.alignment = r.alignment.max(alignment);
                            if r.acks < self.expected_acks {
                                continue;
                            }
                            let Some(r) = running.remove(&id) else { continue };
                            let is_final = r.is_final;
                            match self.complete(id, r).await {
                                Ok(()) => {
                                    failures = 0;
                                    last_completed_at = Some(Instant::now());
                                    // Older checkpoints still running can no longer matter.
                                    let older: Vec<u64> = running.range(..id).map(|(k, _)| *k).collect();
                                    for k in older {
                                        if let Some(o) = running.remove(&k) {
                                            self.record_failure(k, &o, "subsumed by a newer checkpoint".into());
                                        }
                                    }
                                    if is_final {
                                        return;
                                    }
                                }
                                Err(e) => {
                                    let _ = self.fail.send(e);
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn trigger(&mut self, running: &mut BTreeMap<u64, Running>, last: bool) {
        let id = self.next_id;
        self.next_id += 1;
        running.insert(
            id,
            Running {
                trigger_ms: now_ms(),
                started: Instant::now(),
                is_final: last,
                acks: 0,
                tasks: Vec::new(),
                uploaded: 0,
                state_bytes: 0,
                unaligned: false,
                alignment: Duration::ZERO,
            },
        );
        tracing::debug!(checkpoint = id, last, "triggering checkpoint");
        for s in &self.sources {
            let _ = s.send(Trigger { id, last });
        }
    }

    fn record_failure(&self, id: u64, r: &Running, reason: String) {
        if let Ok(mut log) = self.stats.lock() {
            log.push(CheckpointStats {
                id,
                status: "FAILED",
                trigger_time_ms: r.trigger_ms,
                duration: r.started.elapsed(),
                state_bytes: r.state_bytes,
                uploaded_bytes: r.uploaded,
                unaligned: r.unaligned,
                alignment: r.alignment,
                path: None,
                failure: Some(reason),
                is_final: r.is_final,
            });
        }
    }

    /// Records a failed checkpoint and removes its files; `true` when the
    /// job must fail because of it.
    async fn failed(&mut self, id: u64, r: Running, reason: String, failures: &mut usize) -> bool {
        tracing::warn!(checkpoint = id, %reason, "checkpoint failed");
        eprintln!("[WARN] Checkpoint {id} failed: {reason}");
        self.record_failure(id, &r, reason.clone());
        let _ = self.job.delete_checkpoint(id).await;
        *failures += 1;
        if *failures > self.settings.tolerable_failures {
            let _ = self.fail.send(EngineError::Checkpoint(format!(
                "checkpoint {id} failed ({reason}) and execution.checkpointing.tolerable-failed-checkpoints is {}",
                self.settings.tolerable_failures
            )));
            return true;
        }
        false
    }

    async fn complete(&mut self, id: u64, r: Running) -> Result<()> {
        let mut tasks = r.tasks;
        tasks.sort_by_key(|t| (t.node, t.subtask));
        let metadata = CheckpointMetadata {
            checkpoint_id: id,
            job_id: self.job_id.clone(),
            job_name: self.job_name.clone(),
            graph: self.graph.clone(),
            trigger_time_ms: r.trigger_ms,
            duration_ms: r.started.elapsed().as_millis() as u64,
            unaligned: r.unaligned,
            alignment_ms: r.alignment.as_millis() as u64,
            is_final: r.is_final,
            state_bytes: r.state_bytes,
            uploaded_bytes: r.uploaded,
            tasks,
        };
        self.job
            .write_metadata(&metadata)
            .await
            .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
        let duration = r.started.elapsed();
        tracing::info!(
            checkpoint = id,
            ms = duration.as_millis() as u64,
            bytes = r.state_bytes,
            uploaded = r.uploaded,
            unaligned = r.unaligned,
            "checkpoint completed"
        );
        if let Ok(mut log) = self.stats.lock() {
            log.push(CheckpointStats {
                id,
                status: "COMPLETED",
                trigger_time_ms: r.trigger_ms,
                duration,
                state_bytes: r.state_bytes,
                uploaded_bytes: r.uploaded,
                unaligned: r.unaligned,
                alignment: r.alignment,
                path: Some(self.job.checkpoint_url(id)),
                failure: None,
                is_final: r.is_final,
            });
        }
        let _ = self.completed.send(id);
        let shared = metadata
            .shared_objects()
            .map(str::to_string)
            .collect::<Vec<_>>();
        self.retained.push((id, shared));
        self.prune().await;
        Ok(())
    }

    /// Deletes the oldest checkpoints beyond `num-retained`, and the shared
    /// files no retained checkpoint lists any more.
    async fn prune(&mut self) {
        let plan = weir_checkpoint::retention::plan(&self.retained, self.settings.num_retained);
        for old in &plan.checkpoints {
            if let Err(e) = self.job.delete_checkpoint(*old).await {
                tracing::warn!(checkpoint = old, error = %e, "could not delete an old checkpoint");
            }
        }
        if let Err(e) = self.job.delete_all(&plan.shared).await {
            tracing::warn!(error = %e, "could not delete unused shared files");
        }
        self.retained
            .retain(|(id, _)| !plan.checkpoints.contains(id));
    }
}

/// What an attempt restores from.
pub(crate) struct Restore {
    pub metadata: CheckpointMetadata,
    pub job: JobCheckpoints,
}

impl Restore {
    /// Downloads the state files of `(node, subtask)` into `dir`; `None`
    /// when the checkpoint has none for it.
    pub async fn download(
        &self,
        node: usize,
        subtask: usize,
        dir: &Path,
    ) -> Result<Option<PathBuf>> {
        let Some(task) = self.metadata.task(node, subtask) else {
            return Ok(None);
        };
        if task.files.is_empty() {
            return Ok(None);
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| EngineError::io(format!("clearing '{}'", dir.display()), e))?;
        }
        weir_checkpoint::download_snapshot(&self.job, &task.files, dir)
            .await
            .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
        Ok(Some(dir.to_path_buf()))
    }

    /// The in-flight messages stored for `(node, subtask)`.
    pub async fn inflight(
        &self,
        node: usize,
        subtask: usize,
    ) -> Result<Vec<(usize, Vec<Message>)>> {
        let mut out = Vec::new();
        if let Some(task) = self.metadata.task(node, subtask) {
            for channel in &task.inflight {
                out.push((channel.channel, decode_inflight(&self.job, channel).await?));
            }
        }
        Ok(out)
    }

    /// Shared files already uploaded by `(node, subtask)`.
    pub fn shared_files(&self, node: usize, subtask: usize, attempt: &str) -> SharedFiles {
        let mut shared = SharedFiles::new(attempt);
        if let Some(task) = self.metadata.task(node, subtask) {
            shared.seed(&task.files);
        }
        shared
    }
}

/// Statistics of the checkpoints a restored job already has, for the log.
pub(crate) fn retained_from(list: &[(u64, CheckpointMetadata)]) -> Vec<(u64, Vec<String>)> {
    list.iter()
        .map(|(id, m)| (*id, m.shared_objects().map(str::to_string).collect()))
        .collect()
}
