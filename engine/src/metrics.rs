//! Counters of a running job, per node, shared by the node's subtasks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one node of the job graph.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Rows received.
    pub records_in: AtomicU64,
    /// Rows emitted.
    pub records_out: AtomicU64,
    /// Rows dropped because their window had already fired.
    pub late_records_dropped: AtomicU64,
    /// Malformed input records skipped (`*.ignore-parse-errors`).
    pub parse_errors_skipped: AtomicU64,
    /// Entries held in state, over all subtasks (cached groups plus the
    /// backend's entries; RocksDB's count is its estimate).
    pub state_entries: AtomicU64,
    /// Bytes of state, over all subtasks (RocksDB: SST files and memtables).
    pub state_bytes: AtomicU64,
    /// The latest watermark seen (milliseconds), `i64::MIN` before the first.
    pub watermark: std::sync::atomic::AtomicI64,
}

impl NodeMetrics {
    /// Fresh counters.
    pub fn new() -> Self {
        let m = Self::default();
        m.watermark.store(i64::MIN, Ordering::Relaxed);
        m
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Replaces one subtask's contribution to a gauge summed over subtasks:
    /// `last` is what this subtask published before.
    pub fn set_share(gauge: &AtomicU64, last: &mut u64, now: u64) {
        if now >= *last {
            gauge.fetch_add(now - *last, Ordering::Relaxed);
        } else {
            gauge.fetch_sub(*last - now, Ordering::Relaxed);
        }
        *last = now;
    }

    /// A point-in-time copy of the counters.
    pub fn snapshot(&self) -> NodeMetricsSnapshot {
        NodeMetricsSnapshot {
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            late_records_dropped: self.late_records_dropped.load(Ordering::Relaxed),
            parse_errors_skipped: self.parse_errors_skipped.load(Ordering::Relaxed),
            state_entries: self.state_entries.load(Ordering::Relaxed),
            state_bytes: self.state_bytes.load(Ordering::Relaxed),
            watermark: Some(self.watermark.load(Ordering::Relaxed)).filter(|w| *w != i64::MIN),
        }
    }
}

/// Values of [`NodeMetrics`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeMetricsSnapshot {
    /// Rows received.
    pub records_in: u64,
    /// Rows emitted.
    pub records_out: u64,
    /// Late rows dropped.
    pub late_records_dropped: u64,
    /// Malformed records skipped.
    pub parse_errors_skipped: u64,
    /// Entries held in state.
    pub state_entries: u64,
    /// Bytes of state.
    pub state_bytes: u64,
    /// Latest watermark.
    pub watermark: Option<i64>,
}
