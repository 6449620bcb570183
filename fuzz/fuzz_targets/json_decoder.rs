//! The filesystem source's JSON-lines decoder over any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| weir_fuzz::read_file("json", data));
