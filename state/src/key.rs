//! Key groups and the layout of keyed entries.
//!
//! Every keyed entry's address starts with its key group as two big-endian
//! bytes, so entries of a key-group range are contiguous in every backend and
//! a snapshot can be split by range when a job is restored with another
//! parallelism. The typed primitives then add the key and the namespace,
//! each length-prefixed, and (for map state) the user key:
//!
//! ```text
//! [key group: u16 BE][varint len][key][varint len][namespace][map key]
//! ```

use std::hash::Hasher;

use crate::codec::{put_bytes, put_varint};

/// The most key groups a job can have (Flink's upper bound too).
pub const MAX_KEY_GROUPS: usize = 32768;

/// A contiguous range of key groups, `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyGroupRange {
    /// First key group in the range.
    pub start: u16,
    /// One past the last key group.
    pub end: u16,
}

impl KeyGroupRange {
    /// The range `start..end`.
    pub fn new(start: u16, end: u16) -> Self {
        Self { start, end }
    }

    /// Every key group of a job with `max_parallelism` groups.
    pub fn all(max_parallelism: usize) -> Self {
        Self::new(0, max_parallelism.min(MAX_KEY_GROUPS) as u16)
    }

    /// The key groups of `subtask` out of `parallelism` (Flink's assignment:
    /// contiguous ranges, group `g` belongs to subtask `g * p / maxp`).
    pub fn for_subtask(max_parallelism: usize, parallelism: usize, subtask: usize) -> Self {
        let maxp = max_parallelism.min(MAX_KEY_GROUPS);
        let start = (subtask * maxp).div_ceil(parallelism);
        let end = ((subtask + 1) * maxp).div_ceil(parallelism);
        Self::new(start as u16, end as u16)
    }

    /// Whether `group` is in the range.
    pub fn contains(&self, group: u16) -> bool {
        self.start <= group && group < self.end
    }

    /// Whether the range has no key group.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// The first address of the range, inclusive.
    pub fn lower_bound(&self) -> [u8; 2] {
        self.start.to_be_bytes()
    }

    /// The end address of the range, exclusive (`None`: to the end of the
    /// key space).
    pub fn upper_bound(&self) -> Option<[u8; 2]> {
        (self.end < u16::MAX).then(|| self.end.to_be_bytes())
    }
}

/// The key group of an address.
pub fn key_group_of(address: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*address.first()?, *address.get(1)?]))
}

/// The key group of an encoded key: a stable 64-bit hash (xxHash64, seed 0)
/// of its bytes, modulo the number of key groups.
pub fn key_group_for_bytes(key: &[u8], max_parallelism: usize) -> u16 {
    let mut h = twox_hash::XxHash64::with_seed(0);
    h.write(key);
    (h.finish() % max_parallelism.clamp(1, MAX_KEY_GROUPS) as u64) as u16
}

/// Builds the address of a keyed entry.
pub fn address(group: u16, key: &[u8], namespace: &[u8], map_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 2 + key.len() + namespace.len() + map_key.len() + 2);
    address_prefix_into(&mut out, group, key, namespace);
    out.extend_from_slice(map_key);
    out
}

/// Appends the address prefix shared by all entries of one key and namespace.
pub fn address_prefix_into(out: &mut Vec<u8>, group: u16, key: &[u8], namespace: &[u8]) {
    out.extend_from_slice(&group.to_be_bytes());
    put_bytes(out, key);
    put_varint(out, namespace.len() as u64);
    out.extend_from_slice(namespace);
}

/// The smallest byte string greater than every string starting with
/// `prefix` (`None` when there is none: the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtask_ranges_cover_every_group_once() {
        for maxp in [1, 7, 128, 1000] {
            for p in 1..=maxp.min(9) {
                let mut next = 0u16;
                for s in 0..p {
                    let r = KeyGroupRange::for_subtask(maxp, p, s);
                    assert_eq!(r.start, next);
                    next = r.end;
                    // The range agrees with the exchange's `g * p / maxp`.
                    for g in r.start..r.end {
                        assert_eq!(g as usize * p / maxp, s);
                    }
                }
                assert_eq!(next as usize, maxp);
            }
        }
    }

    const PINNED_A: u16 = 109;
    const PINNED_B: u16 = 85;

    #[test]
    fn key_groups_are_stable() {
        // A key's group must not change between releases: savepoints and
        // rescaling depend on it.
        assert_eq!(key_group_for_bytes(b"auction-42", 128), PINNED_A);
        assert_eq!(key_group_for_bytes(&7u64.to_le_bytes(), 128), PINNED_B);
    }

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
