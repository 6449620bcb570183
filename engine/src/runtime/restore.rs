//! Restoring a job from a snapshot (savepoint or checkpoint): which node of
//! the snapshot each node of the job takes its state from, the check before
//! the job starts, and the downloads, source positions and sink states of
//! each subtask — redistributed when the parallelism changed.

use std::path::{Path, PathBuf};

use weir_checkpoint::{
    CheckpointMetadata, JobCheckpoints, OperatorInfo, SharedFiles, SnapshotType,
};

use super::checkpoint::decode_inflight;
use crate::config::Config;
use crate::error::{EngineError, Result};
use crate::graph::JobGraph;
use crate::message::Message;

/// Reads the snapshot (savepoint or checkpoint) at `path` and plans its
/// restore into `graph`: which operator gets which state, what is new,
/// incompatible or left unclaimed. This is what `EXPLAIN RESTORE` shows.
pub async fn plan_restore(
    graph: &JobGraph,
    config: &Config,
    path: &str,
) -> Result<weir_checkpoint::RestorePlan> {
    let (_, metadata) = weir_checkpoint::open_snapshot(path, &config.storage_options())
        .await
        .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
    Ok(weir_checkpoint::plan_restore(
        &metadata,
        &graph.operator_infos(),
    ))
}

/// Checks, before a job starts, that `execution.savepoint.path` (when set)
/// can be restored into `graph`: the snapshot is intact, every operator's
/// state fits, and no state is left unclaimed (unless
/// `execution.savepoint.ignore-unclaimed-state`). The job makes the same
/// check when it starts; this lets a statement fail at once.
pub async fn check_restore(graph: &JobGraph, config: &Config) -> Result<()> {
    let Some(path) = config
        .get("execution.savepoint.path")
        .filter(|p| !p.trim().is_empty())
    else {
        return Ok(());
    };
    let (job, metadata) = weir_checkpoint::open_snapshot(&path, &config.storage_options())
        .await
        .map_err(|e| EngineError::Checkpoint(format!("execution.savepoint.path: {e}")))?;
    if metadata.operators.is_empty() {
        return Ok(());
    }
    Restore::plan(
        metadata,
        job,
        &graph.operator_infos(),
        config.max_parallelism(),
        config.bool("execution.savepoint.ignore-unclaimed-state"),
    )
    .map(|_| ())
}

/// What an attempt restores from, and which snapshot node each node of
/// the job takes its state from (matched by stable id).
pub(crate) struct Restore {
    pub metadata: CheckpointMetadata,
    pub job: JobCheckpoints,
    /// For each node of the job: the snapshot's node and its parallelism.
    pub from: Vec<Option<(usize, usize)>>,
    /// The snapshot was written by this very graph at this parallelism.
    pub same_layout: bool,
    /// The job resumes its own latest usable checkpoint (not a snapshot the
    /// user named): sinks take back what later checkpoints committed.
    pub resumed: bool,
}

impl Restore {
    /// Matches `metadata`'s state to the nodes of a job; fails before any
    /// data flows when state is incompatible or unclaimed (unless
    /// `ignore_unclaimed`), and when data that was in flight cannot be put
    /// back (an unaligned checkpoint into a changed or rescaled job).
    pub fn plan(
        metadata: CheckpointMetadata,
        job: JobCheckpoints,
        operators: &[OperatorInfo],
        max_parallelism: usize,
        ignore_unclaimed: bool,
    ) -> Result<(Self, Vec<String>)> {
        let plan = weir_checkpoint::plan_restore(&metadata, operators);
        let warnings = plan
            .check(ignore_unclaimed)
            .map_err(EngineError::Checkpoint)?;
        if !plan.same_layout {
            if metadata.max_parallelism != max_parallelism {
                return Err(EngineError::Checkpoint(format!(
                    "the snapshot was taken with pipeline.max-parallelism = {}, this job has {max_parallelism}: key groups cannot be split differently",
                    metadata.max_parallelism
                )));
            }
            if metadata.tasks.iter().any(|t| !t.inflight.is_empty()) {
                return Err(EngineError::Checkpoint(format!(
                    "checkpoint {} is unaligned (it holds in-flight data), which restores only into the same job at the same parallelism; take a savepoint to change or rescale the job",
                    metadata.checkpoint_id
                )));
            }
        }
        let from = plan
            .nodes
            .iter()
            .map(|(_, fate)| match fate {
                weir_checkpoint::NodeRestore::Restored { from, parallelism } => {
                    Some((*from, *parallelism))
                }
                _ => None,
            })
            .collect();
        Ok((
            Self {
                metadata,
                job,
                from,
                same_layout: plan.same_layout,
                resumed: false,
            },
            warnings,
        ))
    }

    fn old(&self, node: usize) -> Option<(usize, usize)> {
        self.from.get(node).copied().flatten()
    }

    /// Downloads the state that subtask `subtask` of `parallelism` of
    /// `node` restores from: the snapshot subtasks whose key groups overlap
    /// its own, each into a folder under `dir`. `None` when there is none.
    pub async fn download(
        &self,
        node: usize,
        subtask: usize,
        parallelism: usize,
        dir: &Path,
    ) -> Result<Option<Vec<(PathBuf, weir_state::SnapshotFormat)>>> {
        let Some((old, old_parallelism)) = self.old(node) else {
            return Ok(None);
        };
        let maxp = self.metadata.max_parallelism;
        let mine = weir_state::KeyGroupRange::for_subtask(maxp, parallelism, subtask);
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| EngineError::io(format!("clearing '{}'", dir.display()), e))?;
        }
        let mut parts = Vec::new();
        for s in 0..old_parallelism {
            let theirs = weir_state::KeyGroupRange::for_subtask(maxp, old_parallelism, s);
            if theirs.end <= mine.start || mine.end <= theirs.start {
                continue;
            }
            let Some(task) = self.metadata.task(old, s) else {
                continue;
            };
            if task.files.is_empty() {
                continue;
            }
            let format = match task.backend.as_deref() {
                Some(weir_checkpoint::CANONICAL_BACKEND) => weir_state::SnapshotFormat::Canonical,
                Some(name) => weir_state::SnapshotFormat::Native(
                    weir_state::BackendKind::parse(name)
                        .map_err(|e| EngineError::Checkpoint(e.to_string()))?,
                ),
                None => continue,
            };
            let part = dir.join(format!("part-{s}"));
            weir_checkpoint::download_snapshot(&self.job, &task.files, &part)
                .await
                .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
            parts.push((part, format));
        }
        Ok((!parts.is_empty()).then_some(parts))
    }

    /// The position a source subtask resumes from; redistributed by the
    /// connector when the parallelism changed.
    pub fn source_position(
        &self,
        node: usize,
        subtask: usize,
        parallelism: usize,
        connector: &dyn crate::connectors::SourceFactory,
    ) -> Result<Option<serde_json::Value>> {
        let Some((old, old_parallelism)) = self.old(node) else {
            return Ok(None);
        };
        let position = |s: usize| {
            self.metadata
                .task(old, s)
                .and_then(|t| t.source_position.clone())
        };
        if old_parallelism == parallelism {
            return Ok(position(subtask));
        }
        let positions: Vec<_> = (0..old_parallelism).map(position).collect();
        connector.redistribute(&positions, parallelism, subtask)
    }

    /// The operator state subtask `subtask` of `parallelism` of `node`
    /// restores: the old subtasks' lists, redistributed (split evenly or as
    /// a union, per list) when the parallelism changed.
    pub fn operator_state(
        &self,
        node: usize,
        subtask: usize,
        parallelism: usize,
    ) -> Result<Vec<weir_state::OperatorStateSnapshot>> {
        let Some((old, old_parallelism)) = self.old(node) else {
            return Ok(Vec::new());
        };
        let mut per_subtask = Vec::with_capacity(old_parallelism);
        for s in 0..old_parallelism {
            per_subtask.push(
                match self
                    .metadata
                    .task(old, s)
                    .and_then(|t| t.operator_state.as_ref())
                {
                    Some(v) => decode_operator_state(v)?,
                    None => Vec::new(),
                },
            );
        }
        if per_subtask.iter().all(Vec::is_empty) {
            return Ok(Vec::new());
        }
        Ok(weir_state::redistribute(&per_subtask, parallelism)
            .into_iter()
            .nth(subtask)
            .unwrap_or_default())
    }

    /// What the sink subtask commits on recovery: its own pre-committed
    /// output, or, rescaled, that of the old subtasks `s` with
    /// `s % parallelism == subtask`.
    pub fn sink_states(
        &self,
        node: usize,
        subtask: usize,
        parallelism: usize,
    ) -> Vec<serde_json::Value> {
        let Some((old, old_parallelism)) = self.old(node) else {
            return Vec::new();
        };
        (0..old_parallelism)
            .filter(|s| s % parallelism == subtask)
            .filter_map(|s| self.metadata.task(old, s)?.sink_state.clone())
            .filter(|v| !v.is_null())
            .collect()
    }

    /// The in-flight messages stored for `(node, subtask)` (only a job of
    /// the same layout restores an unaligned checkpoint).
    pub async fn inflight(
        &self,
        node: usize,
        subtask: usize,
    ) -> Result<Vec<(usize, Vec<Message>)>> {
        let mut out = Vec::new();
        if let Some(task) = self
            .metadata
            .task(node, subtask)
            .filter(|_| self.same_layout)
        {
            for channel in &task.inflight {
                out.push((channel.channel, decode_inflight(&self.job, channel).await?));
            }
        }
        Ok(out)
    }

    /// Shared files already uploaded by `(node, subtask)`, which its next
    /// incremental checkpoints reuse (only when restoring the job's own
    /// checkpoint at the same layout).
    pub fn shared_files(
        &self,
        node: usize,
        subtask: usize,
        attempt: &str,
        job_id: &str,
    ) -> SharedFiles {
        let mut shared = SharedFiles::new(attempt);
        let own = self.same_layout
            && self.metadata.job_id == job_id
            && self.metadata.snapshot_type == SnapshotType::Checkpoint
            && self
                .metadata
                .tasks
                .iter()
                .all(|t| t.backend.as_deref() != Some(weir_checkpoint::CANONICAL_BACKEND));
        if let Some(task) = self.metadata.task(node, subtask).filter(|_| own) {
            shared.seed(&task.files);
        }
        shared
    }
}

/// Operator state as stored in a checkpoint's metadata: per list its name,
/// mode and items (each item's bytes in hex).
pub(crate) fn encode_operator_state(
    lists: &[weir_state::OperatorStateSnapshot],
) -> serde_json::Value {
    use std::fmt::Write as _;
    let lists: Vec<serde_json::Value> = lists
        .iter()
        .map(|l| {
            let items: Vec<String> = l
                .items
                .iter()
                .map(|item| {
                    let mut hex = String::with_capacity(item.len() * 2);
                    for b in item {
                        let _ = write!(hex, "{b:02x}");
                    }
                    hex
                })
                .collect();
            serde_json::json!({
                "name": l.name,
                "mode": match l.mode {
                    weir_state::Redistribution::SplitEvenly => "split",
                    weir_state::Redistribution::Union => "union",
                },
                "items": items,
            })
        })
        .collect();
    serde_json::Value::Array(lists)
}

fn decode_operator_state(
    value: &serde_json::Value,
) -> Result<Vec<weir_state::OperatorStateSnapshot>> {
    let bad =
        |what: &str| EngineError::Checkpoint(format!("operator state in the metadata: {what}"));
    let lists = value.as_array().ok_or_else(|| bad("not a list"))?;
    lists
        .iter()
        .map(|l| {
            let name = l["name"]
                .as_str()
                .ok_or_else(|| bad("a list without a name"))?;
            let mode = match l["mode"].as_str() {
                Some("split") => weir_state::Redistribution::SplitEvenly,
                Some("union") => weir_state::Redistribution::Union,
                _ => return Err(bad("a list without a known mode")),
            };
            let items = l["items"]
                .as_array()
                .ok_or_else(|| bad("a list without items"))?
                .iter()
                .map(|h| {
                    let h = h
                        .as_str()
                        .filter(|h| h.len() % 2 == 0)
                        .ok_or_else(|| bad("an item that is not hex"))?;
                    (0..h.len())
                        .step_by(2)
                        .map(|i| {
                            u8::from_str_radix(&h[i..i + 2], 16)
                                .map_err(|_| bad("an item that is not hex"))
                        })
                        .collect::<Result<Vec<u8>>>()
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(weir_state::OperatorStateSnapshot {
                name: name.to_string(),
                mode,
                items,
            })
        })
        .collect()
}
