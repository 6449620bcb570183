//! Helpers shared by the integration tests (`mod common;` in each).

#![allow(dead_code)] // each test file uses a part
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::path::Path;

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
