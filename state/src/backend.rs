//! The byte-level contract every state backend fulfils.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StateError};
use crate::key::KeyGroupRange;
use crate::ttl::{Clock, StateTtlConfig, SystemClock};

/// What kind of primitive a state holds; recorded in snapshots so that a
/// restore can check it reads the state it expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    /// One value per key and namespace.
    Value,
    /// A list per key and namespace.
    List,
    /// A map per key and namespace.
    Map,
    /// A value combined by a reduce function.
    Reducing,
    /// An accumulator of an aggregate function.
    Aggregating,
    /// Addressed by the operator itself (the SQL operators' batch layer).
    Raw,
}

impl StateKind {
    /// The name used in snapshot headers.
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
            StateKind::Reducing => "reducing",
            StateKind::Aggregating => "aggregating",
            StateKind::Raw => "raw",
        }
    }

    /// The kind named `name` in a snapshot header.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            StateKind::Value,
            StateKind::List,
            StateKind::Map,
            StateKind::Reducing,
            StateKind::Aggregating,
            StateKind::Raw,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// Declares one state of an operator: its name (unique within the
/// operator), kind and time-to-live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDescriptor {
    /// Unique within the operator; a RocksDB column family of that name.
    pub name: String,
    /// The primitive it holds.
    pub kind: StateKind,
    /// Time-to-live of its entries, if any.
    pub ttl: Option<StateTtlConfig>,
}

impl StateDescriptor {
    /// A state without TTL.
    pub fn new(name: impl Into<String>, kind: StateKind) -> Self {
        Self {
            name: name.into(),
            kind,
            ttl: None,
        }
    }

    /// Gives the state's entries a time-to-live.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// A registered state's handle within one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateId(pub(crate) usize);

/// One change of a write batch: `Some` puts, `None` deletes.
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// Size of a backend's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateStats {
    /// Entries stored (for RocksDB its estimate).
    pub entries: u64,
    /// Bytes of keys and values (for RocksDB: SST files plus memtables).
    pub bytes: u64,
}

/// Called for each entry of a scan with its address and stored value.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<Scan> + 'a;

/// Whether a scan goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// Read the next entry.
    Continue,
    /// Stop here.
    Stop,
}

/// The keyed state of one operator subtask.
///
/// Addresses are byte strings that start with the entry's key group as two
/// big-endian bytes (see [`crate::key`]). Backends are blocking: RocksDB
/// reads the disk. Callers on an async runtime call them from a blocking
/// thread, and batch: [`StateBackend::multi_get`] and
/// [`StateBackend::write`] take many entries at once.
pub trait StateBackend: Send {
    /// `hashmap` or `rocksdb`.
    fn kind(&self) -> BackendKind;

    /// Registers a state, or finds it when it exists (after a restore).
    /// A state restored with another kind is an error.
    fn register(&mut self, descriptor: &StateDescriptor) -> Result<StateId>;

    /// The registered states, by id.
    fn descriptors(&self) -> Vec<StateDescriptor>;

    /// Reads one entry.
    fn get(&mut self, state: StateId, address: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Reads many entries at once; the result is in the order of `addresses`.
    fn multi_get(&mut self, state: StateId, addresses: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>>;

    /// Applies puts and deletes atomically, in order.
    fn write(&mut self, state: StateId, changes: Vec<Change>) -> Result<()>;

    /// Calls `visit` for the entries with `start <= address < end` (no `end`:
    /// to the end), in address order, until it returns [`Scan::Stop`].
    fn scan(
        &mut self,
        state: StateId,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()>;

    /// Deletes the entries with `start <= address < end`.
    fn delete_range(&mut self, state: StateId, start: &[u8], end: Option<&[u8]>) -> Result<()>;

    /// Entries and bytes held.
    fn stats(&self) -> Result<StateStats>;

    /// Processing time for TTL, from the backend's clock.
    fn now_ms(&self) -> i64;

    /// Writes a snapshot into the empty directory `dir`, in the backend's
    /// native form: one canonical file for `hashmap`, a RocksDB checkpoint
    /// (hard links to the SST files) for `rocksdb`. See
    /// [`crate::restore_backend`] for the way back.
    fn snapshot(&mut self, dir: &Path) -> Result<SnapshotInfo>;

    /// Writes every entry of `range` in the canonical, backend-independent
    /// form (see [`crate::snapshot`]); returns the number of entries.
    fn export(&mut self, out: &mut dyn Write, range: KeyGroupRange) -> Result<u64> {
        crate::snapshot::export_backend(self, out, range)
    }

    /// Reads entries of `range` from the canonical form, registering the
    /// states it names; entries of other key groups are skipped.
    fn import(&mut self, input: &mut dyn Read, range: KeyGroupRange) -> Result<u64> {
        crate::snapshot::import_backend(self, input, range)
    }
}

/// What a native snapshot wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Which backend wrote it.
    pub backend: BackendKind,
    /// The files, relative to the snapshot directory.
    pub files: Vec<String>,
    /// Their total size.
    pub bytes: u64,
}

/// The state backends Weir has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// In memory.
    HashMap,
    /// On local disk, in RocksDB.
    RocksDb,
}

impl BackendKind {
    /// The backends' names.
    pub const NAMES: &'static [&'static str] = &["hashmap", "rocksdb"];

    /// Every value `state.backend.type` accepts: the names, and Flink's older
    /// names for the in-memory backend (`heap`, `filesystem`, `jobmanager`).
    pub const ACCEPTED: &'static [&'static str] =
        &["hashmap", "rocksdb", "heap", "filesystem", "jobmanager"];

    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::HashMap => "hashmap",
            BackendKind::RocksDb => "rocksdb",
        }
    }

    /// Parses a configuration value (Flink's older names `heap`,
    /// `filesystem` and `jobmanager` mean `hashmap`).
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "hashmap" | "heap" | "filesystem" | "jobmanager" => Ok(BackendKind::HashMap),
            "rocksdb" => Ok(BackendKind::RocksDb),
            other => Err(StateError::Config(format!(
                "unknown state backend '{other}' for 'state.backend.type'; accepted: {}",
                Self::NAMES.join(", ")
            ))),
        }
    }

    /// Whether its calls may block on disk.
    pub fn is_blocking(self) -> bool {
        matches!(self, BackendKind::RocksDb)
    }
}

/// How to create the backends of a job's subtasks.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// Which backend.
    pub kind: BackendKind,
    /// Where RocksDB instances live (`state.backend.rocksdb.localdir`);
    /// `None`: a temporary directory removed when the backend is dropped.
    pub local_dir: Option<PathBuf>,
    /// RocksDB block cache per instance, in bytes.
    pub block_cache_bytes: usize,
    /// RocksDB write buffer (memtable) size per column family, in bytes.
    pub write_buffer_bytes: usize,
    /// Processing time for TTL.
    pub clock: Arc<dyn Clock>,
}

impl BackendConfig {
    /// A configuration for `kind` with defaults.
    pub fn new(kind: BackendKind) -> Self {
        Self {
            kind,
            local_dir: None,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 32 << 20,
            clock: Arc::new(SystemClock),
        }
    }

    /// Checks the configuration before a job starts: the local directory
    /// must be creatable and writable.
    pub fn validate(&self) -> Result<()> {
        if self.kind != BackendKind::RocksDb {
            return Ok(());
        }
        let Some(dir) = &self.local_dir else {
            return Ok(());
        };
        let fail = |e: std::io::Error| {
            StateError::Config(format!(
                "'state.backend.rocksdb.localdir' = '{}' is not usable: {e}",
                dir.display()
            ))
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let probe = dir.join(format!(".weir-probe-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(fail)?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }

    /// Creates the backend of one operator subtask; `name` identifies it
    /// (job, operator, subtask) and names its RocksDB directory.
    pub fn create(&self, name: &str) -> Result<Box<dyn StateBackend>> {
        match self.kind {
            BackendKind::HashMap => Ok(Box::new(crate::hashmap::HashMapBackend::new(
                self.clock.clone(),
            ))),
            BackendKind::RocksDb => Ok(Box::new(crate::rocksdb::RocksDbBackend::open(
                self, name, None,
            )?)),
        }
    }
}
