//! Where Weir's checkpoints are kept, and in what form.
//!
//! A checkpoint location is an `object_store` URL (`file://` or a plain
//! path, `memory://`, `s3://`, `gs://`, `az://`). Under it each job has a
//! folder named by its id:
//!
//! ```text
//! <dir>/<job-id>/chk-<n>/_metadata          versioned, checksummed (see [`metadata`])
//! <dir>/<job-id>/chk-<n>/<task>/...         files owned by one checkpoint
//! <dir>/<job-id>/shared/<task>/...          files reused by incremental checkpoints
//! ```
//!
//! The metadata file is written last, with one `put`, so a checkpoint exists
//! only once it is complete. Files under `shared/` are counted by the
//! metadata of the retained checkpoints that list them, and deleted when
//! none does.

#![warn(missing_docs)]

pub mod metadata;
pub mod restore;
pub mod retention;
pub mod storage;
pub mod upload;

pub use metadata::{
    content_checksum, CheckpointMetadata, FileRef, InflightChannel, InflightItem, NodeRole,
    OperatorInfo, SnapshotType, TaskSnapshot, CANONICAL_BACKEND, FORMAT_VERSION,
};
pub use restore::{plan_restore, NodeRestore, RestorePlan};
pub use storage::{
    dispose_savepoint, open_snapshot, parse_checkpoint_url, parse_snapshot_url, random_u64,
    savepoint_folder_name, CheckpointStorage, JobCheckpoints, SnapshotPath, StorageOptions,
};
pub use upload::SharedFiles;
pub use upload::{download_snapshot, upload_snapshot};

/// What can go wrong reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The location or its options are not usable.
    #[error("checkpoint storage: {0}")]
    Config(String),
    /// The object store failed.
    #[error("checkpoint storage '{location}': {}", without_user_info(&source.to_string()))]
    Store {
        /// The object's path (no credentials).
        location: String,
        /// What the store said.
        source: object_store::Error,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// There is no savepoint or checkpoint where the user pointed.
    #[error("{0}")]
    NotFound(String),
    /// A stored checkpoint is unreadable: truncated, altered or of another format.
    #[error("checkpoint {location} is corrupt: {reason}")]
    Corrupt {
        /// Where it is.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, CheckpointError>;

/// `text` with the user information of every URL in it (`http://user:pass@`)
/// masked: a store's errors quote the URLs it requested, endpoint included.
pub fn without_user_info(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(user_end) => {
                out.push_str("******@");
                rest = &tail[user_end + 1..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod user_info_tests {
    use super::without_user_info;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            without_user_info("GET http://admin:hunter2@127.0.0.1:9000/b?x=1 failed"),
            "GET http://******@127.0.0.1:9000/b?x=1 failed"
        );
        assert_eq!(
            without_user_info("s3://bucket/path and http://host/x"),
            "s3://bucket/path and http://host/x"
        );
    }
}
