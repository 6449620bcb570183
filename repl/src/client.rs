//! `weir list`, `weir savepoint` and `weir stop`: clients of the REST API
//! of a running `weir run`, as Flink's CLI is of a cluster's.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};
use weir_engine::Config;

/// The URL of the REST API when `--rest-url` is not given.
pub const DEFAULT_REST_URL: &str = "http://127.0.0.1:8081";

/// What went wrong talking to the REST API.
struct ClientError(String);

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        ClientError(text)
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(rest_url: &str) -> Self {
        let base = if rest_url.contains("://") {
            rest_url.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", rest_url.trim_end_matches('/'))
        };
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| {
            let e = ClientError::from(e);
            ClientError(format!(
                "cannot reach the REST API at {} (is `weir run` running, and is --rest-url its rest.address:rest.port?): {}",
                self.base, e.0
            ))
        })?;
        let status = response.status();
        let text = response.text().await?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|_| ClientError(format!("{url} answered {status}: {text}")))?;
        if !status.is_success() {
            let errors = value
                .get("errors")
                .and_then(Value::as_array)
                .map(|e| {
                    e.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or(text);
            return Err(ClientError(errors));
        }
        Ok(value)
    }

    /// Triggers a savepoint or a stop and polls until it is done.
    async fn savepoint(&self, job: &str, path: &str, body: Value) -> Result<String, ClientError> {
        let answer = self
            .call(
                reqwest::Method::POST,
                &format!("/jobs/{job}/{path}"),
                Some(body),
            )
            .await?;
        let request = answer
            .get("request-id")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError(format!("no request-id in {answer}")))?
            .to_string();
        loop {
            let status = self
                .call(
                    reqwest::Method::GET,
                    &format!("/jobs/{job}/savepoints/{request}"),
                    None,
                )
                .await?;
            if status["status"]["id"] == "COMPLETED" {
                if let Some(location) = status["operation"]["location"].as_str() {
                    return Ok(location.to_string());
                }
                let cause = status["operation"]["failure-cause"]["stack-trace"]
                    .as_str()
                    .unwrap_or("unknown failure");
                return Err(ClientError(cause.to_string()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs `weir list|savepoint|stop` with its arguments.
pub async fn run(command: &str, args: &[String]) -> ExitCode {
    let mut rest_url = DEFAULT_REST_URL.to_string();
    let mut positional = Vec::new();
    let mut dispose = None;
    let mut savepoint_dir = None;
    let mut conf = None;
    let mut drain = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let parsed = match a.as_str() {
            "--rest-url" | "-m" | "--jobmanager" => value(a).map(|v| rest_url = v),
            "--drain" => {
                drain = true;
                Ok(())
            }
            // Flink's CLI: `-d` drains with `stop` and disposes with `savepoint`.
            "-d" if command == "stop" => {
                drain = true;
                Ok(())
            }
            "--dispose" | "-d" => value(a).map(|v| dispose = Some(v)),
            "--savepoint-dir" | "--savepointPath" | "-p" => {
                value(a).map(|v| savepoint_dir = Some(v))
            }
            "--conf" | "-c" => value(a).map(|v| conf = Some(v)),
            other if other.starts_with('-') => {
                Err(format!("unknown option '{other}' for weir {command}"))
            }
            other => {
                positional.push(other.to_string());
                Ok(())
            }
        };
        if let Err(e) = parsed {
            eprintln!("[ERROR] {e}");
            return ExitCode::from(2);
        }
    }
    let api = Api::new(&rest_url);
    let outcome = match (command, positional.as_slice()) {
        ("list", []) => list(&api).await,
        ("savepoint", []) if dispose.is_some() => {
            dispose_savepoint(dispose.as_deref().unwrap_or_default(), conf.as_deref()).await
        }
        ("savepoint", [job]) | ("savepoint", [job, _]) => {
            let target = positional.get(1).cloned();
            outln!("Triggering savepoint for job {job}.");
            outln!("Waiting for response...");
            api.savepoint(job, "savepoints", json!({ "target-directory": target, "cancel-job": false }))
                .await
                .map(|path| {
                    outln!("Savepoint completed. Path: {path}");
                    outln!("You can resume your program from this savepoint with `weir run -s {path} <job.sql>`.");
                })
        }
        ("stop", [job]) => {
            outln!("Suspending job \"{job}\" with a savepoint.");
            api.savepoint(job, "stop", json!({ "targetDirectory": savepoint_dir, "drain": drain }))
                .await
                .map(|path| {
                    outln!("Savepoint completed.");
                    outln!("{path}");
                })
        }
        _ => Err(ClientError(format!(
            "usage: weir list | weir savepoint <job-id> [target-dir] | weir savepoint --dispose <path> | weir stop [--savepoint-dir <dir>] [--drain] <job-id>  (each with --rest-url <url>, default {DEFAULT_REST_URL})"
        ))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(ClientError(e)) => {
            eprintln!("[ERROR] {e}");
            ExitCode::FAILURE
        }
    }
}

async fn list(api: &Api) -> Result<(), ClientError> {
    let overview = api
        .call(reqwest::Method::GET, "/jobs/overview", None)
        .await?;
    let jobs = overview["jobs"].as_array().cloned().unwrap_or_default();
    let line = |j: &Value| {
        format!(
            "{} : {} : {} ({})",
            format_time(j["start-time"].as_i64().unwrap_or(0)),
            j["jid"].as_str().unwrap_or_default(),
            j["name"].as_str().unwrap_or_default(),
            j["state"].as_str().unwrap_or_default()
        )
    };
    let running: Vec<String> = jobs
        .iter()
        .filter(|j| j["state"] == "RUNNING")
        .map(line)
        .collect();
    let ended: Vec<String> = jobs
        .iter()
        .filter(|j| j["state"] != "RUNNING")
        .map(line)
        .collect();
    outln!("------------------ Running/Restarting Jobs -------------------");
    if running.is_empty() {
        outln!("No running jobs.");
    }
    running.iter().for_each(|l| outln!("{l}"));
    outln!("--------------------------------------------------------------");
    if !ended.is_empty() {
        outln!("---------------------- Terminated Jobs -----------------------");
        ended.iter().for_each(|l| outln!("{l}"));
        outln!("--------------------------------------------------------------");
    }
    Ok(())
}

/// Deletes a savepoint directly in its storage (credentials from `--conf`).
async fn dispose_savepoint(path: &str, conf: Option<&str>) -> Result<(), ClientError> {
    let config = match conf {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| ClientError(format!("cannot read '{file}': {e}")))?;
            Config::from_yaml(&text).map_err(|e| ClientError(format!("{file}: {e}")))?
        }
        None => Config::new(),
    };
    outln!("Disposing savepoint '{path}'.");
    weir_checkpoint::dispose_savepoint(path, &config.storage_options())
        .await
        .map_err(|e| ClientError(e.to_string()))?;
    outln!("Savepoint '{path}' disposed.");
    Ok(())
}

/// `dd.MM.yyyy HH:mm:ss` in UTC, as Flink's CLI lists jobs.
fn format_time(ms: i64) -> String {
    datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(ms)
        .map(|t| t.format("%d.%m.%Y %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_formatted_like_flinks_cli() {
        assert_eq!(super::format_time(0), "01.01.1970 00:00:00");
        assert_eq!(super::format_time(1_796_065_445_000), "30.11.2026 19:04:05");
    }
}
