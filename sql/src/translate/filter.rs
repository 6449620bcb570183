//! `Filter`: a Calc evaluating the predicate on whole batches.

use std::sync::Arc;

use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::Filter;
use weir_engine::graph::Exchange;
use weir_engine::operators::calc::CalcSpec;

use super::{arrow_schema, Stream, Translator};
use crate::error::Result;

impl Translator<'_> {
    pub(super) fn filter(&mut self, f: &Filter) -> Result<Stream> {
        let input = self.plan(&f.input)?;
        // DataFusion infers a copy of a temporal join's marker for one
        // input when the right column it names is a join key; the join
        // keeps the original, the copy means nothing.
        let kept = conjunction(
            split_conjunction(&f.predicate)
                .into_iter()
                .filter(|e| crate::temporal::marker_args(e).is_none())
                .cloned(),
        );
        let Some(predicate) = kept else {
            return Ok(input);
        };
        let predicate = self.physical(&predicate, &input.schema)?;
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
