//! A temporal join: a `Join` whose condition carries the marker that
//! `FOR SYSTEM_TIME AS OF` left (see [`crate::temporal`]).
//!
//! On event time (the left time is a watermarked column) the right side
//! must be a versioned table: a primary key, which the condition equates
//! in full and which is the join key, and an event-time attribute. On
//! processing time (`PROCTIME()`) the right side is any table, read into
//! state; when it is bounded, left rows wait until it has been read.
//! Either way `INNER` or `LEFT`, insert-only, as in Flink.

use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Join, LogicalPlan};
use weir_engine::operators::join::temporal::{TemporalJoinSpec, TemporalTime};
use weir_engine::operators::join::JoinKind;
use weir_engine::operators::TimeDomain;

use super::{arrow_schema, Stream, Translator};
use crate::error::{Result, SqlError};
use crate::temporal::marker_args;

impl Translator<'_> {
    /// Translates a join whose condition has the `FOR SYSTEM_TIME AS OF` marker.
    pub(crate) fn temporal_join(&mut self, join: &Join, kind: JoinKind) -> Result<Stream> {
        if !matches!(kind, JoinKind::Inner | JoinKind::Left) {
            return Err(SqlError::Unsupported(format!(
                "a temporal join (FOR SYSTEM_TIME AS OF) as {}: it is JOIN or LEFT JOIN, as in Flink",
                kind.name()
            )));
        }
        let conjuncts: Vec<&Expr> = join
            .filter
            .as_ref()
            .map(|f| split_conjunction(f))
            .unwrap_or_default();
        let (markers, rest): (Vec<&Expr>, Vec<&Expr>) = conjuncts
            .into_iter()
            .partition(|e| marker_args(e).is_some());
        let [marker] = markers.as_slice() else {
            return Err(SqlError::Unsupported(
                "two FOR SYSTEM_TIME AS OF on one join".into(),
            ));
        };
        let args = marker_args(marker).unwrap_or_default();
        let left = self.plan(&join.left)?;
        let right = self.plan(&join.right)?;
        if left.updating {
            return Err(SqlError::Unsupported(
                "a temporal join whose left input is an updating stream".into(),
            ));
        }
        let column_of = |e: Option<&Expr>, schema: &DFSchema| match e {
            Some(Expr::Column(c)) => schema.index_of_column(c).ok(),
            _ => None,
        };
        let time_text = args.first().map(|e| e.to_string()).unwrap_or_default();
        let left_time = column_of(args.first(), &left.schema).ok_or_else(|| {
            SqlError::Plan(format!(
                "FOR SYSTEM_TIME AS OF {time_text}: not a column of the join's left input"
            ))
        })?;
        let left_name = left.schema.field(left_time).name().clone();
        let domain = self.time_attribute(&join.left, &left_name).ok_or_else(|| {
            SqlError::Plan(format!(
                "FOR SYSTEM_TIME AS OF {time_text}: '{left_name}' is not a time attribute of the left input \
                 (a column with a WATERMARK, or PROCTIME())"
            ))
        })?;

        let mut on: Vec<(Expr, Expr)> = join.on.clone();
        let mut extra: Vec<Expr> = Vec::new();
        let time = match domain {
            TimeDomain::EventTime => {
                let version = column_of(args.get(1), &right.schema)
                    .filter(|i| {
                        self.time_attribute(&join.right, right.schema.field(*i).name())
                            == Some(TimeDomain::EventTime)
                    })
                    .ok_or_else(|| {
                        SqlError::Plan(
                            "a temporal join on event time needs a versioned table: the right side \
                             has no event-time attribute (declare a WATERMARK on it)"
                                .into(),
                        )
                    })?;
                let key = self.primary_key(&join.right).ok_or_else(|| {
                    SqlError::Plan(
                        "a temporal join on event time needs a versioned table: the right side has \
                         no PRIMARY KEY (declare `PRIMARY KEY (…) NOT ENFORCED`)"
                            .into(),
                    )
                })?;
                // The primary key is the join key; other equalities filter.
                let (pk, other): (Vec<_>, Vec<_>) = on.into_iter().partition(|(_, r)| {
                    matches!(r, Expr::Column(c) if self.key_origin(&join.right, &c.name)
                        .is_some_and(|k| key.contains(&k)))
                });
                let covered = |k: &String| {
                    pk.iter().any(|(_, r)| {
                        matches!(r, Expr::Column(c)
                            if self.key_origin(&join.right, &c.name).as_ref() == Some(k))
                    })
                };
                if let Some(missing) = key.iter().find(|k| !covered(k)) {
                    return Err(SqlError::Plan(format!(
                        "a temporal join on event time looks versions up by the versioned table's \
                         primary key ({}): the join condition does not equate '{missing}'",
                        key.join(", ")
                    )));
                }
                extra.extend(other.into_iter().map(|(l, r)| l.eq(r)));
                on = pk;
                TemporalTime::Event {
                    left: left_time,
                    right: version,
                }
            }
            TimeDomain::ProcessingTime => TemporalTime::Processing {
                wait_for_right: self.graph.is_bounded_from(right.node),
            },
        };
        let (keys, condition) = self.join_keys(&on, &left, &right)?;
        let residual = conjunction(rest.into_iter().cloned().chain(extra));
        let pair_schema: DFSchema = left.schema.join(&right.schema)?;
        let filter = residual
            .as_ref()
            .map(|f| self.physical(f, &pair_schema))
            .transpose()?;
        let schema = join.schema.clone();
        let spec = TemporalJoinSpec {
            kind,
            keys: keys.clone(),
            nulls_equal: join.null_equality == datafusion::common::NullEquality::NullEqualsNull,
            filter,
            inputs: [
                arrow_schema(&left.schema, false),
                arrow_schema(&right.schema, false),
            ],
            output_schema: arrow_schema(&schema, false),
            time,
            condition: condition.join(" AND "),
            residual: residual.map(|r| r.to_string()),
        };
        Ok(self.add_join(Arc::new(spec), &left, &right, keys, schema, false))
    }

    /// The primary key of the table `plan` reads (through projections,
    /// filters, aliases and views), by the table's column names.
    fn primary_key(&self, plan: &LogicalPlan) -> Option<Vec<String>> {
        match plan {
            LogicalPlan::Projection(p) => self.primary_key(&p.input),
            LogicalPlan::Filter(f) => self.primary_key(&f.input),
            LogicalPlan::SubqueryAlias(a) => self.primary_key(&a.input),
            LogicalPlan::TableScan(scan) => {
                let name = scan.table_name.table();
                if let Some(table) = self.catalog.tables.get(name) {
                    return (!table.primary_key.is_empty()).then(|| table.primary_key.clone());
                }
                let view = self.catalog.views.get(name)?;
                self.primary_key(view)
            }
            _ => None,
        }
    }

    /// The table column that `column` of `plan`'s output is, when it is
    /// one unchanged (through projections, filters, aliases and views).
    fn key_origin(&self, plan: &LogicalPlan, column: &str) -> Option<String> {
        match plan {
            LogicalPlan::Projection(p) => {
                let i = p.schema.fields().iter().position(|f| f.name() == column)?;
                let mut e = &p.expr[i];
                while let Expr::Alias(a) = e {
                    e = a.expr.as_ref();
                }
                match e {
                    Expr::Column(c) => self.key_origin(&p.input, &c.name),
                    _ => None,
                }
            }
            LogicalPlan::Filter(f) => self.key_origin(&f.input, column),
            LogicalPlan::SubqueryAlias(a) => self.key_origin(&a.input, column),
            LogicalPlan::TableScan(scan) => {
                let name = scan.table_name.table();
                if self.catalog.tables.contains_key(name) {
                    return Some(column.to_string());
                }
                let view = self.catalog.views.get(name)?;
                self.key_origin(view, column)
            }
            _ => None,
        }
    }

    /// The column of table or view `name` that `FOR SYSTEM_TIME AS OF`'s
    /// marker names on the right: its event-time attribute, else its first
    /// column (a lookup needs no time; the marker needs a column).
    pub(crate) fn version_time_column(&self, name: &str) -> Option<String> {
        let name =
            if self.catalog.tables.contains_key(name) || self.catalog.views.contains_key(name) {
                name
            } else {
                name.rsplit('.').next()?
            };
        if let Some(table) = self.catalog.tables.get(name) {
            return table
                .watermark
                .as_ref()
                .map(|(c, _)| c.clone())
                .or_else(|| table.columns.first().map(|c| c.field.name().clone()));
        }
        let view = self.catalog.views.get(name)?;
        let fields = view.schema().fields();
        fields
            .iter()
            .find(|f| self.time_attribute(view, f.name()) == Some(TimeDomain::EventTime))
            .or_else(|| fields.first())
            .map(|f| f.name().clone())
    }
}
