//! The `weir` command: an interactive SQL shell (rustyline), `weir run
//! job.sql`, and scripts piped into the shell.

/// `println!` that ends the process quietly when standard output is closed
/// (`weir … | head -1`) instead of panicking.
macro_rules! outln {
    () => {
        $crate::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` with [`outln!`]'s handling of a closed standard output.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

/// Writes to standard output; a reader that went away (a broken pipe) ends
/// the process at once with 141, as a shell tool killed by SIGPIPE does.
pub(crate) fn write_stdout(text: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(text).and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
    }
}

mod client;
mod complete;
mod display;
pub mod rest;

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use rustyline::error::ReadlineError;
use weir_engine::{Config, EngineError, JobHandle};
use weir_sql::{is_complete, NameScope, Session, SqlError, StatementResult};

pub use display::{print_query, print_table, ResultMode, View};

const HELP: &str = "\
Usage:
  weir [--conf weir.yaml]                 interactive SQL shell (or run statements piped on stdin)
  weir run <job.sql> [--conf weir.yaml] [-s <checkpoint>] [--fresh]
                                          run a file of statements; with checkpointing on,
                                          a job resumes from its latest checkpoint unless
                                          -s names one or --fresh starts it over
  weir list [--rest-url <url>]            jobs of a running `weir run` (its REST API)
  weir savepoint <job-id> [target-dir] [--rest-url <url>]
                                          take a savepoint of a running job
  weir savepoint --dispose <path> [--conf weir.yaml]
                                          delete a savepoint
  weir stop [--savepoint-dir <dir>] [--drain] <job-id> [--rest-url <url>]
                                          stop a job with a savepoint (--drain: fire every
                                          window first); prints the savepoint's path last
  weir --help | --version

--rest-url defaults to http://127.0.0.1:8081: `weir run` serves its REST API on
rest.address:rest.port (rest.port = 0 picks a free port and prints it).

In the shell, end statements with ';'. QUIT; or Ctrl-D leaves, Ctrl-C cancels a running query.";

/// What `HELP;` prints in the shell: the statements it runs.
const SQL_HELP: &str = "\
The following statements are available (end each with ';'):

CREATE TABLE t (…) WITH (…)        Create a table on a connector ('connector' = 'datagen', …).
CREATE [TEMPORARY] VIEW v AS …     Create a view.
DROP TABLE|VIEW [IF EXISTS] name   Drop a table or view.
DESCRIBE t                         Describe the columns of a table or view.
SHOW TABLES | VIEWS                List the tables or views.
SHOW COLUMNS FROM t [[NOT] LIKE 'pattern']
                                   List the columns of a table or view.
SHOW CREATE TABLE t | VIEW v       Show the statement that creates a table or view.
SHOW [USER] FUNCTIONS              List built-in and registered (USER: only registered) functions.
SHOW CATALOGS | DATABASES          List the catalogs or databases.
SHOW CURRENT CATALOG | DATABASE    Show the current catalog or database.
USE [CATALOG] name                 Use a database or catalog.
SET ['key' = 'value']              List the configuration, or set a key.
RESET ['key']                      Reset one key, or all.
SELECT …                           Run a query and show its results.
INSERT INTO t SELECT …             Submit a job that writes into a table.
EXECUTE STATEMENT SET BEGIN INSERT …; INSERT …; END
BEGIN STATEMENT SET; INSERT …; …; END
                                   Submit several INSERTs as one job sharing its sources.
EXPLAIN [RESTORE FROM 'path'] …    Show the plan and job graph (and what a restore would do).
SHOW JOBS                          List this session's jobs.
SHOW CHECKPOINTS [FOR JOB 'id']    List the checkpoints of this session's jobs.
STOP JOB 'id' [WITH SAVEPOINT] [WITH DRAIN]
                                   Stop a job (with a savepoint; drained: every window fired).
TRIGGER SAVEPOINT 'id' [TO 'dir']  Take a savepoint of a running job.
DISPOSE SAVEPOINT 'path'           Delete a savepoint.
HELP                               Print this list.
QUIT | EXIT                        Leave the shell (running jobs are stopped first).

Ctrl-C cancels a running query; Ctrl-D leaves. The command line: weir --help.";

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // The engine's messages for the user as [INFO]/[WARN] lines; its
    // log for diagnosis on request (`RUST_LOG=warn`, or `WEIR_LOG`).
    weir_engine::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Planning and evaluating recurse over expression trees: stacks with
    // room for the deepest expression a statement may hold
    // (`weir_sql::limits`), in debug builds too.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("[ERROR] cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let main = std::thread::Builder::new()
        .name("weir-main".into())
        .stack_size(MAIN_STACK)
        .spawn(move || runtime.block_on(async_main(args)));
    match main.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("[ERROR] cannot start the main thread: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Stack of the thread that parses and plans statements (reserved, not
/// committed: untouched pages cost nothing).
const MAIN_STACK: usize = 256 << 20;
/// Stack of the runtime's worker and blocking threads, which evaluate
/// expressions.
const WORKER_STACK: usize = 32 << 20;

struct Args {
    command: Option<String>,
    file: Option<String>,
    conf: Option<String>,
    restore: Option<String>,
    fresh: bool,
}

fn parse_args(args: Vec<String>) -> Result<Args, String> {
    let mut out = Args {
        command: None,
        file: None,
        conf: None,
        restore: None,
        fresh: false,
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--conf" | "-c" => out.conf = Some(it.next().ok_or("--conf needs a file")?),
            "-s" | "--fromSavepoint" => {
                out.restore = Some(it.next().ok_or("-s needs a checkpoint or savepoint path")?)
            }
            "--fresh" => out.fresh = true,
            "run" if out.command.is_none() => out.command = Some("run".into()),
            "-f" if out.command.is_none() => {
                out.command = Some("run".into());
                out.file = Some(it.next().ok_or("-f needs a file")?);
            }
            other if other.starts_with('-') => return Err(format!("unknown option '{other}'")),
            other if out.command.as_deref() == Some("run") && out.file.is_none() => {
                out.file = Some(other.to_string())
            }
            other => return Err(format!("unknown command '{other}'")),
        }
    }
    Ok(out)
}

async fn async_main(args: Vec<String>) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        outln!("{HELP}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        outln!("weir {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Some(command) = args
        .first()
        .filter(|c| matches!(c.as_str(), "list" | "savepoint" | "stop"))
    {
        return client::run(command, &args[1..]).await;
    }
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("[ERROR] {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    let config = match &args.conf {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => match Config::from_yaml(&text) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("[ERROR] {path}: {e}");
                    return ExitCode::from(2);
                }
            },
            Err(e) => {
                eprintln!("[ERROR] cannot read configuration file '{path}': {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::new(),
    };
    let mut config = config;
    let mut flags = Vec::new();
    if let Some(path) = &args.restore {
        flags.push(("execution.savepoint.path", path.as_str()));
    }
    if args.fresh {
        flags.push(("execution.checkpointing.resume", "false"));
    }
    for (key, value) in flags {
        if let Err(e) = config.set(key, value) {
            eprintln!("[ERROR] {e}");
            return ExitCode::from(2);
        }
    }
    let mut session = Session::new(config);
    match args.command.as_deref() {
        Some("run") => {
            let Some(file) = args.file else {
                eprintln!("[ERROR] weir run needs a file\n\n{HELP}");
                return ExitCode::from(2);
            };
            match std::fs::read_to_string(&file) {
                Ok(sql) => {
                    let rest = rest::RestState::default();
                    let code = run_script(&mut session, &sql, true, Some(&rest)).await;
                    // A client that stopped the job still asks for the
                    // savepoint's path: answer it before exiting.
                    rest.linger(std::time::Duration::from_secs(10)).await;
                    code
                }
                Err(e) => {
                    eprintln!("[ERROR] cannot read '{file}': {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ if !std::io::stdin().is_terminal() => {
            let mut sql = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut sql) {
                eprintln!("[ERROR] cannot read standard input: {e}");
                return ExitCode::FAILURE;
            }
            run_script(&mut session, &sql, false, None).await
        }
        _ => shell(&mut session).await,
    }
}

fn error_text(e: &SqlError) -> String {
    format!("[ERROR] Could not execute SQL statement. Reason:\n{e}")
}

/// Runs a script, then waits for the jobs it started. `weir run` stops at the
/// first error; piped statements behave like the shell (the error is printed
/// and the next statement runs) and the exit code says whether any failed.
async fn run_script(
    session: &mut Session,
    sql: &str,
    stop_on_error: bool,
    rest: Option<&rest::RestState>,
) -> ExitCode {
    let mut rest_started = false;
    // Each job of a script is a job of its own: one name, one job.
    session.set_name_scope(NameScope::Session);

    let mut failed = false;
    let statements = match Session::split(sql) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", error_text(&e));
            return ExitCode::FAILURE;
        }
    };
    let mut jobs: Vec<JobHandle> = Vec::new();
    for tokens in statements {
        if is_quit(&tokens) {
            break;
        }
        if is_help(&tokens) {
            outln!("{SQL_HELP}\n");
            continue;
        }
        match execute_and_print(session, tokens, None).await {
            Ok(Some(job)) => {
                if let Some(rest) = rest {
                    if let Err(e) = serve(rest, &mut rest_started, session.config(), &job).await {
                        eprintln!("[ERROR] {e}");
                        jobs.push(job);
                        cancel_all(&jobs);
                        for job in &jobs {
                            let _ = job.wait().await;
                        }
                        return ExitCode::FAILURE;
                    }
                }
                if session.config().bool("table.dml-sync") {
                    if let Err(code) = wait_job(&job).await {
                        cancel_all(&jobs);
                        return code;
                    }
                } else {
                    jobs.push(job);
                }
            }
            Ok(None) => {}
            Err(e) if stop_on_error => {
                eprintln!("{}", error_text(&e));
                cancel_all(&jobs);
                return ExitCode::FAILURE;
            }
            Err(e) => {
                // Piped: errors on stderr, results on stdout.
                eprintln!("{}\n", error_text(&e));
                failed = true;
            }
        }
    }
    if let Err(code) = wait_jobs(&jobs).await {
        return code;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Makes a started job visible through the REST API, starting the server
/// with the first job (so that `SET 'rest.port'` before it applies).
///
/// A port that cannot be bound is an error (another process may be
/// serving there, and `weir list` would talk to it): the caller cancels the
/// job and says so.
async fn serve(
    rest: &rest::RestState,
    started: &mut bool,
    config: &Config,
    job: &JobHandle,
) -> Result<(), String> {
    if !*started {
        match rest::start(config, rest.clone()).await {
            Ok(Some(addr)) => eprintln!("[INFO] REST API listening on http://{addr}"),
            Ok(None) => {}
            Err(e) => return Err(format!("REST API: {e}")),
        }
        *started = true;
    }
    rest.add_job(job.clone());
    Ok(())
}

fn cancel_all(jobs: &[JobHandle]) {
    jobs.iter().for_each(JobHandle::cancel);
}

async fn terminate_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Waits for a job, or stops it on Ctrl-C/SIGTERM.
async fn wait_job(job: &JobHandle) -> Result<(), ExitCode> {
    wait_jobs(std::slice::from_ref(job)).await
}

/// Waits for every job of a script. One Ctrl-C or SIGTERM stops all of them
/// (each with a final checkpoint where checkpointing is on, so the next run
/// resumes where they stopped); the first job that fails cancels the rest.
async fn wait_jobs(jobs: &[JobHandle]) -> Result<(), ExitCode> {
    let mut waits = tokio::task::JoinSet::new();
    for job in jobs {
        let job = job.clone();
        waits.spawn(async move {
            let result = job.wait().await;
            (job, result)
        });
    }
    let signal = terminate_signal();
    tokio::pin!(signal);
    let mut stopping = false;
    let mut outcome = Ok(());
    loop {
        tokio::select! {
            next = waits.join_next() => match next {
                // A bounded job stopped before its end did not finish: 130,
                // as a shell reports an interrupted command.
                None if outcome.is_ok()
                    && stopping
                    && jobs.iter().any(|j| j.is_bounded() && j.stop_requested()) =>
                {
                    return Err(ExitCode::from(130))
                }
                None => return outcome,
                Some(Ok((job, result))) => {
                    if report_end(&job, result, stopping).is_err() && outcome.is_ok() {
                        outcome = Err(ExitCode::FAILURE);
                        cancel_all(jobs);
                    }
                }
                Some(Err(e)) => {
                    eprintln!("[ERROR] waiting for a job: {e}");
                    outcome = Err(ExitCode::FAILURE);
                }
            },
            _ = &mut signal, if !stopping => {
                stopping = true;
                stop_all(jobs);
            }
        }
    }
}

/// Stops every running job in the background ([`JobHandle::stop`]); their
/// ends are reported by whoever waits for them.
fn stop_all(jobs: &[JobHandle]) {
    let running = running(jobs);
    if running.is_empty() {
        return;
    }
    eprintln!("[INFO] Stopping {} ...", count_jobs(running.len()));
    for job in running {
        tokio::spawn(async move {
            if let Err(e) = job.stop().await {
                eprintln!(
                    "[WARN] Job {} ({}) did not stop cleanly: {e}",
                    job.id(),
                    job.name()
                );
            }
        });
    }
}

/// The jobs that are still running.
fn running(jobs: &[JobHandle]) -> Vec<JobHandle> {
    jobs.iter()
        .filter(|j| j.status() == weir_engine::JobStatus::Running)
        .cloned()
        .collect()
}

/// `1 running job`, `2 running jobs`.
fn count_jobs(n: usize) -> String {
    format!("{n} running job{}", if n == 1 { "" } else { "s" })
}

/// Stops the shell's running jobs and waits for them, saying what it does.
async fn stop_before_leaving(jobs: &[JobHandle]) {
    let running = running(jobs);
    if running.is_empty() {
        return;
    }
    outln!(
        "[INFO] Stopping {} before leaving (with a final checkpoint where checkpointing is on) ...",
        count_jobs(running.len())
    );
    for job in &running {
        match job.stop().await {
            Ok(()) => outln!("[INFO] Job {} ({}) stopped.", job.id(), job.name()),
            Err(e) => outln!(
                "[WARN] Job {} ({}) did not stop cleanly: {e}",
                job.id(),
                job.name()
            ),
        }
    }
}

/// Reports how a job ended; `Err` when it failed.
fn report_end(job: &JobHandle, result: weir_engine::Result<()>, stopping: bool) -> Result<(), ()> {
    report_counters(job);
    match result {
        Ok(()) if stopping && job.stop_requested() => {
            eprintln!("[INFO] Job {} ({}) stopped.", job.id(), job.name());
            Ok(())
        }
        Ok(()) => {
            eprintln!("[INFO] Job {} ({}) finished.", job.id(), job.name());
            Ok(())
        }
        Err(EngineError::Cancelled) => {
            eprintln!("[INFO] Job {} ({}) stopped.", job.id(), job.name());
            Ok(())
        }
        Err(e) => {
            eprintln!("[ERROR] Job {} ({}) failed: {e}", job.id(), job.name());
            Err(())
        }
    }
}

fn report_counters(job: &JobHandle) {
    for (node, m) in job.metrics() {
        if m.late_records_dropped > 0 {
            eprintln!(
                "[WARN] {node}: {} late records dropped",
                m.late_records_dropped
            );
        }
        if m.parse_errors_skipped > 0 {
            eprintln!(
                "[WARN] {node}: {} malformed records skipped",
                m.parse_errors_skipped
            );
        }
    }
}

/// The statement's only word, upper-cased (`QUIT`, `HELP`, …).
fn single_word(tokens: &[datafusion::sql::sqlparser::tokenizer::TokenWithSpan]) -> Option<String> {
    use datafusion::sql::sqlparser::tokenizer::Token;
    let words: Vec<String> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| t.token.to_string().to_uppercase())
        .collect();
    match words.as_slice() {
        [word] => Some(word.clone()),
        _ => None,
    }
}

fn is_quit(tokens: &[datafusion::sql::sqlparser::tokenizer::TokenWithSpan]) -> bool {
    matches!(single_word(tokens).as_deref(), Some("QUIT" | "EXIT"))
}

fn is_help(tokens: &[datafusion::sql::sqlparser::tokenizer::TokenWithSpan]) -> bool {
    single_word(tokens).as_deref() == Some("HELP")
}

/// Executes one statement and prints its outcome. Returns the job an INSERT
/// started. `terminal` is the height of the shell's terminal, `None` when
/// the statements are piped or read from a file.
async fn execute_and_print(
    session: &mut Session,
    tokens: Vec<datafusion::sql::sqlparser::tokenizer::TokenWithSpan>,
    terminal: Option<usize>,
) -> Result<Option<JobHandle>, SqlError> {
    match session.execute_tokens(tokens).await? {
        StatementResult::Done(msg) => outln!("[INFO] {msg}\n"),
        StatementResult::Table { header, rows } => print_table(&header, &rows),
        StatementResult::Text(text) => outln!("{text}"),
        StatementResult::Job(job) => {
            outln!("[INFO] Submitting SQL update statement to the cluster...");
            outln!("[INFO] SQL update statement has been successfully submitted to the cluster:");
            outln!("Job ID: {}\n", job.id());
            eprintln!("[INFO] Job {} ({}) started.", job.id(), job.name());
            return Ok(Some(job));
        }
        StatementResult::Query(query) => {
            let max_rows = session
                .config()
                .get("sql-client.execution.max-table-result.rows")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let width = session
                .config()
                .get("sql-client.display.max-column-width")
                .and_then(|v| v.parse().ok())
                .unwrap_or(30);
            // Flink's client: the table view at a terminal, tableau when piped.
            let mode = match session.config().get("sql-client.execution.result-mode") {
                Some(mode) => ResultMode::parse(&mode),
                None if terminal.is_some() => ResultMode::Table,
                None => ResultMode::Tableau,
            };
            let view = View {
                mode,
                max_rows,
                max_width: width,
                interactive: terminal.is_some(),
                height: terminal.unwrap_or(24),
            };
            let job = query.job.clone();
            let outcome = print_query(query, view).await;
            report_counters(&job);
            if let Err(e) = outcome {
                return Err(SqlError::Engine(e));
            }
        }
    }
    Ok(None)
}

async fn shell(session: &mut Session) -> ExitCode {
    let mut editor =
        match rustyline::Editor::<complete::SqlHelper, rustyline::history::DefaultHistory>::new() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("[ERROR] cannot open the terminal: {e}");
                return ExitCode::FAILURE;
            }
        };
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".weir_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    // Print sinks write above the prompt, not over it.
    if let Ok(printer) = editor.create_external_printer() {
        let printer = std::sync::Mutex::new(printer);
        weir_engine::connectors::print::set_console(Some(std::sync::Arc::new(
            move |text: String| {
                use rustyline::ExternalPrinter as _;
                if let Ok(mut p) = printer.lock() {
                    let text = text.trim_end_matches('\n').replace('\n', "\r\n");
                    let _ = p.print(text);
                }
            },
        )));
    }
    let helper = complete::SqlHelper::default();
    let names = helper.names.clone();
    editor.set_helper(Some(helper));
    let refresh = |session: &Session| {
        if let Ok(mut n) = names.lock() {
            *n = session.names();
        }
    };
    outln!("Weir SQL shell {}. End statements with ';'. Type HELP; for help, QUIT; or Ctrl-D to leave.\n", env!("CARGO_PKG_VERSION"));
    let rest = rest::RestState::default();
    let mut rest_started = false;
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "Weir SQL> "
        } else {
            "> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                if !buffer.is_empty() {
                    buffer.push('\n');
                }
                buffer.push_str(&line);
                if !is_complete(&buffer) {
                    continue;
                }
                let text = std::mem::take(&mut buffer);
                let _ = editor.add_history_entry(text.trim());
                // Appended as statements run, so a killed shell keeps them.
                if let Some(h) = &history {
                    let _ = editor.append_history(h);
                }
                let statements = match Session::split(&text) {
                    Ok(s) => s,
                    Err(e) => {
                        outln!("{}\n", error_text(&e));
                        continue;
                    }
                };
                for tokens in statements {
                    if is_quit(&tokens) {
                        stop_before_leaving(session.jobs()).await;
                        outln!("Exiting Weir SQL shell. Bye!");
                        return ExitCode::SUCCESS;
                    }
                    if is_help(&tokens) {
                        outln!("{SQL_HELP}\n");
                        continue;
                    }
                    let height = editor
                        .dimensions()
                        .map_or(24, |(_, rows)| usize::from(rows));
                    match execute_and_print(session, tokens, Some(height)).await {
                        Ok(Some(job)) => {
                            if let Err(e) =
                                serve(&rest, &mut rest_started, session.config(), &job).await
                            {
                                job.cancel();
                                let _ = job.wait().await;
                                outln!("[ERROR] {e}\nJob {} was cancelled.\n", job.id());
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            outln!("{}\n", error_text(&e));
                            break;
                        }
                    }
                    refresh(session);
                }
            }
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
            }
            Err(ReadlineError::Eof) => {
                stop_before_leaving(session.jobs()).await;
                outln!("Exiting Weir SQL shell. Bye!");
                break;
            }
            Err(e) => {
                eprintln!("[ERROR] {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
