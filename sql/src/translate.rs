//! From DataFusion's optimized logical plan to Weir's job graph.
//!
//! Each supported plan node becomes an operator: scans become sources (plus
//! a window assignment for window table functions), projections and filters
//! become Calc operators, aggregates become window aggregates (when grouped by
//! `window_start`/`window_end` of a window table function) or updating
//! aggregates. Anything else is rejected with the construct's name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan, WriteOp};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
#[allow(deprecated)]
use datafusion::physical_planner::create_aggregate_expr_and_maybe_filter;
use datafusion::prelude::SessionContext;
use weir_engine::connectors::{create_sink, create_source, SinkFactory, SourceSpec};
use weir_engine::graph::{Exchange, JobGraph, NodeId, NodeKind};
use weir_engine::operators::aggregate_state::{AggregateCall, AggregateSpec};
use weir_engine::operators::calc::CalcSpec;
use weir_engine::operators::updating_aggregate::UpdatingAggregateSpec;
use weir_engine::operators::window_aggregate::WindowAggregateSpec;
use weir_engine::operators::window_assign::WindowAssignSpec;
use weir_engine::operators::TimeDomain;
use weir_engine::OP_COLUMN;

use crate::catalog::TableDef;
use crate::error::{Result, SqlError};
use crate::values::ValuesSource;
use crate::window_tvf::WindowCall;

/// A stream produced by part of the plan.
#[derive(Clone)]
pub struct Stream {
    /// The node emitting it.
    pub node: NodeId,
    /// Its logical schema (without the op column).
    pub schema: DFSchemaRef,
    /// Whether rows carry change kinds.
    pub updating: bool,
    /// Whether it has window columns from a window table function, and
    /// whether its windows follow event time or processing time.
    pub window: Option<TimeDomain>,
    /// Subtasks of the node.
    pub parallelism: usize,
}

/// What the translator needs to know about the session.
pub struct Catalog<'a> {
    /// Tables by name.
    pub tables: &'a BTreeMap<String, TableDef>,
    /// Views by name (their unoptimized plans).
    pub views: &'a BTreeMap<String, LogicalPlan>,
    /// Window table function calls by generated table name.
    pub windows: &'a HashMap<String, WindowCall>,
    /// The session's DataFusion context: optimizes views' plans and plans
    /// computed columns and watermarks with the session's settings.
    pub ctx: &'a SessionContext,
}

/// Builds a job graph from logical plans.
pub struct Translator<'a> {
    catalog: Catalog<'a>,
    /// The graph built so far.
    pub graph: JobGraph,
    pub(crate) parallelism: usize,
    props: ExecutionProps,
    /// Sources by table: a table read twice in one job (the INSERTs of a
    /// statement set) is read once and fanned out.
    sources: HashMap<String, Stream>,
}

fn with_op_column(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(OP_COLUMN, DataType::Int8, false));
    Arc::new(Schema::new(fields))
}

pub(crate) fn arrow_schema(schema: &DFSchema, updating: bool) -> SchemaRef {
    let plain: Schema = schema.as_arrow().clone();
    if updating {
        with_op_column(&plain)
    } else {
        Arc::new(plain)
    }
}

impl<'a> Translator<'a> {
    /// A translator for a job at `parallelism`.
    pub fn new(catalog: Catalog<'a>, parallelism: usize) -> Self {
        Self {
            catalog,
            graph: JobGraph::default(),
            parallelism,
            props: ExecutionProps::new(),
            sources: HashMap::new(),
        }
    }

    fn physical(&self, expr: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(create_physical_expr(
            expr,
            schema,
            &self.props,
            &PhysicalPlanningContext::default(),
        )?)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_operator(
        &mut self,
        factory: Arc<dyn weir_engine::operators::OperatorFactory>,
        input: &Stream,
        exchange: Exchange,
        parallelism: usize,
        schema: DFSchemaRef,
        updating: bool,
        window: Option<TimeDomain>,
    ) -> Stream {
        let node = self.graph.add(
            NodeKind::Operator(factory),
            parallelism,
            vec![(input.node, exchange)],
            arrow_schema(&schema, updating),
            updating,
        );
        Stream {
            node,
            schema,
            updating,
            window,
            parallelism,
        }
    }

    /// Adds the sink of an `INSERT INTO` (`table`: the target) or the
    /// collect sink of a `SELECT`; its uid is `sink[<table>]`.
    pub fn add_sink(
        &mut self,
        input: &Stream,
        sink: Arc<dyn SinkFactory>,
        parallelism: usize,
        table: &str,
    ) -> NodeId {
        let exchange = if parallelism == 1 && input.parallelism > 1 {
            Exchange::Single
        } else {
            Exchange::Forward
        };
        let node = self.graph.add(
            NodeKind::Sink(sink),
            parallelism,
            vec![(input.node, exchange)],
            arrow_schema(&input.schema, input.updating),
            input.updating,
        );
        self.graph.set_uid(node, format!("sink[{table}]"));
        node
    }

    /// Translates an `INSERT INTO` plan, adding the target's sink.
    pub fn insert(&mut self, plan: &LogicalPlan) -> Result<()> {
        let LogicalPlan::Dml(dml) = plan else {
            return Err(SqlError::Unsupported(format!(
                "statement plan {}",
                plan.display()
            )));
        };
        if !matches!(dml.op, WriteOp::Insert(_)) {
            return Err(SqlError::Unsupported(format!(
                "{} on a streaming table",
                dml.op
            )));
        }
        let name = dml.table_name.table().to_string();
        let table = self.catalog.tables.get(&name).ok_or_else(|| {
            SqlError::Plan(format!("'{name}' is not a table that can be written to"))
        })?;
        let input = self.plan(&dml.input)?;
        let sink = create_sink(table.connector(), &table.options, table.physical_schema())?;
        if input.updating && !sink.accepts_updates() {
            return Err(SqlError::Unsupported(format!(
                "table sink '{name}' (connector '{}') only accepts inserts, but the query produces an updating changelog \
                 (a GROUP BY without a window table function). Write it to a sink that accepts updates (print, blackhole), \
                 or aggregate over a window (TUMBLE, HOP, CUMULATE) so that results are final",
                table.connector()
            )));
        }
        let parallelism = input.parallelism;
        self.add_sink(&input, sink, parallelism, &name);
        Ok(())
    }

    /// Translates a query plan, returning its output stream.
    pub fn plan(&mut self, plan: &LogicalPlan) -> Result<Stream> {
        match plan {
            LogicalPlan::Projection(p) => {
                let input = self.plan(&p.input)?;
                let exprs = p.expr.iter().map(|e| self.physical(e, &input.schema)).collect::<Result<Vec<_>>>()?;
                let windowed = input.window.filter(|_| p.schema.has_column_with_unqualified_name("window_end"));
                let spec = CalcSpec { filter: None, projection: Some(exprs), output_schema: arrow_schema(&p.schema, input.updating) };
                let (par, upd) = (input.parallelism, input.updating);
                Ok(self.add_operator(Arc::new(spec), &input, Exchange::Forward, par, p.schema.clone(), upd, windowed))
            }
            LogicalPlan::Filter(f) => {
                let input = self.plan(&f.input)?;
                let predicate = self.physical(&f.predicate, &input.schema)?;
                let spec = CalcSpec { filter: Some(predicate), projection: None, output_schema: arrow_schema(&input.schema, input.updating) };
                let (par, upd, win, schema) = (input.parallelism, input.updating, input.window, input.schema.clone());
                Ok(self.add_operator(Arc::new(spec), &input, Exchange::Forward, par, schema, upd, win))
            }
            LogicalPlan::SubqueryAlias(a) => {
                let mut input = self.plan(&a.input)?;
                input.schema = a.schema.clone();
                Ok(input)
            }
            LogicalPlan::TableScan(scan) => {
                if !scan.filters.is_empty() {
                    return Err(SqlError::Unsupported("filters pushed into a streaming scan".into()));
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
                                Arc::new(datafusion::physical_expr::expressions::Column::new(f.name(), *i)) as Arc<dyn PhysicalExpr>
                            })
                            .collect();
                        let windowed = full.window.filter(|_| scan.projected_schema.has_column_with_unqualified_name("window_end"));
                        let spec = CalcSpec { filter: None, projection: Some(exprs), output_schema: arrow_schema(&scan.projected_schema, false) };
                        let par = full.parallelism;
                        Ok(self.add_operator(Arc::new(spec), &full, Exchange::Forward, par, scan.projected_schema.clone(), false, windowed))
                    }
                    _ => Ok(Stream { schema: scan.projected_schema.clone(), ..full }),
                }
            }
            LogicalPlan::Aggregate(agg) => self.aggregate(agg),
            LogicalPlan::EmptyRelation(e) => {
                let rows = usize::from(e.produce_one_row);
                let batch = RecordBatch::try_new_with_options(
                    Arc::new(e.schema.as_arrow().clone()),
                    vec![],
                    &RecordBatchOptions::new().with_row_count(Some(rows)),
                )?;
                Ok(self.values(vec![batch], e.schema.clone()))
            }
            LogicalPlan::Values(v) => {
                let one = RecordBatch::try_new_with_options(
                    Arc::new(Schema::empty()),
                    vec![],
                    &RecordBatchOptions::new().with_row_count(Some(1)),
                )?;
                let empty = DFSchema::empty();
                let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::new(); v.schema.fields().len()];
                for row in &v.values {
                    for (c, e) in row.iter().enumerate() {
                        let array = self.physical(e, &empty)?.evaluate(&one)?.into_array(1)?;
                        let array = datafusion::arrow::compute::cast(&array, v.schema.field(c).data_type())?;
                        columns[c].push(array);
                    }
                }
                let arrays = columns
                    .iter()
                    .map(|parts| {
                        let refs: Vec<&dyn datafusion::arrow::array::Array> = parts.iter().map(|a| a.as_ref()).collect();
                        datafusion::arrow::compute::concat(&refs)
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let schema = Arc::new(v.schema.as_arrow().clone());
                let batch = RecordBatch::try_new_with_options(schema, arrays, &RecordBatchOptions::new().with_row_count(Some(v.values.len())))?;
                Ok(self.values(vec![batch], v.schema.clone()))
            }
            LogicalPlan::Join(_) => Err(SqlError::Unsupported("joins (interval, window and regular joins are not implemented yet)".into())),
            LogicalPlan::Window(_) => Err(SqlError::Unsupported("OVER windows".into())),
            LogicalPlan::Sort(_) => Err(SqlError::Unsupported("ORDER BY on a stream (only window aggregates and Top-N, not yet implemented, can order)".into())),
            LogicalPlan::Limit(_) => Err(SqlError::Unsupported("LIMIT on a stream".into())),
            LogicalPlan::Union(u) => self.union_all(u),
            LogicalPlan::Distinct(_) => Err(SqlError::Unsupported("DISTINCT (write it as GROUP BY)".into())),
            LogicalPlan::Subquery(_) => Err(SqlError::Unsupported("subqueries in expressions".into())),
            other => Err(SqlError::Unsupported(format!("the plan node {}", other.display()))),
        }
    }

    fn values(&mut self, batches: Vec<RecordBatch>, schema: DFSchemaRef) -> Stream {
        let arrow = Arc::new(schema.as_arrow().clone());
        let spec = SourceSpec {
            table: "values".into(),
            connector: Arc::new(ValuesSource { batches }),
            computed: None,
            watermark: None,
            watermark_sql: None,
            schema: arrow.clone(),
        };
        let node = self
            .graph
            .add(NodeKind::Source(Arc::new(spec)), 1, vec![], arrow, false);
        Stream {
            node,
            schema,
            updating: false,
            window: None,
            parallelism: 1,
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
            let time = if self.is_proctime(&call.input, &call.time_column)? {
                TimeDomain::ProcessingTime
            } else {
                TimeDomain::EventTime
            };
            let par = input.parallelism;
            return Ok(self.add_operator(
                Arc::new(spec),
                &input,
                Exchange::Forward,
                par,
                schema,
                false,
                Some(time),
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
    fn is_proctime(&self, name: &str, column: &str) -> Result<bool> {
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

    fn aggregate(&mut self, agg: &datafusion::logical_expr::Aggregate) -> Result<Stream> {
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
        let window_key = |name: &str| {
            agg.group_expr
                .iter()
                .position(|e| matches!(e, Expr::Column(c) if c.name == name))
        };
        let window_end = window_key("window_end").filter(|_| input.window.is_some());
        // The keys other than the window columns partition the input (and
        // give each group its key group in state).
        let other_key_indexes: Vec<usize> = agg
            .group_expr
            .iter()
            .enumerate()
            .filter(|(_, e)| !matches!(e, Expr::Column(c) if c.name == "window_start" || c.name == "window_end" || c.name == "window_time"))
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
                    time: input.window.unwrap_or(TimeDomain::EventTime),
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
                Ok(self.add_operator(
                    Arc::new(spec),
                    &input,
                    Exchange::Hash(keys),
                    par,
                    agg.schema.clone(),
                    false,
                    None,
                ))
            }
            None => {
                if input.window.is_some() && window_key("window_start").is_some() {
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
