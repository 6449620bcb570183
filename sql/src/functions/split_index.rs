//! `SPLIT_INDEX(str, delimiter, index)`: the `index`-th (from 0) part of
//! `str` split by `delimiter`; NULL when there is no such part or an
//! argument is NULL.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use super::{as_array, map_strings, result, scalar_string};

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct SplitIndex {
    signature: Signature,
}

impl SplitIndex {
    pub(super) fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![TypeSignature::Exact(vec![
                    DataType::Utf8,
                    DataType::Utf8,
                    DataType::Int64,
                ])],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for SplitIndex {
    fn name(&self) -> &str {
        "split_index"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [input, delimiter, index] = args.args.as_slice() else {
            return exec_err!("SPLIT_INDEX takes 3 arguments");
        };
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let strings = as_array(input, if all_scalar { 1 } else { rows })?;
        let n = strings.len();
        let delimiters = as_array(delimiter, n)?;
        let delimiters = delimiters.as_string::<i32>();
        let indexes = as_array(index, n)?;
        let indexes = indexes.as_primitive::<Int64Type>();
        // A literal delimiter is the common case: look it up once.
        let fixed = scalar_string(delimiter);
        let out = map_strings(&strings, |i, s, out| {
            let delimiter = match &fixed {
                Some(Some(d)) => d.as_str(),
                Some(None) => {
                    out.append_null();
                    return Ok(());
                }
                None if delimiters.is_null(i) => {
                    out.append_null();
                    return Ok(());
                }
                None => delimiters.value(i),
            };
            if indexes.is_null(i) || indexes.value(i) < 0 || delimiter.is_empty() {
                out.append_null();
                return Ok(());
            }
            match s.split(delimiter).nth(indexes.value(i) as usize) {
                Some(part) => out.append_value(part),
                None => out.append_null(),
            }
            Ok(())
        })?;
        result(out, all_scalar)
    }
}
