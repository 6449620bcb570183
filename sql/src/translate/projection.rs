//! `Projection`: a Calc evaluating the select list on whole batches.

use std::sync::Arc;

use datafusion::logical_expr::Projection;
use weir_engine::graph::Exchange;
use weir_engine::operators::calc::CalcSpec;

use super::{arrow_schema, Stream, Translator, WindowColumns};
use crate::error::Result;

impl Translator<'_> {
    pub(super) fn projection(&mut self, p: &Projection) -> Result<Stream> {
        let input = self.plan(&p.input)?;
        let exprs = p
            .expr
            .iter()
            .map(|e| self.physical(e, &input.schema))
            .collect::<Result<Vec<_>>>()?;
        let windowed = WindowColumns::through(input.window, &p.expr, &input.schema);
        let spec = CalcSpec {
            filter: None,
            projection: Some(exprs),
            output_schema: arrow_schema(&p.schema, input.updating),
        };
        let (par, upd) = (input.parallelism, input.updating);
        Ok(self.add_operator(
            Arc::new(spec),
            &input,
            Exchange::Forward,
            par,
            p.schema.clone(),
            upd,
            windowed,
        ))
    }
}
