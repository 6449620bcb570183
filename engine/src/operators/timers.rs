//! Event-time and processing-time timers of one operator subtask.
//!
//! A timer belongs to a key (its key group and encoded key) and a namespace
//! (a window, or empty), and fires once, in time order, when the watermark
//! (event time) or the processing-time clock reaches its time. Registering
//! the same timer twice keeps one.
//!
//! Timers are state. They live in memory while the job runs; at each
//! snapshot the runtime writes them into the operator's backend under the
//! reserved state [`TIMER_STATE`], one entry per timer addressed by key
//! group first, so they are checkpointed, restored and redistributed with
//! their key groups like every other keyed entry:
//!
//! ```text
//! [key group u16 BE][domain u8][time, order-preserving 8 bytes][key length u32 BE][key][namespace]
//! ```

use std::collections::BTreeSet;

use weir_state::{StateBackend, StateDescriptor, StateId, StateKind};

use super::batch_state::{time_bytes, time_from_bytes};
use crate::error::{EngineError, Result};

/// The reserved state that holds an operator's timers in snapshots.
pub const TIMER_STATE: &str = "__timers";

/// Which clock a timer follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeDomain {
    /// Fires when the watermark reaches its time.
    EventTime,
    /// Fires when processing time (the job's clock) reaches its time.
    ProcessingTime,
}

impl TimeDomain {
    fn tag(self) -> u8 {
        match self {
            TimeDomain::EventTime => 0,
            TimeDomain::ProcessingTime => 1,
        }
    }
}

/// One registered timer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    /// When it fires, in milliseconds since the epoch.
    pub time: i64,
    /// The key group of its key.
    pub key_group: u16,
    /// The key, encoded by the operator.
    pub key: Vec<u8>,
    /// The namespace (a window, or empty), encoded by the operator.
    pub namespace: Vec<u8>,
}

/// The timers of one operator subtask.
#[derive(Debug, Default)]
pub struct TimerService {
    event: BTreeSet<Timer>,
    processing: BTreeSet<Timer>,
}

impl TimerService {
    /// Registers a timer; registering one that exists keeps one.
    pub fn register(&mut self, domain: TimeDomain, timer: Timer) {
        self.set(domain).insert(timer);
    }

    /// Deletes a timer if it is registered.
    pub fn delete(&mut self, domain: TimeDomain, timer: &Timer) {
        self.set(domain).remove(timer);
    }

    /// Number of timers registered in `domain`.
    pub fn len(&self, domain: TimeDomain) -> usize {
        match domain {
            TimeDomain::EventTime => self.event.len(),
            TimeDomain::ProcessingTime => self.processing.len(),
        }
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.event.is_empty() && self.processing.is_empty()
    }

    /// The earliest timer of `domain`, if any.
    pub fn next_time(&self, domain: TimeDomain) -> Option<i64> {
        match domain {
            TimeDomain::EventTime => self.event.first(),
            TimeDomain::ProcessingTime => self.processing.first(),
        }
        .map(|t| t.time)
    }

    /// Removes and returns the earliest timer of `domain` due at `now`.
    pub fn pop_due(&mut self, domain: TimeDomain, now: i64) -> Option<Timer> {
        let set = self.set(domain);
        if set.first().is_some_and(|t| t.time <= now) {
            set.pop_first()
        } else {
            None
        }
    }

    fn set(&mut self, domain: TimeDomain) -> &mut BTreeSet<Timer> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    /// The state that holds timers in `backend`.
    fn state(backend: &mut dyn StateBackend) -> Result<StateId> {
        Ok(backend.register(&StateDescriptor::new(TIMER_STATE, StateKind::Raw))?)
    }

    /// Writes every timer into `backend`, replacing what an earlier
    /// snapshot wrote.
    pub fn persist(&self, backend: &mut dyn StateBackend) -> Result<()> {
        let state = Self::state(backend)?;
        backend.delete_range(state, &[], None)?;
        let mut changes = Vec::with_capacity(self.event.len() + self.processing.len());
        for (domain, set) in [
            (TimeDomain::EventTime, &self.event),
            (TimeDomain::ProcessingTime, &self.processing),
        ] {
            for t in set {
                let mut a = Vec::with_capacity(15 + t.key.len() + t.namespace.len());
                a.extend_from_slice(&t.key_group.to_be_bytes());
                a.push(domain.tag());
                a.extend_from_slice(&time_bytes(t.time));
                a.extend_from_slice(&(t.key.len() as u32).to_be_bytes());
                a.extend_from_slice(&t.key);
                a.extend_from_slice(&t.namespace);
                changes.push((a, Some(Vec::new())));
            }
        }
        changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if !changes.is_empty() {
            backend.write(state, changes)?;
        }
        Ok(())
    }

    /// The timers a restored `backend` holds (only its key groups').
    pub fn restore(backend: &mut dyn StateBackend) -> Result<Self> {
        let state = Self::state(backend)?;
        let mut service = Self::default();
        let mut bad = None;
        backend.scan(state, &[], None, &mut |address, _| {
            match decode(address) {
                Some((domain, timer)) => service.register(domain, timer),
                None => bad = Some(address.len()),
            }
            Ok(weir_state::Scan::Continue)
        })?;
        if let Some(len) = bad {
            return Err(EngineError::State(format!(
                "a timer entry of {len} bytes cannot be read (damaged state)"
            )));
        }
        Ok(service)
    }
}

fn decode(a: &[u8]) -> Option<(TimeDomain, Timer)> {
    let key_group = u16::from_be_bytes(a.get(0..2)?.try_into().ok()?);
    let domain = match a.get(2)? {
        0 => TimeDomain::EventTime,
        1 => TimeDomain::ProcessingTime,
        _ => return None,
    };
    let time = time_from_bytes(a.get(3..11)?.try_into().ok()?);
    let len = u32::from_be_bytes(a.get(11..15)?.try_into().ok()?) as usize;
    let key = a.get(15..15usize.checked_add(len)?)?.to_vec();
    let namespace = a.get(15 + len..)?.to_vec();
    Some((
        domain,
        Timer {
            time,
            key_group,
            key,
            namespace,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_state::{BackendConfig, BackendKind, KeyGroupRange};

    fn timer(time: i64, key_group: u16, key: &[u8]) -> Timer {
        Timer {
            time,
            key_group,
            key: key.to_vec(),
            namespace: b"w".to_vec(),
        }
    }

    #[test]
    fn timers_fire_once_in_time_order() {
        let mut s = TimerService::default();
        s.register(TimeDomain::EventTime, timer(30, 1, b"a"));
        s.register(TimeDomain::EventTime, timer(10, 2, b"b"));
        s.register(TimeDomain::EventTime, timer(10, 2, b"b"));
        s.register(TimeDomain::EventTime, timer(-5, 3, b"c"));
        s.register(TimeDomain::ProcessingTime, timer(20, 1, b"a"));
        assert_eq!(s.len(TimeDomain::EventTime), 3);
        let mut fired = Vec::new();
        while let Some(t) = s.pop_due(TimeDomain::EventTime, 10) {
            fired.push(t.time);
        }
        assert_eq!(fired, vec![-5, 10]);
        assert_eq!(s.next_time(TimeDomain::EventTime), Some(30));
        s.delete(TimeDomain::EventTime, &timer(30, 1, b"a"));
        assert_eq!(s.pop_due(TimeDomain::EventTime, i64::MAX), None);
        assert_eq!(s.pop_due(TimeDomain::ProcessingTime, 19), None);
        assert_eq!(
            s.pop_due(TimeDomain::ProcessingTime, 20),
            Some(timer(20, 1, b"a"))
        );
    }

    #[test]
    fn timers_survive_a_snapshot_and_split_by_key_group() {
        for kind in [BackendKind::HashMap, BackendKind::RocksDb] {
            let config = BackendConfig::new(kind);
            let dir = tempfile::tempdir().unwrap();
            let mut backend = config.create("timers-test").unwrap();
            let mut s = TimerService::default();
            for g in 0..8u16 {
                s.register(
                    TimeDomain::EventTime,
                    timer(100 + g as i64, g, &[g as u8; 3]),
                );
                s.register(TimeDomain::ProcessingTime, timer(-(g as i64), g, b""));
            }
            s.persist(backend.as_mut()).unwrap();
            // A second snapshot replaces the first.
            s.pop_due(TimeDomain::EventTime, 100).unwrap();
            s.persist(backend.as_mut()).unwrap();
            let snap = dir.path().join("snap");
            std::fs::create_dir(&snap).unwrap();
            weir_state::write_canonical(backend.as_mut(), &snap).unwrap();
            let parts = vec![(snap.clone(), weir_state::SnapshotFormat::Canonical)];
            // Restored in two halves, as at parallelism 2 of 8 key groups.
            let mut seen = 0;
            for (i, range) in [KeyGroupRange::new(0, 4), KeyGroupRange::new(4, 8)]
                .into_iter()
                .enumerate()
            {
                let mut restored =
                    weir_state::restore_merged(&config, &format!("t{i}"), &parts, range).unwrap();
                let mut r = TimerService::restore(restored.as_mut()).unwrap();
                seen += r.len(TimeDomain::EventTime) + r.len(TimeDomain::ProcessingTime);
                while let Some(t) = r.pop_due(TimeDomain::EventTime, i64::MAX) {
                    assert!(range.contains(t.key_group), "{kind:?} {t:?} in {range:?}");
                    assert_eq!(t.time, 100 + t.key_group as i64);
                    assert_eq!(t.key, vec![t.key_group as u8; 3]);
                    assert_eq!(t.namespace, b"w");
                }
            }
            assert_eq!(seen, 15, "{kind:?}");
        }
    }
}
