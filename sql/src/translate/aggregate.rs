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
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use weir_engine::operators::retract::Retraction;

impl Translator<'_> {
    pub(super) fn aggregate(&mut self, agg: &Aggregate) -> Result<Stream> {
        let input = self.plan(&agg.input)?;
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
            let mut call = AggregateCall::new(function, filter);
            if input.updating {
                call.retract = Some(retraction(&call, &physical_in)?);
            }
            calls.push(call);
        }
        if input.updating {
            // Each group's live rows: a group whose rows are all taken back
            // is deleted.
            let rows = AggregateExprBuilder::new(
                count_udaf(),
                vec![datafusion::physical_expr::expressions::lit(1i64)],
            )
            .schema(Arc::new(physical_in.clone()))
            .alias("__weir_rows")
            .build()?;
            let mut call = AggregateCall::new(Arc::new(rows), None);
            call.retract = Some(Retraction::Count);
            calls.push(call);
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
        if input.updating && window_end.is_some() {
            return Err(SqlError::Unsupported(
                "a window aggregate over a changelog (window table functions need an insert-only input)".into(),
            ));
        }
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
                    changelog_input: input.updating,
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

/// The retractable accumulator of a call over a changelog, or why there is
/// none.
fn retraction(
    call: &AggregateCall,
    input: &datafusion::arrow::datatypes::Schema,
) -> Result<Retraction> {
    let f = &call.function;
    let argument = f
        .expressions()
        .first()
        .map(|e| e.data_type(input))
        .transpose()?;
    let name = f.fun().name().to_ascii_lowercase();
    Retraction::for_function(
        &name,
        f.is_distinct(),
        argument.as_ref(),
        f.field().data_type(),
    )
    .ok_or_else(|| {
        SqlError::Unsupported(format!(
            "{}{} over a changelog (an aggregate over an updating input takes rows back: \
                 COUNT, SUM, AVG, MIN, MAX and COUNT(DISTINCT) can)",
            f.fun().name().to_uppercase(),
            if f.is_distinct() { "(DISTINCT)" } else { "" }
        ))
    })
}
