//! SQL files with expected output: each `tests/sql/<name>.sql` is piped into
//! a fresh `weir` process and its output compared with `<name>.out`.
//! `WEIR_REGENERATE=1 cargo test --test sql_files` rewrites the `.out` files
//! (review the diff). A first line `-- sort` sorts the rows of each result
//! table (for files that run at parallelism > 1).

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn normalize(output: &str, sort: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut block: Vec<String> = Vec::new();
    let mut borders = 0;
    for line in output.lines() {
        // Job ids are random.
        let line = if line.starts_with("Job ID: ") {
            "Job ID: <id>".to_string()
        } else {
            line.to_string()
        };
        if line.starts_with('+') && line.ends_with('+') {
            borders += 1;
            if borders % 3 == 0 {
                if sort {
                    block.sort();
                }
                out.append(&mut block);
            }
            out.push(line);
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

#[test]
fn sql_files_match_expected_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let regenerate = std::env::var("WEIR_REGENERATE").is_ok();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in files {
        let sql = std::fs::read_to_string(&file).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let actual = normalize(
            &String::from_utf8_lossy(&output.stdout),
            sql.starts_with("-- sort"),
        );
        let expected_path = file.with_extension("out");
        if regenerate {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "--- {}\nexpected:\n{expected}\nactual:\n{actual}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
