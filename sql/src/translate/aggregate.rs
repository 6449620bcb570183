//! `Aggregate`: a window aggregate when it groups by the window columns of
//! a window table function (`window_start`, `window_end`), an updating
//! aggregate (a changelog) otherwise.

use std::sync::Arc;

use datafusion::arrow::datatypes::Field;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr};
use datafusion::physical_expr::PhysicalExpr;
#[allow(deprecated)]
use datafusion::physical_planner::create_aggregate_expr_and_maybe_filter;
use weir_engine::graph::Exchange;
use weir_engine::operators::aggregate_state::{AggregateCall, AggregateSpec};
use weir_engine::operators::updating_aggregate::UpdatingAggregateSpec;
use weir_engine::operators::window_aggregate::WindowAggregateSpec;
use weir_engine::operators::TimeDomain;

use super::{arrow_schema, Stream, Translator, WindowColumns};
use crate::error::{Result, SqlError};

impl Translator<'_> {
    pub(super) fn aggregate(&mut self, agg: &Aggregate) -> Result<Stream> {
        let input = self.plan(&agg.input)?;
        if input.updating {
            return Err(SqlError::Unsupported(
                "aggregating an updating stream (an aggregate over the result of a GROUP BY without window)".into(),
            ));
        }
        if agg
            .group_expr
            .iter()
            .any(|e| matches!(e, Expr::GroupingSet(_)))
        {
            return Err(SqlError::Unsupported(
                "GROUPING SETS, CUBE and ROLLUP".into(),
            ));
        }
        let in_schema = input.schema.clone();
        let physical_in = in_schema.as_arrow().clone();
        let group_exprs = agg
            .group_expr
            .iter()
            .map(|e| self.physical(e, &in_schema))
            .collect::<Result<Vec<_>>>()?;
        let group_fields: Vec<Field> = (0..agg.group_expr.len())
            .map(|i| agg.schema.field(i).as_ref().clone())
            .collect();
        let mut calls = Vec::new();
        for e in &agg.aggr_expr {
            let inner = match e {
                Expr::Alias(a) => a.expr.as_ref(),
                other => other,
            };
            if let Expr::AggregateFunction(AggregateFunction { params, .. }) = inner {
                if params.order_by.iter().len() > 0 {
                    return Err(SqlError::Unsupported(
                        "ORDER BY inside an aggregate call".into(),
                    ));
                }
            }
            #[allow(deprecated)]
            let (function, filter, _order) =
                create_aggregate_expr_and_maybe_filter(e, &in_schema, &physical_in, &self.props)?;
            calls.push(AggregateCall { function, filter });
        }
        // The group keys that are the input's window columns, by where
        // they come from.
        let key_column = |e: &Expr| -> Option<usize> {
            let mut e = e;
            while let Expr::Alias(a) = e {
                e = a.expr.as_ref();
            }
            match e {
                Expr::Column(c) => in_schema.index_of_column(c).ok(),
                _ => None,
            }
        };
        let window = input.window;
        let key_of = |col: Option<usize>| {
            col.and_then(|col| {
                agg.group_expr
                    .iter()
                    .position(|e| key_column(e) == Some(col))
            })
        };
        let window_end = key_of(window.map(|w| w.end));
        let window_start = key_of(window.map(|w| w.start));
        let is_window_column = |e: &Expr| {
            window.is_some_and(|w| {
                key_column(e).is_some_and(|c| c == w.start || c == w.end || Some(c) == w.time)
            })
        };
        // The keys other than the window columns partition the input (and
        // give each group its key group in state).
        let other_key_indexes: Vec<usize> = agg
            .group_expr
            .iter()
            .enumerate()
            .filter(|(_, e)| !is_window_column(e))
            .map(|(i, _)| i)
            .collect();
        let other_keys: Vec<Arc<dyn PhysicalExpr>> = other_key_indexes
            .iter()
            .map(|i| group_exprs[*i].clone())
            .collect();
        match window_end {
            Some(end_key) => {
                let spec = WindowAggregateSpec {
                    aggregate: AggregateSpec::new(
                        group_exprs.clone(),
                        group_fields,
                        calls,
                        arrow_schema(&agg.schema, false),
                    ),
                    window_end_key: end_key,
                    time: window.map_or(TimeDomain::EventTime, |w| w.domain),
                    partition_keys: if other_key_indexes.is_empty() {
                        vec![end_key]
                    } else {
                        other_key_indexes.clone()
                    },
                };
                let keys = if other_keys.is_empty() {
                    vec![group_exprs[end_key].clone()]
                } else {
                    other_keys
                };
                let par = self.parallelism;
                // The output keeps the window columns it groups by (keys
                // come first), so a window join or another window
                // aggregate can follow, as in Flink.
                let output_window = window_start.map(|start| WindowColumns {
                    start,
                    end: end_key,
                    time: None,
                    domain: window.map_or(TimeDomain::EventTime, |w| w.domain),
                });
                Ok(self.add_operator(
                    Arc::new(spec),
                    &input,
                    Exchange::Hash(keys),
                    par,
                    agg.schema.clone(),
                    false,
                    output_window,
                ))
            }
            None => {
                if window_start.is_some() {
                    return Err(SqlError::Plan(
                        "a window aggregate must group by window_end as well as window_start"
                            .into(),
                    ));
                }
                let spec = UpdatingAggregateSpec {
                    aggregate: AggregateSpec::new(
                        group_exprs,
                        group_fields,
                        calls,
                        arrow_schema(&agg.schema, true),
                    ),
                    partition_keys: other_key_indexes,
                };
                let (exchange, par) = if other_keys.is_empty() {
                    (Exchange::Single, 1)
                } else {
                    (Exchange::Hash(other_keys), self.parallelism)
                };
                Ok(self.add_operator(
                    Arc::new(spec),
                    &input,
                    exchange,
                    par,
                    agg.schema.clone(),
                    true,
                    None,
                ))
            }
        }
    }
}
