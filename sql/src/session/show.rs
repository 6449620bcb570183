//! Flink's catalog statements: `SHOW FUNCTIONS`, `SHOW CREATE TABLE|VIEW`,
//! `SHOW COLUMNS`, `SHOW CATALOGS|DATABASES|CURRENT …` and `USE`.
//!
//! Weir has one catalog, `default_catalog`, with one database,
//! `default_database`, as a fresh Flink session has.

use std::collections::BTreeSet;

use weir_engine::connectors::is_secret;

use super::{Session, StatementResult};
use crate::catalog::flink_type_name;
use crate::error::{Result, SqlError};

/// The catalog and database every table of a session is in.
pub const CATALOG: &str = "default_catalog";
/// See [`CATALOG`].
pub const DATABASE: &str = "default_database";

fn one_column(header: &str, rows: impl IntoIterator<Item = String>) -> StatementResult {
    StatementResult::Table {
        header: vec![header.to_string()],
        rows: rows.into_iter().map(|r| vec![r]).collect(),
    }
}

/// Flink quotes identifiers with backticks in generated DDL.
fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// SQL's `LIKE`: `%` any run of characters, `_` one character.
fn like(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Positions in the pattern reachable after each prefix of the text.
    let mut states = vec![false; p.len() + 1];
    states[0] = true;
    let close = |states: &mut Vec<bool>| {
        for i in 0..p.len() {
            if states[i] && p[i] == '%' {
                states[i + 1] = true;
            }
        }
    };
    close(&mut states);
    for c in t {
        let mut next = vec![false; p.len() + 1];
        for i in 0..p.len() {
            if !states[i] {
                continue;
            }
            match p[i] {
                '%' => next[i] = true,
                '_' => next[i + 1] = true,
                x if x == c => next[i + 1] = true,
                _ => {}
            }
        }
        close(&mut next);
        states = next;
    }
    states[p.len()]
}

impl Session {
    pub(super) fn show_functions(&self, user: bool) -> StatementResult {
        let names: BTreeSet<String> = if user {
            self.user_functions.clone()
        } else {
            let state = self.ctx.state();
            state
                .scalar_functions()
                .keys()
                .chain(state.aggregate_functions().keys())
                .chain(state.window_functions().keys())
                .cloned()
                .chain(self.user_functions.iter().cloned())
                .collect()
        };
        one_column("function name", names)
    }

    pub(super) fn show_create(&self, name: &str, view: bool) -> Result<StatementResult> {
        match (view, self.tables.get(name), self.view_sql.get(name)) {
            (false, Some(t), _) => {
                let mut lines: Vec<String> = t
                    .columns
                    .iter()
                    .map(|c| match &c.computed {
                        Some(expr) => format!("  {} AS {expr}", quoted(c.field.name())),
                        None => format!(
                            "  {} {}{}",
                            quoted(c.field.name()),
                            flink_type_name(c.field.data_type()),
                            if c.field.is_nullable() { "" } else { " NOT NULL" }
                        ),
                    })
                    .collect();
                if let Some((column, expr)) = &t.watermark {
                    lines.push(format!("  WATERMARK FOR {} AS {expr}", quoted(column)));
                }
                if !t.primary_key.is_empty() {
                    let keys: Vec<String> = t.primary_key.iter().map(|k| quoted(k)).collect();
                    lines.push(format!("  PRIMARY KEY ({}) NOT ENFORCED", keys.join(", ")));
                }
                let options: Vec<String> = t
                    .options
                    .iter()
                    .map(|(k, v)| {
                        let v = if is_secret(k) { "******" } else { v.as_str() };
                        format!("  '{k}' = '{}'", v.replace('\'', "''"))
                    })
                    .collect();
                Ok(StatementResult::Text(format!(
                    "CREATE TABLE {}.{}.{} (\n{}\n) WITH (\n{}\n)\n",
                    quoted(CATALOG),
                    quoted(DATABASE),
                    quoted(name),
                    lines.join(",\n"),
                    options.join(",\n")
                )))
            }
            (true, _, Some(sql)) => Ok(StatementResult::Text(format!(
                "CREATE VIEW {}.{}.{} AS\n{}\n",
                quoted(CATALOG),
                quoted(DATABASE),
                quoted(name),
                sql.trim()
            ))),
            (false, None, Some(_)) => Err(SqlError::Plan(format!(
                "SHOW CREATE TABLE is only for tables, but '{name}' is a view: use SHOW CREATE VIEW {name}"
            ))),
            (true, Some(_), None) => Err(SqlError::Plan(format!(
                "SHOW CREATE VIEW is only for views, but '{name}' is a table: use SHOW CREATE TABLE {name}"
            ))),
            _ => Err(SqlError::Plan(format!("table or view '{name}' does not exist"))),
        }
    }

    pub(super) fn show_columns(
        &self,
        name: &str,
        pattern: Option<&(String, bool)>,
    ) -> Result<StatementResult> {
        let StatementResult::Table { header, rows } = self.describe(name)? else {
            return Err(SqlError::Engine(weir_engine::EngineError::Internal(
                "DESCRIBE gave no table".into(),
            )));
        };
        let rows = rows
            .into_iter()
            .filter(|row| match (pattern, row.first()) {
                (Some((p, negated)), Some(column)) => like(p, column) != *negated,
                _ => true,
            })
            .collect();
        Ok(StatementResult::Table { header, rows })
    }

    pub(super) fn show_catalog_items(&self, what: &str) -> StatementResult {
        match what {
            "catalogs" => one_column("catalog name", [CATALOG.to_string()]),
            "databases" => one_column("database name", [DATABASE.to_string()]),
            "current catalog" => one_column("current catalog name", [CATALOG.to_string()]),
            _ => one_column("current database name", [DATABASE.to_string()]),
        }
    }

    pub(super) fn use_namespace(&self, name: &str, catalog: bool) -> Result<StatementResult> {
        let ok = if catalog {
            name == CATALOG
        } else {
            name == DATABASE || name == format!("{CATALOG}.{DATABASE}")
        };
        if ok {
            return Ok(StatementResult::Done("Execute statement succeeded.".into()));
        }
        Err(SqlError::Plan(if catalog {
            format!(
                "a catalog with name '{name}' does not exist: Weir has one catalog, '{CATALOG}'"
            )
        } else {
            format!(
                "a database with name '{name}' does not exist in catalog '{CATALOG}': it has one database, '{DATABASE}'"
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like("a%", "abc"));
        assert!(like("%c", "abc"));
        assert!(like("a_c", "abc"));
        assert!(like("%", ""));
        assert!(!like("a_", "abc"));
        assert!(!like("b%", "abc"));
        assert!(like("%b%", "abc"));
        assert!(like("a%%c", "ac"));
    }
}
