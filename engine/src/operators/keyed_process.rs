//! Rust functions between SQL tables: a [`KeyedProcessFunction`] sees the
//! rows of a stream partitioned by key, one row at a time, with keyed state
//! (`ValueState`, `ListState`, `MapState`, `ReducingState`,
//! `AggregatingState`, each with its own TTL) scoped to the row's key, and
//! timers per key; it emits rows of a schema it declares.
//!
//! The runtime owns the state: it creates the backend, restores and
//! snapshots it (and the timers) as for SQL operators, so a job with a
//! function in it is checkpointed, restored after a crash, rescaled and
//! moved between backends like any other. Keys are routed and grouped into
//! key groups exactly as a SQL `GROUP BY` is.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::scalar::ScalarValue;
use weir_state::KeyedState;

use super::row_codec::RowCodec;
use super::{Operator, OperatorContext, OperatorFactory, TaskContext, TimeDomain, Timer};
use crate::error::{EngineError, Result};
use crate::metrics::NodeMetrics;
use crate::runtime::router::key_groups;

/// One input row, read by column name.
pub struct Row<'a> {
    batch: &'a RecordBatch,
    row: usize,
}

impl Row<'_> {
    /// The value of column `name`.
    pub fn get(&self, name: &str) -> Result<ScalarValue> {
        let i = self.batch.schema().index_of(name).map_err(|_| {
            EngineError::Internal(format!(
                "no column '{name}' in the function's input ({})",
                self.batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        Ok(ScalarValue::try_from_array(self.batch.column(i), self.row)?)
    }

    /// Column `name` cast to `to` (`None` for NULL); `what` names the
    /// kind of value in the error when it is not one.
    fn cast(&self, name: &str, to: &DataType, what: &str) -> Result<Option<ScalarValue>> {
        let v = self.get(name)?;
        if v.is_null() {
            return Ok(None);
        }
        v.cast_to(to)
            .map(Some)
            .map_err(|_| EngineError::Internal(format!("column '{name}' is {v:?}, not {what}")))
    }

    /// An integer column (any integer type); `None` for NULL.
    pub fn i64(&self, name: &str) -> Result<Option<i64>> {
        Ok(match self.cast(name, &DataType::Int64, "an integer")? {
            Some(ScalarValue::Int64(v)) => v,
            _ => None,
        })
    }

    /// A floating-point or integer column; `None` for NULL.
    pub fn f64(&self, name: &str) -> Result<Option<f64>> {
        Ok(match self.cast(name, &DataType::Float64, "a number")? {
            Some(ScalarValue::Float64(v)) => v,
            _ => None,
        })
    }

    /// A string column; `None` for NULL.
    pub fn string(&self, name: &str) -> Result<Option<String>> {
        match self.get(name)? {
            ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => Ok(s),
            other if other.is_null() => Ok(None),
            other => Err(EngineError::Internal(format!(
                "column '{name}' is {other:?}, not a string"
            ))),
        }
    }

    /// A timestamp column in milliseconds since the epoch; `None` for NULL.
    pub fn timestamp_ms(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name)? {
            ScalarValue::TimestampMillisecond(v, _) => Ok(v),
            ScalarValue::TimestampMicrosecond(v, _) => Ok(v.map(|v| v / 1000)),
            ScalarValue::TimestampNanosecond(v, _) => Ok(v.map(|v| v / 1_000_000)),
            ScalarValue::TimestampSecond(v, _) => Ok(v.map(|v| v * 1000)),
            other if other.is_null() => Ok(None),
            other => Err(EngineError::Internal(format!(
                "column '{name}' is {other:?}, not a timestamp"
            ))),
        }
    }
}

/// What a function's calls act through: the keyed state of the current key,
/// its timers, the clock and the watermark, and the rows it emits.
pub struct ProcessContext<'a, 'b> {
    state: &'a mut KeyedState,
    key: &'a [ScalarValue],
    key_group: u16,
    key_bytes: &'a [u8],
    inner: &'a mut OperatorContext<'b>,
    emitted: &'a mut Vec<Vec<ScalarValue>>,
}

impl ProcessContext<'_, '_> {
    /// The keyed state, scoped to the current key.
    pub fn state(&mut self) -> &mut KeyedState {
        self.state
    }

    /// The current key's values (the `key_by` columns, in order).
    pub fn key(&self) -> &[ScalarValue] {
        self.key
    }

    /// Emits one row of the function's output schema.
    pub fn emit(&mut self, row: Vec<ScalarValue>) {
        self.emitted.push(row);
    }

    /// Processing time now (the job's clock), in ms.
    pub fn processing_time(&self) -> i64 {
        self.inner.processing_time()
    }

    /// The watermark (`i64::MIN` before the first), in ms.
    pub fn watermark(&self) -> i64 {
        self.inner.watermark()
    }

    fn timer(&self, time: i64) -> Timer {
        Timer {
            time,
            key_group: self.key_group,
            key: self.key_bytes.to_vec(),
            namespace: Vec::new(),
        }
    }

    /// Calls `on_timer` for the current key once the watermark reaches
    /// `time`.
    pub fn register_event_time_timer(&mut self, time: i64) {
        let t = self.timer(time);
        self.inner.timers().register(TimeDomain::EventTime, t);
    }

    /// Calls `on_timer` for the current key once processing time reaches
    /// `time`.
    pub fn register_processing_time_timer(&mut self, time: i64) {
        let t = self.timer(time);
        self.inner.timers().register(TimeDomain::ProcessingTime, t);
    }

    /// Deletes an event-time timer of the current key.
    pub fn delete_event_time_timer(&mut self, time: i64) {
        let t = self.timer(time);
        self.inner.timers().delete(TimeDomain::EventTime, &t);
    }

    /// Deletes a processing-time timer of the current key.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        let t = self.timer(time);
        self.inner.timers().delete(TimeDomain::ProcessingTime, &t);
    }
}

/// A Rust function over a keyed stream (Flink's `KeyedProcessFunction`).
///
/// One instance runs per subtask. [`KeyedProcessFunction::open`] creates the
/// state handles once (after a restore they find the restored state);
/// `process_element` and `on_timer` run with the current key set.
pub trait KeyedProcessFunction: Send {
    /// The schema of the rows the function emits.
    fn output_schema(&self) -> SchemaRef;

    /// Creates the function's state handles.
    fn open(&mut self, _state: &mut KeyedState) -> Result<()> {
        Ok(())
    }

    /// Called for each input row, with its key current.
    fn process_element(&mut self, row: &Row<'_>, ctx: &mut ProcessContext<'_, '_>) -> Result<()>;

    /// Called when a timer of the current key fires.
    fn on_timer(
        &mut self,
        _time: i64,
        _domain: TimeDomain,
        _ctx: &mut ProcessContext<'_, '_>,
    ) -> Result<()> {
        Ok(())
    }
}

/// Makes one function instance per subtask.
pub type FunctionFactory = Arc<dyn Fn() -> Box<dyn KeyedProcessFunction> + Send + Sync>;

/// The job graph's node for a [`KeyedProcessFunction`].
#[derive(Clone)]
pub struct KeyedProcessSpec {
    /// The function's name (in `EXPLAIN` and in its state's shape).
    pub name: String,
    /// Makes the function.
    pub function: FunctionFactory,
    /// The input columns that form the key (the exchange hashed them).
    pub keys: Vec<usize>,
    /// Their names, for `EXPLAIN`.
    pub key_names: Vec<String>,
    /// What the function emits.
    pub output_schema: SchemaRef,
    /// The input's schema.
    pub input_schema: SchemaRef,
}

impl OperatorFactory for KeyedProcessSpec {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let mut state = KeyedState::new(ctx.state()?.shared(), ctx.max_parallelism);
        let mut function = (self.function)();
        function.open(&mut state)?;
        let key_types: Vec<_> = self
            .keys
            .iter()
            .map(|i| self.input_schema.field(*i).data_type().clone())
            .collect();
        Ok(Box::new(KeyedProcessOperator {
            spec: self.clone(),
            function,
            state,
            codec: RowCodec::new(&key_types)?,
            hashes: Vec::new(),
            max_parallelism: ctx.max_parallelism,
            metrics: ctx.metrics.clone(),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "KeyedProcess(function=[{}], key=[{}])",
            self.name,
            self.key_names.join(", ")
        )
    }

    fn kind(&self) -> &'static str {
        "KeyedProcess"
    }

    fn uses_timers(&self) -> bool {
        true
    }

    fn state_signature(&self) -> Option<Vec<(String, String)>> {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|i| {
                let f = self.input_schema.field(*i);
                format!("{} {}", f.name(), f.data_type())
            })
            .collect();
        Some(vec![
            ("function".into(), self.name.clone()),
            ("keys".into(), keys.join(", ")),
        ])
    }
}

/// Runs a [`KeyedProcessSpec`].
struct KeyedProcessOperator {
    spec: KeyedProcessSpec,
    function: Box<dyn KeyedProcessFunction>,
    state: KeyedState,
    codec: RowCodec,
    hashes: Vec<u64>,
    max_parallelism: usize,
    metrics: Arc<NodeMetrics>,
}

impl KeyedProcessOperator {
    fn fail(&self, e: EngineError) -> EngineError {
        match e {
            EngineError::Function { .. } => e,
            other => EngineError::Function {
                function: self.spec.name.clone(),
                message: other.to_string(),
            },
        }
    }

    fn emit(&self, rows: Vec<Vec<ScalarValue>>, ctx: &mut OperatorContext<'_>) -> Result<()> {
        emit_rows(
            &self.spec.name,
            &self.spec.output_schema,
            &self.metrics,
            rows,
            ctx,
        )
    }
}

/// Emits a function's rows as one batch of its output schema.
fn emit_rows(
    function: &str,
    schema: &SchemaRef,
    metrics: &NodeMetrics,
    rows: Vec<Vec<ScalarValue>>,
    ctx: &mut OperatorContext<'_>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let width = schema.fields().len();
    if let Some(bad) = rows.iter().find(|r| r.len() != width) {
        return Err(EngineError::Function {
            function: function.to_string(),
            message: format!(
                "emitted a row of {} values; its output schema has {width} columns",
                bad.len()
            ),
        });
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(width);
    for (c, field) in schema.fields().iter().enumerate() {
        let array = ScalarValue::iter_to_array(rows.iter().map(|r| r[c].clone()))?;
        let array = if array.data_type() == field.data_type() {
            array
        } else {
            datafusion::arrow::compute::cast(&array, field.data_type())?
        };
        columns.push(array);
    }
    let batch =
        RecordBatch::try_new(schema.clone(), columns).map_err(|e| EngineError::Function {
            function: function.to_string(),
            message: format!("its rows do not fit its output schema: {e}"),
        })?;
    NodeMetrics::add(&metrics.records_out, batch.num_rows());
    ctx.emit(batch);
    Ok(())
}

impl Operator for KeyedProcessOperator {
    fn process_batch(&mut self, batch: RecordBatch, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let n = batch.num_rows();
        let key_columns: Vec<ArrayRef> = self
            .spec
            .keys
            .iter()
            .map(|i| batch.column(*i).clone())
            .collect();
        let groups = key_groups(&key_columns, n, self.max_parallelism, &mut self.hashes)?;
        let rows = self.codec.encode(&key_columns, n)?;
        let mut emitted = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            let key_bytes = rows.row(i);
            let key: Vec<ScalarValue> = key_columns
                .iter()
                .map(|c| ScalarValue::try_from_array(c, i))
                .collect::<std::result::Result<_, _>>()?;
            self.state.set_current_key_bytes(*group, key_bytes);
            let mut pctx = ProcessContext {
                state: &mut self.state,
                key: &key,
                key_group: *group,
                key_bytes,
                inner: ctx,
                emitted: &mut emitted,
            };
            let row = Row {
                batch: &batch,
                row: i,
            };
            if let Err(e) = self.function.process_element(&row, &mut pctx) {
                return Err(self.fail(e));
            }
        }
        self.emit(emitted, ctx)
    }

    fn on_timer(
        &mut self,
        domain: TimeDomain,
        timer: Timer,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        let columns = self.codec.decode([timer.key.as_slice()])?;
        let key: Vec<ScalarValue> = columns
            .iter()
            .map(|c| ScalarValue::try_from_array(c, 0))
            .collect::<std::result::Result<_, _>>()?;
        self.state
            .set_current_key_bytes(timer.key_group, &timer.key);
        let mut emitted = Vec::new();
        let mut pctx = ProcessContext {
            state: &mut self.state,
            key: &key,
            key_group: timer.key_group,
            key_bytes: &timer.key,
            inner: ctx,
            emitted: &mut emitted,
        };
        if let Err(e) = self.function.on_timer(timer.time, domain, &mut pctx) {
            return Err(self.fail(e));
        }
        self.emit(emitted, ctx)
    }
}

/// The operator state lists a non-keyed function's subtask restores.
pub struct RestoredState<'a> {
    lists: &'a [weir_state::OperatorStateSnapshot],
    subtask: usize,
    parallelism: usize,
}

impl RestoredState<'_> {
    /// List `name` as restored (split evenly or whole, per `mode`, when the
    /// job was restored at another parallelism), or empty on a fresh start.
    pub fn list_state<T: weir_state::StateCodec>(
        &self,
        name: &str,
        mode: weir_state::Redistribution,
    ) -> Result<weir_state::OperatorListState<T>> {
        match self.lists.iter().find(|l| l.name == name) {
            Some(l) if l.mode != mode => Err(EngineError::State(format!(
                "operator state '{name}' was stored as {:?} and is asked for as {mode:?}",
                l.mode
            ))),
            Some(l) => Ok(weir_state::OperatorListState::restore(l)?),
            None => Ok(weir_state::OperatorListState::new(name, mode)),
        }
    }

    /// This subtask's index.
    pub fn subtask(&self) -> usize {
        self.subtask
    }

    /// The number of subtasks.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }
}

/// What a non-keyed function's calls act through.
pub struct FunctionContext<'a, 'b> {
    inner: &'a mut OperatorContext<'b>,
    emitted: &'a mut Vec<Vec<ScalarValue>>,
}

impl FunctionContext<'_, '_> {
    /// Emits one row of the function's output schema.
    pub fn emit(&mut self, row: Vec<ScalarValue>) {
        self.emitted.push(row);
    }

    /// Processing time now (the job's clock), in ms.
    pub fn processing_time(&self) -> i64 {
        self.inner.processing_time()
    }

    /// The watermark (`i64::MIN` before the first), in ms.
    pub fn watermark(&self) -> i64 {
        self.inner.watermark()
    }
}

/// A Rust function over a stream that is not keyed (Flink's
/// `ProcessFunction` with `CheckpointedFunction`): its state is operator
/// state, lists of its subtask, split evenly or given whole (union) to the
/// subtasks when the job is restored at another parallelism.
pub trait ProcessFunction: Send {
    /// The schema of the rows the function emits.
    fn output_schema(&self) -> SchemaRef;

    /// Called once per subtask, with the lists it restores (none on a fresh
    /// start).
    fn open(&mut self, _restored: &RestoredState<'_>) -> Result<()> {
        Ok(())
    }

    /// Called for each input row.
    fn process_element(&mut self, row: &Row<'_>, ctx: &mut FunctionContext<'_, '_>) -> Result<()>;

    /// The function's lists, for a checkpoint
    /// (`OperatorListState::snapshot` of each).
    fn snapshot_state(&mut self) -> Result<Vec<weir_state::OperatorStateSnapshot>> {
        Ok(Vec::new())
    }
}

/// Makes one non-keyed function instance per subtask.
pub type ProcessFunctionFactory = Arc<dyn Fn() -> Box<dyn ProcessFunction> + Send + Sync>;

/// The job graph's node for a [`ProcessFunction`].
#[derive(Clone)]
pub struct ProcessSpec {
    /// The function's name (in `EXPLAIN` and in its state's shape).
    pub name: String,
    /// Makes the function.
    pub function: ProcessFunctionFactory,
    /// What the function emits.
    pub output_schema: SchemaRef,
}

impl OperatorFactory for ProcessSpec {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let mut function = (self.function)();
        function.open(&RestoredState {
            lists: &ctx.operator_state,
            subtask: ctx.subtask,
            parallelism: ctx.parallelism,
        })?;
        Ok(Box::new(ProcessOperator {
            spec: self.clone(),
            function,
            metrics: ctx.metrics.clone(),
        }))
    }

    fn describe(&self) -> String {
        format!("Process(function=[{}])", self.name)
    }

    fn kind(&self) -> &'static str {
        "Process"
    }

    fn state_signature(&self) -> Option<Vec<(String, String)>> {
        Some(vec![("function".into(), self.name.clone())])
    }
}

/// Runs a [`ProcessSpec`].
struct ProcessOperator {
    spec: ProcessSpec,
    function: Box<dyn ProcessFunction>,
    metrics: Arc<NodeMetrics>,
}

impl Operator for ProcessOperator {
    fn process_batch(&mut self, batch: RecordBatch, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let mut emitted = Vec::new();
        for i in 0..batch.num_rows() {
            let mut fctx = FunctionContext {
                inner: ctx,
                emitted: &mut emitted,
            };
            let row = Row {
                batch: &batch,
                row: i,
            };
            self.function
                .process_element(&row, &mut fctx)
                .map_err(|e| match e {
                    EngineError::Function { .. } => e,
                    other => EngineError::Function {
                        function: self.spec.name.clone(),
                        message: other.to_string(),
                    },
                })?;
        }
        emit_rows(
            &self.spec.name,
            &self.spec.output_schema,
            &self.metrics,
            emitted,
            ctx,
        )
    }

    fn snapshot_operator_state(&mut self) -> Result<Vec<weir_state::OperatorStateSnapshot>> {
        self.function.snapshot_state()
    }
}
