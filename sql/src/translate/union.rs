//! `UNION ALL` of any number of inputs: one node that reads them all.
//!
//! DataFusion's analyzer has already cast every input to the union's column
//! types. The union's watermark is the minimum over its inputs (the
//! runtime's rule for every operator with several inputs), so a row of one
//! input is never late because another input ran ahead.

use std::sync::Arc;

use datafusion::logical_expr::Union;
use weir_engine::graph::{Exchange, NodeKind};
use weir_engine::operators::union::UnionSpec;

use super::{arrow_schema, Stream, Translator};
use crate::error::{Result, SqlError};

impl Translator<'_> {
    /// Translates a `UNION ALL` plan node.
    pub(crate) fn union_all(&mut self, union: &Union) -> Result<Stream> {
        let inputs = union
            .inputs
            .iter()
            .map(|p| self.plan(p))
            .collect::<Result<Vec<_>>>()?;
        let updating = inputs.iter().any(|s| s.updating);
        if updating && !inputs.iter().all(|s| s.updating) {
            return Err(SqlError::Unsupported(
                "UNION ALL of an updating input (a GROUP BY without a window) with an insert-only one; \
                 aggregate every input over a window, or none"
                    .into(),
            ));
        }
        // Window columns survive a union when every branch has them, from
        // windows of the same time.
        let window = inputs
            .iter()
            .map(|s| s.window)
            .reduce(|a, b| if a == b { a } else { None })
            .flatten();
        let parallelism = inputs.iter().map(|s| s.parallelism).max().unwrap_or(1);
        let schema = union.schema.clone();
        let spec = UnionSpec {
            output_schema: arrow_schema(&schema, updating),
        };
        let node = self.graph.add(
            NodeKind::Operator(Arc::new(spec)),
            parallelism,
            inputs.iter().map(|s| (s.node, Exchange::Forward)).collect(),
            arrow_schema(&schema, updating),
            updating,
        );
        Ok(Stream {
            node,
            schema,
            updating,
            window,
            parallelism,
        })
    }
}
