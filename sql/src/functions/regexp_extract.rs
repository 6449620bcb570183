//! `REGEXP_EXTRACT(str, regex [, index])`: the text that group `index` of
//! the first match captured (0: the whole match, the default); NULL when
//! nothing matches or the group did not take part. A regex that does not
//! compile is an error naming it.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use regex::Regex;

use super::{as_array, map_strings, result};

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct RegexpExtract {
    signature: Signature,
}

impl RegexpExtract {
    pub(super) fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8, DataType::Int64]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if all_scalar { 1 } else { rows };
        let (input, pattern, index) = match args.args.as_slice() {
            [s, p] => (s, p, None),
            [s, p, i] => (s, p, Some(i)),
            _ => return exec_err!("REGEXP_EXTRACT takes 2 or 3 arguments"),
        };
        let strings = as_array(input, n)?;
        let patterns = as_array(pattern, n)?;
        let patterns = patterns.as_string::<i32>();
        let indexes = index.map(|i| as_array(i, n)).transpose()?;
        let indexes = indexes.as_ref().map(|i| i.as_primitive::<Int64Type>());
        // Patterns are nearly always literals: compile each distinct one once.
        let mut compiled: HashMap<String, Regex> = HashMap::new();
        let out = map_strings(&strings, |i, s, out| {
            if patterns.is_null(i) || indexes.is_some_and(|x| x.is_null(i)) {
                out.append_null();
                return Ok(());
            }
            let group = indexes.map_or(0, |x| x.value(i));
            let pattern = patterns.value(i);
            if !compiled.contains_key(pattern) {
                match Regex::new(pattern) {
                    Ok(r) => {
                        compiled.insert(pattern.to_string(), r);
                    }
                    Err(e) => {
                        return exec_err!("REGEXP_EXTRACT: bad regular expression '{pattern}': {e}")
                    }
                }
            }
            let Some(regex) = compiled.get(pattern) else {
                return exec_err!("REGEXP_EXTRACT: regular expression cache lost '{pattern}'");
            };
            if group < 0 || group as usize >= regex.captures_len() {
                return exec_err!(
                    "REGEXP_EXTRACT: group {group} does not exist in '{pattern}' ({} groups)",
                    regex.captures_len() - 1
                );
            }
            match regex.captures(s).and_then(|c| c.get(group as usize)) {
                Some(m) => out.append_value(m.as_str()),
                None => out.append_null(),
            }
            Ok(())
        })?;
        result(out, all_scalar)
    }
}
