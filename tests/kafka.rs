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
            Some(base_ms() + i),
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
                base_ms() + i
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

/// Record timestamps of the tests start here: an hour ago, so that the
/// broker's time-based retention keeps them.
fn base_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 3_600_000) / 1_000_000 * 1_000_000
}

/// A one-partition topic of ids 0..n, record timestamps base + 1000·(id+1).
fn numbered_topic(b: &Broker, topic: &str, from: i64, n: i64) {
    let records: Vec<_> = (from..from + n)
        .map(|i| {
            (
                0,
                None,
                Some(format!(r#"{{"id":{i}}}"#).into_bytes()),
                Some(base_ms() + 1000 * (i + 1)),
            )
        })
        .collect();
    b.produce(topic, &records);
}

/// Reads `topic` with these extra options into a file; the ids read.
fn read_ids(
    b: &Broker,
    dir: &Path,
    name: &str,
    topic: &str,
    options: &str,
    settings_sql: &str,
) -> std::result::Result<Vec<i64>, String> {
    let out = dir.join(name);
    let sql = format!(
        "{}{settings_sql}CREATE TABLE src (id BIGINT) WITH ('connector' = 'kafka', 'topic' = '{topic}', \
           'properties.bootstrap.servers' = '{}', 'format' = 'json', {options});\n\
         CREATE TABLE dst (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         INSERT INTO dst SELECT id FROM src;\n",
        settings(&[]),
        b.bootstrap,
        out.display()
    );
    let (ok, _, err) = run_sql(dir, name, &sql);
    if !ok {
        return Err(err);
    }
    let mut ids: Vec<i64> = file_rows(&out).iter().map(|l| l.parse().unwrap()).collect();
    ids.sort();
    if std::env::var_os("WEIR_DEBUG_KAFKA").is_some() {
        eprintln!("{name}: {ids:?}\n{err}");
    }
    Ok(ids)
}

#[test]
fn startup_and_bounded_modes_choose_the_rows_read() {
    let b = broker();
    b.create_topic("modes", 1);
    numbered_topic(&b, "modes", 0, 10);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let range = |a: i64, z: i64| (a..z).collect::<Vec<_>>();
    let bounded = "'scan.bounded.mode' = 'latest-offset'";
    assert_eq!(
        read_ids(
            &b,
            d,
            "earliest",
            "modes",
            &format!("'scan.startup.mode' = 'earliest-offset', {bounded}"),
            ""
        )
        .unwrap(),
        range(0, 10)
    );
    assert_eq!(
        read_ids(&b, d, "specific", "modes",
            "'scan.startup.mode' = 'specific-offsets', 'scan.startup.specific-offsets' = 'partition:0,offset:3', \
             'scan.bounded.mode' = 'specific-offsets', 'scan.bounded.specific-offsets' = 'partition:0,offset:7', \
             'properties.group.id' = 'unused'", "").unwrap(),
        range(3, 7)
    );
    assert_eq!(
        read_ids(
            &b,
            d,
            "timestamp",
            "modes",
            &format!(
                "'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '{}', \
             'scan.bounded.mode' = 'timestamp', 'scan.bounded.timestamp-millis' = '{}'",
                base_ms() + 5000,
                base_ms() + 8000
            ),
            ""
        )
        .unwrap(),
        range(4, 7)
    );
    assert_eq!(
        read_ids(
            &b,
            d,
            "latest",
            "modes",
            &format!("'scan.startup.mode' = 'latest-offset', {bounded}"),
            ""
        )
        .unwrap(),
        Vec::<i64>::new()
    );
    // group-offsets (the default): nothing committed yet and no reset
    // strategy is an error naming the group and partition.
    let err = read_ids(
        &b,
        d,
        "nogroup",
        "modes",
        &format!("'properties.group.id' = 'g1', {bounded}"),
        "",
    )
    .unwrap_err();
    assert!(
        err.contains("'g1' has no committed offset for modes-0")
            && err.contains("auto.offset.reset"),
        "{err}"
    );
    // A checkpointed run commits its offsets when its final checkpoint
    // completes; the next run of the group starts there.
    let checkpointed = settings(&[
        ("execution.checkpointing.interval", "100 ms".into()),
        (
            "execution.checkpointing.dir",
            d.join("chk").display().to_string(),
        ),
    ])
    .replace("SET 'rest.port' = '0';\n", "");
    let group = format!(
        "'properties.group.id' = 'g2', 'properties.auto.offset.reset' = 'earliest', {bounded}"
    );
    assert_eq!(
        read_ids(&b, d, "group1", "modes", &group, &checkpointed).unwrap(),
        range(0, 10)
    );
    assert_eq!(b.committed("g2", "modes", 1), vec![10]);
    numbered_topic(&b, "modes", 10, 5);
    assert_eq!(
        read_ids(
            &b,
            d,
            "group2",
            "modes",
            &group,
            &checkpointed.replace("chk", "chk2")
        )
        .unwrap(),
        range(10, 15)
    );
    // Without checkpoints nothing is committed (as in Flink).
    assert_eq!(
        read_ids(&b, d, "group3", "modes", &group.replace("g2", "g3"), "").unwrap(),
        range(0, 15)
    );
    assert_eq!(b.committed("g3", "modes", 1), vec![-1]);
}

#[test]
fn malformed_records_name_topic_partition_and_offset_or_are_skipped() {
    let b = broker();
    b.create_topic("bad", 1);
    let mut records: Vec<_> = (0..5i64)
        .map(|i| (0, None, Some(format!(r#"{{"id":{i}}}"#).into_bytes()), None))
        .collect();
    records[3].2 = Some(b"{\"id\": oops".to_vec());
    b.produce("bad", &records);
    let dir = tempfile::tempdir().unwrap();
    let opts = "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'";
    let err = read_ids(&b, dir.path(), "strict", "bad", opts, "").unwrap_err();
    assert!(err.contains("topic 'bad', partition 0, offset 3"), "{err}");
    let ids = read_ids(
        &b,
        dir.path(),
        "lenient",
        "bad",
        &format!("{opts}, 'json.ignore-parse-errors' = 'true'"),
        "",
    )
    .unwrap();
    assert_eq!(ids, vec![0, 1, 2, 4]);
}

#[test]
fn bad_options_missing_topics_and_unreachable_brokers_are_named() {
    let b = broker();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let opts = "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'";
    let err = read_ids(
        &b,
        d,
        "unknown",
        "t",
        &format!("{opts}, 'scan.startup.mod' = 'x'"),
        "",
    )
    .unwrap_err();
    assert!(
        err.contains("unknown option 'scan.startup.mod'") && err.contains("scan.startup.mode"),
        "{err}"
    );
    let err = read_ids(&b, d, "mode", "t", "'scan.startup.mode' = 'first'", "").unwrap_err();
    assert!(
        err.contains("'scan.startup.mode' must be one of earliest-offset"),
        "{err}"
    );
    let err = read_ids(&b, d, "missing", "no_such_topic", opts, "").unwrap_err();
    assert!(
        err.contains("topic 'no_such_topic' does not exist"),
        "{err}"
    );
    // Nothing listens on port 9: a clear error within the metadata timeout.
    let started = Instant::now();
    let out = d.join("unreachable");
    let sql = format!(
        "{}CREATE TABLE src (id BIGINT) WITH ('connector' = 'kafka', 'topic' = 't', \
           'properties.bootstrap.servers' = '127.0.0.1:9', 'format' = 'json', {opts});\n\
         CREATE TABLE dst (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         INSERT INTO dst SELECT id FROM src;\n",
        settings(&[]),
        out.display()
    );
    let (ok, _, err) = run_sql(d, "unreachable", &sql);
    assert!(!ok);
    assert!(err.contains("127.0.0.1:9"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn explain_masks_credentials() {
    let b = broker();
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "{}CREATE TABLE src (id BIGINT) WITH ('connector' = 'kafka', 'topic' = 't', \
           'properties.bootstrap.servers' = '{}', 'format' = 'json', 'scan.startup.mode' = 'earliest-offset', \
           'properties.sasl.jaas.config' = 'org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"hunter2\";', \
           'properties.ssl.key.password' = 'swordfish');\n\
         EXPLAIN SELECT id FROM src;\n",
        settings(&[]),
        b.bootstrap
    );
    let (ok, out, err) = run_sql(dir.path(), "explain", &sql);
    assert!(ok, "{err}");
    assert!(out.contains("connector=[kafka]"), "{out}");
    assert!(out.contains("properties.sasl.jaas.config=[****]"), "{out}");
    assert!(
        !out.contains("hunter2") && !out.contains("swordfish") && !err.contains("hunter2"),
        "{out}{err}"
    );
}

/// One partition far ahead of the other in event time: the watermark is
/// the minimum over the partitions, so no row of the slow one is late.
#[test]
fn a_partition_ahead_in_event_time_makes_no_row_late() {
    let b = broker();
    b.create_topic("skew", 2);
    let base = 1_700_000_000_000i64;
    let mut records = Vec::new();
    // Partition 1 first and 100 s ahead.
    for i in 0..5000i64 {
        records.push((
            1,
            None,
            Some(json_row(i, "ahead", 1, base + 100_000 + i * 10)),
            None,
        ));
    }
    for i in 0..5000i64 {
        records.push((0, None, Some(json_row(i, "behind", 1, base + i * 10)), None));
    }
    b.produce("skew", &records);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sql = format!(
        "{}CREATE TABLE src (id BIGINT, name STRING, v BIGINT, ms BIGINT, \
           ts AS TO_TIMESTAMP_MILLIS(ms), WATERMARK FOR ts AS ts) \
         WITH ('connector' = 'kafka', 'topic' = 'skew', 'properties.bootstrap.servers' = '{}', \
           'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json');\n\
         CREATE TABLE dst (name STRING, n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         INSERT INTO dst SELECT name, COUNT(*) FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '10' SECOND)) \
           GROUP BY name, window_start, window_end;\n",
        settings(&[("execution.batch-size", "64".into())]),
        b.bootstrap,
        out.display()
    );
    let (ok, _, err) = run_sql(dir.path(), "skew", &sql);
    assert!(ok, "{err}");
    let rows = file_rows(&out);
    let total = |name: &str| -> i64 {
        rows.iter()
            .filter(|r| r.starts_with(&format!("{name},")))
            .map(|r| r.split(',').nth(1).unwrap().parse::<i64>().unwrap())
            .sum()
    };
    assert_eq!(total("behind"), 5000, "{rows:?}");
    assert_eq!(total("ahead"), 5000, "{rows:?}");
}

#[test]
fn key_fields_round_trip_and_partitioners_place_rows() {
    let b = broker();
    b.create_topic("keyed", 3);
    b.create_topic("fixed", 2);
    b.create_topic("spread", 2);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let table = |name: &str, topic: &str, extra: &str| {
        format!(
            "CREATE TABLE {name} (name STRING, v BIGINT) WITH ('connector' = 'kafka', 'topic' = '{topic}', \
               'properties.bootstrap.servers' = '{}', 'key.format' = 'raw', 'key.fields' = 'name', \
               'value.format' = 'json', 'value.fields-include' = 'EXCEPT_KEY', \
               'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'{extra});\n",
            b.bootstrap
        )
    };
    let write = format!(
        "{}{}{}{}INSERT INTO k SELECT * FROM (VALUES ('a', 1), ('b', 2), ('a', 3), ('c', 4)) AS t(name, v);\n",
        settings(&[]),
        table("k", "keyed", ""),
        "",
        ""
    );
    let (ok, _, err) = run_sql(d, "write", &write);
    assert!(ok, "{err}");
    let messages = b.read_messages("keyed", 3, "read_committed");
    let mut kv: Vec<(String, String)> = messages
        .iter()
        .map(|(_, _, k, v)| (k.clone(), v.clone()))
        .collect();
    kv.sort();
    assert_eq!(
        kv,
        vec![
            ("a".to_string(), r#"{"v":1}"#.to_string()),
            ("a".to_string(), r#"{"v":3}"#.to_string()),
            ("b".to_string(), r#"{"v":2}"#.to_string()),
            ("c".to_string(), r#"{"v":4}"#.to_string()),
        ]
    );
    // Equal keys land in one partition (the default partitioner hashes them).
    let partitions_of_a: std::collections::BTreeSet<i32> = messages
        .iter()
        .filter(|m| m.2 == "a")
        .map(|m| m.0)
        .collect();
    assert_eq!(partitions_of_a.len(), 1);
    // Read back: the key column comes from the message key.
    let out = d.join("back");
    let read = format!(
        "{}{}CREATE TABLE dst (name STRING, v BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         INSERT INTO dst SELECT * FROM k;\n",
        settings(&[]),
        table("k", "keyed", ""),
        out.display()
    );
    let (ok, _, err) = run_sql(d, "read", &read);
    assert!(ok, "{err}");
    assert_eq!(file_rows(&out), vec!["a,1", "a,3", "b,2", "c,4"]);

    // fixed: subtask i writes partition i; round-robin spreads evenly.
    let many = "(VALUES ('a', 1), ('a', 2), ('a', 3), ('a', 4), ('a', 5), ('a', 6), ('a', 7), ('a', 8)) AS t(name, v)";
    let write = format!(
        "{}{}{}INSERT INTO f SELECT * FROM {many};\nINSERT INTO s SELECT * FROM {many};\n",
        settings(&[]),
        table("f", "fixed", ", 'sink.partitioner' = 'fixed'"),
        table("s", "spread", ", 'sink.partitioner' = 'round-robin'"),
    );
    let (ok, _, err) = run_sql(d, "partitioners", &write);
    assert!(ok, "{err}");
    let fixed = b.read_messages("fixed", 2, "read_committed");
    assert_eq!(fixed.len(), 8);
    assert!(fixed.iter().all(|m| m.0 == 0), "{fixed:?}");
    let spread = b.read_messages("spread", 2, "read_committed");
    assert_eq!(spread.iter().filter(|m| m.0 == 0).count(), 4, "{spread:?}");
    assert_eq!(spread.iter().filter(|m| m.0 == 1).count(), 4, "{spread:?}");
}

/// An updating aggregate into upsert-kafka: the latest message per key is
/// the final result, a row that goes away is a tombstone.
#[test]
fn upsert_kafka_sink_writes_the_latest_row_per_key() {
    let b = broker();
    b.create_topic("counts", 2);
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "{}CREATE TABLE counts (name STRING, n BIGINT, PRIMARY KEY (name) NOT ENFORCED) \
           WITH ('connector' = 'upsert-kafka', 'topic' = 'counts', 'properties.bootstrap.servers' = '{}', \
           'key.format' = 'raw', 'value.format' = 'json');\n\
         INSERT INTO counts SELECT name, COUNT(*) FROM (VALUES ('a', 0), ('b', 0), ('a', 0), ('c', 0), ('a', 0), ('b', 0)) AS t(name, x) GROUP BY name;\n",
        settings(&[]),
        b.bootstrap
    );
    let (ok, _, err) = run_sql(dir.path(), "upsert", &sql);
    assert!(ok, "{err}");
    let mut latest: std::collections::BTreeMap<String, String> = Default::default();
    for (_, _, k, v) in b.read_messages("counts", 2, "read_committed") {
        latest.insert(k, v);
    }
    let latest: Vec<(String, String)> = latest.into_iter().collect();
    assert_eq!(
        latest,
        vec![
            ("a".to_string(), r#"{"name":"a","n":3}"#.to_string()),
            ("b".to_string(), r#"{"name":"b","n":2}"#.to_string()),
            ("c".to_string(), r#"{"name":"c","n":1}"#.to_string()),
        ]
    );
}
