//! `Join`: a regular join on the equality keys DataFusion extracted, with
//! the rest of the condition as a residual filter. Both inputs are
//! hash-partitioned by their keys (cast to one type, so equal keys hash
//! alike).
//!
//! The output is insert-only for inner and semi joins of insert-only
//! inputs and a changelog otherwise (outer and anti joins take back the
//! rows they emitted for a missing match), as Flink decides; a regular
//! join's output has no time attribute, so no window can follow it.

use std::sync::Arc;

use datafusion::common::{DFSchema, NullEquality};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, Join, JoinType, LogicalPlan};
use weir_engine::graph::{Exchange, NodeKind};
use weir_engine::operators::join::interval::IntervalJoinSpec;
use weir_engine::operators::join::regular::RegularJoinSpec;
use weir_engine::operators::join::JoinKind;
use weir_engine::operators::OperatorFactory;

use super::interval::IntervalBounds;
use super::{arrow_schema, Stream, Translator};
use crate::error::{Result, SqlError};
use crate::temporal::marker_args;

/// Each side's join key expressions.
pub(crate) type JoinKeys = [Vec<Arc<dyn datafusion::physical_expr::PhysicalExpr>>; 2];

fn join_kind(join_type: JoinType) -> Result<JoinKind> {
    Ok(match join_type {
        JoinType::Inner => JoinKind::Inner,
        JoinType::Left => JoinKind::Left,
        JoinType::Right => JoinKind::Right,
        JoinType::Full => JoinKind::Full,
        JoinType::LeftSemi => JoinKind::LeftSemi,
        JoinType::LeftAnti => JoinKind::LeftAnti,
        JoinType::RightSemi => JoinKind::RightSemi,
        JoinType::RightAnti => JoinKind::RightAnti,
        JoinType::LeftMark | JoinType::RightMark => {
            return Err(SqlError::Unsupported(
                "EXISTS or IN subqueries under OR (a mark join); write them as separate queries combined with UNION ALL".into(),
            ))
        }
    })
}

/// A window join: both inputs carry the window columns of windows of the
/// same time (a window table function, or a window aggregate grouped by
/// them) and the condition equates their `window_end`s. It runs as an
/// interval join on `window_end` with both bounds 0: a window's rows meet
/// as they arrive and leave the state (outer and anti rows without a match
/// are emitted) when the watermark passes the window's end.
fn window_join(join: &Join, left: &Stream, right: &Stream) -> Option<IntervalBounds> {
    let (lw, rw) = (left.window?, right.window?);
    if lw.domain != rw.domain || left.updating || right.updating {
        return None;
    }
    let column = |e: &Expr, schema: &DFSchema| match e {
        Expr::Column(c) => schema.index_of_column(c).ok(),
        _ => None,
    };
    join.on
        .iter()
        .any(|(l, r)| {
            column(l, &left.schema) == Some(lw.end) && column(r, &right.schema) == Some(rw.end)
        })
        .then_some(IntervalBounds {
            left: lw.end,
            right: rw.end,
            lower: 0,
            upper: 0,
            domain: lw.domain,
        })
}

impl Translator<'_> {
    /// Translates a `Join` plan node.
    pub(crate) fn join(&mut self, join: &Join) -> Result<Stream> {
        let kind = join_kind(join.join_type)?;
        if join.null_aware {
            return Err(SqlError::Unsupported(
                "NOT IN over a subquery whose column may be NULL (its three-valued logic); \
                 write NOT EXISTS, or filter the NULLs out of the subquery"
                    .into(),
            ));
        }
        if join.on.is_empty() {
            return Err(SqlError::Unsupported(
                "a join without an equality condition between its inputs (a cross or theta join): \
                 a streaming join needs at least one `left.column = right.column` to partition by"
                    .into(),
            ));
        }
        if join.filter.as_ref().is_some_and(|f| {
            split_conjunction(f)
                .iter()
                .any(|e| marker_args(e).is_some())
        }) {
            return self.temporal_join(join, kind);
        }
        let left = self.plan(&join.left)?;
        let right = self.plan(&join.right)?;
        let (keys, condition) = self.join_keys(&join.on, &left, &right)?;
        let pair_schema: DFSchema = left.schema.join(&right.schema)?;
        let filter = join
            .filter
            .as_ref()
            .map(|f| self.physical(f, &pair_schema))
            .transpose()?;
        let schema = join.schema.clone();
        let outer_or_inner = matches!(
            kind,
            JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full
        );
        let window = window_join(join, &left, &right);
        let interval = match &join.filter {
            _ if window.is_some() => window,
            Some(f) if outer_or_inner && !left.updating && !right.updating => {
                self.interval_bounds(f, &join.left, &join.right, &left.schema, &right.schema)
            }
            _ => None,
        };
        if let Some(bounds) = interval {
            let spec = IntervalJoinSpec {
                kind,
                keys: keys.clone(),
                nulls_equal: join.null_equality == NullEquality::NullEqualsNull,
                times: [bounds.left, bounds.right],
                bounds: (bounds.lower, bounds.upper),
                domain: bounds.domain,
                filter,
                inputs: [
                    arrow_schema(&left.schema, false),
                    arrow_schema(&right.schema, false),
                ],
                output_schema: arrow_schema(&schema, false),
                condition: condition.join(" AND "),
                residual: join.filter.as_ref().map(|f| f.to_string()),
                window: window.is_some(),
            };
            return Ok(self.add_join(Arc::new(spec), &left, &right, keys, schema, false));
        }
        let updating = left.updating || right.updating || !kind.insert_only_over_inserts();
        let spec = RegularJoinSpec {
            kind,
            keys: keys.clone(),
            nulls_equal: join.null_equality == NullEquality::NullEqualsNull,
            filter,
            inputs: [
                arrow_schema(&left.schema, false),
                arrow_schema(&right.schema, false),
            ],
            output_schema: arrow_schema(&schema, updating),
            updating,
            ttl: [self.input_ttl(&join.left), self.input_ttl(&join.right)],
            condition: condition.join(" AND "),
            residual: join.filter.as_ref().map(|f| f.to_string()),
        };
        Ok(self.add_join(Arc::new(spec), &left, &right, keys, schema, updating))
    }

    /// Both sides' key expressions for equality pairs `(left, right)`, cast
    /// to a common type so that equal keys hash alike, and the pairs as
    /// text for `EXPLAIN`.
    pub(crate) fn join_keys(
        &self,
        pairs: &[(Expr, Expr)],
        left: &Stream,
        right: &Stream,
    ) -> Result<(JoinKeys, Vec<String>)> {
        let mut keys = [Vec::new(), Vec::new()];
        let mut condition = Vec::new();
        for (l, r) in pairs {
            let lt = l.get_type(&left.schema)?;
            let rt = r.get_type(&right.schema)?;
            let common = if lt == rt {
                lt.clone()
            } else {
                datafusion::logical_expr::type_coercion::binary::comparison_coercion(&lt, &rt)
                    .ok_or_else(|| {
                        SqlError::Plan(format!(
                            "join keys {l} ({lt}) and {r} ({rt}) cannot be compared"
                        ))
                    })?
            };
            let cast = |e: &Expr, t: &datafusion::arrow::datatypes::DataType| {
                if *t == common {
                    e.clone()
                } else {
                    Expr::Cast(Cast::new(Box::new(e.clone()), common.clone()))
                }
            };
            keys[0].push(self.physical(&cast(l, &lt), &left.schema)?);
            keys[1].push(self.physical(&cast(r, &rt), &right.schema)?);
            condition.push(format!("{l} = {r}"));
        }
        Ok((keys, condition))
    }

    /// How long a regular join keeps an input's rows: its `STATE_TTL` hint
    /// (by the input's alias or table name), else `table.exec.state.ttl`.
    fn input_ttl(&self, plan: &LogicalPlan) -> Option<std::time::Duration> {
        fn alias(plan: &LogicalPlan) -> Option<String> {
            match plan {
                LogicalPlan::SubqueryAlias(a) => Some(a.alias.table().to_string()),
                LogicalPlan::TableScan(s) => Some(s.table_name.table().to_string()),
                LogicalPlan::Projection(p) => alias(&p.input),
                LogicalPlan::Filter(f) => alias(&f.input),
                _ => None,
            }
        }
        alias(plan)
            .and_then(|a| self.state_ttl_hints.get(&a).copied())
            .filter(|d| !d.is_zero())
            .or(self.state_ttl)
    }

    /// Adds a join node reading both inputs hash-partitioned by their keys.
    pub(crate) fn add_join(
        &mut self,
        spec: Arc<dyn OperatorFactory>,
        left: &Stream,
        right: &Stream,
        keys: JoinKeys,
        schema: datafusion::common::DFSchemaRef,
        updating: bool,
    ) -> Stream {
        let [left_keys, right_keys] = keys;
        let node = self.graph.add(
            NodeKind::Operator(spec),
            self.parallelism,
            vec![
                (left.node, Exchange::Hash(left_keys)),
                (right.node, Exchange::Hash(right_keys)),
            ],
            arrow_schema(&schema, updating),
            updating,
        );
        Stream {
            node,
            schema,
            updating,
            window: None,
            parallelism: self.parallelism,
        }
    }
}
