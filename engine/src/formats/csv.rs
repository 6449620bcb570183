//! The `csv` format: one record per line, fields split by a delimiter,
//! quoted fields may hold the delimiter, quotes (doubled) and line breaks.
//!
//! Fields are collected as text per column and converted with Arrow's cast
//! kernels a batch at a time; only when a column fails to convert are its
//! values examined one by one, to name the bad record or to skip it.

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray, StringBuilder};
use datafusion::arrow::compute::{cast_with_options, filter_record_batch, CastOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::util::display::FormatOptions;

use super::{kept_mask, option_error, utf8, BadRecord, Decoded};
use crate::connectors::Options;
use crate::error::Result;
use crate::format::column_strings;

/// The options of the `csv` format.
#[derive(Debug, Clone)]
pub struct CsvFormat {
    /// The columns of a record, in field order.
    pub schema: SchemaRef,
    /// `csv.field-delimiter` (`,`).
    pub delimiter: u8,
    /// `csv.quote-character` (`"`).
    pub quote: u8,
    /// `csv.null-literal`: text that reads as NULL besides an empty field.
    pub null_literal: Option<String>,
    /// `csv.ignore-parse-errors`: skip and count bad records.
    pub ignore_parse_errors: bool,
}

impl CsvFormat {
    /// Reads `{prefix}csv.*` and checks the columns are flat.
    pub fn from_options(options: &mut Options, prefix: &str, schema: SchemaRef) -> Result<Self> {
        let connector = options.connector().to_string();
        let single_char = |key: String, v: Option<String>, default: u8| -> Result<u8> {
            match v {
                None => Ok(default),
                Some(v) => {
                    let v = if v == "\\t" { "\t".to_string() } else { v };
                    if v.len() == 1 {
                        Ok(v.as_bytes()[0])
                    } else {
                        Err(option_error(
                            &connector,
                            format!("option '{key}' must be a single character, found '{v}'"),
                        ))
                    }
                }
            }
        };
        let key = |k: &str| format!("{prefix}csv.{k}");
        let delimiter = single_char(
            key("field-delimiter"),
            options.string(&key("field-delimiter")),
            b',',
        )?;
        let quote = single_char(
            key("quote-character"),
            options.string(&key("quote-character")),
            b'"',
        )?;
        let null_literal = options.string(&key("null-literal"));
        let ignore_parse_errors = options.bool(&key("ignore-parse-errors"), false)?;
        if let Some(f) = schema.fields().iter().find(|f| f.data_type().is_nested()) {
            return Err(option_error(
                &connector,
                format!(
                    "column '{}' has nested type {}, which the csv format cannot hold; use 'json'",
                    f.name(),
                    f.data_type()
                ),
            ));
        }
        Ok(Self {
            schema,
            delimiter,
            quote,
            null_literal,
            ignore_parse_errors,
        })
    }

    /// Decodes one record per element of `records` (no line breaks at the
    /// end); bad records are reported in order.
    pub fn decode(&self, records: &[&[u8]], bad: &mut BadRecord<'_>) -> Result<Decoded> {
        let width = self.schema.fields().len();
        let mut builders: Vec<StringBuilder> = (0..width).map(|_| StringBuilder::new()).collect();
        // The record of each row collected.
        let mut record_of_row: Vec<usize> = Vec::with_capacity(records.len());
        let mut errors: Vec<(usize, String)> = Vec::new();
        let null_literal = self.null_literal.as_deref();
        let mut fields = Vec::with_capacity(width);
        for (i, record) in records.iter().enumerate() {
            let text = match utf8(record) {
                Ok(t) => t,
                Err(reason) => {
                    errors.push((i, reason));
                    continue;
                }
            };
            match split_csv(text, self.delimiter, self.quote, &mut fields) {
                Ok(()) if fields.len() == width => {
                    for (b, f) in builders.iter_mut().zip(&fields) {
                        match f {
                            Some(v) if Some(v.as_ref()) != null_literal => b.append_value(v),
                            _ => b.append_null(),
                        }
                    }
                    record_of_row.push(i);
                }
                Ok(()) => errors.push((
                    i,
                    format!("expected {width} fields, found {}", fields.len()),
                )),
                Err(reason) => errors.push((i, reason)),
            }
        }
        let texts: Vec<ArrayRef> = builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let (columns, bad_rows) = self.convert(&texts, &record_of_row, &mut errors)?;
        errors.sort_by_key(|(i, _)| *i);
        errors.dedup_by_key(|(i, _)| *i);
        for (i, reason) in &errors {
            bad(*i, reason.clone())?;
        }
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(record_of_row.len())),
        )?;
        let batch = match bad_rows {
            Some(ok) => filter_record_batch(&batch, &BooleanArray::from(ok))?,
            None => batch,
        };
        let skipped: Vec<usize> = errors.iter().map(|(i, _)| *i).collect();
        Ok(Decoded {
            batch,
            kept: kept_mask(records.len(), &skipped),
        })
    }

    /// Casts text columns to the schema's types. Rows with a value that
    /// does not convert are added to `errors` and left out (the returned
    /// mask over the collected rows).
    fn convert(
        &self,
        texts: &[ArrayRef],
        record_of_row: &[usize],
        errors: &mut Vec<(usize, String)>,
    ) -> Result<(Vec<ArrayRef>, Option<Vec<bool>>)> {
        let strict = CastOptions {
            safe: false,
            format_options: FormatOptions::default(),
        };
        let lenient = CastOptions {
            safe: true,
            format_options: FormatOptions::default(),
        };
        let mut columns = Vec::with_capacity(texts.len());
        let mut ok_rows: Option<Vec<bool>> = None;
        for (text, field) in texts.iter().zip(self.schema.fields()) {
            let target = field.data_type();
            match cast_with_options(text, target, &strict) {
                Ok(col) => columns.push(col),
                Err(_) => {
                    let col = cast_with_options(text, target, &lenient)?;
                    let ok = ok_rows.get_or_insert_with(|| vec![true; text.len()]);
                    let strings = text.as_any().downcast_ref::<StringArray>();
                    for row in 0..text.len() {
                        if text.is_valid(row) && col.is_null(row) && ok[row] {
                            let value = strings.map(|s| s.value(row)).unwrap_or_default();
                            errors.push((
                                record_of_row[row],
                                format!(
                                    "cannot read '{value}' as {target} for column '{}'",
                                    field.name()
                                ),
                            ));
                            ok[row] = false;
                        }
                    }
                    columns.push(col);
                }
            }
        }
        Ok((columns, ok_rows))
    }

    /// One line of text per row (no line break).
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        let columns: Vec<Vec<String>> = batch
            .columns()
            .iter()
            .map(column_strings)
            .collect::<Result<_>>()?;
        let null_text = self.null_literal.clone().unwrap_or_default();
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let mut text = String::new();
            for (i, col) in columns.iter().enumerate() {
                if i > 0 {
                    text.push(self.delimiter as char);
                }
                if batch.column(i).is_null(row) {
                    text.push_str(&null_text);
                } else {
                    text.push_str(&field_text(&col[row], self.delimiter, self.quote));
                }
            }
            out.push(text.into_bytes());
        }
        Ok(out)
    }
}

/// A value as a CSV field: quoted when it holds the delimiter, a quote or a
/// line break.
pub fn field_text(value: &str, delimiter: u8, quote: u8) -> Cow<'_, str> {
    let needs = value
        .bytes()
        .any(|b| b == delimiter || b == quote || b == b'\n' || b == b'\r');
    if needs {
        let q = quote as char;
        Cow::Owned(format!("{q}{}{q}", value.replace(q, &format!("{q}{q}"))))
    } else {
        Cow::Borrowed(value)
    }
}

/// Splits one CSV record into `fields`, honouring quotes (`""` inside quotes
/// is a quote). Unquoted fields borrow from the line; an empty one is NULL.
pub fn split_csv<'a>(
    line: &'a str,
    delimiter: u8,
    quote: u8,
    fields: &mut Vec<Option<Cow<'a, str>>>,
) -> std::result::Result<(), String> {
    let bytes = line.as_bytes();
    fields.clear();
    let mut i = 0;
    loop {
        if i < bytes.len() && bytes[i] == quote {
            let mut value = Vec::new();
            i += 1;
            loop {
                if i >= bytes.len() {
                    return Err("unterminated quoted field".into());
                }
                if bytes[i] == quote {
                    if i + 1 < bytes.len() && bytes[i + 1] == quote {
                        value.push(quote);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                value.push(bytes[i]);
                i += 1;
            }
            fields.push(Some(Cow::Owned(
                String::from_utf8_lossy(&value).into_owned(),
            )));
            if i < bytes.len() && bytes[i] != delimiter {
                return Err("unexpected character after a quoted field".into());
            }
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != delimiter {
                i += 1;
            }
            let raw = &line[start..i];
            fields.push((!raw.is_empty()).then_some(Cow::Borrowed(raw)));
        }
        if i >= bytes.len() {
            break;
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_csv;

    #[test]
    fn csv_quotes_and_empty_fields() {
        let mut f = Vec::new();
        split_csv(r#"1,"a, ""b""",,x"#, b',', b'"', &mut f).unwrap();
        let f: Vec<Option<String>> = f.into_iter().map(|v| v.map(|c| c.into_owned())).collect();
        assert_eq!(
            f,
            vec![
                Some("1".into()),
                Some("a, \"b\"".into()),
                None,
                Some("x".into())
            ]
        );
        assert!(split_csv(r#"1,"open"#, b',', b'"', &mut Vec::new()).is_err());
    }
}
