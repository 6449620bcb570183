//! The `_metadata` file of a checkpoint.
//!
//! Text, so that a person can read it:
//!
//! ```text
//! WEIR-CHECKPOINT <format version>
//! <JSON of CheckpointMetadata, one line>
//! xxh64 <16 hex digits: the checksum of the JSON line>
//! ```
//!
//! A reader refuses another format version, a missing or wrong checksum and
//! JSON that does not describe a checkpoint: a damaged file is never read as
//! partial state.

use serde::{Deserialize, Serialize};
use std::hash::Hasher;

use crate::{CheckpointError, Result};

/// The version written into every metadata file.
pub const FORMAT_VERSION: u32 = 1;

const MAGIC: &str = "WEIR-CHECKPOINT";

/// Everything needed to restore a job from one checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointMetadata {
    /// The checkpoint's number, increasing within a job.
    pub checkpoint_id: u64,
    /// The job's id (the folder the checkpoint is in).
    pub job_id: String,
    /// `pipeline.name`, or the statement.
    pub job_name: String,
    /// A description of the job graph; a restore into another graph is refused.
    pub graph: String,
    /// When the coordinator triggered it (ms since the epoch).
    pub trigger_time_ms: i64,
    /// From trigger to metadata written.
    pub duration_ms: u64,
    /// Whether some subtask stored in-flight data instead of aligning.
    pub unaligned: bool,
    /// The longest time a subtask held input back to align barriers.
    pub alignment_ms: u64,
    /// Taken after every source ended: restoring it finds nothing left to do.
    pub is_final: bool,
    /// The size of all files the checkpoint needs.
    pub state_bytes: u64,
    /// What was uploaded for this checkpoint (less than `state_bytes` when incremental).
    pub uploaded_bytes: u64,
    /// One entry per subtask that has something to restore.
    pub tasks: Vec<TaskSnapshot>,
    /// A checkpoint (owned by the job, may share files) or a savepoint
    /// (owned by the user, self-contained, canonical state files).
    #[serde(default, rename = "type")]
    pub snapshot_type: SnapshotType,
    /// `pipeline.max-parallelism` of the job: the number of key groups.
    #[serde(default = "default_max_parallelism")]
    pub max_parallelism: usize,
    /// The job's nodes with their stable ids and state shapes; state is
    /// matched to the operators of a restored job by these ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<OperatorInfo>,
}

fn default_max_parallelism() -> usize {
    128
}

/// Whether a snapshot is a checkpoint or a savepoint.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotType {
    /// Taken periodically; the job's own, deleted per retention.
    #[default]
    Checkpoint,
    /// Taken when asked; the user's, kept until disposed.
    Savepoint,
}

/// The backend name of a task whose files are in the canonical form.
pub const CANONICAL_BACKEND: &str = "canonical";

/// What a node of the job graph is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Reads a connector; its state is its position.
    Source,
    /// Transforms rows; aggregates keep keyed state.
    Operator,
    /// Writes a connector; its state is output not yet committed.
    Sink,
}

/// One node of a job as the metadata records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OperatorInfo {
    /// The node's index in the job graph that wrote the snapshot.
    pub node: usize,
    /// Its stable id: derived from what it does and what it reads, not from
    /// its position in the graph, so that a changed query keeps it.
    pub uid: String,
    /// What `EXPLAIN` shows for it.
    pub description: String,
    /// Source, operator or sink.
    pub role: NodeRole,
    /// Number of subtasks.
    pub parallelism: usize,
    /// The shape of its state, part by part (`("keys", "auction: Int64")`);
    /// `None` for nodes without keyed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Vec<(String, String)>>,
}

/// What one subtask stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskSnapshot {
    /// The node's index in the job graph.
    pub node: usize,
    /// The subtask.
    pub subtask: usize,
    /// A source's position (file and offset, generator index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_position: Option<serde_json::Value>,
    /// A sink's pre-committed, not yet committed output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_state: Option<serde_json::Value>,
    /// An operator's operator (non-keyed) state: lists that are split
    /// evenly or broadcast whole (union) when restored at another
    /// parallelism (`[{"name", "mode": "split"|"union", "items": [hex]}]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_state: Option<serde_json::Value>,
    /// The state backend that wrote `files` (`hashmap`, `rocksdb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The operator's state files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRef>,
    /// Data that was in flight to this subtask (unaligned checkpoints).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inflight: Vec<InflightChannel>,
}

/// One stored file of a subtask's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileRef {
    /// Its path in the snapshot directory the backend wrote.
    pub local: String,
    /// Its object, relative to the job's folder.
    pub object: String,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it lives under `shared/` (reused by later checkpoints).
    pub shared: bool,
    /// xxHash64 of its bytes (checkpoints written before checksums were
    /// recorded have none; their files are checked by size only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<u64>,
}

/// The in-flight messages of one input channel, in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InflightChannel {
    /// The channel's index among the subtask's inputs.
    pub channel: usize,
    /// An Arrow IPC stream of the batches, relative to the job's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The messages: batches (read from `object` in order) and watermarks.
    pub items: Vec<InflightItem>,
    /// Size of `object`.
    pub bytes: u64,
    /// xxHash64 of `object`'s bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<u64>,
}

/// One in-flight message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum InflightItem {
    /// The next batch of the IPC stream.
    Batch,
    /// A watermark (ms).
    Watermark(i64),
}

fn checksum(text: &str) -> u64 {
    content_checksum(text.as_bytes())
}

/// The checksum recorded for a state or in-flight file: xxHash64 of its
/// bytes.
pub fn content_checksum(bytes: &[u8]) -> u64 {
    let mut h = twox_hash::XxHash64::with_seed(0);
    h.write(bytes);
    h.finish()
}

impl CheckpointMetadata {
    /// The file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_string(self).map_err(|e| CheckpointError::Corrupt {
            location: format!("chk-{}", self.checkpoint_id),
            reason: format!("cannot encode metadata: {e}"),
        })?;
        Ok(format!(
            "{MAGIC} {FORMAT_VERSION}\n{json}\nxxh64 {:016x}\n",
            checksum(&json)
        )
        .into_bytes())
    }

    /// Reads a metadata file; `location` names it in errors.
    pub fn decode(bytes: &[u8], location: &str) -> Result<Self> {
        let corrupt = |reason: String| CheckpointError::Corrupt {
            location: location.to_string(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not text".into()))?;
        let mut lines = text.split('\n');
        let header = lines.next().unwrap_or_default();
        let version = header
            .strip_prefix(MAGIC)
            .map(str::trim)
            .ok_or_else(|| corrupt("not a Weir checkpoint metadata file".into()))?;
        if version != FORMAT_VERSION.to_string() {
            return Err(corrupt(format!(
                "format version {version}, this Weir reads version {FORMAT_VERSION}"
            )));
        }
        let json = lines
            .next()
            .ok_or_else(|| corrupt("truncated before the metadata".into()))?;
        let sum = lines
            .next()
            .and_then(|l| l.strip_prefix("xxh64 "))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .ok_or_else(|| corrupt("truncated: the checksum is missing".into()))?;
        if sum != checksum(json) {
            return Err(corrupt("checksum mismatch".into()));
        }
        serde_json::from_str(json).map_err(|e| corrupt(format!("bad metadata: {e}")))
    }

    /// The shared objects this checkpoint uses.
    pub fn shared_objects(&self) -> impl Iterator<Item = &str> {
        self.tasks
            .iter()
            .flat_map(|t| t.files.iter())
            .filter(|f| f.shared)
            .map(|f| f.object.as_str())
    }

    /// The task entry of `(node, subtask)`.
    pub fn task(&self, node: usize, subtask: usize) -> Option<&TaskSnapshot> {
        self.tasks
            .iter()
            .find(|t| t.node == node && t.subtask == subtask)
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) fn sample_metadata() -> super::CheckpointMetadata {
        super::tests::sample()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sample() -> CheckpointMetadata {
        CheckpointMetadata {
            checkpoint_id: 7,
            job_id: "j".into(),
            job_name: "name".into(),
            graph: "g".into(),
            trigger_time_ms: 1,
            duration_ms: 2,
            unaligned: true,
            alignment_ms: 3,
            is_final: false,
            state_bytes: 10,
            uploaded_bytes: 4,
            tasks: vec![TaskSnapshot {
                node: 1,
                subtask: 0,
                backend: Some("rocksdb".into()),
                files: vec![FileRef {
                    local: "db/1.sst".into(),
                    object: "shared/op1-0/x-1.sst".into(),
                    size: 10,
                    shared: true,
                    checksum: Some(7),
                }],
                inflight: vec![InflightChannel {
                    channel: 1,
                    object: Some("chk-7/op1-0/inflight-1.arrow".into()),
                    items: vec![InflightItem::Batch, InflightItem::Watermark(5)],
                    bytes: 100,
                    checksum: None,
                }],
                ..Default::default()
            }],
            snapshot_type: SnapshotType::Savepoint,
            max_parallelism: 128,
            operators: vec![OperatorInfo {
                node: 1,
                uid: "WindowAggregate(source[bid])".into(),
                description: "WindowAggregate(...)".into(),
                role: NodeRole::Operator,
                parallelism: 1,
                state: Some(vec![("keys".into(), "auction: Int64".into())]),
            }],
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        let bytes = m.encode().unwrap();
        assert_eq!(CheckpointMetadata::decode(&bytes, "x").unwrap(), m);
        assert_eq!(
            m.shared_objects().collect::<Vec<_>>(),
            ["shared/op1-0/x-1.sst"]
        );
    }

    #[test]
    fn metadata_of_the_first_format_still_reads() {
        // Written before savepoints: no type, operators or max parallelism.
        let json = r#"{"checkpoint_id":3,"job_id":"j","job_name":"n","graph":"g","trigger_time_ms":1,"duration_ms":2,"unaligned":false,"alignment_ms":0,"is_final":false,"state_bytes":0,"uploaded_bytes":0,"tasks":[]}"#;
        let text = format!("WEIR-CHECKPOINT 1\n{json}\nxxh64 {:016x}\n", checksum(json));
        let m = CheckpointMetadata::decode(text.as_bytes(), "x").unwrap();
        assert_eq!(m.snapshot_type, SnapshotType::Checkpoint);
        assert_eq!(m.max_parallelism, 128);
        assert!(m.operators.is_empty());
    }

    #[test]
    fn damage_is_detected() {
        let bytes = sample().encode().unwrap();
        let truncated = &bytes[..bytes.len() - 30];
        let err = CheckpointMetadata::decode(truncated, "x").unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        let mut altered = bytes.clone();
        let i = altered.iter().position(|b| *b == b'7').unwrap();
        altered[i] = b'8';
        let err = CheckpointMetadata::decode(&altered, "x").unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        let other = String::from_utf8(bytes)
            .unwrap()
            .replace("CHECKPOINT 1", "CHECKPOINT 9");
        let err = CheckpointMetadata::decode(other.as_bytes(), "x").unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
    }
}
