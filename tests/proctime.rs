//! Processing-time windows: `PROCTIME()` reads the job's clock, and a window
//! over it fires when that clock passes the window's end (a processing-time
//! timer), not when the input ends or a watermark arrives. The clock here is
//! a `ManualClock` the test moves.

#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
use weir::state::ManualClock;
use weir::StreamContext;

/// 2023-11-14 22:13:20 UTC, a multiple of 10 s.
const T0: i64 = 1_700_000_000_000;

fn rows(batches: &[RecordBatch]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let starts = b.column(0).as_primitive::<TimestampMillisecondType>();
        let counts = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((starts.value(i), counts.value(i)));
        }
    }
    out
}

async fn unbounded_context(
    clock: Arc<ManualClock>,
    backend: &str,
    dir: &std::path::Path,
) -> StreamContext {
    let mut ctx = StreamContext::builder()
        .clock(clock)
        .set("state.backend.type", backend)
        .unwrap()
        .set("state.backend.rocksdb.localdir", dir.to_str().unwrap())
        .unwrap()
        .set("parallelism.default", "2")
        .unwrap()
        .build();
    ctx.sql(
        "CREATE TABLE g (k BIGINT, p AS PROCTIME()) WITH ('connector' = 'datagen', 'rows-per-second' = '2000', \
           'fields.k.min' = '0', 'fields.k.max' = '9');\
         CREATE VIEW b AS SELECT k, PROCTIME() AS p_time FROM g",
    )
    .await
    .unwrap();
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processing_time_window_fires_when_the_clock_passes_its_end() {
    for backend in ["hashmap", "rocksdb"] {
        for (table, column) in [("g", "p"), ("b", "p_time")] {
            let dir = tempfile::tempdir().unwrap();
            let clock = ManualClock::new(T0 + 1_000);
            let mut ctx = unbounded_context(clock.clone(), backend, dir.path()).await;
            let mut result = ctx
                .query(&format!(
                    "SELECT window_start, COUNT(*) AS c FROM TABLE(TUMBLE(TABLE {table}, DESCRIPTOR({column}), INTERVAL '10' SECOND)) \
                     GROUP BY window_start, window_end"
                ))
                .await
                .unwrap();
            // Rows flow, the clock stands still inside the first window:
            // nothing fires.
            let early = tokio::time::timeout(Duration::from_millis(600), result.next()).await;
            assert!(
                early.is_err(),
                "{backend} {table}: a window fired before its end"
            );
            clock.set(T0 + 10_000);
            let fired = tokio::time::timeout(Duration::from_secs(20), result.next())
                .await
                .expect("the window fires once the clock passes its end")
                .expect("a batch");
            let got = rows(&[fired]);
            assert!(!got.is_empty());
            for (start, count) in &got {
                assert_eq!(*start, T0, "{backend} {table}");
                assert!(*count > 0);
            }
            result.job.cancel();
            let _ = result.job.wait().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_input_fires_its_open_processing_time_windows_at_the_end() {
    let clock = ManualClock::new(T0 + 3_000);
    let mut ctx = StreamContext::builder().clock(clock).build();
    ctx.sql(
        "CREATE TABLE g (k BIGINT, p AS PROCTIME()) WITH ('connector' = 'datagen', 'number-of-rows' = '500', \
           'fields.k.min' = '0', 'fields.k.max' = '4')",
    )
    .await
    .unwrap();
    let result = ctx
        .query(
            "SELECT window_start, COUNT(*) AS c FROM TABLE(HOP(TABLE g, DESCRIPTOR(p), INTERVAL '5' SECOND, INTERVAL '10' SECOND)) \
             GROUP BY window_start, window_end",
        )
        .await
        .unwrap();
    let mut got = rows(&result.collect().await.unwrap());
    got.sort();
    // Every row is in the two hopping windows that hold T0 + 3 s.
    assert_eq!(got, vec![(T0 - 5_000, 500), (T0, 500)]);
}

/// An interval join on processing time: rows meet by the clock's time
/// when they pass, and a left row without a match is emitted padded once
/// the clock (here: the end of the bounded inputs) passes its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_join_on_processing_time_pairs_rows_by_the_clock() {
    let clock = ManualClock::new(T0);
    let mut ctx = StreamContext::builder().clock(clock).build();
    ctx.sql(
        "CREATE TABLE orders (id INT, customer STRING, amount BIGINT, ts TIMESTAMP(3), p AS PROCTIME()) \
           WITH ('connector' = 'filesystem', 'path' = 'tests/data/orders.csv', 'format' = 'csv');\
         CREATE TABLE payments (order_id INT, paid BIGINT, pay_ts TIMESTAMP(3), q AS PROCTIME()) \
           WITH ('connector' = 'filesystem', 'path' = 'tests/data/payments.csv', 'format' = 'csv')",
    )
    .await
    .unwrap();
    let query = "SELECT o.id, y.paid FROM orders o LEFT JOIN payments y ON o.id = y.order_id \
                 AND o.p BETWEEN y.q - INTERVAL '1' SECOND AND y.q + INTERVAL '1' SECOND";
    let explained = ctx.sql(&format!("EXPLAIN {query}")).await.unwrap();
    let weir::StatementResult::Text(text) = &explained[0] else {
        panic!("EXPLAIN shows text")
    };
    assert!(
        text.contains("IntervalJoin") && text.contains("processing time"),
        "{text}"
    );
    let result = ctx.query(query).await.unwrap();
    assert!(!result.updating, "an interval join is insert-only");
    let batches = result.collect().await.unwrap();
    let mut got: Vec<(i32, Option<i64>)> = Vec::new();
    for b in &batches {
        let ids = b
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let paid = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            got.push((ids.value(i), paid.is_valid(i).then(|| paid.value(i))));
        }
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            (1, Some(10)),
            (2, Some(25)),
            (3, Some(7)),
            (4, Some(20)),
            (4, Some(20)),
            (5, None),
            (6, Some(12)),
            (7, None),
        ]
    );
}
