//! Rust functions between SQL tables, in one checkpointed job:
//!
//! ```ignore
//! session
//!     .table("payments")?          // a table or view of the catalog
//!     .key_by(["card"])?           // partition by key, as GROUP BY does
//!     .process(SmallThenLarge)?    // a KeyedProcessFunction
//!     .insert_into("alerts")       // a table of the catalog
//!     .await?;
//! ```
//!
//! The source side is planned like a `SELECT * FROM <table>` (views,
//! computed columns and watermarks included); the function is a node of the
//! same job graph, its state and timers owned by the runtime, so the job
//! checkpoints, restores, rescales and changes backend like a SQL job.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use weir_engine::connectors::create_sink;
use weir_engine::graph::{Exchange, NodeKind};
use weir_engine::operators::keyed_process::{
    KeyedProcessFunction, KeyedProcessSpec, ProcessFunction, ProcessSpec,
};
use weir_engine::JobHandle;

use crate::error::{Result, SqlError};
use crate::session::Session;
use crate::translate::Stream;

enum Step {
    KeyBy(Vec<String>),
    Process {
        name: String,
        factory: weir_engine::operators::keyed_process::FunctionFactory,
        output: SchemaRef,
    },
    ProcessAll {
        name: String,
        factory: weir_engine::operators::keyed_process::ProcessFunctionFactory,
        output: SchemaRef,
    },
}

/// A function's name: its type's, without the path.
fn type_name<F>() -> String {
    std::any::type_name::<F>()
        .rsplit("::")
        .next()
        .unwrap_or("function")
        .to_string()
}

/// A stream of a catalog table, with Rust steps after it; started by
/// [`DataStream::insert_into`].
pub struct DataStream<'a> {
    session: &'a mut Session,
    source: String,
    schema: SchemaRef,
    steps: Vec<Step>,
}

/// A [`DataStream`] partitioned by key: what a keyed function runs on.
pub struct KeyedStream<'a> {
    inner: DataStream<'a>,
}

impl<'a> DataStream<'a> {
    pub(crate) fn new(session: &'a mut Session, source: &str, schema: SchemaRef) -> Self {
        Self {
            session,
            source: source.to_string(),
            schema,
            steps: Vec::new(),
        }
    }

    /// The columns of the stream at this step.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Partitions the stream by these columns: rows with equal keys reach
    /// the same subtask, and keyed state is scoped to the key.
    pub fn key_by<I, S>(mut self, columns: I) -> Result<KeyedStream<'a>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let columns: Vec<String> = columns
            .into_iter()
            .map(|c| c.as_ref().to_string())
            .collect();
        if columns.is_empty() {
            return Err(SqlError::Plan("key_by needs at least one column".into()));
        }
        for c in &columns {
            if self.schema.index_of(c).is_err() {
                return Err(SqlError::Plan(format!(
                    "key_by: no column '{c}' in '{}' (columns: {})",
                    self.source,
                    self.schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        self.steps.push(Step::KeyBy(columns));
        Ok(KeyedStream { inner: self })
    }

    /// Runs the non-keyed `function` on the stream, one instance per subtask,
    /// with operator state (lists split evenly or given whole when the job
    /// is restored at another parallelism).
    pub fn process<F>(self, function: F) -> Result<DataStream<'a>>
    where
        F: ProcessFunction + Clone + Sync + 'static,
    {
        self.process_named(&type_name::<F>(), function)
    }

    /// [`DataStream::process`] under an explicit name.
    pub fn process_named<F>(mut self, name: &str, function: F) -> Result<DataStream<'a>>
    where
        F: ProcessFunction + Clone + Sync + 'static,
    {
        let output = function.output_schema();
        self.schema = output.clone();
        self.steps.push(Step::ProcessAll {
            name: name.to_string(),
            factory: Arc::new(move || Box::new(function.clone())),
            output,
        });
        Ok(self)
    }

    /// Writes the stream into table `table` of the catalog and starts the
    /// job (named by `pipeline.name`, else `insert-into_<table>`), with the
    /// session's configuration: checkpoints, restore, parallelism.
    pub async fn insert_into(self, table: &str) -> Result<JobHandle> {
        let session = self.session;
        let target = session
            .table_def(table)
            .ok_or_else(|| SqlError::Plan(format!("Object '{table}' not found")))?;
        let mut translator = session.translator();
        let mut stream = translator.scan_named(&self.source)?;
        let mut keys: Option<Vec<String>> = None;
        for step in self.steps {
            match step {
                Step::KeyBy(columns) => keys = Some(columns),
                Step::Process {
                    name,
                    factory,
                    output,
                } => {
                    let Some(columns) = keys.take() else {
                        return Err(SqlError::Plan(format!(
                            "function '{name}' needs a keyed stream: key_by first"
                        )));
                    };
                    if stream.updating {
                        return Err(SqlError::Unsupported(format!(
                            "function '{name}' over a changelog (an updating aggregate's output)"
                        )));
                    }
                    stream =
                        add_process(&mut translator, &stream, name, factory, output, &columns)?;
                }
                Step::ProcessAll {
                    name,
                    factory,
                    output,
                } => {
                    if stream.updating {
                        return Err(SqlError::Unsupported(format!(
                            "function '{name}' over a changelog (an updating aggregate's output)"
                        )));
                    }
                    let spec = ProcessSpec {
                        name,
                        function: factory,
                        output_schema: output.clone(),
                    };
                    let parallelism = translator.parallelism;
                    let node = translator.graph.add(
                        NodeKind::Operator(Arc::new(spec)),
                        parallelism,
                        vec![(stream.node, Exchange::Forward)],
                        output.clone(),
                        false,
                    );
                    stream = Stream {
                        node,
                        schema: Arc::new(DFSchema::try_from(output.as_ref().clone())?),
                        updating: false,
                        window: None,
                        parallelism,
                    };
                }
            }
        }
        let sink = create_sink(
            target.connector(),
            &target.options,
            target.physical_schema(),
        )?;
        let produced = stream.schema.as_arrow().clone();
        let wanted = target.physical_schema();
        let fits = produced.fields().len() == wanted.fields().len()
            && produced
                .fields()
                .iter()
                .zip(wanted.fields())
                .all(|(a, b)| a.data_type() == b.data_type());
        if !fits {
            let show = |s: &datafusion::arrow::datatypes::Schema| {
                s.fields()
                    .iter()
                    .map(|f| format!("{} {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(SqlError::Plan(format!(
                "the stream's columns ({}) do not match table '{table}' ({})",
                show(&produced),
                show(&wanted)
            )));
        }
        let parallelism = stream.parallelism;
        translator.add_sink(&stream, sink, parallelism, table);
        let graph = translator.graph;
        let name = session
            .config()
            .get("pipeline.name")
            .unwrap_or_else(|| format!("insert-into_{table}"));
        session.start(graph, &name, 0).await
    }
}

impl<'a> KeyedStream<'a> {
    /// Runs `function` on the keyed stream, one instance per subtask, named
    /// after its type (its name is part of its state's shape: a savepoint
    /// restores only into the same function).
    pub fn process<F>(self, function: F) -> Result<DataStream<'a>>
    where
        F: KeyedProcessFunction + Clone + Sync + 'static,
    {
        self.process_named(&type_name::<F>(), function)
    }

    /// [`KeyedStream::process`] under an explicit name.
    pub fn process_named<F>(mut self, name: &str, function: F) -> Result<DataStream<'a>>
    where
        F: KeyedProcessFunction + Clone + Sync + 'static,
    {
        let output = function.output_schema();
        self.inner.schema = output.clone();
        self.inner.steps.push(Step::Process {
            name: name.to_string(),
            factory: Arc::new(move || Box::new(function.clone())),
            output,
        });
        Ok(self.inner)
    }
}

fn add_process(
    translator: &mut crate::translate::Translator<'_>,
    input: &Stream,
    name: String,
    factory: weir_engine::operators::keyed_process::FunctionFactory,
    output: SchemaRef,
    columns: &[String],
) -> Result<Stream> {
    let input_schema = Arc::new(input.schema.as_arrow().clone());
    let keys: Vec<usize> = columns
        .iter()
        .map(|c| {
            input_schema
                .index_of(c)
                .map_err(|_| SqlError::Plan(format!("key_by: no column '{c}'")))
        })
        .collect::<Result<_>>()?;
    let exprs = keys
        .iter()
        .map(|i| {
            Arc::new(datafusion::physical_expr::expressions::Column::new(
                input_schema.field(*i).name(),
                *i,
            )) as Arc<dyn datafusion::physical_expr::PhysicalExpr>
        })
        .collect();
    let spec = KeyedProcessSpec {
        name,
        function: factory,
        keys,
        key_names: columns.to_vec(),
        output_schema: output.clone(),
        input_schema,
    };
    let parallelism = translator.parallelism;
    let node = translator.graph.add(
        NodeKind::Operator(Arc::new(spec)),
        parallelism,
        vec![(input.node, Exchange::Hash(exprs))],
        output.clone(),
        false,
    );
    Ok(Stream {
        node,
        schema: Arc::new(DFSchema::try_from(output.as_ref().clone())?),
        updating: false,
        window: None,
        parallelism,
    })
}
