//! The canonical snapshot format: every entry of a subtask's keyed state in
//! one self-describing, checksummed file that does not depend on the backend
//! that wrote it. `hashmap` snapshots are this file; `rocksdb` exports to it
//! for savepoints; both import it.
//!
//! ```text
//! magic      8 bytes   "WEIRSNP1"
//! header     u32 LE length, then JSON:
//!            {"encoding": "weir-state/1",
//!             "states": [{"name": .., "kind": .., "ttl_ms": ..}, ..]}
//! entries    repeated: tag 1, varint state index, varint length + address,
//!            varint length + stored value (with its TTL stamp, if any)
//! end        tag 0, u64 LE entry count, u64 LE xxHash64 of every byte
//!            before the end tag
//! ```
//!
//! Entries are in (state, address) order; addresses start with the key
//! group, so a reader keeps the key groups it owns and skips the others.

use std::hash::Hasher;
use std::io::{Read, Write};

use serde_json::json;

use crate::backend::{Scan, StateBackend, StateDescriptor, StateKind};
use crate::codec::{put_varint, ENCODING};
use crate::error::{Result, StateError};
use crate::key::{key_group_of, KeyGroupRange};
use crate::ttl::{stored_expired, StateTtlConfig};

/// The first bytes of a canonical snapshot.
pub const MAGIC: &[u8; 8] = b"WEIRSNP1";

struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    hash: twox_hash::XxHash64,
    buf: Vec<u8>,
}

impl HashingWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.write(bytes);
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= 1 << 16 {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.inner.flush()
    }
}

fn io(e: std::io::Error) -> StateError {
    StateError::Corrupt(format!("snapshot stream: {e}"))
}

/// Calls its argument for every entry of one state, in address order.
pub type EntrySource<'a> =
    dyn FnMut(usize, &mut dyn FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> + 'a;

/// One entry read from a snapshot: state index, address, stored value.
pub type SnapshotEntry = (usize, Vec<u8>, Vec<u8>);

/// Writes the canonical form of `states` to `out`; `entries(i, visit)` must
/// call `visit` for every entry of state `i` in address order. Entries of
/// key groups outside `range` are left out, and so are expired entries of
/// states whose TTL cleans up in full snapshots.
pub fn write_snapshot(
    out: &mut dyn Write,
    states: &[StateDescriptor],
    range: KeyGroupRange,
    now_ms: i64,
    entries: &mut EntrySource<'_>,
) -> Result<u64> {
    let header = json!({
        "encoding": ENCODING,
        "states": states.iter().map(|s| json!({
            "name": s.name,
            "kind": s.kind.name(),
            "ttl_ms": s.ttl.as_ref().map(|t| t.ttl_ms()),
        })).collect::<Vec<_>>(),
    })
    .to_string();
    let mut w = HashingWriter {
        inner: out,
        hash: twox_hash::XxHash64::with_seed(0),
        buf: Vec::with_capacity(1 << 16),
    };
    w.put(MAGIC).map_err(io)?;
    w.put(&(header.len() as u32).to_le_bytes()).map_err(io)?;
    w.put(header.as_bytes()).map_err(io)?;
    let mut count = 0u64;
    let mut record = Vec::new();
    for (i, state) in states.iter().enumerate() {
        let drop_expired = state
            .ttl
            .as_ref()
            .filter(|t| t.cleanup_full_snapshot)
            .cloned();
        let mut failed = None;
        entries(i, &mut |address, value| {
            if !key_group_of(address).is_some_and(|g| range.contains(g)) {
                return Ok(());
            }
            if let Some(ttl) = &drop_expired {
                if stored_expired(ttl, value, now_ms) {
                    return Ok(());
                }
            }
            record.clear();
            record.push(1);
            put_varint(&mut record, i as u64);
            put_varint(&mut record, address.len() as u64);
            record.extend_from_slice(address);
            put_varint(&mut record, value.len() as u64);
            record.extend_from_slice(value);
            if let Err(e) = w.put(&record) {
                failed = Some(e);
            }
            count += 1;
            Ok(())
        })?;
        if let Some(e) = failed {
            return Err(io(e));
        }
    }
    let checksum = w.hash.finish();
    w.put(&[0]).map_err(io)?;
    w.put(&count.to_le_bytes()).map_err(io)?;
    w.put(&checksum.to_le_bytes()).map_err(io)?;
    w.flush().map_err(io)?;
    Ok(count)
}

struct HashingReader<'a> {
    inner: std::io::BufReader<&'a mut dyn Read>,
    hash: twox_hash::XxHash64,
}

impl HashingReader<'_> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| {
            StateError::Corrupt(format!("snapshot ends early or cannot be read: {e}"))
        })?;
        self.hash.write(buf);
        Ok(())
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(StateError::Corrupt("varint longer than 64 bits".into()))
    }

    fn bytes(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let len = self.varint()?;
        if len > 1 << 31 {
            return Err(StateError::Corrupt(format!("entry of {len} bytes")));
        }
        out.resize(len as usize, 0);
        self.exact(out)
    }

    fn u64_plain(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.inner
            .read_exact(&mut b)
            .map_err(|e| StateError::Corrupt(format!("snapshot trailer: {e}")))?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Reads a canonical snapshot entry by entry.
///
/// The checksum covers the whole file and is verified when the last entry
/// has been read: a caller that applies entries as they come must discard
/// them if [`SnapshotReader::next_entry`] fails.
pub struct SnapshotReader<'a> {
    r: HashingReader<'a>,
    states: Vec<StateDescriptor>,
    range: KeyGroupRange,
    read: u64,
    done: bool,
}

impl<'a> SnapshotReader<'a> {
    /// Reads the header; entries outside `range` will be skipped.
    pub fn open(input: &'a mut dyn Read, range: KeyGroupRange) -> Result<Self> {
        let mut r = HashingReader {
            inner: std::io::BufReader::with_capacity(1 << 16, input),
            hash: twox_hash::XxHash64::with_seed(0),
        };
        let mut magic = [0u8; 8];
        r.exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(StateError::Corrupt(
                "not a Weir state snapshot (bad magic bytes)".into(),
            ));
        }
        let mut len = [0u8; 4];
        r.exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > 1 << 26 {
            return Err(StateError::Corrupt(format!(
                "snapshot header of {len} bytes"
            )));
        }
        let mut header = vec![0u8; len];
        r.exact(&mut header)?;
        let states = parse_header(&header)?;
        Ok(Self {
            r,
            states,
            range,
            read: 0,
            done: false,
        })
    }

    /// The states the snapshot holds, in the order of their indexes.
    pub fn states(&self) -> &[StateDescriptor] {
        &self.states
    }

    /// The next entry in range as (state index, address, stored value);
    /// `None` after the last one, once the checksum has been verified.
    pub fn next_entry(&mut self) -> Result<Option<SnapshotEntry>> {
        while !self.done {
            let checksum_so_far = self.r.hash.finish();
            match self.r.byte()? {
                0 => {
                    let count = self.r.u64_plain()?;
                    let checksum = self.r.u64_plain()?;
                    if checksum != checksum_so_far || count != self.read {
                        return Err(StateError::Corrupt(
                            "snapshot checksum mismatch: the file is damaged".into(),
                        ));
                    }
                    self.done = true;
                }
                1 => {
                    let index = self.r.varint()? as usize;
                    if index >= self.states.len() {
                        return Err(StateError::Corrupt(format!(
                            "entry of unknown state #{index}"
                        )));
                    }
                    let mut address = Vec::new();
                    let mut value = Vec::new();
                    self.r.bytes(&mut address)?;
                    self.r.bytes(&mut value)?;
                    self.read += 1;
                    if key_group_of(&address).is_some_and(|g| self.range.contains(g)) {
                        return Ok(Some((index, address, value)));
                    }
                }
                tag => return Err(StateError::Corrupt(format!("bad record tag {tag}"))),
            }
        }
        Ok(None)
    }
}

fn parse_header(header: &[u8]) -> Result<Vec<StateDescriptor>> {
    let bad = |what: &str| StateError::Corrupt(format!("snapshot header: {what}"));
    let value: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let encoding = value["encoding"].as_str().unwrap_or_default();
    if encoding != ENCODING {
        return Err(StateError::Corrupt(format!(
            "snapshot encoding '{encoding}' is not supported (this build reads '{ENCODING}')"
        )));
    }
    let states = value["states"]
        .as_array()
        .ok_or_else(|| bad("no state list"))?;
    states
        .iter()
        .map(|s| {
            let name = s["name"]
                .as_str()
                .ok_or_else(|| bad("state without a name"))?;
            let kind = s["kind"]
                .as_str()
                .and_then(StateKind::from_name)
                .ok_or_else(|| bad("state of unknown kind"))?;
            let mut d = StateDescriptor::new(name, kind);
            if let Some(ms) = s["ttl_ms"].as_i64() {
                d.ttl = Some(StateTtlConfig::new(std::time::Duration::from_millis(
                    ms.max(0) as u64,
                )));
            }
            Ok(d)
        })
        .collect()
}

/// [`StateBackend::export`] for any backend, through its scans.
pub(crate) fn export_backend<B: StateBackend + ?Sized>(
    backend: &mut B,
    out: &mut dyn Write,
    range: KeyGroupRange,
) -> Result<u64> {
    let states = backend.descriptors();
    let now = backend.now_ms();
    let start = range.lower_bound();
    let end = range.upper_bound();
    write_snapshot(out, &states, range, now, &mut |i, visit| {
        backend.scan(
            crate::backend::StateId(i),
            &start,
            end.as_ref().map(|e| e.as_slice()),
            &mut |k, v| {
                visit(k, v)?;
                Ok(Scan::Continue)
            },
        )
    })
}

/// [`StateBackend::import`] for any backend: registers the snapshot's
/// states and writes its entries in batches.
pub(crate) fn import_backend<B: StateBackend + ?Sized>(
    backend: &mut B,
    input: &mut dyn Read,
    range: KeyGroupRange,
) -> Result<u64> {
    const BATCH: usize = 4096;
    let mut reader = SnapshotReader::open(input, range)?;
    let ids = reader
        .states()
        .iter()
        .map(|d| backend.register(d))
        .collect::<Result<Vec<_>>>()?;
    let mut count = 0u64;
    let mut current: Option<usize> = None;
    let mut changes = Vec::with_capacity(BATCH);
    while let Some((state, address, value)) = reader.next_entry()? {
        if current != Some(state) || changes.len() >= BATCH {
            if let Some(prev) = current {
                backend.write(ids[prev], std::mem::take(&mut changes))?;
            }
            current = Some(state);
        }
        changes.push((address, Some(value)));
        count += 1;
    }
    if let Some(prev) = current {
        backend.write(ids[prev], changes)?;
    }
    Ok(count)
}
