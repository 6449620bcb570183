//! State larger than memory: an updating aggregate over millions of distinct
//! keys on the `rocksdb` backend, whose process memory stays well below the
//! size of its state. Alone in its test binary, so that the resident memory
//! measured is this job's.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weir::StreamContext;

/// Resident memory of this process, in bytes (Linux).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_state_larger_than_memory() {
    if rss_bytes().is_none() {
        eprintln!("skipped: /proc/self/status is not readable on this system");
        return;
    }
    let keys: u64 = std::env::var("WEIR_LARGE_STATE_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = StreamContext::builder()
        .set("state.backend.type", "rocksdb")
        .unwrap()
        .set(
            "state.backend.rocksdb.localdir",
            dir.path().to_str().unwrap(),
        )
        .unwrap()
        .set("state.backend.rocksdb.block-cache-size", "16mb")
        .unwrap()
        .set("state.backend.rocksdb.writebuffer.size", "16mb")
        .unwrap()
        .set("table.exec.state.cache-size", "10000")
        .unwrap()
        .build();
    ctx.sql(&format!(
        "CREATE TABLE src (k BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '{keys}', \
         'rows-per-second' = '1000000000', 'fields.k.kind' = 'sequence', 'fields.k.start' = '1', \
         'fields.k.end' = '{keys}')"
    ))
    .await
    .unwrap();
    ctx.sql("CREATE TABLE sink (k BIGINT, c BIGINT, m STRING) WITH ('connector' = 'blackhole')")
        .await
        .unwrap();

    let baseline = rss_bytes().unwrap();
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = rss_bytes() {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Each key's state holds a 100-character string twice (accumulator and
    // last emitted result).
    let job = ctx
        .insert(
            "INSERT INTO sink SELECT k, COUNT(*), MAX(CONCAT(REPEAT('x', 100), CAST(k AS STRING))) \
             FROM src GROUP BY k",
        )
        .await
        .unwrap();
    job.wait().await.unwrap();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    let state = job.state_size();
    let peak = peak.load(Ordering::Relaxed);
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "{keys} keys: state {} MB in {} entries; process RSS baseline {} MB, peak {} MB",
        state.bytes >> 20,
        state.entries,
        baseline >> 20,
        peak >> 20
    );
    let sink_rows = job
        .metrics()
        .last()
        .map(|(_, m)| m.records_in)
        .unwrap_or_default();
    assert_eq!(sink_rows, keys, "one +I per key");
    // RocksDB's key count is an estimate.
    let entries = state.entries as f64;
    assert!(
        (entries - keys as f64).abs() < keys as f64 * 0.2,
        "state entries {entries} vs {keys} keys"
    );
    assert!(
        state.bytes > keys * 200,
        "state should be over 200 bytes a key: {} bytes",
        state.bytes
    );
    assert!(
        growth * 3 < state.bytes,
        "memory grew by {} MB for {} MB of state",
        growth >> 20,
        state.bytes >> 20
    );
}
