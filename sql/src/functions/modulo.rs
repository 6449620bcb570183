//! `MOD(a, b)`: the remainder of `a / b`, as Flink's `MOD` (DataFusion has
//! only the `%` operator). Integers stay integers; any float argument makes
//! a float. Division by zero is an error, as `%` is.

use datafusion::arrow::compute::kernels::numeric::rem;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::result;

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Modulo {
    signature: Signature,
}

impl Modulo {
    pub(super) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Modulo {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [a, b] = args else {
            return plan_err!("MOD takes 2 arguments");
        };
        if !(a.is_numeric() || a.is_null()) || !(b.is_numeric() || b.is_null()) {
            return plan_err!("MOD takes numbers, found {a} and {b}");
        }
        let t = if a.is_integer() && b.is_integer() || a.is_null() || b.is_null() {
            DataType::Int64
        } else {
            DataType::Float64
        };
        Ok(vec![t.clone(), t])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Int64))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [a, b] = args.args.as_slice() else {
            return exec_err!("MOD takes 2 arguments");
        };
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if all_scalar { 1 } else { args.number_rows };
        // A scalar divisor stays a scalar: the kernel broadcasts it.
        let left = a.to_array(n)?;
        let out = match b {
            ColumnarValue::Scalar(s) => rem(&left, &s.to_scalar()?)?,
            ColumnarValue::Array(arr) => rem(&left, arr)?,
        };
        result(out, all_scalar)
    }
}
