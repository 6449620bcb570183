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
