//! Helpers shared by the integration tests (`mod common;` in each).

#![allow(dead_code)] // each test file uses a part
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

pub mod kafka;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a filesystem sink committed in `dir`: every visible file's lines,
/// sorted (a multiset to compare). A missing folder holds no rows. Hidden
/// (uncommitted) files must not be left behind once a job finished.
pub fn committed_rows(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return rows;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        assert!(
            !name.starts_with('.'),
            "uncommitted file left after the job finished: {name}"
        );
        let text = std::fs::read_to_string(entry.path()).unwrap();
        rows.extend(text.lines().map(str::to_string));
    }
    rows.sort();
    rows
}

/// The checkout the tests run in. Cargo sets `CARGO_MANIFEST_DIR` when it
/// runs a test; the compile-time value can name another checkout when a
/// shared target directory reuses a test binary built there.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A small deterministic generator (xorshift), so that kill times repeat.
struct KillRng(u64);

impl KillRng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

pub struct Outcome {
    pub kills: usize,
    pub resumed: usize,
    pub rows: Vec<String>,
    pub stderr: String,
}

/// Runs `command` (a job writing into `out`; `job` names its files, beside
/// which each round's stderr is kept), killing it with SIGKILL at random
/// moments, until it exits 0.
pub fn run_with_kills(command: impl Fn() -> Command, job: &Path, out: &Path, seed: u64) -> Outcome {
    let mut rng = KillRng(seed | 1);
    let mut kills = 0;
    let mut resumed = 0;
    let mut stderr_all = String::new();
    for round in 0..40 {
        let stderr_path = job.with_extension(format!("stderr-{round}"));
        let mut child = command()
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        // Kill within the first seconds; later rounds get more time, so the
        // job always finishes eventually.
        let kill_after = Duration::from_millis(rng.between(300, 1500 + round * 400));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() >= kill_after {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        if stderr.contains("Resuming job") {
            resumed += 1;
        }
        stderr_all.push_str(&format!("--- round {round}\n{stderr}"));
        match status {
            None => kills += 1,
            Some(s) if s.success() => {
                return Outcome {
                    kills,
                    resumed,
                    rows: committed_rows(out),
                    stderr: stderr_all,
                }
            }
            Some(s) => panic!("weir run failed ({s}):\n{stderr_all}"),
        }
    }
    // Keep the stalled state (input, checkpoints, output) for a post-mortem:
    // the temporary directory is deleted when the test unwinds.
    let kept = std::env::temp_dir().join(format!("weir-crash-stalled-{}", std::process::id()));
    let copied = job
        .parent()
        .map(|work| {
            Command::new("cp")
                .arg("-r")
                .arg(work)
                .arg(&kept)
                .status()
                .is_ok_and(|s| s.success())
        })
        .unwrap_or(false);
    let where_kept = if copied {
        format!("state kept in {}", kept.display())
    } else {
        "state not kept".to_string()
    };
    panic!("the job did not finish in 40 rounds ({where_kept}):\n{stderr_all}");
}

/// Every file below `dir` (none when it does not exist).
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
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
