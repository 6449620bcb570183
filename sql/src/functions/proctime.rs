//! `PROCTIME()`: the processing time at which a row passes, as Flink's
//! `PROCTIME()` (a `TIMESTAMP_LTZ(3)`). A column defined by it is a
//! processing-time attribute: window table functions over it fire by the
//! job's clock, through processing-time timers (see the window aggregate).
//!
//! Volatile, so DataFusion neither folds it into a constant nor moves it:
//! each batch gets the time it is evaluated at.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// The function's name, as the planner looks for it.
pub const NAME: &str = "proctime";

/// Whether a computed column's expression is `PROCTIME()` (which makes the
/// column a processing-time attribute).
pub fn is_proctime_call(sql: &str) -> bool {
    let sql: String = sql.chars().filter(|c| !c.is_whitespace()).collect();
    sql.eq_ignore_ascii_case("PROCTIME()")
}

/// `TIMESTAMP_LTZ(3)`.
pub fn data_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")))
}

#[derive(Debug)]
pub(super) struct Proctime {
    signature: Signature,
    clock: Arc<dyn weir_state::Clock>,
}

impl PartialEq for Proctime {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.clock, &other.clock)
    }
}

impl Eq for Proctime {}

impl std::hash::Hash for Proctime {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state);
    }
}

impl Proctime {
    pub(super) fn new(clock: Arc<dyn weir_state::Clock>) -> Self {
        Self {
            signature: Signature::nullary(Volatility::Volatile),
            clock,
        }
    }
}

impl ScalarUDFImpl for Proctime {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if !args.is_empty() {
            return plan_err!("PROCTIME takes no arguments");
        }
        Ok(data_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let now = self.clock.now_ms();
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(now),
            Some(Arc::from("UTC")),
        )))
    }
}
