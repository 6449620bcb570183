//! From DataFusion's optimized logical plan to Weir's job graph.
//!
//! Each supported plan node becomes an operator: scans become sources (plus
//! a window assignment for window table functions), projections and filters
//! become Calc operators, aggregates become window aggregates (when grouped by
//! `window_start`/`window_end` of a window table function) or updating
//! aggregates. Anything else is rejected with the construct's name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan, WriteOp};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion::prelude::SessionContext;
use weir_engine::connectors::{create_sink, SinkFactory};
use weir_engine::graph::{Exchange, JobGraph, NodeId, NodeKind};
use weir_engine::operators::TimeDomain;
use weir_engine::OP_COLUMN;

use crate::catalog::TableDef;
use crate::error::{Result, SqlError};
use crate::window_tvf::WindowCall;

mod aggregate;
mod filter;
mod interval;
mod join;
mod projection;
mod scan;
mod temporal;
mod union;
mod values;

/// A stream produced by part of the plan.
#[derive(Clone)]
pub struct Stream {
    /// The node emitting it.
    pub node: NodeId,
    /// Its logical schema (without the op column).
    pub schema: DFSchemaRef,
    /// Whether rows carry change kinds.
    pub updating: bool,
    /// The window columns a window table function added, if they are
    /// still there.
    pub window: Option<WindowColumns>,
    /// Subtasks of the node.
    pub parallelism: usize,
}

/// Where the columns a window table function added are in a stream, and
/// the time its windows follow. A `GROUP BY` over them is a window
/// aggregate: recognised by where the columns come from (tracked through
/// projections, filters, aliases and unions), not by their names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowColumns {
    /// `window_start`'s index.
    pub start: usize,
    /// `window_end`'s index.
    pub end: usize,
    /// `window_time`'s index, if it was kept.
    pub time: Option<usize>,
    /// Event time or processing time.
    pub domain: TimeDomain,
}

impl WindowColumns {
    /// The window columns after a projection of `exprs` over `input`:
    /// where each lands when the projection passes it on as it is.
    pub(crate) fn through(
        window: Option<WindowColumns>,
        exprs: &[Expr],
        input: &DFSchema,
    ) -> Option<WindowColumns> {
        let w = window?;
        let source = |i: usize| -> Option<usize> {
            let mut e = &exprs[i];
            while let Expr::Alias(a) = e {
                e = a.expr.as_ref();
            }
            match e {
                Expr::Column(c) => input.index_of_column(c).ok(),
                _ => None,
            }
        };
        let find = |col: usize| (0..exprs.len()).find(|i| source(*i) == Some(col));
        Some(WindowColumns {
            start: find(w.start)?,
            end: find(w.end)?,
            time: w.time.and_then(find),
            domain: w.domain,
        })
    }

    /// The window columns after keeping the input columns `indices`.
    pub(crate) fn picked(
        window: Option<WindowColumns>,
        indices: &[usize],
    ) -> Option<WindowColumns> {
        let w = window?;
        let find = |col: usize| indices.iter().position(|i| *i == col);
        Some(WindowColumns {
            start: find(w.start)?,
            end: find(w.end)?,
            time: w.time.and_then(find),
            domain: w.domain,
        })
    }
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
    /// `table.exec.state.ttl`: how long joins keep rows (`None`: forever).
    pub(crate) state_ttl: Option<std::time::Duration>,
    /// `STATE_TTL` hints: a join input's TTL by its alias.
    pub(crate) state_ttl_hints: HashMap<String, std::time::Duration>,
    /// `table.exec.source.idle-timeout` (`None`: off).
    pub(crate) source_idle_timeout: Option<std::time::Duration>,
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
            state_ttl: None,
            state_ttl_hints: HashMap::new(),
            source_idle_timeout: None,
        }
    }

    /// Sets `table.exec.source.idle-timeout`, which sources apply to their splits.
    pub fn with_source_idle_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.source_idle_timeout = timeout.filter(|d| !d.is_zero());
        self
    }

    /// Sets the `STATE_TTL` hints of the statement.
    pub fn with_state_ttl_hints(mut self, hints: HashMap<String, std::time::Duration>) -> Self {
        self.state_ttl_hints = hints;
        self
    }

    /// Sets `table.exec.state.ttl`, which joins record in their plan.
    pub fn with_state_ttl(mut self, ttl: Option<std::time::Duration>) -> Self {
        self.state_ttl = ttl.filter(|d| !d.is_zero());
        self
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
        window: Option<WindowColumns>,
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
                 (a GROUP BY without a window table function, or an outer, anti or regular join over a changelog). \
                 Write it to a sink that accepts updates (print, blackhole), aggregate over a window (TUMBLE, HOP, CUMULATE) \
                 so that results are final, or bound the join in time (an interval join is insert-only)",
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
            LogicalPlan::Projection(p) => self.projection(p),
            LogicalPlan::Filter(f) => self.filter(f),
            LogicalPlan::SubqueryAlias(a) => {
                let mut input = self.plan(&a.input)?;
                input.schema = a.schema.clone();
                Ok(input)
            }
            LogicalPlan::TableScan(scan) => self.table_scan(scan),
            LogicalPlan::Aggregate(agg) => self.aggregate(agg),
            LogicalPlan::EmptyRelation(e) => self.empty_relation(e),
            LogicalPlan::Values(v) => self.values_node(v),
            LogicalPlan::Join(j) => self.join(j),
            LogicalPlan::Window(_) => Err(SqlError::Unsupported("OVER windows".into())),
            LogicalPlan::Sort(_) => Err(SqlError::Unsupported("ORDER BY on a stream (only window aggregates and Top-N, not yet implemented, can order)".into())),
            LogicalPlan::Limit(_) => Err(SqlError::Unsupported("LIMIT on a stream".into())),
            LogicalPlan::Union(u) => self.union_all(u),
            LogicalPlan::Distinct(_) => Err(SqlError::Unsupported("DISTINCT (write it as GROUP BY)".into())),
            LogicalPlan::Subquery(_) => Err(SqlError::Unsupported("subqueries in expressions".into())),
            other => Err(SqlError::Unsupported(format!("the plan node {}", other.display()))),
        }
    }
}
