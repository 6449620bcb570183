//! Window table functions in `FROM`:
//! `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND [, offset]))`,
//! `HOP(…, slide, size)`, `CUMULATE(…, step, max size)`, positional or with
//! Flink's named arguments (`DATA =>`, `TIMECOL =>`, `SIZE =>`, `SLIDE =>`,
//! `STEP =>`, `OFFSET =>`).
//!
//! sqlparser does not know them, so each call is cut out of the token stream
//! and replaced by the name of a generated table (`__weir_window_<n>`) whose
//! schema is the input's plus `window_start`, `window_end` and `window_time`.
//! DataFusion plans over that table; the translator turns its scan back into
//! the input followed by a window assignment.

use datafusion::sql::sqlparser::ast::{Expr, Value};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Word};
use weir_engine::operators::window_assign::WindowKind;

use crate::error::{Result, SqlError};
use crate::parser::{dialect, position};

/// A window table function found in a query.
#[derive(Debug, Clone)]
pub struct WindowCall {
    /// The generated table name that replaced the call.
    pub table: String,
    /// The table or view the function reads (`TABLE t`).
    pub input: String,
    /// The time attribute (`DESCRIPTOR(col)`).
    pub time_column: String,
    /// Window kind and sizes.
    pub kind: WindowKind,
    /// Alignment offset in ms.
    pub offset: i64,
    /// Where the call starts, for errors.
    pub position: String,
}

fn is_word(t: &Token, kw: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
}

/// Replaces every window function call in `tokens`; `next_id` numbers the
/// generated tables.
pub fn rewrite(
    tokens: Vec<TokenWithSpan>,
    next_id: &mut usize,
) -> Result<(Vec<TokenWithSpan>, Vec<WindowCall>)> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut calls = Vec::new();
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|i| !matches!(tokens[*i].token, Token::Whitespace(_)))
        .collect();
    let mut k = 0;
    let mut copied_to = 0;
    while k < sig.len() {
        let i = sig[k];
        let matches_call = is_word(&tokens[i].token, "TABLE")
            && sig
                .get(k + 1)
                .is_some_and(|j| tokens[*j].token == Token::LParen)
            && sig.get(k + 2).is_some_and(|j| {
                ["TUMBLE", "HOP", "CUMULATE", "SESSION"]
                    .iter()
                    .any(|f| is_word(&tokens[*j].token, f))
            })
            && sig
                .get(k + 3)
                .is_some_and(|j| tokens[*j].token == Token::LParen);
        if !matches_call {
            k += 1;
            continue;
        }
        // Find the parenthesis closing `TABLE(`.
        let open = sig[k + 1];
        let mut depth = 0;
        let mut close = None;
        for (j, t) in tokens.iter().enumerate().skip(open) {
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            return Err(SqlError::Parse(format!(
                "unclosed TABLE( at {}",
                position(&tokens[i])
            )));
        };
        let func = match &tokens[sig[k + 2]].token {
            Token::Word(w) => w.value.to_uppercase(),
            _ => String::new(),
        };
        let inner = tokens[sig[k + 3] + 1..close - 1].to_vec();
        let table = format!("__weir_window_{}", *next_id);
        *next_id += 1;
        let call = parse_call(&func, inner, &table, position(&tokens[i]))?;
        calls.push(call);
        out.extend_from_slice(&tokens[copied_to..i]);
        let span = tokens[i].span;
        out.push(TokenWithSpan::new(
            Token::Word(Word {
                value: table,
                quote_style: None,
                keyword: Keyword::NoKeyword,
            }),
            span,
        ));
        // Without an alias of the user's, name the call after its input, so
        // that result columns read `max(bid.price)`, not the generated name.
        let next = tokens[close + 1..]
            .iter()
            .find(|t| !matches!(t.token, Token::Whitespace(_)));
        let aliased = next.is_some_and(|t| match &t.token {
            Token::Word(w) => {
                w.keyword == Keyword::AS
                    || w.keyword == Keyword::NoKeyword
                    || w.quote_style.is_some()
            }
            _ => false,
        });
        if !aliased {
            let alias = calls
                .last()
                .map(|c: &WindowCall| c.input.clone())
                .unwrap_or_default();
            let word = |value: String, keyword| {
                Token::Word(Word {
                    value,
                    quote_style: None,
                    keyword,
                })
            };
            out.push(TokenWithSpan::new(
                Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space),
                span,
            ));
            out.push(TokenWithSpan::new(word("AS".into(), Keyword::AS), span));
            out.push(TokenWithSpan::new(
                Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space),
                span,
            ));
            out.push(TokenWithSpan::new(
                Token::Word(Word {
                    value: alias,
                    quote_style: Some('"'),
                    keyword: Keyword::NoKeyword,
                }),
                span,
            ));
        }
        copied_to = close + 1;
        while k < sig.len() && sig[k] <= close {
            k += 1;
        }
    }
    out.extend_from_slice(&tokens[copied_to..]);
    Ok((out, calls))
}

fn parse_call(
    func: &str,
    inner: Vec<TokenWithSpan>,
    table: &str,
    position: String,
) -> Result<WindowCall> {
    if func == "SESSION" {
        return Err(SqlError::Unsupported(format!(
            "SESSION window table function (at {position}) is not supported yet"
        )));
    }
    let d = dialect();
    let mut p = Parser::new(&d).with_tokens_with_locations(inner);
    let mut named: Vec<(Option<String>, Arg)> = Vec::new();
    loop {
        let name = match (p.peek_token().token, p.peek_nth_token(1).token) {
            (Token::Word(w), Token::RArrow) => {
                p.next_token();
                p.next_token();
                Some(w.value.to_uppercase())
            }
            _ => None,
        };
        let arg = if p.parse_keyword(Keyword::TABLE) {
            Arg::Table(p.parse_object_name(false)?.to_string())
        } else if is_word(&p.peek_token().token, "DESCRIPTOR") {
            p.next_token();
            p.expect_token(&Token::LParen)?;
            let col = p.parse_identifier()?.value;
            p.expect_token(&Token::RParen)?;
            Arg::Descriptor(col)
        } else {
            Arg::Duration(interval_ms(&p.parse_expr()?, &position)?)
        };
        named.push((name, arg));
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    if p.peek_token().token != Token::EOF {
        return Err(SqlError::Parse(format!(
            "unexpected {} in {func} at {position}",
            p.peek_token().token
        )));
    }
    let positional: &[&str] = match func {
        "TUMBLE" => &["DATA", "TIMECOL", "SIZE", "OFFSET"],
        "HOP" => &["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"],
        _ => &["DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"],
    };
    let mut args = std::collections::HashMap::new();
    for (i, (name, arg)) in named.into_iter().enumerate() {
        let name = match name {
            Some(n) => n,
            None => positional
                .get(i)
                .ok_or_else(|| {
                    SqlError::Plan(format!("too many arguments to {func} at {position}"))
                })?
                .to_string(),
        };
        if !positional.contains(&name.as_str()) {
            return Err(SqlError::Plan(format!(
                "unknown argument {name} of {func} at {position}; its arguments are {}",
                positional.join(", ")
            )));
        }
        args.insert(name, arg);
    }
    let input = match args.remove("DATA") {
        Some(Arg::Table(t)) => t,
        _ => {
            return Err(SqlError::Plan(format!(
                "{func} at {position} needs its input as TABLE <name>"
            )))
        }
    };
    let time_column = match args.remove("TIMECOL") {
        Some(Arg::Descriptor(c)) => c,
        _ => {
            return Err(SqlError::Plan(format!(
                "{func} at {position} needs its time column as DESCRIPTOR(<column>)"
            )))
        }
    };
    let mut duration = |name: &str| -> Result<Option<i64>> {
        match args.remove(name) {
            Some(Arg::Duration(ms)) => Ok(Some(ms)),
            None => Ok(None),
            Some(_) => Err(SqlError::Plan(format!(
                "argument {name} of {func} at {position} must be an INTERVAL"
            ))),
        }
    };
    let need = |v: Option<i64>, name: &str| {
        v.ok_or_else(|| {
            SqlError::Plan(format!(
                "{func} at {position} is missing its {name} argument (an INTERVAL)"
            ))
        })
    };
    let kind = match func {
        "TUMBLE" => WindowKind::Tumble {
            size: need(duration("SIZE")?, "SIZE")?,
        },
        "HOP" => WindowKind::Hop {
            slide: need(duration("SLIDE")?, "SLIDE")?,
            size: need(duration("SIZE")?, "SIZE")?,
        },
        _ => WindowKind::Cumulate {
            step: need(duration("STEP")?, "STEP")?,
            max_size: need(duration("SIZE")?, "SIZE")?,
        },
    };
    let offset = duration("OFFSET")?.unwrap_or(0);
    kind.validate()
        .map_err(|m| SqlError::Plan(format!("{m} (at {position})")))?;
    Ok(WindowCall {
        table: table.to_string(),
        input,
        time_column,
        kind,
        offset,
        position,
    })
}

enum Arg {
    Table(String),
    Descriptor(String),
    Duration(i64),
}

/// Milliseconds of an `INTERVAL '10' SECOND` / `INTERVAL '1 minute'` literal.
pub fn interval_ms(expr: &Expr, position: &str) -> Result<i64> {
    let bad = || {
        SqlError::Plan(format!(
            "expected an INTERVAL literal such as INTERVAL '10' SECOND at {position}, found {expr}"
        ))
    };
    let Expr::Interval(iv) = expr else {
        return Err(bad());
    };
    let text = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.to_string(),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let unit = iv
        .leading_field
        .as_ref()
        .map(|f| f.to_string().to_uppercase());
    let (number, unit) = match unit {
        Some(u) => (text.trim().to_string(), u),
        None => {
            let mut parts = text.split_whitespace();
            let n = parts.next().unwrap_or("").to_string();
            (n, parts.next().unwrap_or("MILLISECOND").to_uppercase())
        }
    };
    let n: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim_end_matches('S');
    let ms = match unit {
        "MILLISECOND" => 1.0,
        "SECOND" => 1000.0,
        "MINUTE" => 60_000.0,
        "HOUR" => 3_600_000.0,
        "DAY" => 86_400_000.0,
        _ => return Err(bad()),
    };
    Ok((n * ms) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::split_statements;

    #[test]
    fn rewrites_positional_and_named_calls() {
        let sql = "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '10' SECOND)) JOIN \
                   TABLE(HOP(DATA => TABLE b, TIMECOL => DESCRIPTOR(t), SLIDE => INTERVAL '5' SECOND, SIZE => INTERVAL '1' MINUTE)) ON true";
        let tokens = split_statements(sql).unwrap().remove(0);
        let mut id = 0;
        let (out, calls) = rewrite(tokens, &mut id).unwrap();
        let text: String = out.iter().map(|t| t.token.to_string()).collect();
        assert_eq!(
            text,
            "SELECT * FROM __weir_window_0 AS \"bid\" JOIN __weir_window_1 AS \"b\" ON true"
        );
        assert_eq!(calls[0].kind, WindowKind::Tumble { size: 10_000 });
        assert_eq!(
            calls[1].kind,
            WindowKind::Hop {
                slide: 5_000,
                size: 60_000
            }
        );
        assert_eq!(calls[1].input, "b");
    }
}
