//! The `hashmap` backend: every state in memory, as ordered maps of
//! addresses to values. The fastest backend, bounded by memory; its
//! snapshot is one canonical file.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use crate::backend::{
    BackendKind, Change, Scan, SnapshotInfo, StateBackend, StateDescriptor, StateId, StateStats,
};
use crate::error::{Result, StateError};
use crate::ttl::Clock;

/// The file a `hashmap` snapshot consists of.
pub const SNAPSHOT_FILE: &str = "state.snap";

struct Table {
    descriptor: StateDescriptor,
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    bytes: u64,
}

/// Keyed state in memory.
pub struct HashMapBackend {
    tables: Vec<Table>,
    clock: Arc<dyn Clock>,
}

impl HashMapBackend {
    /// An empty backend using `clock` for TTL.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            tables: Vec::new(),
            clock,
        }
    }

    fn table(&mut self, state: StateId) -> Result<&mut Table> {
        self.tables
            .get_mut(state.0)
            .ok_or_else(|| StateError::Internal(format!("unknown state id {}", state.0)))
    }
}

fn range_bounds<'a>(start: &'a [u8], end: Option<&'a [u8]>) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (
        Bound::Included(start),
        end.map_or(Bound::Unbounded, Bound::Excluded),
    )
}

impl StateBackend for HashMapBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::HashMap
    }

    fn register(&mut self, descriptor: &StateDescriptor) -> Result<StateId> {
        if let Some(i) = self
            .tables
            .iter()
            .position(|t| t.descriptor.name == descriptor.name)
        {
            check_same_kind(&self.tables[i].descriptor, descriptor)?;
            // A restored state takes the TTL the operator declares now.
            self.tables[i].descriptor.ttl = descriptor.ttl.clone();
            return Ok(StateId(i));
        }
        self.tables.push(Table {
            descriptor: descriptor.clone(),
            entries: BTreeMap::new(),
            bytes: 0,
        });
        Ok(StateId(self.tables.len() - 1))
    }

    fn descriptors(&self) -> Vec<StateDescriptor> {
        self.tables.iter().map(|t| t.descriptor.clone()).collect()
    }

    fn get(&mut self, state: StateId, address: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.table(state)?.entries.get(address).cloned())
    }

    fn multi_get(&mut self, state: StateId, addresses: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let table = self.table(state)?;
        Ok(addresses
            .iter()
            .map(|a| table.entries.get(*a).cloned())
            .collect())
    }

    fn write(&mut self, state: StateId, changes: Vec<Change>) -> Result<()> {
        let table = self.table(state)?;
        for (address, value) in changes {
            let key_len = address.len() as u64;
            match value {
                Some(v) => {
                    let new_len = v.len() as u64;
                    match table.entries.insert(address, v) {
                        Some(old) => table.bytes = table.bytes + new_len - old.len() as u64,
                        None => table.bytes += key_len + new_len,
                    }
                }
                None => {
                    if let Some(old) = table.entries.remove(&address) {
                        table.bytes -= key_len + old.len() as u64;
                    }
                }
            }
        }
        Ok(())
    }

    fn scan(
        &mut self,
        state: StateId,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut crate::backend::Visit<'_>,
    ) -> Result<()> {
        let table = self.table(state)?;
        for (k, v) in table.entries.range::<[u8], _>(range_bounds(start, end)) {
            if visit(k, v)? == Scan::Stop {
                break;
            }
        }
        Ok(())
    }

    fn delete_range(&mut self, state: StateId, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        let table = self.table(state)?;
        let doomed: Vec<Vec<u8>> = table
            .entries
            .range::<[u8], _>(range_bounds(start, end))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            if let Some(v) = table.entries.remove(&k) {
                table.bytes -= (k.len() + v.len()) as u64;
            }
        }
        Ok(())
    }

    fn stats(&self) -> Result<StateStats> {
        Ok(StateStats {
            entries: self.tables.iter().map(|t| t.entries.len() as u64).sum(),
            bytes: self.tables.iter().map(|t| t.bytes).sum(),
        })
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn snapshot(&mut self, dir: &Path) -> Result<SnapshotInfo> {
        // The in-memory backend's native snapshot is the canonical file.
        crate::write_canonical(self, dir)
    }
}

/// A state restored under the same name must hold the same primitive.
pub(crate) fn check_same_kind(stored: &StateDescriptor, wanted: &StateDescriptor) -> Result<()> {
    if stored.kind == wanted.kind {
        Ok(())
    } else {
        Err(StateError::Config(format!(
            "state '{}' was stored as {} state and is now declared as {} state",
            wanted.name,
            stored.kind.name(),
            wanted.kind.name()
        )))
    }
}
