//! `TableScan`: a table's source (with its computed columns and watermark),
//! a view's plan, or a window table function over either; then the
//! projection the optimizer pushed into the scan.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::DFSchema;
use datafusion::logical_expr::{Expr, LogicalPlan, TableScan};
use datafusion::physical_expr::PhysicalExpr;
use weir_engine::connectors::{create_source, SourceSpec};
use weir_engine::graph::{Exchange, NodeKind};
use weir_engine::operators::calc::CalcSpec;
use weir_engine::operators::window_assign::WindowAssignSpec;
use weir_engine::operators::TimeDomain;

use super::{arrow_schema, Stream, Translator, WindowColumns};
use crate::catalog::TableDef;
use crate::error::{Result, SqlError};

impl Translator<'_> {
    pub(super) fn table_scan(&mut self, scan: &TableScan) -> Result<Stream> {
        if !scan.filters.is_empty() {
            return Err(SqlError::Unsupported(
                "filters pushed into a streaming scan".into(),
            ));
        }
        if scan.fetch.is_some() {
            return Err(SqlError::Unsupported("LIMIT on a stream".into()));
        }
        let name = scan.table_name.table().to_string();
        let full = self.scan_named(&name)?;
        match &scan.projection {
            Some(indices) if *indices != (0..full.schema.fields().len()).collect::<Vec<_>>() => {
                let exprs: Vec<Arc<dyn PhysicalExpr>> = indices
                    .iter()
                    .map(|i| {
                        let f = full.schema.field(*i);
                        Arc::new(datafusion::physical_expr::expressions::Column::new(
                            f.name(),
                            *i,
                        )) as Arc<dyn PhysicalExpr>
                    })
                    .collect();
                let windowed = WindowColumns::picked(full.window, indices);
                let spec = CalcSpec {
                    filter: None,
                    projection: Some(exprs),
                    output_schema: arrow_schema(&scan.projected_schema, false),
                };
                let par = full.parallelism;
                Ok(self.add_operator(
                    Arc::new(spec),
                    &full,
                    Exchange::Forward,
                    par,
                    scan.projected_schema.clone(),
                    false,
                    windowed,
                ))
            }
            _ => Ok(Stream {
                schema: scan.projected_schema.clone(),
                ..full
            }),
        }
    }

    /// The full stream of a table, view or window table function.
    pub(crate) fn scan_named(&mut self, name: &str) -> Result<Stream> {
        if let Some(call) = self.catalog.windows.get(name).cloned() {
            let input = self.scan_named(&call.input)?;
            let time_column = input
                .schema
                .index_of_column_by_name(None, &call.time_column)
                .ok_or_else(|| {
                    SqlError::Plan(format!(
                        "DESCRIPTOR column '{}' of the window at {} is not a column of '{}'",
                        call.time_column, call.position, call.input
                    ))
                })?;
            let mut fields: Vec<Field> = input
                .schema
                .as_arrow()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            let ts = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None);
            for n in ["window_start", "window_end", "window_time"] {
                fields.push(Field::new(n, ts.clone(), false));
            }
            let schema = Arc::new(DFSchema::try_from_qualified_schema(
                name,
                &Schema::new(fields.clone()),
            )?);
            let spec = WindowAssignSpec {
                kind: call.kind,
                offset: call.offset,
                time_column,
                time_column_name: call.time_column.clone(),
                output_schema: Arc::new(Schema::new(fields)),
            };
            if input.updating {
                return Err(SqlError::Unsupported(
                    "window table functions over an updating stream".into(),
                ));
            }
            let domain = if self.is_proctime(&call.input, &call.time_column)? {
                TimeDomain::ProcessingTime
            } else {
                TimeDomain::EventTime
            };
            let n = input.schema.fields().len();
            let window = WindowColumns {
                start: n,
                end: n + 1,
                time: Some(n + 2),
                domain,
            };
            let par = input.parallelism;
            return Ok(self.add_operator(
                Arc::new(spec),
                &input,
                Exchange::Forward,
                par,
                schema,
                false,
                Some(window),
            ));
        }
        if let Some(table) = self.catalog.tables.get(name).cloned() {
            return self.source(&table);
        }
        if let Some(view) = self.catalog.views.get(name).cloned() {
            let optimized = self.catalog.ctx.state().optimize(&view)?;
            return self.plan(&optimized);
        }
        Err(SqlError::Plan(format!("table or view '{name}' not found")))
    }

    /// Whether `column` of table or view `name` is a processing-time
    /// attribute: a computed column `AS PROCTIME()`, or a view's column
    /// that is `PROCTIME()` or such a column, through projections, filters
    /// and aliases.
    pub(crate) fn is_proctime(&self, name: &str, column: &str) -> Result<bool> {
        if let Some(table) = self.catalog.tables.get(name) {
            return Ok(table.columns.iter().any(|c| {
                c.field.name() == column
                    && c.computed
                        .as_deref()
                        .is_some_and(crate::functions::proctime::is_proctime_call)
            }));
        }
        if let Some(view) = self.catalog.views.get(name) {
            return Ok(self.plan_is_proctime(view, column));
        }
        Ok(false)
    }

    fn plan_is_proctime(&self, plan: &LogicalPlan, column: &str) -> bool {
        match plan {
            LogicalPlan::Projection(p) => {
                let Some(i) = p.schema.fields().iter().position(|f| f.name() == column) else {
                    return false;
                };
                let mut e = &p.expr[i];
                while let Expr::Alias(a) = e {
                    e = a.expr.as_ref();
                }
                match e {
                    Expr::ScalarFunction(f) => f.name() == crate::functions::proctime::NAME,
                    Expr::Column(c) => self.plan_is_proctime(&p.input, &c.name),
                    _ => false,
                }
            }
            LogicalPlan::Filter(f) => self.plan_is_proctime(&f.input, column),
            LogicalPlan::SubqueryAlias(a) => self.plan_is_proctime(&a.input, column),
            LogicalPlan::TableScan(scan) => self
                .is_proctime(scan.table_name.table(), column)
                .unwrap_or(false),
            _ => false,
        }
    }

    fn source(&mut self, table: &TableDef) -> Result<Stream> {
        if let Some(shared) = self.sources.get(&table.name) {
            return Ok(shared.clone());
        }
        let physical = table.physical_schema();
        let connector = create_source(table.connector(), &table.options, physical.clone())?;
        let physical_df = DFSchema::try_from(physical.as_ref().clone())?;
        let full_df = DFSchema::try_from(table.schema.as_ref().clone())?;
        let computed = if table.columns.iter().any(|c| c.computed.is_some()) {
            let mut exprs = Vec::new();
            let ctx = self.catalog.ctx;
            for c in &table.columns {
                let e = match &c.computed {
                    Some(sql) => ctx.parse_sql_expr(sql, &physical_df)?,
                    None => Expr::Column(datafusion::common::Column::from_name(c.field.name())),
                };
                // The session's planner applies type coercion, as in a query.
                exprs.push(ctx.create_physical_expr(e, &physical_df)?);
            }
            Some(exprs)
        } else {
            None
        };
        let watermark = match &table.watermark {
            Some((_, sql)) => {
                let ctx = self.catalog.ctx;
                let e = ctx.parse_sql_expr(sql, &full_df)?;
                Some(ctx.create_physical_expr(e, &full_df)?)
            }
            None => None,
        };
        let watermark_sql = table
            .watermark
            .as_ref()
            .map(|(col, sql)| format!("{col}, {sql}"));
        let spec = SourceSpec {
            table: table.name.clone(),
            connector,
            computed,
            watermark,
            watermark_sql,
            schema: table.schema.clone(),
            idle_timeout: self.source_idle_timeout,
        };
        let node = self.graph.add(
            NodeKind::Source(Arc::new(spec)),
            self.parallelism,
            vec![],
            table.schema.clone(),
            false,
        );
        let schema = Arc::new(DFSchema::try_from_qualified_schema(
            &table.name,
            &table.schema,
        )?);
        let stream = Stream {
            node,
            schema,
            updating: false,
            window: None,
            parallelism: self.parallelism,
        };
        self.sources.insert(table.name.clone(), stream.clone());
        Ok(stream)
    }
}
