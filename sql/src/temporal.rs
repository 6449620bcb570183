//! `FOR SYSTEM_TIME AS OF`: the right side of a temporal join, as Flink
//! writes it —
//! `FROM orders o JOIN rates FOR SYSTEM_TIME AS OF o.order_time AS r ON o.currency = r.currency`.
//!
//! sqlparser reads the clause only in other dialects and DataFusion would
//! drop it, so it is cut from the tokens ([`cut`]) and, once the statement
//! is parsed, put back as a condition of its join ([`attach`]): the call
//! `__weir_system_time_as_of(o.order_time, r.<version time>)`, ANDed to the
//! `ON` condition. The call names a column of each side, so DataFusion keeps
//! the condition on the join (it can push it to neither input) and keeps
//! both columns, and it travels with the plan into views. The translator
//! takes it out of the join's condition again and plans a temporal join
//! (see `translate::temporal`); anywhere else it is an error.

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, plan_err, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr as LogicalExpr, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, JoinConstraint, JoinOperator, Select, Spanned, Statement, TableFactor,
    TableWithJoins, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Whitespace};

use crate::error::{Result, SqlError};
use crate::parser::{dialect, position};

/// The marker function's name.
pub const MARKER: &str = "__weir_system_time_as_of";

/// One `FOR SYSTEM_TIME AS OF <column>` cut from a statement.
#[derive(Debug, Clone)]
pub struct AsOf {
    /// Where the versioned table's name starts.
    table_at: Location,
    /// The table or view name, as written.
    table: String,
    /// The left side's time attribute, as written (`o.order_time`).
    time: String,
    /// Where `FOR` is, for errors.
    position: String,
}

fn is_word(t: &Token, kw: Keyword) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.keyword == kw)
}

fn is_word_text(t: &Token, text: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(text))
}

/// Cuts every `FOR SYSTEM_TIME AS OF <column>` out of `tokens`.
pub fn cut(tokens: Vec<TokenWithSpan>) -> Result<(Vec<TokenWithSpan>, Vec<AsOf>)> {
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|i| !matches!(tokens[*i].token, Token::Whitespace(_)))
        .collect();
    let at = |k: usize| sig.get(k).map(|i| &tokens[*i].token);
    let mut found = Vec::new();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut k = 0;
    while k < sig.len() {
        let clause = at(k).is_some_and(|t| is_word(t, Keyword::FOR))
            && at(k + 1).is_some_and(|t| is_word_text(t, "SYSTEM_TIME"))
            && at(k + 2).is_some_and(|t| is_word(t, Keyword::AS))
            && at(k + 3).is_some_and(|t| is_word(t, Keyword::OF));
        if !clause {
            k += 1;
            continue;
        }
        let for_token = &tokens[sig[k]];
        let here = position(for_token);
        // The table's name: `name` or `catalog.db.name` just before.
        let mut first = k;
        while first > 0 && matches!(at(first - 1), Some(Token::Word(_))) {
            first -= 1;
            if first >= 2 && at(first - 1) == Some(&Token::Period) {
                first -= 1;
            } else {
                break;
            }
        }
        if first == k || matches!(at(first), Some(Token::Period)) {
            return Err(SqlError::Parse(format!(
                "FOR SYSTEM_TIME AS OF at {here} must follow the name of a table or view"
            )));
        }
        let table: String = tokens[sig[first]..sig[k]]
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .map(|t| t.token.to_string())
            .collect();
        // The time: `column` or `alias.column`.
        let mut last = k + 4;
        if !matches!(at(last), Some(Token::Word(_))) {
            return Err(SqlError::Parse(format!(
                "FOR SYSTEM_TIME AS OF at {here} takes a time attribute column of the left table (such as o.order_time)"
            )));
        }
        while at(last + 1) == Some(&Token::Period) && matches!(at(last + 2), Some(Token::Word(_))) {
            last += 2;
        }
        if matches!(
            at(last + 1),
            Some(Token::SingleQuotedString(_) | Token::LParen | Token::Plus | Token::Minus)
        ) {
            return Err(SqlError::Unsupported(format!(
                "FOR SYSTEM_TIME AS OF at {here} with an expression: it takes a time attribute column of the left table (such as o.order_time)"
            )));
        }
        let time: String = (k + 4..=last)
            .map(|j| tokens[sig[j]].token.to_string())
            .collect();
        found.push(AsOf {
            table_at: tokens[sig[first]].span.start,
            table,
            time,
            position: here,
        });
        cuts.push((sig[k], sig[last]));
        k = last + 1;
    }
    if cuts.is_empty() {
        return Ok((tokens, found));
    }
    let mut out = Vec::with_capacity(tokens.len());
    let mut next = 0;
    for (from, to) in cuts {
        out.extend_from_slice(&tokens[next..from]);
        out.push(TokenWithSpan::new(
            Token::Whitespace(Whitespace::Space),
            tokens[from].span,
        ));
        next = to + 1;
    }
    out.extend_from_slice(&tokens[next..]);
    Ok((out, found))
}

/// Puts each cut clause back as a condition of the join whose right side
/// its table is. `version_time(table)` names the column of the table (or
/// view) that the call refers to on the right: its event-time attribute,
/// or any column when it has none (processing time needs none).
pub fn attach(
    statement: &mut Statement,
    cuts: &[AsOf],
    version_time: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    if cuts.is_empty() {
        return Ok(());
    }
    let mut visitor = Attach {
        cuts,
        version_time,
        attached: vec![false; cuts.len()],
    };
    if let ControlFlow::Break(e) = statement.visit(&mut visitor) {
        return Err(e);
    }
    if let Some(i) = visitor.attached.iter().position(|a| !a) {
        return Err(SqlError::Plan(format!(
            "FOR SYSTEM_TIME AS OF at {}: the versioned table '{}' must be the right side of a JOIN … ON (a temporal join)",
            cuts[i].position, cuts[i].table
        )));
    }
    Ok(())
}

struct Attach<'a> {
    cuts: &'a [AsOf],
    version_time: &'a dyn Fn(&str) -> Option<String>,
    attached: Vec<bool>,
}

impl Attach<'_> {
    fn cut_of(&self, factor: &TableFactor) -> Option<usize> {
        let TableFactor::Table { name, .. } = factor else {
            return None;
        };
        let start = name.span().start;
        self.cuts.iter().position(|c| c.table_at == start)
    }

    fn walk(&mut self, from: &mut TableWithJoins) -> ControlFlow<SqlError> {
        if let Some(i) = self.cut_of(&from.relation) {
            return ControlFlow::Break(SqlError::Plan(format!(
                "FOR SYSTEM_TIME AS OF at {}: the versioned table '{}' must be the right side of a JOIN, not its left",
                self.cuts[i].position, self.cuts[i].table
            )));
        }
        if let TableFactor::NestedJoin {
            table_with_joins, ..
        } = &mut from.relation
        {
            self.walk(table_with_joins)?;
        }
        for join in &mut from.joins {
            if let TableFactor::NestedJoin {
                table_with_joins, ..
            } = &mut join.relation
            {
                self.walk(table_with_joins)?;
            }
            let Some(i) = self.cut_of(&join.relation) else {
                continue;
            };
            let cut = &self.cuts[i];
            let qualifier = match &join.relation {
                TableFactor::Table {
                    alias: Some(alias), ..
                } => alias.name.to_string(),
                TableFactor::Table { name, .. } => {
                    name.0.last().map(|p| p.to_string()).unwrap_or_default()
                }
                _ => String::new(),
            };
            let right = (self.version_time)(&cut.table)
                .map(|c| format!(", {qualifier}.\"{}\"", c.replace('"', "\"\"")))
                .unwrap_or_default();
            let call = format!("{MARKER}({}{right})", cut.time);
            let d = dialect();
            let marker = match Parser::new(&d)
                .try_with_sql(&call)
                .and_then(|mut p| p.parse_expr())
            {
                Ok(m) => m,
                Err(e) => {
                    return ControlFlow::Break(SqlError::Parse(format!(
                        "FOR SYSTEM_TIME AS OF at {}: {e}",
                        cut.position
                    )))
                }
            };
            let constraint = match &mut join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c) => c,
                _ => {
                    return ControlFlow::Break(SqlError::Unsupported(format!(
                        "a temporal join (FOR SYSTEM_TIME AS OF at {}) of this kind: it is JOIN or LEFT JOIN … ON",
                        cut.position
                    )))
                }
            };
            match constraint {
                JoinConstraint::On(on) => {
                    let condition = std::mem::replace(on, Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
                    *on = Expr::BinaryOp {
                        left: Box::new(Expr::Nested(Box::new(condition))),
                        op: BinaryOperator::And,
                        right: Box::new(marker),
                    };
                }
                _ => {
                    return ControlFlow::Break(SqlError::Plan(format!(
                        "a temporal join (FOR SYSTEM_TIME AS OF at {}) needs an ON condition with the join keys",
                        cut.position
                    )))
                }
            }
            self.attached[i] = true;
        }
        ControlFlow::Continue(())
    }
}

impl VisitorMut for Attach<'_> {
    type Break = SqlError;

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<SqlError> {
        for from in &mut select.from {
            self.walk(from)?;
        }
        ControlFlow::Continue(())
    }
}

/// If `e` is the marker call: the left time and the right column it names.
pub fn marker_args(e: &LogicalExpr) -> Option<&[LogicalExpr]> {
    match e {
        LogicalExpr::ScalarFunction(f) if f.name() == MARKER => Some(&f.args),
        _ => None,
    }
}

/// The marker as a function DataFusion can plan; it never runs (the
/// translator removes it), and says so if it would.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct AsOfMarker {
    signature: Signature,
}

impl AsOfMarker {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for AsOfMarker {
    fn name(&self) -> &str {
        MARKER
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        if args.is_empty() {
            return plan_err!("FOR SYSTEM_TIME AS OF needs a time attribute");
        }
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        exec_err!("FOR SYSTEM_TIME AS OF is only meaningful in a temporal join")
    }
}

/// The marker function, for registration.
pub(crate) fn marker_udf() -> datafusion::logical_expr::ScalarUDF {
    datafusion::logical_expr::ScalarUDF::from(AsOfMarker::new())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn statement(sql: &str) -> Result<String> {
        let tokens = Tokenizer::new(&dialect(), sql)
            .tokenize_with_location()
            .unwrap();
        let (tokens, cuts) = cut(tokens)?;
        let d = dialect();
        let mut s = Parser::new(&d)
            .with_tokens_with_locations(tokens)
            .parse_statement()
            .unwrap();
        attach(&mut s, &cuts, &|t| Some(format!("{t}_ts")))?;
        Ok(s.to_string())
    }

    #[test]
    fn the_clause_becomes_a_condition_of_its_join() {
        let s = statement(
            "SELECT * FROM orders AS o JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.c = r.c",
        )
        .unwrap();
        assert!(
            s.contains(
                r#"JOIN rates AS r ON (o.c = r.c) AND __weir_system_time_as_of(o.ts, r."rates_ts")"#
            ),
            "{s}"
        );
        // Without an alias the table name qualifies; LEFT JOIN and views' queries too.
        let s = statement(
            "SELECT * FROM o LEFT JOIN db.rates FOR SYSTEM_TIME AS OF p ON o.c = rates.c",
        )
        .unwrap();
        assert!(
            s.contains(r#"LEFT JOIN db.rates ON (o.c = rates.c) AND __weir_system_time_as_of(p, rates."db.rates_ts")"#),
            "{s}"
        );
    }

    #[test]
    fn misplaced_clauses_are_errors_with_their_position() {
        let e = statement("SELECT * FROM rates FOR SYSTEM_TIME AS OF o.ts").unwrap_err();
        assert!(e.to_string().contains("line 1, column 21"), "{e}");
        assert!(e.to_string().contains("right side of a JOIN"), "{e}");
        let e = statement("SELECT * FROM o JOIN (SELECT 1) FOR SYSTEM_TIME AS OF o.ts ON true")
            .unwrap_err();
        assert!(e.to_string().contains("must follow the name"), "{e}");
        let e =
            statement("SELECT * FROM o JOIN r FOR SYSTEM_TIME AS OF 1 ON o.k = r.k").unwrap_err();
        assert!(e.to_string().contains("time attribute column"), "{e}");
        let e =
            statement("SELECT * FROM o JOIN r FOR SYSTEM_TIME AS OF o.t USING (k)").unwrap_err();
        assert!(e.to_string().contains("needs an ON condition"), "{e}");
    }
}
