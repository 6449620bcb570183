//! How a source subtask turns its batches into watermarks.
//!
//! `WATERMARK FOR ts AS <expr>` is evaluated over each batch and the
//! watermark is the largest value. Almost every declaration is a bounded
//! delay, `ts - INTERVAL '<n>' <unit>` (or `ts` itself): since subtracting a
//! fixed duration keeps the order, the largest value is the column's largest
//! minus the delay, so that form takes one `max` over the column instead of
//! evaluating the expression row by row (timestamp-minus-interval arithmetic
//! goes through calendar code per row in Arrow). Everything else evaluates
//! the expression.

use std::sync::Arc;

use datafusion::arrow::compute::max as max_kernel;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;
use crate::operators::window_assign::as_millis;

/// The watermark of one batch.
#[derive(Debug)]
pub enum WatermarkGenerator {
    /// `column - delay_ms` (milliseconds; `0` for `WATERMARK FOR ts AS ts`).
    BoundedDelay {
        /// The time attribute's index in the batch.
        column: usize,
        /// Fixed delay in milliseconds.
        delay_ms: i64,
    },
    /// Any other expression, evaluated over the batch.
    Expression(Arc<dyn PhysicalExpr>),
}

impl WatermarkGenerator {
    /// Recognizes the bounded-delay form of `expr` over `schema`.
    pub fn new(expr: Arc<dyn PhysicalExpr>, schema: &SchemaRef) -> Self {
        bounded_delay(&expr, schema)
            .map(|(column, delay_ms)| WatermarkGenerator::BoundedDelay { column, delay_ms })
            .unwrap_or(WatermarkGenerator::Expression(expr))
    }

    /// The largest watermark value of `batch`, in milliseconds, or `None`
    /// when every value is NULL (or the batch is empty).
    pub fn batch_watermark(&self, batch: &RecordBatch) -> Result<Option<i64>> {
        match self {
            WatermarkGenerator::BoundedDelay { column, delay_ms } => {
                let times = as_millis(batch.column(*column))?;
                Ok(max_kernel(&times).map(|max| max.saturating_sub(*delay_ms)))
            }
            WatermarkGenerator::Expression(expr) => {
                let times = expr.evaluate(batch)?.into_array(batch.num_rows())?;
                Ok(max_kernel(&as_millis(&times)?))
            }
        }
    }
}

/// `(column index, delay in ms)` when `expr` is a timestamp column, or a
/// timestamp column minus an interval of a fixed, whole number of
/// milliseconds.
fn bounded_delay(expr: &Arc<dyn PhysicalExpr>, schema: &SchemaRef) -> Option<(usize, i64)> {
    let timestamp_column = |e: &Arc<dyn PhysicalExpr>| {
        let c = e.downcast_ref::<Column>()?;
        let field = schema.fields().get(c.index())?;
        match field.data_type() {
            // Days are 24 hours only without a time zone (daylight saving
            // time makes some days 23 or 25 hours long in one).
            DataType::Timestamp(_, tz) => Some((c.index(), tz.is_none())),
            _ => None,
        }
    };
    if let Some((index, _)) = timestamp_column(expr) {
        return Some((index, 0));
    }
    let binary = expr.downcast_ref::<BinaryExpr>()?;
    if *binary.op() != Operator::Minus {
        return None;
    }
    let (index, days_are_fixed) = timestamp_column(binary.left())?;
    let literal = binary.right().downcast_ref::<Literal>()?;
    let delay_ms = fixed_millis(literal.value(), days_are_fixed)?;
    Some((index, delay_ms))
}

/// An interval's length in milliseconds, when it has one: no months, no
/// fraction of a millisecond, and days only when they are fixed.
fn fixed_millis(value: &ScalarValue, days_are_fixed: bool) -> Option<i64> {
    const DAY_MS: i64 = 86_400_000;
    let (days, ms) = match value {
        ScalarValue::IntervalDayTime(Some(v)) => (v.days as i64, v.milliseconds as i64),
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            if v.nanoseconds % 1_000_000 != 0 {
                return None;
            }
            (v.days as i64, v.nanoseconds / 1_000_000)
        }
        _ => return None,
    };
    if days != 0 && !days_are_fixed {
        return None;
    }
    days.checked_mul(DAY_MS)?.checked_add(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, IntervalMonthDayNano, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::{binary, col, lit};

    fn schema(tz: Option<&str>) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, tz.map(Into::into)),
            true,
        )]))
    }

    fn minus(schema: &SchemaRef, interval: ScalarValue) -> Arc<dyn PhysicalExpr> {
        let ts = col("ts", schema).unwrap();
        binary(ts, Operator::Minus, lit(interval), schema).unwrap()
    }

    fn mdn(months: i32, days: i32, nanos: i64) -> ScalarValue {
        ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(months, days, nanos)))
    }

    #[test]
    fn recognizes_fixed_delays_only() {
        let s = schema(None);
        let delay = |e| match WatermarkGenerator::new(e, &s) {
            WatermarkGenerator::BoundedDelay { delay_ms, .. } => Some(delay_ms),
            WatermarkGenerator::Expression(_) => None,
        };
        assert_eq!(delay(col("ts", &s).unwrap()), Some(0));
        assert_eq!(delay(minus(&s, mdn(0, 0, 4_000_000_000))), Some(4_000));
        assert_eq!(delay(minus(&s, mdn(0, 1, 5_000_000))), Some(86_400_005));
        assert_eq!(delay(minus(&s, mdn(1, 0, 0))), None, "months vary");
        assert_eq!(delay(minus(&s, mdn(0, 0, 1))), None, "sub-millisecond");
        let tz = schema(Some("Europe/Berlin"));
        assert!(matches!(
            WatermarkGenerator::new(minus(&tz, mdn(0, 1, 0)), &tz),
            WatermarkGenerator::Expression(_)
        ));
        assert!(matches!(
            WatermarkGenerator::new(minus(&tz, mdn(0, 0, 1_000_000)), &tz),
            WatermarkGenerator::BoundedDelay { delay_ms: 1, .. }
        ));
    }

    /// The shortcut and the evaluated expression agree, NULLs included.
    #[test]
    fn same_watermark_as_the_expression() {
        let s = schema(None);
        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(10_000),
            None,
            Some(-3_000),
            Some(25_123),
        ]));
        let batch = RecordBatch::try_new(s.clone(), vec![times]).unwrap();
        let nulls = RecordBatch::try_new(
            s.clone(),
            vec![Arc::new(TimestampMillisecondArray::from(vec![None::<i64>; 3])) as ArrayRef],
        )
        .unwrap();
        for interval in [mdn(0, 0, 4_000_000_000), mdn(0, 2, 1_000_000)] {
            let expr = minus(&s, interval);
            let fast = WatermarkGenerator::new(expr.clone(), &s);
            assert!(matches!(fast, WatermarkGenerator::BoundedDelay { .. }));
            let slow = WatermarkGenerator::Expression(expr);
            for b in [&batch, &nulls] {
                assert_eq!(
                    fast.batch_watermark(b).unwrap(),
                    slow.batch_watermark(b).unwrap()
                );
            }
        }
    }
}
