//! Configuration keys, with Flink's names and value syntax.
//!
//! One [`Config`] holds every key a job reads. It is filled from `SET`
//! statements, a YAML file and the Rust builder; each value is checked when it
//! is set, so a bad key or value fails before any job starts.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{EngineError, Result};

/// What kind of value a key takes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    PositiveInt,
    NonNegativeInt,
    /// A TCP port, 0 to 65535.
    Port,
    Duration,
    /// A duration above zero.
    PositiveDuration,
    /// A URL whose user information (`user:password@`) is never shown.
    Url,
    MemorySize,
    Bool,
    Text,
    /// Text that is never printed (credentials).
    Secret,
    OneOf(&'static [&'static str]),
}

struct Key {
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    doc: &'static str,
}

const KEYS: &[Key] = &[
    Key {
        name: "parallelism.default",
        kind: Kind::PositiveInt,
        default: Some("1"),
        doc: "subtasks per operator",
    },
    Key {
        name: "pipeline.name",
        kind: Kind::Text,
        default: None,
        doc: "the job's name",
    },
    Key {
        name: "pipeline.max-parallelism",
        kind: Kind::PositiveInt,
        default: Some("128"),
        doc: "number of key groups",
    },
    Key {
        name: "execution.runtime-mode",
        kind: Kind::OneOf(&["streaming", "STREAMING"]),
        default: Some("streaming"),
        doc: "only streaming is supported",
    },
    Key {
        name: "execution.batch-size",
        kind: Kind::PositiveInt,
        default: Some("8192"),
        doc: "rows per batch read by sources",
    },
    Key {
        name: "execution.buffer-capacity",
        kind: Kind::PositiveInt,
        default: Some("16"),
        doc: "batches buffered per channel before backpressure",
    },
    Key {
        name: "table.dml-sync",
        kind: Kind::Bool,
        default: Some("false"),
        doc: "wait for each INSERT to finish before the next statement",
    },
    Key {
        name: "sql-client.execution.result-mode",
        kind: Kind::OneOf(&["table", "changelog", "tableau"]),
        default: None,
        doc: "how the shell shows results: table (materialized, updated in place; the interactive default), changelog, or tableau (the default when piped)",
    },
    Key {
        name: "sql-client.execution.max-table-result.rows",
        kind: Kind::NonNegativeInt,
        default: Some("0"),
        doc: "stop a shell SELECT after this many rows (0 = no limit)",
    },
    Key {
        name: "sql-client.display.max-column-width",
        kind: Kind::PositiveInt,
        default: Some("30"),
        doc: "widest column the shell prints",
    },
    Key {
        name: "state.backend.type",
        kind: Kind::OneOf(weir_state::BackendKind::ACCEPTED),
        default: Some("hashmap"),
        doc: "where operator state lives: hashmap (memory) or rocksdb (local disk)",
    },
    Key {
        name: "state.backend.rocksdb.localdir",
        kind: Kind::Text,
        default: None,
        doc: "directory of the RocksDB instances (default: a temporary directory)",
    },
    Key {
        name: "state.backend.rocksdb.block-cache-size",
        kind: Kind::MemorySize,
        default: Some("64mb"),
        doc: "RocksDB block cache per operator subtask",
    },
    Key {
        name: "state.backend.rocksdb.writebuffer.size",
        kind: Kind::MemorySize,
        default: Some("32mb"),
        doc: "RocksDB memtable size per state (column family)",
    },
    Key {
        name: "table.exec.state.ttl",
        kind: Kind::Duration,
        default: Some("0 ms"),
        doc: "forget a group-aggregate key idle this long (0: never)",
    },
    Key {
        name: "table.exec.state.cache-size",
        kind: Kind::NonNegativeInt,
        default: None,
        doc: "aggregate groups kept in memory in front of the state backend, per subtask (default: all with hashmap, 100000 with rocksdb)",
    },
    Key {
        name: "execution.checkpointing.interval",
        kind: Kind::Duration,
        default: None,
        doc: "take a checkpoint this often (unset or 0: checkpointing is off)",
    },
    Key {
        name: "execution.checkpointing.mode",
        kind: Kind::OneOf(&["EXACTLY_ONCE", "AT_LEAST_ONCE"]),
        default: Some("EXACTLY_ONCE"),
        doc: "EXACTLY_ONCE aligns barriers; AT_LEAST_ONCE does not wait for alignment",
    },
    Key {
        name: "execution.checkpointing.timeout",
        kind: Kind::PositiveDuration,
        default: Some("10 min"),
        doc: "abort a checkpoint that has not completed in this time",
    },
    Key {
        name: "execution.checkpointing.min-pause",
        kind: Kind::Duration,
        default: Some("0 ms"),
        doc: "least time between the end of one checkpoint and the start of the next",
    },
    Key {
        name: "execution.checkpointing.max-concurrent-checkpoints",
        kind: Kind::PositiveInt,
        default: Some("1"),
        doc: "checkpoints in progress at once",
    },
    Key {
        name: "execution.checkpointing.tolerable-failed-checkpoints",
        kind: Kind::NonNegativeInt,
        default: Some("0"),
        doc: "consecutive failed checkpoints tolerated before the job fails",
    },
    Key {
        name: "execution.checkpointing.unaligned.enabled",
        kind: Kind::Bool,
        default: Some("false"),
        doc: "barriers overtake in-flight data, which is stored in the checkpoint",
    },
    Key {
        name: "execution.checkpointing.aligned-checkpoint-timeout",
        kind: Kind::Duration,
        default: Some("0 ms"),
        doc: "with unaligned checkpoints: align first, go unaligned after this long (0: unaligned at once)",
    },
    Key {
        name: "execution.checkpointing.dir",
        kind: Kind::Text,
        default: None,
        doc: "where checkpoints are stored: a path, file://, memory://, s3://, gs:// or az:// (default: memory, lost with the process)",
    },
    Key {
        name: "execution.checkpointing.incremental",
        kind: Kind::Bool,
        default: Some("false"),
        doc: "rocksdb: upload only the SST files not uploaded before",
    },
    Key {
        name: "execution.checkpointing.num-retained",
        kind: Kind::PositiveInt,
        default: Some("1"),
        doc: "completed checkpoints kept",
    },
    Key {
        name: "execution.checkpointing.externalized-checkpoint-retention",
        kind: Kind::OneOf(&[
            "RETAIN_ON_CANCELLATION",
            "DELETE_ON_CANCELLATION",
            "NO_EXTERNALIZED_CHECKPOINTS",
        ]),
        default: Some("RETAIN_ON_CANCELLATION"),
        doc: "keep or delete the checkpoints of a cancelled job",
    },
    Key {
        name: "execution.checkpointing.resume",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "resume from the latest checkpoint of a job of the same name in the same directory; false deletes them and starts over (weir run --fresh)",
    },
    Key {
        name: "execution.savepoint.path",
        kind: Kind::Text,
        default: None,
        doc: "restore the next job from this savepoint (<dir>/savepoint-…) or checkpoint (<dir>/<job-id>/chk-<n>)",
    },
    Key {
        name: "execution.savepoint.ignore-unclaimed-state",
        kind: Kind::Bool,
        default: Some("false"),
        doc: "drop (with a warning) state of the restored snapshot that no operator of the new job claims, instead of refusing to start",
    },
    Key {
        name: "execution.checkpointing.savepoint-dir",
        kind: Kind::Text,
        default: None,
        doc: "where savepoints go when no directory is given; setting it lets a job take savepoints without periodic checkpoints",
    },
    Key {
        name: "rest.address",
        kind: Kind::Text,
        default: Some("127.0.0.1"),
        doc: "address the REST API of `weir run` and the shell binds to",
    },
    Key {
        name: "rest.port",
        kind: Kind::Port,
        default: Some("8081"),
        doc: "port of the REST API of `weir run` and the shell (0: a free port, printed at start)",
    },
    Key {
        name: "rest.enabled",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "whether `weir run` and the shell serve the REST API",
    },
    Key {
        name: "restart-strategy.type",
        kind: Kind::OneOf(&["none", "off", "disable", "fixed-delay", "fixeddelay"]),
        default: Some("none"),
        doc: "what to do when a task fails: none, or fixed-delay (restart from the latest checkpoint)",
    },
    Key {
        name: "restart-strategy.fixed-delay.attempts",
        kind: Kind::NonNegativeInt,
        default: Some("1"),
        doc: "restarts before the job fails",
    },
    Key {
        name: "restart-strategy.fixed-delay.delay",
        kind: Kind::Duration,
        default: Some("1 s"),
        doc: "pause before each restart",
    },
    Key {
        name: "s3.endpoint",
        kind: Kind::Url,
        default: None,
        doc: "S3-compatible server for s3:// checkpoint locations",
    },
    Key {
        name: "s3.access-key",
        kind: Kind::Secret,
        default: None,
        doc: "S3 access key (default: AWS_ACCESS_KEY_ID)",
    },
    Key {
        name: "s3.secret-key",
        kind: Kind::Secret,
        default: None,
        doc: "S3 secret key (default: AWS_SECRET_ACCESS_KEY); never printed",
    },
    Key {
        name: "s3.region",
        kind: Kind::Text,
        default: None,
        doc: "S3 region (default: AWS_REGION, or us-east-1)",
    },
    Key {
        name: "s3.path.style.access",
        kind: Kind::Bool,
        default: Some("false"),
        doc: "address S3 buckets by path (set by default with s3.endpoint)",
    },
];

const ALIASES: &[(&str, &str)] = &[
    ("parallelism", "parallelism.default"),
    ("state.backend", "state.backend.type"),
    ("execution.runtime.mode", "execution.runtime-mode"),
    ("state.checkpoints.dir", "execution.checkpointing.dir"),
    (
        "state.backend.incremental",
        "execution.checkpointing.incremental",
    ),
    (
        "execution.checkpointing.unaligned",
        "execution.checkpointing.unaligned.enabled",
    ),
    (
        "state.checkpoints.num-retained",
        "execution.checkpointing.num-retained",
    ),
    (
        "execution.checkpointing.max-retained-checkpoints",
        "execution.checkpointing.num-retained",
    ),
    (
        "execution.checkpointing.externalized-checkpoint.retention",
        "execution.checkpointing.externalized-checkpoint-retention",
    ),
    ("restart-strategy", "restart-strategy.type"),
    ("execution.savepoint-path", "execution.savepoint.path"),
    (
        "state.savepoints.dir",
        "execution.checkpointing.savepoint-dir",
    ),
];

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

/// A set of configuration values, validated on entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    values: BTreeMap<String, String>,
    clock: JobClock,
}

/// The processing-time clock of the jobs a configuration starts: what
/// `PROCTIME()`, processing-time timers and state TTL read. The system
/// clock unless a program (a test) installs its own.
#[derive(Debug, Clone, Default)]
struct JobClock(Option<std::sync::Arc<dyn weir_state::Clock>>);

impl PartialEq for JobClock {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Config {
    /// An empty configuration: every key has its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the processing-time clock (tests use a
    /// [`weir_state::ManualClock`] to move processing time by hand).
    pub fn set_clock(&mut self, clock: std::sync::Arc<dyn weir_state::Clock>) {
        self.clock = JobClock(Some(clock));
    }

    /// The processing-time clock: the system's unless one was installed.
    pub fn clock(&self) -> std::sync::Arc<dyn weir_state::Clock> {
        self.clock
            .0
            .clone()
            .unwrap_or_else(|| std::sync::Arc::new(weir_state::SystemClock))
    }

    /// Resolves an alias to the key's current name and checks that it exists.
    pub fn canonical_key(key: &str) -> Result<&'static str> {
        let key = key.trim();
        if let Some((_, to)) = ALIASES.iter().find(|(from, _)| *from == key) {
            return Ok(to);
        }
        if let Some(k) = KEYS.iter().find(|k| k.name == key) {
            return Ok(k.name);
        }
        let suggestion = closest(key)
            .map(|s| format!(" Did you mean '{s}'?"))
            .unwrap_or_default();
        Err(EngineError::Config(format!(
            "unknown configuration key '{key}'.{suggestion} Accepted keys: {}",
            KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
        )))
    }

    /// Sets `key` to `value` after checking both.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let name = Self::canonical_key(key)?;
        let spec = spec(name);
        let value = value.trim();
        validate(name, spec.kind, value)?;
        self.values.insert(name.to_string(), value.to_string());
        Ok(())
    }

    /// Builder form of [`Config::set`].
    pub fn with(mut self, key: &str, value: &str) -> Result<Self> {
        self.set(key, value)?;
        Ok(self)
    }

    /// Resets one key to its default, or every key when `key` is `None`.
    pub fn reset(&mut self, key: Option<&str>) -> Result<()> {
        match key {
            Some(k) => {
                let name = Self::canonical_key(k)?;
                self.values.remove(name);
            }
            None => self.values.clear(),
        }
        Ok(())
    }

    /// The value of `key` as set, or its default.
    pub fn get(&self, key: &str) -> Option<String> {
        let name = Self::canonical_key(key).ok()?;
        self.values
            .get(name)
            .cloned()
            .or_else(|| spec(name).default.map(str::to_string))
    }

    /// Every key with its effective value and whether it was set explicitly.
    /// Credentials show as `******`.
    pub fn entries(&self) -> Vec<(String, String, bool)> {
        KEYS.iter()
            .filter_map(|k| {
                let set = self.values.get(k.name);
                let mut v = set.cloned().or_else(|| k.default.map(str::to_string))?;
                if matches!(k.kind, Kind::Secret) {
                    v = "******".into();
                }
                if matches!(k.kind, Kind::Url) {
                    v = mask_url(&v);
                }
                Some((k.name.to_string(), v, set.is_some()))
            })
            .collect()
    }

    /// Documentation of every key: name, default and a one-line description.
    pub fn documented_keys() -> Vec<(&'static str, Option<&'static str>, &'static str)> {
        KEYS.iter().map(|k| (k.name, k.default, k.doc)).collect()
    }

    fn int(&self, key: &str) -> usize {
        self.get(key).and_then(|v| v.parse().ok()).unwrap_or(1)
    }

    /// `parallelism.default`.
    pub fn parallelism(&self) -> usize {
        self.int("parallelism.default")
    }

    /// `pipeline.max-parallelism`: the number of key groups.
    pub fn max_parallelism(&self) -> usize {
        self.int("pipeline.max-parallelism")
    }

    /// `execution.batch-size`.
    pub fn batch_size(&self) -> usize {
        self.int("execution.batch-size")
    }

    /// `execution.buffer-capacity`.
    pub fn buffer_capacity(&self) -> usize {
        self.int("execution.buffer-capacity")
    }

    /// A duration-valued key.
    pub fn duration(&self, key: &str) -> Option<Duration> {
        self.get(key).and_then(|v| parse_duration(&v).ok())
    }

    /// A memory-size-valued key, in bytes.
    pub fn memory_size(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| parse_memory_size(&v).ok())
    }

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

    /// Parses a YAML configuration file in the subset Flink's `config.yaml`
    /// uses: `key: value` lines, nested maps by indentation, `#` comments.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let mut cfg = Config::new();
        let mut stack: Vec<(usize, String)> = Vec::new();
        for (no, raw) in text.lines().enumerate() {
            let line = strip_comment(raw);
            if line.trim().is_empty() {
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            let Some((k, v)) = line.trim().split_once(':') else {
                return Err(EngineError::Config(format!(
                    "configuration file line {}: expected 'key: value', found '{}'",
                    no + 1,
                    line.trim()
                )));
            };
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let mut full: Vec<&str> = stack.iter().map(|(_, s)| s.as_str()).collect();
            full.push(k.trim());
            let full = full.join(".");
            let v = unquote(v.trim());
            if v.is_empty() {
                stack.push((indent, k.trim().to_string()));
            } else {
                cfg.set(&full, &v).map_err(|e| {
                    EngineError::Config(format!("configuration file line {}: {e}", no + 1))
                })?;
            }
        }
        Ok(cfg)
    }
}

fn strip_comment(line: &str) -> &str {
    let mut in_quote = None;
    for (i, c) in line.char_indices() {
        match (c, in_quote) {
            ('\'' | '"', None) => in_quote = Some(c),
            (q, Some(open)) if q == open => in_quote = None,
            ('#', None) => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unquote(v: &str) -> String {
    let t = v.trim();
    if t.len() >= 2
        && ((t.starts_with('\'') && t.ends_with('\'')) || (t.starts_with('"') && t.ends_with('"')))
    {
        t[1..t.len() - 1].to_string()
    } else {
        t.to_string()
    }
}

fn spec(name: &str) -> &'static Key {
    KEYS.iter().find(|k| k.name == name).unwrap_or(&KEYS[0])
}

fn validate(name: &str, kind: Kind, value: &str) -> Result<()> {
    let bad = |accepted: &str| {
        Err(EngineError::Config(format!(
            "invalid value '{value}' for configuration key '{name}': expected {accepted}"
        )))
    };
    match kind {
        Kind::PositiveInt => match value.parse::<usize>() {
            Ok(n) if n > 0 => Ok(()),
            _ => bad("a positive integer"),
        },
        Kind::NonNegativeInt => match value.parse::<usize>() {
            Ok(_) => Ok(()),
            _ => bad("a non-negative integer"),
        },
        Kind::Port => match value.parse::<u16>() {
            Ok(_) => Ok(()),
            _ => bad("a port from 0 to 65535 (0: any free port)"),
        },
        Kind::Duration => match parse_duration(value) {
            Ok(_) => Ok(()),
            Err(_) => bad("a duration such as '60000', '60 s', '1 min' or '10s'"),
        },
        Kind::PositiveDuration => match parse_duration(value) {
            Ok(d) if !d.is_zero() => Ok(()),
            _ => bad("a duration above zero, such as '60000', '60 s', '1 min' or '10s'"),
        },
        Kind::MemorySize => match parse_memory_size(value) {
            Ok(_) => Ok(()),
            Err(_) => bad("a memory size such as '64mb', '512 kb' or '1gb'"),
        },
        Kind::Bool => {
            if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
                Ok(())
            } else {
                bad("'true' or 'false'")
            }
        }
        Kind::Text | Kind::Secret | Kind::Url => Ok(()),
        Kind::OneOf(options) => {
            if options.iter().any(|o| o.eq_ignore_ascii_case(value)) {
                Ok(())
            } else {
                let mut uniq: Vec<String> = options.iter().map(|o| o.to_lowercase()).collect();
                uniq.dedup();
                bad(&format!("one of {}", uniq.join(", ")))
            }
        }
    }
}

/// A URL as it may be shown: a password in it (`http://user:pass@host`)
/// replaced by `******`.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:******@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Parses a memory size the way Flink does: a number with an optional unit
/// (`b`, `kb`, `mb`, `gb`, `tb`, also `k`, `m`, `g`, `t`); no unit means bytes.
pub fn parse_memory_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a memory size"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kibibytes" => 10,
        "m" | "mb" | "mebibytes" => 20,
        "g" | "gb" | "gibibytes" => 30,
        "t" | "tb" | "tebibytes" => 40,
        _ => return Err(format!("'{text}' has an unknown unit")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Parses a duration the way Flink does: a number with an optional unit
/// (`ms`, `s`, `min`, `h`, `d` and their long forms); no unit means milliseconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a duration"))?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n * 1000,
        "m" | "min" | "mins" | "minute" | "minutes" => n * 60_000,
        "h" | "hour" | "hours" => n * 3_600_000,
        "d" | "day" | "days" => n * 86_400_000,
        other => return Err(format!("unknown time unit '{other}' in '{text}'")),
    };
    Ok(Duration::from_millis(ms))
}

fn closest(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (edit_distance(key, k.name), k.name))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, n)| n)
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_flink() {
        assert_eq!(parse_duration("60000").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("60 s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1 min").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn unknown_key_is_named_with_a_suggestion() {
        let err = Config::new()
            .set("parallelism.defualt", "2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'parallelism.defualt'"), "{err}");
        assert!(err.contains("Did you mean 'parallelism.default'"), "{err}");
    }

    #[test]
    fn bad_values_name_what_is_accepted() {
        let err = Config::new()
            .set("parallelism.default", "zero")
            .unwrap_err()
            .to_string();
        assert!(err.contains("positive integer"), "{err}");
        let err = Config::new()
            .set("state.backend", "leveldb")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("state.backend.type") && err.contains("hashmap, rocksdb"),
            "{err}"
        );
    }

    #[test]
    fn yaml_nested_and_flat_keys() {
        let cfg = Config::from_yaml(
            "# comment\nparallelism.default: 2\npipeline:\n  name: 'my job'\n  max-parallelism: 64\n",
        )
        .unwrap();
        assert_eq!(cfg.parallelism(), 2);
        assert_eq!(cfg.max_parallelism(), 64);
        assert_eq!(cfg.get("pipeline.name").as_deref(), Some("my job"));
        let err = Config::from_yaml("parallelism.default: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
