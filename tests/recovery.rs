//! Recovery inside one process: an operator fails, the restart strategy
//! restarts the job from its latest checkpoint, and the committed output is
//! the same as an undisturbed run's. With unaligned checkpoints and a slow
//! operator (backpressure), checkpoints complete unaligned with in-flight
//! data stored, and restoring from them is exact too.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use weir::StreamContext;

mod common;
use common::walk;

/// `inject(x)`: returns `x`; fails once when armed, and sleeps per batch when
/// slow (to make the operator a bottleneck).
#[derive(Debug)]
struct Inject {
    signature: Signature,
    armed: Arc<AtomicBool>,
    failures: Arc<AtomicUsize>,
    slow: Duration,
}

impl PartialEq for Inject {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Inject {}
impl std::hash::Hash for Inject {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "inject".hash(state)
    }
}

impl ScalarUDFImpl for Inject {
    fn name(&self) -> &str {
        "inject"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(datafusion::error::DataFusionError::Execution(
                "injected failure".into(),
            ));
        }
        if !self.slow.is_zero() {
            std::thread::sleep(self.slow);
        }
        Ok(args.args[0].clone())
    }
}

struct Run {
    rows: Vec<String>,
    restarts: usize,
    failures: usize,
    checkpoints: Vec<weir::CheckpointStats>,
}

/// Runs the windowed count over Nexmark bids into CSV files in `out`;
/// `fail_after` arms the injected failure once that many checkpoints
/// completed (and, with `needs_inflight`, one of them stored in-flight data).
async fn run(
    out: &Path,
    settings: &[(&str, &str)],
    slow: Duration,
    fail_after: Option<usize>,
) -> Run {
    let armed = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut builder = StreamContext::builder();
    for (k, v) in settings {
        builder = builder.set(k, v).unwrap();
    }
    let mut ctx = builder.build();
    ctx.register_udf(ScalarUDF::new_from_impl(Inject {
        signature: Signature::exact(vec![DataType::Int64], Volatility::Volatile),
        armed: armed.clone(),
        failures: failures.clone(),
        slow,
    }));
    let ddl = std::fs::read_to_string("benches/nexmark/ddl.sql")
        .unwrap()
        .replace("'events.num' = '10000000'", "'events.num' = '300000'");
    ctx.sql(&ddl).await.unwrap();
    ctx.sql(&format!(
        "CREATE TABLE counts (auction BIGINT, window_end TIMESTAMP(3), bids BIGINT, top BIGINT) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        out.display()
    ))
    .await
    .unwrap();
    ctx.sql("CREATE VIEW b AS SELECT inject(auction) AS auction, price, dateTime FROM bid")
        .await
        .unwrap();
    let job = ctx
        .insert(
            "INSERT INTO counts SELECT auction, window_end, COUNT(*), MAX(price) \
             FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(dateTime), INTERVAL '2' SECOND)) \
             GROUP BY auction, window_start, window_end",
        )
        .await
        .unwrap();
    if let Some(n) = fail_after {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let done = job
                .checkpoints()
                .iter()
                .filter(|c| c.status == "COMPLETED")
                .count();
            if done >= n {
                armed.store(true, Ordering::SeqCst);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint completed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    job.wait().await.unwrap();
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        assert!(!name.starts_with('.'), "uncommitted file left: {name}");
        rows.extend(
            std::fs::read_to_string(entry.path())
                .unwrap()
                .lines()
                .map(str::to_string),
        );
    }
    rows.sort();
    Run {
        rows,
        restarts: job.restarts(),
        failures: failures.load(Ordering::SeqCst),
        checkpoints: job.checkpoints(),
    }
}

const BASE: &[(&str, &str)] = &[
    ("parallelism.default", "2"),
    ("execution.batch-size", "512"),
    ("execution.buffer-capacity", "4"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_restarts_from_the_latest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let expected = run(&dir.path().join("reference"), BASE, Duration::ZERO, None).await;
    assert!(expected.rows.len() > 100);

    let mut settings = BASE.to_vec();
    settings.extend([
        ("pipeline.name", "restart-test"),
        ("execution.checkpointing.interval", "100 ms"),
        ("execution.checkpointing.dir", "memory://restart-test"),
        ("restart-strategy.type", "fixed-delay"),
        ("restart-strategy.fixed-delay.attempts", "2"),
        ("restart-strategy.fixed-delay.delay", "100 ms"),
    ]);
    let got = run(
        &dir.path().join("out"),
        &settings,
        Duration::from_millis(1),
        Some(2),
    )
    .await;
    assert_eq!(got.failures, 1, "the failure was injected once");
    assert_eq!(got.restarts, 1, "the job restarted once");
    assert_eq!(
        got.rows, expected.rows,
        "exactly-once output after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_restart_strategy_the_failure_fails_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = StreamContext::builder()
        .set("execution.checkpointing.interval", "100 ms")
        .unwrap()
        .build();
    let armed = Arc::new(AtomicBool::new(true));
    ctx.register_udf(ScalarUDF::new_from_impl(Inject {
        signature: Signature::exact(vec![DataType::Int64], Volatility::Volatile),
        armed,
        failures: Default::default(),
        slow: Duration::ZERO,
    }));
    ctx.sql(&format!(
        "CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1000', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '1000');\
         CREATE TABLE o (x BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        dir.path().display()
    ))
    .await
    .unwrap();
    let job = ctx
        .insert("INSERT INTO o SELECT inject(x) FROM g")
        .await
        .unwrap();
    let err = job.wait().await.unwrap_err().to_string();
    assert!(err.contains("injected failure"), "{err}");
    assert_eq!(job.restarts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unaligned_checkpoints_store_in_flight_data_and_restore_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let expected = run(&dir.path().join("reference"), BASE, Duration::ZERO, None).await;
    let checkpoints = dir.path().join("checkpoints");
    let chk = checkpoints.display().to_string();
    let mut settings = BASE.to_vec();
    settings.extend([
        ("pipeline.name", "unaligned-test"),
        ("execution.checkpointing.interval", "100 ms"),
        ("execution.checkpointing.dir", chk.as_str()),
        ("execution.checkpointing.num-retained", "100"),
        ("execution.checkpointing.unaligned.enabled", "true"),
        ("restart-strategy.type", "fixed-delay"),
        ("restart-strategy.fixed-delay.delay", "100 ms"),
    ]);
    // The slow function makes its operator the bottleneck: the channels into
    // it stay full, and unaligned barriers overtake what they hold.
    let got = run(
        &dir.path().join("out"),
        &settings,
        Duration::from_millis(2),
        Some(3),
    )
    .await;
    assert_eq!(got.restarts, 1);
    assert_eq!(
        got.rows, expected.rows,
        "exactly-once output after restoring unaligned checkpoints"
    );
    let unaligned: Vec<_> = got.checkpoints.iter().filter(|c| c.unaligned).collect();
    assert!(!unaligned.is_empty(), "{:?}", got.checkpoints);
    // The stored metadata lists in-flight batches for some subtask.
    let mut with_inflight = 0;
    for entry in walk(&checkpoints) {
        if entry.ends_with("_metadata") {
            let text = std::fs::read_to_string(&entry).unwrap();
            if text.contains("\"inflight\"") && text.contains("\"Batch\"") {
                with_inflight += 1;
            }
        }
    }
    assert!(with_inflight > 0, "no checkpoint stored in-flight batches");
}

/// The same recovery against an S3-protocol server (`.ci/run` starts moto's
/// server and names it in `WEIR_TEST_S3_ENDPOINT`), with RocksDB state and
/// incremental checkpoints: later checkpoints upload less than their state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_checkpoints_with_incremental_rocksdb_state_restore_exactly() {
    let Ok(endpoint) = std::env::var("WEIR_TEST_S3_ENDPOINT") else {
        eprintln!(
            "skipped: no S3-protocol server (set WEIR_TEST_S3_ENDPOINT and WEIR_TEST_S3_BUCKET; .ci/run starts one)"
        );
        return;
    };
    let bucket = std::env::var("WEIR_TEST_S3_BUCKET").unwrap_or_else(|_| "weir-test".into());
    let dir = tempfile::tempdir().unwrap();
    let expected = run(&dir.path().join("reference"), BASE, Duration::ZERO, None).await;
    let location = format!(
        "s3://{bucket}/recovery-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let localdir = dir.path().join("rocksdb").display().to_string();
    let mut settings = BASE.to_vec();
    settings.extend([
        ("pipeline.name", "s3-test"),
        ("state.backend.type", "rocksdb"),
        ("state.backend.rocksdb.localdir", localdir.as_str()),
        ("table.exec.state.cache-size", "1000"),
        ("execution.checkpointing.interval", "150 ms"),
        ("execution.checkpointing.dir", location.as_str()),
        ("execution.checkpointing.incremental", "true"),
        ("execution.checkpointing.num-retained", "2"),
        ("s3.endpoint", endpoint.as_str()),
        ("s3.access-key", "weir-test-key"),
        ("s3.secret-key", "weir-test-secret"),
        ("s3.region", "us-east-1"),
        ("restart-strategy.type", "fixed-delay"),
        ("restart-strategy.fixed-delay.delay", "100 ms"),
    ]);
    let got = run(
        &dir.path().join("out"),
        &settings,
        Duration::from_millis(1),
        Some(3),
    )
    .await;
    assert_eq!(got.restarts, 1);
    assert_eq!(
        got.rows, expected.rows,
        "exactly-once output restoring from S3"
    );
    let completed: Vec<_> = got
        .checkpoints
        .iter()
        .filter(|c| c.status == "COMPLETED")
        .collect();
    assert!(completed.len() >= 3, "{completed:?}");
    assert!(
        completed
            .iter()
            .all(|c| c.path.as_deref().is_some_and(|p| p.starts_with("s3://"))),
        "{completed:?}"
    );
    assert!(
        completed
            .iter()
            .any(|c| c.state_bytes > 0 && c.uploaded_bytes < c.state_bytes),
        "no checkpoint reused uploaded files: {completed:?}"
    );
}

/// On cancellation checkpoints are kept by default, and deleted with
/// `DELETE_ON_CANCELLATION`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_keeps_or_deletes_checkpoints() {
    for (retention, kept) in [
        ("RETAIN_ON_CANCELLATION", true),
        ("DELETE_ON_CANCELLATION", false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let chk = dir.path().join("chk");
        let mut ctx = StreamContext::builder()
            .set("pipeline.name", "cancel-test")
            .and_then(|b| b.set("execution.checkpointing.interval", "50 ms"))
            .and_then(|b| b.set("execution.checkpointing.dir", chk.to_str().unwrap()))
            .and_then(|b| {
                b.set(
                    "execution.checkpointing.externalized-checkpoint-retention",
                    retention,
                )
            })
            .unwrap()
            .build();
        ctx.sql(
            "CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '1000');\
             CREATE TABLE o (x BIGINT) WITH ('connector' = 'blackhole')",
        )
        .await
        .unwrap();
        let job = ctx.insert("INSERT INTO o SELECT x FROM g").await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !job.checkpoints().iter().any(|c| c.status == "COMPLETED") {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint completed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        job.cancel();
        assert!(job.wait().await.is_err());
        let job_dir = chk.join(job.pipeline_id());
        let has_metadata = walk(&job_dir).iter().any(|p| p.ends_with("_metadata"));
        assert_eq!(has_metadata, kept, "{retention}");
    }
}
