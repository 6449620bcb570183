//! A session: the catalog, the configuration and the DataFusion context that
//! plans statements; it runs each statement and says what came of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::view::ViewTable;
use datafusion::common::DFSchema;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::Optimizer;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};
use tokio::sync::mpsc;
use weir_engine::connectors::collect::CollectSink;
use weir_engine::connectors::{is_secret, validate_options, METADATA_KEY, METADATA_VIRTUAL};
use weir_engine::{check_restore, start_job, Config, JobHandle};

use crate::catalog::async_trait_shim::Provider;
use crate::catalog::{flink_type_name, ColumnDef, StreamTable, TableDef};
use crate::datastream::DataStream;
use crate::error::{Result, SqlError};
use crate::parser::{
    dialect, parse_statement, split_shift_right, split_statements, ColumnSpec, CreateTable,
    FlinkStatement,
};
use crate::translate::{Catalog, Translator};
use crate::window_tvf::{rewrite, WindowCall};

mod show;

/// What a statement produced.
pub enum StatementResult {
    /// A statement that changed the session (DDL, SET, …).
    Done(String),
    /// Rows to show (`SHOW TABLES`, `DESCRIBE`, `SET`).
    Table {
        /// Column names.
        header: Vec<String>,
        /// Rows of text.
        rows: Vec<Vec<String>>,
    },
    /// Text to show (`EXPLAIN`).
    Text(String),
    /// A job started by `INSERT INTO`.
    Job(JobHandle),
    /// A job started by a `SELECT`, with its results.
    Query(QueryResult),
}

/// A running `SELECT`: its job and its result batches.
pub struct QueryResult {
    /// The job computing the rows.
    pub job: JobHandle,
    /// Result columns (without the change-kind column).
    pub schema: SchemaRef,
    /// Whether rows carry change kinds (`+I/-U/+U/-D`).
    pub updating: bool,
    /// The rows as they are produced.
    pub batches: mpsc::Receiver<RecordBatch>,
}

/// How long a `pipeline.name` stays taken by a checkpointed job of a
/// session: a second job under a taken name would share the first one's
/// checkpoint folder, and a later run could not tell which job to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameScope {
    /// While the job runs: after it ended (stopped, failed, finished) a
    /// new job under its name resumes from its checkpoints (the shell,
    /// embedding programs).
    #[default]
    WhileRunning,
    /// For the whole session: each job of a script has a name of its own
    /// (`weir run` files, piped scripts).
    Session,
}

/// A checkpointed, named job of the session and what it holds.
struct NameClaim {
    name: String,
    dir: String,
    job: JobHandle,
    /// Where the statement that started it begins.
    line: u64,
}

/// A SQL session.
pub struct Session {
    config: Config,
    ctx: SessionContext,
    tables: BTreeMap<String, TableDef>,
    views: BTreeMap<String, LogicalPlan>,
    windows: HashMap<String, WindowCall>,
    next_window: usize,
    /// The `STATE_TTL` hints of the statement being planned.
    state_ttl_hints: HashMap<String, std::time::Duration>,
    jobs: Vec<JobHandle>,
    claims: Vec<NameClaim>,
    name_scope: NameScope,
    /// Each view's query as written, for `SHOW CREATE VIEW`.
    view_sql: BTreeMap<String, String>,
    /// Functions registered through [`Session::register_udf`].
    user_functions: std::collections::BTreeSet<String>,
}

/// A DataFusion context configured for Weir (case-sensitive identifiers,
/// plain UTF-8 strings, no rewrite of `COUNT(DISTINCT)` into two aggregates).
fn datafusion_context(clock: std::sync::Arc<dyn weir_state::Clock>) -> SessionContext {
    let mut config = SessionConfig::new();
    let options = config.options_mut();
    // Flink's identifiers are case-sensitive and its strings are plain UTF-8.
    options.sql_parser.enable_ident_normalization = false;
    options.sql_parser.map_string_types_to_utf8view = false;
    // Positions for validation errors.
    options.sql_parser.collect_spans = true;
    // Rewriting COUNT(DISTINCT) into two aggregates would break windows.
    let rules = Optimizer::new()
        .rules
        .into_iter()
        .filter(|r| r.name() != "single_distinct_aggregation_to_group_by")
        .collect();
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_optimizer_rules(rules)
        .build();
    let ctx = SessionContext::new_with_state(state);
    crate::functions::register(&ctx, clock);
    ctx
}

impl Default for Session {
    fn default() -> Self {
        Self::new(Config::new())
    }
}

impl Session {
    /// A session with this configuration.
    pub fn new(config: Config) -> Self {
        Self {
            ctx: datafusion_context(config.clock()),
            config,
            tables: BTreeMap::new(),
            views: BTreeMap::new(),
            windows: HashMap::new(),
            next_window: 0,
            state_ttl_hints: HashMap::new(),
            jobs: Vec::new(),
            claims: Vec::new(),
            name_scope: NameScope::default(),
            view_sql: BTreeMap::new(),
            user_functions: Default::default(),
        }
    }

    /// How long a job's `pipeline.name` stays taken ([`NameScope`]).
    pub fn set_name_scope(&mut self, scope: NameScope) {
        self.name_scope = scope;
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration, to change.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Registers a scalar function for use in SQL (DataFusion's
    /// `ScalarUDF`); it runs on whole batches, like the built-in ones.
    pub fn register_udf(&mut self, udf: datafusion::logical_expr::ScalarUDF) {
        self.user_functions.insert(udf.name().to_string());
        self.ctx.register_udf(udf);
    }

    /// The names of the session's tables and views and of their columns
    /// (for completion in the shell), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names = self.table_and_view_names();
        for t in self.tables.values() {
            names.extend(t.columns.iter().map(|c| c.field.name().clone()));
        }
        for v in self.views.values() {
            names.extend(v.schema().fields().iter().map(|f| f.name().clone()));
        }
        names.sort();
        names.dedup();
        names
    }

    fn table_and_view_names(&self) -> Vec<String> {
        self.tables
            .keys()
            .chain(self.views.keys())
            .cloned()
            .collect()
    }

    /// Jobs started by this session.
    pub fn jobs(&self) -> &[JobHandle] {
        &self.jobs
    }

    /// Splits a script into statements (each still to be executed).
    pub fn split(sql: &str) -> Result<Vec<Vec<TokenWithSpan>>> {
        split_statements(sql)
    }

    /// Runs every statement of `sql`, stopping at the first error.
    pub async fn execute(&mut self, sql: &str) -> Result<Vec<StatementResult>> {
        let mut results = Vec::new();
        for tokens in split_statements(sql)? {
            results.push(self.execute_tokens(tokens).await?);
        }
        Ok(results)
    }

    /// Runs one statement given as tokens (from [`Session::split`]).
    pub async fn execute_tokens(&mut self, tokens: Vec<TokenWithSpan>) -> Result<StatementResult> {
        let statement = parse_statement(split_shift_right(tokens))?;
        self.run(statement).await
    }

    async fn run(&mut self, statement: FlinkStatement) -> Result<StatementResult> {
        match statement {
            FlinkStatement::CreateTable(ct) => self.create_table(ct),
            FlinkStatement::CreateView {
                name,
                query,
                if_not_exists,
            } => {
                if self.tables.contains_key(&name) || self.views.contains_key(&name) {
                    if if_not_exists {
                        return Ok(StatementResult::Done("Execute statement succeeded.".into()));
                    }
                    return Err(SqlError::Plan(format!(
                        "a table or view named '{name}' already exists"
                    )));
                }
                let sql: String = query.iter().map(|t| t.token.to_string()).collect();
                let plan = self.logical_plan(query).await?;
                let view = ViewTable::new(plan.clone(), None);
                self.ctx.register_table(name.as_str(), Arc::new(view))?;
                self.view_sql.insert(name.clone(), sql);
                self.views.insert(name, plan);
                Ok(StatementResult::Done("Execute statement succeeded.".into()))
            }
            FlinkStatement::Drop {
                name,
                if_exists,
                view,
            } => {
                let existed = if view {
                    self.view_sql.remove(&name);
                    self.views.remove(&name).is_some()
                } else {
                    self.tables.remove(&name).is_some()
                };
                if !existed {
                    if if_exists {
                        return Ok(StatementResult::Done("Execute statement succeeded.".into()));
                    }
                    let what = if view { "view" } else { "table" };
                    return Err(SqlError::Plan(format!("{what} '{name}' does not exist")));
                }
                self.ctx.deregister_table(name.as_str())?;
                Ok(StatementResult::Done("Execute statement succeeded.".into()))
            }
            FlinkStatement::ShowTables => {
                let mut names = self.table_and_view_names();
                names.sort();
                Ok(StatementResult::Table {
                    header: vec!["table name".into()],
                    rows: names.into_iter().map(|n| vec![n]).collect(),
                })
            }
            FlinkStatement::ShowFunctions { user } => Ok(self.show_functions(user)),
            FlinkStatement::ShowCreate { name, view } => self.show_create(&name, view),
            FlinkStatement::ShowColumns { name, like } => self.show_columns(&name, like.as_ref()),
            FlinkStatement::ShowCatalogs => Ok(self.show_catalog_items("catalogs")),
            FlinkStatement::ShowDatabases => Ok(self.show_catalog_items("databases")),
            FlinkStatement::ShowCurrentCatalog => Ok(self.show_catalog_items("current catalog")),
            FlinkStatement::ShowCurrentDatabase => Ok(self.show_catalog_items("current database")),
            FlinkStatement::Use { name, catalog } => self.use_namespace(&name, catalog),
            FlinkStatement::ShowJobs => Ok(StatementResult::Table {
                header: [
                    "job id",
                    "job name",
                    "status",
                    "state entries",
                    "state size",
                ]
                .map(String::from)
                .to_vec(),
                rows: self
                    .jobs
                    .iter()
                    .map(|job| {
                        let state = job.state_size();
                        vec![
                            job.id().to_string(),
                            job.name().to_string(),
                            job.status().flink_name().to_string(),
                            state.entries.to_string(),
                            human_bytes(state.bytes),
                        ]
                    })
                    .collect(),
            }),
            FlinkStatement::ShowCheckpoints(job_id) => {
                if let Some(id) = &job_id {
                    if !self.jobs.iter().any(|j| j.id() == id) {
                        return Err(SqlError::Plan(format!(
                            "no job '{id}' in this session (SHOW JOBS lists them)"
                        )));
                    }
                }
                let mut rows = Vec::new();
                for job in self
                    .jobs
                    .iter()
                    .filter(|j| job_id.as_deref().is_none_or(|id| j.id() == id))
                {
                    // Checkpoints that retention deleted are gone: not listed.
                    for c in job.checkpoints().into_iter().filter(|c| !c.discarded) {
                        rows.push(vec![
                            job.id().to_string(),
                            c.id.to_string(),
                            if c.savepoint {
                                "savepoint"
                            } else {
                                "checkpoint"
                            }
                            .to_string(),
                            c.status.to_string(),
                            format_time_ms(c.trigger_time_ms),
                            format!("{} ms", c.duration.as_millis()),
                            human_bytes(c.state_bytes),
                            human_bytes(c.uploaded_bytes),
                            if c.unaligned { "unaligned" } else { "aligned" }.to_string(),
                            format!("{} ms", c.alignment.as_millis()),
                            c.path.clone().or(c.failure.clone()).unwrap_or_default(),
                        ]);
                    }
                }
                Ok(StatementResult::Table {
                    header: [
                        "job id",
                        "checkpoint",
                        "type",
                        "status",
                        "trigger time",
                        "duration",
                        "state size",
                        "uploaded",
                        "barriers",
                        "alignment",
                        "path or failure",
                    ]
                    .map(String::from)
                    .to_vec(),
                    rows,
                })
            }
            FlinkStatement::ShowViews => Ok(StatementResult::Table {
                header: vec!["view name".into()],
                rows: self.views.keys().map(|n| vec![n.clone()]).collect(),
            }),
            FlinkStatement::Describe(name) => self.describe(&name),
            FlinkStatement::Set(None) => Ok(StatementResult::Table {
                header: vec!["key".into(), "value".into()],
                rows: self
                    .config
                    .entries()
                    .into_iter()
                    .map(|(k, v, _)| vec![k, v])
                    .collect(),
            }),
            FlinkStatement::Set(Some((k, v))) => {
                self.config.set(&k, &v)?;
                Ok(StatementResult::Done(
                    "Session property has been set.".into(),
                ))
            }
            FlinkStatement::Reset(key) => {
                self.config.reset(key.as_deref())?;
                Ok(StatementResult::Done(
                    "Session property has been reset.".into(),
                ))
            }
            FlinkStatement::Explain(inner) => self.explain(*inner).await,
            FlinkStatement::ExplainRestore { path, statement } => {
                self.explain_restore(&path, *statement).await
            }
            FlinkStatement::StopJob {
                id,
                savepoint,
                drain,
            } => {
                let job = self.job(&id)?;
                if job.status() != weir_engine::JobStatus::Running {
                    return Err(SqlError::Plan(format!(
                        "job '{id}' is {}, not running: nothing to stop",
                        job.status().flink_name()
                    )));
                }
                if !savepoint && !drain {
                    job.cancel();
                    let _ = job.wait().await;
                    return Ok(StatementResult::Done(format!("Job {id} stopped.")));
                }
                let path = job.stop_with_savepoint(None, drain).await?;
                Ok(StatementResult::Table {
                    header: vec!["savepoint path".into()],
                    rows: vec![vec![path]],
                })
            }
            FlinkStatement::TriggerSavepoint { id, target } => {
                let job = self.job(&id)?;
                let path = job.savepoint(target.as_deref()).await?;
                Ok(StatementResult::Table {
                    header: vec!["savepoint path".into()],
                    rows: vec![vec![path]],
                })
            }
            FlinkStatement::DisposeSavepoint(path) => {
                weir_checkpoint::dispose_savepoint(&path, &self.config.storage_options())
                    .await
                    .map_err(|e| SqlError::Plan(e.to_string()))?;
                Ok(StatementResult::Done(format!("Savepoint {path} disposed.")))
            }
            FlinkStatement::Insert(tokens) => {
                let line = first_line(&tokens);
                let plan = self.logical_plan(tokens).await?;
                let name = self.job_name(&plan);
                let mut translator = self.translator();
                translator.insert(&plan)?;
                let graph = translator.graph;
                Ok(StatementResult::Job(self.start(graph, &name, line).await?))
            }
            FlinkStatement::StatementSet(inserts) => {
                let line = inserts.first().map_or(0, |t| first_line(t));
                let mut plans = Vec::with_capacity(inserts.len());
                for tokens in inserts {
                    plans.push(self.logical_plan(tokens).await?);
                }
                let name = self.config.get("pipeline.name").unwrap_or_else(|| {
                    let targets: Vec<String> = plans
                        .iter()
                        .filter_map(|p| match p {
                            LogicalPlan::Dml(d) => Some(d.table_name.to_string()),
                            _ => None,
                        })
                        .collect();
                    format!("insert-into_{}", targets.join(","))
                });
                // One graph: the INSERTs share the sources they read.
                let mut translator = self.translator();
                for plan in &plans {
                    translator.insert(plan)?;
                }
                let graph = translator.graph;
                Ok(StatementResult::Job(self.start(graph, &name, line).await?))
            }
            FlinkStatement::Query(tokens) => {
                let line = first_line(&tokens);
                let plan = self.logical_plan(tokens).await?;
                let name = self.job_name(&plan);
                let (tx, rx) = mpsc::channel(16);
                let mut translator = self.translator();
                let stream = translator.plan(&plan)?;
                translator.add_sink(&stream, Arc::new(CollectSink::new(tx)), 1, "collect");
                let graph = translator.graph;
                let job = self.start(graph, &name, line).await?;
                Ok(StatementResult::Query(QueryResult {
                    job,
                    schema: Arc::new(stream.schema.as_arrow().clone()),
                    updating: stream.updating,
                    batches: rx,
                }))
            }
        }
    }

    /// Refuses a job whose `pipeline.name` another job of the session holds
    /// (with checkpointing on, in the same checkpoint directory); returns
    /// the directory the new job's name will hold, if it holds one.
    /// A stream of table or view `name`, for Rust steps after it
    /// ([`DataStream::key_by`], then a function, then
    /// [`DataStream::insert_into`]).
    pub fn table(&mut self, name: &str) -> Result<DataStream<'_>> {
        let schema = if let Some(t) = self.tables.get(name) {
            t.schema.clone()
        } else if let Some(v) = self.views.get(name) {
            Arc::new(v.schema().as_arrow().clone())
        } else {
            return Err(SqlError::Plan(format!("Object '{name}' not found")));
        };
        Ok(DataStream::new(self, name, schema))
    }

    /// A table of the catalog.
    pub(crate) fn table_def(&self, name: &str) -> Option<TableDef> {
        self.tables.get(name).cloned()
    }

    /// Starts `graph` as job `name` (the statement at `line`; 0 for the
    /// Rust API): refuses a restore that cannot work and a second
    /// checkpointed job under a held name, then starts and remembers it.
    pub(crate) async fn start(
        &mut self,
        graph: weir_engine::JobGraph,
        name: &str,
        line: u64,
    ) -> Result<JobHandle> {
        check_restore(&graph, &self.config).await?;
        let dir = self.check_name_free(name, line)?;
        let job = start_job(&graph, &self.config, name)?;
        self.claim(dir, name, &job, line);
        self.jobs.push(job.clone());
        Ok(job)
    }

    fn check_name_free(&self, name: &str, line: u64) -> Result<Option<String>> {
        let Some(settings) = self.config.checkpoint_settings()? else {
            return Ok(None);
        };
        if self.config.get("pipeline.name").is_none() {
            return Ok(None);
        }
        let holder = self.claims.iter().find(|c| {
            c.name == name
                && c.dir == settings.dir
                && (self.name_scope == NameScope::Session
                    || c.job.status() == weir_engine::JobStatus::Running)
        });
        if let Some(c) = holder {
            return Err(SqlError::Plan(format!(
                "the statement at line {line}: pipeline.name '{name}' already names job {} ({}, started by the statement at line {}) of this session: two jobs under one name would share one checkpoint folder, and a restart could not tell them apart. Give each INSERT its own name: SET 'pipeline.name' = '<another name>' before it",
                c.job.id(),
                c.job.status().flink_name(),
                c.line
            )));
        }
        Ok(Some(settings.dir))
    }

    fn claim(&mut self, dir: Option<String>, name: &str, job: &JobHandle, line: u64) {
        if let Some(dir) = dir {
            self.claims.push(NameClaim {
                name: name.to_string(),
                dir,
                job: job.clone(),
                line,
            });
        }
    }

    fn job_name(&self, plan: &LogicalPlan) -> String {
        self.config
            .get("pipeline.name")
            .unwrap_or_else(|| match plan {
                LogicalPlan::Dml(d) => format!("insert-into_{}", d.table_name),
                _ => "collect".into(),
            })
    }

    pub(crate) fn translator(&self) -> Translator<'_> {
        Translator::new(
            Catalog {
                tables: &self.tables,
                views: &self.views,
                windows: &self.windows,
                ctx: &self.ctx,
            },
            self.config.parallelism(),
        )
        .with_state_ttl(self.config.duration("table.exec.state.ttl"))
        .with_source_idle_timeout(self.config.duration("table.exec.source.idle-timeout"))
        .with_state_ttl_hints(self.state_ttl_hints.clone())
    }

    /// Rewrites window functions, parses with sqlparser, plans and optimizes.
    async fn logical_plan(&mut self, tokens: Vec<TokenWithSpan>) -> Result<LogicalPlan> {
        self.state_ttl_hints = crate::hints::state_ttl_hints(&tokens)?;
        let (tokens, calls) = rewrite(tokens, &mut self.next_window)?;
        for call in calls {
            self.register_window(call).await?;
        }
        let (tokens, as_ofs) = crate::temporal::cut(tokens)?;
        let d = dialect();
        let mut parser = Parser::new(&d).with_tokens_with_locations(tokens.clone());
        let mut statement = parser.parse_statement()?;
        if let Err(e) = crate::limits::check_depth(&statement) {
            // Dropping a tree that deep recurses as deep: let it go.
            std::mem::forget(statement);
            return Err(e);
        }
        crate::names::name_select_items(&mut statement);
        crate::temporal::attach(&mut statement, &as_ofs, &|table| {
            self.translator().version_time_column(table)
        })?;
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(SqlError::Parse(format!(
                "unexpected {} at {}",
                next.token,
                crate::parser::position(&next)
            )));
        }
        let plan = self
            .ctx
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(statement)))
            .await
            .map_err(|e| crate::error::located(e, &tokens))?;
        Ok(self.ctx.state().optimize(&plan)?)
    }

    async fn register_window(&mut self, call: WindowCall) -> Result<()> {
        let provider = self
            .ctx
            .table_provider(call.input.as_str())
            .await
            .map_err(|_| {
                SqlError::Plan(format!(
                    "table or view '{}' (input of the window function at {}) not found",
                    call.input, call.position
                ))
            })?;
        let schema = provider.schema();
        let Ok(field) = schema.field_with_name(&call.time_column) else {
            return Err(SqlError::Plan(format!(
                "DESCRIPTOR({}) at {}: '{}' has no column '{}'; its columns are {}",
                call.time_column,
                call.position,
                call.input,
                call.time_column,
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if !matches!(field.data_type(), DataType::Timestamp(_, _)) {
            return Err(SqlError::Plan(format!(
                "DESCRIPTOR({}) at {}: the time attribute must be a TIMESTAMP, but it is {}",
                call.time_column,
                call.position,
                flink_type_name(field.data_type())
            )));
        }
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let ts = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None);
        for n in ["window_start", "window_end", "window_time"] {
            fields.push(Field::new(n, ts.clone(), false));
        }
        let table = StreamTable::new(&call.table, Arc::new(Schema::new(fields)));
        self.ctx
            .register_table(call.table.as_str(), Arc::new(Provider(table)))?;
        self.windows.insert(call.table.clone(), call);
        Ok(())
    }

    fn create_table(&mut self, ct: CreateTable) -> Result<StatementResult> {
        if self.tables.contains_key(&ct.name) || self.views.contains_key(&ct.name) {
            if ct.if_not_exists {
                return Ok(StatementResult::Done("Execute statement succeeded.".into()));
            }
            return Err(SqlError::Plan(format!(
                "a table or view named '{}' already exists",
                ct.name
            )));
        }
        let physical: Vec<Field> = ct
            .columns
            .iter()
            .filter_map(|c| match c {
                ColumnSpec::Physical(f) => Some(f.clone().with_metadata(Default::default())),
                _ => None,
            })
            .collect();
        let physical_df = DFSchema::try_from(Schema::new(physical.clone()))?;
        let mut columns = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in &ct.columns {
            let def = match c {
                ColumnSpec::Physical(f) => ColumnDef {
                    field: f.clone().with_metadata(Default::default()),
                    computed: None,
                    metadata: f
                        .metadata()
                        .get(METADATA_KEY)
                        .map(|k| (k.clone(), f.metadata().contains_key(METADATA_VIRTUAL))),
                },
                ColumnSpec::Computed(name, sql) => {
                    let expr = self.ctx.parse_sql_expr(sql, &physical_df).map_err(|e| {
                        SqlError::Plan(format!(
                            "computed column '{name}' AS {sql}: {}",
                            SqlError::from(e)
                        ))
                    })?;
                    let physical =
                        self.ctx
                            .create_physical_expr(expr, &physical_df)
                            .map_err(|e| {
                                SqlError::Plan(format!(
                                    "computed column '{name}' AS {sql}: {}",
                                    SqlError::from(e)
                                ))
                            })?;
                    let arrow = physical_df.as_arrow();
                    let (t, nullable) = (physical.data_type(arrow)?, physical.nullable(arrow)?);
                    ColumnDef {
                        field: Field::new(name, t, nullable),
                        computed: Some(sql.clone()),
                        metadata: None,
                    }
                }
            };
            if !seen.insert(def.field.name().clone()) {
                return Err(SqlError::Plan(format!(
                    "column '{}' is declared twice in table '{}'",
                    def.field.name(),
                    ct.name
                )));
            }
            columns.push(def);
        }
        let schema = Arc::new(Schema::new(
            columns.iter().map(|c| c.field.clone()).collect::<Vec<_>>(),
        ));
        if let Some((column, sql)) = &ct.watermark {
            let Ok(field) = schema.field_with_name(column) else {
                return Err(SqlError::Plan(format!(
                    "WATERMARK FOR {column}: table '{}' has no column '{column}'",
                    ct.name
                )));
            };
            if !matches!(field.data_type(), DataType::Timestamp(_, _)) {
                return Err(SqlError::Plan(format!(
                    "WATERMARK FOR {column}: the rowtime column must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), but it is {}",
                    flink_type_name(field.data_type())
                )));
            }
            let full_df = DFSchema::try_from(schema.as_ref().clone())?;
            let expr = self.ctx.parse_sql_expr(sql, &full_df)?;
            let t = self
                .ctx
                .create_physical_expr(expr, &full_df)
                .and_then(|p| p.data_type(full_df.as_arrow()))
                .map_err(|e| {
                    SqlError::Plan(format!("WATERMARK expression {sql}: {}", SqlError::from(e)))
                })?;
            if !matches!(t, DataType::Timestamp(_, _)) {
                return Err(SqlError::Plan(format!(
                    "WATERMARK expression {sql} must return a TIMESTAMP, but returns {}",
                    flink_type_name(&t)
                )));
            }
        }
        for k in &ct.primary_key {
            if schema.field_with_name(k).is_err() {
                return Err(SqlError::Plan(format!(
                    "PRIMARY KEY column '{k}' is not a column of '{}'",
                    ct.name
                )));
            }
        }
        let def = TableDef {
            name: ct.name.clone(),
            columns,
            watermark: ct.watermark.clone(),
            primary_key: ct.primary_key.clone(),
            options: ct.options.clone(),
            schema: schema.clone(),
        };
        validate_options(def.connector(), &def.options, def.physical_schema()).map_err(|e| {
            SqlError::Engine(weir_engine::EngineError::Config(format!(
                "table '{}': {e}",
                ct.name
            )))
        })?;
        self.ctx.register_table(
            ct.name.as_str(),
            Arc::new(Provider(StreamTable::new(&ct.name, schema))),
        )?;
        self.tables.insert(ct.name.clone(), def);
        Ok(StatementResult::Done("Execute statement succeeded.".into()))
    }

    fn describe(&self, name: &str) -> Result<StatementResult> {
        let header = ["name", "type", "null", "key", "extras", "watermark"]
            .map(String::from)
            .to_vec();
        if let Some(t) = self.tables.get(name) {
            let rows = t
                .columns
                .iter()
                .map(|c| {
                    let n = c.field.name();
                    let key = if t.primary_key.contains(n) {
                        format!("PRI({})", t.primary_key.join(", "))
                    } else {
                        String::new()
                    };
                    let wm = t
                        .watermark
                        .as_ref()
                        .filter(|(col, _)| col == n)
                        .map(|(_, e)| e.clone())
                        .unwrap_or_default();
                    let proctime = c
                        .computed
                        .as_deref()
                        .is_some_and(crate::functions::proctime::is_proctime_call);
                    let ty = if !wm.is_empty() {
                        format!("{} *ROWTIME*", flink_type_name(c.field.data_type()))
                    } else if proctime {
                        format!("{} *PROCTIME*", flink_type_name(c.field.data_type()))
                    } else {
                        flink_type_name(c.field.data_type())
                    };
                    vec![
                        n.clone(),
                        ty,
                        if c.field.is_nullable() {
                            "TRUE".into()
                        } else {
                            "FALSE".into()
                        },
                        key,
                        c.computed
                            .as_ref()
                            .map(|e| format!("AS {e}"))
                            .unwrap_or_default(),
                        wm,
                    ]
                })
                .collect();
            return Ok(StatementResult::Table { header, rows });
        }
        if let Some(v) = self.views.get(name) {
            let rows = v
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    vec![
                        f.name().clone(),
                        flink_type_name(f.data_type()),
                        if f.is_nullable() {
                            "TRUE".into()
                        } else {
                            "FALSE".into()
                        },
                        String::new(),
                        String::new(),
                        String::new(),
                    ]
                })
                .collect();
            return Ok(StatementResult::Table { header, rows });
        }
        Err(SqlError::Plan(format!(
            "table or view '{name}' does not exist"
        )))
    }

    /// A job of this session by id.
    fn job(&self, id: &str) -> Result<JobHandle> {
        self.jobs
            .iter()
            .find(|j| j.id() == id)
            .cloned()
            .ok_or_else(|| {
                SqlError::Plan(format!(
                    "no job '{id}' in this session (SHOW JOBS lists them)"
                ))
            })
    }

    /// `EXPLAIN RESTORE FROM '<path>' INSERT …`: plans the statement, then
    /// shows what restoring the snapshot into its job would do.
    async fn explain_restore(
        &mut self,
        path: &str,
        inner: FlinkStatement,
    ) -> Result<StatementResult> {
        let FlinkStatement::Insert(tokens) = inner else {
            return Err(SqlError::Unsupported(
                "EXPLAIN RESTORE of a statement other than INSERT".into(),
            ));
        };
        let plan = self.logical_plan(tokens).await?;
        let mut translator = self.translator();
        translator.insert(&plan)?;
        let graph = translator.graph;
        let restore = weir_engine::plan_restore(&graph, &self.config, path).await?;
        let verdict = match restore.check(
            self.config
                .bool("execution.savepoint.ignore-unclaimed-state"),
        ) {
            Ok(warnings) if warnings.is_empty() => {
                "The statement can be restored from this snapshot.".to_string()
            }
            Ok(warnings) => format!(
                "The statement can be restored from this snapshot; {}.",
                warnings.join("; ")
            ),
            Err(e) => format!("The restore would fail: {e}"),
        };
        Ok(StatementResult::Text(format!(
            "== Restore from {path} ==\n{}\n{verdict}",
            restore.explain()
        )))
    }

    async fn explain(&mut self, inner: FlinkStatement) -> Result<StatementResult> {
        let (plan, insert) = match inner {
            FlinkStatement::Insert(tokens) => (self.logical_plan(tokens).await?, true),
            FlinkStatement::Query(tokens) => (self.logical_plan(tokens).await?, false),
            _ => {
                return Err(SqlError::Unsupported(
                    "EXPLAIN of a statement other than a query or INSERT".into(),
                ))
            }
        };
        let mut translator = self.translator();
        if insert {
            translator.insert(&plan)?;
        } else {
            let stream = translator.plan(&plan)?;
            let (tx, _rx) = mpsc::channel(1);
            translator.add_sink(&stream, Arc::new(CollectSink::new(tx)), 1, "collect");
        }
        let graph = translator.graph;
        let text = format!(
            "== Optimized Logical Plan ==\n{}\n\n== Job Graph ==\n{}",
            plan.display_indent(),
            graph.explain()
        );
        Ok(StatementResult::Text(readable_names(&redact(
            &text,
            &self.tables,
        ))))
    }
}

/// Shows the columns DataFusion's optimizer introduces for nested fields it
/// reads early (`get_field(bid, price) AS __datafusion_extracted_3`) by the
/// field they hold (`bid.price`), as Flink's plans show nested fields.
fn readable_names(text: &str) -> String {
    static DEFINITION: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"get_field\((?:[A-Za-z_0-9]+\.)?([A-Za-z_0-9]+)(?:@\d+)?, (?:Utf8\(")?([A-Za-z_0-9]+)(?:"\))?\) AS (__datafusion_extracted_\d+)"#,
        )
        .ok()
    });
    static ALIAS: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"__datafusion_extracted_(\d+)").ok());
    let (Some(definition), Some(alias)) = (DEFINITION.as_ref(), ALIAS.as_ref()) else {
        return text.to_string();
    };
    let names: HashMap<&str, String> = definition
        .captures_iter(text)
        .filter_map(|c| {
            Some((
                c.get(3)?.as_str(),
                format!("{}.{}", c.get(1)?.as_str(), c.get(2)?.as_str()),
            ))
        })
        .collect();
    // `COUNT(*)` is planned as a count of the literal 1.
    let text = text.replace("count(Int64(1))", "COUNT(*)");
    let text = readable_intervals(&text);
    alias
        .replace_all(&text, |c: &regex::Captures| {
            names
                .get(&c[0])
                .cloned()
                .unwrap_or_else(|| format!("$expr{}", &c[1]))
        })
        .into_owned()
}

/// Shows interval literals as SQL writes them (`INTERVAL '60' SECOND`)
/// instead of DataFusion's debug form.
fn readable_intervals(text: &str) -> String {
    static INTERVAL: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"IntervalMonthDayNano\("IntervalMonthDayNano \{ months: (-?\d+), days: (-?\d+), nanoseconds: (-?\d+) \}"\)"#,
        )
        .ok()
    });
    let Some(interval) = INTERVAL.as_ref() else {
        return text.to_string();
    };
    interval
        .replace_all(text, |c: &regex::Captures| {
            let months: i64 = c[1].parse().unwrap_or(0);
            let days: i64 = c[2].parse().unwrap_or(0);
            let nanos: i64 = c[3].parse().unwrap_or(0);
            match (months, days, nanos) {
                (m, 0, 0) if m != 0 => format!("INTERVAL '{m}' MONTH"),
                (0, d, 0) => format!("INTERVAL '{d}' DAY"),
                (0, 0, n) if n % 1_000_000_000 == 0 => {
                    format!("INTERVAL '{}' SECOND", n / 1_000_000_000)
                }
                (0, 0, n) if n % 1_000_000 == 0 => {
                    format!("INTERVAL '{}' MILLISECOND", n / 1_000_000)
                }
                _ => c[0].to_string(),
            }
        })
        .into_owned()
}

/// Replaces secret option values in text shown to users.
fn redact(text: &str, tables: &BTreeMap<String, TableDef>) -> String {
    let mut out = text.to_string();
    for t in tables.values() {
        for (k, v) in &t.options {
            if is_secret(k) && !v.is_empty() {
                out = out.replace(v.as_str(), "******");
            }
        }
    }
    out
}

impl QueryResult {
    /// The next batch of results; `None` when the query has ended.
    pub async fn next(&mut self) -> Option<RecordBatch> {
        self.batches.recv().await
    }

    /// Waits for a bounded query to finish and returns all its rows (on an
    /// updating query, the whole changelog, with the op column last).
    pub async fn collect(mut self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        while let Some(b) = self.batches.recv().await {
            out.push(b);
        }
        self.job.wait().await?;
        Ok(out)
    }
}

/// Bytes as Flink's web UI shows them (`1.5 MB`).
/// The line a statement's first token is on.
fn first_line(tokens: &[TokenWithSpan]) -> u64 {
    tokens
        .iter()
        .find(|t| !matches!(t.token, Token::Whitespace(_)))
        .map_or(0, |t| t.span.start.line)
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A time in ms since the epoch as `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
fn format_time_ms(ms: i64) -> String {
    datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| ms.to_string())
}
