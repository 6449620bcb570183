//! Operating a running `weir run` from outside, as a Flink user would: its
//! REST API (Flink's paths and field names) and the `weir list`, `weir
//! savepoint` and `weir stop` commands. A job stopped with a savepoint and
//! restored with `weir run -s` commits, over both runs, exactly what an
//! uninterrupted run commits.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{committed_rows, manifest_dir};

mod common;

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(manifest_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Windowed counts over rate-limited Nexmark bids (5 s of input) into CSV.
fn job_sql(out: &Path, savepoints: &Path) -> String {
    let ddl = std::fs::read_to_string(manifest_dir().join("benches/nexmark/ddl.sql"))
        .unwrap()
        .replace(
            "'events.num' = '10000000'",
            "'events.num' = '150000', 'first-event.rate' = '30000', 'next-event.rate' = '30000'",
        );
    format!(
        "SET 'parallelism.default' = '2';\n\
         SET 'rest.port' = '0';\n\
         SET 'execution.checkpointing.savepoint-dir' = '{}';\n\
         {ddl}\n\
         CREATE TABLE counts (auction BIGINT, window_end TIMESTAMP(3), bids BIGINT, top BIGINT) \
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         INSERT INTO counts SELECT auction, window_end, COUNT(*), MAX(price) \
           FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '500' MILLISECOND)) \
           GROUP BY auction, window_start, window_end;\n",
        savepoints.display(),
        out.display()
    )
}

/// One plain HTTP/1.1 request to the REST API; returns the body.
fn http(addr: &str, method: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("application/json"), "{head}");
    body.to_string()
}

/// Waits for a stderr line that contains `marker`, returning the rest of it.
fn wait_for(lines: &mpsc::Receiver<String>, marker: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            if let Some(i) = line.find(marker) {
                return line[i + marker.len()..].to_string();
            }
        }
    }
    panic!("no '{marker}' on stderr");
}

#[test]
fn a_running_job_is_listed_savepointed_stopped_and_restored_through_the_rest_api() {
    let dir = tempfile::tempdir().unwrap();
    let savepoints = dir.path().join("savepoints");

    // The uninterrupted run.
    let reference = dir.path().join("reference");
    let script = dir.path().join("reference.sql");
    std::fs::write(&script, job_sql(&reference, &savepoints)).unwrap();
    let out = weir(&["run", script.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = committed_rows(&reference);
    assert!(expected.len() > 100);

    // The same job, operated from outside while it runs.
    let before = dir.path().join("before");
    let script = dir.path().join("job.sql");
    std::fs::write(&script, job_sql(&before, &savepoints)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", script.to_str().unwrap()])
        .current_dir(manifest_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let job = wait_for(&lines, "[INFO] Job ");
    let job = job.split_whitespace().next().unwrap().to_string();
    let addr = wait_for(&lines, "REST API listening on http://");
    let url = format!("http://{addr}");

    let list = weir(&["list", "--rest-url", &url]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let listed = text(&list.stdout);
    assert!(listed.contains(&format!(": {job} : ")), "{listed}");
    assert!(listed.contains("(RUNNING)"), "{listed}");

    let overview = http(&addr, "GET", "/jobs/overview");
    assert!(
        overview.contains(&format!("\"jid\":\"{job}\"")),
        "{overview}"
    );
    assert!(overview.contains("\"state\":\"RUNNING\""), "{overview}");
    let jobs = http(&addr, "GET", "/jobs");
    assert!(
        jobs.contains(&format!("{{\"id\":\"{job}\",\"status\":\"RUNNING\"}}")),
        "{jobs}"
    );
    let details = http(&addr, "GET", &format!("/jobs/{job}"));
    assert!(details.contains("\"vertices\""), "{details}");
    assert!(http(&addr, "GET", "/jobs/0000/checkpoints").contains("not found"));

    // A savepoint of the running job.
    let sp = weir(&["savepoint", &job, "--rest-url", &url]);
    assert!(sp.status.success(), "{}", text(&sp.stderr));
    let sp_out = text(&sp.stdout);
    let first = sp_out
        .lines()
        .find_map(|l| l.strip_prefix("Savepoint completed. Path: "))
        .unwrap_or_else(|| panic!("{sp_out}"))
        .to_string();
    assert!(Path::new(&first).join("_metadata").is_file(), "{first}");
    let history = http(&addr, "GET", &format!("/jobs/{job}/checkpoints"));
    assert!(history.contains("\"is_savepoint\":true"), "{history}");
    assert!(history.contains(&first), "{history}");

    // Stop with a savepoint: the path is the last line, the process ends.
    let stop_dir = dir.path().join("stopped");
    let stop = weir(&[
        "stop",
        "--savepoint-dir",
        stop_dir.to_str().unwrap(),
        &job,
        "--rest-url",
        &url,
    ]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let stopped = text(&stop.stdout).lines().last().unwrap().to_string();
    assert!(stopped.starts_with(stop_dir.to_str().unwrap()), "{stopped}");
    assert!(Path::new(&stopped).join("_metadata").is_file());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "weir run did not end after the stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let first_part = committed_rows(&before);
    assert!(first_part.len() < expected.len(), "stopped before the end");

    // Restored from the stop's savepoint, it finishes the job.
    let after = dir.path().join("after");
    let script = dir.path().join("restore.sql");
    std::fs::write(&script, job_sql(&after, &savepoints)).unwrap();
    let out = weir(&["run", "-s", &stopped, script.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Restoring job"),
        "{}",
        text(&out.stderr)
    );
    let mut both = first_part;
    both.extend(committed_rows(&after));
    both.sort();
    assert!(
        both == expected,
        "{} rows over both runs, {} expected",
        both.len(),
        expected.len()
    );

    // Disposal removes that savepoint only.
    let out = weir(&["savepoint", "--dispose", &stopped]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!Path::new(&stopped).exists());
    assert!(Path::new(&first).join("_metadata").is_file());
    let out = weir(&["savepoint", "--dispose", dir.path().to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "a folder that is not a savepoint is refused"
    );
    assert!(reference.is_dir());
}

#[test]
fn the_clients_say_when_no_job_is_there() {
    let out = weir(&["list", "--rest-url", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot reach the REST API"),
        "{}",
        text(&out.stderr)
    );
    let out = weir(&["stop", "--rest-url", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("usage: weir list"),
        "{}",
        text(&out.stderr)
    );
}
