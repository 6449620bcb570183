//! Evaluating expressions over only the columns they read.
//!
//! A DataFusion expression is evaluated over a whole batch, and some
//! kernels copy every column of it: `CASE` filters the batch once per
//! branch, and a filter copies every column before a projection picks a
//! few. Nexmark's source rows are three nested rows with strings, of which a
//! query reads a handful of fields, so that copying dominated: `dateTime AS
//! CASE WHEN event_type = 0 THEN person.dateTime …` took 29% of the
//! generator's time filtering structs it never read.
//!
//! [`NarrowExprs`] splits each expression into *leaves* — columns and field
//! accesses on them (`bid.price`), which cost an `Arc` clone — and the rest,
//! evaluated over a batch of just the leaves it reads. A filter copies only
//! the leaves the projection needs.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::compute::FilterBuilder;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};

use crate::error::{EngineError, Result};

/// How one expression is computed from the leaves.
#[derive(Debug)]
enum Output {
    /// The expression is a leaf.
    Leaf(usize),
    /// `expr` over a batch of the leaves `inputs` (in that order).
    Expr {
        inputs: Vec<usize>,
        schema: SchemaRef,
        expr: Arc<dyn PhysicalExpr>,
    },
}

/// Expressions over one input schema, each evaluated over only the leaves
/// (columns and nested field accesses) it reads.
#[derive(Debug)]
pub struct NarrowExprs {
    leaves: Vec<Arc<dyn PhysicalExpr>>,
    outputs: Vec<Output>,
}

/// A column, or `get_field` of a leaf with literal field names.
fn is_leaf(expr: &Arc<dyn PhysicalExpr>) -> bool {
    if expr.downcast_ref::<Column>().is_some() {
        return true;
    }
    match expr.downcast_ref::<ScalarFunctionExpr>() {
        Some(f) if f.name() == "get_field" => match f.args().split_first() {
            Some((first, rest)) => {
                is_leaf(first) && rest.iter().all(|a| a.downcast_ref::<Literal>().is_some())
            }
            None => false,
        },
        _ => false,
    }
}

impl NarrowExprs {
    /// Splits `exprs` (over `input`) into leaves and what is computed from
    /// them.
    pub fn new(exprs: &[Arc<dyn PhysicalExpr>], input: &Schema) -> Result<Self> {
        let mut leaves: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        let mut leaf_fields: Vec<Field> = Vec::new();
        let mut intern = |leaf: &Arc<dyn PhysicalExpr>, fields: &mut Vec<Field>| -> Result<usize> {
            if let Some(i) = leaves.iter().position(|l| l.as_ref() == leaf.as_ref()) {
                return Ok(i);
            }
            let field = leaf.return_field(input)?;
            fields.push(Field::new(
                format!("leaf{}", leaves.len()),
                field.data_type().clone(),
                field.is_nullable(),
            ));
            leaves.push(leaf.clone());
            Ok(leaves.len() - 1)
        };
        let mut outputs = Vec::with_capacity(exprs.len());
        for expr in exprs {
            if is_leaf(expr) {
                outputs.push(Output::Leaf(intern(expr, &mut leaf_fields)?));
                continue;
            }
            // Each leaf of the expression becomes a column of its own
            // narrow batch, numbered in the order first met.
            let mut inputs: Vec<usize> = Vec::new();
            let mut failure = None;
            let rewritten = expr
                .clone()
                .transform_down(|node| {
                    if !is_leaf(&node) {
                        return Ok(Transformed::no(node));
                    }
                    let leaf = match intern(&node, &mut leaf_fields) {
                        Ok(i) => i,
                        Err(e) => {
                            failure = Some(e);
                            return Ok(Transformed::new(node, false, TreeNodeRecursion::Stop));
                        }
                    };
                    let position = match inputs.iter().position(|&i| i == leaf) {
                        Some(p) => p,
                        None => {
                            inputs.push(leaf);
                            inputs.len() - 1
                        }
                    };
                    let column: Arc<dyn PhysicalExpr> =
                        Arc::new(Column::new(&format!("leaf{leaf}"), position));
                    Ok(Transformed::new(column, true, TreeNodeRecursion::Jump))
                })?
                .data;
            if let Some(e) = failure {
                return Err(e);
            }
            let fields: Vec<Field> = inputs.iter().map(|&i| leaf_fields[i].clone()).collect();
            outputs.push(Output::Expr {
                inputs,
                schema: Arc::new(Schema::new(fields)),
                expr: rewritten,
            });
        }
        Ok(Self { leaves, outputs })
    }

    /// The leaves of `batch`.
    pub fn leaves(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let rows = batch.num_rows();
        Ok(self
            .leaves
            .iter()
            .map(|l| l.evaluate(batch).and_then(|v| v.into_array(rows)))
            .collect::<datafusion::error::Result<_>>()?)
    }

    /// Expression `i` over `leaves` (of `rows` rows).
    pub fn evaluate(&self, i: usize, leaves: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        match &self.outputs[i] {
            Output::Leaf(l) => Ok(leaves[*l].clone()),
            Output::Expr {
                inputs,
                schema,
                expr,
            } => {
                let columns = inputs.iter().map(|&l| leaves[l].clone()).collect();
                let options = RecordBatchOptions::new().with_row_count(Some(rows));
                let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
                Ok(expr.evaluate(&batch)?.into_array(rows)?)
            }
        }
    }

    /// Which leaves expressions `range` read.
    pub fn leaves_read_by(&self, range: std::ops::Range<usize>) -> Vec<bool> {
        let mut read = vec![false; self.leaves.len()];
        for output in &self.outputs[range] {
            match output {
                Output::Leaf(l) => read[*l] = true,
                Output::Expr { inputs, .. } => inputs.iter().for_each(|&l| read[l] = true),
            }
        }
        read
    }

    /// Keeps the rows of the leaves marked in `wanted` where `mask` is true
    /// (the other leaves are left as they are: they must not be read).
    pub fn filter_leaves(
        leaves: &mut [ArrayRef],
        wanted: &[bool],
        mask: &ArrayRef,
    ) -> Result<usize> {
        let mask = mask
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| EngineError::Internal("filter did not return booleans".into()))?;
        let mut builder = FilterBuilder::new(mask);
        if wanted.iter().filter(|w| **w).count() > 1 {
            builder = builder.optimize();
        }
        let predicate = builder.build();
        for (leaf, _) in leaves.iter_mut().zip(wanted).filter(|(_, w)| **w) {
            *leaf = predicate.filter(leaf)?;
        }
        Ok(predicate.count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, Int64Array, StringArray, StructArray};
    use datafusion::arrow::datatypes::{DataType, Fields};
    use datafusion::prelude::*;

    /// Expressions planned by DataFusion from SQL, evaluated both ways.
    #[tokio::test]
    async fn same_results_as_evaluating_over_the_whole_batch() {
        let inner = Fields::from(vec![
            Field::new("price", DataType::Int64, true),
            Field::new("channel", DataType::Utf8, true),
        ]);
        let bid = StructArray::try_new(
            inner.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(10), None, Some(30), Some(40)])),
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
            ],
            Some(vec![true, true, false, true].into()),
        )
        .unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("kind", DataType::Int32, false),
            Field::new("bid", DataType::Struct(inner), true),
            Field::new("other", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![2, 0, 2, 2])),
                Arc::new(bid),
                Arc::new(StringArray::from(vec!["x", "y", "z", "w"])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        let df_schema = datafusion::common::DFSchema::try_from(schema.as_ref().clone()).unwrap();
        let sql = [
            "CASE WHEN kind = 0 THEN 0 ELSE bid['price'] * 2 END",
            "bid['price']",
            "kind",
            "bid['price'] + bid['price'] + kind",
            "42",
            "upper(bid['channel'])",
        ];
        let exprs: Vec<Arc<dyn PhysicalExpr>> = sql
            .iter()
            .map(|s| {
                let e = ctx.parse_sql_expr(s, &df_schema).unwrap();
                ctx.create_physical_expr(e, &df_schema).unwrap()
            })
            .collect();
        let narrow = NarrowExprs::new(&exprs, &schema).unwrap();
        // `kind`, `bid.price` and `bid.channel`, once each; `other` never read.
        assert_eq!(narrow.leaves.len(), 3, "{:?}", narrow.leaves);
        let leaves = narrow.leaves(&batch).unwrap();
        for (i, e) in exprs.iter().enumerate() {
            let whole = e.evaluate(&batch).unwrap().into_array(4).unwrap();
            let narrowed = narrow.evaluate(i, &leaves, 4).unwrap();
            assert_eq!(whole.as_ref(), narrowed.as_ref(), "{}", sql[i]);
        }
        // Filtering the leaves the last two expressions read.
        let mut leaves = leaves;
        let wanted = narrow.leaves_read_by(4..6);
        let mask: ArrayRef = Arc::new(BooleanArray::from(vec![true, false, true, true]));
        let rows = NarrowExprs::filter_leaves(&mut leaves, &wanted, &mask).unwrap();
        assert_eq!(rows, 3);
        let mask = mask.as_any().downcast_ref::<BooleanArray>().unwrap();
        let filtered = datafusion::arrow::compute::filter_record_batch(&batch, mask).unwrap();
        for i in 4..6 {
            let whole = exprs[i].evaluate(&filtered).unwrap().into_array(3).unwrap();
            let narrowed = narrow.evaluate(i, &leaves, rows).unwrap();
            assert_eq!(whole.as_ref(), narrowed.as_ref(), "{}", sql[i]);
        }
    }
}
