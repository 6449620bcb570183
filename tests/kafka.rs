//! The Kafka connector against a real Kafka-protocol broker (`noida-db`,
//! started per test): reading partitions with metadata, startup and
//! bounded modes, offsets committed with checkpoints, per-partition
//! watermarks, the sink's delivery guarantees, exactly-once output under
//! SIGKILL, upsert-kafka, and the errors users see.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::kafka::{broker, Broker};
use common::run_with_kills;

mod common;

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// Runs a file of statements with `weir run`: (succeeded, stdout, stderr).
fn run_sql(dir: &Path, name: &str, sql: &str) -> (bool, String, String) {
    let job = dir.join(format!("{name}.sql"));
    std::fs::write(&job, sql).unwrap();
    let out = weir().arg("run").arg(&job).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn settings(pairs: &[(&str, String)]) -> String {
    let mut s = String::from("SET 'rest.port' = '0';\n");
    for (k, v) in pairs {
        s.push_str(&format!("SET '{k}' = '{v}';\n"));
    }
    s
}

/// The lines of every visible file of a filesystem sink, sorted.
fn file_rows(dir: &Path) -> Vec<String> {
    common::committed_rows(dir)
}

fn json_row(id: i64, name: &str, v: i64, ms: i64) -> Vec<u8> {
    format!(r#"{{"id":{id},"name":"{name}","v":{v},"ms":{ms}}}"#).into_bytes()
}

#[test]
fn reads_every_partition_to_its_end_with_metadata_columns() {
    let b = broker();
    b.create_topic("orders", 3);
    let mut records = Vec::new();
    for i in 0..30i64 {
        records.push((
            (i % 3) as i32,
            Some(format!("k{i}").into_bytes()),
            Some(json_row(
                i,
                &format!("n{}", i % 4),
                i * 10,
                1_700_000_000_000 + i,
            )),
            Some(1_600_000_000_000 + i),
        ));
    }
    b.produce("orders", &records);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sql = format!(
        "{}CREATE TABLE src (id BIGINT, name STRING, v BIGINT, \
           part INT METADATA FROM 'partition' VIRTUAL, off BIGINT METADATA FROM 'offset' VIRTUAL, \
           ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', tp STRING METADATA FROM 'topic' VIRTUAL) \
         WITH ('connector' = 'kafka', 'topic' = 'orders', 'properties.bootstrap.servers' = '{}', \
           'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json');\n\
         CREATE TABLE dst (id BIGINT, name STRING, v BIGINT, part INT, off BIGINT, ts BIGINT, tp STRING) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         INSERT INTO dst SELECT id, name, v, part, off, CAST(ts AS BIGINT), tp FROM src;\n",
        settings(&[("parallelism.default", "2".into())]),
        b.bootstrap,
        out.display()
    );
    let (ok, _, err) = run_sql(dir.path(), "job", &sql);
    assert!(ok, "{err}");
    let mut expected: Vec<String> = (0..30i64)
        .map(|i| {
            format!(
                "{i},n{},{},{},{},{},orders",
                i % 4,
                i * 10,
                i % 3,
                i / 3,
                1_600_000_000_000 + i
            )
        })
        .collect();
    expected.sort();
    assert_eq!(file_rows(&out), expected);
}

/// `rows` JSON rows over `partitions` partitions of `topic`: ids in
/// order, 300 names, event time 5 ms apart.
fn produce_input(b: &Broker, topic: &str, partitions: i32, rows: i64) {
    b.create_topic(topic, partitions);
    let mut seed = 42u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let records: Vec<_> = (0..rows)
        .map(|i| {
            let name = format!("k{}", next() % 300);
            let v = (next() % 100) as i64;
            (
                (i % partitions as i64) as i32,
                Some(name.clone().into_bytes()),
                Some(json_row(i, &name, v, 1_700_000_000_000 + i * 5)),
                None,
            )
        })
        .collect();
    b.produce(topic, &records);
}

/// Kafka → 1 s tumbling windows → Kafka.
fn windowed_job(
    b: &Broker,
    input: &str,
    output: &str,
    group: &str,
    sink: &str,
    settings_sql: &str,
) -> String {
    format!(
        "{settings_sql}CREATE TABLE src (id BIGINT, name STRING, v BIGINT, ms BIGINT, \
           ts AS TO_TIMESTAMP_MILLIS(ms), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'kafka', 'topic' = '{input}', 'properties.bootstrap.servers' = '{bs}', \
           'properties.group.id' = '{group}', 'scan.startup.mode' = 'earliest-offset', \
           'scan.bounded.mode' = 'latest-offset', 'format' = 'json');\n\
         CREATE TABLE dst (name STRING, window_end TIMESTAMP(3), total BIGINT, n BIGINT) \
         WITH ('connector' = 'kafka', 'topic' = '{output}', 'properties.bootstrap.servers' = '{bs}', \
           'format' = 'json', {sink});\n\
         INSERT INTO dst SELECT name, window_end, SUM(v), COUNT(*) \
           FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
           GROUP BY name, window_start, window_end;\n",
        bs = b.bootstrap
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// `rescale_from`: first run the job at this parallelism until it has
/// taken a checkpoint, kill it, then go on (and crash) at `parallelism`.
fn exactly_once_survives_kills(backend: &str, parallelism: usize, unaligned: bool) {
    exactly_once_survives_kills_from(backend, parallelism, unaligned, None)
}

fn exactly_once_survives_kills_from(
    backend: &str,
    parallelism: usize,
    unaligned: bool,
    rescale_from: Option<usize>,
) {
    let b = broker();
    let rows = std::env::var("WEIR_KAFKA_CRASH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    produce_input(&b, "in", 3, rows);
    b.create_topic("ref", 2);
    b.create_topic("out", 2);
    let dir = tempfile::tempdir().unwrap();
    // The uninterrupted run, no checkpoints.
    let reference = windowed_job(
        &b,
        "in",
        "ref",
        "ref-group",
        "'sink.delivery-guarantee' = 'at-least-once'",
        &settings(&[("parallelism.default", parallelism.to_string())]),
    );
    let (ok, _, err) = run_sql(dir.path(), "reference", &reference);
    assert!(ok, "{err}");
    let expected = sorted(b.read_all("ref", 2, "read_committed"));
    assert!(
        expected.len() > 1000,
        "reference output too small: {}",
        expected.len()
    );

    let job = dir.path().join("job.sql");
    let job_at = |parallelism: usize| {
        windowed_job(
        &b,
        "in",
        "out",
        "job-group",
        "'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'crash-job'",
        &settings(&[
            ("pipeline.name", "kafka-crash".to_string()),
            ("parallelism.default", parallelism.to_string()),
            ("state.backend.type", backend.to_string()),
            (
                "state.backend.rocksdb.localdir",
                dir.path().join("rocksdb").display().to_string(),
            ),
            ("execution.checkpointing.interval", "250 ms".into()),
            (
                "execution.checkpointing.dir",
                dir.path().join("checkpoints").display().to_string(),
            ),
            ("execution.checkpointing.unaligned.enabled", unaligned.to_string()),
            ("execution.buffer-capacity", "4".into()),
            ("execution.batch-size", "2048".into()),
        ]),
    )
    };
    let mut rescaled = false;
    if let Some(first) = rescale_from {
        std::fs::write(&job, job_at(first)).unwrap();
        let mut child = weir()
            .arg("run")
            .arg(&job)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let checkpoints = dir.path().join("checkpoints");
        while common::walk(&checkpoints)
            .iter()
            .all(|p| !p.ends_with("_metadata"))
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no checkpoint at p={first}"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the job at p={first} ended before a checkpoint"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        rescaled = true;
    }
    std::fs::write(&job, job_at(parallelism)).unwrap();
    let seed = std::env::var("WEIR_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_u64)
        ^ (parallelism as u64) << 8;
    let outcome = run_with_kills(
        || {
            let mut c = weir();
            c.arg("run").arg(&job);
            c
        },
        &job,
        &dir.path().join("unused"),
        seed,
    );
    assert!(
        outcome.kills >= 1 || rescaled,
        "the job finished before the first kill:\n{}",
        outcome.stderr
    );
    assert!(
        outcome.resumed >= 1,
        "no restart resumed from a checkpoint:\n{}",
        outcome.stderr
    );
    let got = sorted(b.read_all("out", 2, "read_committed"));
    eprintln!(
        "{backend} p={parallelism} unaligned={unaligned}: {} kills, {} resumed, {} rows",
        outcome.kills,
        outcome.resumed,
        got.len()
    );
    if got != expected {
        let mut counts: std::collections::HashMap<&String, i64> = Default::default();
        for r in &expected {
            *counts.entry(r).or_default() += 1;
        }
        for r in &got {
            *counts.entry(r).or_default() -= 1;
        }
        let missing: Vec<_> = counts.iter().filter(|(_, c)| **c > 0).take(5).collect();
        let extra: Vec<_> = counts.iter().filter(|(_, c)| **c < 0).take(5).collect();
        panic!(
            "read_committed output differs from the uninterrupted run: {} rows vs {} expected; missing: {missing:?}; duplicated: {extra:?}\n{}",
            got.len(),
            expected.len(),
            outcome.stderr
        );
    }
    // Offsets reach the group once the final checkpoint completed.
    assert_eq!(
        b.committed("job-group", "in", 3),
        b.end_offsets("in", 3),
        "the group's offsets are not the topic's end:\n{}",
        &outcome.stderr[outcome.stderr.len().saturating_sub(4000)..]
    );
}

#[test]
fn kafka_to_kafka_exactly_once_hashmap_p1_survives_kills() {
    exactly_once_survives_kills("hashmap", 1, false);
}

#[test]
fn kafka_to_kafka_exactly_once_rocksdb_p2_unaligned_survives_kills() {
    exactly_once_survives_kills("rocksdb", 2, true);
}

#[test]
fn kafka_to_kafka_exactly_once_hashmap_p2_survives_kills() {
    exactly_once_survives_kills("hashmap", 2, false);
}

#[test]
fn kafka_to_kafka_exactly_once_rocksdb_p1_survives_kills() {
    exactly_once_survives_kills("rocksdb", 1, false);
}

/// A checkpoint taken at parallelism 1 restored at 2: partitions, window
/// state and the sink's pre-committed transaction move to the new subtasks.
#[test]
fn kafka_to_kafka_exactly_once_restores_p1_checkpoint_at_p2() {
    exactly_once_survives_kills_from("hashmap", 2, false, Some(1));
}
