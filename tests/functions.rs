//! A Rust keyed function between SQL tables (`examples/card_alerts.rs`) in a
//! checkpointed job, as real processes: killed with SIGKILL at random
//! moments and started again until it finishes, on both backends; and
//! killed once on `rocksdb` at parallelism 2, then resumed on `hashmap` at
//! parallelism 1. The committed alerts must equal an uninterrupted run's.
//!
//! The example binary is built by `cargo test` (which builds examples);
//! `cargo build --example card_alerts` builds it for a run of this file
//! alone.

#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{committed_rows, run_with_kills, walk};

mod common;

fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/functions-<hash> -> target/<profile>/examples/
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join(format!("card_alerts{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds it, or `cargo build --example card_alerts`",
        path.display()
    );
    path
}

/// Payments in one file, in event-time order (one reading subtask, so
/// every card's payments reach its function in the same order every run).
fn write_input(dir: &Path, rows: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut x: u64 = 0x5eed;
    let mut csv = String::with_capacity(rows as usize * 40);
    for i in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let cents = match x % 50 {
            0..=2 => 1 + (x >> 8) % 99,
            3..=9 => 50_000 + (x >> 8) % 100_000,
            _ => 500 + (x >> 8) % 20_000,
        };
        csv.push_str(&format!(
            "card-{:03},{cents},shop-{},{}\n",
            (x >> 33) % 300,
            (x >> 20) % 9,
            1_700_000_000_000 + i * 40
        ));
    }
    std::fs::write(dir.join("payments.csv"), csv).unwrap();
}

fn run(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(example());
    c.arg(input).arg(out).args(extra);
    c
}

fn reference(input: &Path, work: &Path) -> Vec<String> {
    let out = work.join("reference");
    let status = run(input, &out, &["--parallelism", "2"]).status().unwrap();
    assert!(status.success());
    committed_rows(&out)
}

#[test]
fn a_rust_function_job_survives_kills_on_both_backends() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("input");
    let rows = std::env::var("WEIR_CRASH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150_000u64);
    write_input(&input, rows);
    let expected = reference(&input, work.path());
    // Alerts, and tiny payments reported unanswered by their event-time
    // timer (no large payment): the comparison checks timers too.
    let unanswered = expected
        .iter()
        .filter(|r| r.split(',').nth(2) == Some(""))
        .count();
    assert!(
        expected.len() - unanswered > 300 && unanswered > 300,
        "{} alerts, {unanswered} unanswered",
        expected.len() - unanswered
    );
    for (i, backend) in ["hashmap", "rocksdb"].into_iter().enumerate() {
        let out = work.path().join(format!("out-{backend}"));
        let chk = work.path().join(format!("chk-{backend}"));
        let job = work.path().join(format!("job-{backend}"));
        let chk_arg = chk.to_str().unwrap().to_string();
        let outcome = run_with_kills(
            || {
                run(
                    &input,
                    &out,
                    &[
                        "--checkpoints",
                        &chk_arg,
                        "--backend",
                        backend,
                        "--parallelism",
                        "2",
                    ],
                )
            },
            &job,
            &out,
            0xf00d + i as u64,
        );
        assert!(outcome.kills > 0, "{backend}: never killed");
        assert!(
            outcome.resumed > 0,
            "{backend}: never resumed:\n{}",
            outcome.stderr
        );
        assert_eq!(
            outcome.rows.len(),
            expected.len(),
            "{backend}: {} alerts after {} kills, {} expected",
            outcome.rows.len(),
            outcome.kills,
            expected.len()
        );
        assert_eq!(outcome.rows, expected, "{backend}: other alerts");
    }
}

#[test]
fn a_rust_function_job_resumes_at_another_parallelism_and_backend() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("input");
    write_input(&input, 150_000);
    let expected = reference(&input, work.path());
    let out = work.path().join("out");
    let chk = work.path().join("chk");
    let chk_arg = chk.to_str().unwrap().to_string();
    // rocksdb, parallelism 2: killed once a checkpoint completed.
    let mut first = run(
        &input,
        &out,
        &[
            "--checkpoints",
            &chk_arg,
            "--backend",
            "rocksdb",
            "--parallelism",
            "2",
        ],
    )
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = walk(&chk).iter().any(|p| p.ends_with("_metadata"));
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint completed");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the job ended before a checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // hashmap, parallelism 1: resumes from that checkpoint.
    let second = run(
        &input,
        &out,
        &[
            "--checkpoints",
            &chk_arg,
            "--backend",
            "hashmap",
            "--parallelism",
            "1",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("Resuming job"), "{stderr}");
    assert_eq!(committed_rows(&out), expected);
}

/// A non-keyed function with operator state: a list split evenly (its row
/// count) and a union list (its subtask), stopped with a savepoint at
/// parallelism 2 and restored at 3. Each new subtask gets both old
/// subtasks' union entries and a share of the split list; the counts
/// carried over add up to the rows read before the stop, and no row is
/// read twice or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_state_is_split_evenly_or_as_a_union_on_restore() {
    use std::sync::Arc;

    use weir::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use weir::functions::{
        FunctionContext, OperatorListState, OperatorStateSnapshot, ProcessFunction, Redistribution,
        RestoredState, Result, Row, ScalarValue,
    };

    #[derive(Clone, Default)]
    struct Counter {
        subtask: usize,
        carried: u64,
        seen: u64,
        union_len: usize,
    }

    impl ProcessFunction for Counter {
        fn output_schema(&self) -> SchemaRef {
            Arc::new(Schema::new(vec![
                Field::new("subtask", DataType::Int64, true),
                Field::new("union_len", DataType::Int64, true),
                Field::new("carried", DataType::Int64, true),
            ]))
        }
        fn open(&mut self, restored: &RestoredState<'_>) -> Result<()> {
            self.subtask = restored.subtask();
            let counts = restored.list_state::<u64>("counts", Redistribution::SplitEvenly)?;
            self.carried = counts.get().iter().sum();
            let members = restored.list_state::<u64>("members", Redistribution::Union)?;
            self.union_len = members.get().len();
            Ok(())
        }
        fn process_element(
            &mut self,
            _row: &Row<'_>,
            ctx: &mut FunctionContext<'_, '_>,
        ) -> Result<()> {
            self.seen += 1;
            ctx.emit(vec![
                ScalarValue::Int64(Some(self.subtask as i64)),
                ScalarValue::Int64(Some(self.union_len as i64)),
                ScalarValue::Int64(Some(self.carried as i64)),
            ]);
            Ok(())
        }
        fn snapshot_state(&mut self) -> Result<Vec<OperatorStateSnapshot>> {
            let mut counts = OperatorListState::<u64>::new("counts", Redistribution::SplitEvenly);
            counts.add(self.carried + self.seen);
            let mut members = OperatorListState::<u64>::new("members", Redistribution::Union);
            members.add(self.subtask as u64);
            Ok(vec![counts.snapshot(), members.snapshot()])
        }
    }

    const ROWS: usize = 40_000;
    let work = tempfile::tempdir().unwrap();
    let context = |p: usize, out: &Path, savepoint: Option<&str>| {
        let mut b = weir::StreamContext::builder()
            .set("parallelism.default", &p.to_string())
            .unwrap()
            .set("pipeline.name", "operator-state")
            .unwrap()
            .set(
                "execution.checkpointing.savepoint-dir",
                work.path().join("sp").to_str().unwrap(),
            )
            .unwrap();
        if let Some(s) = savepoint {
            b = b.set("execution.savepoint.path", s).unwrap();
        }
        let ddl = format!(
            "CREATE TABLE g (k BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '{ROWS}', \
               'rows-per-second' = '20000');\
             CREATE TABLE o (subtask BIGINT, union_len BIGINT, carried BIGINT) \
               WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
            out.display()
        );
        (b.build(), ddl)
    };
    let parse = |rows: Vec<String>| -> Vec<(i64, i64, i64)> {
        rows.iter()
            .map(|r| {
                let v: Vec<i64> = r.split(',').map(|x| x.parse().unwrap()).collect();
                (v[0], v[1], v[2])
            })
            .collect()
    };
    // Parallelism 2, stopped with a savepoint part-way.
    let out1 = work.path().join("out1");
    let (mut ctx, ddl) = context(2, &out1, None);
    ctx.sql(&ddl).await.unwrap();
    let job = ctx
        .table("g")
        .unwrap()
        .process(Counter::default())
        .unwrap()
        .insert_into("o")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let savepoint = job.stop_with_savepoint(None, false).await.unwrap();
    let first = parse(committed_rows(&out1));
    assert!(
        !first.is_empty() && first.len() < ROWS,
        "{} rows before the stop",
        first.len()
    );
    assert!(first.iter().all(|(_, u, c)| *u == 0 && *c == 0));
    // Parallelism 3, from the savepoint.
    let out2 = work.path().join("out2");
    let (mut ctx, ddl) = context(3, &out2, Some(&savepoint));
    ctx.sql(&ddl).await.unwrap();
    ctx.table("g")
        .unwrap()
        .process(Counter::default())
        .unwrap()
        .insert_into("o")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let second = parse(committed_rows(&out2));
    assert_eq!(first.len() + second.len(), ROWS, "rows lost or read twice");
    let mut carried: std::collections::BTreeMap<i64, i64> = Default::default();
    for (subtask, union_len, c) in &second {
        assert_eq!(
            *union_len, 2,
            "every subtask gets both old subtasks' union entries"
        );
        carried.insert(*subtask, *c);
    }
    assert_eq!(carried.len(), 3, "every new subtask read rows: {carried:?}");
    assert_eq!(
        carried.values().sum::<i64>(),
        first.len() as i64,
        "the split counts add up to the rows read before the stop: {carried:?}"
    );
    assert_eq!(
        carried.values().filter(|c| **c == 0).count(),
        1,
        "two counts over three subtasks: one gets none: {carried:?}"
    );
}
