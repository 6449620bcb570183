//! Typed settings read from a [`Config`]: checkpointing, state, storage and
//! restarts.

use std::time::Duration;

use super::Config;
use crate::error::{EngineError, Result};

/// How an operator with several inputs treats checkpoint barriers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarrierMode {
    /// Hold back inputs that delivered the barrier until all have (exactly once).
    Aligned,
    /// Snapshot once every input delivered the barrier, without holding any back.
    AtLeastOnce,
    /// Snapshot at the first barrier and store the in-flight data; with a
    /// timeout, align first and go unaligned when aligning takes longer.
    Unaligned {
        /// `execution.checkpointing.aligned-checkpoint-timeout`, when not zero.
        aligned_timeout: Option<Duration>,
    },
}

/// The `execution.checkpointing.*` settings of a job.
#[derive(Clone, Debug)]
pub struct CheckpointSettings {
    /// `execution.checkpointing.interval`.
    pub interval: Duration,
    /// From `mode`, `unaligned.enabled` and `aligned-checkpoint-timeout`.
    pub mode: BarrierMode,
    /// `execution.checkpointing.timeout`.
    pub timeout: Duration,
    /// `execution.checkpointing.min-pause`.
    pub min_pause: Duration,
    /// `execution.checkpointing.max-concurrent-checkpoints`.
    pub max_concurrent: usize,
    /// `execution.checkpointing.tolerable-failed-checkpoints`.
    pub tolerable_failures: usize,
    /// `execution.checkpointing.dir`.
    pub dir: String,
    /// `execution.checkpointing.incremental`.
    pub incremental: bool,
    /// `execution.checkpointing.num-retained`.
    pub num_retained: usize,
    /// `externalized-checkpoint-retention` is not `RETAIN_ON_CANCELLATION`.
    pub delete_on_cancel: bool,
    /// `execution.checkpointing.resume`.
    pub resume: bool,
    /// Endpoints and credentials of remote stores.
    pub storage: weir_checkpoint::StorageOptions,
    /// Whether checkpoints are taken every `interval` (else only savepoints).
    pub periodic: bool,
    /// `execution.checkpointing.savepoint-dir`.
    pub savepoint_dir: Option<String>,
}

/// What stateful operators need to create their state.
#[derive(Clone, Debug)]
pub struct StateSettings {
    /// Which backend, where and how large.
    pub backend: weir_state::BackendConfig,
    /// `table.exec.state.ttl` (None: state is kept forever).
    pub ttl: Option<Duration>,
    /// `table.exec.state.cache-size`: groups an aggregate keeps in memory
    /// before moving them into the backend (unbounded for `hashmap` unless
    /// set).
    pub cache_entries: usize,
}

impl StateSettings {
    /// Checks what can only be checked on the machine: the RocksDB directory.
    pub fn validate(&self) -> Result<()> {
        self.backend
            .validate()
            .map_err(|e| EngineError::Config(e.to_string()))
    }
}

impl Config {
    /// The state backend settings: `state.backend.*`, `table.exec.state.*`.
    /// The backend's local directory is checked by [`StateSettings::validate`]
    /// before a job starts.
    pub fn state_settings(&self) -> Result<StateSettings> {
        let kind = weir_state::BackendKind::parse(
            &self
                .get("state.backend.type")
                .unwrap_or_else(|| "hashmap".into()),
        )
        .map_err(|e| EngineError::Config(e.to_string()))?;
        let mut backend = weir_state::BackendConfig::new(kind);
        backend.clock = self.clock();
        backend.local_dir = self
            .get("state.backend.rocksdb.localdir")
            .filter(|d| !d.trim().is_empty())
            .map(|d| std::path::PathBuf::from(d.trim().trim_start_matches("file://")));
        if let Some(b) = self.memory_size("state.backend.rocksdb.block-cache-size") {
            backend.block_cache_bytes = b as usize;
        }
        if let Some(b) = self.memory_size("state.backend.rocksdb.writebuffer.size") {
            backend.write_buffer_bytes = b as usize;
        }
        let ttl = self
            .duration("table.exec.state.ttl")
            .filter(|d| !d.is_zero());
        // With `hashmap` the state is in memory either way: the operators'
        // own tables are the fastest form of it, and reach the backend at
        // snapshots. With `rocksdb` the cache bounds the memory used.
        let cache_entries = self
            .get("table.exec.state.cache-size")
            .and_then(|v| v.parse().ok())
            .unwrap_or(match kind {
                weir_state::BackendKind::HashMap => usize::MAX,
                weir_state::BackendKind::RocksDb => 100_000,
            });
        Ok(StateSettings {
            backend,
            ttl,
            cache_entries,
        })
    }

    /// A boolean-valued key.
    pub fn bool(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The checkpointing settings; `None` when checkpointing is off.
    pub fn checkpoint_settings(&self) -> Result<Option<CheckpointSettings>> {
        let text = |k: &str| self.get(k).filter(|v| !v.trim().is_empty());
        let savepoint_dir = text("execution.checkpointing.savepoint-dir");
        let interval = self
            .duration("execution.checkpointing.interval")
            .filter(|d| !d.is_zero());
        // A savepoint directory alone enables savepoints: the coordinator
        // runs, but takes no periodic checkpoints.
        let (interval, periodic) = match (interval, &savepoint_dir) {
            (Some(i), _) => (i, true),
            (None, Some(_)) => (Duration::from_secs(3600), false),
            (None, None) => return Ok(None),
        };
        let unaligned = self.bool("execution.checkpointing.unaligned.enabled");
        let at_least_once = self
            .get("execution.checkpointing.mode")
            .is_some_and(|m| m.eq_ignore_ascii_case("AT_LEAST_ONCE"));
        let mode = match (at_least_once, unaligned) {
            (true, true) => {
                return Err(EngineError::Config(
                    "execution.checkpointing.unaligned.enabled needs execution.checkpointing.mode = EXACTLY_ONCE".into(),
                ))
            }
            (true, false) => BarrierMode::AtLeastOnce,
            (false, true) => BarrierMode::Unaligned {
                aligned_timeout: self
                    .duration("execution.checkpointing.aligned-checkpoint-timeout")
                    .filter(|d| !d.is_zero()),
            },
            (false, false) => BarrierMode::Aligned,
        };
        let storage = self.storage_options();
        Ok(Some(CheckpointSettings {
            interval,
            mode,
            timeout: self
                .duration("execution.checkpointing.timeout")
                .unwrap_or(Duration::from_secs(600)),
            min_pause: self
                .duration("execution.checkpointing.min-pause")
                .unwrap_or_default(),
            max_concurrent: self.int("execution.checkpointing.max-concurrent-checkpoints"),
            tolerable_failures: self
                .get("execution.checkpointing.tolerable-failed-checkpoints")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            dir: text("execution.checkpointing.dir")
                .unwrap_or_else(|| "memory://checkpoints".into()),
            incremental: self.bool("execution.checkpointing.incremental"),
            num_retained: self.int("execution.checkpointing.num-retained"),
            delete_on_cancel: self
                .get("execution.checkpointing.externalized-checkpoint-retention")
                .is_some_and(|v| !v.eq_ignore_ascii_case("RETAIN_ON_CANCELLATION")),
            resume: self
                .get("execution.checkpointing.resume")
                .is_none_or(|v| v.eq_ignore_ascii_case("true")),
            storage,
            periodic,
            savepoint_dir,
        }))
    }

    /// Endpoints and credentials of remote checkpoint and savepoint stores.
    pub fn storage_options(&self) -> weir_checkpoint::StorageOptions {
        let text = |k: &str| self.get(k).filter(|v| !v.trim().is_empty());
        weir_checkpoint::StorageOptions {
            s3_endpoint: text("s3.endpoint"),
            s3_access_key: text("s3.access-key"),
            s3_secret_key: text("s3.secret-key"),
            s3_region: text("s3.region"),
            s3_path_style: self.bool("s3.path.style.access"),
        }
    }

    /// The restart strategy: attempts and the delay before each.
    pub fn restart_strategy(&self) -> (usize, Duration) {
        let fixed = self
            .get("restart-strategy.type")
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("fixed"));
        if !fixed {
            return (0, Duration::ZERO);
        }
        (
            self.get("restart-strategy.fixed-delay.attempts")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            self.duration("restart-strategy.fixed-delay.delay")
                .unwrap_or(Duration::from_secs(1)),
        )
    }
}
