//! Accumulators that take rows back, for aggregates over a changelog (a
//! `GROUP BY` over an outer join or over another updating aggregate).
//!
//! DataFusion's own retractable ("sliding") accumulators assume rows leave
//! in the order they came, or keep state that loses counts when it is
//! serialized and merged back, which the state backends do at every
//! eviction and snapshot. These keep what a retraction needs in their
//! serialized state:
//!
//! - `COUNT`, `SUM`, `AVG`: a running sum and the number of non-null values
//!   (a sum over no values is NULL, as SQL wants, even after retractions);
//! - `MIN`, `MAX`, `COUNT(DISTINCT)`: each distinct value with how many
//!   rows hold it, so a retracted maximum falls back to the next one.
//!
//! Each group also counts its rows (a hidden `COUNT(*)`): a group whose
//! rows were all taken back is deleted (`-D`), as Flink does.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::logical_expr::Accumulator;
use datafusion::scalar::ScalarValue;

use crate::error::Result;

/// Which retractable accumulator an aggregate call uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retraction {
    /// `COUNT(x)` / `COUNT(*)`: non-null values.
    Count,
    /// `SUM(x)`, summed in the result type.
    Sum(DataType),
    /// `AVG(x)`, summed as `Float64`.
    Avg,
    /// `MIN(x)` of values of this type.
    Min(DataType),
    /// `MAX(x)`.
    Max(DataType),
    /// `COUNT(DISTINCT x)`.
    CountDistinct(DataType),
}

impl Retraction {
    /// The retractable form of aggregate function `name` (DataFusion's
    /// lower-case name) over `argument` returning `result`, if there is one.
    pub fn for_function(
        name: &str,
        distinct: bool,
        argument: Option<&DataType>,
        result: &DataType,
    ) -> Option<Retraction> {
        match (name, distinct) {
            ("count", false) => Some(Retraction::Count),
            ("count", true) => argument.map(|t| Retraction::CountDistinct(t.clone())),
            ("sum", false) if result.is_numeric() => Some(Retraction::Sum(result.clone())),
            ("avg", false) if *result == DataType::Float64 => Some(Retraction::Avg),
            ("min", false) => Some(Retraction::Min(result.clone())),
            ("max", false) => Some(Retraction::Max(result.clone())),
            _ => None,
        }
    }

    /// The state's fields, as the state backends store them.
    pub fn state_fields(&self) -> Vec<FieldRef> {
        let list = |t: &DataType| DataType::new_list(t.clone(), true);
        let fields = match self {
            Retraction::Count => vec![Field::new("count", DataType::Int64, false)],
            Retraction::Sum(t) => vec![
                Field::new("sum", t.clone(), true),
                Field::new("count", DataType::Int64, false),
            ],
            Retraction::Avg => vec![
                Field::new("sum", DataType::Float64, true),
                Field::new("count", DataType::Int64, false),
            ],
            Retraction::Min(t) | Retraction::Max(t) | Retraction::CountDistinct(t) => vec![
                Field::new("values", list(t), true),
                Field::new("counts", list(&DataType::Int64), true),
            ],
        };
        fields.into_iter().map(Arc::new).collect()
    }

    /// A fresh accumulator.
    pub fn create(&self) -> Result<Box<dyn Accumulator>> {
        Ok(match self {
            Retraction::Count => Box::new(SignedSum::count()),
            Retraction::Sum(t) => Box::new(SignedSum::sum(t.clone())?),
            Retraction::Avg => Box::new(SignedSum::avg()?),
            Retraction::Min(t) => Box::new(ValueCounts::new(t.clone(), Pick::Min)),
            Retraction::Max(t) => Box::new(ValueCounts::new(t.clone(), Pick::Max)),
            Retraction::CountDistinct(t) => Box::new(ValueCounts::new(t.clone(), Pick::Distinct)),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Count,
    Sum,
    Avg,
}

/// A running sum and count that rows can leave.
#[derive(Debug)]
struct SignedSum {
    what: Measure,
    /// The type summed in (`Int64` for a count: unused).
    sum_type: DataType,
    sum: ScalarValue,
    count: i64,
}

impl SignedSum {
    fn count() -> Self {
        Self {
            what: Measure::Count,
            sum_type: DataType::Int64,
            sum: ScalarValue::Int64(None),
            count: 0,
        }
    }

    fn sum(t: DataType) -> Result<Self> {
        Ok(Self {
            what: Measure::Sum,
            sum: ScalarValue::try_from(&t)?,
            sum_type: t,
            count: 0,
        })
    }

    fn avg() -> Result<Self> {
        Ok(Self {
            what: Measure::Avg,
            sum: ScalarValue::Float64(None),
            sum_type: DataType::Float64,
            count: 0,
        })
    }

    /// Adds (`sign` 1) or takes away (-1) the values of `values`.
    fn apply(&mut self, values: &[ArrayRef], sign: i64) -> datafusion::error::Result<()> {
        let Some(array) = values.first() else {
            return Ok(());
        };
        // COUNT(a, b): rows where every argument is non-null.
        let non_null = if values.len() == 1 {
            (array.len() - array.null_count()) as i64
        } else {
            (0..array.len())
                .filter(|i| values.iter().all(|v| v.is_valid(*i)))
                .count() as i64
        };
        self.count += sign * non_null;
        if self.what == Measure::Count || non_null == 0 {
            return Ok(());
        }
        let cast_values = cast(array, &self.sum_type)?;
        let total = sum_array(&cast_values)?;
        self.sum = match (self.sum.is_null(), sign > 0) {
            (true, true) => total,
            (true, false) => ScalarValue::try_from(&self.sum_type)?.sub(&total)?,
            (false, true) => self.sum.add(&total)?,
            (false, false) => self.sum.sub(&total)?,
        };
        if self.sum.is_null() {
            self.sum = ScalarValue::try_from(&self.sum_type)?;
        }
        Ok(())
    }
}

/// The sum of an array's non-null values, as a scalar of its type: one
/// Arrow kernel for the types sums are kept in, scalar by scalar otherwise.
fn sum_array(array: &ArrayRef) -> datafusion::error::Result<ScalarValue> {
    use datafusion::arrow::compute::sum;
    use datafusion::arrow::datatypes::{Decimal128Type, Float64Type, UInt64Type};
    Ok(match array.data_type() {
        DataType::Int64 => ScalarValue::Int64(sum(array.as_primitive::<Int64Type>())),
        DataType::UInt64 => ScalarValue::UInt64(sum(array.as_primitive::<UInt64Type>())),
        DataType::Float64 => ScalarValue::Float64(sum(array.as_primitive::<Float64Type>())),
        DataType::Decimal128(p, s) => {
            ScalarValue::Decimal128(sum(array.as_primitive::<Decimal128Type>()), *p, *s)
        }
        other => {
            let mut total = ScalarValue::try_from(other)?;
            for i in 0..array.len() {
                if array.is_valid(i) {
                    let v = ScalarValue::try_from_array(array, i)?;
                    total = if total.is_null() { v } else { total.add(&v)? };
                }
            }
            total
        }
    })
}

impl Accumulator for SignedSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        self.apply(values, 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        self.apply(values, -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> datafusion::error::Result<ScalarValue> {
        match self.what {
            Measure::Count => Ok(ScalarValue::Int64(Some(self.count))),
            _ if self.count <= 0 => ScalarValue::try_from(&self.sum_type),
            Measure::Sum => Ok(self.sum.clone()),
            Measure::Avg => match &self.sum {
                ScalarValue::Float64(Some(s)) => {
                    Ok(ScalarValue::Float64(Some(s / self.count as f64)))
                }
                _ => Ok(ScalarValue::Float64(None)),
            },
        }
    }

    fn state(&mut self) -> datafusion::error::Result<Vec<ScalarValue>> {
        Ok(match self.what {
            Measure::Count => vec![ScalarValue::Int64(Some(self.count))],
            _ => vec![self.sum.clone(), ScalarValue::Int64(Some(self.count))],
        })
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::error::Result<()> {
        let counts_at = if self.what == Measure::Count { 0 } else { 1 };
        let Some(counts) = states.get(counts_at) else {
            return Ok(());
        };
        let counts = cast(counts, &DataType::Int64)?;
        for c in counts.as_primitive::<Int64Type>().iter().flatten() {
            self.count += c;
        }
        if self.what != Measure::Count {
            let total = sum_array(&cast(&states[0], &self.sum_type)?)?;
            if !total.is_null() {
                self.sum = if self.sum.is_null() {
                    total
                } else {
                    self.sum.add(&total)?
                };
            }
        }
        Ok(())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    Min,
    Max,
    Distinct,
}

/// Distinct values with how many live rows hold each.
#[derive(Debug)]
struct ValueCounts {
    value_type: DataType,
    pick: Pick,
    counts: HashMap<ScalarValue, i64>,
}

impl ValueCounts {
    fn new(value_type: DataType, pick: Pick) -> Self {
        Self {
            value_type,
            pick,
            counts: HashMap::new(),
        }
    }

    fn apply(&mut self, values: &[ArrayRef], sign: i64) -> datafusion::error::Result<()> {
        let Some(array) = values.first() else {
            return Ok(());
        };
        for i in 0..array.len() {
            if array.is_valid(i) {
                let v = ScalarValue::try_from_array(array, i)?;
                let n = self.counts.entry(v).or_insert(0);
                *n += sign;
            }
        }
        self.counts.retain(|_, n| *n != 0);
        Ok(())
    }
}

impl Accumulator for ValueCounts {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        self.apply(values, 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        self.apply(values, -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> datafusion::error::Result<ScalarValue> {
        let live = self.counts.iter().filter(|(_, n)| **n > 0).map(|(v, _)| v);
        let picked = match self.pick {
            Pick::Distinct => return Ok(ScalarValue::Int64(Some(live.count() as i64))),
            Pick::Min => live.min_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal)),
            Pick::Max => live.max_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal)),
        };
        match picked {
            Some(v) => Ok(v.clone()),
            None => ScalarValue::try_from(&self.value_type),
        }
    }

    fn state(&mut self) -> datafusion::error::Result<Vec<ScalarValue>> {
        let (values, counts): (Vec<ScalarValue>, Vec<ScalarValue>) = self
            .counts
            .iter()
            .map(|(v, n)| (v.clone(), ScalarValue::Int64(Some(*n))))
            .unzip();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &self.value_type)),
            ScalarValue::List(ScalarValue::new_list_nullable(&counts, &DataType::Int64)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::error::Result<()> {
        let (Some(values), Some(counts)) = (states.first(), states.get(1)) else {
            return Ok(());
        };
        let values: &ListArray = values.as_list::<i32>();
        let counts: &ListArray = counts.as_list::<i32>();
        for (vs, ns) in values.iter().zip(counts.iter()) {
            let (Some(vs), Some(ns)) = (vs, ns) else {
                continue;
            };
            let ns = cast(&ns, &DataType::Int64)?;
            let ns: &Int64Array = ns.as_primitive::<Int64Type>();
            for j in 0..vs.len().min(ns.len()) {
                let v = ScalarValue::try_from_array(&vs, j)?;
                *self.counts.entry(v).or_insert(0) += ns.value(j);
            }
        }
        self.counts.retain(|_, n| *n != 0);
        Ok(())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.counts.keys().map(|v| v.size() + 8).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::error::{EngineError, Result};

    /// Checks that a retraction's state fields match what its accumulator
    /// writes (a bug otherwise).
    fn check(retraction: &Retraction) -> Result<()> {
        let mut acc = retraction.create()?;
        let state = acc.state()?;
        if state.len() != retraction.state_fields().len() {
            return Err(EngineError::Internal(format!(
                "retractable accumulator {retraction:?} writes {} state values for {} fields",
                state.len(),
                retraction.state_fields().len()
            )));
        }
        Ok(())
    }

    fn ints(v: &[Option<i64>]) -> Vec<ArrayRef> {
        vec![Arc::new(Int64Array::from(v.to_vec()))]
    }

    /// Serializes an accumulator's state and merges it into a fresh one,
    /// as an eviction or a snapshot does.
    fn round_trip(r: &Retraction, acc: &mut Box<dyn Accumulator>) -> Box<dyn Accumulator> {
        let state = acc.state().unwrap();
        let arrays: Vec<ArrayRef> = state.iter().map(|s| s.to_array().unwrap()).collect();
        let mut fresh = r.create().unwrap();
        fresh.merge_batch(&arrays).unwrap();
        fresh
    }

    #[test]
    fn a_retracted_maximum_falls_back_to_the_next_value_after_a_round_trip() {
        let r = Retraction::Max(DataType::Int64);
        let mut acc = r.create().unwrap();
        acc.update_batch(&ints(&[Some(5), Some(9), Some(9), None]))
            .unwrap();
        let mut acc = round_trip(&r, &mut acc);
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Int64(Some(9)));
        acc.retract_batch(&ints(&[Some(9)])).unwrap();
        assert_eq!(
            acc.evaluate().unwrap(),
            ScalarValue::Int64(Some(9)),
            "one 9 left"
        );
        acc.retract_batch(&ints(&[Some(9)])).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Int64(Some(5)));
        acc.retract_batch(&ints(&[Some(5)])).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Int64(None));
    }

    #[test]
    fn sums_counts_and_averages_take_rows_back_and_a_sum_of_nothing_is_null() {
        let sum = Retraction::Sum(DataType::Int64);
        let mut s = sum.create().unwrap();
        let mut c = Retraction::Count.create().unwrap();
        let mut a = Retraction::Avg.create().unwrap();
        let mut d = Retraction::CountDistinct(DataType::Int64).create().unwrap();
        let rows = ints(&[Some(1), Some(2), None, Some(2)]);
        for acc in [&mut s, &mut c, &mut d] {
            acc.update_batch(&rows).unwrap();
        }
        a.update_batch(&[cast(&rows[0], &DataType::Float64).unwrap()])
            .unwrap();
        let mut s = round_trip(&sum, &mut s);
        assert_eq!(s.evaluate().unwrap(), ScalarValue::Int64(Some(5)));
        assert_eq!(c.evaluate().unwrap(), ScalarValue::Int64(Some(3)));
        assert_eq!(d.evaluate().unwrap(), ScalarValue::Int64(Some(2)));
        assert_eq!(a.evaluate().unwrap(), ScalarValue::Float64(Some(5.0 / 3.0)));
        let back = ints(&[Some(2), Some(1), Some(2)]);
        for acc in [&mut s, &mut c, &mut d] {
            acc.retract_batch(&back).unwrap();
        }
        assert_eq!(s.evaluate().unwrap(), ScalarValue::Int64(None));
        assert_eq!(c.evaluate().unwrap(), ScalarValue::Int64(Some(0)));
        assert_eq!(d.evaluate().unwrap(), ScalarValue::Int64(Some(0)));
        for r in [
            Retraction::Count,
            sum,
            Retraction::Avg,
            Retraction::Min(DataType::Utf8),
            Retraction::CountDistinct(DataType::Int64),
        ] {
            check(&r).unwrap();
        }
    }
}
