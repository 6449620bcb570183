//! Recognising an interval join: a join condition that bounds the distance
//! between the two inputs' time attributes from both sides, such as
//! `l.ts BETWEEN r.ts - INTERVAL '10' SECOND AND r.ts + INTERVAL '5' SECOND`
//! or `l.ts >= r.ts AND l.ts < r.ts + INTERVAL '1' MINUTE`.
//!
//! The time attributes are found by where the columns come from (through
//! projections, filters, aliases and views): a table's watermarked column
//! (event time) or a `PROCTIME()` column (processing time); both sides must
//! use the same kind of time.

use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use weir_engine::operators::TimeDomain;

use super::Translator;

/// What an interval join's condition says about time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IntervalBounds {
    /// The time attribute of the left input (index into its schema).
    pub left: usize,
    /// The time attribute of the right input.
    pub right: usize,
    /// `lower ≤ left − right ≤ upper`, in milliseconds.
    pub lower: i64,
    /// See `lower`.
    pub upper: i64,
    /// Event or processing time.
    pub domain: TimeDomain,
}

/// `column + offset` (milliseconds), from `ts`, `ts + INTERVAL …`, `ts - INTERVAL …`.
fn time_term(e: &Expr) -> Option<(&Column, i64)> {
    match e {
        Expr::Column(c) => Some((c, 0)),
        Expr::Cast(c) => time_term(&c.expr),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let sign = match op {
                Operator::Plus => 1,
                Operator::Minus => -1,
                _ => return None,
            };
            let (c, offset) = time_term(left)?;
            Some((c, offset.checked_add(sign * interval_ms(right)?)?))
        }
        _ => None,
    }
}

fn interval_ms(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => (v.days
            as i64)
            .checked_mul(86_400_000)?
            .checked_add(v.nanoseconds / 1_000_000),
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => (v.days as i64)
            .checked_mul(86_400_000)?
            .checked_add(v.milliseconds as i64),
        Expr::Literal(ScalarValue::DurationMillisecond(Some(v)), _) => Some(*v),
        Expr::Literal(ScalarValue::DurationSecond(Some(v)), _) => v.checked_mul(1000),
        _ => None,
    }
}

fn flip(op: Operator) -> Operator {
    match op {
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        other => other,
    }
}

impl Translator<'_> {
    /// The interval bounds of a join's non-equality condition, if it has
    /// both a lower and an upper bound on the same pair of time attributes.
    pub(crate) fn interval_bounds(
        &self,
        filter: &Expr,
        left_plan: &LogicalPlan,
        right_plan: &LogicalPlan,
        left: &DFSchema,
        right: &DFSchema,
    ) -> Option<IntervalBounds> {
        let mut comparisons: Vec<(&Expr, Operator, &Expr)> = Vec::new();
        for c in split_conjunction(filter) {
            match c {
                Expr::BinaryExpr(BinaryExpr { left, op, right })
                    if matches!(
                        op,
                        Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
                    ) =>
                {
                    comparisons.push((left, *op, right));
                }
                Expr::Between(b) if !b.negated => {
                    comparisons.push((&b.expr, Operator::GtEq, &b.low));
                    comparisons.push((&b.expr, Operator::LtEq, &b.high));
                }
                _ => {}
            }
        }
        let mut columns: Option<(usize, usize, TimeDomain)> = None;
        let (mut lower, mut upper): (Option<i64>, Option<i64>) = (None, None);
        for (a, op, b) in comparisons {
            let (Some((ca, oa)), Some((cb, ob))) = (time_term(a), time_term(b)) else {
                continue;
            };
            // Normalise to `left − right op k`.
            let (l, r, op, k) = match (left.index_of_column(ca), right.index_of_column(cb)) {
                (Ok(l), Ok(r)) => (l, r, op, ob - oa),
                _ => match (left.index_of_column(cb), right.index_of_column(ca)) {
                    (Ok(l), Ok(r)) => (l, r, flip(op), oa - ob),
                    _ => continue,
                },
            };
            match columns {
                Some((cl, cr, _)) if (cl, cr) != (l, r) => continue,
                Some(_) => {}
                None => {
                    let dl = self.time_attribute(left_plan, left.field(l).name())?;
                    let dr = self.time_attribute(right_plan, right.field(r).name())?;
                    if dl != dr {
                        return None;
                    }
                    columns = Some((l, r, dl));
                }
            }
            match op {
                Operator::Gt => lower = Some(lower.unwrap_or(i64::MIN).max(k.saturating_add(1))),
                Operator::GtEq => lower = Some(lower.unwrap_or(i64::MIN).max(k)),
                Operator::Lt => upper = Some(upper.unwrap_or(i64::MAX).min(k.saturating_sub(1))),
                Operator::LtEq => upper = Some(upper.unwrap_or(i64::MAX).min(k)),
                _ => {}
            }
        }
        let (l, r, domain) = columns?;
        Some(IntervalBounds {
            left: l,
            right: r,
            lower: lower?,
            upper: upper?,
            domain,
        })
    }

    /// Whether `column` of `plan`'s output is a time attribute, and of which
    /// time.
    pub(crate) fn time_attribute(&self, plan: &LogicalPlan, column: &str) -> Option<TimeDomain> {
        match plan {
            LogicalPlan::Projection(p) => {
                let i = p.schema.fields().iter().position(|f| f.name() == column)?;
                let mut e = &p.expr[i];
                while let Expr::Alias(a) = e {
                    e = a.expr.as_ref();
                }
                match e {
                    Expr::ScalarFunction(f) if f.name() == crate::functions::proctime::NAME => {
                        Some(TimeDomain::ProcessingTime)
                    }
                    Expr::Column(c) => self.time_attribute(&p.input, &c.name),
                    _ => None,
                }
            }
            LogicalPlan::Filter(f) => self.time_attribute(&f.input, column),
            LogicalPlan::SubqueryAlias(a) => self.time_attribute(&a.input, column),
            // A window aggregate's `window_end` (a key) stays a time
            // attribute: its rows come out as the watermark passes it.
            LogicalPlan::Aggregate(a) => {
                let i = a.schema.fields().iter().position(|f| f.name() == column)?;
                let mut e = a.group_expr.get(i)?;
                while let Expr::Alias(al) = e {
                    e = al.expr.as_ref();
                }
                match e {
                    Expr::Column(c) => self.time_attribute(&a.input, &c.name),
                    _ => None,
                }
            }
            LogicalPlan::TableScan(scan) => {
                self.named_time_attribute(scan.table_name.table(), column)
            }
            // A temporal join emits each left row once the watermark has
            // passed its time, before forwarding that watermark: the left
            // side's time attributes stay time attributes.
            LogicalPlan::Join(j)
                if j.filter.as_ref().is_some_and(|f| {
                    split_conjunction(f)
                        .iter()
                        .any(|e| crate::temporal::marker_args(e).is_some())
                }) =>
            {
                let i = j.schema.fields().iter().position(|f| f.name() == column)?;
                if i < j.left.schema().fields().len() {
                    self.time_attribute(&j.left, column)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Whether `column` of table, view or window table function `name` is
    /// a time attribute.
    fn named_time_attribute(&self, name: &str, column: &str) -> Option<TimeDomain> {
        if let Some(call) = self.catalog.windows.get(name) {
            return match column {
                "window_end" | "window_time" => {
                    let proctime = self.is_proctime(&call.input, &call.time_column).ok()?;
                    Some(if proctime {
                        TimeDomain::ProcessingTime
                    } else {
                        TimeDomain::EventTime
                    })
                }
                "window_start" => None,
                _ => self.named_time_attribute(&call.input, column),
            };
        }
        if let Some(table) = self.catalog.tables.get(name) {
            if table.watermark.as_ref().is_some_and(|(c, _)| c == column) {
                return Some(TimeDomain::EventTime);
            }
            let proctime = table.columns.iter().any(|c| {
                c.field.name() == column
                    && c.computed
                        .as_deref()
                        .is_some_and(crate::functions::proctime::is_proctime_call)
            });
            return proctime.then_some(TimeDomain::ProcessingTime);
        }
        let view = self.catalog.views.get(name)?;
        self.time_attribute(view, column)
    }
}
