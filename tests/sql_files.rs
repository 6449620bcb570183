//! SQL files with expected output: each `tests/sql/<name>.sql` is piped into
//! a fresh `weir` process and its output compared with `<name>.out`.
//! `WEIR_REGENERATE=1 cargo test --test sql_files` rewrites the `.out` files
//! (review the diff). A first line `-- sort` sorts the rows of each result
//! table (for files that run at parallelism > 1); `-- sort final` also
//! applies each changelog and shows the rows it ends with (for joins, whose
//! two inputs interleave in any order): a retraction of a row that was not
//! emitted shows up as a failure.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The checkout the tests run in. Cargo sets `CARGO_MANIFEST_DIR` when it
/// runs a test; the compile-time value can name another checkout when a
/// shared target directory reuses a test binary built there.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The rows a changelog table (`| op | …`) ends with, sorted; a retraction
/// of a row not in the result is kept as a line that no expected output has.
fn materialize(block: Vec<String>) -> Vec<String> {
    let mut live: std::collections::BTreeMap<String, usize> = Default::default();
    let mut wrong = Vec::new();
    for line in block {
        let (op, row) = match line.get(2..4).zip(line.get(4..)) {
            Some((op, row)) if line.starts_with("| ") => (op.to_string(), row.to_string()),
            _ => {
                wrong.push(line);
                continue;
            }
        };
        match op.as_str() {
            "+I" | "+U" => *live.entry(row).or_default() += 1,
            _ => match live.get_mut(&row) {
                Some(n) if *n > 0 => *n -= 1,
                _ => wrong.push(format!("RETRACTION OF A ROW NOT EMITTED: {line}")),
            },
        }
    }
    let mut out: Vec<String> = live
        .into_iter()
        .flat_map(|(row, n)| std::iter::repeat_n(format!("| +I{row}"), n))
        .collect();
    out.extend(wrong);
    out
}

fn normalize(output: &str, sort: bool, last: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut changelog = false;
    let mut block: Vec<String> = Vec::new();
    let mut borders = 0;
    for line in output.lines() {
        // Job ids are random.
        let line = if line.starts_with("Job ID: ") {
            "Job ID: <id>".to_string()
        } else if let Some(rest) = line.strip_prefix("[INFO] Job ") {
            match rest.split_once(' ') {
                Some((_, tail)) => format!("[INFO] Job <id> {tail}"),
                None => line.to_string(),
            }
        } else {
            line.to_string()
        };
        if line.starts_with('+') && line.ends_with('+') {
            borders += 1;
            if borders % 3 == 0 {
                if last && changelog {
                    block = materialize(std::mem::take(&mut block));
                }
                if sort {
                    block.sort();
                }
                out.append(&mut block);
            }
            out.push(line);
            continue;
        }
        if borders % 3 == 1 {
            changelog = line.starts_with("| op ");
        }
        if last && changelog && line.starts_with("Received a total of ") {
            out.push("Received a changelog".into());
            continue;
        }
        if borders % 3 == 2 && line.starts_with('|') {
            block.push(line);
        } else {
            out.push(line);
        }
    }
    out.append(&mut block);
    out.join("\n") + "\n"
}

/// How a pass runs the files: the configuration it adds, and whether rows
/// are compared in order.
struct Pass {
    name: &'static str,
    conf: Option<String>,
    exact_order: bool,
}

fn passes(scratch: &Path) -> Vec<Pass> {
    let rocksdb_dir = scratch.join("rocksdb");
    vec![
        Pass {
            name: "hashmap",
            conf: None,
            exact_order: true,
        },
        // A one-entry cache sends every group through the backend; rows
        // then come back in key order, so only the sets are compared.
        Pass {
            name: "hashmap, no cache",
            conf: Some("table.exec.state.cache-size: 1\n".into()),
            exact_order: false,
        },
        Pass {
            name: "rocksdb, no cache",
            conf: Some(format!(
                "state.backend.type: rocksdb\nstate.backend.rocksdb.localdir: {}\ntable.exec.state.cache-size: 1\n",
                rocksdb_dir.display()
            )),
            exact_order: false,
        },
        Pass {
            name: "rocksdb",
            conf: Some(format!(
                "state.backend.type: rocksdb\nstate.backend.rocksdb.localdir: {}\n",
                rocksdb_dir.display()
            )),
            exact_order: false,
        },
    ]
}

/// Runs every file on both state backends; the first pass (hashmap, with
/// the aggregate cache) must match the expected output exactly, the others
/// the same rows.
#[test]
fn sql_files_match_expected_output() {
    let dir = manifest_dir().join("tests/sql");
    let regenerate = std::env::var("WEIR_REGENERATE").is_ok();
    let scratch = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for pass in passes(scratch.path()) {
        if regenerate && pass.conf.is_some() {
            continue;
        }
        let conf_path = scratch.path().join("weir.yaml");
        if let Some(conf) = &pass.conf {
            std::fs::write(&conf_path, conf).unwrap();
        }
        for file in &files {
            let sql = std::fs::read_to_string(file).unwrap();
            let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
            if pass.conf.is_some() {
                command.arg("--conf").arg(&conf_path);
            }
            // Results on stdout, errors and job messages on stderr: one
            // pipe for both keeps them in the order they were written.
            let (mut reader, writer) = std::io::pipe().unwrap();
            let mut child = command
                .current_dir(manifest_dir())
                .stdin(Stdio::piped())
                .stdout(writer.try_clone().unwrap())
                .stderr(writer)
                .spawn()
                .unwrap();
            drop(command);
            child
                .stdin
                .take()
                .unwrap()
                .write_all(sql.as_bytes())
                .unwrap();
            let mut output = String::new();
            std::io::Read::read_to_string(&mut reader, &mut output).unwrap();
            child.wait().unwrap();
            let sort = sql.starts_with("-- sort") || !pass.exact_order;
            let last = sql.starts_with("-- sort final");
            let actual = normalize(&output, sort, last);
            let expected_path = file.with_extension("out");
            if regenerate {
                std::fs::write(&expected_path, &actual).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            let expected = if pass.exact_order {
                expected
            } else {
                normalize(&expected, true, false)
            };
            if expected != actual {
                failures.push(format!(
                    "--- {} ({})\nexpected:\n{expected}\nactual:\n{actual}",
                    file.display(),
                    pass.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
