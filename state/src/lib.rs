//! Weir's state: what operators remember between records, kept in a
//! pluggable backend and snapshottable for checkpoints.
//!
//! - [`backend`]: the byte-level [`StateBackend`] contract, state
//!   descriptors, [`BackendConfig`] (which backend, where, how big).
//! - [`hashmap`] and [`rocksdb`]: the two backends.
//! - [`keyed`]: the typed primitives — [`ValueState`], [`ListState`],
//!   [`MapState`], [`ReducingState`], [`AggregatingState`] — scoped to the
//!   current key and a namespace.
//! - [`operator`]: operator (non-keyed) list state and its redistribution.
//! - [`ttl`]: time-to-live with Flink's options, and clocks.
//! - [`key`]: key groups and the address layout of keyed entries.
//! - [`codec`]: the stable, versioned value encoding.
//! - [`snapshot`]: the canonical snapshot format (hashmap snapshots,
//!   export/import between backends).
//!
//! Nothing here knows about SQL or checkpoints; the engine's operators and
//! the checkpoint coordinator build on it.
#![warn(missing_docs)]

pub mod backend;
pub mod codec;
mod error;
pub mod hashmap;
pub mod key;
pub mod keyed;
pub mod operator;
pub mod rocksdb;
pub mod snapshot;
pub mod ttl;

use std::path::Path;

pub use backend::{
    BackendConfig, BackendKind, Change, Scan, SnapshotInfo, StateBackend, StateDescriptor, StateId,
    StateKind, StateStats,
};
pub use codec::StateCodec;
pub use error::{Result, StateError};
pub use hashmap::HashMapBackend;
pub use key::KeyGroupRange;
pub use keyed::{
    AggregateFunction, AggregatingState, KeyedState, ListState, MapState, ReducingState, ValueState,
};
pub use operator::{redistribute, OperatorListState, OperatorStateSnapshot, Redistribution};
pub use rocksdb::RocksDbBackend;
pub use ttl::{Clock, ManualClock, StateTtlConfig, StateVisibility, SystemClock, UpdateType};

/// The form a stored snapshot folder is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotFormat {
    /// The canonical, backend-independent file [`hashmap::SNAPSHOT_FILE`]
    /// (savepoints; `hashmap` snapshots are in it too).
    Canonical,
    /// A backend's native snapshot.
    Native(BackendKind),
}

/// Writes every entry of `backend` in the canonical form into the empty
/// directory `dir` (one file, [`hashmap::SNAPSHOT_FILE`]): the form of a
/// savepoint, which any backend restores at any parallelism.
pub fn write_canonical(backend: &mut dyn StateBackend, dir: &Path) -> Result<SnapshotInfo> {
    let path = dir.join(hashmap::SNAPSHOT_FILE);
    let file = std::fs::File::create(&path).map_err(|e| StateError::io(&path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    backend.export(&mut out, KeyGroupRange::all(key::MAX_KEY_GROUPS))?;
    let file = out
        .into_inner()
        .map_err(|e| StateError::io(&path, e.into_error()))?;
    file.sync_all().map_err(|e| StateError::io(&path, e))?;
    let bytes = file.metadata().map_err(|e| StateError::io(&path, e))?.len();
    Ok(SnapshotInfo {
        backend: backend.kind(),
        files: vec![hashmap::SNAPSHOT_FILE.to_string()],
        bytes,
    })
}

/// Restores a subtask's backend from several snapshot folders — the
/// subtasks of an earlier run whose key groups overlap `range`, in any
/// backend's form — keeping only the key groups of `range`. This is how a
/// job changes parallelism or backend: native snapshots of another backend
/// are opened with that backend and copied over through the canonical form.
pub fn restore_merged(
    config: &BackendConfig,
    name: &str,
    parts: &[(std::path::PathBuf, SnapshotFormat)],
    range: KeyGroupRange,
) -> Result<Box<dyn StateBackend>> {
    if let [(dir, SnapshotFormat::Native(kind))] = parts {
        if *kind == config.kind {
            return restore_backend(config, name, dir, range);
        }
    }
    let mut backend = config.create(name)?;
    for (i, (dir, format)) in parts.iter().enumerate() {
        let canonical = dir.join(hashmap::SNAPSHOT_FILE);
        match format {
            SnapshotFormat::Canonical | SnapshotFormat::Native(BackendKind::HashMap) => {
                let file =
                    std::fs::File::open(&canonical).map_err(|e| StateError::io(&canonical, e))?;
                backend.import(&mut std::io::BufReader::new(file), range)?;
            }
            SnapshotFormat::Native(kind) => {
                let mut other = BackendConfig::new(*kind);
                other.local_dir = config.local_dir.clone();
                other.clock = config.clock.clone();
                let mut source = restore_backend(&other, &format!("{name}-part{i}"), dir, range)?;
                let converted = dir.join("converted.snap");
                {
                    let file = std::fs::File::create(&converted)
                        .map_err(|e| StateError::io(&converted, e))?;
                    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
                    source.export(&mut out, range)?;
                    std::io::Write::flush(&mut out).map_err(|e| StateError::io(&converted, e))?;
                }
                drop(source);
                let file =
                    std::fs::File::open(&converted).map_err(|e| StateError::io(&converted, e))?;
                backend.import(&mut std::io::BufReader::new(file), range)?;
                let _ = std::fs::remove_file(&converted);
            }
        }
    }
    Ok(backend)
}

/// Restores a subtask's backend from a native snapshot directory written by
/// [`StateBackend::snapshot`], keeping the key groups of `range` (another
/// range than the writer's when the job was rescaled). The snapshot's
/// backend must be the configured one; to move state between backends, use
/// [`StateBackend::export`] and [`StateBackend::import`].
pub fn restore_backend(
    config: &BackendConfig,
    name: &str,
    snapshot: &Path,
    range: KeyGroupRange,
) -> Result<Box<dyn StateBackend>> {
    match config.kind {
        BackendKind::HashMap => {
            let path = snapshot.join(hashmap::SNAPSHOT_FILE);
            let file = std::fs::File::open(&path).map_err(|e| StateError::io(&path, e))?;
            let mut backend = HashMapBackend::new(config.clock.clone());
            backend.import(&mut std::io::BufReader::new(file), range)?;
            Ok(Box::new(backend))
        }
        BackendKind::RocksDb => Ok(Box::new(RocksDbBackend::open(
            config,
            name,
            Some((snapshot, range)),
        )?)),
    }
}
