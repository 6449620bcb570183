//! Checkpoint `_metadata` decoding and restore planning. The input is tried
//! as a whole file and, so that the fuzzer gets past the checksum, as the
//! JSON body of a file whose header and checksum are right.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_checkpoint::{content_checksum, plan_restore, CheckpointMetadata, FORMAT_VERSION};

fuzz_target!(|data: &[u8]| {
    let _ = CheckpointMetadata::decode(data, "fuzz");
    let mut file = format!("WEIR-CHECKPOINT {FORMAT_VERSION}\n").into_bytes();
    file.extend_from_slice(data);
    file.extend_from_slice(format!("\nxxh64 {:016x}\n", content_checksum(data)).as_bytes());
    if let Ok(metadata) = CheckpointMetadata::decode(&file, "fuzz") {
        let plan = plan_restore(&metadata, &metadata.operators);
        let _ = plan.check(false);
        let _ = plan.check(true);
    }
});
