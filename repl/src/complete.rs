//! Tab completion in the shell: SQL keywords, and the names of the
//! session's tables, views and columns.

use std::sync::{Arc, Mutex};

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

/// The words Weir's statements are made of, as the shell completes them.
const KEYWORDS: &[&str] = &[
    "ADD",
    "ALL",
    "AND",
    "AS",
    "ASC",
    "AVG",
    "BEGIN",
    "BETWEEN",
    "BIGINT",
    "BOOLEAN",
    "BY",
    "BYTES",
    "CASE",
    "CAST",
    "CATALOG",
    "CATALOGS",
    "CHECKPOINTS",
    "COLUMNS",
    "COUNT",
    "CREATE",
    "CUMULATE",
    "CURRENT",
    "DATABASE",
    "DATABASES",
    "DATE",
    "DECIMAL",
    "DESCRIBE",
    "DESCRIPTOR",
    "DISPOSE",
    "DISTINCT",
    "DOUBLE",
    "DRAIN",
    "DROP",
    "ELSE",
    "END",
    "EXECUTE",
    "EXISTS",
    "EXPLAIN",
    "FALSE",
    "FILTER",
    "FLOAT",
    "FOR",
    "FROM",
    "FUNCTIONS",
    "GROUP",
    "HAVING",
    "HELP",
    "HOP",
    "IF",
    "IN",
    "INSERT",
    "INT",
    "INTERVAL",
    "INTO",
    "IS",
    "JOB",
    "JOBS",
    "KEY",
    "LIKE",
    "MAX",
    "MIN",
    "NOT",
    "NULL",
    "ON",
    "OR",
    "PRIMARY",
    "PROCTIME",
    "QUIT",
    "RESET",
    "RESTORE",
    "ROW",
    "SAVEPOINT",
    "SECOND",
    "SELECT",
    "SET",
    "SHOW",
    "SMALLINT",
    "STATEMENT",
    "STOP",
    "STRING",
    "SUM",
    "TABLE",
    "TABLES",
    "TEMPORARY",
    "THEN",
    "TIMESTAMP",
    "TIMESTAMP_LTZ",
    "TINYINT",
    "TO",
    "TRIGGER",
    "TRUE",
    "TUMBLE",
    "USE",
    "USER",
    "VALUES",
    "VARCHAR",
    "VIEW",
    "VIEWS",
    "WATERMARK",
    "WHEN",
    "WHERE",
    "WITH",
];

/// The shell's rustyline helper. `names` is refreshed after each
/// statement with the session's tables, views and columns.
#[derive(Default)]
pub struct SqlHelper {
    pub names: Arc<Mutex<Vec<String>>>,
}

/// The candidates for the word ending at `pos`: keywords whatever their
/// case (in the case the user types), names as they are spelled.
pub fn candidates(line: &str, pos: usize, names: &[String]) -> (usize, Vec<String>) {
    let head = &line[..pos.min(line.len())];
    let start = head
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let prefix = &head[start..];
    if prefix.is_empty() {
        return (start, Vec::new());
    }
    let lower = prefix.chars().all(|c| !c.is_uppercase());
    let mut out: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with(prefix) && n.as_str() != prefix)
        .cloned()
        .collect();
    out.extend(
        KEYWORDS
            .iter()
            .filter(|k| k.len() > prefix.len() && k.starts_with(&prefix.to_uppercase()))
            .map(|k| {
                if lower {
                    k.to_lowercase()
                } else {
                    k.to_string()
                }
            }),
    );
    out.sort();
    out.dedup();
    (start, out)
}

impl Completer for SqlHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        Ok(candidates(line, pos, &names))
    }
}

impl Hinter for SqlHelper {
    type Hint = String;
}

impl Highlighter for SqlHelper {}

impl Validator for SqlHelper {}

impl Helper for SqlHelper {}

#[cfg(test)]
mod tests {
    use super::candidates;

    #[test]
    fn keywords_in_the_typed_case_and_names_as_spelled() {
        let names = vec![
            "bids".to_string(),
            "bidder".to_string(),
            "Bonus".to_string(),
        ];
        assert_eq!(
            candidates("SEL", 3, &names),
            (0, vec!["SELECT".to_string()])
        );
        assert_eq!(
            candidates("sel", 3, &names),
            (0, vec!["select".to_string()])
        );
        assert_eq!(
            candidates("SELECT * FROM bi", 16, &names),
            (
                14,
                vec![
                    "bidder".to_string(),
                    "bids".to_string(),
                    "bigint".to_string()
                ]
            )
        );
        assert_eq!(candidates("SELECT ", 7, &names), (7, vec![]));
        assert_eq!(
            candidates("x.Bo", 4, &names),
            (2, vec!["BOOLEAN".to_string(), "Bonus".to_string()])
        );
    }
}
