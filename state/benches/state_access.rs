//! State access per backend: value get/put, map put, list append, with
//! batches of 1 and 1024 operations. Prints operations per second.
//!
//! `cargo bench -p weir-state --bench state_access` (release), or with
//! `-- --quick` for a smoke run of a few thousand operations.

use std::sync::Arc;
use std::time::Instant;

use weir_state::{
    BackendConfig, BackendKind, Change, KeyGroupRange, KeyedState, StateCodec, StateDescriptor,
    StateKind, SystemClock,
};

const MAXP: usize = 128;

fn config(kind: BackendKind, dir: &std::path::Path) -> BackendConfig {
    let mut c = BackendConfig::new(kind);
    c.local_dir = Some(dir.to_path_buf());
    c.clock = Arc::new(SystemClock);
    c
}

fn report(backend: &str, what: &str, batch: usize, ops: usize, secs: f64) {
    println!(
        "{backend:<8} {what:<12} batch {batch:>5}  {:>12.0} ops/s  ({ops} ops in {secs:.3} s)",
        ops as f64 / secs
    );
}

/// Raw backend calls with `batch` entries per call (what SQL operators do).
fn raw(kind: BackendKind, dir: &std::path::Path, keys: usize, batch: usize) {
    let mut b = config(kind, dir)
        .create("bench-raw")
        .unwrap_or_else(|e| panic!("{e}"));
    let id = b
        .register(&StateDescriptor::new("v", StateKind::Raw))
        .unwrap_or_else(|e| panic!("{e}"));
    let address = |k: usize| {
        let key = (k as u64).to_bytes();
        let g = weir_state::key::key_group_for_bytes(&key, MAXP);
        weir_state::keyed::value_address(g, &key, &[])
    };
    let value = vec![7u8; 32];
    let start = Instant::now();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(batch) {
        let changes: Vec<Change> = chunk
            .iter()
            .map(|k| (address(*k), Some(value.clone())))
            .collect();
        b.write(id, changes).unwrap_or_else(|e| panic!("{e}"));
    }
    report(
        kind.name(),
        "value put",
        batch,
        keys,
        start.elapsed().as_secs_f64(),
    );
    let start = Instant::now();
    let mut found = 0usize;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(batch) {
        let addresses: Vec<Vec<u8>> = chunk.iter().map(|k| address(*k)).collect();
        let refs: Vec<&[u8]> = addresses.iter().map(Vec::as_slice).collect();
        found += b
            .multi_get(id, &refs)
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .filter(|v| v.is_some())
            .count();
    }
    assert_eq!(found, keys);
    report(
        kind.name(),
        "value get",
        batch,
        keys,
        start.elapsed().as_secs_f64(),
    );
}

/// The typed primitives, one operation at a time.
fn typed(kind: BackendKind, dir: &std::path::Path, keys: usize) {
    let backend = config(kind, dir)
        .create("bench-typed")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut s = KeyedState::new(backend, MAXP);
    let m = s
        .map_state::<u32, u64>("m", None)
        .unwrap_or_else(|e| panic!("{e}"));
    let l = s
        .list_state::<u64>("l", None)
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    for k in 0..keys {
        s.set_current_key(&((k % 1000) as u64));
        m.put(&mut s, &(k as u32), &(k as u64))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    report(
        kind.name(),
        "map put",
        1,
        keys,
        start.elapsed().as_secs_f64(),
    );
    let start = Instant::now();
    for k in 0..keys {
        s.set_current_key(&((k % 1000) as u64));
        l.add(&mut s, &(k as u64)).unwrap_or_else(|e| panic!("{e}"));
    }
    report(
        kind.name(),
        "list append",
        1,
        keys,
        start.elapsed().as_secs_f64(),
    );
    let start = Instant::now();
    let values: Vec<u64> = (0..1024).collect();
    let rounds = keys / 1024;
    for k in 0..rounds {
        s.set_current_key(&(k as u64 + 10_000));
        l.add_all(&mut s, &values).unwrap_or_else(|e| panic!("{e}"));
    }
    report(
        kind.name(),
        "list append",
        1024,
        rounds * 1024,
        start.elapsed().as_secs_f64(),
    );
    let stats = s.backend().stats().unwrap_or_else(|e| panic!("{e}"));
    let _ = KeyGroupRange::all(MAXP);
    println!(
        "{:<8} state after the run: {} entries, {} bytes",
        kind.name(),
        stats.entries,
        stats.bytes
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let keys = if quick { 5_000 } else { 1_000_000 };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    println!("state access, {keys} keys per measurement");
    for kind in [BackendKind::HashMap, BackendKind::RocksDb] {
        for batch in [1, 1024] {
            raw(kind, dir.path(), keys, batch);
        }
        typed(kind, dir.path(), keys);
    }
}
