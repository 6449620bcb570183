//! The table of configuration keys: each key's name, kind of value,
//! default and one line of documentation, and the older names accepted as
//! aliases (Flink's).

/// What kind of value a key takes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
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

pub(super) struct Key {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    pub(super) default: Option<&'static str>,
    pub(super) doc: &'static str,
}

pub(super) const KEYS: &[Key] = &[
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
        name: "table.exec.source.idle-timeout",
        kind: Kind::Duration,
        default: Some("0 ms"),
        doc: "a source split (Kafka partition) without rows this long stops holding the watermark back (0: never)",
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
        name: "execution.checkpointing.allow-fallback-duplicates",
        kind: Kind::Bool,
        default: Some("false"),
        doc: "resume from an older checkpoint than the newest completed one even when an exactly-once sink cannot take back what the skipped checkpoints committed (their output is then written twice)",
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

pub(super) const ALIASES: &[(&str, &str)] = &[
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

pub(super) fn spec(name: &str) -> &'static Key {
    KEYS.iter().find(|k| k.name == name).unwrap_or(&KEYS[0])
}

pub(super) fn closest(key: &str) -> Option<&'static str> {
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
