//! The statement splitter, the completeness check the shell uses, and the
//! Flink SQL parser: any text gets statements or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_sql::parser::{parse_statement, split_shift_right, split_statements};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = weir_sql::is_complete(&text);
    if let Ok(statements) = split_statements(&text) {
        for tokens in statements {
            let _ = parse_statement(split_shift_right(tokens));
        }
    }
});
