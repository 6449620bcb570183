//! Weir's runtime.
//!
//! - [`graph`]: the job graph the planner emits (nodes, exchanges).
//! - [`runtime`]: starts a graph as tasks joined by bounded channels and
//!   supervises it ([`runtime::JobHandle`]).
//! - [`operators`]: calc (filter/projection), window assignment, window and
//!   updating aggregates, each over whole Arrow batches.
//! - [`connectors`]: sources and sinks (`nexmark`, `datagen`, `filesystem`,
//!   `print`, `blackhole`) and the collect sink behind `SELECT`.
//! - [`message`]: what travels between subtasks; [`config`]: the keys.
//!
//! Nothing here knows SQL text: `weir-sql` builds the graph.

/// The `tracing` target of the messages meant for the person running a job
/// (a job resuming, a checkpoint failing, a restart): the `weir` CLI prints
/// them as `[INFO] …` / `[WARN] …` lines; embedding programs see them with
/// any `tracing` subscriber. Everything else the engine logs is diagnosis,
/// under the crates' own targets.
pub const USER: &str = "weir::user";

pub mod config;
pub mod connectors;
pub mod error;
pub mod format;
pub mod formats;
pub mod graph;
pub mod message;
pub mod metrics;
pub mod operators;
pub mod runtime;
pub mod user_log;

pub use config::{Config, StateSettings};
pub use error::{EngineError, Result};
pub use graph::{Exchange, JobGraph, NodeKind};
pub use message::{BarrierKind, ChangeKind, Message, OP_COLUMN};
pub use runtime::{
    check_restore, new_job_id, plan_restore, start_job, CheckpointStats, JobHandle, JobStatus,
};
pub use user_log::init_logging;
