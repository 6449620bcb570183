//! Printing results as the Flink SQL client does: `table` (a materialized
//! result redrawn in place), `changelog` and `tableau`; tables for `SHOW`.

use datafusion::arrow::datatypes::DataType;
use weir_engine::format::column_strings;
use weir_engine::message::{split_changes, ChangeKind};
use weir_engine::EngineError;
use weir_sql::QueryResult;

fn border(widths: &[usize]) -> String {
    let mut s = String::from("+");
    for w in widths {
        s.push_str(&"-".repeat(w + 2));
        s.push('+');
    }
    s
}

fn row_line(values: &[String], widths: &[usize], right: &[bool]) -> String {
    let mut s = String::from("|");
    for ((v, w), r) in values.iter().zip(widths).zip(right) {
        let v = fit(v, *w);
        if *r {
            s.push_str(&format!(" {v:>w$} |"));
        } else {
            s.push_str(&format!(" {v:<w$} |"));
        }
    }
    s
}

fn fit(v: &str, width: usize) -> String {
    if v.chars().count() <= width {
        v.to_string()
    } else {
        let keep: String = v.chars().take(width.saturating_sub(3)).collect();
        format!("{keep}...")
    }
}

/// Prints a small table with a row count, as the SQL client does for `SHOW`.
pub fn print_table(header: &[String], rows: &[Vec<String>]) {
    if rows.is_empty() {
        outln!("Empty set\n");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, v) in widths.iter_mut().zip(r) {
            *w = (*w).max(v.chars().count());
        }
    }
    let right = vec![false; header.len()];
    outln!("{}", border(&widths));
    outln!("{}", row_line(header, &widths, &right));
    outln!("{}", border(&widths));
    for r in rows {
        outln!("{}", row_line(r, &widths, &right));
    }
    outln!("{}", border(&widths));
    outln!(
        "{} row{} in set\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
}

fn type_width(t: &DataType) -> usize {
    match t {
        DataType::Boolean => 5,
        DataType::Int8 => 4,
        DataType::Int16 => 6,
        DataType::Int32 => 11,
        DataType::Int64 => 20,
        DataType::Float32 | DataType::Float64 => 20,
        DataType::Timestamp(_, _) => 23,
        DataType::Date32 | DataType::Date64 => 10,
        DataType::Decimal128(p, _) => *p as usize + 2,
        _ => 30,
    }
}

/// How the shell shows a query's results (`sql-client.execution.result-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultMode {
    /// A materialized result, updated in place in a full-screen view.
    Table,
    /// Every change as a row, with its kind (`+I`, `-U`, `+U`, `-D`).
    Changelog,
    /// A growing table; the change kind is shown for updating results.
    Tableau,
}

impl ResultMode {
    /// The mode a value of the key names (checked when it was set).
    pub fn parse(value: &str) -> Self {
        match value.to_ascii_lowercase().as_str() {
            "table" => ResultMode::Table,
            "changelog" => ResultMode::Changelog,
            _ => ResultMode::Tableau,
        }
    }
}

/// What [`print_query`] needs to know about where it prints.
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// How to show the rows.
    pub mode: ResultMode,
    /// Stop after this many rows (0: no limit).
    pub max_rows: usize,
    /// The widest column.
    pub max_width: usize,
    /// Typed at a terminal (else piped): Ctrl-C says "cancelled".
    pub interactive: bool,
    /// The terminal's height, for the table view.
    pub height: usize,
}

/// The columns of a result as the shell lays them out.
struct Layout {
    header: Vec<String>,
    widths: Vec<usize>,
    right: Vec<bool>,
}

impl Layout {
    fn new(schema: &datafusion::arrow::datatypes::Schema, op: bool, max_width: usize) -> Self {
        let mut layout = Layout {
            header: Vec::new(),
            widths: Vec::new(),
            right: Vec::new(),
        };
        if op {
            layout.header.push("op".into());
            layout.widths.push(2);
            layout.right.push(false);
        }
        for f in schema.fields() {
            layout.header.push(f.name().clone());
            layout.widths.push(
                f.name()
                    .len()
                    .max(type_width(f.data_type()))
                    .min(max_width.max(4)),
            );
            layout.right.push(!matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ));
        }
        layout
    }
}

/// One result row: its change kind and its values as text.
type Change = (ChangeKind, Vec<String>);

fn changes(
    batch: &datafusion::arrow::record_batch::RecordBatch,
) -> Result<Vec<Change>, EngineError> {
    let (data, ops) = split_changes(batch);
    let columns: Vec<Vec<String>> = data
        .columns()
        .iter()
        .map(column_strings)
        .collect::<Result<_, _>>()?;
    Ok((0..data.num_rows())
        .map(|row| {
            let kind = ops
                .as_ref()
                .map_or(ChangeKind::Insert, |o| ChangeKind::from_i8(o.value(row)));
            (kind, columns.iter().map(|c| c[row].clone()).collect())
        })
        .collect())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Shows a query's results as `view` says. Ctrl-C cancels the query.
pub async fn print_query(query: QueryResult, view: View) -> Result<(), EngineError> {
    match view.mode {
        ResultMode::Table if view.interactive => table_view(query, view).await,
        ResultMode::Changelog => stream_rows(query, view, true).await,
        _ => {
            let op = query.updating;
            stream_rows(query, view, op).await
        }
    }
}

/// Streams a query's rows as a growing table (with an `op` column on
/// updating queries, or always in changelog mode).
async fn stream_rows(mut query: QueryResult, view: View, op: bool) -> Result<(), EngineError> {
    let layout = Layout::new(&query.schema, op, view.max_width);
    let (widths, right) = (&layout.widths, &layout.right);
    outln!("{}", border(widths));
    outln!("{}", row_line(&layout.header, widths, right));
    outln!("{}", border(widths));
    let mut total = 0usize;
    let mut cancelled = false;
    loop {
        let next = tokio::select! {
            b = query.batches.recv() => b,
            _ = tokio::signal::ctrl_c() => {
                cancelled = true;
                None
            }
        };
        let Some(batch) = next else { break };
        for (kind, mut values) in changes(&batch)? {
            if op {
                values.insert(0, kind.short().to_string());
            }
            outln!("{}", row_line(&values, widths, right));
            total += 1;
            if view.max_rows > 0 && total >= view.max_rows {
                cancelled = true;
                break;
            }
        }
        if cancelled {
            break;
        }
    }
    if cancelled {
        query.job.cancel();
    }
    let result = query.job.wait().await;
    outln!("{}", border(widths));
    match result {
        Ok(()) => outln!("Received a total of {total} row{}\n", plural(total)),
        Err(EngineError::Cancelled) if view.interactive => {
            outln!("Query cancelled after {total} row{}.\n", plural(total))
        }
        Err(EngineError::Cancelled) => {
            outln!("Received a total of {total} row{}\n", plural(total))
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The rows of an updating result as they are now: inserts and update-afters
/// add a row, deletes and update-befores take back an equal one. Rows keep
/// the order they came in; a taken-back row leaves a hole, compacted away
/// when holes outnumber rows.
#[derive(Default)]
struct Materialized {
    rows: Vec<Option<Vec<String>>>,
    positions: std::collections::HashMap<Vec<String>, Vec<usize>>,
    live: usize,
}

impl Materialized {
    fn apply(&mut self, kind: ChangeKind, values: Vec<String>) {
        match kind {
            ChangeKind::Insert | ChangeKind::UpdateAfter => {
                self.positions
                    .entry(values.clone())
                    .or_default()
                    .push(self.rows.len());
                self.rows.push(Some(values));
                self.live += 1;
            }
            ChangeKind::UpdateBefore | ChangeKind::Delete => {
                let Some(at) = self.positions.get_mut(&values).and_then(|p| p.pop()) else {
                    return;
                };
                if self.positions.get(&values).is_some_and(|p| p.is_empty()) {
                    self.positions.remove(&values);
                }
                self.rows[at] = None;
                self.live -= 1;
                if self.rows.len() > 64 && self.live < self.rows.len() / 2 {
                    self.compact();
                }
            }
        }
    }

    fn compact(&mut self) {
        self.rows.retain(Option::is_some);
        self.positions.clear();
        for (i, row) in self.rows.iter().enumerate() {
            if let Some(values) = row {
                self.positions.entry(values.clone()).or_default().push(i);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Vec<String>> {
        self.rows.iter().flatten()
    }
}

/// How often the table view redraws.
const REFRESH: std::time::Duration = std::time::Duration::from_millis(500);

/// Flink's table mode: the result materialized and redrawn in place on the
/// terminal's alternate screen, with the row count and refresh rate, until
/// Ctrl-C returns to the prompt (the query is cancelled if still running).
async fn table_view(mut query: QueryResult, view: View) -> Result<(), EngineError> {
    let layout = Layout::new(&query.schema, false, view.max_width);
    let mut result = Materialized::default();
    let mut changes_seen = 0usize;
    let mut running = true;
    let mut outcome: Option<Result<(), EngineError>> = None;
    let mut ticker = tokio::time::interval(REFRESH);
    // The alternate screen keeps the shell's screen for the way back.
    out!("\x1b[?1049h");
    let draw = |result: &Materialized, status: &str| {
        let mut screen = String::from("\x1b[H\x1b[2J");
        let (widths, right) = (&layout.widths, &layout.right);
        screen.push_str(&format!(
            "Weir SQL table result. Refresh: {:.1} s. Rows: {}. {status}\r\n",
            REFRESH.as_secs_f64(),
            result.live
        ));
        screen.push_str(&border(widths));
        screen.push_str("\r\n");
        screen.push_str(&row_line(&layout.header, widths, right));
        screen.push_str("\r\n");
        screen.push_str(&border(widths));
        screen.push_str("\r\n");
        // Header, borders, status and the last line: what the screen has
        // room for besides the rows.
        let room = view.height.saturating_sub(7).max(1);
        for values in result.iter().take(room) {
            screen.push_str(&row_line(values, widths, right));
            screen.push_str("\r\n");
        }
        screen.push_str(&border(widths));
        screen.push_str("\r\n");
        if result.live > room {
            screen.push_str(&format!("({} more rows not shown)\r\n", result.live - room));
        }
        out!("{screen}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
    };
    draw(&result, "Press Ctrl-C to return to the prompt.");
    loop {
        tokio::select! {
            batch = query.batches.recv(), if running => match batch {
                Some(batch) => {
                    for (kind, values) in changes(&batch)? {
                        result.apply(kind, values);
                        changes_seen += 1;
                        if view.max_rows > 0 && changes_seen >= view.max_rows {
                            running = false;
                            query.job.cancel();
                        }
                    }
                }
                None => {
                    running = false;
                    let ended = query.job.wait().await;
                    let status = match &ended {
                        Ok(()) => "Query finished. Press Ctrl-C to return to the prompt.".to_string(),
                        Err(EngineError::Cancelled) => "Query stopped. Press Ctrl-C to return to the prompt.".to_string(),
                        Err(e) => format!("Query failed: {e}. Press Ctrl-C to return to the prompt."),
                    };
                    outcome = Some(ended);
                    draw(&result, &status);
                }
            },
            _ = ticker.tick(), if running => draw(&result, "Press Ctrl-C to return to the prompt."),
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    out!("\x1b[?1049l");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let outcome = match outcome {
        Some(o) => o,
        None => {
            query.job.cancel();
            query.job.wait().await
        }
    };
    match outcome {
        Ok(()) | Err(EngineError::Cancelled) => {
            outln!(
                "Table result of {} row{} ({changes_seen} change{}); back at the prompt.\n",
                result.live,
                plural(result.live),
                plural(changes_seen)
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use weir_engine::message::ChangeKind;

    use super::Materialized;

    fn rows(m: &Materialized) -> Vec<String> {
        m.iter().map(|r| r.join(",")).collect()
    }

    #[test]
    fn a_materialized_result_takes_back_retracted_rows() {
        let mut m = Materialized::default();
        let row = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        m.apply(ChangeKind::Insert, row(&["a", "1"]));
        m.apply(ChangeKind::Insert, row(&["b", "1"]));
        m.apply(ChangeKind::UpdateBefore, row(&["a", "1"]));
        m.apply(ChangeKind::UpdateAfter, row(&["a", "2"]));
        assert_eq!(rows(&m), ["b,1", "a,2"]);
        m.apply(ChangeKind::Delete, row(&["b", "1"]));
        // A retraction of a row that is not there changes nothing.
        m.apply(ChangeKind::Delete, row(&["z", "9"]));
        assert_eq!(rows(&m), ["a,2"]);
        for i in 0..200 {
            m.apply(ChangeKind::Insert, row(&["k", &i.to_string()]));
            m.apply(ChangeKind::Delete, row(&["k", &i.to_string()]));
        }
        assert_eq!(rows(&m), ["a,2"]);
        assert_eq!(m.live, 1);
    }
}
