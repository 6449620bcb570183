//! Exactly-once recovery with real processes: `weir run` is killed with
//! SIGKILL at random moments and started again until it finishes; the
//! committed output must equal an uninterrupted run's, row for row.
//!
//! `WEIR_CRASH_SEED` picks the kill times (fixed by default, so CI is
//! repeatable); `WEIR_CRASH_ROWS` sizes the input (larger locally for more
//! kills).

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{committed_rows, run_with_kills};

mod common;

/// A small deterministic generator (xorshift), so that kill times repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Input split over four CSV files by time: file `k` holds the `k`-th
/// quarter, so each subtask's files (`k % parallelism`) rise in event time.
fn write_input(dir: &Path, rows: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng(42);
    let mut files: Vec<String> = vec![String::new(); 4];
    for i in 0..rows {
        let ts = 1_700_000_000_000u64 + i * 5;
        let line = format!("{i},k{},{},{ts}\n", rng.next() % 300, rng.next() % 100);
        files[(i * 4 / rows) as usize].push_str(&line);
    }
    for (n, text) in files.iter().enumerate() {
        std::fs::write(dir.join(format!("in-{n}.csv")), text).unwrap();
    }
}

fn job_sql(input: &Path, output: &Path, settings: &[(&str, String)]) -> String {
    let mut sql = String::new();
    for (k, v) in settings {
        sql.push_str(&format!("SET '{k}' = '{v}';\n"));
    }
    sql.push_str(&format!(
        "CREATE TABLE src (id BIGINT, name STRING, v BIGINT, ms BIGINT, \
           ts AS TO_TIMESTAMP_MILLIS(ms), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         CREATE TABLE dst (name STRING, window_end TIMESTAMP(3), total BIGINT, n BIGINT) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         INSERT INTO dst SELECT name, window_end, SUM(v), COUNT(*) \
           FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
           GROUP BY name, window_start, window_end;\n",
        input.display(),
        output.display()
    ));
    sql
}

/// An inner join of the input with a table of 250 of its 300 names, as a
/// filesystem sink's insert-only output: both sides' rows in join state.
fn join_job_sql(input: &Path, output: &Path, settings: &[(&str, String)]) -> String {
    let dim = input.with_file_name("dim.csv");
    if !dim.exists() {
        let text: String = (0..250).map(|i| format!("k{i},c{}\n", i % 7)).collect();
        std::fs::write(&dim, text).unwrap();
    }
    let mut sql = String::new();
    for (k, v) in settings {
        sql.push_str(&format!("SET '{k}' = '{v}';\n"));
    }
    sql.push_str(&format!(
        "CREATE TABLE src (id BIGINT, name STRING, v BIGINT, ms BIGINT) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         CREATE TABLE dim (name STRING, category STRING) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         CREATE TABLE dst (id BIGINT, name STRING, category STRING, v BIGINT) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         INSERT INTO dst SELECT s.id, s.name, d.category, s.v \
           FROM src AS s JOIN dim AS d ON s.name = d.name WHERE s.v < 10;\n",
        input.display(),
        dim.display(),
        output.display()
    ));
    sql
}

/// A left interval join of the input with itself (rows of a name within
/// three seconds), then a one-second window over the joined rows: join
/// rows and their cleanup timers in state, and a watermark held back by the
/// join's bound.
fn interval_join_job_sql(input: &Path, output: &Path, settings: &[(&str, String)]) -> String {
    let mut sql = String::new();
    for (k, v) in settings {
        sql.push_str(&format!("SET '{k}' = '{v}';\n"));
    }
    sql.push_str(&format!(
        "CREATE TABLE src (id BIGINT, name STRING, v BIGINT, ms BIGINT, \
           ts AS TO_TIMESTAMP_MILLIS(ms), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         CREATE TABLE dst (name STRING, window_end TIMESTAMP(3), n BIGINT, matched BIGINT) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         CREATE VIEW pairs AS SELECT a.name, a.ts, b.v AS other \
           FROM src AS a LEFT JOIN src AS b ON a.name = b.name \
           AND a.ts BETWEEN b.ts - INTERVAL '3' SECOND AND b.ts - INTERVAL '1' MILLISECOND \
           AND b.v < 50 WHERE a.v < 10;\n\
         INSERT INTO dst SELECT name, window_end, COUNT(*), COUNT(other) \
           FROM TABLE(TUMBLE(TABLE pairs, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
           GROUP BY name, window_start, window_end;\n",
        input.display(),
        output.display()
    ));
    sql
}

/// A temporal join on event time: rows with a small `v` join the latest
/// row of their name with a large one (a versioned view of the same
/// files), then a window over the join's output (its time attribute).
fn temporal_join_job_sql(input: &Path, output: &Path, settings: &[(&str, String)]) -> String {
    let mut sql = String::new();
    for (k, v) in settings {
        sql.push_str(&format!("SET '{k}' = '{v}';\n"));
    }
    sql.push_str(&format!(
        "CREATE TABLE src (id BIGINT, name STRING, v BIGINT, ms BIGINT, \
           ts AS TO_TIMESTAMP_MILLIS(ms), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'csv');\n\
         CREATE TABLE history (id BIGINT, name STRING, v BIGINT, ms BIGINT, \
           ts AS TO_TIMESTAMP_MILLIS(ms), PRIMARY KEY (name) NOT ENFORCED, \
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'csv');\n\
         CREATE VIEW highs AS SELECT name, v, ts FROM history WHERE v >= 50;\n\
         CREATE TABLE dst (name STRING, window_end TIMESTAMP(3), n BIGINT, total BIGINT) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         CREATE VIEW pairs AS SELECT a.name, a.ts, h.v AS high \
           FROM src AS a JOIN highs FOR SYSTEM_TIME AS OF a.ts AS h ON a.name = h.name WHERE a.v < 10;\n\
         INSERT INTO dst SELECT name, window_end, COUNT(*), SUM(high) \
           FROM TABLE(TUMBLE(TABLE pairs, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
           GROUP BY name, window_start, window_end;\n",
        output.display(),
        input = input.display(),
    ));
    sql
}

/// A lookup join on processing time against a bounded table (the same
/// files, read into state): rows wait until it is read whole, so the
/// output does not depend on timing; then a window on the rows' event time.
fn lookup_join_job_sql(input: &Path, output: &Path, settings: &[(&str, String)]) -> String {
    let mut sql = String::new();
    for (k, v) in settings {
        sql.push_str(&format!("SET '{k}' = '{v}';\n"));
    }
    sql.push_str(&format!(
        "CREATE TABLE src (id BIGINT, name STRING, v BIGINT, ms BIGINT, p AS PROCTIME(), \
           ts AS TO_TIMESTAMP_MILLIS(ms), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'csv');\n\
         CREATE TABLE dim (id BIGINT, name STRING, v BIGINT, ms BIGINT) \
         WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'csv');\n\
         CREATE TABLE dst (name STRING, window_end TIMESTAMP(3), n BIGINT, total BIGINT) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         CREATE VIEW enriched AS SELECT a.name, a.ts, d.v AS dv FROM src AS a \
           JOIN dim FOR SYSTEM_TIME AS OF a.p AS d ON a.name = d.name AND d.v >= 99 WHERE a.v < 5;\n\
         INSERT INTO dst SELECT name, window_end, COUNT(*), SUM(dv) \
           FROM TABLE(TUMBLE(TABLE enriched, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
           GROUP BY name, window_start, window_end;\n",
        output.display(),
        input = input.display(),
    ));
    sql
}

/// What a crash test runs: the job's SQL for an input, output and settings.
type JobSql = fn(&Path, &Path, &[(&str, String)]) -> String;

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// `weir run <job>`.
fn weir_run(job: &Path) -> Command {
    let mut c = weir();
    c.arg("run").arg(job);
    c
}

/// Runs the job once, uninterrupted and without checkpoints.
fn reference(input: &Path, work: &Path, parallelism: usize) -> Vec<String> {
    reference_of(job_sql, input, work, parallelism)
}

fn reference_of(sql: JobSql, input: &Path, work: &Path, parallelism: usize) -> Vec<String> {
    let out = work.join("reference");
    let job = work.join("reference.sql");
    std::fs::write(
        &job,
        sql(
            input,
            &out,
            &[
                ("parallelism.default", parallelism.to_string()),
                // Tests run side by side: no fixed REST port.
                ("rest.port", "0".into()),
            ],
        ),
    )
    .unwrap();
    let run = weir().arg("run").arg(&job).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    committed_rows(&out)
}

/// `cache`: `table.exec.state.cache-size`, small to make windows move in
/// and out of the backend between snapshots.
fn crash_and_compare(backend: &str, unaligned: bool, parallelism: usize, cache: Option<usize>) {
    crash_and_compare_job(job_sql, backend, unaligned, parallelism, cache, 1);
}

fn crash_and_compare_job(
    sql: JobSql,
    backend: &str,
    unaligned: bool,
    parallelism: usize,
    cache: Option<usize>,
    // The input is this many times smaller than the window job's (joins
    // do more per row).
    shrink: u64,
) {
    let work = tempfile::tempdir().unwrap();
    let rows = env_u64("WEIR_CRASH_ROWS", 600_000) / shrink;
    let input = work.path().join("input");
    write_input(&input, rows);
    let expected = reference_of(sql, &input, work.path(), parallelism);
    assert!(expected.len() > 1000, "reference output too small");

    let out = work.path().join("out");
    let job = work.path().join("job.sql");
    let settings = vec![
        (
            "pipeline.name",
            format!("crash-{backend}-{unaligned}-{parallelism}"),
        ),
        ("parallelism.default", parallelism.to_string()),
        ("rest.port", "0".into()),
        ("state.backend.type", backend.to_string()),
        (
            "state.backend.rocksdb.localdir",
            work.path().join("rocksdb").display().to_string(),
        ),
        ("execution.checkpointing.interval", "250 ms".into()),
        (
            "execution.checkpointing.dir",
            work.path().join("checkpoints").display().to_string(),
        ),
        (
            "execution.checkpointing.unaligned.enabled",
            unaligned.to_string(),
        ),
        ("execution.buffer-capacity", "4".into()),
        ("execution.batch-size", "2048".into()),
    ];
    let mut settings = settings;
    if let Some(cache) = cache {
        settings.push(("table.exec.state.cache-size", cache.to_string()));
    }
    std::fs::write(&job, sql(&input, &out, &settings)).unwrap();
    let seed = env_u64("WEIR_CRASH_SEED", 0x5eed) ^ (parallelism as u64) << 8;
    let outcome = run_with_kills(|| weir_run(&job), &job, &out, seed);
    assert!(
        outcome.kills >= 1,
        "the job finished before the first kill; raise WEIR_CRASH_ROWS:\n{}",
        outcome.stderr
    );
    assert!(
        outcome.resumed >= 1,
        "no restart resumed from a checkpoint:\n{}",
        outcome.stderr
    );
    eprintln!(
        "{backend} unaligned={unaligned} p={parallelism}: {} kills, {} resumed, {} rows",
        outcome.kills,
        outcome.resumed,
        outcome.rows.len()
    );
    if outcome.rows != expected {
        let mut counts: std::collections::HashMap<&String, i64> = Default::default();
        for r in &expected {
            *counts.entry(r).or_default() += 1;
        }
        for r in &outcome.rows {
            *counts.entry(r).or_default() -= 1;
        }
        let missing: Vec<_> = counts.iter().filter(|(_, c)| **c > 0).take(5).collect();
        let extra: Vec<_> = counts.iter().filter(|(_, c)| **c < 0).take(5).collect();
        panic!(
            "committed output differs from the uninterrupted run: {} rows vs {} expected; missing (first 5): {missing:?}; duplicated or unexpected (first 5): {extra:?}\n{}",
            outcome.rows.len(),
            expected.len(),
            outcome.stderr
        );
    }
}

#[test]
fn hashmap_aligned_p1_survives_kills() {
    crash_and_compare("hashmap", false, 1, None);
}

#[test]
fn hashmap_unaligned_p2_survives_kills() {
    crash_and_compare("hashmap", true, 2, None);
}

// Was ignored for a stall: each fired window left a RocksDB range tombstone
// per key group, which made every later scan slower, so a resumed job took
// seconds to its first checkpoint and early rounds were killed before it
// (docs/checkpoints.md). Deletions are point deletions now.
#[test]
fn rocksdb_aligned_p2_survives_kills() {
    crash_and_compare("rocksdb", false, 2, None);
}

/// With a 100-group cache (300 keys a window): windows are evicted into
/// RocksDB between snapshots, and snapshot copies are replaced by evictions.
#[test]
fn rocksdb_unaligned_p1_survives_kills() {
    crash_and_compare("rocksdb", true, 1, Some(100));
}

#[test]
fn hashmap_aligned_p2_survives_kills() {
    crash_and_compare("hashmap", false, 2, None);
}

#[test]
fn hashmap_unaligned_p1_survives_kills() {
    crash_and_compare("hashmap", true, 1, None);
}

/// With a 100-group cache, as above.
#[test]
fn rocksdb_aligned_p1_survives_kills() {
    crash_and_compare("rocksdb", false, 1, Some(100));
}

#[test]
fn rocksdb_unaligned_p2_survives_kills() {
    crash_and_compare("rocksdb", true, 2, None);
}

/// A regular join in the plan: both sides' rows are join state, restored
/// after each kill on either backend.
#[test]
fn regular_join_hashmap_p2_survives_kills() {
    crash_and_compare_job(join_job_sql, "hashmap", false, 2, None, 1);
}

#[test]
fn regular_join_rocksdb_p1_unaligned_survives_kills() {
    crash_and_compare_job(join_job_sql, "rocksdb", true, 1, None, 1);
}

/// An interval join in the plan: its rows and cleanup timers are restored
/// after each kill.
#[test]
fn interval_join_rocksdb_p2_survives_kills() {
    crash_and_compare_job(interval_join_job_sql, "rocksdb", false, 2, None, 4);
}

#[test]
fn interval_join_hashmap_p1_unaligned_survives_kills() {
    crash_and_compare_job(interval_join_job_sql, "hashmap", true, 1, None, 2);
}

/// A temporal join in the plan: waiting rows, versions and timers are
/// restored after each kill.
#[test]
fn temporal_join_rocksdb_p2_survives_kills() {
    crash_and_compare_job(temporal_join_job_sql, "rocksdb", false, 2, None, 2);
}

#[test]
fn temporal_join_hashmap_p1_unaligned_survives_kills() {
    crash_and_compare_job(temporal_join_job_sql, "hashmap", true, 1, None, 2);
}

/// A lookup join in the plan: the table's rows and the rows waiting for
/// its end are restored after each kill.
#[test]
fn lookup_join_rocksdb_p1_survives_kills() {
    crash_and_compare_job(lookup_join_job_sql, "rocksdb", false, 1, None, 2);
}

#[test]
fn lookup_join_hashmap_p2_unaligned_survives_kills() {
    crash_and_compare_job(lookup_join_job_sql, "hashmap", true, 2, None, 2);
}

/// Two sinks fed from the same input, killed and resumed together: as two
/// jobs in one file, each under its own `pipeline.name` (each resumes from
/// its own checkpoints), or as one statement set (one job, one source,
/// checkpointed and restored as a whole). Either way each sink commits
/// exactly an uninterrupted run's rows.
fn two_sinks_survive_kills(statement_set: bool) {
    let work = tempfile::tempdir().unwrap();
    let rows = env_u64("WEIR_CRASH_ROWS", 600_000) / 2;
    let input = work.path().join("input");
    write_input(&input, rows);
    let expected = reference(&input, work.path(), 1);
    assert!(expected.len() > 1000, "reference output too small");

    let (out_a, out_b) = (work.path().join("out-a"), work.path().join("out-b"));
    let mut sql = String::new();
    for (k, v) in [
        ("execution.checkpointing.interval", "250 ms".to_string()),
        (
            "execution.checkpointing.dir",
            work.path().join("checkpoints").display().to_string(),
        ),
        ("rest.port", "0".into()),
        ("execution.buffer-capacity", "4".into()),
        ("execution.batch-size", "2048".into()),
    ] {
        sql.push_str(&format!("SET '{k}' = '{v}';\n"));
    }
    // The reference job's statements, once per sink: `src`, `dst`, INSERT.
    let statements = |out: &Path, job: &str| -> Vec<String> {
        job_sql(&input, out, &[])
            .split(";\n")
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.replace("TABLE src", &format!("TABLE src_{job}"))
                    .replace("TABLE dst", &format!("TABLE dst_{job}"))
                    .replace("INTO dst", &format!("INTO dst_{job}"))
                    + ";\n"
            })
            .collect()
    };
    let (a, b) = (statements(&out_a, "a"), statements(&out_b, "b"));
    if statement_set {
        // One source: both INSERTs read `src_a`.
        sql.push_str(&a[0]);
        sql.push_str(&a[1]);
        sql.push_str(&b[1]);
        sql.push_str("SET 'pipeline.name' = 'two-sinks';\nEXECUTE STATEMENT SET BEGIN\n");
        sql.push_str(&a[2]);
        sql.push_str(&b[2].replace("TABLE src_b", "TABLE src_a"));
        sql.push_str("END;\n");
    } else {
        for (job, statements) in [("a", &a), ("b", &b)] {
            sql.push_str(&statements[0]);
            sql.push_str(&statements[1]);
            sql.push_str(&format!("SET 'pipeline.name' = 'two-jobs-{job}';\n"));
            sql.push_str(&statements[2]);
        }
    }
    let job = work.path().join("job.sql");
    std::fs::write(&job, &sql).unwrap();

    let outcome = run_with_kills(|| weir_run(&job), &job, &out_a, 0x7a0);
    assert!(
        outcome.kills >= 1,
        "finished before the first kill:\n{}",
        outcome.stderr
    );
    let names: &[&str] = if statement_set {
        &["two-sinks"]
    } else {
        &["two-jobs-a", "two-jobs-b"]
    };
    for name in names {
        assert!(
            outcome
                .stderr
                .contains(&format!("Resuming job '{name}' from checkpoint")),
            "job {name} never resumed:\n{}",
            outcome.stderr
        );
    }
    let rows_b = committed_rows(&out_b);
    for (name, rows) in [("a", &outcome.rows), ("b", &rows_b)] {
        assert!(
            *rows == expected,
            "sink {name}: {} rows committed, {} expected\n{}",
            rows.len(),
            expected.len(),
            outcome.stderr
        );
    }
}

#[test]
fn two_jobs_in_one_file_each_resume_their_own_checkpoints() {
    two_sinks_survive_kills(false);
}

#[test]
fn a_statement_set_survives_kills_as_one_job() {
    two_sinks_survive_kills(true);
}

/// What to damage after the kill.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// The newest checkpoint's `_metadata` (one byte flipped).
    NewestMetadata,
    /// A state file of the newest checkpoint, same size, one byte flipped.
    NewestStateFile,
    /// Every retained checkpoint's `_metadata`.
    AllMetadata,
}

fn completed_checkpoints(job_dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(job_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("_metadata").is_file())
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_prefix("chk-")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// The largest file under `dir`.
fn largest_file(dir: &Path) -> std::path::PathBuf {
    let mut best: Option<(u64, std::path::PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "_metadata") {
                let size = entry.metadata().unwrap().len();
                if best.as_ref().is_none_or(|(s, _)| size > *s) {
                    best = Some((size, path));
                }
            }
        }
    }
    best.expect("a state file").1
}

/// Kill a checkpointed job once its newest checkpoint has committed part
/// files, damage what `damage` says, run it again: the committed output is
/// exactly an uninterrupted run's (the damaged checkpoint is skipped with a
/// warning, and what it committed is withdrawn before its rows are written
/// again), or, with nothing usable left, the rerun refuses to start over by
/// itself and `--fresh` does.
fn damage_and_rerun(backend: &str, damage: Damage) {
    let work = tempfile::tempdir().unwrap();
    let rows = env_u64("WEIR_CRASH_ROWS", 600_000);
    let input = work.path().join("input");
    write_input(&input, rows);
    let expected = reference(&input, work.path(), 1);
    let out = work.path().join("out");
    let chk = work.path().join("checkpoints");
    let settings = vec![
        ("pipeline.name", format!("damage-{backend}")),
        ("rest.port", "0".into()),
        ("state.backend.type", backend.to_string()),
        (
            "state.backend.rocksdb.localdir",
            work.path().join("rocksdb").display().to_string(),
        ),
        ("execution.checkpointing.interval", "200 ms".into()),
        ("execution.checkpointing.num-retained", "3".into()),
        ("execution.checkpointing.dir", chk.display().to_string()),
        ("execution.buffer-capacity", "4".into()),
        ("execution.batch-size", "1024".into()),
    ];
    let job = work.path().join("job.sql");
    std::fs::write(&job, job_sql(&input, &out, &settings)).unwrap();

    // Run until the newest completed checkpoint has committed a part file.
    let mut child = weir()
        .arg("run")
        .arg(&job)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let newest = loop {
        assert!(
            Instant::now() < deadline,
            "no checkpoint committed output in time"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the job finished before the kill"
        );
        let job_dir = std::fs::read_dir(&chk)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path());
        let ids = job_dir
            .as_deref()
            .map(completed_checkpoints)
            .unwrap_or_default();
        if let Some(&newest) = ids.last().filter(|_| ids.len() >= 2) {
            let marker = format!("-chk{newest}.");
            let committed = std::fs::read_dir(&out)
                .map(|d| {
                    d.flatten().any(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        // Committed: visible (pre-committed files are hidden).
                        !name.starts_with('.') && name.contains(&marker)
                    })
                })
                .unwrap_or(false);
            if committed {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                break newest;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let job_dir = std::fs::read_dir(&chk)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let retained = completed_checkpoints(&job_dir);
    // A checkpoint may have completed between the look and the kill: the
    // damage covers it too, so that the job falls back past `newest`.
    let damaged = retained.iter().filter(|id| **id >= newest);
    match damage {
        Damage::NewestMetadata => {
            for id in damaged {
                flip_a_byte(&job_dir.join(format!("chk-{id}/_metadata")));
            }
        }
        Damage::NewestStateFile => {
            for id in damaged {
                flip_a_byte(&largest_file(&job_dir.join(format!("chk-{id}"))));
            }
        }
        Damage::AllMetadata => {
            for id in &retained {
                flip_a_byte(&job_dir.join(format!("chk-{id}/_metadata")));
            }
        }
    }

    let rerun = weir().arg("run").arg(&job).output().unwrap();
    let stderr = String::from_utf8_lossy(&rerun.stderr).to_string();
    if let Damage::AllMetadata = damage {
        assert_eq!(rerun.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("no retained checkpoint of job"), "{stderr}");
        for id in &retained {
            assert!(
                stderr.contains(&format!("skipping checkpoint {id}:")),
                "{stderr}"
            );
        }
        assert!(stderr.contains("--fresh"), "{stderr}");
        let fresh = weir().arg("run").arg(&job).arg("--fresh").output().unwrap();
        assert!(
            fresh.status.success(),
            "{}",
            String::from_utf8_lossy(&fresh.stderr)
        );
        return;
    }
    assert!(rerun.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("[WARN] skipping checkpoint {newest}:")),
        "{stderr}"
    );
    if let Damage::NewestStateFile = damage {
        assert!(stderr.contains("does not match its checksum"), "{stderr}");
    }
    assert!(stderr.contains("withdrew"), "{stderr}");
    assert!(
        stderr.contains("newer completed checkpoint")
            && stderr.contains("its sinks take back what they committed"),
        "{stderr}"
    );
    let rows = committed_rows(&out);
    assert!(
        rows == expected,
        "{backend} {damage:?}: {} rows committed, {} expected\n{stderr}",
        rows.len(),
        expected.len()
    );
}

#[test]
fn damaged_newest_metadata_falls_back_exactly_hashmap() {
    damage_and_rerun("hashmap", Damage::NewestMetadata);
}

#[test]
fn damaged_newest_metadata_falls_back_exactly_rocksdb() {
    damage_and_rerun("rocksdb", Damage::NewestMetadata);
}

#[test]
fn damaged_state_file_of_the_same_size_is_skipped_hashmap() {
    damage_and_rerun("hashmap", Damage::NewestStateFile);
}

#[test]
fn damaged_state_file_of_the_same_size_is_skipped_rocksdb() {
    damage_and_rerun("rocksdb", Damage::NewestStateFile);
}

#[test]
fn all_checkpoints_damaged_is_refused_until_fresh() {
    damage_and_rerun("hashmap", Damage::AllMetadata);
}

/// A sink slower than its input (a print sink whose reader drains a few
/// kilobytes at a time) holds the barriers back: checkpoints time out
/// (`execution.checkpointing.timeout`), and once more fail in a row than
/// `tolerable-failed-checkpoints` allows, the job fails over (restarts, per
/// `restart-strategy`), then fails for good.
#[test]
fn a_slow_sink_makes_checkpoints_time_out_until_the_job_fails_over() {
    use std::io::Read;
    let work = tempfile::tempdir().unwrap();
    let job = work.path().join("job.sql");
    std::fs::write(
        &job,
        format!(
            "SET 'pipeline.name' = 'slow-sink';\n\
             SET 'rest.port' = '0';\n\
             SET 'execution.checkpointing.interval' = '100 ms';\n\
             SET 'execution.checkpointing.timeout' = '300 ms';\n\
             SET 'execution.checkpointing.tolerable-failed-checkpoints' = '1';\n\
             SET 'execution.checkpointing.dir' = '{}';\n\
             SET 'restart-strategy.type' = 'fixed-delay';\n\
             SET 'restart-strategy.fixed-delay.attempts' = '1';\n\
             SET 'restart-strategy.fixed-delay.delay' = '100 ms';\n\
             SET 'execution.buffer-capacity' = '2';\n\
             CREATE TABLE g (k BIGINT, s STRING) WITH ('connector' = 'datagen', 'rows-per-second' = '50000', \
               'fields.s.length' = '40');\n\
             CREATE TABLE p (k BIGINT, s STRING) WITH ('connector' = 'print');\n\
             INSERT INTO p SELECT k, s FROM g;\n",
            work.path().join("chk").display()
        ),
    )
    .unwrap();
    let mut child = weir_run(&job)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The slow reader: 8 KB every 20 ms (400 KB/s, far below the rows'
    // 2.5 MB/s), until the process ends.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut total = 0usize;
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
            std::thread::sleep(Duration::from_millis(20));
        }
        total
    });
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the job did not fail over: {}", errors.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let printed = reader.join().unwrap();
    let stderr = errors.join().unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(printed > 0, "the sink printed nothing");
    assert!(
        stderr.contains("expired after") && stderr.contains("execution.checkpointing.timeout"),
        "{stderr}"
    );
    assert!(stderr.contains("Restarting in"), "no failover:\n{stderr}");
    assert!(
        stderr.contains("tolerable-failed-checkpoints is 1"),
        "{stderr}"
    );
}
