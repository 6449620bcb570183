//! End to end: the same windowed count over a space of a million keys on
//! the `hashmap` and the `rocksdb` backend, rows per second each, measured
//! in one run so that the ratio is meaningful on a noisy machine.
//!
//! `cargo bench --bench state_backends` (release); `-- --quick` for a smoke
//! run; `-- --rows N` to change the input size.

use std::time::Instant;

use weir::StreamContext;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

async fn run(
    backend: &str,
    cache: Option<&str>,
    rows: u64,
    dir: &std::path::Path,
) -> (f64, weir::state::StateStats) {
    let mut builder = StreamContext::builder()
        .set("state.backend.type", backend)
        .and_then(|b| {
            b.set(
                "state.backend.rocksdb.localdir",
                dir.to_str().unwrap_or("."),
            )
        })
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(cache) = cache {
        builder = builder
            .set("table.exec.state.cache-size", cache)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut ctx = builder.build();
    // Event time advances 1 ms every 200 rows: two 10-second windows per
    // 4 million rows, each touching most of the million keys.
    let ddl = format!(
        "CREATE TABLE src (seq BIGINT, k BIGINT, \
           ts AS CAST(to_timestamp_millis(seq / 200) AS TIMESTAMP(3)), \
           WATERMARK FOR ts AS ts) \
         WITH ('connector' = 'datagen', 'number-of-rows' = '{rows}', 'rows-per-second' = '1000000000', \
           'fields.seq.kind' = 'sequence', 'fields.seq.start' = '0', 'fields.seq.end' = '{}', \
           'fields.k.min' = '0', 'fields.k.max' = '999999')",
        rows - 1
    );
    for sql in [
        ddl.as_str(),
        "CREATE TABLE sink (k BIGINT, ws TIMESTAMP(3), c BIGINT) WITH ('connector' = 'blackhole')",
    ] {
        ctx.sql(sql).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let start = Instant::now();
    let job = ctx
        .insert(
            "INSERT INTO sink SELECT k, window_start, COUNT(*) \
             FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '10' SECOND)) \
             GROUP BY k, window_start, window_end",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    job.wait().await.unwrap_or_else(|e| panic!("{e}"));
    let secs = start.elapsed().as_secs_f64();
    (rows as f64 / secs, job.state_size())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rows: u64 = arg("--rows")
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 20_000 } else { 4_000_000 });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "windowed COUNT(*) per key, TUMBLE 10 s, keys in [0, 1000000), {rows} rows, parallelism 1"
    );
    let mut results = Vec::new();
    for (backend, cache) in [
        ("hashmap", None),
        ("rocksdb", None),
        ("hashmap", Some("100000")),
    ] {
        let (rate, state) = run(backend, cache, rows, dir.path()).await;
        let cache = cache.unwrap_or("default");
        println!(
            "{backend:<8} cache {cache:>8} {rate:>12.0} rows/s   (state at the end: {} entries, {} bytes)",
            state.entries, state.bytes
        );
        results.push(rate);
    }
    println!(
        "rocksdb / hashmap, default caches (hashmap: every group in memory; rocksdb: 100000 groups): {:.3}",
        results[1] / results[0]
    );
    println!(
        "rocksdb / hashmap, both with a 100000-group cache: {:.2}",
        results[1] / results[2]
    );
}
