//! The checkpoint coordinator and the subtasks' side of checkpoints.
//!
//! The coordinator triggers checkpoint `n` at the sources; each source
//! records its position and announces barrier `n` downstream. Operators
//! snapshot when their gate says so (aligned or not), forward the barrier,
//! and upload their files in the background; sinks pre-commit. Every task
//! acknowledges with what it stored. When all have, the coordinator writes
//! the metadata (the checkpoint is now complete), tells the sinks to commit,
//! and deletes checkpoints beyond the number retained.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use tokio::sync::{mpsc, oneshot, watch};
use weir_checkpoint::{
    CheckpointMetadata, InflightChannel, InflightItem, JobCheckpoints, OperatorInfo, SharedFiles,
    SnapshotType, TaskSnapshot,
};

use super::schedule::{Action, Event, Rules, Schedule};
use crate::config::CheckpointSettings;
use crate::error::{EngineError, Result};
use crate::message::{BarrierKind, Message};

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
    /// Checkpoint, final checkpoint, savepoint, or stop with savepoint
    /// (then the source ends after the barrier).
    pub kind: BarrierKind,
}

/// A user's request for a savepoint, sent to the coordinator.
pub(crate) struct SavepointRequest {
    /// The directory the savepoint folder is created in; `None` (with
    /// `stop`) for a final checkpoint in the job's own checkpoint folder.
    pub target: Option<String>,
    /// Stop the job after it (without draining).
    pub stop: bool,
    /// With `stop`: send the end-of-time watermark first, firing every window.
    pub drain: bool,
    /// The savepoint's path, or why it failed.
    pub reply: oneshot::Sender<Result<String>>,
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
    /// A savepoint (asked for by a user) rather than a periodic checkpoint.
    pub savepoint: bool,
    /// Why it failed.
    pub failure: Option<String>,
    /// The final checkpoint of a bounded job.
    pub is_final: bool,
    /// A completed checkpoint that retention (`num-retained`) deleted since.
    pub discarded: bool,
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
    /// The latest checkpoint that failed (declined, timed out).
    pub aborted: watch::Receiver<u64>,
    /// Set when the attempt fails: tasks waiting for a checkpoint give up.
    pub failed: Arc<std::sync::atomic::AtomicBool>,
    /// Where each savepoint in progress goes, by id.
    pub savepoints: SavepointTargets,
}

/// The folders of the savepoints in progress, by id.
pub(crate) type SavepointTargets = Arc<Mutex<HashMap<u64, JobCheckpoints>>>;

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
    /// An operator's operator state (see [`super::restore::encode_operator_state`]).
    pub operator_state: Option<serde_json::Value>,
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
        // A savepoint goes to its own folder, whole and in canonical form.
        let savepoint = self
            .savepoints
            .lock()
            .ok()
            .and_then(|s| s.get(&id).cloned());
        let (job, folder, incremental) = match savepoint {
            Some(target) => (target, String::new(), false),
            None => (
                self.job.clone(),
                weir_checkpoint::storage::checkpoint_folder(id),
                self.incremental,
            ),
        };
        let canonical = folder.is_empty();
        let handle = tokio::spawn(async move {
            let mut tasks = Vec::new();
            let (mut uploaded, mut total) = (0, 0);
            for s in snapshots {
                let mut task = TaskSnapshot {
                    node: s.node,
                    subtask: s.subtask,
                    sink_state: s.sink_state.clone(),
                    operator_state: s.operator_state.clone(),
                    ..Default::default()
                };
                if let Some(state) = &s.state {
                    let mut shared = state.shared.lock().await;
                    let name = format!("op{}-{}", s.node, s.subtask);
                    let (files, up) = weir_checkpoint::upload_snapshot(
                        &job,
                        &folder,
                        &name,
                        &state.dir,
                        &state.info.files,
                        incremental.then_some(&mut *shared),
                    )
                    .await
                    .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
                    uploaded += up;
                    total += state.info.bytes;
                    task.backend = Some(if canonical {
                        weir_checkpoint::CANONICAL_BACKEND.to_string()
                    } else {
                        state.info.backend.name().to_string()
                    });
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
                        let checksum = weir_checkpoint::content_checksum(&bytes);
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
                            checksum: has_batches.then_some(checksum),
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
            if channel
                .checksum
                .is_some_and(|c| c != weir_checkpoint::content_checksum(&bytes))
            {
                return Err(EngineError::Checkpoint(format!(
                    "in-flight data '{object}' does not match its checksum in the metadata"
                )));
            }
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

/// Where a savepoint in progress goes, and who waits for it.
struct SavepointTarget {
    job: JobCheckpoints,
    reply: Option<oneshot::Sender<Result<String>>>,
}

/// What the coordinator gathers for a running checkpoint.
struct Running {
    trigger_ms: i64,
    started: Instant,
    kind: BarrierKind,
    tasks: Vec<TaskSnapshot>,
    uploaded: u64,
    state_bytes: u64,
    unaligned: bool,
    alignment: Duration,
    savepoint: Option<SavepointTarget>,
    /// Who waits for a stop with a final checkpoint.
    stop_reply: Option<oneshot::Sender<Result<String>>>,
    /// Where it was written, once it was.
    path: Option<String>,
    /// The shared files its metadata lists.
    shared: Vec<String>,
}

/// A user's request between its arrival and its trigger.
enum PendingRequest {
    Savepoint(SavepointTarget),
    Stop(oneshot::Sender<Result<String>>),
}

impl PendingRequest {
    fn refuse(self, reason: String, savepoints: &SavepointTargets) {
        let reply = match self {
            PendingRequest::Savepoint(mut target) => {
                if let Ok(mut map) = savepoints.lock() {
                    map.retain(|_, j| j.url() != target.job.url());
                }
                target.reply.take()
            }
            PendingRequest::Stop(reply) => Some(reply),
        };
        if let Some(reply) = reply {
            let _ = reply.send(Err(EngineError::Checkpoint(reason)));
        }
    }
}

/// Drives the checkpoints of one attempt of a job.
pub(crate) struct Coordinator {
    pub settings: CheckpointSettings,
    pub job: JobCheckpoints,
    pub job_id: String,
    pub job_name: String,
    pub graph: String,
    /// The job's nodes with their stable ids, recorded in every snapshot.
    pub operators: Vec<OperatorInfo>,
    pub max_parallelism: usize,
    /// Tasks that acknowledge each checkpoint.
    pub expected_acks: usize,
    pub sources: Vec<std::sync::mpsc::Sender<Trigger>>,
    pub events: mpsc::UnboundedReceiver<ToCoordinator>,
    /// Savepoints asked for through the job's handle (kept across attempts).
    pub requests: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<SavepointRequest>>>,
    pub savepoints: SavepointTargets,
    pub completed: watch::Sender<u64>,
    /// Tells operators that a checkpoint failed.
    pub aborted: watch::Sender<u64>,
    pub next_id: u64,
    /// Completed checkpoints kept, oldest first, with their shared files.
    pub retained: Vec<(u64, Vec<String>)>,
    pub stats: StatsLog,
    /// Tells the job to fail (too many failed checkpoints).
    pub fail: mpsc::UnboundedSender<EngineError>,
}

impl Coordinator {
    /// Runs until the final checkpoint (or the savepoint of a stop)
    /// completed, or the attempt ends. The decisions are the
    /// [`Schedule`]'s; this loop turns what happens into its events and
    /// carries out its actions.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let requests = self.requests.clone();
        let mut requests = requests.lock().await;
        let rules = Rules {
            interval: self.settings.periodic.then_some(self.settings.interval),
            timeout: self.settings.timeout,
            min_pause: self.settings.min_pause,
            max_concurrent: self.settings.max_concurrent,
            tolerable_failures: self.settings.tolerable_failures,
            sources: self.sources.len(),
            expected_acks: self.expected_acks,
        };
        let mut schedule = Schedule::new(rules, self.next_id, Instant::now());
        let mut running: HashMap<u64, Running> = HashMap::new();
        // Fine enough for the interval and for timeouts.
        let every =
            (self.settings.interval / 5).clamp(Duration::from_millis(1), Duration::from_millis(50));
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut request = None;
            let event = tokio::select! {
                _ = stop.changed() => return,
                Some(r) = requests.recv() => match self.prepare(r, schedule.next_id()) {
                    Some((kind, pending)) => {
                        request = Some(pending);
                        Event::Request { kind }
                    }
                    None => continue,
                },
                _ = ticker.tick() => Event::Tick { periodic: true },
                event = self.events.recv() => match event {
                    None => return,
                    Some(ToCoordinator::SourceFinished) => Event::SourceFinished,
                    Some(ToCoordinator::Decline { id, reason }) => Event::Decline { id, reason },
                    Some(ToCoordinator::Ack { id, tasks, uploaded, state_bytes, unaligned, alignment }) => {
                        if let Some(r) = running.get_mut(&id) {
                            r.tasks.extend(tasks);
                            r.uploaded += uploaded;
                            r.state_bytes += state_bytes;
                            r.unaligned |= unaligned;
                            r.alignment = r.alignment.max(alignment);
                        }
                        Event::Ack { id }
                    }
                },
            };
            if self.act(&mut schedule, &mut running, event, request).await {
                return;
            }
        }
    }

    /// Carries out what `event` makes the schedule decide (and what the
    /// results of that make it decide next); `true` once the coordinator
    /// is done (the job ends, or must fail).
    async fn act(
        &mut self,
        schedule: &mut Schedule,
        running: &mut HashMap<u64, Running>,
        event: Event,
        mut request: Option<PendingRequest>,
    ) -> bool {
        let mut events = std::collections::VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            for action in schedule.handle(event, Instant::now()) {
                match action {
                    Action::Trigger { id, kind } => {
                        let (savepoint, stop_reply) = match request.take() {
                            Some(PendingRequest::Savepoint(target)) => (Some(target), None),
                            Some(PendingRequest::Stop(reply)) => (None, Some(reply)),
                            None => (None, None),
                        };
                        running.insert(
                            id,
                            Running {
                                trigger_ms: now_ms(),
                                started: Instant::now(),
                                kind,
                                tasks: Vec::new(),
                                uploaded: 0,
                                state_bytes: 0,
                                unaligned: false,
                                alignment: Duration::ZERO,
                                savepoint,
                                stop_reply,
                                path: None,
                                shared: Vec::new(),
                            },
                        );
                        tracing::debug!(checkpoint = id, ?kind, "triggering checkpoint");
                        for s in &self.sources {
                            let _ = s.send(Trigger { id, kind });
                        }
                    }
                    Action::Complete { id } => {
                        let result = match running.get_mut(&id) {
                            Some(r) => self.write_metadata(id, r).await,
                            None => Err("no record of the checkpoint".to_string()),
                        };
                        events.push_back(Event::Written { id, result });
                    }
                    Action::Completed { id } => {
                        if let Some(r) = running.remove(&id) {
                            self.completed(id, r).await;
                        }
                    }
                    Action::Abort {
                        id,
                        reason,
                        fail_job,
                    } => {
                        if let Some(r) = running.remove(&id) {
                            self.failed(id, r, reason).await;
                        }
                        if let Some(why) = fail_job {
                            let _ = self.fail.send(EngineError::Checkpoint(why));
                            return true;
                        }
                    }
                    Action::Subsumed { id } => {
                        if let Some(r) = running.remove(&id) {
                            self.record_failure(id, &r, "subsumed by a newer checkpoint".into());
                        }
                    }
                    Action::Finish => return true,
                    Action::Refuse { reason } => {
                        if let Some(pending) = request.take() {
                            pending.refuse(reason, &self.savepoints);
                        }
                    }
                    Action::AlreadyEnding => {
                        // A graceful stop of a job that is ending anyway:
                        // its end is what the caller waits for.
                        if let Some(PendingRequest::Stop(reply)) = request.take() {
                            let _ = reply.send(Ok(String::new()));
                        }
                    }
                }
            }
        }
        false
    }

    /// Turns a user's request into the kind of barrier it needs, with the
    /// savepoint's folder ready (registered for the tasks under `next_id`);
    /// `None` when it cannot start (a bad directory), answered at once —
    /// the job stays running and controllable.
    fn prepare(
        &self,
        request: SavepointRequest,
        next_id: u64,
    ) -> Option<(BarrierKind, PendingRequest)> {
        let Some(target) = &request.target else {
            if !request.stop {
                let _ = request.reply.send(Err(EngineError::Internal(
                    "a checkpoint on request is only taken to stop the job".into(),
                )));
                return None;
            }
            return Some((
                BarrierKind::StopCheckpoint,
                PendingRequest::Stop(request.reply),
            ));
        };
        let storage = match weir_checkpoint::CheckpointStorage::open(target, &self.settings.storage)
        {
            Ok(s) => s,
            Err(e) => {
                let _ = request.reply.send(Err(EngineError::Config(format!(
                    "savepoint directory: {e}"
                ))));
                return None;
            }
        };
        let target = storage.job(&weir_checkpoint::savepoint_folder_name(&self.job_id));
        if let Ok(mut map) = self.savepoints.lock() {
            map.insert(next_id, target.clone());
        }
        let kind = if request.stop && request.drain {
            BarrierKind::DrainSavepoint
        } else if request.stop {
            BarrierKind::StopSavepoint
        } else {
            BarrierKind::Savepoint
        };
        Some((
            kind,
            PendingRequest::Savepoint(SavepointTarget {
                job: target,
                reply: Some(request.reply),
            }),
        ))
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
                savepoint: r.savepoint.is_some(),
                failure: Some(reason),
                is_final: r.kind == BarrierKind::Final,
                discarded: false,
            });
        }
    }

    /// Records a failed checkpoint, removes its files and answers who
    /// waits for it (whether the job fails is the schedule's decision).
    async fn failed(&mut self, id: u64, mut r: Running, reason: String) {
        self.record_failure(id, &r, reason.clone());
        self.aborted.send_if_modified(|latest| {
            let newer = id > *latest;
            if newer {
                *latest = id;
            }
            newer
        });
        if let Some(mut savepoint) = r.savepoint {
            // A failed savepoint leaves nothing behind.
            tracing::warn!(target: crate::USER, "Savepoint {id} failed: {reason}");
            if let Ok(mut map) = self.savepoints.lock() {
                map.remove(&id);
            }
            let _ = savepoint.job.delete_job().await;
            if let Some(reply) = savepoint.reply.take() {
                let _ = reply.send(Err(EngineError::Checkpoint(format!(
                    "savepoint failed: {reason}"
                ))));
            }
            return;
        }
        tracing::warn!(target: crate::USER, "Checkpoint {id} failed: {reason}");
        let _ = self.job.delete_checkpoint(id).await;
        if let Some(reply) = r.stop_reply.take() {
            let _ = reply.send(Err(EngineError::Checkpoint(format!(
                "the final checkpoint of the stop failed: {reason}"
            ))));
        }
    }

    /// Writes checkpoint `id`'s metadata (the checkpoint is complete once
    /// it is there); its path, or why it could not be written.
    async fn write_metadata(
        &mut self,
        id: u64,
        r: &mut Running,
    ) -> std::result::Result<(), String> {
        let mut tasks = std::mem::take(&mut r.tasks);
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
            is_final: r.kind == BarrierKind::Final,
            state_bytes: r.state_bytes,
            uploaded_bytes: r.uploaded,
            tasks,
            snapshot_type: if r.savepoint.is_some() {
                SnapshotType::Savepoint
            } else {
                SnapshotType::Checkpoint
            },
            max_parallelism: self.max_parallelism,
            operators: self.operators.clone(),
        };
        let path = match &r.savepoint {
            Some(savepoint) => {
                let written = savepoint.job.write_savepoint_metadata(&metadata).await;
                if let Ok(mut map) = self.savepoints.lock() {
                    map.remove(&id);
                }
                written.map_err(|e| e.to_string())?;
                savepoint.job.url().to_string()
            }
            None => {
                self.job
                    .write_metadata(&metadata)
                    .await
                    .map_err(|e| e.to_string())?;
                self.job.checkpoint_url(id)
            }
        };
        r.shared = metadata
            .shared_objects()
            .map(str::to_string)
            .collect::<Vec<_>>();
        r.path = Some(path);
        Ok(())
    }

    /// Checkpoint `id` is complete: record it, let the sinks commit, prune
    /// old checkpoints, answer who waits for it.
    async fn completed(&mut self, id: u64, mut r: Running) {
        let path = r.path.clone().unwrap_or_default();
        let duration = r.started.elapsed();
        tracing::info!(
            checkpoint = id,
            savepoint = r.savepoint.is_some(),
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
                path: Some(path.clone()),
                savepoint: r.savepoint.is_some(),
                failure: None,
                is_final: r.kind == BarrierKind::Final,
                discarded: false,
            });
        }
        // Sinks commit what they pre-committed up to here.
        let _ = self.completed.send(id);
        if let Some(mut savepoint) = r.savepoint.take() {
            if let Some(reply) = savepoint.reply.take() {
                let _ = reply.send(Ok(path));
            }
            return;
        }
        self.retained.push((id, std::mem::take(&mut r.shared)));
        self.prune().await;
        if let Some(reply) = r.stop_reply.take() {
            let _ = reply.send(Ok(path));
        }
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
        if let Ok(mut log) = self.stats.lock() {
            for c in log.iter_mut() {
                if !c.savepoint && c.status == "COMPLETED" && plan.checkpoints.contains(&c.id) {
                    c.discarded = true;
                }
            }
        }
    }
}

/// Statistics of the checkpoints a restored job already has, for the log.
pub(crate) fn retained_from(list: &[(u64, CheckpointMetadata)]) -> Vec<(u64, Vec<String>)> {
    list.iter()
        .map(|(id, m)| (*id, m.shared_objects().map(str::to_string).collect()))
        .collect()
}
