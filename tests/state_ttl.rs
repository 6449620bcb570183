//! `table.exec.state.ttl` on a group aggregate: a key idle for longer than
//! the TTL is forgotten, and its next row starts it afresh (`+I`), on both
//! backends, with and without the aggregate cache. TTL is processing time,
//! so this end-to-end test paces its input (10 rows a second) and keeps wide
//! margins: key 0 is written every 100 ms, then idle for 2 s, against a TTL
//! of 1 s. The TTL rules themselves are tested with a manual clock in
//! `state/tests/primitives.rs`.
#![allow(clippy::unwrap_used)]

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Int64Type, Int8Type};
use weir::StreamContext;

/// Key 0's changelog as (op, count) pairs.
async fn key_zero_changes(settings: &[(&str, String)]) -> Vec<(i8, i64)> {
    let mut builder = StreamContext::builder();
    for (k, v) in settings {
        builder = builder.set(k, v).unwrap();
    }
    let mut ctx = builder.build();
    ctx.sql(
        "CREATE TABLE src (seq BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '30', \
         'rows-per-second' = '10', 'fields.seq.kind' = 'sequence', 'fields.seq.start' = '0', \
         'fields.seq.end' = '29')",
    )
    .await
    .unwrap();
    let result = ctx
        .query(
            "SELECT CASE WHEN seq < 5 OR seq >= 25 THEN 0 ELSE seq END AS k, COUNT(*) AS c \
             FROM src GROUP BY CASE WHEN seq < 5 OR seq >= 25 THEN 0 ELSE seq END",
        )
        .await
        .unwrap();
    let batches = result.collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let k = b.column(0).as_primitive::<Int64Type>();
        let c = b.column(1).as_primitive::<Int64Type>();
        let op = b.column(2).as_primitive::<Int8Type>();
        for i in 0..b.num_rows() {
            if k.value(i) == 0 {
                out.push((op.value(i), c.value(i)));
            }
        }
    }
    out
}

const INSERT: i8 = 0;

async fn check(backend: Vec<(&'static str, String)>) {
    let mut with_ttl = backend.clone();
    with_ttl.push(("table.exec.state.ttl", "1 s".to_string()));
    // The runs are paced, not busy: run them side by side.
    let (kept, forgot) = tokio::join!(key_zero_changes(&backend), key_zero_changes(&with_ttl));

    // Without TTL, key 0 counts all ten of its rows.
    assert_eq!(
        kept.iter().filter(|(op, _)| *op == INSERT).count(),
        1,
        "{kept:?}"
    );
    assert_eq!(kept.last(), Some(&(2, 10)), "{backend:?}: {kept:?}");

    // With a 1 s TTL, the 2 s pause forgets it: a second +I, counting from
    // 1 again, with no retraction of the forgotten result.
    let inserts: Vec<usize> = forgot
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| *op == INSERT)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(inserts.len(), 2, "{backend:?}: {forgot:?}");
    assert_eq!(forgot[inserts[1]], (INSERT, 1), "{forgot:?}");
    assert_eq!(forgot[inserts[1] - 1].1, 5, "{forgot:?}");
    assert_eq!(forgot.last().map(|c| c.1), Some(5), "{forgot:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keys_are_forgotten_after_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let rocksdb = dir.path().display().to_string();
    let hashmap = || vec![("state.backend.type", "hashmap".to_string())];
    let rocks = || {
        vec![
            ("state.backend.type", "rocksdb".to_string()),
            ("state.backend.rocksdb.localdir", rocksdb.clone()),
        ]
    };
    let no_cache = |mut v: Vec<(&'static str, String)>| {
        v.push(("table.exec.state.cache-size", "0".to_string()));
        v
    };
    tokio::join!(
        check(hashmap()),
        check(no_cache(hashmap())),
        check(rocks()),
        check(no_cache(rocks())),
    );
}
