//! Window table functions: `TUMBLE`, `HOP` and `CUMULATE` add `window_start`,
//! `window_end` and `window_time` to each row (repeating the row once per
//! window it belongs to).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, filter_record_batch, is_not_null, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Operator, OperatorContext, OperatorFactory, TaskContext};
use crate::error::{EngineError, Result};

/// Which windows a row belongs to. Durations are milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size`.
    Tumble {
        /// Window length.
        size: i64,
    },
    /// Windows of `size` starting every `slide`.
    Hop {
        /// Distance between window starts.
        slide: i64,
        /// Window length (a multiple of `slide`).
        size: i64,
    },
    /// Windows that start every `max_size` and grow by `step` up to `max_size`.
    Cumulate {
        /// Growth step.
        step: i64,
        /// Largest window (a multiple of `step`).
        max_size: i64,
    },
}

impl WindowKind {
    /// Checks the sizes the way Flink does.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match *self {
            WindowKind::Tumble { size } if size <= 0 => Err("TUMBLE size must be positive".into()),
            WindowKind::Hop { slide, size } if slide <= 0 || size <= 0 => {
                Err("HOP slide and size must be positive".into())
            }
            WindowKind::Hop { slide, size } if size % slide != 0 => Err(format!(
                "HOP size ({size} ms) must be an integral multiple of its slide ({slide} ms)"
            )),
            WindowKind::Cumulate { step, max_size } if step <= 0 || max_size <= 0 => {
                Err("CUMULATE step and size must be positive".into())
            }
            WindowKind::Cumulate { step, max_size } if max_size % step != 0 => Err(format!(
                "CUMULATE max size ({max_size} ms) must be an integral multiple of its step ({step} ms)"
            )),
            _ => Ok(()),
        }
    }

    /// Calls `f(start, end)` for every window containing timestamp `ts`.
    #[inline]
    fn for_each_window(&self, ts: i64, offset: i64, mut f: impl FnMut(i64, i64)) {
        match *self {
            WindowKind::Tumble { size } => {
                let start = window_start(ts, offset, size);
                f(start, start + size);
            }
            WindowKind::Hop { slide, size } => {
                let last = window_start(ts, offset, slide);
                let mut start = last;
                while start > ts - size {
                    f(start, start + size);
                    start -= slide;
                }
            }
            WindowKind::Cumulate { step, max_size } => {
                let start = window_start(ts, offset, max_size);
                let mut end = window_start(ts, offset, step) + step;
                while end <= start + max_size {
                    f(start, end);
                    end += step;
                }
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            WindowKind::Tumble { size } => format!("TUMBLE(size=[{}])", fmt_ms(*size)),
            WindowKind::Hop { slide, size } => {
                format!("HOP(slide=[{}], size=[{}])", fmt_ms(*slide), fmt_ms(*size))
            }
            WindowKind::Cumulate { step, max_size } => {
                format!(
                    "CUMULATE(step=[{}], max_size=[{}])",
                    fmt_ms(*step),
                    fmt_ms(*max_size)
                )
            }
        }
    }
}

fn fmt_ms(ms: i64) -> String {
    if ms % 3_600_000 == 0 {
        format!("{} h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// Start of the window of length `size` (aligned to `offset`) holding `ts`.
#[inline]
pub fn window_start(ts: i64, offset: i64, size: i64) -> i64 {
    ts - (ts - offset).rem_euclid(size)
}

/// Planner output for a window table function.
#[derive(Clone)]
pub struct WindowAssignSpec {
    /// The kind of window and its sizes.
    pub kind: WindowKind,
    /// Window alignment offset, in ms.
    pub offset: i64,
    /// Index of the time attribute column in the input.
    pub time_column: usize,
    /// Its name, for `EXPLAIN`.
    pub time_column_name: String,
    /// Input columns followed by `window_start`, `window_end`, `window_time`.
    pub output_schema: SchemaRef,
}

impl OperatorFactory for WindowAssignSpec {
    fn create(&self, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(WindowAssignOperator { spec: self.clone() }))
    }

    fn describe(&self) -> String {
        format!(
            "WindowTableFunction({}, time_col=[{}])",
            self.kind.describe(),
            self.time_column_name
        )
    }

    fn kind(&self) -> &'static str {
        "WindowTableFunction"
    }
}

/// Runs a [`WindowAssignSpec`].
pub struct WindowAssignOperator {
    spec: WindowAssignSpec,
}

impl WindowAssignOperator {
    /// `TUMBLE`: one window per row, so the input's columns are kept as they
    /// are and the window columns computed over the whole time column.
    fn tumble(
        &self,
        batch: RecordBatch,
        times: &TimestampMillisecondArray,
        size: i64,
    ) -> Result<Option<RecordBatch>> {
        // Flink drops rows whose time attribute is NULL from windows.
        let (batch, times) = if times.null_count() > 0 {
            let keep = is_not_null(times)?;
            let batch = filter_record_batch(&batch, &keep)?;
            let times = as_millis(batch.column(self.spec.time_column))?;
            (batch, times)
        } else {
            (batch, times.clone())
        };
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        let starts = tumble_starts(times.values(), self.spec.offset, size);
        let ends: Vec<i64> = starts.iter().map(|s| s + size).collect();
        let window_times: Vec<i64> = ends.iter().map(|e| e - 1).collect();
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(TimestampMillisecondArray::from(starts)));
        columns.push(Arc::new(TimestampMillisecondArray::from(ends)));
        columns.push(Arc::new(TimestampMillisecondArray::from(window_times)));
        Ok(Some(RecordBatch::try_new(
            self.spec.output_schema.clone(),
            columns,
        )?))
    }
}

/// The `TUMBLE` window start of each timestamp. A batch usually spans at
/// most two windows; then each start is a comparison with the boundary
/// between them, not a division.
fn tumble_starts(times: &[i64], offset: i64, size: i64) -> Vec<i64> {
    if times.is_empty() {
        return Vec::new();
    }
    let (min, max) = times
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    let first = window_start(min, offset, size);
    match first.checked_add(size) {
        Some(boundary) if max < boundary.saturating_add(size) => times
            .iter()
            .map(|&ts| if ts >= boundary { boundary } else { first })
            .collect(),
        _ => times
            .iter()
            .map(|&ts| window_start(ts, offset, size))
            .collect(),
    }
}

/// Casts a time attribute column to milliseconds since the epoch.
pub fn as_millis(column: &ArrayRef) -> Result<TimestampMillisecondArray> {
    let ms = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    ms.as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .cloned()
        .ok_or_else(|| EngineError::Internal("time column is not a timestamp".into()))
}

impl Operator for WindowAssignOperator {
    fn process_batch(&mut self, batch: RecordBatch, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let times = as_millis(batch.column(self.spec.time_column))?;
        if let WindowKind::Tumble { size } = self.spec.kind {
            if let Some(batch) = self.tumble(batch, &times, size)? {
                ctx.emit(batch);
            }
            return Ok(());
        }
        let capacity = match self.spec.kind {
            WindowKind::Tumble { .. } => batch.num_rows(),
            WindowKind::Hop { slide, size } => batch.num_rows() * (size / slide) as usize,
            WindowKind::Cumulate { step, max_size } => {
                batch.num_rows() * (max_size / step) as usize
            }
        };
        let mut rows: Vec<u32> = Vec::with_capacity(capacity);
        let mut starts: Vec<i64> = Vec::with_capacity(capacity);
        let mut ends: Vec<i64> = Vec::with_capacity(capacity);
        for (i, ts) in times.iter().enumerate() {
            // Flink drops rows whose time attribute is NULL from windows.
            let Some(ts) = ts else { continue };
            self.spec
                .kind
                .for_each_window(ts, self.spec.offset, |s, e| {
                    rows.push(i as u32);
                    starts.push(s);
                    ends.push(e);
                });
        }
        if rows.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = if rows.len() == batch.num_rows()
            && rows.iter().enumerate().all(|(i, r)| *r as usize == i)
        {
            batch.columns().to_vec()
        } else {
            let indices = UInt32Array::from(rows);
            batch
                .columns()
                .iter()
                .map(|c| take(c, &indices, None))
                .collect::<std::result::Result<_, _>>()?
        };
        let times: Vec<i64> = ends.iter().map(|e| e - 1).collect();
        columns.push(Arc::new(TimestampMillisecondArray::from(starts)));
        columns.push(Arc::new(TimestampMillisecondArray::from(ends)));
        columns.push(Arc::new(TimestampMillisecondArray::from(times)));
        ctx.emit(RecordBatch::try_new(
            self.spec.output_schema.clone(),
            columns,
        )?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(kind: WindowKind, ts: i64) -> Vec<(i64, i64)> {
        let mut v = Vec::new();
        kind.for_each_window(ts, 0, |s, e| v.push((s, e)));
        v.sort();
        v
    }

    #[test]
    fn tumble_starts_match_the_definition() {
        let cases: Vec<Vec<i64>> = vec![
            vec![],
            vec![5],
            vec![0, 9, 10, 19, 3],
            vec![-25, -11, -10, -1],
            vec![0, 35, 7, 100],
            vec![-1_000_000_000_000, 4_000_000_000_000],
        ];
        for times in cases {
            for offset in [0, 3] {
                let expected: Vec<i64> =
                    times.iter().map(|&t| window_start(t, offset, 10)).collect();
                assert_eq!(tumble_starts(&times, offset, 10), expected, "{times:?}");
            }
        }
    }

    #[test]
    fn tumble_hop_cumulate_assignment() {
        assert_eq!(windows(WindowKind::Tumble { size: 10 }, 15), vec![(10, 20)]);
        assert_eq!(windows(WindowKind::Tumble { size: 10 }, -1), vec![(-10, 0)]);
        assert_eq!(
            windows(WindowKind::Hop { slide: 5, size: 10 }, 12),
            vec![(5, 15), (10, 20)]
        );
        assert_eq!(
            windows(WindowKind::Hop { slide: 5, size: 10 }, 10),
            vec![(5, 15), (10, 20)]
        );
        assert_eq!(
            windows(
                WindowKind::Cumulate {
                    step: 5,
                    max_size: 20
                },
                7
            ),
            vec![(0, 10), (0, 15), (0, 20)]
        );
        assert_eq!(
            windows(
                WindowKind::Cumulate {
                    step: 5,
                    max_size: 20
                },
                0
            ),
            vec![(0, 5), (0, 10), (0, 15), (0, 20)]
        );
        assert!(WindowKind::Hop { slide: 3, size: 10 }.validate().is_err());
    }
}
