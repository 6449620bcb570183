//! The Nexmark harness: runs every query under `benches/nexmark/` on the
//! `nexmark` generator and prints, per query, parallelism and state backend:
//! events, seconds, events/s, events/s per core and peak resident memory;
//! the generator alone (the source-only ceiling); and, for the windowed and
//! grouped queries, the same computation as a DataFusion batch query over the
//! same events materialized once (the limit).
//!
//! ```text
//! cargo bench --bench nexmark                        # 10M events, p 1 and 2, hashmap and rocksdb
//! cargo bench --bench nexmark -- --quick             # a smoke run (CI)
//! cargo bench --bench nexmark -- --events 2000000 --queries q0,tumble_auction --parallelism 1 --backends hashmap
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
use datafusion::prelude::SessionContext;
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
    batch: bool,
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
            .unwrap_or(if quick { 20_000 } else { 10_000_000 }),
        queries: list("--queries"),
        parallelism: list("--parallelism")
            .map(|v| v.iter().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 2]),
        backends: list("--backends").unwrap_or_else(|| vec!["hashmap".into(), "rocksdb".into()]),
        batch: !args.iter().any(|a| a == "--no-batch"),
    }
}

/// The same computation as a DataFusion batch query: the columns of `bid`
/// to materialize, and the query over them.
struct BatchForm {
    columns: &'static str,
    sql: &'static str,
}

fn batch_form(query: &str) -> Option<BatchForm> {
    let stats = "auction, bidder, price, channel, dateTime";
    Some(match query {
        "tumble_auction" => BatchForm {
            columns: "auction, price, dateTime",
            sql: "SELECT auction, date_bin(INTERVAL '10 seconds', dateTime, TIMESTAMP '1970-01-01 00:00:00') AS window_start, \
                  count(*) AS bids, max(price) AS top_price FROM bid GROUP BY 1, 2",
        },
        "group_auction" => BatchForm {
            columns: "auction, price",
            sql: "SELECT auction, count(*) AS bids, max(price) AS top_price FROM bid GROUP BY auction",
        },
        "q15" => BatchForm { columns: stats, sql: "" },
        "q16" => BatchForm { columns: stats, sql: "" },
        "q17" => BatchForm { columns: stats, sql: "" },
        _ => return None,
    })
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

async fn context(parallelism: usize, backend: &str, dir: &Path) -> StreamContext {
    StreamContext::builder()
        .set("parallelism.default", &parallelism.to_string())
        .and_then(|b| b.set("state.backend.type", backend))
        .and_then(|b| {
            b.set(
                "state.backend.rocksdb.localdir",
                dir.to_str().unwrap_or("."),
            )
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .build()
}

/// Runs the statements of `sql`; the INSERT is timed. Returns seconds and
/// the rows the sink received.
async fn run_stream(ctx: &mut StreamContext, sql: &str) -> (f64, u64) {
    let statements = weir::Session::split(sql).unwrap_or_else(|e| panic!("{e}"));
    let mut result = None;
    for tokens in statements {
        let text: String = tokens.iter().map(|t| t.to_string()).collect();
        if text.trim_start().to_ascii_uppercase().starts_with("INSERT") {
            let start = Instant::now();
            let job = ctx.insert(&text).await.unwrap_or_else(|e| panic!("{e}"));
            job.wait().await.unwrap_or_else(|e| panic!("{e}"));
            let rows = job.metrics().last().map_or(0, |(_, m)| m.records_in);
            result = Some((start.elapsed().as_secs_f64(), rows));
        } else {
            ctx.sql(&text).await.unwrap_or_else(|e| panic!("{e}"));
        }
    }
    result.unwrap_or_else(|| panic!("no INSERT in the query file"))
}

/// Materializes `SELECT <columns> FROM bid` over `events` events, then times
/// `sql` on it in DataFusion.
async fn run_batch(ddl: &str, columns: &str, sql: &str, dir: &Path) -> (f64, usize) {
    let mut ctx = context(1, "hashmap", dir).await;
    for tokens in weir::Session::split(ddl).unwrap_or_else(|e| panic!("{e}")) {
        let text: String = tokens.iter().map(|t| t.to_string()).collect();
        ctx.sql(&text).await.unwrap_or_else(|e| panic!("{e}"));
    }
    // Aliases keep the plain column names in the result's schema.
    let aliased: Vec<String> = columns
        .split(',')
        .map(|c| format!("{0} AS {0}", c.trim()))
        .collect();
    let result = ctx
        .query(&format!("SELECT {} FROM bid", aliased.join(", ")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let schema = result.schema.clone();
    let batches: Vec<RecordBatch> = result.collect().await.unwrap_or_else(|e| panic!("{e}"));
    // Case-sensitive identifiers, as in Flink (and in the streaming run).
    let mut config = datafusion::prelude::SessionConfig::new();
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let df = SessionContext::new_with_config(config);
    weir::register_flink_functions(&df);
    let table = MemTable::try_new(schema, vec![batches]).unwrap_or_else(|e| panic!("{e}"));
    df.register_table("bid", Arc::new(table))
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let out = df
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (
        start.elapsed().as_secs_f64(),
        out.iter().map(RecordBatch::num_rows).sum(),
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
fn run_child(sql: &Path, p: usize, backend: &str, dir: &Path) -> (f64, u64) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(exe)
        .arg("--child")
        .arg(sql)
        .arg(p.to_string())
        .arg(backend)
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
    let secs = fields
        .get(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let peak = fields.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
    (secs, peak)
}

/// The child side: runs the statements of one file and prints
/// `RESULT <seconds> <peak RSS bytes>`.
async fn child(args: &[String]) {
    let [sql, p, backend, dir] = args else {
        panic!("--child <file> <parallelism> <backend> <dir>");
    };
    let sql = std::fs::read_to_string(sql).unwrap_or_else(|e| panic!("{e}"));
    let p: usize = p.parse().unwrap_or(1);
    let mut ctx = context(p, backend, Path::new(dir)).await;
    let (secs, _rows) = run_stream(&mut ctx, &sql).await;
    println!("RESULT {secs} {}", peak_rss_bytes());
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
    let ddl = std::fs::read_to_string(dir.join("ddl.sql")).unwrap_or_else(|e| panic!("{e}"));
    let ddl = ddl.replace(
        "'events.num' = '10000000'",
        &format!("'events.num' = '{}'", opts.events),
    );
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
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "Nexmark, {} events, {} cores; seconds from INSERT to end of job",
        opts.events, cores
    );
    println!(
        "| query | p | backend | events | seconds | events/s | events/s per core | peak RSS MB | of generator | DataFusion batch s | of batch limit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut ceiling: BTreeMap<usize, f64> = BTreeMap::new();
    for (name, text) in &queries {
        let batch = if opts.batch {
            match batch_form(name) {
                Some(form) => {
                    let sql = if form.sql.is_empty() {
                        insert_select(text).unwrap_or_default()
                    } else {
                        form.sql.to_string()
                    };
                    Some(run_batch(&ddl, form.columns, &sql, scratch.path()).await)
                }
                None => None,
            }
        } else {
            None
        };
        for &p in &opts.parallelism {
            for backend in &opts.backends {
                if name == "generator" && backend != &opts.backends[0] {
                    continue; // stateless: the backend does not matter
                }
                // Each run in a process of its own, so that its peak memory
                // is its own.
                let sql_file = scratch.path().join(format!("{name}.sql"));
                std::fs::write(&sql_file, format!("{ddl}\n{text}"))
                    .unwrap_or_else(|e| panic!("{e}"));
                let (secs, peak) = run_child(&sql_file, p, backend, scratch.path());
                let rate = opts.events as f64 / secs;
                if name == "generator" {
                    ceiling.insert(p, rate);
                }
                let of_generator = ceiling
                    .get(&p)
                    .map_or("".into(), |c| format!("{:.0}%", 100.0 * rate / c));
                let (batch_secs, of_batch) = match &batch {
                    Some((b, _)) => (format!("{b:.2}"), format!("{:.0}%", 100.0 * b / secs)),
                    None => (String::new(), String::new()),
                };
                println!(
                    "| {name} | {p} | {backend} | {} | {secs:.2} | {rate:.0} | {:.0} | {} | {of_generator} | {batch_secs} | {of_batch} |",
                    opts.events,
                    rate / p.min(cores) as f64,
                    peak >> 20,
                );
            }
        }
    }
}
