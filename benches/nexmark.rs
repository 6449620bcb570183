//! The Nexmark harness: runs every query under `benches/nexmark/` and
//! prints, per query, source, parallelism, state backend and checkpoint
//! interval: events, seconds, events/s, events/s per core, peak resident
//! memory and the checkpoints completed. Two sources:
//!
//! - `nexmark`: the generator, as the queries are written. The `generator`
//!   row runs the source alone (the source-only ceiling).
//! - `parquet`: for the windowed and grouped queries, the same bids
//!   materialized once into Parquet files (one per source subtask, each
//!   covering the whole event time) and read back, so that the run measures
//!   the operators rather than the generator. Against it, the same
//!   computation as a DataFusion batch query over the same bids in memory,
//!   at the same parallelism (the limit), and the ratio.
//!
//! ```text
//! cargo bench --bench nexmark                        # 30M events (q16: 10M), p 1 and 2, hashmap and rocksdb, checkpoints off and every 10 s
//! cargo bench --bench nexmark -- --quick             # a smoke run (CI)
//! cargo bench --bench nexmark -- --events 2000000 --queries q0,tumble_auction --parallelism 1 --backends hashmap \
//!     --checkpoints off --sources nexmark,parquet [--no-batch] [--scratch DIR]
//! ```
//!
//! Each run is a child process of its own (this program with `--child`), so
//! that its peak resident memory (`VmHWM`) is its own. Timing is wall time
//! from submitting the INSERT to the end of the job; nothing here asserts on
//! time.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{SessionConfig, SessionContext};
use weir::StreamContext;

/// The checkout the tests run in. Cargo sets `CARGO_MANIFEST_DIR` when it
/// runs a test; the compile-time value can name another checkout when a
/// shared target directory reuses a test binary built there.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

struct Options {
    events: u64,
    queries: Option<Vec<String>>,
    parallelism: Vec<usize>,
    backends: Vec<String>,
    /// `off` or a checkpoint interval (`10 s`).
    checkpoints: Vec<String>,
    /// `nexmark` (the generator) and/or `parquet` (the bids materialized once).
    sources: Vec<String>,
    batch: bool,
    /// Where the materialized bids and the runs' files go (kept); a
    /// temporary directory (removed) by default.
    scratch: Option<std::path::PathBuf>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let list =
        |name: &str| value(name).map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>());
    let quick = args.iter().any(|a| a == "--quick");
    Options {
        events: value("--events")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 20_000 } else { 30_000_000 }),
        queries: list("--queries"),
        parallelism: list("--parallelism")
            .map(|v| v.iter().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 2]),
        backends: list("--backends").unwrap_or_else(|| vec!["hashmap".into(), "rocksdb".into()]),
        checkpoints: list("--checkpoints").unwrap_or_else(|| vec!["off".into(), "10 s".into()]),
        sources: list("--sources").unwrap_or_else(|| vec!["nexmark".into(), "parquet".into()]),
        batch: !args.iter().any(|a| a == "--no-batch"),
        scratch: value("--scratch").map(Into::into),
    }
}

/// The same computation as a DataFusion batch query: the columns of `bid`
/// to materialize, and the query over them.
struct BatchForm {
    columns: &'static [&'static str],
    sql: &'static str,
}

fn batch_form(query: &str) -> Option<BatchForm> {
    let stats: &[&str] = &["auction", "bidder", "price", "channel", "dateTime"];
    Some(match query {
        "tumble_auction" => BatchForm {
            columns: &["auction", "price", "dateTime"],
            sql: "SELECT auction, date_bin(INTERVAL '10 seconds', dateTime, TIMESTAMP '1970-01-01 00:00:00') AS window_start, \
                  count(*) AS bids, max(price) AS top_price FROM bid GROUP BY 1, 2",
        },
        "group_auction" => BatchForm {
            columns: &["auction", "price"],
            sql: "SELECT auction, count(*) AS bids, max(price) AS top_price FROM bid GROUP BY auction",
        },
        "q15" | "q16" | "q17" => BatchForm {
            columns: stats,
            sql: "",
        },
        _ => return None,
    })
}

/// The SQL type of a `bid` column, for the Parquet table's DDL.
fn bid_column_type(column: &str) -> &'static str {
    match column {
        "channel" | "url" | "extra" => "VARCHAR",
        "dateTime" => "TIMESTAMP(3)",
        _ => "BIGINT",
    }
}

/// The SELECT of a query file's INSERT (for the grouped queries, whose SQL
/// runs unchanged as a batch query).
fn insert_select(sql: &str) -> Option<String> {
    let at = sql.find("INSERT INTO")?;
    let rest = &sql[at..];
    let select = rest.find("SELECT")?;
    Some(rest[select..].trim().trim_end_matches(';').to_string())
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in bytes.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// One streaming run's configuration (passed to the child process).
struct RunConfig {
    parallelism: usize,
    backend: String,
    /// `off` or the checkpoint interval.
    checkpoints: String,
}

fn context(run: &RunConfig, dir: &Path) -> StreamContext {
    let mut settings = vec![
        ("parallelism.default", run.parallelism.to_string()),
        ("state.backend.type", run.backend.clone()),
        (
            "state.backend.rocksdb.localdir",
            dir.join("rocksdb").display().to_string(),
        ),
    ];
    if run.checkpoints != "off" {
        settings.push(("execution.checkpointing.interval", run.checkpoints.clone()));
        settings.push((
            "execution.checkpointing.dir",
            dir.join("checkpoints").display().to_string(),
        ));
        settings.push(("execution.checkpointing.resume", "false".into()));
    }
    let mut builder = StreamContext::builder();
    for (key, value) in settings {
        builder = builder
            .set(key, &value)
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    builder.build()
}

/// What a streaming run measured.
struct Measured {
    seconds: f64,
    peak_rss: u64,
    checkpoints: usize,
}

/// Runs the statements of `sql`; the INSERT is timed.
async fn run_stream(ctx: &mut StreamContext, sql: &str) -> Measured {
    let statements = weir::Session::split(sql).unwrap_or_else(|e| panic!("{e}"));
    let mut result = None;
    for tokens in statements {
        let text: String = tokens.iter().map(|t| t.to_string()).collect();
        if text.trim_start().to_ascii_uppercase().starts_with("INSERT") {
            let start = Instant::now();
            let job = ctx.insert(&text).await.unwrap_or_else(|e| panic!("{e}"));
            job.wait().await.unwrap_or_else(|e| panic!("{e}"));
            let seconds = start.elapsed().as_secs_f64();
            let checkpoints = job
                .checkpoints()
                .iter()
                .filter(|c| c.status == "COMPLETED")
                .count();
            result = Some(Measured {
                seconds,
                peak_rss: 0,
                checkpoints,
            });
        } else {
            ctx.sql(&text).await.unwrap_or_else(|e| panic!("{e}"));
        }
    }
    result.unwrap_or_else(|| panic!("no INSERT in the query file"))
}

/// The bids of the run's events, materialized once: the query's columns,
/// in the generator's order.
async fn materialize_bids(ddl: &str, columns: &[&str], dir: &Path) -> Vec<RecordBatch> {
    let run = RunConfig {
        parallelism: 1,
        backend: "hashmap".into(),
        checkpoints: "off".into(),
    };
    let mut ctx = context(&run, dir);
    for tokens in weir::Session::split(ddl).unwrap_or_else(|e| panic!("{e}")) {
        let text: String = tokens.iter().map(|t| t.to_string()).collect();
        ctx.sql(&text).await.unwrap_or_else(|e| panic!("{e}"));
    }
    // Aliases keep the plain column names in the result's schema.
    let aliased: Vec<String> = columns.iter().map(|c| format!("{c} AS {c}")).collect();
    let result = ctx
        .query(&format!("SELECT {} FROM bid", aliased.join(", ")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    result.collect().await.unwrap_or_else(|e| panic!("{e}"))
}

/// Deals `batches` out round-robin into `parts` partitions, so that each
/// partition covers the whole event-time range in order (a source subtask
/// per partition then advances its watermark like the generator does).
fn deal(batches: &[RecordBatch], parts: usize) -> Vec<Vec<RecordBatch>> {
    let mut out = vec![Vec::new(); parts];
    for (i, b) in batches.iter().enumerate() {
        out[i % parts].push(b.clone());
    }
    out
}

/// Writes each partition into `<dir>/part-<i>.parquet`.
fn write_parquet(partitions: &[Vec<RecordBatch>], dir: &Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    for (i, part) in partitions.iter().enumerate() {
        let Some(first) = part.first() else { continue };
        let file = std::fs::File::create(dir.join(format!("part-{i}.parquet")))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut writer =
            ArrowWriter::try_new(file, first.schema(), None).unwrap_or_else(|e| panic!("{e}"));
        for b in part {
            writer.write(b).unwrap_or_else(|e| panic!("{e}"));
        }
        writer.close().unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Times `sql` in DataFusion over `partitions` in memory, with as many
/// target partitions (threads) as the streaming run's parallelism.
async fn run_batch(partitions: Vec<Vec<RecordBatch>>, sql: &str) -> f64 {
    let schema = partitions
        .iter()
        .flat_map(|p| p.first())
        .map(RecordBatch::schema)
        .next()
        .unwrap_or_else(|| panic!("no bids to run the batch query on"));
    // Case-sensitive identifiers, as in Flink (and in the streaming run).
    let mut config = SessionConfig::new().with_target_partitions(partitions.len());
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let df = SessionContext::new_with_config(config);
    weir::register_flink_functions(&df);
    let table = MemTable::try_new(schema, partitions).unwrap_or_else(|e| panic!("{e}"));
    df.register_table("bid", Arc::new(table))
        .unwrap_or_else(|e| panic!("{e}"));
    // The best of three: the figure is the limit, not a typical run.
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        df.sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        best = best.min(start.elapsed().as_secs_f64());
    }
    best
}

/// The DDL of a `bid` table over the materialized Parquet files, with the
/// generator's watermark (when the columns include `dateTime`).
fn parquet_ddl(columns: &[&str], dir: &Path) -> String {
    let fields: Vec<String> = columns
        .iter()
        .map(|c| format!("    {c} {}", bid_column_type(c)))
        .collect();
    let mut fields = fields;
    if columns.contains(&"dateTime") {
        fields.push("    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND".into());
    }
    format!(
        "CREATE TABLE bid (\n{}\n) WITH (\n    'connector' = 'filesystem',\n    'path' = '{}',\n    'format' = 'parquet'\n);\n",
        fields.join(",\n"),
        dir.display()
    )
}

const GENERATOR: &str = "\
CREATE TABLE generator_sink (
    event_type INT,
    person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, state VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR>,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>
) WITH ('connector' = 'blackhole');
INSERT INTO generator_sink SELECT event_type, person, auction, bid FROM nexmark;";

/// Runs one query in a child process (this program with `--child`).
fn run_child(sql: &Path, run: &RunConfig, dir: &Path) -> Measured {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(exe)
        .arg("--child")
        .arg(sql)
        .arg(run.parallelism.to_string())
        .arg(&run.backend)
        .arg(&run.checkpoints)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "{} failed: {stdout}{}",
                sql.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let fields: Vec<&str> = line.split_whitespace().collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    Measured {
        seconds: field(1).parse().unwrap_or(f64::NAN),
        peak_rss: field(2).parse().unwrap_or(0),
        checkpoints: field(3).parse().unwrap_or(0),
    }
}

/// The child side: runs the statements of one file and prints
/// `RESULT <seconds> <peak RSS bytes> <completed checkpoints>`.
async fn child(args: &[String]) {
    let [sql, p, backend, checkpoints, dir] = args else {
        panic!("--child <file> <parallelism> <backend> <checkpoints> <dir>");
    };
    let sql = std::fs::read_to_string(sql).unwrap_or_else(|e| panic!("{e}"));
    let run = RunConfig {
        parallelism: p.parse().unwrap_or(1),
        backend: backend.clone(),
        checkpoints: checkpoints.clone(),
    };
    let dir = Path::new(dir);
    let mut ctx = context(&run, dir);
    let measured = run_stream(&mut ctx, &sql).await;
    println!(
        "RESULT {} {} {}",
        measured.seconds,
        peak_rss_bytes(),
        measured.checkpoints
    );
    // Each run starts from empty checkpoint and RocksDB directories.
    let _ = std::fs::remove_dir_all(dir.join("checkpoints"));
    let _ = std::fs::remove_dir_all(dir.join("rocksdb"));
}

/// A query's bids in Parquet, per parallelism, and the batch limit there.
struct Materialized {
    bids: u64,
    /// Parallelism → (Parquet directory, DataFusion batch seconds).
    per_parallelism: BTreeMap<usize, (std::path::PathBuf, Option<f64>)>,
    columns: &'static [&'static str],
}

async fn materialize(
    name: &str,
    text: &str,
    ddl: &str,
    opts: &Options,
    scratch: &Path,
) -> Option<Materialized> {
    let form = batch_form(name)?;
    let batches = materialize_bids(ddl, form.columns, scratch).await;
    let bids = batches.iter().map(|b| b.num_rows() as u64).sum();
    let sql = if form.sql.is_empty() {
        insert_select(text).unwrap_or_default()
    } else {
        form.sql.to_string()
    };
    let mut per_parallelism = BTreeMap::new();
    for &p in &opts.parallelism {
        let partitions = deal(&batches, p);
        let dir = scratch.join(format!("bids-{name}-p{p}"));
        if opts.sources.iter().any(|s| s == "parquet") {
            write_parquet(&partitions, &dir);
        }
        let limit = if opts.batch {
            Some(run_batch(partitions, &sql).await)
        } else {
            None
        };
        per_parallelism.insert(p, (dir, limit));
    }
    Some(Materialized {
        bids,
        per_parallelism,
        columns: form.columns,
    })
}

/// Events for a query: a third for q16, whose updating aggregate with eight
/// `COUNT(DISTINCT)`s runs about a tenth as fast as the others (so the
/// default run stays affordable; the rate is what the table compares).
fn events_for(query: &str, events: u64) -> u64 {
    match query {
        "q16" => (events / 3).max(1),
        _ => events,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1..]).await;
        return;
    }
    let opts = options();
    let dir = manifest_dir().join("benches/nexmark");
    let ddl_text = std::fs::read_to_string(dir.join("ddl.sql")).unwrap_or_else(|e| panic!("{e}"));
    let ddl_for = |events: u64| {
        ddl_text.replace(
            "'events.num' = '10000000'",
            &format!("'events.num' = '{events}'"),
        )
    };
    let mut queries: BTreeMap<String, String> = BTreeMap::new();
    queries.insert("generator".into(), GENERATOR.into());
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        if path.extension().is_some_and(|e| e == "sql") && name != "ddl" {
            queries.insert(
                name,
                std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}")),
            );
        }
    }
    if let Some(wanted) = &opts.queries {
        queries.retain(|name, _| name == "generator" || wanted.contains(name));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let temporary = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let scratch = opts
        .scratch
        .clone()
        .unwrap_or_else(|| temporary.path().into());
    std::fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "Nexmark, {} events (q16: {}), {} cores; seconds from INSERT to end of job",
        opts.events,
        events_for("q16", opts.events),
        cores
    );
    println!(
        "| query | source | p | backend | checkpoints | events | seconds | events/s | events/s per core | peak RSS MB | of generator | DataFusion batch s | of batch limit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut ceiling: BTreeMap<usize, f64> = BTreeMap::new();
    let with_nexmark = opts.sources.iter().any(|s| s == "nexmark");
    let with_parquet = opts.sources.iter().any(|s| s == "parquet");
    for (name, text) in &queries {
        let events = events_for(name, opts.events);
        let ddl = ddl_for(events);
        let materialized = if with_parquet || opts.batch {
            materialize(name, text, &ddl, &opts, scratch.as_path()).await
        } else {
            None
        };
        let mut sources: Vec<&str> = Vec::new();
        if with_nexmark || name == "generator" {
            sources.push("nexmark");
        }
        if with_parquet && materialized.is_some() {
            sources.push("parquet");
        }
        for source in sources {
            for &p in &opts.parallelism {
                for backend in &opts.backends {
                    for checkpoints in &opts.checkpoints {
                        if name == "generator"
                            && (backend != &opts.backends[0] || checkpoints != &opts.checkpoints[0])
                        {
                            continue; // stateless: neither matters
                        }
                        if source == "parquet"
                            && checkpoints != "off"
                            && opts.checkpoints.iter().any(|c| c == "off")
                        {
                            continue; // the batch comparison runs without checkpoints
                        }
                        let (file_text, events, limit) = match (source, &materialized) {
                            ("parquet", Some(m)) => {
                                let (dir, limit) = &m.per_parallelism[&p];
                                (
                                    format!("{}\n{text}", parquet_ddl(m.columns, dir)),
                                    m.bids,
                                    *limit,
                                )
                            }
                            _ => (format!("{ddl}\n{text}"), events, None),
                        };
                        // Each run in a process of its own, so that its peak
                        // memory is its own.
                        let sql_file = scratch.as_path().join(format!("{name}.sql"));
                        std::fs::write(&sql_file, file_text).unwrap_or_else(|e| panic!("{e}"));
                        let run = RunConfig {
                            parallelism: p,
                            backend: backend.clone(),
                            checkpoints: checkpoints.clone(),
                        };
                        let m = run_child(&sql_file, &run, scratch.as_path());
                        let secs = m.seconds;
                        let rate = events as f64 / secs;
                        if name == "generator" {
                            ceiling.insert(p, rate);
                        }
                        let of_generator = match (source, ceiling.get(&p)) {
                            ("nexmark", Some(c)) => format!("{:.0}%", 100.0 * rate / c),
                            _ => String::new(),
                        };
                        let (batch_secs, of_batch) = match limit {
                            Some(b) => (format!("{b:.2}"), format!("{:.0}%", 100.0 * b / secs)),
                            None => (String::new(), String::new()),
                        };
                        let checkpoints = if checkpoints == "off" {
                            "off".to_string()
                        } else {
                            format!("{} ({})", checkpoints.replace(' ', ""), m.checkpoints)
                        };
                        println!(
                            "| {name} | {source} | {p} | {backend} | {checkpoints} | {events} | {secs:.2} | {rate:.0} | {:.0} | {} | {of_generator} | {batch_secs} | {of_batch} |",
                            rate / p.min(cores) as f64,
                            m.peak_rss >> 20,
                        );
                    }
                }
            }
        }
    }
}
