//! Differential tests: a streaming query over a bounded CSV file must give
//! exactly the rows DataFusion computes for the same computation as a batch
//! query, at parallelism 1 and 2 and with several batch sizes.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{CsvReadOptions, SessionContext};
use weir::StreamContext;

/// Rows of (key, value, time) with times that go backwards by less than the
/// watermark delay, so no row is late.
fn write_events(path: &Path, rows: usize) {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let base = 1_700_000_000_000i64;
    let mut text = String::new();
    for i in 0..rows as i64 {
        let key = next() % 17;
        let value = next() % 1000;
        let jitter = (next() % 500) as i64;
        let ts = base + i * 37 - jitter;
        let secs = ts.div_euclid(1000);
        let ms = ts.rem_euclid(1000);
        let dt = chrono_like(secs);
        // Some values are empty (NULL) to exercise null handling.
        let value = if i % 53 == 0 {
            String::new()
        } else {
            value.to_string()
        };
        text.push_str(&format!("{key},{value},{dt}.{ms:03}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// Formats seconds since the epoch as `yyyy-MM-dd HH:mm:ss` (UTC).
fn chrono_like(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}")
}

fn rows_of(batches: &[RecordBatch], skip_last: bool) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let n = if skip_last {
            b.num_columns() - 1
        } else {
            b.num_columns()
        };
        let fmts: Vec<_> = (0..n)
            .map(|c| ArrayFormatter::try_new(b.column(c).as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out
}

fn sorted(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.sort();
    rows
}

async fn batch_answer(csv: &Path, sql: &str) -> Vec<Vec<String>> {
    let ctx = SessionContext::new();
    let schema = Schema::new(vec![
        Field::new("k", DataType::Int32, true),
        Field::new("v", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]);
    ctx.register_csv(
        "t",
        csv.to_str().unwrap(),
        CsvReadOptions::new().has_header(false).schema(&schema),
    )
    .await
    .unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    sorted(rows_of(&batches, false))
}

/// The state configurations every differential query runs under: both
/// backends, with the aggregate cache and with a tiny one that sends nearly
/// every group through the backend.
fn state_variants(scratch: &Path) -> Vec<Vec<(&'static str, String)>> {
    let rocksdb = scratch.join("rocksdb").display().to_string();
    vec![
        vec![("state.backend.type", "hashmap".into())],
        vec![
            ("state.backend.type", "hashmap".into()),
            ("table.exec.state.cache-size", "3".into()),
        ],
        vec![
            ("state.backend.type", "rocksdb".into()),
            ("state.backend.rocksdb.localdir", rocksdb.clone()),
        ],
        vec![
            ("state.backend.type", "rocksdb".into()),
            ("state.backend.rocksdb.localdir", rocksdb),
            ("table.exec.state.cache-size", "3".into()),
        ],
    ]
}

/// A context with table `t` over the CSV file (watermark 1 s behind `ts`).
async fn events_context(
    csv: &Path,
    parallelism: usize,
    batch_size: usize,
    settings: &[(&str, String)],
) -> StreamContext {
    let mut builder = StreamContext::builder()
        .set("parallelism.default", &parallelism.to_string())
        .unwrap()
        .set("execution.batch-size", &batch_size.to_string())
        .unwrap();
    for (k, v) in settings {
        builder = builder.set(k, v).unwrap();
    }
    let mut ctx = builder.build();
    ctx.sql(&format!(
        "CREATE TABLE t (k INT, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        csv.display()
    ))
    .await
    .unwrap();
    ctx
}

async fn stream_rows(
    csv: &Path,
    parallelism: usize,
    batch_size: usize,
    settings: &[(&str, String)],
    query: &str,
) -> (Vec<RecordBatch>, bool, weir::state::StateStats) {
    let mut ctx = events_context(csv, parallelism, batch_size, settings).await;
    let result = ctx.query(query).await.unwrap();
    let updating = result.updating;
    let job = result.job.clone();
    let rows = result.collect().await.unwrap();
    (rows, updating, job.state_size())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumbling_window_matches_batch_query() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    write_events(&csv, 6000);
    let expected = batch_answer(
        &csv,
        "SELECT k, date_bin(INTERVAL '2 seconds', ts, TIMESTAMP '1970-01-01 00:00:00') AS ws, \
                COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v), AVG(v), COUNT(DISTINCT v % 10), SUM(v) FILTER (WHERE v > 500) \
         FROM t GROUP BY k, date_bin(INTERVAL '2 seconds', ts, TIMESTAMP '1970-01-01 00:00:00')",
    )
    .await;
    assert!(expected.len() > 100, "too few groups: {}", expected.len());
    for settings in state_variants(dir.path()) {
        for parallelism in [1, 2] {
            for batch_size in [7, 100, 8192] {
                let (batches, updating, state) = stream_rows(
                &csv,
                parallelism,
                batch_size,
                &settings,
                "SELECT k, window_start, COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v), AVG(v), COUNT(DISTINCT v % 10), \
                        SUM(v) FILTER (WHERE v > 500) \
                 FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '2' SECOND)) GROUP BY k, window_start, window_end",
            )
            .await;
                assert!(!updating);
                // Every window fired at the end of input, and fired windows
                // leave nothing behind in the backend.
                assert_eq!(
                    state.entries, 0,
                    "window state left after firing: {settings:?}"
                );
                let actual = sorted(rows_of(&batches, false));
                assert_eq!(
                    actual, expected,
                    "parallelism {parallelism}, batch size {batch_size}, {settings:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_aggregate_converges_to_batch_query() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    write_events(&csv, 3000);
    let expected = batch_answer(
        &csv,
        "SELECT k, COUNT(*), SUM(v), MAX(v), COUNT(DISTINCT v % 7) FROM t GROUP BY k",
    )
    .await;
    for settings in state_variants(dir.path()) {
        for parallelism in [1, 2] {
            for batch_size in [7, 100, 8192] {
                let (batches, updating, state) = stream_rows(
                    &csv,
                    parallelism,
                    batch_size,
                    &settings,
                    "SELECT k, COUNT(*), SUM(v), MAX(v), COUNT(DISTINCT v % 7) FROM t GROUP BY k",
                )
                .await;
                assert!(updating);
                // One entry per key is kept (RocksDB's count is an estimate).
                assert!(
                    state.entries.abs_diff(expected.len() as u64) <= expected.len() as u64 / 5,
                    "{} state entries for {} keys, {settings:?}",
                    state.entries,
                    expected.len()
                );
                // Apply the changelog: +I/+U set a key's row, -U/-D must retract exactly it.
                let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
                let mut changes = 0;
                for b in &batches {
                    let ops = b
                        .column(b.num_columns() - 1)
                        .as_primitive::<datafusion::arrow::datatypes::Int8Type>();
                    let rows = rows_of(std::slice::from_ref(b), true);
                    for (row, op) in rows.into_iter().zip(ops.values().iter()) {
                        changes += 1;
                        match op {
                            0 | 2 => {
                                table.insert(row[0].clone(), row);
                            }
                            _ => {
                                assert_eq!(
                                    table.remove(&row[0]).as_ref(),
                                    Some(&row),
                                    "retraction of a row not emitted"
                                );
                            }
                        }
                    }
                }
                let actual: Vec<Vec<String>> = table.into_values().collect();
                assert_eq!(
                    sorted(actual),
                    expected,
                    "parallelism {parallelism}, batch size {batch_size}, {settings:?}"
                );
                if batch_size == 7 {
                    assert!(
                        changes > expected.len() * 2,
                        "small batches should produce updates"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("late.csv");
    // The row at 00:00:02 arrives after the watermark (00:00:11) passed its window's end.
    std::fs::write(
        &csv,
        "1,1,2024-01-01 00:00:01\n1,2,2024-01-01 00:00:12\n1,4,2024-01-01 00:00:02\n1,8,2024-01-01 00:00:13\n",
    )
    .unwrap();
    let mut ctx = events_context(&csv, 1, 1, &[]).await;
    let result = ctx
        .query("SELECT window_start, SUM(v) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end")
        .await
        .unwrap();
    let job = result.job.clone();
    let rows = sorted(rows_of(&result.collect().await.unwrap(), false));
    assert_eq!(
        rows,
        vec![
            vec!["2024-01-01T00:00:00".to_string(), "1".to_string()],
            vec!["2024-01-01T00:00:10".to_string(), "10".to_string()]
        ]
    );
    let late: u64 = job
        .metrics()
        .iter()
        .map(|(_, m)| m.late_records_dropped)
        .sum();
    assert_eq!(late, 1);
}

/// `UNION ALL` of three branches of `t` (the rows of one branch reach the
/// union before the others'), as rows, under a windowed aggregate (the
/// union's watermark is the minimum of its inputs', so no row is late) and
/// under an updating aggregate, against the batch query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn union_all_matches_batch_query() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    write_events(&csv, 3000);
    let branches = "SELECT k, v, ts FROM t WHERE k % 3 = 0 \
         UNION ALL SELECT k, v * 2 AS v, ts FROM t WHERE k % 3 = 1 \
         UNION ALL SELECT k + 100 AS k, v, ts FROM t WHERE v > 900";
    let rows = format!("SELECT k, v FROM ({branches}) AS u");
    let grouped = format!("SELECT k, COUNT(*), SUM(v) FROM ({branches}) AS u GROUP BY k");
    let windowed_batch = format!(
        "SELECT k, date_bin(INTERVAL '2 seconds', ts, TIMESTAMP '1970-01-01 00:00:00') AS ws, COUNT(*), SUM(v) \
         FROM ({branches}) AS u GROUP BY k, date_bin(INTERVAL '2 seconds', ts, TIMESTAMP '1970-01-01 00:00:00')"
    );
    let expected_rows = batch_answer(&csv, &rows).await;
    let expected_grouped = batch_answer(&csv, &grouped).await;
    let expected_windows = batch_answer(&csv, &windowed_batch).await;
    assert!(expected_windows.len() > 50, "{}", expected_windows.len());
    for settings in state_variants(dir.path()).into_iter().step_by(2) {
        for parallelism in [1, 2] {
            let (batches, updating, _) =
                stream_rows(&csv, parallelism, 100, &settings, &rows).await;
            assert!(!updating);
            assert_eq!(
                sorted(rows_of(&batches, false)),
                expected_rows,
                "p={parallelism} {settings:?}"
            );

            let mut ctx = events_context(&csv, parallelism, 100, &settings).await;
            ctx.sql(&format!("CREATE VIEW u AS {branches}"))
                .await
                .unwrap();
            let result = ctx
                .query(
                    "SELECT k, window_start, COUNT(*), SUM(v) \
                     FROM TABLE(TUMBLE(TABLE u, DESCRIPTOR(ts), INTERVAL '2' SECOND)) GROUP BY k, window_start, window_end",
                )
                .await
                .unwrap();
            let batches = result.collect().await.unwrap();
            assert_eq!(
                sorted(rows_of(&batches, false)),
                expected_windows,
                "p={parallelism} {settings:?}"
            );

            let (batches, updating, _) =
                stream_rows(&csv, parallelism, 100, &settings, &grouped).await;
            assert!(updating);
            let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for b in &batches {
                let ops = b
                    .column(b.num_columns() - 1)
                    .as_primitive::<datafusion::arrow::datatypes::Int8Type>();
                for (row, op) in rows_of(std::slice::from_ref(b), true)
                    .into_iter()
                    .zip(ops.values())
                {
                    if matches!(op, 0 | 2) {
                        table.insert(row[0].clone(), row);
                    } else {
                        assert_eq!(table.remove(&row[0]).as_ref(), Some(&row));
                    }
                }
            }
            assert_eq!(
                sorted(table.into_values().collect()),
                expected_grouped,
                "p={parallelism} {settings:?}"
            );
        }
    }
}

/// Rows of (k, w) for the other side of joins: keys 5..30, so some keys of
/// `t` (0..17) have no match and some of these have none in `t`; some `w`
/// are NULL and some keys repeat.
fn write_other_side(path: &Path, rows: usize) {
    let mut text = String::new();
    for i in 0..rows {
        let k = 5 + (i * 7) % 25;
        let w = if i % 11 == 0 {
            String::new()
        } else {
            ((i * 37) % 1000).to_string()
        };
        text.push_str(&format!("{k},{w}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// Applies a changelog: `+I`/`+U` add a row, `-U`/`-D` take back one that
/// was added (a retraction of a row never emitted fails the test).
fn apply_changelog(batches: &[RecordBatch], updating: bool) -> Vec<Vec<String>> {
    if !updating {
        return sorted(rows_of(batches, false));
    }
    let mut live: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for b in batches {
        let ops = b
            .column(b.num_columns() - 1)
            .as_primitive::<datafusion::arrow::datatypes::Int8Type>();
        for (row, op) in rows_of(std::slice::from_ref(b), true)
            .into_iter()
            .zip(ops.values())
        {
            if matches!(op, 0 | 2) {
                *live.entry(row).or_default() += 1;
            } else {
                let n = live.get_mut(&row);
                assert!(
                    n.as_ref().is_some_and(|n| **n > 0),
                    "retraction of a row not emitted: {row:?}"
                );
                if let Some(n) = n {
                    *n -= 1;
                }
            }
        }
    }
    live.into_iter()
        .flat_map(|(row, n)| std::iter::repeat_n(row, n))
        .collect()
}

/// A batch context with `t` (the events) and `u` (the other side).
async fn batch_context(csv: &Path, other: &Path) -> SessionContext {
    let batch = SessionContext::new();
    for (name, path, schema) in [
        (
            "t",
            csv,
            Schema::new(vec![
                Field::new("k", DataType::Int32, true),
                Field::new("v", DataType::Int64, true),
                Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            ]),
        ),
        (
            "u",
            other,
            Schema::new(vec![
                Field::new("k", DataType::Int32, true),
                Field::new("w", DataType::Int64, true),
            ]),
        ),
    ] {
        batch
            .register_csv(
                name,
                path.to_str().unwrap(),
                CsvReadOptions::new().has_header(false).schema(&schema),
            )
            .await
            .unwrap();
    }
    batch
}

/// A streaming query over `t` and `u`: its rows and whether they are a changelog.
async fn stream_with_other(
    csv: &Path,
    other: &Path,
    parallelism: usize,
    batch_size: usize,
    settings: &[(&str, String)],
    query: &str,
) -> (Vec<RecordBatch>, bool) {
    let mut ctx = events_context(csv, parallelism, batch_size, settings).await;
    ctx.sql(&format!(
        "CREATE TABLE u (k INT, w BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        other.display()
    ))
    .await
    .unwrap();
    let result = ctx.query(query).await.unwrap();
    let updating = result.updating;
    (result.collect().await.unwrap(), updating)
}

/// Every kind of regular join, with a residual condition, against
/// DataFusion's batch join of the same files: at parallelism 1 and 2, on
/// both backends, with small and large batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regular_joins_match_batch_query() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    let other = dir.path().join("other.csv");
    write_events(&csv, 1500);
    write_other_side(&other, 300);
    let queries = [
        "SELECT t.k, t.v, u.w FROM t JOIN u ON t.k = u.k AND t.v < u.w",
        "SELECT t.k, t.v, u.w FROM t LEFT JOIN u ON t.k = u.k AND u.w % 3 = 0",
        "SELECT t.v, u.k, u.w FROM t RIGHT JOIN u ON t.k = u.k AND t.v > 900",
        "SELECT t.k, t.v, u.k, u.w FROM t FULL JOIN u ON t.k = u.k AND t.v + u.w < 300",
        "SELECT k, v FROM t WHERE k IN (SELECT k FROM u WHERE w > 500)",
        "SELECT k, w FROM u WHERE NOT EXISTS (SELECT 1 FROM t WHERE t.k = u.k AND t.v < u.w)",
    ];
    let batch = batch_context(&csv, &other).await;
    for query in queries {
        let batches = batch.sql(query).await.unwrap().collect().await.unwrap();
        let expected = sorted(rows_of(&batches, false));
        assert!(expected.len() > 50, "{query}: {} rows", expected.len());
        for settings in state_variants(dir.path()).into_iter().step_by(2) {
            for (parallelism, batch_size) in [(1, 100), (2, 7), (2, 8192)] {
                let (rows, updating) =
                    stream_with_other(&csv, &other, parallelism, batch_size, &settings, query)
                        .await;
                assert_eq!(
                    apply_changelog(&rows, updating),
                    expected,
                    "{query}: parallelism {parallelism}, batch size {batch_size}, {settings:?}"
                );
            }
        }
    }
}

/// Interval joins (a self-join of `t` within a time bound), inner and
/// outer, against DataFusion's batch join with the same condition. Rows
/// leave the state once the watermark passes their bound: at the end of the
/// input nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_joins_match_batch_query() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    write_events(&csv, 1500);
    let queries = [
        "SELECT a.k, a.v, b.v FROM t a JOIN t b ON a.k = b.k \
           AND a.ts BETWEEN b.ts - INTERVAL '1' SECOND AND b.ts + INTERVAL '2' SECOND",
        "SELECT a.k, a.v, a.ts, b.v FROM t a LEFT JOIN t b ON a.k = b.k \
           AND a.ts >= b.ts AND a.ts < b.ts + INTERVAL '800' MILLISECOND AND a.v < b.v",
        "SELECT a.v, b.k, b.v, b.ts FROM t a RIGHT JOIN t b ON a.k = b.k \
           AND b.ts > a.ts + INTERVAL '1' SECOND AND b.ts <= a.ts + INTERVAL '3' SECOND AND a.v > 500",
        "SELECT a.k, a.v, b.k, b.v FROM t a FULL JOIN t b ON a.k = b.k \
           AND a.ts BETWEEN b.ts - INTERVAL '300' MILLISECOND AND b.ts - INTERVAL '100' MILLISECOND \
           AND a.v + b.v < 400",
    ];
    for query in queries {
        let expected = batch_answer(&csv, query).await;
        assert!(expected.len() > 100, "{query}: {} rows", expected.len());
        for settings in state_variants(dir.path()).into_iter().step_by(2) {
            for (parallelism, batch_size) in [(1, 100), (2, 7), (2, 8192)] {
                let (rows, updating, state) =
                    stream_rows(&csv, parallelism, batch_size, &settings, query).await;
                assert!(!updating, "{query}: an interval join is insert-only");
                assert_eq!(
                    sorted(rows_of(&rows, false)),
                    expected,
                    "{query}: parallelism {parallelism}, batch size {batch_size}, {settings:?}"
                );
                assert_eq!(state.entries, 0, "{query}: state left at the end");
            }
        }
    }
}

/// Window joins: two tumbling-window views of `t` joined on their windows
/// and key (inner, outer, semi, anti), against the batch join of the same
/// windows computed with `date_bin`. The state is freed as windows pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_joins_match_batch_query() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    write_events(&csv, 1500);
    let win = "SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '2' SECOND))";
    let bin = "SELECT k, v, date_bin(INTERVAL '2 seconds', ts, TIMESTAMP '1970-01-01 00:00:00') AS window_start, \
               date_bin(INTERVAL '2 seconds', ts, TIMESTAMP '1970-01-01 00:00:00') + INTERVAL '2 seconds' AS window_end FROM t";
    let shapes = [
        "SELECT a.k, a.v, b.v, a.window_start FROM ({w}) a JOIN ({w}) b \
           ON a.k = b.k AND a.window_start = b.window_start AND a.window_end = b.window_end AND a.v < b.v",
        "SELECT a.k, a.v, b.v, a.window_end FROM ({w}) a LEFT JOIN ({w}) b \
           ON a.k = b.k AND a.window_start = b.window_start AND a.window_end = b.window_end AND b.v > a.v + 700",
        "SELECT a.v, b.k, b.v, b.window_start FROM ({w}) a FULL JOIN ({w}) b \
           ON a.k = b.k AND a.window_start = b.window_start AND a.window_end = b.window_end AND a.v + b.v < 200",
        "SELECT a.k, a.v, a.window_start FROM ({w}) a WHERE EXISTS (SELECT 1 FROM ({w}) b \
           WHERE b.k = a.k AND b.window_start = a.window_start AND b.window_end = a.window_end AND b.v > 900)",
        "SELECT a.k, a.v, a.window_start FROM ({w}) a WHERE NOT EXISTS (SELECT 1 FROM ({w}) b \
           WHERE b.k = a.k AND b.window_start = a.window_start AND b.window_end = a.window_end AND b.v > 900)",
    ];
    for shape in shapes {
        let query = shape.replace("{w}", win);
        let expected = batch_answer(&csv, &shape.replace("{w}", bin)).await;
        assert!(expected.len() > 100, "{query}: {} rows", expected.len());
        for settings in state_variants(dir.path()).into_iter().step_by(2) {
            for (parallelism, batch_size) in [(1, 100), (2, 7)] {
                let (rows, updating, state) =
                    stream_rows(&csv, parallelism, batch_size, &settings, &query).await;
                assert!(!updating, "{query}: a window join is insert-only");
                assert_eq!(
                    sorted(rows_of(&rows, false)),
                    expected,
                    "{query}: parallelism {parallelism}, batch size {batch_size}, {settings:?}"
                );
                assert_eq!(state.entries, 0, "{query}: state left at the end");
            }
        }
    }
}

/// Aggregates over changelogs: a `GROUP BY` over an outer join (its padded
/// rows are taken back as matches arrive) and over another updating
/// aggregate (groups move between buckets, and emptied buckets are
/// deleted), against the batch query, after applying the changelog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_over_changelogs_match_batch_query() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    let other = dir.path().join("other.csv");
    write_events(&csv, 1500);
    write_other_side(&other, 300);
    let queries = [
        "SELECT t.k, COUNT(*), COUNT(u.w), SUM(u.w), MIN(u.w), MAX(u.w), COUNT(DISTINCT u.w % 10) \
         FROM t LEFT JOIN u ON t.k = u.k AND u.w % 3 = 0 AND t.v < 500 GROUP BY t.k",
        "SELECT u.k % 4, COUNT(*), SUM(t.v), MAX(t.v), MIN(t.v), AVG(CAST(t.v AS DOUBLE)) \
         FROM t FULL JOIN u ON t.k = u.k AND t.v < u.w GROUP BY u.k % 4",
        "SELECT c, COUNT(*), SUM(s), MAX(s) FROM (SELECT k, COUNT(*) AS c, SUM(v) AS s FROM t GROUP BY k, v % 3) AS g GROUP BY c",
    ];
    let batch = batch_context(&csv, &other).await;
    for query in queries {
        let batches = batch.sql(query).await.unwrap().collect().await.unwrap();
        let expected = sorted(rows_of(&batches, false));
        assert!(expected.len() > 3, "{query}: {} rows", expected.len());
        for settings in state_variants(dir.path()) {
            for (parallelism, batch_size) in [(1, 100), (2, 7)] {
                let (rows, updating) =
                    stream_with_other(&csv, &other, parallelism, batch_size, &settings, query)
                        .await;
                assert!(updating);
                assert_eq!(
                    apply_changelog(&rows, updating),
                    expected,
                    "{query}: parallelism {parallelism}, batch size {batch_size}, {settings:?}"
                );
            }
        }
    }
}

/// Nexmark q7's shape: rows joined with their window's maximum, bounded by
/// the window aggregate's `window_end` (a time attribute of its output), so
/// an interval join whose state is freed; against the batch query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_join_on_a_window_aggregates_end_matches_batch_query() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    write_events(&csv, 3000);
    let shape = "SELECT t.k, t.v, t.ts FROM t JOIN ({w}) AS m ON t.v = m.top \
                 AND t.ts BETWEEN m.we - INTERVAL '2' SECOND AND m.we";
    let stream = shape.replace(
        "{w}",
        "SELECT MAX(v) AS top, window_end AS we FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '2' SECOND)) \
         GROUP BY window_start, window_end",
    );
    let batch = shape.replace(
        "{w}",
        "SELECT MAX(v) AS top, date_bin(INTERVAL '2 seconds', ts, TIMESTAMP '1970-01-01 00:00:00') + INTERVAL '2 seconds' AS we \
         FROM t GROUP BY date_bin(INTERVAL '2 seconds', ts, TIMESTAMP '1970-01-01 00:00:00')",
    );
    let expected = batch_answer(&csv, &batch).await;
    assert!(expected.len() > 20, "{} rows", expected.len());
    for settings in state_variants(dir.path()).into_iter().step_by(2) {
        for parallelism in [1, 2] {
            let mut ctx = events_context(&csv, parallelism, 100, &settings).await;
            let explained = ctx.sql(&format!("EXPLAIN {stream}")).await.unwrap();
            let weir::StatementResult::Text(text) = &explained[0] else {
                panic!("EXPLAIN shows text")
            };
            assert!(text.contains("IntervalJoin"), "{text}");
            let (rows, updating, state) =
                stream_rows(&csv, parallelism, 100, &settings, &stream).await;
            assert!(!updating);
            assert_eq!(
                sorted(rows_of(&rows, false)),
                expected,
                "p={parallelism} {settings:?}"
            );
            assert_eq!(state.entries, 0, "state left at the end");
        }
    }
}

/// Versions of a rate per key (0..20) over the events' time range, in time
/// order with unique times, so each (key, time) has one version.
fn write_versions(path: &Path, rows: usize) {
    let base = 1_700_000_000_000i64 - 2_000;
    let mut text = String::new();
    for j in 0..rows as i64 {
        let k = (j * 7) % 20;
        let ts = base + j * 290;
        let dt = chrono_like(ts.div_euclid(1000));
        text.push_str(&format!(
            "{k},{},{dt}.{:03}\n",
            (j * 31) % 1000,
            ts.rem_euclid(1000)
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// Temporal joins against DataFusion's batch answer. Event time: each row
/// of `t` joins the version of its key with the latest time at or before
/// its own (the batch query picks it with `ROW_NUMBER`); the state left at
/// the end is the current version per key. Processing time against a
/// bounded table: the same rows as the batch join, since every row waits
/// until the table is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_joins_match_batch_query() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    let versions = dir.path().join("versions.csv");
    let other = dir.path().join("other.csv");
    write_events(&csv, 1500);
    write_versions(&versions, 200);
    write_other_side(&other, 300);
    let batch = batch_context(&csv, &other).await;
    batch
        .register_csv(
            "rv",
            versions.to_str().unwrap(),
            CsvReadOptions::new()
                .has_header(false)
                .schema(&Schema::new(vec![
                    Field::new("k", DataType::Int32, true),
                    Field::new("r", DataType::Int64, true),
                    Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
                ])),
        )
        .await
        .unwrap();
    let latest = |filter: &str, left: bool| {
        format!(
            "WITH l AS (SELECT *, ROW_NUMBER() OVER () AS id FROM t), \
             c AS (SELECT l.id, rv.r, ROW_NUMBER() OVER (PARTITION BY l.id ORDER BY rv.ts DESC) AS n \
                   FROM l JOIN rv ON l.k = rv.k AND rv.ts <= l.ts) \
             SELECT l.k, l.v, l.ts, c.r FROM l {} JOIN c ON l.id = c.id AND c.n = 1 {filter}",
            if left { "LEFT" } else { "" }
        )
    };
    let cases = [
        (
            "SELECT t.k, t.v, t.ts, r.r FROM t JOIN rv FOR SYSTEM_TIME AS OF t.ts AS r ON t.k = r.k",
            latest("", false),
        ),
        // A condition on the version filters the pair: a LEFT join pads
        // the row whose version fails it.
        (
            "SELECT t.k, t.v, t.ts, r.r FROM t LEFT JOIN rv FOR SYSTEM_TIME AS OF t.ts AS r ON t.k = r.k AND r.r > t.v",
            latest("AND c.r > l.v", true),
        ),
        (
            "SELECT tp.k, tp.v, u.w FROM tp JOIN u FOR SYSTEM_TIME AS OF tp.p ON tp.k = u.k AND tp.v < u.w",
            "SELECT t.k, t.v, u.w FROM t JOIN u ON t.k = u.k AND t.v < u.w".into(),
        ),
        (
            "SELECT tp.k, tp.v, u.w FROM tp LEFT JOIN u FOR SYSTEM_TIME AS OF tp.p ON tp.k = u.k",
            "SELECT t.k, t.v, u.w FROM t LEFT JOIN u ON t.k = u.k".into(),
        ),
    ];
    for (query, batch_sql) in cases {
        let batches = batch
            .sql(&batch_sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let expected = sorted(rows_of(&batches, false));
        assert!(expected.len() > 200, "{batch_sql}: {} rows", expected.len());
        for settings in state_variants(dir.path()).into_iter().step_by(2) {
            for (parallelism, batch_size) in [(1, 100), (2, 7), (2, 8192)] {
                let mut ctx = events_context(&csv, parallelism, batch_size, &settings).await;
                for ddl in [
                    format!(
                        "CREATE TABLE rv (k INT, r BIGINT, ts TIMESTAMP(3), PRIMARY KEY (k) NOT ENFORCED, \
                         WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
                         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
                        versions.display()
                    ),
                    format!(
                        "CREATE TABLE u (k INT, w BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
                        other.display()
                    ),
                    format!(
                        "CREATE TABLE tp (k INT, v BIGINT, ts TIMESTAMP(3), p AS PROCTIME()) \
                         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
                        csv.display()
                    ),
                ] {
                    ctx.sql(&ddl).await.unwrap();
                }
                let result = ctx.query(query).await.unwrap();
                assert!(!result.updating, "{query}: a temporal join is insert-only");
                let job = result.job.clone();
                let rows = result.collect().await.unwrap();
                assert_eq!(
                    sorted(rows_of(&rows, false)),
                    expected,
                    "{query}: parallelism {parallelism}, batch size {batch_size}, {settings:?}"
                );
                if query.contains("rv") {
                    // The current version of each of the 20 keys, no waiting row.
                    let left = job.state_size().entries;
                    assert!(left <= 20, "{query}: {left} entries left at the end");
                }
            }
        }
    }
}
