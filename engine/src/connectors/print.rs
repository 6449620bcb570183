//! `'connector' = 'print'`: writes each row to standard output (or error) as
//! Flink's print connector does: `+I[1, abc]`, prefixed by the subtask number
//! when the sink runs with more than one subtask. At-least-once: rows printed
//! before a failure are printed again after a restart.

use std::io::Write;
use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::{Options, SinkFactory, SinkWriter};
use crate::error::{EngineError, Result};
use crate::format::column_strings;
use crate::message::{split_changes, ChangeKind};
use crate::operators::TaskContext;

/// Where print sinks write instead of standard output or error, when set.
pub type Console = Arc<dyn Fn(String) + Send + Sync>;

static CONSOLE: RwLock<Option<Console>> = RwLock::new(None);

/// Routes the output of every print sink of this process to `console`
/// (`None`: back to standard output and error). The interactive shell sets
/// it so that rows are printed above its prompt instead of over it.
pub fn set_console(console: Option<Console>) {
    if let Ok(mut slot) = CONSOLE.write() {
        *slot = console;
    }
}

/// Print sink options.
pub struct PrintSink {
    identifier: Option<String>,
    stderr: bool,
}

impl PrintSink {
    /// Reads `print-identifier` and `standard-error`.
    pub fn new(mut options: Options) -> Result<Self> {
        let identifier = options.string("print-identifier");
        let stderr = options.bool("standard-error", false)?;
        options.parse::<usize>("sink.parallelism", "a positive integer")?;
        options.finish()?;
        Ok(Self { identifier, stderr })
    }
}

/// The `print` connector's registration.
pub const CONNECTOR: super::Connector = super::Connector {
    name: "print",
    source: None,
    sink: Some(|options, _schema| Ok(Arc::new(PrintSink::new(options)?))),
    metadata: &[],
    validate: None,
};

impl SinkFactory for PrintSink {
    fn create_writer(&self, ctx: &TaskContext, _schema: SchemaRef) -> Result<Box<dyn SinkWriter>> {
        let prefix = match (&self.identifier, ctx.parallelism > 1) {
            (Some(id), true) => format!("{id}:{}> ", ctx.subtask + 1),
            (Some(id), false) => format!("{id}> "),
            (None, true) => format!("{}> ", ctx.subtask + 1),
            (None, false) => String::new(),
        };
        Ok(Box::new(PrintWriter {
            prefix,
            stderr: self.stderr,
        }))
    }
    fn accepts_updates(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        "connector=[print]".into()
    }
}

struct PrintWriter {
    prefix: String,
    stderr: bool,
}

impl SinkWriter for PrintWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let (data, ops) = split_changes(batch);
        let columns: Vec<Vec<String>> = data
            .columns()
            .iter()
            .map(column_strings)
            .collect::<Result<_>>()?;
        let mut text = String::new();
        for row in 0..data.num_rows() {
            let kind = ops
                .as_ref()
                .map_or(ChangeKind::Insert, |o| ChangeKind::from_i8(o.value(row)));
            let values: Vec<&str> = columns.iter().map(|c| c[row].as_str()).collect();
            text.push_str(&format!(
                "{}{}[{}]\n",
                self.prefix,
                kind.short(),
                values.join(", ")
            ));
        }
        if let Some(console) = CONSOLE.read().ok().and_then(|c| c.clone()) {
            console(text);
            return Ok(());
        }
        let result = if self.stderr {
            std::io::stderr().lock().write_all(text.as_bytes())
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|_| out.flush())
        };
        result.map_err(|e| EngineError::io("print sink", e))
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
