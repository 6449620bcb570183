//! How deeply a statement's expressions may nest.
//!
//! Parsing, planning, optimizing and evaluating an expression all recurse
//! over its tree, so a generated `1 + 1 + … + 1` of thousands of terms
//! would overflow a thread's stack and abort the process. Such a statement
//! is refused before anything recursive looks at it, with a message that
//! says how deep it is. The walk itself stops one level past the limit, so
//! it never goes deeper than that either.

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Query, Select, SelectItem,
    SetExpr, Statement, TableFactor, TableWithJoins,
};

use crate::error::{Result, SqlError};

/// The deepest expression a statement may hold. Real queries stay far
/// below it (a `CASE` with many branches or a long `IN` list is wide, not
/// deep); generated chains of operators reach it.
pub const MAX_EXPRESSION_DEPTH: usize = 200;

/// Refuses a statement with an expression nested deeper than
/// [`MAX_EXPRESSION_DEPTH`].
pub fn check_depth(statement: &Statement) -> Result<()> {
    let deepest = match statement {
        Statement::Query(q) => query_depth(q),
        Statement::Insert(insert) => insert.source.as_deref().map_or(0, query_depth),
        _ => 0,
    };
    if deepest > MAX_EXPRESSION_DEPTH {
        return Err(SqlError::Unsupported(format!(
            "an expression nested more than {MAX_EXPRESSION_DEPTH} levels deep (a chain of {MAX_EXPRESSION_DEPTH} or more operators or calls); split it, for example into a view of partial results"
        )));
    }
    Ok(())
}

fn query_depth(query: &Query) -> usize {
    set_depth(&query.body)
}

fn set_depth(body: &SetExpr) -> usize {
    match body {
        SetExpr::Select(select) => select_depth(select),
        SetExpr::Query(query) => query_depth(query),
        SetExpr::SetOperation { left, right, .. } => set_depth(left).max(set_depth(right)),
        _ => 0,
    }
}

fn from_depth(from: &[TableWithJoins]) -> usize {
    from.iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
        .map(|factor| match factor {
            TableFactor::Derived { subquery, .. } => query_depth(subquery),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

fn select_depth(select: &Select) -> usize {
    let items = select.projection.iter().filter_map(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    });
    let group = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs.iter().collect::<Vec<_>>(),
        GroupByExpr::All(_) => Vec::new(),
    };
    items
        .chain(select.selection.iter())
        .chain(select.having.iter())
        .chain(group)
        .map(|e| depth(e, 1))
        .max()
        .unwrap_or(0)
        .max(from_depth(&select.from))
}

/// The depth of `expr`, found at `level`; stops descending past the limit.
fn depth(expr: &Expr, level: usize) -> usize {
    if level > MAX_EXPRESSION_DEPTH {
        return level;
    }
    let next = level + 1;
    let deepest = |exprs: &mut dyn Iterator<Item = &Expr>| {
        exprs.map(|e| depth(e, next)).max().unwrap_or(level)
    };
    match expr {
        Expr::BinaryOp { left, right, .. } => deepest(&mut [&**left, &**right].into_iter()),
        Expr::UnaryOp { expr, .. }
        | Expr::Nested(expr)
        | Expr::Cast { expr, .. }
        | Expr::IsNull(expr)
        | Expr::IsNotNull(expr)
        | Expr::IsTrue(expr)
        | Expr::IsFalse(expr)
        | Expr::IsNotTrue(expr)
        | Expr::IsNotFalse(expr) => depth(expr, next),
        Expr::Between {
            expr, low, high, ..
        } => deepest(&mut [&**expr, &**low, &**high].into_iter()),
        Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
            deepest(&mut [&**expr, &**pattern].into_iter())
        }
        Expr::InList { expr, list, .. } => {
            deepest(&mut std::iter::once(&**expr).chain(list.iter()))
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => deepest(
            &mut operand
                .as_deref()
                .into_iter()
                .chain(conditions.iter().flat_map(|w| [&w.condition, &w.result]))
                .chain(else_result.as_deref()),
        ),
        Expr::Function(f) => match &f.args {
            FunctionArguments::List(list) => {
                deepest(&mut list.args.iter().filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                    | FunctionArg::Named {
                        arg: FunctionArgExpr::Expr(e),
                        ..
                    }
                    | FunctionArg::ExprNamed {
                        arg: FunctionArgExpr::Expr(e),
                        ..
                    } => Some(e),
                    _ => None,
                }))
            }
            _ => level,
        },
        _ => level,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::{check_depth, MAX_EXPRESSION_DEPTH};

    fn check(sql: &str) -> Result<(), String> {
        let statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| e.to_string())?;
        check_depth(&statements[0]).map_err(|e| e.to_string())
    }

    #[test]
    fn long_chains_are_refused_and_wide_expressions_are_not() {
        let chain = |n: usize| vec!["x"; n].join(" + ");
        assert!(check(&format!("SELECT {} FROM t", chain(MAX_EXPRESSION_DEPTH))).is_ok());
        let err = check(&format!("SELECT {} FROM t", chain(4000))).unwrap_err();
        assert!(err.contains("nested more than 200 levels"), "{err}");
        let err = check(&format!(
            "INSERT INTO o SELECT a FROM t WHERE {} > 1",
            chain(500)
        ));
        assert!(err.is_err());
        let err = check(&format!("SELECT UPPER({}) FROM t", chain(500)));
        assert!(err.is_err());
        let wide = (0..2000)
            .map(|i| format!("WHEN x = {i} THEN {i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(check(&format!("SELECT CASE {wide} END FROM t")).is_ok());
        let list = (0..5000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        assert!(check(&format!("SELECT x FROM t WHERE x IN ({list})")).is_ok());
    }
}
