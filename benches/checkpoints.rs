//! What checkpoints cost, measured in one run so that ratios are meaningful
//! on a noisy machine:
//!
//! 1. Throughput of the windowed Nexmark aggregation (bids and top price
//!    per auction, 10-second tumbling windows) with checkpoints off, every
//!    10 s and every 1 s, on both backends.
//! 2. Bytes uploaded per checkpoint, full against incremental, for RocksDB
//!    state that is large and changes a little between checkpoints.
//! 3. Time to restore a subtask from a checkpoint of about 1 GB of RocksDB
//!    state: download from the checkpoint storage, then open the instance;
//!    and from a savepoint of the same state (canonical form), into either
//!    backend.
//! 4. A savepoint against the checkpoint just before it, of the same
//!    running job's state, on both backends: time and size.
//!
//! `cargo bench --bench checkpoints` (release); `-- --quick` for a smoke
//! run; `-- --events N`, `-- --repeat N`, `-- --restore-mb N` to change the
//! sizes.

use std::time::Instant;

use weir::checkpoint::{CheckpointStorage, SharedFiles};
use weir::state::{BackendConfig, BackendKind, StateDescriptor, StateKind};
use weir::StreamContext;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

const TUMBLE: &str =
    "INSERT INTO sink SELECT auction, window_start, window_end, COUNT(*), MAX(price) \
     FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) \
     GROUP BY auction, window_start, window_end";

struct Measured {
    seconds: f64,
    checkpoints: Vec<weir::CheckpointStats>,
}

async fn run_query(events: u64, settings: &[(&str, String)], query: &str, sink: &str) -> Measured {
    run_with_savepoint(events, settings, query, sink, None).await
}

/// Runs the query; with `savepoint_after`, takes a savepoint once the
/// sources produced that many events.
async fn run_with_savepoint(
    events: u64,
    settings: &[(&str, String)],
    query: &str,
    sink: &str,
    savepoint_after: Option<u64>,
) -> Measured {
    let mut builder = StreamContext::builder();
    for (k, v) in settings {
        builder = builder.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    let mut ctx = builder.build();
    let ddl = std::fs::read_to_string("benches/nexmark/ddl.sql")
        .unwrap_or_else(|e| panic!("benches/nexmark/ddl.sql: {e}"))
        .replace(
            "'events.num' = '10000000'",
            &format!("'events.num' = '{events}'"),
        );
    ctx.sql(&ddl).await.unwrap_or_else(|e| panic!("{e}"));
    ctx.sql(sink).await.unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let job = ctx.insert(query).await.unwrap_or_else(|e| panic!("{e}"));
    if let Some(n) = savepoint_after {
        loop {
            let produced: u64 = job
                .metrics()
                .iter()
                .filter(|(name, _)| name.starts_with("TableSourceScan"))
                .map(|(_, m)| m.records_out)
                .sum();
            if produced >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        job.savepoint(None).await.unwrap_or_else(|e| panic!("{e}"));
    }
    job.wait().await.unwrap_or_else(|e| panic!("{e}"));
    Measured {
        seconds: start.elapsed().as_secs_f64(),
        checkpoints: job.checkpoints(),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn throughput(events: u64, repeat: usize, work: &std::path::Path) {
    println!(
        "\n## Windowed aggregation with checkpoints ({events} events, parallelism 1, median of {repeat} runs, interleaved)\n"
    );
    println!("| backend | checkpoint interval | seconds (median) | events/s | vs. off | checkpoints | mean duration | mean size |");
    println!("|---|---|---|---|---|---|---|---|");
    let sink = "CREATE TABLE sink (auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, top BIGINT) WITH ('connector' = 'blackhole')";
    let configs: Vec<(&str, &str)> = ["hashmap", "rocksdb"]
        .into_iter()
        .flat_map(|b| ["off", "10 s", "1 s"].map(move |i| (b, i)))
        .collect();
    let mut results: Vec<Vec<Measured>> = configs.iter().map(|_| Vec::new()).collect();
    // Rounds over all configurations, so that a noisy minute hits them alike.
    for _ in 0..repeat {
        for (k, (backend, interval)) in configs.iter().enumerate() {
            let mut settings = vec![
                ("state.backend.type", backend.to_string()),
                (
                    "state.backend.rocksdb.localdir",
                    work.join("rocksdb").display().to_string(),
                ),
                ("pipeline.name", format!("bench-{backend}-{interval}")),
            ];
            if *interval != "off" {
                settings.push(("execution.checkpointing.interval", interval.to_string()));
                settings.push((
                    "execution.checkpointing.dir",
                    work.join("checkpoints").display().to_string(),
                ));
                settings.push(("execution.checkpointing.resume", "false".into()));
            }
            results[k].push(run_query(events, &settings, TUMBLE, sink).await);
        }
    }
    let mut off = 0.0;
    for ((backend, interval), mut runs) in configs.into_iter().zip(results) {
        runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        let median = &runs[runs.len() / 2];
        if interval == "off" {
            off = median.seconds;
        }
        let done: Vec<_> = runs
            .iter()
            .flat_map(|m| m.checkpoints.iter())
            .filter(|c| c.status == "COMPLETED" && !c.is_final)
            .collect();
        let n = done.len().max(1) as f64;
        let mean_ms = done
            .iter()
            .map(|c| c.duration.as_secs_f64() * 1000.0)
            .sum::<f64>()
            / n;
        let mean_size = done.iter().map(|c| mib(c.state_bytes)).sum::<f64>() / n;
        let (duration, size) = if done.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            (format!("{mean_ms:.0} ms"), format!("{mean_size:.1} MiB"))
        };
        println!(
            "| {backend} | {interval} | {:.2} | {:.0} | {:.1}% | {:.1} per run | {duration} | {size} |",
            median.seconds,
            events as f64 / median.seconds,
            (off / median.seconds) * 100.0,
            done.len() as f64 / runs.len() as f64,
        );
    }
}

async fn incremental(events: u64, work: &std::path::Path) {
    println!(
        "\n## Bytes uploaded per checkpoint, RocksDB, full against incremental ({events} events)\n"
    );
    println!(
        "State: the highest bid per (auction, bidder) since the start (an updating aggregate whose"
    );
    println!("state only grows), checkpointed every second; each checkpoint's state is mostly unchanged.\n");
    println!("| mode | checkpoints | mean state size | mean uploaded | uploaded / state |");
    println!("|---|---|---|---|---|");
    let sink = "CREATE TABLE sink (auction BIGINT, bidder BIGINT, top BIGINT) WITH ('connector' = 'blackhole')";
    let query =
        "INSERT INTO sink SELECT auction, bidder, MAX(price) FROM bid GROUP BY auction, bidder";
    for incremental in [false, true] {
        let settings = vec![
            ("state.backend.type", "rocksdb".to_string()),
            (
                "state.backend.rocksdb.localdir",
                work.join("rocksdb").display().to_string(),
            ),
            ("pipeline.name", format!("bench-incremental-{incremental}")),
            ("execution.checkpointing.interval", "1 s".into()),
            (
                "execution.checkpointing.dir",
                work.join("checkpoints").display().to_string(),
            ),
            (
                "execution.checkpointing.incremental",
                incremental.to_string(),
            ),
            ("execution.checkpointing.num-retained", "3".into()),
            ("execution.checkpointing.resume", "false".into()),
        ];
        let m = run_query(events, &settings, query, sink).await;
        let done: Vec<_> = m
            .checkpoints
            .iter()
            .filter(|c| c.status == "COMPLETED")
            .skip(1) // the first uploads everything either way
            .collect();
        let n = done.len().max(1) as f64;
        let state = done.iter().map(|c| c.state_bytes).sum::<u64>() as f64 / n;
        let up = done.iter().map(|c| c.uploaded_bytes).sum::<u64>() as f64 / n;
        println!(
            "| {} | {} | {:.1} MiB | {:.1} MiB | {:.0}% |",
            if incremental { "incremental" } else { "full" },
            done.len(),
            state / 1048576.0,
            up / 1048576.0,
            if state > 0.0 { up / state * 100.0 } else { 0.0 },
        );
    }
}

/// A savepoint and the checkpoint before it, of the same job's state.
async fn savepoint_against_checkpoint(events: u64, work: &std::path::Path) {
    println!("\n## A savepoint against the checkpoint before it ({events} events)\n");
    println!("State: the highest bid per (auction, bidder), as in the incremental table; checkpoints every");
    println!("second (full, not incremental), one savepoint taken at two thirds of the input.\n");
    println!(
        "| backend | checkpoint: state | checkpoint: time | savepoint: state | savepoint: time |"
    );
    println!("|---|---|---|---|---|");
    let sink = "CREATE TABLE sink (auction BIGINT, bidder BIGINT, top BIGINT) WITH ('connector' = 'blackhole')";
    let query =
        "INSERT INTO sink SELECT auction, bidder, MAX(price) FROM bid GROUP BY auction, bidder";
    for backend in ["hashmap", "rocksdb"] {
        let settings = vec![
            ("state.backend.type", backend.to_string()),
            (
                "state.backend.rocksdb.localdir",
                work.join("rocksdb").display().to_string(),
            ),
            ("pipeline.name", format!("bench-savepoint-{backend}")),
            ("execution.checkpointing.interval", "1 s".into()),
            (
                "execution.checkpointing.dir",
                work.join("checkpoints").display().to_string(),
            ),
            (
                "execution.checkpointing.savepoint-dir",
                work.join("savepoints").display().to_string(),
            ),
            ("execution.checkpointing.resume", "false".into()),
        ];
        let m = run_with_savepoint(events, &settings, query, sink, Some(events * 2 / 3)).await;
        let Some(sp) = m.checkpoints.iter().find(|c| c.savepoint) else {
            println!("| {backend} | no savepoint completed | | | |");
            continue;
        };
        let before = m
            .checkpoints
            .iter()
            .rfind(|c| !c.savepoint && c.status == "COMPLETED" && c.id < sp.id);
        let (size, time) = before
            .map(|c| {
                (
                    format!("{:.1} MiB", mib(c.state_bytes)),
                    format!("{} ms", c.duration.as_millis()),
                )
            })
            .unwrap_or_else(|| ("none before it".into(), String::new()));
        println!(
            "| {backend} | {size} | {time} | {:.1} MiB | {} ms |",
            mib(sp.state_bytes),
            sp.duration.as_millis()
        );
    }
}

/// Builds RocksDB state of about `megabytes`, checkpoints it into file
/// storage, and times the restore: download, then open.
async fn restore(megabytes: u64, work: &std::path::Path) {
    println!("\n## Restoring {megabytes} MB of RocksDB state from a checkpoint\n");
    let mut config = BackendConfig::new(BackendKind::RocksDb);
    config.local_dir = Some(work.join("restore-rocksdb"));
    let mut backend = config
        .create("bench-restore")
        .unwrap_or_else(|e| panic!("{e}"));
    let state = backend
        .register(&StateDescriptor::new("values", StateKind::Raw))
        .unwrap_or_else(|e| panic!("{e}"));
    let value = vec![0x5au8; 100];
    let entries = megabytes * 1024 * 1024 / 120;
    let started = Instant::now();
    let mut i = 0u64;
    while i < entries {
        let mut batch = Vec::with_capacity(10_000);
        for _ in 0..10_000.min(entries - i) {
            let group = (i % 128) as u16;
            let mut key = group.to_be_bytes().to_vec();
            key.extend_from_slice(&i.to_be_bytes());
            let mut v = value.clone();
            v[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            batch.push((key, Some(v)));
            i += 1;
        }
        backend
            .write(state, batch)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let snapshot_dir = work.join("restore-snapshot");
    let _ = std::fs::remove_dir_all(&snapshot_dir);
    std::fs::create_dir_all(&snapshot_dir).unwrap_or_else(|e| panic!("{e}"));
    let info = backend
        .snapshot(&snapshot_dir)
        .unwrap_or_else(|e| panic!("{e}"));
    let build = started.elapsed();
    let storage = CheckpointStorage::open(
        work.join("restore-checkpoints").to_str().unwrap_or("."),
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let job = storage.job("bench");
    let mut shared = SharedFiles::new("bench");
    let upload_started = Instant::now();
    let (files, uploaded) = weir::checkpoint::upload_snapshot(
        &job,
        "chk-1",
        "op1-0",
        &snapshot_dir,
        &info.files,
        Some(&mut shared),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let upload = upload_started.elapsed();
    drop(backend);

    let restore_dir = work.join("restore-download");
    let _ = std::fs::remove_dir_all(&restore_dir);
    let t = Instant::now();
    weir::checkpoint::download_snapshot(&job, &files, &restore_dir)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let download = t.elapsed();
    let t = Instant::now();
    let restore_config = config.clone();
    let restored = tokio::task::spawn_blocking(move || {
        weir::state::restore_backend(
            &restore_config,
            "bench-restored",
            &restore_dir,
            weir::state::KeyGroupRange::new(0, 128),
        )
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|e| panic!("{e}"));
    let open = t.elapsed();
    let stats = restored.stats().unwrap_or_else(|e| panic!("{e}"));
    drop(restored);
    println!("From a checkpoint (RocksDB's native SST files):\n");
    println!("| entries | snapshot size | build | upload | download | open | restore total |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {entries} | {:.0} MiB | {:.1} s | {:.1} s | {:.2} s | {:.2} s | {:.2} s |",
        mib(uploaded),
        build.as_secs_f64(),
        upload.as_secs_f64(),
        download.as_secs_f64(),
        open.as_secs_f64(),
        (download + open).as_secs_f64(),
    );
    assert!(stats.entries > 0);

    // The same state as a savepoint: canonical, then restored into each
    // backend (what a restore after `STOP JOB … WITH SAVEPOINT` does).
    let mut source = weir::state::restore_backend(
        &config,
        "bench-savepoint-source",
        &snapshot_dir,
        weir::state::KeyGroupRange::new(0, 128),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let canonical_dir = work.join("savepoint-local");
    let _ = std::fs::remove_dir_all(&canonical_dir);
    std::fs::create_dir_all(&canonical_dir).unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let sp_info = weir::state::write_canonical(source.as_mut(), &canonical_dir)
        .unwrap_or_else(|e| panic!("{e}"));
    let write = t.elapsed();
    drop(source);
    let savepoint = storage.job("savepoint-bench");
    let t = Instant::now();
    let (sp_files, _) = weir::checkpoint::upload_snapshot(
        &savepoint,
        "",
        "op1-0",
        &canonical_dir,
        &sp_info.files,
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let sp_upload = t.elapsed();
    println!("\nFrom a savepoint of the same state (canonical form; written {:.0} MiB in {:.1} s, uploaded in {:.1} s):\n",
        mib(sp_info.bytes), write.as_secs_f64(), sp_upload.as_secs_f64());
    println!("| into | download | import | restore total |");
    println!("|---|---|---|---|");
    for kind in [BackendKind::RocksDb, BackendKind::HashMap] {
        let dir = work.join("savepoint-download");
        let _ = std::fs::remove_dir_all(&dir);
        let t = Instant::now();
        weir::checkpoint::download_snapshot(&savepoint, &sp_files, &dir)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let download = t.elapsed();
        let mut into = BackendConfig::new(kind);
        into.local_dir = Some(work.join("restore-rocksdb"));
        let t = Instant::now();
        let restored = tokio::task::spawn_blocking(move || {
            weir::state::restore_merged(
                &into,
                "bench-from-savepoint",
                &[(dir, weir::state::SnapshotFormat::Canonical)],
                weir::state::KeyGroupRange::new(0, 128),
            )
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
        let import = t.elapsed();
        assert!(restored.stats().map(|s| s.entries > 0).unwrap_or(false));
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s |",
            kind.name(),
            download.as_secs_f64(),
            import.as_secs_f64(),
            (download + import).as_secs_f64()
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let events: u64 = arg("--events")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 100_000 } else { 20_000_000 });
    let repeat: usize = arg("--repeat")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let restore_mb: u64 = arg("--restore-mb")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 16 } else { 1024 });
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        throughput(events, repeat, work.path()).await;
        incremental(events, work.path()).await;
        savepoint_against_checkpoint(events, work.path()).await;
        restore(restore_mb, work.path()).await;
    });
}
