//! Flink's query hints that Weir reads: `/*+ STATE_TTL('alias' = '1h', …) */`
//! after `SELECT` sets how long a regular join keeps the rows of the input
//! named by that alias (or table), instead of `table.exec.state.ttl`.
//! Other hints are ignored, as comments.

use std::collections::HashMap;
use std::time::Duration;

use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

use crate::error::{Result, SqlError};

/// The `STATE_TTL` hints of a statement, by alias.
pub fn state_ttl_hints(tokens: &[TokenWithSpan]) -> Result<HashMap<String, Duration>> {
    let mut hints = HashMap::new();
    for t in tokens {
        let Token::Whitespace(Whitespace::MultiLineComment(text)) = &t.token else {
            continue;
        };
        let Some(hint) = text.strip_prefix('+') else {
            continue;
        };
        let hint = hint.trim();
        let Some(args) = hint
            .get(..9)
            .filter(|h| h.eq_ignore_ascii_case("STATE_TTL"))
            .map(|_| hint[9..].trim())
        else {
            continue;
        };
        let inner = args
            .strip_prefix('(')
            .and_then(|a| a.strip_suffix(')'))
            .ok_or_else(|| bad(hint, "expected STATE_TTL('alias' = 'duration', …)"))?;
        for pair in inner.split(',').filter(|p| !p.trim().is_empty()) {
            let (alias, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(hint, "expected 'alias' = 'duration'"))?;
            let unquote = |s: &str| s.trim().trim_matches('\'').to_string();
            let (alias, value) = (unquote(alias), unquote(value));
            let ttl = weir_engine::config::parse_duration(&value)
                .map_err(|e| bad(hint, &format!("the TTL of '{alias}': {e}")))?;
            hints.insert(alias, ttl);
        }
    }
    Ok(hints)
}

fn bad(hint: &str, why: &str) -> SqlError {
    SqlError::Plan(format!("hint /*+ {hint} */: {why}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn hints(sql: &str) -> Result<HashMap<String, Duration>> {
        let tokens = Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .unwrap();
        state_ttl_hints(&tokens)
    }

    #[test]
    fn state_ttl_hints_are_read_by_alias_and_bad_ones_are_errors() {
        let h =
            hints("SELECT /*+ STATE_TTL('o' = '1h', 'c' = '2 d') */ * FROM o JOIN c ON o.k = c.k")
                .unwrap();
        assert_eq!(h["o"], Duration::from_secs(3600));
        assert_eq!(h["c"], Duration::from_secs(2 * 86_400));
        assert!(hints("SELECT /* STATE_TTL('o' = '1h') */ 1")
            .unwrap()
            .is_empty());
        assert!(hints("SELECT /*+ BROADCAST(o) */ 1").unwrap().is_empty());
        let err = hints("SELECT /*+ STATE_TTL('o' = 'soon') */ 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'soon'") && err.contains("'o'"), "{err}");
    }
}
