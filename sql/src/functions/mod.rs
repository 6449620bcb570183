//! Flink's scalar functions that DataFusion does not have, so that Flink
//! SQL (the Nexmark queries among it) runs unchanged: `DATE_FORMAT`,
//! `MOD`, `PROCTIME`, `REGEXP_EXTRACT`, `SPLIT_INDEX`. Each works on whole batches; patterns
//! that are literals are compiled once per batch.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};
use datafusion::prelude::SessionContext;

mod date_format;
mod modulo;
pub mod proctime;
mod regexp_extract;
mod split_index;

/// Registers Weir's Flink functions with a DataFusion context.
/// `clock` is the jobs' processing-time clock, which `PROCTIME()` reads.
pub fn register(ctx: &SessionContext, clock: Arc<dyn weir_state::Clock>) {
    ctx.register_udf(ScalarUDF::from(date_format::DateFormat::new()));
    ctx.register_udf(ScalarUDF::from(modulo::Modulo::new()));
    ctx.register_udf(ScalarUDF::from(proctime::Proctime::new(clock)));
    ctx.register_udf(ScalarUDF::from(regexp_extract::RegexpExtract::new()));
    ctx.register_udf(ScalarUDF::from(split_index::SplitIndex::new()));
    ctx.register_udf(crate::temporal::marker_udf());
}

/// An argument as an array of `rows` rows (scalars are repeated).
fn as_array(value: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    value.to_array(rows)
}

/// A literal string argument, if the argument is a scalar.
fn scalar_string(value: &ColumnarValue) -> Option<Option<String>> {
    match value {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s),
        ) => Some(s.clone()),
        _ => None,
    }
}

/// Calls `f` for each row of a string array (any string type), building a
/// string result; a null input gives a null output.
fn map_strings(
    input: &ArrayRef,
    mut f: impl FnMut(usize, &str, &mut StringBuilder) -> Result<()>,
) -> Result<ArrayRef> {
    let mut out = StringBuilder::with_capacity(input.len(), input.len() * 8);
    macro_rules! each {
        ($arr:expr) => {{
            let arr = $arr;
            for i in 0..arr.len() {
                if arr.is_null(i) {
                    out.append_null();
                } else {
                    f(i, arr.value(i), &mut out)?;
                }
            }
        }};
    }
    match input.data_type() {
        datafusion::arrow::datatypes::DataType::Utf8 => each!(input.as_string::<i32>()),
        datafusion::arrow::datatypes::DataType::LargeUtf8 => each!(input.as_string::<i64>()),
        datafusion::arrow::datatypes::DataType::Utf8View => each!(input.as_string_view()),
        other => return exec_err!("expected a string argument, found {other}"),
    }
    Ok(Arc::new(out.finish()))
}

/// The result as a scalar when every argument was one, else as an array.
fn result(array: ArrayRef, all_scalar: bool) -> Result<ColumnarValue> {
    if all_scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}
