//! Turning values into text the way the shell and the print sink show them.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::Result;

/// Formats every value of `array` as display text (`NULL` for nulls,
/// timestamps as `yyyy-MM-dd HH:mm:ss.SSS`).
pub fn column_strings(array: &ArrayRef) -> Result<Vec<String>> {
    let ts_format = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => "%Y-%m-%d %H:%M:%S",
        DataType::Timestamp(TimeUnit::Millisecond, _) => "%Y-%m-%d %H:%M:%S%.3f",
        DataType::Timestamp(TimeUnit::Microsecond, _) => "%Y-%m-%d %H:%M:%S%.6f",
        _ => "%Y-%m-%d %H:%M:%S%.9f",
    };
    let options = FormatOptions::default()
        .with_null("NULL")
        .with_timestamp_format(Some(ts_format))
        .with_datetime_format(Some(ts_format));
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
    Ok((0..array.len())
        .map(|i| formatter.value(i).to_string())
        .collect())
}
