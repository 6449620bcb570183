//! The REST API that a running `weir run` serves: the subset of Flink's
//! REST API that people and tools use to watch and operate a job, with
//! Flink's paths and JSON field names.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /jobs` | `{"jobs": [{"id", "status"}]}` |
//! | `GET /jobs/overview` | `{"jobs": [{"jid", "name", "state", "start-time", "end-time", "duration", …}]}` |
//! | `GET /jobs/<id>` | the job with its `vertices` (operators, parallelism, records) |
//! | `GET /jobs/<id>/checkpoints` | `counts`, `latest`, `history` of checkpoints and savepoints |
//! | `POST /jobs/<id>/savepoints` | body `{"target-directory", "cancel-job"}`; answers `{"request-id"}` |
//! | `GET /jobs/<id>/savepoints/<request-id>` | `{"status": {"id": "IN_PROGRESS" \| "COMPLETED"}, "operation": {"location"} \| {"failure-cause"}}` |
//! | `POST /jobs/<id>/stop` | body `{"targetDirectory", "drain"}`; stop with savepoint, answers `{"request-id"}` |
//!
//! Errors answer `{"errors": ["…"]}` with status 400 or 404. The server binds
//! to `rest.address` (loopback by default) and `rest.port`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use weir_engine::{Config, JobHandle, JobStatus};

/// A savepoint asked for through the API.
enum Operation {
    InProgress,
    Completed(String),
    Failed(String),
}

struct Trigger {
    operation: Operation,
    /// Whether a client has seen its outcome (the process waits for that
    /// before it exits after a stop).
    fetched: bool,
}

/// The jobs the process runs and the savepoints asked for.
#[derive(Clone, Default)]
pub struct RestState {
    jobs: Arc<Mutex<Vec<JobHandle>>>,
    triggers: Arc<Mutex<HashMap<String, Trigger>>>,
}

impl RestState {
    /// Makes a job visible through the API.
    pub fn add_job(&self, job: JobHandle) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.push(job);
        }
    }

    fn job(&self, id: &str) -> Option<JobHandle> {
        self.jobs
            .lock()
            .ok()?
            .iter()
            .find(|j| j.id() == id)
            .cloned()
    }

    /// Waits (at most `limit`) until every finished savepoint operation has
    /// been fetched by a client, so that `weir stop` learns the savepoint's
    /// path even though the job, and with it the process, ends right after.
    pub async fn linger(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            let pending = self
                .triggers
                .lock()
                .map(|t| t.values().any(|t| !t.fetched))
                .unwrap_or(false);
            if !pending {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Starts the server per `rest.*` and returns the address it listens on;
/// `None` when switched off (`rest.enabled = false`).
pub async fn start(config: &Config, state: RestState) -> Result<Option<SocketAddr>, String> {
    if !config.bool("rest.enabled") {
        return Ok(None);
    }
    let address = config
        .get("rest.address")
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = config.get("rest.port").unwrap_or_else(|| "8081".into());
    let port: u16 = port
        .parse()
        .map_err(|_| format!("rest.port must be a port from 0 to 65535, not '{port}'"))?;
    let listener = tokio::net::TcpListener::bind((address.as_str(), port))
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {address}:{port} ({e}); set 'rest.port' to a free port (0: any free port) or 'rest.enabled' to 'false'"
            )
        })?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(&state, req).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                {
                    tracing::debug!(error = %e, "REST connection ended");
                }
            });
        }
    });
    Ok(Some(bound))
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    reply(status, json!({ "errors": [message.into()] }))
}

async fn handle(state: &RestState, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request: {e}"),
            )
        }
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match (&method, parts.as_slice()) {
        (&Method::GET, ["jobs", "overview"]) => {
            let jobs = state.jobs.lock().map(|j| j.clone()).unwrap_or_default();
            let list: Vec<Value> = jobs.iter().map(job_summary).collect();
            reply(StatusCode::OK, json!({ "jobs": list }))
        }
        (&Method::GET, ["jobs"]) => {
            let jobs = state.jobs.lock().map(|j| j.clone()).unwrap_or_default();
            let list: Vec<Value> = jobs
                .iter()
                .map(|j| json!({ "id": j.id(), "status": j.status().flink_name() }))
                .collect();
            reply(StatusCode::OK, json!({ "jobs": list }))
        }
        (&Method::GET, ["config"]) => reply(
            StatusCode::OK,
            json!({ "flink-version": "weir", "weir-version": env!("CARGO_PKG_VERSION") }),
        ),
        (_, ["jobs", id, rest @ ..]) => {
            let Some(job) = state.job(id) else {
                return error(StatusCode::NOT_FOUND, format!("Job {id} not found"));
            };
            match (&method, rest) {
                (&Method::GET, []) => reply(StatusCode::OK, job_details(&job)),
                (&Method::GET, ["checkpoints"]) => reply(StatusCode::OK, checkpoints(&job)),
                (&Method::POST, ["savepoints"]) => {
                    let body = match parse_body(&body) {
                        Ok(b) => b,
                        Err(e) => return error(StatusCode::BAD_REQUEST, e),
                    };
                    let target = body
                        .get("target-directory")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let cancel = body
                        .get("cancel-job")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    trigger(state, job, target, cancel.then_some(false))
                }
                (&Method::POST, ["stop"]) => {
                    let body = match parse_body(&body) {
                        Ok(b) => b,
                        Err(e) => return error(StatusCode::BAD_REQUEST, e),
                    };
                    let drain = body.get("drain").and_then(Value::as_bool).unwrap_or(false);
                    let target = body
                        .get("targetDirectory")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    trigger(state, job, target, Some(drain))
                }
                (&Method::GET, ["savepoints", request]) => savepoint_status(state, request),
                _ => error(
                    StatusCode::NOT_FOUND,
                    format!("{method} {path} is not part of Weir's REST API"),
                ),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("{method} {path} is not part of Weir's REST API"),
        ),
    }
}

/// A request's JSON body; an empty one is `{}` (every field is optional),
/// anything else that is not a JSON object is the client's mistake.
fn parse_body(body: &Bytes) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err("the request body must be a JSON object".into()),
        Err(e) => Err(format!("the request body is not JSON: {e}")),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn job_summary(job: &JobHandle) -> Value {
    let start = job.start_time_ms();
    let end = job.end_time_ms();
    json!({
        "jid": job.id(),
        "name": job.name(),
        "state": job.status().flink_name(),
        "start-time": start,
        "end-time": end.unwrap_or(-1),
        "duration": end.unwrap_or_else(now_ms) - start,
        "last-modification": end.unwrap_or_else(now_ms),
    })
}

fn job_details(job: &JobHandle) -> Value {
    let mut details = job_summary(job);
    let vertices: Vec<Value> = job
        .metrics()
        .into_iter()
        .enumerate()
        .map(|(i, (name, m))| {
            json!({
                "id": i.to_string(),
                "name": name,
                "status": job.status().flink_name(),
                "metrics": {
                    "read-records": m.records_in,
                    "write-records": m.records_out,
                },
            })
        })
        .collect();
    details["vertices"] = json!(vertices);
    details["isStoppable"] = json!(job.status() == JobStatus::Running);
    details
}

fn checkpoints(job: &JobHandle) -> Value {
    let all = job.checkpoints();
    let entry = |c: &weir_engine::CheckpointStats| {
        json!({
            "id": c.id,
            "status": if c.status == "COMPLETED" { "COMPLETED" } else { "FAILED" },
            "is_savepoint": c.savepoint,
            "checkpoint_type": if c.savepoint { "SAVEPOINT" } else if c.unaligned { "UNALIGNED_CHECKPOINT" } else { "CHECKPOINT" },
            "trigger_timestamp": c.trigger_time_ms,
            "latest_ack_timestamp": c.trigger_time_ms + c.duration.as_millis() as i64,
            "end_to_end_duration": c.duration.as_millis() as u64,
            "state_size": c.state_bytes,
            "checkpointed_size": c.uploaded_bytes,
            "alignment_duration": c.alignment.as_millis() as u64,
            "unaligned": c.unaligned,
            "external_path": c.path,
            "discarded": c.discarded,
            "failure_message": c.failure,
        })
    };
    let completed = all.iter().filter(|c| c.status == "COMPLETED").count();
    let latest = |savepoint: bool| {
        all.iter()
            .rev()
            .find(|c| c.status == "COMPLETED" && c.savepoint == savepoint)
            .map(entry)
    };
    json!({
        "counts": {
            "restored": job.restarts(),
            "total": all.len(),
            "in_progress": 0,
            "completed": completed,
            "failed": all.len() - completed,
        },
        "latest": {
            "completed": latest(false),
            "savepoint": latest(true),
            "failed": all.iter().rev().find(|c| c.status != "COMPLETED").map(entry),
        },
        "history": all.iter().rev().map(entry).collect::<Vec<_>>(),
    })
}

/// Starts a savepoint in the background — and a stop, with `stop`
/// (`Some(drain)`) — and answers the request id to poll.
fn trigger(
    state: &RestState,
    job: JobHandle,
    target: Option<String>,
    stop: Option<bool>,
) -> Response<Full<Bytes>> {
    if job.status() != JobStatus::Running {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "Job {} is {}, not running",
                job.id(),
                job.status().flink_name()
            ),
        );
    }
    let request = weir_engine::new_job_id();
    if let Ok(mut t) = state.triggers.lock() {
        t.insert(
            request.clone(),
            Trigger {
                operation: Operation::InProgress,
                fetched: false,
            },
        );
    }
    let triggers = state.triggers.clone();
    let id = request.clone();
    tokio::spawn(async move {
        let outcome = match stop {
            Some(drain) => job.stop_with_savepoint(target.as_deref(), drain).await,
            None => job.savepoint(target.as_deref()).await,
        };
        let operation = match outcome {
            Ok(path) => Operation::Completed(path),
            Err(e) => Operation::Failed(e.to_string()),
        };
        if let Ok(mut t) = triggers.lock() {
            if let Some(entry) = t.get_mut(&id) {
                entry.operation = operation;
            }
        }
    });
    reply(StatusCode::ACCEPTED, json!({ "request-id": request }))
}

fn savepoint_status(state: &RestState, request: &str) -> Response<Full<Bytes>> {
    let Ok(mut triggers) = state.triggers.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "state lock poisoned");
    };
    let Some(entry) = triggers.get_mut(request) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no savepoint operation with request id {request}"),
        );
    };
    let body = match &entry.operation {
        Operation::InProgress => json!({ "status": { "id": "IN_PROGRESS" } }),
        Operation::Completed(path) => {
            entry.fetched = true;
            json!({ "status": { "id": "COMPLETED" }, "operation": { "location": path } })
        }
        Operation::Failed(reason) => {
            entry.fetched = true;
            json!({
                "status": { "id": "COMPLETED" },
                "operation": { "failure-cause": { "class": "weir.SavepointError", "stack-trace": reason } },
            })
        }
    };
    reply(StatusCode::OK, body)
}
