//! Printing results like the Flink SQL client's tableau mode.

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
        println!("Empty set\n");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, v) in widths.iter_mut().zip(r) {
            *w = (*w).max(v.chars().count());
        }
    }
    let right = vec![false; header.len()];
    println!("{}", border(&widths));
    println!("{}", row_line(header, &widths, &right));
    println!("{}", border(&widths));
    for r in rows {
        println!("{}", row_line(r, &widths, &right));
    }
    println!("{}", border(&widths));
    println!(
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

/// Streams a query's rows as a growing table (with an `op` column on
/// updating queries). Ctrl-C cancels the query.
pub async fn print_query(
    mut query: QueryResult,
    max_rows: usize,
    max_width: usize,
    interactive: bool,
) -> Result<(), EngineError> {
    let schema = query.schema.clone();
    let mut header: Vec<String> = Vec::new();
    let mut widths: Vec<usize> = Vec::new();
    let mut right: Vec<bool> = Vec::new();
    if query.updating {
        header.push("op".into());
        widths.push(2);
        right.push(false);
    }
    for f in schema.fields() {
        header.push(f.name().clone());
        widths.push(
            f.name()
                .len()
                .max(type_width(f.data_type()))
                .min(max_width.max(4)),
        );
        right.push(!matches!(
            f.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ));
    }
    println!("{}", border(&widths));
    println!("{}", row_line(&header, &widths, &right));
    println!("{}", border(&widths));
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
        let (data, ops) = split_changes(&batch);
        let columns: Vec<Vec<String>> = data
            .columns()
            .iter()
            .map(column_strings)
            .collect::<Result<_, _>>()?;
        for row in 0..data.num_rows() {
            let mut values = Vec::with_capacity(header.len());
            if query.updating {
                let kind = ops
                    .as_ref()
                    .map_or(ChangeKind::Insert, |o| ChangeKind::from_i8(o.value(row)));
                values.push(kind.short().to_string());
            }
            values.extend(columns.iter().map(|c| c[row].clone()));
            println!("{}", row_line(&values, &widths, &right));
            total += 1;
            if max_rows > 0 && total >= max_rows {
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
    println!("{}", border(&widths));
    match result {
        Ok(()) => println!(
            "Received a total of {total} row{}\n",
            if total == 1 { "" } else { "s" }
        ),
        Err(EngineError::Cancelled) => {
            if interactive {
                println!(
                    "Query cancelled after {total} row{}.\n",
                    if total == 1 { "" } else { "s" }
                )
            } else {
                println!(
                    "Received a total of {total} row{}\n",
                    if total == 1 { "" } else { "s" }
                )
            }
        }
        Err(e) => return Err(e),
    }
    Ok(())
}
