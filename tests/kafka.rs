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
