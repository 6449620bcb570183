//! Time-to-live of state entries, with Flink's semantics.
//!
//! An entry with TTL stores the time it was last touched (milliseconds of
//! processing time, from a [`Clock`]) in front of its value:
//!
//! ```text
//! [last access: i64 LE][value]
//! ```
//!
//! It expires when `last access + ttl <= now`. What counts as a touch is the
//! [`UpdateType`]; whether an expired entry that is still stored may be
//! returned is the [`StateVisibility`]; when expired entries are actually
//! removed is the set of clean-up strategies.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A source of processing time in milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to: for tests of TTL.
///
/// ```
/// use weir_state::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(std::time::Duration::from_secs(2));
/// assert_eq!(clock.now_ms(), 3_000);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(now_ms)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Sets the time.
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What refreshes an entry's time-to-live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateType {
    /// Writing the entry (creating or changing it).
    OnCreateAndWrite,
    /// Reading it as well as writing it.
    OnReadAndWrite,
}

/// Whether an expired entry that has not been removed yet can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateVisibility {
    /// Expired entries are never returned.
    NeverReturnExpired,
    /// An expired entry is returned until a clean-up removes it.
    ReturnExpiredIfNotCleanedUp,
}

/// Time-to-live of one state, as Flink's `StateTtlConfig`.
///
/// ```
/// use std::time::Duration;
/// use weir_state::{StateTtlConfig, StateVisibility, UpdateType};
/// let ttl = StateTtlConfig::new(Duration::from_secs(3600))
///     .update_type(UpdateType::OnReadAndWrite)
///     .visibility(StateVisibility::NeverReturnExpired)
///     .cleanup_incrementally(10)
///     .cleanup_in_rocksdb_compaction();
/// assert_eq!(ttl.ttl_ms(), 3_600_000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateTtlConfig {
    ttl: Duration,
    /// What refreshes the time-to-live.
    pub update_type: UpdateType,
    /// Whether expired entries may be read.
    pub visibility: StateVisibility,
    /// Drop expired entries when writing a full snapshot.
    pub cleanup_full_snapshot: bool,
    /// On each access, check this many further entries and drop the
    /// expired ones (0: off).
    pub cleanup_incremental: usize,
    /// Drop expired entries when RocksDB compacts (ignored by `hashmap`).
    pub cleanup_compaction: bool,
}

impl StateTtlConfig {
    /// A TTL with Flink's defaults: refreshed on create and write, expired
    /// entries never returned, cleaned up in full snapshots and in RocksDB
    /// compaction.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            update_type: UpdateType::OnCreateAndWrite,
            visibility: StateVisibility::NeverReturnExpired,
            cleanup_full_snapshot: true,
            cleanup_incremental: 0,
            cleanup_compaction: true,
        }
    }

    /// Sets what refreshes the time-to-live.
    pub fn update_type(mut self, update_type: UpdateType) -> Self {
        self.update_type = update_type;
        self
    }

    /// Sets whether expired entries may be read.
    pub fn visibility(mut self, visibility: StateVisibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Checks `entries` further entries on each access and drops expired ones.
    pub fn cleanup_incrementally(mut self, entries: usize) -> Self {
        self.cleanup_incremental = entries;
        self
    }

    /// Drops expired entries in full snapshots (on by default).
    pub fn cleanup_full_snapshot(mut self, on: bool) -> Self {
        self.cleanup_full_snapshot = on;
        self
    }

    /// Drops expired entries when RocksDB compacts (on by default).
    pub fn cleanup_in_rocksdb_compaction(mut self) -> Self {
        self.cleanup_compaction = true;
        self
    }

    /// Turns the compaction filter off.
    pub fn disable_cleanup_in_rocksdb_compaction(mut self) -> Self {
        self.cleanup_compaction = false;
        self
    }

    /// The time-to-live in milliseconds.
    pub fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis().min(i64::MAX as u128) as i64
    }

    /// Whether an entry last touched at `stamp` has expired at `now`.
    pub fn expired(&self, stamp: i64, now: i64) -> bool {
        stamp.saturating_add(self.ttl_ms()) <= now
    }
}

/// Splits a stored TTL value into its time stamp and value.
pub fn unwrap_stamp(stored: &[u8]) -> Option<(i64, &[u8])> {
    let (stamp, value) = stored.split_at_checked(8)?;
    let mut buf = [0u8; 8];
    buf.copy_from_slice(stamp);
    Some((i64::from_le_bytes(buf), value))
}

/// Prefixes a value with its time stamp.
pub fn wrap_stamp(stamp: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&stamp.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// Whether a stored entry of a state with `ttl` is expired at `now`
/// (entries too short to carry a stamp count as expired: they are damaged).
pub fn stored_expired(ttl: &StateTtlConfig, stored: &[u8], now: i64) -> bool {
    match unwrap_stamp(stored) {
        Some((stamp, _)) => ttl.expired(stamp, now),
        None => true,
    }
}
