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

use common::{committed_rows, run_with_kills};

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
    assert!(expected.len() > 300, "only {} alerts", expected.len());
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

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
