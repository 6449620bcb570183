//! Every state primitive on both backends, with one test body per property:
//! the `on_both_backends!` macro instantiates each test for `hashmap` and
//! `rocksdb`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use weir_state::{
    AggregateFunction, BackendConfig, BackendKind, KeyGroupRange, KeyedState, ManualClock,
    StateTtlConfig, StateVisibility, UpdateType,
};

const MAXP: usize = 128;

struct Fixture {
    config: BackendConfig,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn fixture(kind: BackendKind) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let mut config = BackendConfig::new(kind);
    config.local_dir = Some(dir.path().join("local"));
    config.clock = clock.clone();
    config.block_cache_bytes = 8 << 20;
    config.write_buffer_bytes = 4 << 20;
    Fixture {
        config,
        clock,
        _dir: dir,
    }
}

fn keyed(f: &Fixture, name: &str) -> KeyedState {
    KeyedState::new(f.config.create(name).unwrap(), MAXP)
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod hashmap {
            $(#[test] fn $name() { super::$name(weir_state::BackendKind::HashMap) })*
        }
        mod rocksdb {
            $(#[test] fn $name() { super::$name(weir_state::BackendKind::RocksDb) })*
        }
    };
}

on_both_backends!(
    value_state_per_key,
    namespaces_separate_state,
    list_state_appends_and_replaces,
    map_state_entries,
    reducing_and_aggregating,
    ttl_on_create_and_write,
    ttl_on_read_and_write,
    ttl_return_expired_if_not_cleaned_up,
    ttl_incremental_cleanup,
    ttl_full_snapshot_cleanup,
    snapshot_restores_the_same_contents,
    snapshot_splits_by_key_group,
    export_import_across_backends,
    restored_state_keeps_its_kind,
);

fn value_state_per_key(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "value");
    let v = s.value_state::<String>("v", None).unwrap();
    for k in 0..100u32 {
        s.set_current_key(&k);
        assert_eq!(v.value(&mut s).unwrap(), None);
        v.update(&mut s, &format!("value-{k}")).unwrap();
    }
    for k in 0..100u32 {
        s.set_current_key(&k);
        assert_eq!(v.value(&mut s).unwrap(), Some(format!("value-{k}")));
    }
    s.set_current_key(&7u32);
    v.clear(&mut s).unwrap();
    assert_eq!(v.value(&mut s).unwrap(), None);
    s.set_current_key(&8u32);
    assert_eq!(v.value(&mut s).unwrap(), Some("value-8".into()));
}

fn namespaces_separate_state(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "ns");
    let mut count = s.value_state::<u64>("count", None).unwrap();
    s.set_current_key(&"k".to_string());
    for window in [10i64, 20, 30] {
        count.set_namespace(&window);
        count.update(&mut s, &(window as u64 * 2)).unwrap();
    }
    count.set_namespace(&20i64);
    assert_eq!(count.value(&mut s).unwrap(), Some(40));
    count.clear(&mut s).unwrap();
    assert_eq!(count.value(&mut s).unwrap(), None);
    count.set_namespace(&30i64);
    assert_eq!(count.value(&mut s).unwrap(), Some(60));
    count.clear_namespace();
    assert_eq!(count.value(&mut s).unwrap(), None);
    // A map in one namespace does not see another's entries, even for keys
    // whose encodings share a prefix.
    let mut m = s.map_state::<String, u32>("m", None).unwrap();
    m.set_namespace(&1u8);
    m.put(&mut s, &"a".into(), &1).unwrap();
    m.set_namespace(&2u8);
    m.put(&mut s, &"b".into(), &2).unwrap();
    assert_eq!(m.entries(&mut s).unwrap(), vec![("b".to_string(), 2)]);
    s.set_current_key(&"kk".to_string());
    assert!(m.is_empty(&mut s).unwrap());
}

fn list_state_appends_and_replaces(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "list");
    let l = s.list_state::<i64>("l", None).unwrap();
    s.set_current_key(&1u8);
    assert!(l.get(&mut s).unwrap().is_empty());
    l.add(&mut s, &5).unwrap();
    l.add_all(&mut s, &[6, 7, 8]).unwrap();
    s.set_current_key(&2u8);
    l.add(&mut s, &100).unwrap();
    s.set_current_key(&1u8);
    assert_eq!(l.get(&mut s).unwrap(), vec![5, 6, 7, 8]);
    l.update(&mut s, &[1, 2]).unwrap();
    assert_eq!(l.get(&mut s).unwrap(), vec![1, 2]);
    l.add(&mut s, &3).unwrap();
    assert_eq!(l.get(&mut s).unwrap(), vec![1, 2, 3]);
    l.clear(&mut s).unwrap();
    assert!(l.get(&mut s).unwrap().is_empty());
    s.set_current_key(&2u8);
    assert_eq!(l.get(&mut s).unwrap(), vec![100]);
}

fn map_state_entries(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "map");
    let m = s.map_state::<u32, String>("m", None).unwrap();
    s.set_current_key(&"user".to_string());
    for i in 0..10u32 {
        m.put(&mut s, &i, &format!("v{i}")).unwrap();
    }
    m.put(&mut s, &3, &"three".into()).unwrap();
    m.remove(&mut s, &4).unwrap();
    assert_eq!(m.get(&mut s, &3).unwrap(), Some("three".into()));
    assert!(!m.contains(&mut s, &4).unwrap());
    let mut entries = m.entries(&mut s).unwrap();
    entries.sort();
    assert_eq!(entries.len(), 9);
    assert_eq!(entries[0], (0, "v0".into()));
    m.clear(&mut s).unwrap();
    assert!(m.is_empty(&mut s).unwrap());
}

struct Average;
impl AggregateFunction<f64, f64> for Average {
    type Acc = (f64, u64);
    fn create_accumulator(&self) -> (f64, u64) {
        (0.0, 0)
    }
    fn add(&self, v: f64, (sum, n): (f64, u64)) -> (f64, u64) {
        (sum + v, n + 1)
    }
    fn result(&self, (sum, n): &(f64, u64)) -> f64 {
        sum / *n as f64
    }
}

fn reducing_and_aggregating(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "reduce");
    let max = s
        .reducing_state::<i64>("max", None, |a, b| a.max(b))
        .unwrap();
    let avg = s.aggregating_state("avg", None, Average).unwrap();
    s.set_current_key(&9u64);
    assert_eq!(max.get(&mut s).unwrap(), None);
    assert_eq!(avg.get(&mut s).unwrap(), None);
    for v in [3i64, 11, 7] {
        max.add(&mut s, v).unwrap();
        avg.add(&mut s, v as f64).unwrap();
    }
    assert_eq!(max.get(&mut s).unwrap(), Some(11));
    assert_eq!(avg.get(&mut s).unwrap(), Some(7.0));
    max.clear(&mut s).unwrap();
    avg.clear(&mut s).unwrap();
    assert_eq!(max.get(&mut s).unwrap(), None);
    assert_eq!(avg.get(&mut s).unwrap(), None);
}

fn ttl(secs: u64) -> StateTtlConfig {
    StateTtlConfig::new(Duration::from_secs(secs))
}

fn ttl_on_create_and_write(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "ttl1");
    let v = s.value_state::<u32>("v", Some(ttl(10))).unwrap();
    s.set_current_key(&1u8);
    v.update(&mut s, &1).unwrap();
    f.clock.advance(Duration::from_secs(6));
    // Reading does not refresh under OnCreateAndWrite.
    assert_eq!(v.value(&mut s).unwrap(), Some(1));
    f.clock.advance(Duration::from_secs(4));
    assert_eq!(v.value(&mut s).unwrap(), None, "expired at exactly the TTL");
    // Writing again starts afresh.
    v.update(&mut s, &2).unwrap();
    f.clock.advance(Duration::from_secs(9));
    assert_eq!(v.value(&mut s).unwrap(), Some(2));
}

fn ttl_on_read_and_write(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "ttl2");
    let cfg = ttl(10).update_type(UpdateType::OnReadAndWrite);
    let m = s.map_state::<u8, u8>("m", Some(cfg)).unwrap();
    s.set_current_key(&1u8);
    m.put(&mut s, &1, &1).unwrap();
    for _ in 0..5 {
        f.clock.advance(Duration::from_secs(6));
        assert_eq!(m.get(&mut s, &1).unwrap(), Some(1), "each read refreshes");
    }
    f.clock.advance(Duration::from_secs(10));
    assert_eq!(m.get(&mut s, &1).unwrap(), None);
}

fn ttl_return_expired_if_not_cleaned_up(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "ttl3");
    let cfg = ttl(1).visibility(StateVisibility::ReturnExpiredIfNotCleanedUp);
    let v = s.value_state::<u32>("v", Some(cfg)).unwrap();
    s.set_current_key(&1u8);
    v.update(&mut s, &42).unwrap();
    f.clock.advance(Duration::from_secs(5));
    assert_eq!(
        v.value(&mut s).unwrap(),
        Some(42),
        "expired but still stored"
    );
    // Under the default visibility the same entry is hidden.
    let strict = s.value_state::<u32>("strict", Some(ttl(1))).unwrap();
    strict.update(&mut s, &42).unwrap();
    f.clock.advance(Duration::from_secs(5));
    assert_eq!(strict.value(&mut s).unwrap(), None);
}

fn ttl_incremental_cleanup(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "ttl4");
    let cfg = ttl(10)
        .cleanup_incrementally(50)
        .disable_cleanup_in_rocksdb_compaction();
    let v = s.value_state::<u32>("v", Some(cfg)).unwrap();
    for k in 0..200u32 {
        s.set_current_key(&k);
        v.update(&mut s, &k).unwrap();
    }
    f.clock.advance(Duration::from_secs(20));
    // Accesses of one fresh key sweep the rest, 50 entries at a time.
    s.set_current_key(&1000u32);
    v.update(&mut s, &1).unwrap();
    for _ in 0..10 {
        v.value(&mut s).unwrap();
    }
    let stats = s.backend().stats().unwrap();
    if kind == BackendKind::HashMap {
        assert_eq!(stats.entries, 1, "only the fresh entry is left");
    }
    let mut left = 0;
    let range = KeyGroupRange::all(MAXP);
    let id = s
        .backend()
        .register(&weir_state::StateDescriptor::new(
            "v",
            weir_state::StateKind::Value,
        ))
        .unwrap();
    s.backend()
        .scan(id, &range.lower_bound(), None, &mut |_, _| {
            left += 1;
            Ok(weir_state::Scan::Continue)
        })
        .unwrap();
    assert_eq!(left, 1);
}

fn ttl_full_snapshot_cleanup(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "ttl5");
    let v = s.value_state::<u32>("v", Some(ttl(10))).unwrap();
    for k in 0..50u32 {
        s.set_current_key(&k);
        v.update(&mut s, &k).unwrap();
    }
    f.clock.advance(Duration::from_secs(11));
    s.set_current_key(&999u32);
    v.update(&mut s, &999).unwrap();
    let mut bytes = Vec::new();
    let written = s
        .backend()
        .export(&mut bytes, KeyGroupRange::all(MAXP))
        .unwrap();
    assert_eq!(written, 1, "expired entries are left out of full snapshots");
}

fn fill(s: &mut KeyedState, keys: u32) {
    let v = s.value_state::<u64>("v", None).unwrap();
    let l = s.list_state::<u32>("l", None).unwrap();
    let mut m = s.map_state::<u32, String>("m", None).unwrap();
    for k in 0..keys {
        s.set_current_key(&k);
        v.update(s, &(u64::from(k) * 3)).unwrap();
        l.add_all(s, &[k, k + 1]).unwrap();
        m.set_namespace(&(k % 3));
        m.put(s, &k, &format!("m{k}")).unwrap();
    }
}

fn check(s: &mut KeyedState, keys: impl Iterator<Item = u32>) {
    let v = s.value_state::<u64>("v", None).unwrap();
    let l = s.list_state::<u32>("l", None).unwrap();
    let mut m = s.map_state::<u32, String>("m", None).unwrap();
    for k in keys {
        s.set_current_key(&k);
        assert_eq!(v.value(s).unwrap(), Some(u64::from(k) * 3), "key {k}");
        assert_eq!(l.get(s).unwrap(), vec![k, k + 1]);
        m.set_namespace(&(k % 3));
        assert_eq!(m.get(s, &k).unwrap(), Some(format!("m{k}")));
    }
}

fn snapshot_restores_the_same_contents(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "snap");
    fill(&mut s, 500);
    let dir = tempfile::tempdir().unwrap();
    let info = s.backend().snapshot(dir.path()).unwrap();
    assert!(info.bytes > 0 && !info.files.is_empty());
    // Changes after the snapshot are not in it.
    let v = s.value_state::<u64>("v", None).unwrap();
    s.set_current_key(&1u32);
    v.update(&mut s, &777).unwrap();
    let restored = weir_state::restore_backend(
        &f.config,
        "snap-restored",
        dir.path(),
        KeyGroupRange::all(MAXP),
    )
    .unwrap();
    let mut r = KeyedState::new(restored, MAXP);
    check(&mut r, 0..500);
    let before = s.backend().stats().unwrap();
    let after = r.backend().stats().unwrap();
    if kind == BackendKind::HashMap {
        assert_eq!(before.entries, after.entries);
    }
}

fn snapshot_splits_by_key_group(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "split");
    fill(&mut s, 400);
    let dir = tempfile::tempdir().unwrap();
    s.backend().snapshot(dir.path()).unwrap();
    // Restore into three subtasks: each gets exactly its key groups, and
    // together they hold everything.
    let mut total = 0;
    for subtask in 0..3 {
        let range = KeyGroupRange::for_subtask(MAXP, 3, subtask);
        let b =
            weir_state::restore_backend(&f.config, &format!("split-{subtask}"), dir.path(), range)
                .unwrap();
        let mut r = KeyedState::new(b, MAXP);
        let groups =
            weir_state::keyed::key_groups_present(r.backend(), KeyGroupRange::all(MAXP)).unwrap();
        assert!(
            groups.iter().all(|g| range.contains(*g)),
            "{groups:?} vs {range:?}"
        );
        let mine: Vec<u32> = (0..400u32)
            .filter(|k| {
                range.contains(weir_state::key::key_group_for_bytes(
                    &weir_state::StateCodec::to_bytes(k),
                    MAXP,
                ))
            })
            .collect();
        total += mine.len();
        check(&mut r, mine.into_iter());
    }
    assert_eq!(total, 400);
}

fn export_import_across_backends(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "export");
    fill(&mut s, 300);
    let mut canonical = Vec::new();
    let n = s
        .backend()
        .export(&mut canonical, KeyGroupRange::all(MAXP))
        .unwrap();
    assert!(n >= 300 * 4);
    // Into the other backend.
    let other = match kind {
        BackendKind::HashMap => BackendKind::RocksDb,
        BackendKind::RocksDb => BackendKind::HashMap,
    };
    let g = fixture(other);
    let mut b = g.config.create("import").unwrap();
    let imported = b
        .import(&mut canonical.as_slice(), KeyGroupRange::all(MAXP))
        .unwrap();
    assert_eq!(imported, n);
    let mut r = KeyedState::new(b, MAXP);
    check(&mut r, 0..300);
    // A damaged export is refused.
    let mut damaged = canonical.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x55;
    let mut c = g.config.create("import-damaged").unwrap();
    let err = c
        .import(&mut damaged.as_slice(), KeyGroupRange::all(MAXP))
        .unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    let truncated = &canonical[..canonical.len() - 5];
    let mut d = g.config.create("import-truncated").unwrap();
    assert!(d
        .import(&mut &truncated[..], KeyGroupRange::all(MAXP))
        .is_err());
}

fn restored_state_keeps_its_kind(kind: BackendKind) {
    let f = fixture(kind);
    let mut s = keyed(&f, "kinds");
    fill(&mut s, 3);
    let dir = tempfile::tempdir().unwrap();
    s.backend().snapshot(dir.path()).unwrap();
    let b = weir_state::restore_backend(&f.config, "kinds-r", dir.path(), KeyGroupRange::all(MAXP))
        .unwrap();
    let mut r = KeyedState::new(b, MAXP);
    let err = r.map_state::<u32, u32>("v", None).err().unwrap();
    assert!(err.to_string().contains("stored as value state"), "{err}");
}

#[test]
fn rocksdb_compaction_drops_expired_entries() {
    let f = fixture(BackendKind::RocksDb);
    let mut backend = weir_state::RocksDbBackend::open(&f.config, "compact", None).unwrap();
    let id = {
        use weir_state::StateBackend;
        backend
            .register(
                &weir_state::StateDescriptor::new("v", weir_state::StateKind::Value)
                    .with_ttl(ttl(10)),
            )
            .unwrap()
    };
    use weir_state::StateBackend;
    let now = weir_state::Clock::now_ms(&*f.clock);
    let changes = (0..1000u32)
        .map(|k| {
            let a = weir_state::keyed::value_address(0, &k.to_be_bytes(), &[]);
            (a, Some(weir_state::ttl::wrap_stamp(now, b"x")))
        })
        .collect();
    backend.write(id, changes).unwrap();
    f.clock.advance(Duration::from_secs(11));
    let dir = tempfile::tempdir().unwrap();
    backend.snapshot(dir.path()).unwrap(); // flushes memtables into SST files
    backend.compact().unwrap();
    let mut left = 0;
    backend
        .scan(id, &[0, 0], None, &mut |_, _| {
            left += 1;
            Ok(weir_state::Scan::Continue)
        })
        .unwrap();
    assert_eq!(left, 0, "the compaction filter removed expired entries");
}

#[test]
fn unknown_backend_and_unusable_localdir_are_config_errors() {
    let err = BackendKind::parse("memory").unwrap_err().to_string();
    assert!(
        err.contains("'memory'") && err.contains("hashmap, rocksdb"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let mut config = BackendConfig::new(BackendKind::RocksDb);
    config.local_dir = Some(file.join("sub"));
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("state.backend.rocksdb.localdir"), "{err}");
}
