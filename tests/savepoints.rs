//! Savepoints as golden runs: a job is stopped with a savepoint part-way,
//! restored (at another parallelism, into the other backend, or as a
//! changed query), and what both runs committed together must equal one
//! uninterrupted run's output, row for row. Also: incompatible and
//! unclaimed state are refused before the job starts, `EXPLAIN RESTORE`,
//! disposal, a savepoint taken while checkpoints run, a damaged savepoint.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::committed_rows;
use weir::{JobHandle, StreamContext};

mod common;

/// Nexmark at a fixed rate (event time is spaced by the rate, so every run
/// sees the same events at the same times, and the job runs long enough
/// to be stopped part-way).
const EVENTS: u64 = 60_000;
const RATE: u64 = 30_000;

const QUERY: &str = "INSERT INTO counts SELECT auction, window_end, COUNT(*), MAX(price) \
     FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '500' MILLISECOND)) \
     GROUP BY auction, window_start, window_end";

async fn context(out: &Path, settings: &[(&str, String)]) -> StreamContext {
    let mut builder = StreamContext::builder()
        .set("execution.batch-size", "256")
        .unwrap();
    for (k, v) in settings {
        builder = builder.set(k, v).unwrap();
    }
    let mut ctx = builder.build();
    let ddl = std::fs::read_to_string("benches/nexmark/ddl.sql")
        .unwrap()
        .replace(
            "'events.num' = '10000000'",
            &format!(
            "'events.num' = '{EVENTS}', 'first-event.rate' = '{RATE}', 'next-event.rate' = '{RATE}'"
        ),
        );
    ctx.sql(&ddl).await.unwrap();
    ctx.sql(&format!(
        "CREATE TABLE counts (auction BIGINT, window_end TIMESTAMP(3), bids BIGINT, top BIGINT) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        out.display()
    ))
    .await
    .unwrap();
    ctx
}

async fn reference(dir: &Path) -> Vec<String> {
    let out = dir.join("reference");
    let mut ctx = context(&out, &[]).await;
    ctx.insert(QUERY).await.unwrap().wait().await.unwrap();
    let rows = committed_rows(&out);
    assert!(rows.len() > 100, "{} rows", rows.len());
    rows
}

/// Waits until the job's sources produced `n` rows.
async fn wait_for_input(job: &JobHandle, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let produced: u64 = job
            .metrics()
            .iter()
            .filter(|(name, _)| name.starts_with("TableSourceScan"))
            .map(|(_, m)| m.records_out)
            .sum();
        if produced >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job made no progress"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn settings(parallelism: usize, backend: &str, savepoints: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("parallelism.default", parallelism.to_string()),
        ("state.backend.type", backend.to_string()),
        (
            "execution.checkpointing.savepoint-dir",
            savepoints.display().to_string(),
        ),
    ]
}

/// Runs the query, stops it with a savepoint after a third of the input,
/// and returns the savepoint's path and what the run committed.
async fn stop_part_way(
    dir: &Path,
    name: &str,
    settings: &[(&str, String)],
) -> (String, Vec<String>) {
    stop_part_way_draining(dir, name, settings, false).await
}

/// The same, draining the job (every window fires) with `drain`.
async fn stop_part_way_draining(
    dir: &Path,
    name: &str,
    settings: &[(&str, String)],
    drain: bool,
) -> (String, Vec<String>) {
    let out = dir.join(format!("{name}-before"));
    let mut ctx = context(&out, settings).await;
    let job = ctx.insert(QUERY).await.unwrap();
    wait_for_input(&job, EVENTS / 3).await;
    let path = job.stop_with_savepoint(None, drain).await.unwrap();
    assert_eq!(job.status(), weir::JobStatus::Finished);
    (path, committed_rows(&out))
}

/// Restores `savepoint` into `query` and runs it to the end.
async fn restore(
    dir: &Path,
    name: &str,
    settings: &[(&str, String)],
    savepoint: &str,
    query: &str,
) -> Vec<String> {
    let out = dir.join(format!("{name}-after"));
    let mut s = settings.to_vec();
    s.push(("execution.savepoint.path", savepoint.to_string()));
    let mut ctx = context(&out, &s).await;
    ctx.insert(query).await.unwrap().wait().await.unwrap();
    committed_rows(&out)
}

/// Asserts equal multisets of rows, showing a few differences if not.
fn assert_same(got: &[String], expected: &[String], what: &str) {
    if got == expected {
        return;
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|r| !got.contains(r))
        .take(5)
        .collect();
    let extra: Vec<&String> = got
        .iter()
        .filter(|r| !expected.contains(r))
        .take(5)
        .collect();
    panic!(
        "{what}: {} rows, expected {}; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
        got.len(),
        expected.len()
    );
}

fn union(mut a: Vec<String>, b: Vec<String>) -> Vec<String> {
    a.extend(b);
    a.sort();
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_restore_at_another_parallelism_and_backend() {
    let dir = tempfile::tempdir().unwrap();
    let expected = reference(dir.path()).await;
    let sp = dir.path().join("savepoints");
    for (name, (p1, b1), (p2, b2)) in [
        ("p1-hashmap-to-p2-rocksdb", (1, "hashmap"), (2, "rocksdb")),
        ("p2-rocksdb-to-p1-hashmap", (2, "rocksdb"), (1, "hashmap")),
    ] {
        let (path, before) = stop_part_way(dir.path(), name, &settings(p1, b1, &sp)).await;
        assert!(
            std::path::Path::new(&path).join("_metadata").is_file(),
            "{name}: {path}"
        );
        let after = restore(dir.path(), name, &settings(p2, b2, &sp), &path, QUERY).await;
        assert!(
            !after.is_empty() && before.len() < expected.len(),
            "{name}: stopped part-way ({} rows before), the restored job produced rows",
            before.len()
        );
        assert_same(
            &union(before, after),
            &expected,
            &format!("{name}: stop + restore equals an uninterrupted run"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_query_keeps_its_state_and_an_incompatible_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let expected = reference(dir.path()).await;
    let sp = dir.path().join("savepoints");
    let s = settings(2, "hashmap", &sp);
    let (path, before) = stop_part_way(dir.path(), "changed", &s).await;

    // Incompatible: the aggregate's keys and accumulators changed. Refused
    // when the statement runs, naming the operator and the change.
    let mut refused = s.clone();
    refused.push(("execution.savepoint.path", path.clone()));
    let mut ctx = context(&dir.path().join("refused"), &refused).await;
    let err = ctx
        .insert(
            "INSERT INTO counts SELECT auction, window_end, SUM(bidder), MAX(price) \
             FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '500' MILLISECOND)) \
             GROUP BY auction, bidder, window_start, window_end",
        )
        .await
        .err()
        .expect("an incompatible restore is refused")
        .to_string();
    assert!(err.contains("WindowAggregate("), "{err}");
    assert!(err.contains("keys changed from"), "{err}");
    assert!(err.contains("aggregates changed from"), "{err}");
    assert!(committed_rows(&dir.path().join("refused")).is_empty());

    // EXPLAIN RESTORE says the same before anything runs.
    let explained = ctx
        .sql(&format!(
            "EXPLAIN RESTORE FROM '{path}' INSERT INTO counts SELECT auction, window_end, COUNT(*), MAX(price) \
             FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '500' MILLISECOND)) \
             GROUP BY auction, window_start, window_end HAVING COUNT(*) > 0"
        ))
        .await
        .unwrap();
    let weir::StatementResult::Text(text) = &explained[0] else {
        panic!("EXPLAIN RESTORE shows text")
    };
    assert!(text.contains("RESTORED"), "{text}");
    assert!(text.contains("can be restored"), "{text}");

    // Compatible: a filter added after the aggregate (it drops nothing, so
    // the output must be the uninterrupted run's).
    let after = restore(
        dir.path(),
        "changed",
        &s,
        &path,
        "INSERT INTO counts SELECT auction, window_end, COUNT(*), MAX(price) \
         FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '500' MILLISECOND)) \
         GROUP BY auction, window_start, window_end HAVING COUNT(*) > 0",
    )
    .await;
    assert_same(&union(before, after), &expected, "changed query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclaimed_state_is_refused_unless_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let sp = dir.path().join("savepoints");
    let s = settings(1, "hashmap", &sp);
    let (path, _) = stop_part_way(dir.path(), "unclaimed", &s).await;
    let stateless = "INSERT INTO counts SELECT auction, dateTime, bidder, price FROM bid";
    let mut with_path = s.clone();
    with_path.push(("execution.savepoint.path", path.clone()));
    let mut ctx = context(&dir.path().join("unclaimed-refused"), &with_path).await;
    let err = ctx.insert(stateless).await.err().unwrap().to_string();
    assert!(err.contains("no operator of this job claims"), "{err}");
    assert!(err.contains("ignore-unclaimed-state"), "{err}");

    with_path.push(("execution.savepoint.ignore-unclaimed-state", "true".into()));
    let out = dir.path().join("unclaimed-ignored");
    let mut ctx = context(&out, &with_path).await;
    ctx.insert(stateless).await.unwrap().wait().await.unwrap();
    let rows = committed_rows(&out);
    // The source resumed from its position: only the bids not read before.
    assert!(
        !rows.is_empty() && rows.len() < EVENTS as usize * 46 / 50,
        "{}",
        rows.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_while_checkpointing_does_not_disturb_it_and_disposal_removes_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let expected = reference(dir.path()).await;
    let sp = dir.path().join("savepoints");
    let chk = dir.path().join("checkpoints");
    let mut s = settings(2, "rocksdb", &sp);
    s.extend([
        ("pipeline.name", "savepoint-while-checkpointing".to_string()),
        ("execution.checkpointing.interval", "100 ms".to_string()),
        ("execution.checkpointing.dir", chk.display().to_string()),
    ]);
    let out = dir.path().join("running");
    let mut ctx = context(&out, &s).await;
    let job = ctx.insert(QUERY).await.unwrap();
    wait_for_input(&job, EVENTS / 4).await;
    let first = job.savepoint(None).await.unwrap();
    let second = job
        .savepoint(Some(&sp.display().to_string()))
        .await
        .unwrap();
    assert_ne!(first, second);
    job.wait().await.unwrap();
    assert_same(
        &committed_rows(&out),
        &expected,
        "the job's output is undisturbed",
    );
    let stats = job.checkpoints();
    let savepoint_ids: Vec<u64> = stats.iter().filter(|c| c.savepoint).map(|c| c.id).collect();
    assert_eq!(savepoint_ids.len(), 2, "{stats:?}");
    assert!(
        stats
            .iter()
            .any(|c| !c.savepoint && c.status == "COMPLETED" && c.id > savepoint_ids[1]),
        "checkpoints went on after the savepoints: {stats:?}"
    );

    // Disposal deletes the one savepoint, nothing else.
    let checkpoints_before = files_under(&chk);
    assert!(!checkpoints_before.is_empty());
    ctx.sql(&format!("DISPOSE SAVEPOINT '{first}'"))
        .await
        .unwrap();
    assert!(!Path::new(&first).exists(), "{first} is gone");
    assert!(
        Path::new(&second).join("_metadata").is_file(),
        "the other savepoint stays"
    );
    assert_eq!(
        files_under(&chk),
        checkpoints_before,
        "checkpoints untouched"
    );
    let err = ctx
        .sql(&format!("DISPOSE SAVEPOINT '{}'", chk.display()))
        .await
        .err()
        .expect("a folder that is not a savepoint is not deleted")
        .to_string();
    assert!(err.contains("_metadata"), "{err}");
    assert_eq!(files_under(&chk), checkpoints_before);

    // A damaged savepoint is a clear error. A flipped byte keeps the file's
    // size: the file's checksum in the metadata catches it before the job
    // starts, naming the file, and nothing is committed.
    let snap = find_file(Path::new(&second), "state.snap").expect("a state file");
    let mut bytes = std::fs::read(&snap).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&snap, &bytes).unwrap();
    let mut damaged = settings(1, "hashmap", &sp);
    damaged.push(("execution.savepoint.path", second.clone()));
    let flipped_out = dir.path().join("flipped");
    let mut ctx = context(&flipped_out, &damaged).await;
    let err = ctx
        .insert(QUERY)
        .await
        .err()
        .expect("a corrupt savepoint is refused")
        .to_string();
    assert!(
        err.contains("state.snap") && err.contains("does not match its checksum"),
        "{err}"
    );
    assert!(committed_rows(&flipped_out).is_empty());
    // A truncated file is refused before the job starts.
    let len = std::fs::metadata(&snap).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&snap)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let mut damaged = settings(1, "hashmap", &sp);
    damaged.push(("execution.savepoint.path", second.clone()));
    let mut ctx = context(&dir.path().join("damaged"), &damaged).await;
    let err = ctx.insert(QUERY).await.err().unwrap().to_string();
    assert!(err.contains("execution.savepoint.path"), "{err}");
    assert!(err.contains("bytes"), "{err}");
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    files_under(dir)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_checkpoint_restores_at_another_parallelism_and_backend() {
    let dir = tempfile::tempdir().unwrap();
    let expected = reference(dir.path()).await;
    let chk = dir.path().join("checkpoints");
    // One output folder for both runs, as when a job is started again.
    let out = dir.path().join("out");
    let checkpointing = |p: usize, backend: &str| {
        vec![
            ("parallelism.default", p.to_string()),
            ("state.backend.type", backend.to_string()),
            ("pipeline.name", "rescaled-checkpoint".to_string()),
            ("execution.checkpointing.interval", "150 ms".to_string()),
            ("execution.checkpointing.dir", chk.display().to_string()),
        ]
    };
    let mut ctx = context(&out, &checkpointing(1, "rocksdb")).await;
    let job = ctx.insert(QUERY).await.unwrap();
    wait_for_input(&job, EVENTS / 2).await;
    // Wait for a checkpoint past the first window, then cancel: the
    // checkpoints are retained.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !job
        .checkpoints()
        .iter()
        .any(|c| c.status == "COMPLETED" && c.id >= 3)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint completed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    job.cancel();
    let _ = job.wait().await;
    let latest = job
        .checkpoints()
        .iter()
        .filter(|c| c.status == "COMPLETED")
        .filter_map(|c| c.path.clone())
        .next_back()
        .unwrap();

    let mut restored = checkpointing(2, "hashmap");
    restored.push(("execution.savepoint.path", latest.clone()));
    let mut ctx = context(&out, &restored).await;
    let explained = ctx
        .sql(&format!("EXPLAIN RESTORE FROM '{latest}' {QUERY}"))
        .await
        .unwrap();
    let weir::StatementResult::Text(text) = &explained[0] else {
        panic!("EXPLAIN RESTORE shows text")
    };
    assert!(
        text.contains("redistributed from parallelism 1 to 2"),
        "{text}"
    );
    ctx.insert(QUERY).await.unwrap().wait().await.unwrap();
    assert_same(
        &committed_rows(&out),
        &expected,
        "checkpoint at p1 on rocksdb restored at p2 on hashmap",
    );
}

/// Savepoints on an S3-protocol server (`.ci/run` starts moto's server and
/// names it in `WEIR_TEST_S3_ENDPOINT`): stop into `s3://`, restore from it
/// at another parallelism, dispose it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_on_s3_restore_exactly_and_dispose() {
    let Ok(endpoint) = std::env::var("WEIR_TEST_S3_ENDPOINT") else {
        eprintln!(
            "skipped: no S3-protocol server (set WEIR_TEST_S3_ENDPOINT and WEIR_TEST_S3_BUCKET; .ci/run starts one)"
        );
        return;
    };
    let bucket = std::env::var("WEIR_TEST_S3_BUCKET").unwrap_or_else(|_| "weir-test".into());
    let dir = tempfile::tempdir().unwrap();
    let expected = reference(dir.path()).await;
    let target = format!(
        "s3://{bucket}/savepoints-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let s3 = |p: usize, backend: &str| {
        vec![
            ("parallelism.default", p.to_string()),
            ("state.backend.type", backend.to_string()),
            ("execution.checkpointing.savepoint-dir", target.clone()),
            ("s3.endpoint", endpoint.clone()),
            ("s3.access-key", "weir-test-key".to_string()),
            ("s3.secret-key", "weir-test-secret".to_string()),
            ("s3.region", "us-east-1".to_string()),
        ]
    };
    let (path, before) = stop_part_way(dir.path(), "s3", &s3(2, "rocksdb")).await;
    assert!(path.starts_with(&format!("{target}/savepoint-")), "{path}");
    let after = restore(dir.path(), "s3", &s3(1, "hashmap"), &path, QUERY).await;
    assert_same(&union(before, after), &expected, "savepoint on S3");

    let options = weir::checkpoint::StorageOptions {
        s3_endpoint: Some(endpoint.clone()),
        s3_access_key: Some("weir-test-key".into()),
        s3_secret_key: Some("weir-test-secret".into()),
        s3_region: Some("us-east-1".into()),
        s3_path_style: true,
    };
    let (_, metadata) = weir::checkpoint::open_snapshot(&path, &options)
        .await
        .unwrap();
    assert_eq!(
        metadata.snapshot_type,
        weir::checkpoint::SnapshotType::Savepoint
    );
    weir::checkpoint::dispose_savepoint(&path, &options)
        .await
        .unwrap();
    let err = weir::checkpoint::open_snapshot(&path, &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no _metadata"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_with_drain_fires_the_open_windows_first() {
    let dir = tempfile::tempdir().unwrap();
    let expected = reference(dir.path()).await;
    let sp = dir.path().join("savepoints");
    let s = settings(2, "hashmap", &sp);
    let (path, before) = stop_part_way_draining(dir.path(), "drain", &s, true).await;
    let after = restore(dir.path(), "drain", &s, &path, QUERY).await;
    // Every bid is counted once over both runs…
    let bids = |rows: &[String]| -> u64 {
        rows.iter()
            .map(|r| r.split(',').nth(2).unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(bids(&before) + bids(&after), bids(&expected));
    // …but the windows open at the stop fired in the first run (drained),
    // so the restored run emits those windows again for their later bids.
    let windows = |rows: &[String]| -> std::collections::BTreeSet<String> {
        rows.iter()
            .map(|r| r.split(',').take(2).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert!(
        windows(&before).intersection(&windows(&after)).count() > 0,
        "drained windows fired before the savepoint"
    );
    assert_ne!(union(before.clone(), after.clone()), expected);
}

/// Join state in savepoints: a regular join (bids with their auction), an
/// interval join (bids within two seconds of their auction's creation) and
/// a lookup join (bids with their auction, read into state),
/// each stopped part-way and restored at another parallelism into the
/// other backend (both directions); together the runs commit exactly an
/// uninterrupted run's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_state_restores_at_another_parallelism_and_backend() {
    const JOINS: [(&str, &str); 3] = [
        (
            "regular",
            "INSERT INTO joined SELECT B.auction, B.price, A.category FROM bid AS B \
             JOIN auction AS A ON B.auction = A.id WHERE MOD(A.category, 2) = 0",
        ),
        (
            "interval",
            "INSERT INTO joined SELECT B.auction, B.price, A.category FROM bid AS B \
             JOIN auction AS A ON B.auction = A.id \
             AND B.dateTime BETWEEN A.dateTime AND A.dateTime + INTERVAL '2' SECOND",
        ),
        // The auctions read into state, and every bid waiting in state for
        // the (bounded) generator to end.
        (
            "lookup",
            "INSERT INTO joined SELECT B.auction, B.price, A.category \
             FROM (SELECT *, PROCTIME() AS p FROM bid) AS B \
             JOIN auction FOR SYSTEM_TIME AS OF B.p AS A ON B.auction = A.id WHERE MOD(A.category, 2) = 0",
        ),
    ];
    async fn job(out: &Path, settings: &[(&str, String)]) -> StreamContext {
        let mut ctx = context(&out.with_extension("unused"), settings).await;
        ctx.sql(&format!(
            "CREATE TABLE joined (auction BIGINT, price BIGINT, category BIGINT) \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
            out.display()
        ))
        .await
        .unwrap();
        ctx
    }
    let dir = tempfile::tempdir().unwrap();
    let sp = dir.path().join("savepoints");
    for (kind, query) in JOINS {
        let reference = dir.path().join(format!("{kind}-reference"));
        job(&reference, &[])
            .await
            .insert(query)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        let expected = committed_rows(&reference);
        assert!(expected.len() > 100, "{kind}: {} rows", expected.len());
        for (name, (p1, b1), (p2, b2)) in [
            ("p1-hashmap-to-p2-rocksdb", (1, "hashmap"), (2, "rocksdb")),
            ("p2-rocksdb-to-p1-hashmap", (2, "rocksdb"), (1, "hashmap")),
        ] {
            let before_out = dir.path().join(format!("{kind}-{name}-before"));
            let running = job(&before_out, &settings(p1, b1, &sp))
                .await
                .insert(query)
                .await
                .unwrap();
            wait_for_input(&running, EVENTS / 3).await;
            let path = running.stop_with_savepoint(None, false).await.unwrap();
            let before = committed_rows(&before_out);
            let after_out = dir.path().join(format!("{kind}-{name}-after"));
            let mut s = settings(p2, b2, &sp);
            s.push(("execution.savepoint.path", path.clone()));
            let mut ctx = job(&after_out, &s).await;
            let explained = ctx
                .sql(&format!("EXPLAIN RESTORE FROM '{path}' {query}"))
                .await
                .unwrap();
            let weir::StatementResult::Text(text) = &explained[0] else {
                panic!("EXPLAIN RESTORE shows text")
            };
            assert!(
                text.contains("Join")
                    && text.contains("RESTORED")
                    && text.contains("can be restored"),
                "{kind}: EXPLAIN RESTORE knows the join's state: {text}"
            );
            ctx.insert(query).await.unwrap().wait().await.unwrap();
            let after = committed_rows(&after_out);
            assert!(
                before.len() < expected.len() && !after.is_empty(),
                "{kind} {name}: stopped part-way ({} rows before)",
                before.len()
            );
            assert_same(
                &union(before, after),
                &expected,
                &format!("{kind} {name}: stop + restore equals an uninterrupted run"),
            );
        }
    }
}
