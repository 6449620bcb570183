//! `DATE_FORMAT(timestamp, pattern)`: a timestamp as text, with a Java
//! `SimpleDateFormat` pattern as Flink takes it (`'yyyy-MM-dd HH:mm'`). A
//! string first argument is read as a timestamp first, as Flink does.
//!
//! The pattern is translated once into chrono's format and the column is
//! formatted with Arrow's formatter.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{as_array, result, scalar_string};

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct DateFormat {
    signature: Signature,
}

impl DateFormat {
    pub(super) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Translates a Java `SimpleDateFormat` pattern into a chrono format string.
pub(super) fn java_to_chrono(pattern: &str) -> Result<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal text; '' is a quote.
            i += 1;
            if chars.get(i) == Some(&'\'') {
                out.push('\'');
                i += 1;
                continue;
            }
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        out.push('\'');
                        i += 2;
                        continue;
                    }
                    break;
                }
                if chars[i] == '%' {
                    out.push_str("%%");
                } else {
                    out.push(chars[i]);
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            if c == '%' {
                out.push_str("%%");
            } else {
                out.push(c);
            }
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        let spec = match (c, n) {
            ('y', 2) => "%y",
            ('y', _) | ('u', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('D', _) => "%j",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 1) => "%1f",
            ('S', 2) => "%2f",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('a', _) => "%p",
            ('Z', _) => "%z",
            ('X', _) => "%:z",
            _ => {
                return plan_err!(
                    "DATE_FORMAT: pattern letter '{}' in '{pattern}' is not supported",
                    c.to_string().repeat(n)
                )
            }
        };
        out.push_str(spec);
        i += n;
    }
    Ok(out)
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [value, pattern] = args else {
            return plan_err!("DATE_FORMAT takes 2 arguments: a timestamp and a pattern");
        };
        let value = match value {
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => value.clone(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                DataType::Timestamp(TimeUnit::Millisecond, None)
            }
            other => return plan_err!("DATE_FORMAT cannot format a value of type {other}"),
        };
        match pattern {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {}
            other => return plan_err!("DATE_FORMAT's pattern must be a string, found {other}"),
        }
        Ok(vec![value, DataType::Utf8])
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value, pattern] = args.args.as_slice() else {
            return exec_err!("DATE_FORMAT takes 2 arguments");
        };
        let all_scalar = matches!(value, ColumnarValue::Scalar(_));
        let n = if all_scalar { 1 } else { args.number_rows };
        let values = as_array(value, n)?;
        let values = match values.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                cast(&values, &DataType::Timestamp(TimeUnit::Millisecond, None))?
            }
            _ => values,
        };
        let Some(pattern) = scalar_string(pattern) else {
            return exec_err!("DATE_FORMAT's pattern must be a literal");
        };
        let Some(pattern) = pattern else {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::Utf8(None),
            ));
        };
        let format = java_to_chrono(&pattern)?;
        let options = FormatOptions::new()
            .with_timestamp_format(Some(&format))
            .with_timestamp_tz_format(Some(&format))
            .with_date_format(Some(&format))
            .with_datetime_format(Some(&format));
        let formatter = ArrayFormatter::try_new(values.as_ref(), &options)?;
        let mut out = StringBuilder::with_capacity(values.len(), values.len() * format.len());
        for i in 0..values.len() {
            if values.is_null(i) {
                out.append_null();
            } else {
                write!(out, "{}", formatter.value(i)).map_err(|e| {
                    datafusion::error::DataFusionError::Execution(format!(
                        "DATE_FORMAT with '{pattern}': {e}"
                    ))
                })?;
                out.append_value("");
            }
        }
        result(Arc::new(out.finish()), all_scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::java_to_chrono;

    #[test]
    fn java_patterns_translate() {
        assert_eq!(java_to_chrono("yyyy-MM-dd").unwrap(), "%Y-%m-%d");
        assert_eq!(java_to_chrono("HH:mm").unwrap(), "%H:%M");
        assert_eq!(
            java_to_chrono("yyyy-MM-dd'T'HH:mm:ss.SSS").unwrap(),
            "%Y-%m-%dT%H:%M:%S.%3f"
        );
        assert_eq!(
            java_to_chrono("d MMM yy, h a").unwrap(),
            "%-d %b %y, %-I %p"
        );
        assert_eq!(java_to_chrono("'it''s' 100%").unwrap(), "it's 100%%");
        assert!(java_to_chrono("yyyy-QQ").is_err());
    }
}
