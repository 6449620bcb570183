//! Weir's SQL layer.
//!
//! - [`parser`]: the Flink dialect (DDL, `SET`, `SHOW`, `DESCRIBE`, …) on
//!   sqlparser's tokens, with line and column in errors.
//! - [`window_tvf`]: cuts `TUMBLE`/`HOP`/`CUMULATE` out of queries so that
//!   DataFusion can plan them.
//! - [`temporal`]: `FOR SYSTEM_TIME AS OF`, cut from the tokens and put back
//!   as a marked join condition.
//! - [`catalog`]: tables and views, registered with DataFusion as schemas.
//! - [`translate`]: DataFusion's optimized logical plan → Weir's job graph.
//! - [`session`]: runs statements; what the shell and the facade call.

pub mod catalog;
pub mod datastream;
pub mod error;
pub mod functions;
pub mod hints;
pub mod limits;
mod names;
pub mod parser;
pub mod session;
pub mod temporal;
pub mod translate;
pub mod values;
pub mod window_tvf;

pub use error::{Result, SqlError};
pub use parser::is_complete;
pub use session::{NameScope, QueryResult, Session, StatementResult};
