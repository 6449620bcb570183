//! The `weir` binary as a user runs it: `weir run`, piped scripts, exit codes
//! and messages, the YAML configuration, and the filesystem sink's files.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The checkout the tests run in. Cargo sets `CARGO_MANIFEST_DIR` when it
/// runs a test; the compile-time value can name another checkout when a
/// shared target directory reuses a test binary built there.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A configuration for `weir run` in tests, which run side by side: the
/// REST API on any free port (a port in use is an error).
fn test_conf() -> &'static str {
    static CONF: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CONF.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("weir-cli-test-{}.yaml", std::process::id()));
        std::fs::write(&path, "rest.port: 0\n").unwrap();
        path.display().to_string()
    })
}

fn weir(args: &[&str], stdin: Option<&str>) -> Output {
    let mut args: Vec<&str> = args.to_vec();
    if args.first() == Some(&"run") && !args.contains(&"--conf") {
        args.extend(["--conf", test_conf()]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(&args)
        .current_dir(manifest_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn piped_select_prints_a_table() {
    let out = weir(&[], Some("SELECT 1 AS one, 'x' AS two;"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(" one | two "), "{stdout}");
    assert!(stdout.contains("|                    1 | x"), "{stdout}");
    assert!(stdout.contains("Received a total of 1 row"), "{stdout}");
}

#[test]
fn piped_errors_are_reported_and_the_script_goes_on() {
    let out = weir(&[], Some("SELECT * FROM nowhere;\nSELECT 2 AS two;"));
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    // Errors go to stderr, results to stdout.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Object 'nowhere' not found at line 1, column 15"),
        "{stderr}"
    );
    assert!(!stdout.contains("nowhere"), "{stdout}");
    assert!(stdout.contains("Received a total of 1 row"), "{stdout}");
}

#[test]
fn run_executes_a_file_and_writes_hidden_then_visible_part_files() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.sql");
    let out_dir = dir.path().join("out");
    std::fs::write(
        &job,
        format!(
            "CREATE TABLE src (id INT, name STRING, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
             WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');\n\
             CREATE TABLE dst (name STRING, window_end TIMESTAMP(3), total BIGINT)\n\
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             INSERT INTO dst SELECT name, window_end, SUM(v) FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '10' SECOND))\n\
             GROUP BY name, window_start, window_end;\n",
            out_dir.display()
        ),
    )
    .unwrap();
    let out = weir(&["run", job.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("finished"),
        "{}",
        text(&out.stderr)
    );
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&out_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            !name.starts_with('.'),
            "an in-progress file was left: {name}"
        );
        lines.extend(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(str::to_string),
        );
    }
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "a,2024-01-01 00:00:10.000,40",
            "b,2024-01-01 00:00:10.000,20",
            "b,2024-01-01 00:00:20.000,15",
            "c,2024-01-01 00:00:20.000,5",
        ]
    );
}

#[test]
fn run_stops_at_the_first_error_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("bad.sql");
    std::fs::write(&job, "SET 'parallelism.default' = '1';\nCREATE TABLE t (\n  id BIGINT,\n  x WHATEVER\n) WITH ('connector' = 'datagen');\nSELECT 1;\n").unwrap();
    let out = weir(&["run", job.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("line 4, column 5"), "{stderr}");
    assert!(
        !text(&out.stdout).contains("Received a total"),
        "statements after the error must not run"
    );
}

#[test]
fn run_fails_on_a_malformed_record_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.sql");
    std::fs::write(
        &job,
        "CREATE TABLE s (id INT, name STRING, v BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = 'tests/data/bad.csv', 'format' = 'csv');\n\
         CREATE TABLE p (id INT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO p SELECT id FROM s;\n",
    )
    .unwrap();
    let out = weir(&["run", job.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("tests/data/bad.csv at line 2"), "{stderr}");
}

#[test]
fn configuration_file_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("weir.yaml");
    std::fs::write(&conf, "parallelism:\n  default: 2\n").unwrap();
    let out = weir(&["--conf", conf.to_str().unwrap()], Some("SET;"));
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("| parallelism.default"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout)
        .lines()
        .any(|l| l.contains("parallelism.default") && l.contains(" 2 ")));
    std::fs::write(&conf, "paralelism.default: 2\n").unwrap();
    let out = weir(&["--conf", conf.to_str().unwrap()], Some("SET;"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown configuration key 'paralelism.default'"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn quickstart_example_prints_window_results() {
    let out = weir(&["run", "examples/quickstart.sql"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("+I[")).collect();
    assert!(rows.len() > 10, "{stdout}");
    assert!(rows.iter().all(|r| r.split(", ").count() == 5), "{rows:?}");
}

/// The interactive shell on a pseudo-terminal (through util-linux `script`):
/// multi-line statements, Ctrl-C cancelling a running query while the shell
/// stays usable, and `quit;`.
#[test]
fn interactive_shell_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    // `script -c` runs the command through `$SHELL -c`. A shell such as dash
    // stays the shell's parent in the terminal's foreground group and, after
    // the Ctrl-C below, exits by SIGINT itself; `exec` leaves only the shell.
    let command = format!(
        "exec '{}'",
        env!("CARGO_BIN_EXE_weir").replace('\'', r"'\''")
    );
    let mut child = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("HOME", home.path())
        .current_dir(manifest_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // Collect the terminal's output as it comes, to wait for the shell.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !seen.lock().unwrap().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {needle:?}; screen:\n{}",
                seen.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let prompts = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while seen.lock().unwrap().matches("Weir SQL>").count() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for prompt {n}; screen:\n{}",
                seen.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let mut send = |s: &str| {
        input.write_all(s.as_bytes()).unwrap();
        input.flush().unwrap();
    };
    wait_for("Weir SQL>");
    // Typed-ahead lines can be flushed when the line editor switches the
    // terminal mode, so each line waits for the previous one's echo.
    send("CREATE TABLE g (x BIGINT)\n");
    wait_for("CREATE TABLE g (x BIGINT)");
    std::thread::sleep(std::time::Duration::from_millis(300));
    send("WITH ('connector' = 'datagen', 'rows-per-second' = '20');\n");
    wait_for("[INFO] Execute statement succeeded.");
    prompts(2);
    // The table view (Flink's default): the result materialized in place on
    // the alternate screen, until Ctrl-C (a SIGINT: the query runs with the
    // terminal in cooked mode) returns to the prompt.
    send("SELECT x % 3 AS k, COUNT(*) AS n FROM g GROUP BY x % 3;\n");
    wait_for("Weir SQL table result. Refresh: 0.5 s. Rows: ");
    wait_for("|                    k |                    n |");
    std::thread::sleep(std::time::Duration::from_millis(800));
    send("\u{3}");
    wait_for("back at the prompt.");
    prompts(3);
    std::thread::sleep(std::time::Duration::from_millis(300));
    send("SET 'sql-client.execution.result-mode' = 'tableau';\n");
    wait_for("Session property has been set.");
    prompts(4);
    std::thread::sleep(std::time::Duration::from_millis(300));
    send("SELECT x FROM g;\n");
    // Tableau: rows stream as a growing table.
    wait_for("|                    x |");
    std::thread::sleep(std::time::Duration::from_millis(500));
    send("\u{3}");
    wait_for("Query cancelled after");
    prompts(5);
    std::thread::sleep(std::time::Duration::from_millis(300));
    send("SELECT 7 AS seven;\n");
    wait_for("Received a total of 1 row");
    prompts(6);
    // A burst of statements, not pasted (no bracketed paste): each runs.
    std::thread::sleep(std::time::Duration::from_millis(300));
    send("SELECT 8 AS eight;\nSELECT 9 AS nine;\nSELECT 10 AS ten;\n");
    wait_for("eight |");
    wait_for("nine |");
    wait_for("ten |");
    prompts(9);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // History is appended as statements run, not only on exit.
    let history = std::fs::read_to_string(home.path().join(".weir_history")).unwrap_or_default();
    assert!(history.contains("SELECT 7 AS seven;"), "{history}");
    // Tab completes keywords; HELP lists the SQL statements.
    send("HEL");
    wait_for("HEL");
    send("\t");
    wait_for("HELP");
    std::thread::sleep(std::time::Duration::from_millis(300));
    send(";\n");
    wait_for("SHOW CREATE TABLE t | VIEW v");
    prompts(10);
    std::thread::sleep(std::time::Duration::from_millis(300));
    send(
        "CREATE TABLE o (x BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'printed');\n",
    );
    prompts(11);
    std::thread::sleep(std::time::Duration::from_millis(300));
    send("INSERT INTO o SELECT x FROM g;\n");
    wait_for("Job ID:");
    prompts(12);
    // The print sink's rows reach the terminal (above the prompt).
    wait_for("printed> +I[");
    std::thread::sleep(std::time::Duration::from_millis(300));
    // QUIT says that it stops the running job, and does.
    send("quit;\n");
    wait_for("Stopping 1 running job before leaving");
    wait_for(") stopped.");
    wait_for("Bye!");
    // Keep `script`'s stdin open until the shell has exited: on end of
    // input `script` may hang up the terminal while the shell is still
    // saving its history, and the shell would die of SIGHUP.
    let status = child.wait().unwrap();
    drop(input);
    reader.join().unwrap();
    assert!(status.success(), "{status}: {}", seen.lock().unwrap());
}

/// Writes JSON lines and Parquet with the filesystem sink and reads them back
/// with the filesystem source: the same rows come out.
#[test]
fn json_and_parquet_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["json", "parquet"] {
        let path = dir.path().join(format);
        let script = format!(
            "CREATE TABLE src (id INT, name STRING, v BIGINT, ts TIMESTAMP(3)) \
               WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');\n\
             CREATE TABLE dst (id INT, name STRING, v BIGINT, ts TIMESTAMP(3)) \
               WITH ('connector' = 'filesystem', 'path' = '{p}', 'format' = '{format}');\n\
             SET 'table.dml-sync' = 'true';\n\
             INSERT INTO dst SELECT id, name, v * 10, ts FROM src;\n\
             SELECT SUM(v) AS total, COUNT(*) AS n, MAX(ts) AS last FROM dst;\n",
            p = path.display()
        );
        let out = weir(&[], Some(&script));
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{format}: {stdout}{}",
            text(&out.stderr)
        );
        // The updating aggregate's last row holds the totals of all five rows.
        let last = stdout
            .lines()
            .rfind(|l| l.starts_with("| +"))
            .unwrap_or_default()
            .to_string();
        assert!(
            last.contains("800")
                && last.contains("|                    5 |")
                && last.contains("2024-01-01 00:00:13.000"),
            "{format}: {stdout}"
        );
    }
}

#[test]
fn json_source_reports_or_skips_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.json");
    std::fs::write(&file, "{\"id\": 1, \"name\": \"a\"}\n{\"id\": \"x\", \"name\": \"b\"}\nnot json\n{\"id\": 4, \"name\": \"d\"}\n").unwrap();
    let table = |ignore: bool| {
        format!(
            "CREATE TABLE j (id INT, name STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json', 'json.ignore-parse-errors' = '{ignore}');\nSELECT id, name FROM j;\n",
            file.display()
        )
    };
    let out = weir(&[], Some(&table(true)));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Received a total of 2 rows"), "{stdout}");
    assert!(
        text(&out.stderr).contains("2 malformed records skipped"),
        "{}",
        text(&out.stderr)
    );
    let out = weir(&[], Some(&table(false)));
    assert!(
        text(&out.stderr).contains("in.json at line 2"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn datagen_rows_follow_the_options() {
    let out = weir(
        &[],
        Some(
            "CREATE TABLE g (id BIGINT, score INT, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '500', \
               'rows-per-second' = '100000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '500', \
               'fields.score.min' = '10', 'fields.score.max' = '20', 'fields.name.length' = '4');\n\
             SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi, MIN(score) >= 10 AND MAX(score) <= 20 AS in_range, MAX(LENGTH(name)) AS len FROM g;\n",
        ),
    );
    let stdout = text(&out.stdout);
    let last = stdout
        .lines()
        .rfind(|l| l.starts_with("| +"))
        .unwrap_or_default()
        .to_string();
    let cells: Vec<&str> = last
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(&cells[1..], &["500", "1", "500", "true", "4"], "{stdout}");
}

/// `SHOW JOBS` lists the session's jobs with their state, on both backends.
#[test]
fn show_jobs_reports_state_size() {
    let dir = tempfile::tempdir().unwrap();
    for backend in ["hashmap", "rocksdb"] {
        let script = format!(
            "SET 'state.backend.type' = '{backend}';\n\
             SET 'state.backend.rocksdb.localdir' = '{}';\n\
             SET 'table.dml-sync' = 'true';\n\
             SET 'pipeline.name' = 'tens';\n\
             CREATE TABLE src (seq BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1000', \
               'rows-per-second' = '1000000', 'fields.seq.kind' = 'sequence', 'fields.seq.start' = '1', \
               'fields.seq.end' = '1000');\n\
             CREATE TABLE sink (k BIGINT, c BIGINT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO sink SELECT seq % 10, COUNT(*) FROM src GROUP BY seq % 10;\n\
             SHOW JOBS;\n",
            dir.path().display()
        );
        let out = weir(&[], Some(&script));
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
        assert!(
            stdout.contains("| job id ") && stdout.contains("state entries"),
            "{stdout}"
        );
        let row = stdout
            .lines()
            .find(|l| l.contains("| tens "))
            .unwrap_or_else(|| panic!("no row for the job: {stdout}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[3], "FINISHED", "{row}");
        assert_eq!(cells[4], "10", "{backend}: ten groups held: {row}");
        assert!(cells[5].ends_with('B'), "{row}");
        // RocksDB instances are working copies, removed when the job ends.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{backend}: left behind {left:?}");
    }
}

/// The checkpoint ids in a job's checkpoint folder, ascending.
fn checkpoint_ids(job_dir: &std::path::Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(job_dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            name.strip_prefix("chk-")?.parse().ok()
        })
        .collect();
    ids.sort();
    ids
}

/// A checkpointed job: `SHOW CHECKPOINTS` lists them; a damaged latest
/// checkpoint (a truncated state file, then broken metadata) is skipped with
/// a warning in favour of the previous one when the job is run again.
#[test]
fn damaged_checkpoints_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().join("chk");
    let job = dir.path().join("job.sql");
    let ddl = std::fs::read_to_string(manifest_dir().join("benches/nexmark/ddl.sql"))
        .unwrap()
        .replace(
            "'events.num' = '10000000'",
            "'events.num' = '40000', 'first-event.rate' = '40000'",
        );
    std::fs::write(
        &job,
        format!(
            "SET 'pipeline.name' = 'damaged';\n\
             SET 'execution.checkpointing.interval' = '200 ms';\n\
             SET 'execution.checkpointing.dir' = '{}';\n\
             SET 'execution.checkpointing.num-retained' = '3';\n\
             SET 'table.dml-sync' = 'true';\n\
             {ddl}\n\
             CREATE TABLE counts (auction BIGINT, bids BIGINT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO counts SELECT auction, COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end;\n\
             SHOW CHECKPOINTS;\n",
            chk.display()
        ),
    )
    .unwrap();
    let first = weir(&["run", job.to_str().unwrap()], None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    assert!(stdout.contains("| COMPLETED |"), "{stdout}");
    let job_dir = std::fs::read_dir(&chk)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let ids = checkpoint_ids(&job_dir);
    assert_eq!(ids.len(), 3, "num-retained keeps three: {ids:?}");
    let (latest, previous) = (ids[2], ids[1]);

    // A truncated state file in the latest checkpoint.
    let state = job_dir
        .join(format!("chk-{latest}"))
        .read_dir()
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().is_dir())
        .map(|op| op.path().join("state.snap"))
        .unwrap();
    let bytes = std::fs::read(&state).unwrap();
    std::fs::write(&state, &bytes[..bytes.len() / 2]).unwrap();
    let second = weir(&["run", job.to_str().unwrap()], None);
    let stderr = text(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("[WARN] skipping checkpoint {latest}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("from checkpoint {previous} ")),
        "{stderr}"
    );
    // The blackhole sink is at least once: it is told to write the
    // skipped checkpoint's output again.
    assert!(
        stderr.contains(
            "these sinks write their output of 1 checkpoint again: connector=[blackhole]"
        ),
        "{stderr}"
    );

    // Broken metadata in the newest checkpoint now.
    let newest = *checkpoint_ids(&job_dir).last().unwrap();
    let meta = job_dir.join(format!("chk-{newest}/_metadata"));
    let text_meta = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(
        &meta,
        text_meta.replacen("\"is_final\":true", "\"is_final\":false", 1),
    )
    .unwrap();
    let third = weir(&["run", job.to_str().unwrap()], None);
    let stderr = text(&third.stderr);
    assert!(third.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("skipping checkpoint {newest}"))
            && stderr.contains("checksum mismatch"),
        "{stderr}"
    );
}

/// Credentials for checkpoint storage are never printed by `SET`.
#[test]
fn storage_credentials_are_not_printed() {
    let out = weir(
        &[],
        Some("SET 's3.access-key' = 'AKIAEXAMPLEKEY';\nSET 's3.secret-key' = 'hunter2-secret';\nSET 's3.endpoint' = 'http://admin:hunter3@127.0.0.1:9000';\nSET;\n"),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("s3.secret-key"), "{stdout}");
    assert!(stdout.contains("******"), "{stdout}");
    assert!(
        stdout.contains("http://admin:******@127.0.0.1:9000"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("hunter2")
            && !stdout.contains("AKIAEXAMPLE")
            && !stdout.contains("hunter3"),
        "{stdout}"
    );
}

/// `weir run --fresh` deletes a named job's checkpoints and starts over;
/// `weir run -s <checkpoint>` restores the one named.
#[test]
fn fresh_starts_over_and_s_restores_a_named_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().join("chk");
    let job = dir.path().join("job.sql");
    std::fs::write(
        &job,
        format!(
            "SET 'pipeline.name' = 'fresh-test';\n\
             SET 'execution.checkpointing.interval' = '100 ms';\n\
             SET 'execution.checkpointing.dir' = '{}';\n\
             SET 'execution.checkpointing.num-retained' = '2';\n\
             CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '600', 'rows-per-second' = '1000', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '600');\n\
             CREATE TABLE o (x BIGINT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO o SELECT x FROM g;\n",
            chk.display()
        ),
    )
    .unwrap();
    let first = weir(&["run", job.to_str().unwrap()], None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let job_dir = std::fs::read_dir(&chk)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let before = checkpoint_ids(&job_dir);
    assert_eq!(before.len(), 2, "{before:?}");

    // Run again: resumes from the final checkpoint; numbering goes on.
    let again = weir(&["run", job.to_str().unwrap()], None);
    let stderr = text(&again.stderr);
    assert!(
        stderr.contains(&format!("from checkpoint {} ", before[1])),
        "{stderr}"
    );
    let resumed = checkpoint_ids(&job_dir);
    assert!(
        resumed[0] > before[0],
        "{before:?} then {resumed:?}: {stderr}"
    );

    // --fresh: no resume, numbering restarts from 1.
    let fresh = weir(&["run", job.to_str().unwrap(), "--fresh"], None);
    let stderr = text(&fresh.stderr);
    assert!(fresh.status.success(), "{stderr}");
    assert!(!stderr.contains("Resuming"), "{stderr}");
    let after = checkpoint_ids(&job_dir);
    assert!(
        after.iter().all(|id| *id < before[0] + 3),
        "{before:?} then {after:?}"
    );

    // -s: restores exactly the checkpoint given.
    let path = job_dir.join(format!("chk-{}", after[0]));
    let restored = weir(
        &["run", job.to_str().unwrap(), "-s", path.to_str().unwrap()],
        None,
    );
    let stderr = text(&restored.stderr);
    assert!(restored.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Restoring job 'fresh-test' from {}",
            path.display()
        )),
        "{stderr}"
    );
    let missing = weir(
        &[
            "run",
            job.to_str().unwrap(),
            "-s",
            &format!("{}/chk-999", job_dir.display()),
        ],
        None,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("chk-999"),
        "{}",
        text(&missing.stderr)
    );
}

/// Two checkpointed INSERTs under one `pipeline.name` would share one
/// checkpoint folder: the second is refused, saying how to name them.
#[test]
fn two_inserts_under_one_pipeline_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.sql");
    std::fs::write(
        &job,
        format!(
            "SET 'pipeline.name' = 'same';\n\
             SET 'execution.checkpointing.interval' = '100 ms';\n\
             SET 'execution.checkpointing.dir' = '{}';\n\
             CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100');\n\
             CREATE TABLE o1 (x BIGINT) WITH ('connector' = 'blackhole');\n\
             CREATE TABLE o2 (x BIGINT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO o1 SELECT x FROM g;\n\
             INSERT INTO o2 SELECT x FROM g;\n",
            dir.path().join("chk").display()
        ),
    )
    .unwrap();
    let out = weir(&["run", job.to_str().unwrap()], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("pipeline.name 'same' already names job")
            && stderr.contains("SET 'pipeline.name' = '<another name>'")
            && stderr.contains("statement at line 8")
            && stderr.contains("statement at line 7"),
        "{stderr}"
    );
}

/// The rows a CSV sink committed, as numbers, sorted.
fn committed_numbers(dir: &std::path::Path) -> Vec<u64> {
    let mut rows: Vec<u64> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .flat_map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap()
                        .lines()
                        .map(|l| l.parse::<u64>().unwrap())
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default();
    rows.sort();
    rows
}

/// Starts `weir run job`, lets it run for `after`, sends one `signal`
/// (`TERM`, `INT`) and waits for it to exit with `code`; returns its stderr.
fn run_then_signal(
    job: &std::path::Path,
    after: std::time::Duration,
    signal: &str,
    code: i32,
) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(job)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "took {:?} to stop: {stderr}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    stderr
}

/// One SIGTERM stops every job of `weir run`, each with a final
/// checkpoint: what they read until then is committed, and the next run
/// resumes each job where it stopped, so over two runs every sequence
/// number is committed exactly once and none is skipped.
#[test]
fn one_sigterm_stops_every_job_with_a_final_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.sql");
    let (out_a, out_b) = (dir.path().join("a"), dir.path().join("b"));
    let mut sql = format!(
        "SET 'execution.checkpointing.interval' = '300 ms';\n\
         SET 'execution.checkpointing.dir' = '{}';\n\
         SET 'rest.port' = '0';\n\
         CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '400', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '1000000000');\n",
        dir.path().join("chk").display()
    );
    for (name, out) in [("a", &out_a), ("b", &out_b)] {
        sql.push_str(&format!(
            "CREATE TABLE o_{name} (x BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             SET 'pipeline.name' = 'sigterm-{name}';\n\
             INSERT INTO o_{name} SELECT x FROM g;\n",
            out.display()
        ));
    }
    std::fs::write(&job, sql).unwrap();

    // A sequence of 10^9 rows is bounded: stopped before its end, 130.
    let first = run_then_signal(&job, std::time::Duration::from_millis(2500), "TERM", 130);
    assert!(first.contains("Stopping 2 running jobs"), "{first}");
    assert_eq!(first.matches(") stopped.").count(), 2, "{first}");
    let (a1, b1) = (committed_numbers(&out_a), committed_numbers(&out_b));
    for rows in [&a1, &b1] {
        assert!(
            !rows.is_empty(),
            "the final checkpoint committed nothing: {first}"
        );
        assert_eq!(
            *rows,
            (1..=rows.len() as u64).collect::<Vec<_>>(),
            "{first}"
        );
    }

    let second = run_then_signal(&job, std::time::Duration::from_millis(2500), "TERM", 130);
    for name in ["sigterm-a", "sigterm-b"] {
        assert!(
            second.contains(&format!("Resuming job '{name}' from checkpoint")),
            "{second}"
        );
    }
    for (before, out) in [(&a1, &out_a), (&b1, &out_b)] {
        let rows = committed_numbers(out);
        assert!(
            rows.len() > before.len(),
            "the second run committed nothing: {second}"
        );
        assert_eq!(
            rows,
            (1..=rows.len() as u64).collect::<Vec<_>>(),
            "{second}"
        );
    }
}

/// A REST port in use is an error, not a warning: `weir list` would talk
/// to whatever serves there. A port out of range is refused when set.
#[test]
fn a_rest_port_in_use_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.sql");
    std::fs::write(
        &job,
        format!(
            "SET 'rest.port' = '{port}';\n\
             CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '10');\n\
             CREATE TABLE o (x BIGINT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO o SELECT x FROM g;\n"
        ),
    )
    .unwrap();
    let out = weir(&["run", job.to_str().unwrap(), "--conf", "/dev/null"], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && stderr.contains("'rest.enabled' to 'false'"),
        "{stderr}"
    );
    let out = weir(&[], Some("SET 'rest.port' = '99999';"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("'rest.port'") && stderr.contains("from 0 to 65535"),
        "{stderr}"
    );
    drop(taken);
}

/// `datagen` random values differ from run to run, as in Flink, unless a
/// field's or the table's seed is set; a resumed job keeps the seeds it
/// drew (they are part of the checkpointed position).
#[test]
fn datagen_is_random_unless_seeded_and_a_resumed_job_keeps_its_seeds() {
    let run = |options: &str| {
        let out = weir(
            &[],
            Some(&format!(
                "CREATE TABLE g (x BIGINT, s STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '20'{options});\n\
                 SELECT x, s FROM g;\n"
            )),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_ne!(run(""), run(""));
    assert_eq!(run(", 'seed' = '7'"), run(", 'seed' = '7'"));
    assert_ne!(run(", 'seed' = '7'"), run(", 'seed' = '8'"));
    let seeded = run(", 'fields.x.seed' = '42', 'fields.s.seed' = '43'");
    assert_eq!(
        seeded,
        run(", 'fields.x.seed' = '42', 'fields.s.seed' = '43'")
    );

    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().join("chk");
    let job = dir.path().join("job.sql");
    std::fs::write(
        &job,
        format!(
            "SET 'execution.checkpointing.interval' = '200 ms';\n\
             SET 'execution.checkpointing.dir' = '{}';\n\
             SET 'pipeline.name' = 'seeds';\n\
             SET 'rest.port' = '0';\n\
             CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '100');\n\
             CREATE TABLE o (x BIGINT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO o SELECT x FROM g;\n",
            chk.display()
        ),
    )
    .unwrap();
    let seeds = || {
        let job_dir = std::fs::read_dir(&chk)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let newest = *checkpoint_ids(&job_dir).last().unwrap();
        let meta =
            std::fs::read_to_string(job_dir.join(format!("chk-{newest}/_metadata"))).unwrap();
        let at = meta.find("\"seeds\":").unwrap();
        meta[at..].split(']').next().unwrap().to_string()
    };
    run_then_signal(&job, std::time::Duration::from_millis(1500), "TERM", 0);
    let first = seeds();
    let resumed = run_then_signal(&job, std::time::Duration::from_millis(1500), "TERM", 0);
    assert!(resumed.contains("Resuming job 'seeds'"), "{resumed}");
    assert_eq!(seeds(), first);
}

/// No input aborts the process: an expression too deep to plan is refused
/// with a message, and a reader that closes the output early ends `weir`
/// quietly (exit 141, as SIGPIPE would), not with a panic.
#[test]
fn deep_expressions_and_closed_pipes_end_cleanly() {
    let chain = vec!["1"; 4000].join(" + ");
    let out = weir(
        &[],
        Some(&format!("SELECT {chain} AS s;\nSELECT 2 AS two;\n")),
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("nested more than 200 levels"), "{stderr}");
    assert!(
        stdout.contains("Received a total of 1 row"),
        "the next statement ran: {stdout}"
    );
    let fine = vec!["1"; 150].join(" + ");
    let out = weir(&[], Some(&format!("SELECT {fine} AS s;\n")));
    assert!(
        text(&out.stdout).contains("|                  150 |"),
        "{}",
        text(&out.stdout)
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1000000');\nSELECT x FROM g;\n")
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout); // the reader goes away, as `| head` does
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// SIGINT on `weir run` whose bounded job has not finished stops it and
/// exits 130 (the job did not finish), not 0.
#[test]
fn interrupting_a_bounded_job_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.sql");
    std::fs::write(
        &job,
        "SET 'rest.port' = '0';\n\
         CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100000', 'rows-per-second' = '100');\n\
         CREATE TABLE o (x BIGINT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO o SELECT x FROM g;\n",
    )
    .unwrap();
    let stderr = run_then_signal(&job, std::time::Duration::from_millis(1500), "INT", 130);
    assert!(stderr.contains(") stopped."), "{stderr}");
}

/// A checkpoint store that accepts connections and never answers is an
/// error within a bounded time, not a silent wait.
#[test]
fn a_store_that_never_answers_fails_the_job_in_bounded_time() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.sql");
    std::fs::write(
        &job,
        format!(
            "SET 'pipeline.name' = 'silent-store';\n\
             SET 'execution.checkpointing.interval' = '1 s';\n\
             SET 'execution.checkpointing.dir' = 's3://bucket/checkpoints';\n\
             SET 's3.endpoint' = 'http://127.0.0.1:{port}';\n\
             SET 's3.access-key' = 'key';\n\
             SET 's3.secret-key' = 'secret';\n\
             SET 's3.region' = 'us-east-1';\n\
             CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');\n\
             CREATE TABLE o (x BIGINT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO o SELECT x FROM g;\n"
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = weir(&["run", job.to_str().unwrap()], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(90),
        "took {:?}: {stderr}",
        started.elapsed()
    );
    assert!(stderr.contains("failed"), "{stderr}");
}
