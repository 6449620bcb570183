//! `Filter`: a Calc evaluating the predicate on whole batches.

use std::sync::Arc;

use datafusion::logical_expr::Filter;
use weir_engine::graph::Exchange;
use weir_engine::operators::calc::CalcSpec;

use super::{arrow_schema, Stream, Translator};
use crate::error::Result;

impl Translator<'_> {
    pub(super) fn filter(&mut self, f: &Filter) -> Result<Stream> {
        let input = self.plan(&f.input)?;
        let predicate = self.physical(&f.predicate, &input.schema)?;
        let spec = CalcSpec {
            filter: Some(predicate),
            projection: None,
            output_schema: arrow_schema(&input.schema, input.updating),
        };
        let (par, upd, win, schema) = (
            input.parallelism,
            input.updating,
            input.window,
            input.schema.clone(),
        );
        Ok(self.add_operator(
            Arc::new(spec),
            &input,
            Exchange::Forward,
            par,
            schema,
            upd,
            win,
        ))
    }
}
