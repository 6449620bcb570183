//! The filesystem source's CSV decoder over any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| weir_fuzz::read_file("csv", data));
