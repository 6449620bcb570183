//! The keyed state of SQL operators, a batch at a time: one state of the
//! operator's backend (owned by the runtime), addressed key group first.
//!
//! ```text
//! [key group u16 BE][what the operator puts after it: window, key row, sequence…]
//! ```
//!
//! Many keys of a batch are hashed to their key groups at once (the
//! exchange's hash, so a key's entries sit in the key group its subtask
//! owns), read with one `multi_get` and written with one batch of changes.
//! Scans are by prefix after the key group, in address order, for every key
//! group of the subtask (what firing a window, a join's buffer for a key, a
//! Top-N list or a sorted timer queue needs), or for a range within one key
//! group. Entries can carry a TTL stamp; both backends behave the same.
//! The aggregates' store ([`super::aggregate_store`]) is built on it.

use datafusion::arrow::array::ArrayRef;
use weir_state::ttl::{unwrap_stamp, wrap_stamp};
use weir_state::{KeyGroupRange, Scan, StateDescriptor, StateId, StateTtlConfig};

use super::{StateHandle, TaskContext};
use crate::error::{EngineError, Result};
use crate::runtime::router::key_groups;

/// An order-preserving encoding of a time (sign bit flipped, big endian),
/// so addresses sort by time: window ends, timer times.
pub fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time [`time_bytes`] encoded.
pub fn time_from_bytes(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// One state of an operator subtask, read and written by batch.
pub struct KeyedBatchState {
    backend: StateHandle,
    state: StateId,
    ttl: Option<StateTtlConfig>,
    range: KeyGroupRange,
    max_parallelism: usize,
    hashes: Vec<u64>,
    /// Where the incremental TTL clean-up looks next.
    cleanup_cursor: Vec<u8>,
}

impl KeyedBatchState {
    /// Opens state `descriptor` in the backend the runtime made for the
    /// subtask (its factory declared it).
    pub fn open(descriptor: &StateDescriptor, ctx: &TaskContext) -> Result<Self> {
        let backend = ctx.state()?;
        let state = backend.lock()?.register(descriptor)?;
        Ok(Self {
            backend,
            state,
            ttl: descriptor.ttl.clone(),
            range: ctx.key_groups(),
            max_parallelism: ctx.max_parallelism,
            hashes: Vec::new(),
            cleanup_cursor: Vec::new(),
        })
    }

    /// The backend, for a few calls.
    pub fn backend(&self) -> Result<std::sync::MutexGuard<'_, Box<dyn weir_state::StateBackend>>> {
        self.backend.lock()
    }

    /// The state's id in the backend.
    pub fn state_id(&self) -> StateId {
        self.state
    }

    /// The key groups the subtask owns.
    pub fn range(&self) -> KeyGroupRange {
        self.range
    }

    /// The key group of each row, from the columns the exchange hashed.
    pub fn key_groups(&mut self, partition: &[ArrayRef], rows: usize) -> Result<Vec<u16>> {
        key_groups(partition, rows, self.max_parallelism, &mut self.hashes)
    }

    /// The address `[group][parts…]`.
    pub fn address(group: u16, parts: &[&[u8]]) -> Vec<u8> {
        let len = 2 + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut a = Vec::with_capacity(len);
        a.extend_from_slice(&group.to_be_bytes());
        for p in parts {
            a.extend_from_slice(p);
        }
        a
    }

    /// Reads many entries, in the order of `addresses`.
    pub fn multi_get(&mut self, addresses: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(self.backend.lock()?.multi_get(self.state, addresses)?)
    }

    /// Applies puts (`Some`) and deletes (`None`) at once.
    pub fn write(&mut self, changes: Vec<weir_state::Change>) -> Result<()> {
        let written = changes.len();
        self.backend.lock()?.write(self.state, changes)?;
        self.clean_up_expired(2 * written + 8)
    }

    /// Incremental TTL clean-up, Flink's default for heap state: after each
    /// write, look at `budget` more entries, going on from where the last
    /// look stopped (round and round), and delete the expired ones. So an
    /// entry whose key never comes back leaves memory within a pass, and
    /// the state stays within about twice what the TTL keeps alive. RocksDB
    /// drops expired entries in compaction instead.
    fn clean_up_expired(&mut self, budget: usize) -> Result<()> {
        let Some(ttl) = &self.ttl else {
            return Ok(());
        };
        let mut backend = self.backend.lock()?;
        if backend.kind() != weir_state::BackendKind::HashMap {
            return Ok(());
        }
        let now = backend.now_ms();
        let mut seen = 0;
        let mut last: Option<Vec<u8>> = None;
        let mut expired: Vec<weir_state::Change> = Vec::new();
        backend.scan(self.state, &self.cleanup_cursor, None, &mut |k, v| {
            if seen == budget {
                return Ok(Scan::Stop);
            }
            seen += 1;
            if unwrap_stamp(v).is_none_or(|(stamp, _)| ttl.expired(stamp, now)) {
                expired.push((k.to_vec(), None));
            }
            last = Some(k.to_vec());
            Ok(Scan::Continue)
        })?;
        self.cleanup_cursor = match last {
            Some(mut k) if seen == budget => {
                k.push(0);
                k
            }
            // Past the end: start over.
            _ => Vec::new(),
        };
        if !expired.is_empty() {
            backend.write(self.state, expired)?;
        }
        Ok(())
    }

    /// Calls `visit` for every entry whose address is `[key group][suffix…]`,
    /// key group by key group, each in address order, until it says stop.
    pub fn scan_prefix(
        &mut self,
        suffix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Scan,
    ) -> Result<()> {
        let mut backend = self.backend.lock()?;
        let mut stopped = false;
        for group in self.range.start..self.range.end {
            let prefix = Self::address(group, &[suffix]);
            let end = weir_state::key::prefix_end(&prefix);
            backend.scan(self.state, &prefix, end.as_deref(), &mut |k, v| {
                let next = visit(k, v);
                stopped = next == Scan::Stop;
                Ok(next)
            })?;
            if stopped {
                break;
            }
        }
        Ok(())
    }

    /// Calls `visit` for the entries of key group `group` from `[group][from]`
    /// up to (not including) `[group][to]` (no `to`: the group's end), in
    /// address order, until it says stop.
    pub fn scan_range(
        &mut self,
        group: u16,
        from: &[u8],
        to: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Scan,
    ) -> Result<()> {
        let start = Self::address(group, &[from]);
        let end = match to {
            Some(to) => Some(Self::address(group, &[to])),
            None => weir_state::key::prefix_end(&group.to_be_bytes()),
        };
        let mut backend = self.backend.lock()?;
        backend.scan(self.state, &start, end.as_deref(), &mut |k, v| {
            Ok(visit(k, v))
        })?;
        Ok(())
    }

    /// Deletes every entry `[key group][suffix…]` of the subtask's key
    /// groups, one point deletion per entry found (in one write). Not range
    /// deletions: RocksDB fragments every range tombstone of its memtable
    /// again for each new iterator, so a tombstone per key group per fired
    /// window made each scan cost as much as all windows fired so far
    /// (a resumed job spent seconds before its first checkpoint).
    pub fn delete_prefix(&mut self, suffix: &[u8]) -> Result<()> {
        let mut doomed: Vec<weir_state::Change> = Vec::new();
        self.scan_prefix(suffix, &mut |k, _| {
            doomed.push((k.to_vec(), None));
            Scan::Continue
        })?;
        if doomed.is_empty() {
            return Ok(());
        }
        self.write(doomed)
    }

    /// The distinct `N`-byte prefixes that follow the key group in stored
    /// addresses (window ends, for window aggregates), found by skipping
    /// from one to the next rather than reading every entry.
    pub fn stored_prefixes<const N: usize>(
        &mut self,
    ) -> Result<std::collections::BTreeSet<[u8; N]>> {
        let mut found = std::collections::BTreeSet::new();
        let mut backend = self.backend.lock()?;
        for group in self.range.start..self.range.end {
            let group_prefix = group.to_be_bytes();
            let group_end = weir_state::key::prefix_end(&group_prefix);
            let mut start = group_prefix.to_vec();
            loop {
                let mut next: Option<[u8; N]> = None;
                backend.scan(self.state, &start, group_end.as_deref(), &mut |k, _| {
                    if let Some(p) = k.get(2..2 + N) {
                        let mut b = [0u8; N];
                        b.copy_from_slice(p);
                        next = Some(b);
                    }
                    Ok(Scan::Stop)
                })?;
                let Some(prefix) = next else { break };
                found.insert(prefix);
                let mut skip = group_prefix.to_vec();
                skip.extend_from_slice(&prefix);
                match weir_state::key::prefix_end(&skip) {
                    Some(e) => start = e,
                    None => break,
                }
            }
        }
        Ok(found)
    }

    /// Processing time of the job's clock (what TTL stamps use).
    pub fn now_ms(&self) -> Result<i64> {
        Ok(self.backend.lock()?.now_ms())
    }

    /// A value as stored: stamped with the time now when the state has a
    /// TTL.
    pub fn stamp(&self, now_ms: i64, value: &[u8]) -> Vec<u8> {
        match &self.ttl {
            Some(_) => wrap_stamp(now_ms, value),
            None => value.to_vec(),
        }
    }

    /// A stored value read back: `None` when its TTL expired at `now_ms`.
    pub fn unstamp<'v>(&self, now_ms: i64, stored: &'v [u8]) -> Result<Option<&'v [u8]>> {
        let Some(ttl) = &self.ttl else {
            return Ok(Some(stored));
        };
        let (stamp, value) = unwrap_stamp(stored).ok_or_else(|| {
            EngineError::State("an entry without its TTL stamp (damaged state)".into())
        })?;
        Ok((!ttl.expired(stamp, now_ms)).then_some(value))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::Duration;

    use weir_state::{BackendConfig, BackendKind, ManualClock, StateKind};

    use super::*;
    use crate::config::StateSettings;
    use crate::metrics::NodeMetrics;

    fn state(
        kind: BackendKind,
        dir: &std::path::Path,
        ttl: Option<Duration>,
    ) -> (KeyedBatchState, Arc<ManualClock>) {
        let clock = ManualClock::new(1_000);
        let mut config = BackendConfig::new(kind);
        config.local_dir = Some(dir.to_path_buf());
        config.clock = clock.clone();
        let backend = config.create("batch-state-test").unwrap();
        let ctx = TaskContext {
            subtask: 1,
            parallelism: 2,
            max_parallelism: 8,
            batch_size: 64,
            metrics: Arc::new(NodeMetrics::default()),
            job_id: "t".into(),
            node: 0,
            state: Arc::new(StateSettings {
                backend: config,
                ttl: None,
                cache_entries: usize::MAX,
            }),
            backend: Some(StateHandle::new(backend)),
            operator_state: Vec::new(),
            checkpointing: false,
        };
        let mut d = StateDescriptor::new("s", StateKind::Raw);
        d.ttl = ttl.map(StateTtlConfig::new);
        (KeyedBatchState::open(&d, &ctx).unwrap(), clock)
    }

    #[test]
    fn prefix_and_range_scans_are_ordered_and_stop_when_asked() {
        for kind in [BackendKind::HashMap, BackendKind::RocksDb] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, _) = state(kind, dir.path(), None);
            // Subtask 1 of 2 over 8 key groups owns 4..8.
            assert_eq!((s.range().start, s.range().end), (4, 8));
            let mut changes = Vec::new();
            for g in [7u16, 4, 5] {
                for (bucket, key) in [(b"b", 3u8), (b"a", 2), (b"a", 1), (b"c", 9)] {
                    changes.push((
                        KeyedBatchState::address(g, &[bucket, &[key]]),
                        Some(vec![key]),
                    ));
                }
            }
            changes.sort();
            s.write(changes).unwrap();
            let mut seen = Vec::new();
            s.scan_prefix(b"a", &mut |k, v| {
                seen.push((u16::from_be_bytes([k[0], k[1]]), v[0]));
                Scan::Continue
            })
            .unwrap();
            assert_eq!(
                seen,
                vec![(4, 1), (4, 2), (5, 1), (5, 2), (7, 1), (7, 2)],
                "{kind:?}"
            );
            let mut first = Vec::new();
            s.scan_prefix(b"a", &mut |_, v| {
                first.push(v[0]);
                Scan::Stop
            })
            .unwrap();
            assert_eq!(first, vec![1], "{kind:?}: stops across key groups too");
            let mut ranged = Vec::new();
            s.scan_range(5, b"a\x02", Some(b"c"), &mut |_, v| {
                ranged.push(v[0]);
                Scan::Continue
            })
            .unwrap();
            assert_eq!(ranged, vec![2, 3], "{kind:?}");
            let prefixes = s.stored_prefixes::<1>().unwrap();
            assert_eq!(
                prefixes.into_iter().collect::<Vec<_>>(),
                vec![*b"a", *b"b", *b"c"]
            );
            s.delete_prefix(b"a").unwrap();
            let mut left = 0;
            s.scan_prefix(b"", &mut |_, _| {
                left += 1;
                Scan::Continue
            })
            .unwrap();
            assert_eq!(left, 6, "{kind:?}: only the `a` entries went");
            let got = s
                .multi_get(&[
                    &KeyedBatchState::address(7, &[b"c", &[9]]),
                    &KeyedBatchState::address(7, &[b"a", &[1]]),
                ])
                .unwrap();
            assert_eq!(got, vec![Some(vec![9]), None]);
        }
    }

    #[test]
    fn stamped_entries_expire_with_the_states_ttl() {
        for kind in [BackendKind::HashMap, BackendKind::RocksDb] {
            let dir = tempfile::tempdir().unwrap();
            let (s, clock) = state(kind, dir.path(), Some(Duration::from_secs(10)));
            let stored = s.stamp(s.now_ms().unwrap(), b"v");
            assert_eq!(
                s.unstamp(s.now_ms().unwrap(), &stored).unwrap(),
                Some(&b"v"[..])
            );
            clock.advance(Duration::from_secs(11));
            assert_eq!(
                s.unstamp(s.now_ms().unwrap(), &stored).unwrap(),
                None,
                "{kind:?}"
            );
            let (plain, _) = state(kind, &dir.path().join("b"), None);
            assert_eq!(plain.stamp(0, b"v"), b"v".to_vec());
        }
    }

    /// On `hashmap`, writes also delete a few expired entries further on
    /// (round and round): entries whose keys never come back leave memory.
    #[test]
    fn writes_clean_up_expired_entries_of_keys_never_seen_again() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, clock) = state(
            BackendKind::HashMap,
            dir.path(),
            Some(Duration::from_secs(10)),
        );
        let count = |s: &mut KeyedBatchState| {
            let mut n = 0;
            s.scan_prefix(b"", &mut |_, _| {
                n += 1;
                Scan::Continue
            })
            .unwrap();
            n
        };
        let now = s.now_ms().unwrap();
        let old: Vec<weir_state::Change> = (0..100u8)
            .map(|i| {
                (
                    KeyedBatchState::address(4, &[b"old", &[i]]),
                    Some(s.stamp(now, b"v")),
                )
            })
            .collect();
        s.write(old).unwrap();
        assert_eq!(count(&mut s), 100);
        clock.advance(Duration::from_secs(11));
        // Writes of one live key each look at ten more entries.
        for i in 0..12u8 {
            let now = s.now_ms().unwrap();
            let live = KeyedBatchState::address(5, &[b"new", &[i]]);
            s.write(vec![(live, Some(s.stamp(now, b"v")))]).unwrap();
        }
        assert_eq!(
            count(&mut s),
            12,
            "the expired entries went, the live ones stay"
        );
        // Not on RocksDB, which drops them in compaction.
        let (mut r, clock) = state(
            BackendKind::RocksDb,
            &dir.path().join("r"),
            Some(Duration::from_secs(10)),
        );
        let now = r.now_ms().unwrap();
        r.write(vec![(
            KeyedBatchState::address(4, &[b"old"]),
            Some(r.stamp(now, b"v")),
        )])
        .unwrap();
        clock.advance(Duration::from_secs(11));
        let now = r.now_ms().unwrap();
        r.write(vec![(
            KeyedBatchState::address(5, &[b"new"]),
            Some(r.stamp(now, b"v")),
        )])
        .unwrap();
        assert_eq!(count(&mut r), 2);
    }
}
