//! The names Flink gives to select items without an alias, applied to the
//! parsed statement before DataFusion plans it.
//!
//! Flink (through Calcite) names an unaliased column reference after the
//! column, a nested field (`bid.price`) after the field, and anything else
//! `EXPR$<i>`, `i` being the item's position in the select list. A name
//! that an earlier item of the same list already has gets the first free
//! numeric suffix (`x`, `x0`, `x1`, …), so `SELECT x, x` is a valid query
//! with columns `x` and `x0`. DataFusion would name these `g.x + Int64(1)`
//! or `count(*)` and refuse duplicates; aliasing every item up front gives
//! Flink's names everywhere a result, a view or a sink's columns show.

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, Select, SelectItem, SetExpr, Statement, TableFactor, TableWithJoins,
};

/// Names the unaliased select items of the statement's queries (top level,
/// derived tables and set operations), as Flink does.
pub fn name_select_items(statement: &mut Statement) {
    match statement {
        Statement::Query(query) => name_query(query),
        Statement::Insert(insert) => {
            if let Some(source) = insert.source.as_mut() {
                name_query(source);
            }
        }
        _ => {}
    }
}

fn name_query(query: &mut Query) {
    name_set_expr(&mut query.body);
}

fn name_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => name_select(select),
        SetExpr::Query(query) => name_query(query),
        SetExpr::SetOperation { left, right, .. } => {
            name_set_expr(left);
            name_set_expr(right);
        }
        _ => {}
    }
}

fn name_from(from: &mut [TableWithJoins]) {
    for table in from {
        name_factor(&mut table.relation);
        for join in &mut table.joins {
            name_factor(&mut join.relation);
        }
    }
}

fn name_factor(factor: &mut TableFactor) {
    match factor {
        TableFactor::Derived { subquery, .. } => name_query(subquery),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => name_from(std::slice::from_mut(table_with_joins)),
        _ => {}
    }
}

/// The name Flink derives for an unaliased item at `position`.
fn derived_name(expr: &Expr, position: usize) -> String {
    match expr {
        Expr::Identifier(ident) => ident.value.clone(),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map_or_else(|| format!("EXPR${position}"), |p| p.value.clone()),
        _ => format!("EXPR${position}"),
    }
}

/// `name`, or with the first numeric suffix that makes it unused.
fn uniquify(name: String, taken: &mut HashSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    let unique = (0..)
        .map(|n| format!("{name}{n}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or(name);
    taken.insert(unique.clone());
    unique
}

fn name_select(select: &mut Select) {
    name_from(&mut select.from);
    let mut taken: HashSet<String> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            _ => None,
        })
        .collect();
    for (position, item) in select.projection.iter_mut().enumerate() {
        if let SelectItem::UnnamedExpr(expr) = item {
            let name = uniquify(derived_name(expr, position), &mut taken);
            *item = SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias: Ident::new(name),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::name_select_items;

    fn named(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&GenericDialect {}, sql).expect("valid SQL");
        name_select_items(&mut statements[0]);
        statements[0].to_string()
    }

    #[test]
    fn columns_fields_and_expressions_get_flinks_names() {
        assert_eq!(
            named("SELECT x, t.y, bid.price, x + 1, COUNT(*) AS n FROM t"),
            "SELECT x AS x, t.y AS y, bid.price AS price, x + 1 AS EXPR$3, COUNT(*) AS n FROM t"
        );
    }

    #[test]
    fn duplicate_names_get_a_suffix() {
        assert_eq!(
            named("SELECT x, x, x FROM t"),
            "SELECT x AS x, x AS x0, x AS x1 FROM t"
        );
        assert_eq!(
            named("SELECT a AS x0, x, x FROM t"),
            "SELECT a AS x0, x AS x, x AS x1 FROM t"
        );
    }

    #[test]
    fn inserts_and_derived_tables_are_named_too() {
        assert_eq!(
            named("INSERT INTO o SELECT k, n FROM (SELECT k, COUNT(*) FROM t GROUP BY k)"),
            "INSERT INTO o SELECT k AS k, n AS n FROM (SELECT k AS k, COUNT(*) AS EXPR$1 FROM t GROUP BY k)"
        );
    }
}
