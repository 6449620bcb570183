//! Jobs as a Flink SQL user expects them: every submission its own job id,
//! one `pipeline.name` one checkpointed job at a time, statement sets as
//! one job sharing its sources, a graceful stop with a final checkpoint,
//! and `STOP JOB` of a job that is not running changing nothing.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::path::Path;
use std::time::Duration;

use common::committed_rows;
use weir::{JobStatus, StatementResult, StreamContext};

mod common;

fn context(settings: &[(&str, String)]) -> StreamContext {
    let mut builder = StreamContext::builder();
    for (k, v) in settings {
        builder = builder.set(k, v).unwrap();
    }
    builder.build()
}

fn checkpointed(dir: &Path, name: &str) -> StreamContext {
    context(&[
        ("pipeline.name", name.to_string()),
        ("execution.checkpointing.interval", "100 ms".into()),
        (
            "execution.checkpointing.dir",
            dir.join("chk").display().to_string(),
        ),
        (
            "execution.checkpointing.savepoint-dir",
            dir.join("savepoints").display().to_string(),
        ),
    ])
}

const UNBOUNDED: &str = "CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', \
     'rows-per-second' = '2000', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1', \
     'fields.x.end' = '1000000000')";

/// A checkpointed job named `name` copying an unbounded sequence `g` into
/// a blackhole `o`, and its context.
async fn unbounded_job(dir: &Path, name: &str) -> (StreamContext, weir::JobHandle) {
    let mut ctx = checkpointed(dir, name);
    ctx.sql(UNBOUNDED).await.unwrap();
    ctx.sql("CREATE TABLE o (x BIGINT) WITH ('connector' = 'blackhole')")
        .await
        .unwrap();
    let job = ctx.insert("INSERT INTO o SELECT x FROM g").await.unwrap();
    (ctx, job)
}

async fn wait_for_a_checkpoint(job: &weir::JobHandle) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !job.checkpoints().iter().any(|c| c.status == "COMPLETED") {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint completed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The rows of `tests/data/events.csv` as the CSV sink writes `(id, v)` and
/// `(name, v)` back, computed here without Weir.
fn expected_events(keep: impl Fn(&[&str]) -> Option<String>) -> Vec<String> {
    let text =
        std::fs::read_to_string(common::manifest_dir().join("tests/data/events.csv")).unwrap();
    let mut rows: Vec<String> = text
        .lines()
        .filter_map(|l| keep(&l.split(',').collect::<Vec<_>>()))
        .collect();
    rows.sort();
    rows
}

/// A statement set is one job whose INSERTs read one shared source; each
/// sink gets exactly its query's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_set_is_one_job_sharing_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut ctx = context(&[]);
    ctx.sql(&format!(
        "CREATE TABLE events (id INT, name STRING, v BIGINT, ts TIMESTAMP(3)) \
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\
         CREATE TABLE a (id INT, v BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\
         CREATE TABLE b (name STRING, v BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        common::manifest_dir().join("tests/data/events.csv").display(),
        a.display(),
        b.display()
    ))
    .await
    .unwrap();
    let job = ctx
        .insert(
            "EXECUTE STATEMENT SET BEGIN \
               INSERT INTO a SELECT id, v FROM events WHERE v > 20; \
               INSERT INTO b SELECT name, v FROM events; \
             END",
        )
        .await
        .unwrap();
    job.wait().await.unwrap();
    let nodes: Vec<String> = job.metrics().into_iter().map(|(n, _)| n).collect();
    let sources = nodes
        .iter()
        .filter(|n| n.starts_with("TableSourceScan"))
        .count();
    let sinks = nodes
        .iter()
        .filter(|n| n.starts_with("connector=[filesystem]"))
        .count();
    assert_eq!((sources, sinks), (1, 2), "{nodes:#?}");
    assert_eq!(
        committed_rows(&a),
        expected_events(|f| (f[2].parse::<i64>().ok()? > 20).then(|| format!("{},{}", f[0], f[2])))
    );
    assert_eq!(
        committed_rows(&b),
        expected_events(|f| Some(format!("{},{}", f[1], f[2])))
    );
    assert_eq!(job.name(), "insert-into_a,b");
}

/// While a checkpointed job runs under a name, a second job under that
/// name is refused; once it stopped (gracefully, with a final checkpoint),
/// a job under the name resumes from that checkpoint, with a new job id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_name_one_running_job_and_a_stopped_job_resumes_under_a_new_id() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ctx, first) = unbounded_job(dir.path(), "shared-name").await;
    let refused = ctx
        .insert("INSERT INTO o SELECT x + 1 FROM g")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("pipeline.name 'shared-name' already names job")
            && refused.contains(first.id()),
        "{refused}"
    );
    wait_for_a_checkpoint(&first).await;
    first.stop().await.unwrap();
    assert_eq!(first.status(), JobStatus::Finished);
    assert!(first.stop_requested());
    assert!(first.end_time_ms().unwrap() >= first.start_time_ms());
    let last = first
        .checkpoints()
        .into_iter()
        .rfind(|c| c.status == "COMPLETED")
        .unwrap();
    assert!(!last.savepoint && !last.is_final, "{last:?}");

    let second = ctx.insert("INSERT INTO o SELECT x FROM g").await.unwrap();
    assert_ne!(second.id(), first.id());
    assert_eq!(second.pipeline_id(), first.pipeline_id());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while second.restored_from().is_none() {
        assert!(std::time::Instant::now() < deadline, "did not restore");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(second.restored_from(), last.path);
    second.cancel();
    let _ = second.wait().await;
}

/// A job restored from a savepoint gets its own id: SHOW JOBS lists both,
/// STOP JOB finds the running one, and stopping the ended one says so and
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_job_has_its_own_id_and_stop_job_of_an_ended_job_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ctx, first) = unbounded_job(dir.path(), "restored").await;
    wait_for_a_checkpoint(&first).await;
    let savepoint = first.stop_with_savepoint(None, false).await.unwrap();
    ctx.sql(&format!("SET 'execution.savepoint.path' = '{savepoint}'"))
        .await
        .unwrap();
    let second = ctx.insert("INSERT INTO o SELECT x FROM g").await.unwrap();
    assert_ne!(second.id(), first.id());
    let mut results = ctx.sql("SHOW JOBS").await.unwrap();
    let Some(StatementResult::Table { rows, .. }) = results.pop() else {
        panic!("SHOW JOBS gave no table");
    };
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, vec![first.id(), second.id()]);

    let err = ctx
        .sql(&format!("STOP JOB '{}'", first.id()))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("is FINISHED, not running"), "{err}");
    assert_eq!(second.status(), JobStatus::Running);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while second.restored_from().is_none() {
        assert!(std::time::Instant::now() < deadline, "did not restore");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(second.restored_from().as_deref(), Some(savepoint.as_str()));
    ctx.sql(&format!("STOP JOB '{}'", second.id()))
        .await
        .unwrap();
    assert_eq!(second.status(), JobStatus::Cancelled);
}

/// Serves `job` through the REST API on a free port.
async fn serve(job: &weir::JobHandle) -> std::net::SocketAddr {
    let state = weir_repl::rest::RestState::default();
    state.add_job(job.clone());
    let mut config = weir::Config::new();
    config.set("rest.port", "0").unwrap();
    weir_repl::rest::start(&config, state)
        .await
        .unwrap()
        .unwrap()
}

/// The number after `"key":` in a JSON text.
fn json_number(json: &str, key: &str) -> i64 {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key}: {json}"));
    json[at + key.len() + 3..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect::<String>()
        .parse()
        .unwrap()
}

/// REST reports an ended job's end time and duration (Flink's fields),
/// not -1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_reports_the_end_time_and_duration_of_an_ended_job() {
    use std::io::{Read, Write};
    let mut ctx = context(&[]);
    ctx.sql(
        "CREATE TABLE g (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '2000', 'rows-per-second' = '10000');\
         CREATE TABLE o (x BIGINT) WITH ('connector' = 'blackhole')",
    )
    .await
    .unwrap();
    let job = ctx.insert("INSERT INTO o SELECT x FROM g").await.unwrap();
    job.wait().await.unwrap();
    let addr = serve(&job).await;
    let body = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /jobs/overview HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.split_once("\r\n\r\n").unwrap().1.to_string()
    })
    .await
    .unwrap();
    let (start, end) = (
        json_number(&body, "start-time"),
        json_number(&body, "end-time"),
    );
    assert_eq!(start, job.start_time_ms(), "{body}");
    assert_eq!(Some(end), job.end_time_ms(), "{body}");
    assert!(end >= start, "{body}");
    assert_eq!(json_number(&body, "duration"), end - start, "{body}");
    assert!(body.contains("\"state\":\"FINISHED\""), "{body}");
}

/// A stop whose savepoint cannot be written leaves the job running and
/// controllable: a later savepoint and stop work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_stop_leaves_the_job_running_and_controllable() {
    let dir = tempfile::tempdir().unwrap();
    let (_ctx, job) = unbounded_job(dir.path(), "failed-stop").await;
    wait_for_a_checkpoint(&job).await;
    let failed = job.stop_with_savepoint(Some("/proc/nope"), false).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(job.status(), JobStatus::Running);
    let savepoint = job.savepoint(None).await.unwrap();
    assert!(
        Path::new(&savepoint).join("_metadata").is_file(),
        "{savepoint}"
    );
    job.stop().await.unwrap();
    assert_eq!(job.status(), JobStatus::Finished);
}

/// A request body that is not a JSON object is the client's mistake: 400,
/// and nothing is triggered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_refuses_a_body_that_is_not_json() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (_ctx, job) = unbounded_job(dir.path(), "rest-body").await;
    let addr = serve(&job).await;
    let id = job.id().to_string();
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let body = "not json";
        write!(
            stream,
            "POST /jobs/{id}/savepoints HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("not JSON"), "{response}");
    assert!(job.checkpoints().iter().all(|c| !c.savepoint));
    job.cancel();
    let _ = job.wait().await;
}
