//! # Weir
//!
//! A streaming SQL engine that speaks Flink SQL, plans with DataFusion and
//! runs operators over Arrow record batches.
//!
//! ```no_run
//! use weir::StreamContext;
//!
//! # async fn demo() -> Result<(), weir::SqlError> {
//! let mut ctx = StreamContext::builder().set("parallelism.default", "2")?.build();
//! ctx.sql("CREATE TABLE bids (price BIGINT, ts TIMESTAMP(3), \
//!          WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
//!          WITH ('connector' = 'datagen', 'number-of-rows' = '100')").await?;
//! let rows = ctx.query("SELECT price * 2 AS doubled FROM bids").await?.collect().await?;
//! # Ok(()) }
//! ```
//!
//! The crates behind the facade: `weir-sql` (dialect, catalog, planning),
//! `weir-engine` (runtime, operators, connectors), `weir-state` (keyed and
//! operator state, the `hashmap` and `rocksdb` backends, TTL, snapshots),
//! re-exported as [`state`] for Rust code that keeps state of its own.
//!
//! Choose the state backend like any other key:
//!
//! ```no_run
//! # async fn demo() -> Result<(), weir::SqlError> {
//! let ctx = weir::StreamContext::builder()
//!     .set("state.backend.type", "rocksdb")?
//!     .set("state.backend.rocksdb.localdir", "/var/lib/weir/state")?
//!     .set("table.exec.state.ttl", "1 h")?
//!     .build();
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub use datafusion::arrow;
pub use weir_checkpoint as checkpoint;
pub use weir_engine::init_logging;
/// The `tracing` target of the engine's messages for the user (a job
/// resuming, a checkpoint failing): print these, log the rest.
pub use weir_engine::USER as USER_LOG_TARGET;
pub use weir_engine::{CheckpointStats, Config, EngineError, JobHandle, JobStatus};
pub use weir_sql::datastream::{DataStream, KeyedStream};
pub use weir_sql::{NameScope, QueryResult, Session, SqlError, StatementResult};
pub use weir_state as state;

/// Rust functions between SQL tables (see [`StreamContext::table`]): the
/// function traits, what their calls see, and the state primitives they
/// keep (re-exported from [`state`]).
pub mod functions {
    pub use weir_engine::operators::keyed_process::{
        FunctionContext, KeyedProcessFunction, ProcessContext, ProcessFunction, RestoredState, Row,
    };
    pub use weir_engine::operators::TimeDomain;
    pub use weir_engine::EngineError as Error;
    pub use weir_state::{
        AggregateFunction, AggregatingState, KeyedState, ListState, MapState, OperatorListState,
        OperatorStateSnapshot, Redistribution, ReducingState, StateTtlConfig, StateVisibility,
        UpdateType, ValueState,
    };
    /// What a function's calls return.
    pub type Result<T> = std::result::Result<T, Error>;
    pub use datafusion::scalar::ScalarValue;
}

/// Registers Weir's Flink functions (`DATE_FORMAT`, `MOD`, `PROCTIME`,
/// `REGEXP_EXTRACT`, `SPLIT_INDEX`) with a plain DataFusion context, to run
/// the same SQL as a batch query (`PROCTIME()` reads the system clock).
pub fn register_flink_functions(ctx: &datafusion::prelude::SessionContext) {
    weir_sql::functions::register(ctx, std::sync::Arc::new(weir_state::SystemClock));
}

/// The entry point for Rust programs: a SQL session with its configuration.
pub struct StreamContext {
    session: Session,
}

/// Builds a [`StreamContext`] from configuration keys (Flink's names).
#[derive(Default)]
pub struct StreamContextBuilder {
    config: Config,
}

impl StreamContextBuilder {
    /// Sets a configuration key; unknown keys and bad values are errors.
    pub fn set(mut self, key: &str, value: &str) -> Result<Self, SqlError> {
        self.config.set(key, value)?;
        Ok(self)
    }

    /// Uses a whole configuration (for example from [`Config::from_yaml`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Uses `clock` for processing time: `PROCTIME()`, processing-time
    /// windows and timers, and state TTL. Tests pass a
    /// [`weir_state::ManualClock`](crate::state::ManualClock) and move it.
    pub fn clock(mut self, clock: std::sync::Arc<dyn crate::state::Clock>) -> Self {
        self.config.set_clock(clock);
        self
    }

    /// The context.
    pub fn build(self) -> StreamContext {
        StreamContext {
            session: Session::new(self.config),
        }
    }
}

impl Default for StreamContext {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl StreamContext {
    /// A builder with the default configuration.
    pub fn builder() -> StreamContextBuilder {
        StreamContextBuilder::default()
    }

    /// A stream of table or view `name` for Rust steps: key it, run a
    /// [`functions::KeyedProcessFunction`] on it and write the result into
    /// another table, all in one checkpointed job:
    ///
    /// ```ignore
    /// let job = ctx.table("payments")?.key_by(["card"])?.process(MyFunction)?
    ///     .insert_into("alerts").await?;
    /// ```
    pub fn table(&mut self, name: &str) -> Result<DataStream<'_>, SqlError> {
        self.session.table(name)
    }

    /// Runs every statement of `sql` (DDL, `SET`, `INSERT INTO`, `SELECT`),
    /// stopping at the first error. `INSERT` returns a running job's handle;
    /// `SELECT` returns its result stream.
    pub async fn sql(&mut self, sql: &str) -> Result<Vec<StatementResult>, SqlError> {
        self.session.execute(sql).await
    }

    /// Runs one `SELECT` and returns its results as they are produced.
    pub async fn query(&mut self, sql: &str) -> Result<QueryResult, SqlError> {
        match self.single(sql).await? {
            StatementResult::Query(q) => Ok(q),
            _ => Err(SqlError::Plan(
                "StreamContext::query expects a SELECT".into(),
            )),
        }
    }

    /// Runs one `INSERT INTO … SELECT …` and returns its job.
    pub async fn insert(&mut self, sql: &str) -> Result<JobHandle, SqlError> {
        match self.single(sql).await? {
            StatementResult::Job(j) => Ok(j),
            _ => Err(SqlError::Plan(
                "StreamContext::insert expects an INSERT INTO statement".into(),
            )),
        }
    }

    async fn single(&mut self, sql: &str) -> Result<StatementResult, SqlError> {
        let mut statements = Session::split(sql)?;
        if statements.len() != 1 {
            return Err(SqlError::Plan(format!(
                "expected one statement, found {}",
                statements.len()
            )));
        }
        self.session.execute_tokens(statements.remove(0)).await
    }

    /// Registers a scalar function for use in SQL (a DataFusion
    /// `ScalarUDF`, evaluated a batch at a time).
    pub fn register_udf(&mut self, udf: datafusion::logical_expr::ScalarUDF) {
        self.session.register_udf(udf);
    }

    /// The underlying session (catalog and configuration).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }
}
