//! The `rocksdb` backend: one RocksDB instance per operator subtask, a
//! column family per state, state larger than memory.
//!
//! Writes skip RocksDB's write-ahead log: durability comes from snapshots
//! (checkpoints), which flush the memtables first. A snapshot is a RocksDB
//! checkpoint — hard links to the immutable SST files — so an incremental
//! checkpoint can upload only the files it has not uploaded before.
//! TTL clean-up in compaction is a compaction filter on each column family
//! that reads the entry's time stamp.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rocksdb::compaction_filter::Decision;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBWithThreadMode, Options, ReadOptions,
    SingleThreaded, WriteBatch, WriteOptions,
};

use crate::backend::{
    BackendConfig, BackendKind, Change, Scan, SnapshotInfo, StateBackend, StateDescriptor, StateId,
    StateKind, StateStats,
};
use crate::error::{Result, StateError};
use crate::hashmap::check_same_kind;
use crate::key::KeyGroupRange;
use crate::ttl::{stored_expired, Clock, StateTtlConfig};

type Db = DBWithThreadMode<SingleThreaded>;

/// Where a snapshot keeps the RocksDB checkpoint, inside its directory.
pub const SNAPSHOT_DB_DIR: &str = "db";
/// The key, in the default column family, of the registered states.
const STATES_KEY: &[u8] = b"weir.states";
/// Past every address: addresses start with a key group below 0x8000.
const END_OF_KEYS: &[u8] = &[0xff];

type SharedTtl = Arc<RwLock<Option<StateTtlConfig>>>;

/// Keyed state in a RocksDB instance of its own.
pub struct RocksDbBackend {
    db: Option<Db>,
    /// The instance's working directory, removed when it is dropped.
    dir: PathBuf,
    states: Vec<StateDescriptor>,
    ttls: HashMap<String, SharedTtl>,
    clock: Arc<dyn Clock>,
    cache: Cache,
    write_buffer_bytes: usize,
    write_options: WriteOptions,
    /// Options of column families created after opening: RocksDB keeps
    /// pointers into them (the compaction filter) for the instance's life.
    cf_options: Vec<Options>,
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl RocksDbBackend {
    /// Opens a fresh instance for `name` under the configured local
    /// directory; with `restore_from`, starts from the RocksDB checkpoint in
    /// that snapshot directory, keeping the key groups of `range` only.
    pub fn open(
        config: &BackendConfig,
        name: &str,
        restore_from: Option<(&Path, KeyGroupRange)>,
    ) -> Result<Self> {
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let leaf = format!("{}-{}-{n}", sanitize(name), std::process::id());
        // The instance is a working copy: what must survive a failure goes
        // into snapshots, so its directory is removed when it is dropped.
        let base = config
            .local_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("weir-rocksdb"));
        let dir = base.join(leaf);
        remove_stale_instances(&base, &sanitize(name));
        tracing::debug!(path = %dir.display(), "opening RocksDB state backend");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| StateError::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| {
            StateError::Config(format!(
                "cannot create the RocksDB directory {} (state.backend.rocksdb.localdir): {e}",
                dir.display()
            ))
        })?;
        if let Some((snapshot, _)) = restore_from {
            copy_dir(&snapshot.join(SNAPSHOT_DB_DIR), &dir)?;
        }
        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        let mut backend = Self {
            db: None,
            dir,
            states: Vec::new(),
            ttls: HashMap::new(),
            clock: config.clock.clone(),
            cache,
            write_buffer_bytes: config.write_buffer_bytes,
            write_options: {
                let mut w = WriteOptions::default();
                w.disable_wal(true);
                w
            },
            cf_options: Vec::new(),
        };
        backend.open_db()?;
        if let Some((_, range)) = restore_from {
            backend.states = backend.stored_states()?;
            backend.clip(range)?;
        }
        Ok(backend)
    }

    fn cf_options(&mut self, name: &str) -> Options {
        let mut opts = Options::default();
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&self.cache);
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        opts.set_write_buffer_size(self.write_buffer_bytes);
        opts.set_max_write_buffer_number(2);
        let ttl = self.ttls.entry(name.to_string()).or_default().clone();
        let clock = self.clock.clone();
        opts.set_compaction_filter("weir-ttl", move |_level: u32, _key: &[u8], value: &[u8]| {
            let ttl = ttl.read().ok().and_then(|t| t.clone());
            match ttl {
                Some(ttl)
                    if ttl.cleanup_compaction && stored_expired(&ttl, value, clock.now_ms()) =>
                {
                    Decision::Remove
                }
                _ => Decision::Keep,
            }
        });
        opts
    }

    fn open_db(&mut self) -> Result<()> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        let existing = Db::list_cf(&Options::default(), &self.dir).unwrap_or_default();
        let descriptors: Vec<ColumnFamilyDescriptor> = existing
            .iter()
            .filter(|n| n.as_str() != "default")
            .map(|n| ColumnFamilyDescriptor::new(n, self.cf_options(n)))
            .collect::<Vec<_>>();
        let db = Db::open_cf_descriptors(&db_opts, &self.dir, descriptors)?;
        self.db = Some(db);
        Ok(())
    }

    fn db(&self) -> Result<&Db> {
        self.db
            .as_ref()
            .ok_or_else(|| StateError::Internal("RocksDB instance is closed".into()))
    }

    fn cf(&self, state: StateId) -> Result<&rocksdb::ColumnFamily> {
        let name = &self
            .states
            .get(state.0)
            .ok_or_else(|| StateError::Internal(format!("unknown state id {}", state.0)))?
            .name;
        self.db()?
            .cf_handle(name)
            .ok_or_else(|| StateError::Internal(format!("no column family for state '{name}'")))
    }

    fn stored_states(&self) -> Result<Vec<StateDescriptor>> {
        let Some(bytes) = self.db()?.get(STATES_KEY)? else {
            return Ok(Vec::new());
        };
        let list: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
            .map_err(|e| StateError::Corrupt(format!("RocksDB state list: {e}")))?;
        list.iter()
            .map(|v| {
                let name = v["name"].as_str().unwrap_or_default();
                let kind = v["kind"]
                    .as_str()
                    .and_then(StateKind::from_name)
                    .ok_or_else(|| {
                        StateError::Corrupt(format!("state '{name}' of unknown kind"))
                    })?;
                Ok(StateDescriptor::new(name, kind))
            })
            .collect()
    }

    fn store_states(&self) -> Result<()> {
        let list: Vec<serde_json::Value> = self
            .states
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "kind": s.kind.name()}))
            .collect();
        let bytes = serde_json::to_vec(&list)
            .map_err(|e| StateError::Internal(format!("state list: {e}")))?;
        self.db()?.put_opt(STATES_KEY, bytes, &self.write_options)?;
        Ok(())
    }

    /// Deletes the key groups outside `range` (after a restore into another
    /// parallelism) and compacts those ranges away.
    fn clip(&mut self, range: KeyGroupRange) -> Result<()> {
        let low = range.lower_bound();
        let high = range.upper_bound();
        for i in 0..self.states.len() {
            let cf = self.cf(StateId(i))?;
            let db = self.db()?;
            db.delete_range_cf(cf, [0u8, 0u8], low)?;
            if let Some(high) = high {
                db.delete_range_cf(cf, &high[..], END_OF_KEYS)?;
            }
        }
        Ok(())
    }

    /// Compacts every column family now (runs TTL clean-up in compaction).
    pub fn compact(&self) -> Result<()> {
        let db = self.db()?;
        for s in &self.states {
            if let Some(cf) = db.cf_handle(&s.name) {
                db.compact_range_cf::<&[u8], &[u8]>(cf, None, None);
            }
        }
        Ok(())
    }

    /// The instance's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| StateError::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StateError::io(from, e))?;
        let target = to.join(entry.file_name());
        // SST files are immutable: a hard link is a copy.
        if std::fs::hard_link(entry.path(), &target).is_err() {
            std::fs::copy(entry.path(), &target).map_err(|e| StateError::io(entry.path(), e))?;
        }
    }
    Ok(())
}

impl StateBackend for RocksDbBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::RocksDb
    }

    fn register(&mut self, descriptor: &StateDescriptor) -> Result<StateId> {
        let id = match self.states.iter().position(|s| s.name == descriptor.name) {
            Some(i) => {
                check_same_kind(&self.states[i], descriptor)?;
                self.states[i].ttl = descriptor.ttl.clone();
                i
            }
            None => {
                let opts = self.cf_options(&descriptor.name);
                let db = self
                    .db
                    .as_mut()
                    .ok_or_else(|| StateError::Internal("RocksDB instance is closed".into()))?;
                if db.cf_handle(&descriptor.name).is_none() {
                    db.create_cf(&descriptor.name, &opts)?;
                }
                self.cf_options.push(opts);
                self.states.push(descriptor.clone());
                self.store_states()?;
                self.states.len() - 1
            }
        };
        if let Ok(mut ttl) = self
            .ttls
            .entry(descriptor.name.clone())
            .or_default()
            .write()
        {
            *ttl = descriptor.ttl.clone();
        }
        Ok(StateId(id))
    }

    fn descriptors(&self) -> Vec<StateDescriptor> {
        self.states.clone()
    }

    fn get(&mut self, state: StateId, address: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db()?.get_cf(self.cf(state)?, address)?)
    }

    fn multi_get(&mut self, state: StateId, addresses: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let cf = self.cf(state)?;
        self.db()?
            .batched_multi_get_cf(cf, addresses.iter().copied(), false)
            .into_iter()
            .map(|r| Ok(r?.map(|v| v.to_vec())))
            .collect()
    }

    fn write(&mut self, state: StateId, changes: Vec<Change>) -> Result<()> {
        let cf = self.cf(state)?;
        let mut batch = WriteBatch::default();
        for (address, value) in &changes {
            match value {
                Some(v) => batch.put_cf(cf, address, v),
                None => batch.delete_cf(cf, address),
            }
        }
        self.db()?.write_opt(batch, &self.write_options)?;
        Ok(())
    }

    fn scan(
        &mut self,
        state: StateId,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut crate::backend::Visit<'_>,
    ) -> Result<()> {
        let cf = self.cf(state)?;
        let mut opts = ReadOptions::default();
        if let Some(end) = end {
            opts.set_iterate_upper_bound(end.to_vec());
        }
        let mut it = self.db()?.raw_iterator_cf_opt(cf, opts);
        it.seek(start);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if visit(k, v)? == Scan::Stop {
                return Ok(());
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    fn delete_range(&mut self, state: StateId, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        let cf = self.cf(state)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, start, end.unwrap_or(END_OF_KEYS));
        self.db()?.write_opt(batch, &self.write_options)?;
        Ok(())
    }

    fn stats(&self) -> Result<StateStats> {
        let db = self.db()?;
        let mut stats = StateStats::default();
        for s in &self.states {
            let Some(cf) = db.cf_handle(&s.name) else {
                continue;
            };
            let int =
                |p: &str| -> Result<u64> { Ok(db.property_int_value_cf(cf, p)?.unwrap_or(0)) };
            stats.entries += int("rocksdb.estimate-num-keys")?;
            stats.bytes +=
                int("rocksdb.total-sst-files-size")? + int("rocksdb.cur-size-all-mem-tables")?;
        }
        Ok(stats)
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn snapshot(&mut self, dir: &Path) -> Result<SnapshotInfo> {
        let db = self.db()?;
        // Writes skip the WAL, so the memtables must reach SST files first.
        for s in &self.states {
            if let Some(cf) = db.cf_handle(&s.name) {
                db.flush_cf(cf)?;
            }
        }
        db.flush()?;
        let target = dir.join(SNAPSHOT_DB_DIR);
        rocksdb::checkpoint::Checkpoint::new(db)?.create_checkpoint(&target)?;
        let mut files = Vec::new();
        let mut bytes = 0;
        let entries = std::fs::read_dir(&target).map_err(|e| StateError::io(&target, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StateError::io(&target, e))?;
            bytes += entry
                .metadata()
                .map_err(|e| StateError::io(entry.path(), e))?
                .len();
            files.push(format!(
                "{SNAPSHOT_DB_DIR}/{}",
                entry.file_name().to_string_lossy()
            ));
        }
        files.sort();
        Ok(SnapshotInfo {
            backend: BackendKind::RocksDb,
            files,
            bytes,
        })
    }
}

impl Drop for RocksDbBackend {
    fn drop(&mut self) {
        // Close the instance before removing its files.
        self.db = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes working directories of this instance name left by processes that
/// no longer run (killed, so their `Drop` never ran). Linux only: elsewhere
/// there is no cheap way to tell, and nothing is removed.
fn remove_stale_instances(base: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let prefix = format!("{name}-");
    for entry in entries.flatten() {
        let leaf = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = leaf.strip_prefix(&prefix) else {
            continue;
        };
        // `<pid>-<n>`, and nothing else: another name may share the prefix.
        let mut parts = rest.split('-');
        let (Some(pid), Some(n), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if pid.parse::<u32>().is_err() || n.parse::<u64>().is_err() {
            continue;
        }
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
