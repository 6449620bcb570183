//! Bounded, seeded fuzzing on stable Rust: inputs from the repository's own
//! SQL, CSV and checkpoint files, mutated (bytes flipped, cut, repeated,
//! spliced, tokens inserted), fed to the SQL splitter and parser, to the
//! planner (`EXPLAIN`), to the CSV and JSON decoders and to checkpoint
//! metadata decoding and restore planning. Each must answer with a result
//! or an error, never a panic. `WEIR_FUZZ_SEED` and `WEIR_FUZZ_ROUNDS`
//! (a multiplier) vary a run locally; CI runs the fixed seed.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::path::Path;

use weir::StreamContext;

mod common;
use common::walk;

/// xorshift64*: repeatable randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn seed() -> u64 {
    std::env::var("WEIR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f022)
        | 1
}

fn rounds(base: usize) -> usize {
    let factor: usize = std::env::var("WEIR_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    base * factor.max(1)
}

/// Pieces of SQL that make mutations reach deeper than random bytes do.
const TOKENS: &[&str] = &[
    "(",
    ")",
    ",",
    ";",
    "'",
    "\"",
    "`",
    "--",
    "/*",
    "*/",
    " SELECT ",
    " FROM ",
    " WHERE ",
    " GROUP BY ",
    " TABLE(",
    "TUMBLE(",
    "HOP(",
    "DESCRIPTOR(",
    " INTERVAL '1' SECOND",
    " AS ",
    " ROW<",
    ">",
    ">>",
    " NULL",
    " CAST(",
    " CASE WHEN ",
    " END",
    " BEGIN ",
    " STATEMENT SET ",
    " EXECUTE ",
    " WATERMARK FOR ",
    " WITH (",
    "'connector' = ",
    " = ",
    "+",
    "-",
    "*",
    "/",
    "%",
    "1e309",
    "-9223372036854775808",
    "99999999999999999999",
    "\u{0}",
    "\u{feff}",
    "é",
    "\n",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            3 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + rng.below(32)).min(out.len());
                let piece = out[start..end].to_vec();
                out.splice(at..at, piece);
            }
            4 => out.truncate(at),
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                out.splice(at..at, other[from..].iter().take(64).copied());
            }
            _ => out.insert(at, rng.next() as u8),
        }
    }
    out
}

/// Every statement of the repository's SQL files.
fn sql_corpus() -> Vec<Vec<u8>> {
    let root = common::manifest_dir();
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in ["tests/sql", "benches/nexmark", "examples"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "sql") {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    let mut corpus = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        corpus.extend(
            text.split(";\n")
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.as_bytes().to_vec()),
        );
    }
    assert!(corpus.len() > 50, "{} statements", corpus.len());
    corpus
}

#[test]
fn the_sql_splitter_and_parser_never_panic() {
    use weir_sql::parser::{parse_statement, split_shift_right, split_statements};
    let corpus = sql_corpus();
    let mut rng = Rng(seed());
    for _ in 0..rounds(4000) {
        let pick = rng.below(corpus.len());
        let input = mutate(&mut rng, &corpus[pick], &corpus);
        let text = String::from_utf8_lossy(&input);
        let _ = weir_sql::is_complete(&text);
        if let Ok(statements) = split_statements(&text) {
            for tokens in statements {
                let _ = parse_statement(split_shift_right(tokens));
            }
        }
    }
}

/// The DDL every mutated query may refer to.
const CATALOG: &str = "CREATE TABLE events (id INT, name STRING, v BIGINT, ts TIMESTAMP(3), \
       WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
     WITH ('connector' = 'filesystem', 'path' = 'tests/data/events.csv', 'format' = 'csv');\
     CREATE TABLE sink (name STRING, n BIGINT) WITH ('connector' = 'blackhole')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_mutated_queries_never_panics() {
    std::env::set_current_dir(common::manifest_dir()).unwrap();
    let mut ctx = StreamContext::default();
    ctx.sql(CATALOG).await.unwrap();
    let ddl = std::fs::read_to_string("benches/nexmark/ddl.sql").unwrap();
    ctx.sql(&ddl).await.unwrap();
    let corpus: Vec<Vec<u8>> = sql_corpus()
        .into_iter()
        .filter(|s| {
            let t = String::from_utf8_lossy(s).to_uppercase();
            let t = t.trim_start();
            t.starts_with("SELECT") || t.starts_with("INSERT")
        })
        .collect();
    // The queries that plan as they are: mutations of them reach the
    // planner more often than not.
    let mut valid = Vec::new();
    for q in corpus {
        let text = String::from_utf8_lossy(&q).to_string();
        if ctx.sql(&format!("EXPLAIN {text}")).await.is_ok() {
            valid.push(q);
        }
    }
    assert!(valid.len() >= 5, "{} queries plan", valid.len());
    let corpus = valid;
    let mut rng = Rng(seed() ^ 0x9e37);
    let mut planned = 0;
    for _ in 0..rounds(300) {
        let pick = rng.below(corpus.len());
        let input = mutate(&mut rng, &corpus[pick], &corpus);
        let text = String::from_utf8_lossy(&input);
        // EXPLAIN plans and translates without starting a job.
        if ctx.sql(&format!("EXPLAIN {text}")).await.is_ok() {
            planned += 1;
        }
    }
    assert!(
        planned > rounds(300) / 20,
        "only {planned} mutated queries planned"
    );
}

/// Runs a bounded SELECT over `file` in `format`; a panic in a task fails
/// the job with a message that says so.
async fn read_all(file: &Path, format: &str, skip: bool) -> Result<(), String> {
    let mut ctx = StreamContext::default();
    let ignore = if skip { "true" } else { "false" };
    let columns = "id INT, name STRING, v BIGINT, ts TIMESTAMP(3)";
    ctx.sql(&format!(
        "CREATE TABLE t ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', \
         'format' = '{format}', '{format}.ignore-parse-errors' = '{ignore}')",
        file.display()
    ))
    .await
    .map_err(|e| e.to_string())?;
    let query = ctx
        .query("SELECT id, name, v, ts FROM t")
        .await
        .map_err(|e| e.to_string())?;
    query.collect().await.map(|_| ()).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_json_decoders_never_panic() {
    let root = common::manifest_dir();
    let csv: Vec<Vec<u8>> = ["events.csv", "bad.csv", "multiline.csv", "semicolon.csv"]
        .iter()
        .map(|f| std::fs::read(root.join("tests/data").join(f)).unwrap())
        .collect();
    let json: Vec<Vec<u8>> = vec![
        b"{\"id\": 1, \"name\": \"a\", \"v\": 10, \"ts\": \"2024-01-01 00:00:01\"}\n\
          {\"id\": 2, \"name\": null, \"v\": -5, \"ts\": \"2024-01-01 00:00:02.5\"}\n\
          {\"id\": 3, \"name\": \"c\\u00e9\", \"v\": 7}\n"
            .to_vec(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed() ^ 0xc5f);
    let mut read: std::collections::HashMap<&str, usize> = Default::default();
    let mut refused: std::collections::HashMap<&str, usize> = Default::default();
    for round in 0..rounds(40) {
        for (format, corpus) in [("csv", &csv), ("json", &json)] {
            let pick = rng.below(corpus.len());
            let input = mutate(&mut rng, &corpus[pick], corpus);
            let file = dir.path().join(format!("in-{round}.{format}"));
            std::fs::write(&file, &input).unwrap();
            for skip in [false, true] {
                match read_all(&file, format, skip).await {
                    Ok(()) => *read.entry(format).or_default() += 1,
                    Err(e) => {
                        assert!(
                            !e.contains("panic"),
                            "{format} input {:?} made a task panic: {e}",
                            String::from_utf8_lossy(&input)
                        );
                        *refused.entry(format).or_default() += 1;
                    }
                }
            }
        }
    }
    // The mutations reach the decoders: some inputs read, some refused.
    for format in ["csv", "json"] {
        assert!(
            read.get(format).copied().unwrap_or(0) > 0
                && refused.get(format).copied().unwrap_or(0) > 0,
            "{format}: {read:?} read, {refused:?} refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_metadata_decoding_never_panics() {
    // A real metadata file: a small checkpointed job's last checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().join("chk");
    let mut ctx = StreamContext::builder()
        .set("pipeline.name", "fuzz-metadata")
        .and_then(|b| b.set("execution.checkpointing.interval", "50 ms"))
        .and_then(|b| b.set("execution.checkpointing.dir", chk.to_str().unwrap()))
        .unwrap()
        .build();
    ctx.sql(
        "CREATE TABLE g (k BIGINT, v BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '2000', \
           'rows-per-second' = '10000', 'fields.k.min' = '0', 'fields.k.max' = '9');\
         CREATE TABLE o (k BIGINT, n BIGINT) WITH ('connector' = 'blackhole')",
    )
    .await
    .unwrap();
    let job = ctx
        .insert("INSERT INTO o SELECT k, COUNT(*) FROM g GROUP BY k")
        .await
        .unwrap();
    job.wait().await.unwrap();
    let metadata_file = walk(&chk)
        .into_iter()
        .find(|p| p.ends_with("_metadata"))
        .expect("a completed checkpoint");
    let good = std::fs::read(&metadata_file).unwrap();
    let original = weir::checkpoint::CheckpointMetadata::decode(&good, "fuzz").unwrap();
    let operators = original.operators.clone();
    let text = String::from_utf8(good.clone()).unwrap();
    let json = text.lines().nth(1).unwrap().as_bytes().to_vec();
    let corpus = vec![good.clone(), json.clone()];
    let mut rng = Rng(seed() ^ 0x3e7a);
    for _ in 0..rounds(3000) {
        // Raw bytes, and JSON with a checksum that matches, so the decoder
        // and the restore planner see odd metadata, not only bad sums.
        let raw = mutate(&mut rng, &good, &corpus);
        let _ = weir::checkpoint::CheckpointMetadata::decode(&raw, "fuzz");
        let body = mutate(&mut rng, &json, &corpus);
        let mut file =
            format!("WEIR-CHECKPOINT {}\n", weir::checkpoint::FORMAT_VERSION).into_bytes();
        file.extend_from_slice(&body);
        file.extend_from_slice(
            format!(
                "\nxxh64 {:016x}\n",
                weir::checkpoint::content_checksum(&body)
            )
            .as_bytes(),
        );
        if let Ok(m) = weir::checkpoint::CheckpointMetadata::decode(&file, "fuzz") {
            let plan = weir::checkpoint::plan_restore(&m, &operators);
            let _ = plan.check(false);
        }
    }
}
