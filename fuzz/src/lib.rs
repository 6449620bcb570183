//! Helpers the fuzz targets share.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use weir_engine::connectors::filesystem::FileSource;
use weir_engine::connectors::{Options, SourceFactory, SourcePoll};
use weir_engine::metrics::NodeMetrics;
use weir_engine::operators::TaskContext;
use weir_engine::StateSettings;

/// Reads `data` as a file in `format` with the filesystem source, as a
/// bounded `SELECT` would, with and without `<format>.ignore-parse-errors`.
/// Every outcome is fine but a panic.
pub fn read_file(format: &str, data: &[u8]) {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"));
    let path = dir.path().join(format!("input.{format}"));
    std::fs::write(&path, data).expect("write the input");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    for ignore in ["false", "true"] {
        let values: BTreeMap<String, String> = [
            ("path", path.to_string_lossy().to_string()),
            ("format", format.to_string()),
            (&format!("{format}.ignore-parse-errors"), ignore.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let Ok(source) = FileSource::new(Options::new("filesystem", &values), schema.clone())
        else {
            continue;
        };
        let Ok(mut reader) = source.create_reader(&task_context()) else {
            continue;
        };
        // A bounded file ends; the bound keeps a decoder that never ends
        // from hanging the fuzzer (it would show as a timeout instead).
        for _ in 0..100_000 {
            match reader.poll_next() {
                Ok(SourcePoll::Batch(_) | SourcePoll::SplitBatch(..) | SourcePoll::Splits(_)) => {}
                Ok(SourcePoll::Idle(_)) | Ok(SourcePoll::End) | Err(_) => break,
            }
        }
    }
}

fn task_context() -> TaskContext {
    TaskContext {
        subtask: 0,
        parallelism: 1,
        max_parallelism: 128,
        batch_size: 64,
        metrics: Arc::new(NodeMetrics::default()),
        job_id: "fuzz".into(),
        node: 0,
        state: Arc::new(StateSettings {
            backend: weir_state::BackendConfig::new(weir_state::BackendKind::HashMap),
            ttl: None,
            cache_entries: usize::MAX,
        }),
        backend: None,
        operator_state: Vec::new(),
        checkpointing: false,
    }
}
