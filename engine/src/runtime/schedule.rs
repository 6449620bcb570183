//! The checkpoint coordinator's decisions, as a state machine over events
//! that returns actions — no tasks, no storage, no clock of its own (every
//! event carries the time), so each rule is unit-tested on its own.
//!
//! Events: the interval ticked, time passed (timeouts), a source finished,
//! a task acknowledged or declined a checkpoint, the user asked for a
//! savepoint or a stop, and the metadata of a checkpoint was written (or
//! not). Actions: trigger checkpoint `n` (of a kind), complete it (write its
//! metadata), abort it (with whether the job must fail), drop checkpoints a
//! newer one subsumed, fail the job, finish. The coordinator
//! ([`super::checkpoint::Coordinator`]) performs the actions.
//!
//! The rules, with Flink's keys:
//! - a periodic checkpoint is triggered every `interval`, unless
//!   `max-concurrent-checkpoints` periodic ones are running, or the last
//!   one completed less than `min-pause` ago, or the job is ending;
//! - a checkpoint running longer than `timeout` is aborted;
//! - failed periodic checkpoints in a row beyond
//!   `tolerable-failed-checkpoints` fail the job (a completed one resets
//!   the count; savepoints do not count);
//! - once every source has finished, the final checkpoint is triggered; if
//!   it (or the final checkpoint of a stop, or a stopping savepoint) fails,
//!   the job fails: the sources ended after its barrier, so no other
//!   checkpoint could follow;
//! - a completed checkpoint subsumes the periodic ones still running
//!   before it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::message::BarrierKind;

/// The settings the schedule follows.
#[derive(Clone, Debug)]
pub(crate) struct Rules {
    /// `execution.checkpointing.interval`; `None`: no periodic checkpoints.
    pub interval: Option<Duration>,
    pub timeout: Duration,
    pub min_pause: Duration,
    pub max_concurrent: usize,
    pub tolerable_failures: usize,
    /// Source subtasks (each reports once that it finished).
    pub sources: usize,
    /// Tasks that acknowledge each checkpoint.
    pub expected_acks: usize,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Event {
    /// Time passed (the coordinator sends it every interval tick and every
    /// 100 ms to check timeouts).
    Tick { periodic: bool },
    /// A source subtask read all its input.
    SourceFinished,
    /// One task stored its part of checkpoint `id`.
    Ack { id: u64 },
    /// A task could not store its part of checkpoint `id`.
    Decline { id: u64, reason: String },
    /// The user asked for a savepoint (its folder is ready), or for a stop
    /// with a final checkpoint (`kind` says which).
    Request { kind: BarrierKind },
    /// The metadata of checkpoint `id` was written (`Ok`) or not.
    Written {
        id: u64,
        result: std::result::Result<(), String>,
    },
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    /// Start checkpoint `id`: tell the sources.
    Trigger { id: u64, kind: BarrierKind },
    /// Every task acknowledged `id`: write its metadata, then report
    /// [`Event::Written`].
    Complete { id: u64 },
    /// `id` is done for: record it, remove its files, tell who waits.
    Abort {
        id: u64,
        reason: String,
        /// The job must fail because of it, and why.
        fail_job: Option<String>,
    },
    /// A newer checkpoint completed: `id` no longer matters.
    Subsumed { id: u64 },
    /// `id`'s metadata is written: tell the sinks to commit, prune, reply.
    Completed { id: u64 },
    /// The final checkpoint or the stop completed: the coordinator is done.
    Finish,
    /// The request could not start (the job is ending anyway).
    Refuse { reason: String },
    /// A stop of a job that is ending anyway: its end is the answer.
    AlreadyEnding,
}

#[derive(Clone, Debug)]
struct Pending {
    kind: BarrierKind,
    started: Instant,
    acks: usize,
    /// Acknowledged by every task; waiting for its metadata.
    writing: bool,
}

/// The coordinator's state.
#[derive(Debug)]
pub(crate) struct Schedule {
    rules: Rules,
    next_id: u64,
    running: BTreeMap<u64, Pending>,
    last_triggered: Option<Instant>,
    last_completed: Option<Instant>,
    finished_sources: usize,
    /// The sources were told to end (final checkpoint, stop).
    ending: bool,
    failures: usize,
}

impl Schedule {
    /// A schedule whose next checkpoint is `next_id`, started at `now`.
    pub fn new(rules: Rules, next_id: u64, now: Instant) -> Self {
        Self {
            rules,
            next_id,
            running: BTreeMap::new(),
            last_triggered: Some(now),
            last_completed: None,
            finished_sources: 0,
            ending: false,
            failures: 0,
        }
    }

    /// The id the next trigger gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Failed periodic checkpoints in a row.
    #[cfg(test)]
    pub fn failures(&self) -> usize {
        self.failures
    }

    /// Handles one event at `now`.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Tick { periodic } => {
                self.expire(now, &mut out);
                if periodic {
                    self.maybe_trigger(now, &mut out);
                }
            }
            Event::SourceFinished => {
                self.finished_sources += 1;
                if self.finished_sources == self.rules.sources && !self.ending {
                    self.ending = true;
                    self.trigger(BarrierKind::Final, now, &mut out);
                }
            }
            Event::Ack { id } => {
                let expected = self.rules.expected_acks;
                if let Some(p) = self.running.get_mut(&id) {
                    p.acks += 1;
                    if p.acks >= expected && !p.writing {
                        p.writing = true;
                        out.push(Action::Complete { id });
                    }
                }
            }
            Event::Decline { id, reason } => self.abort(id, reason, &mut out),
            Event::Request { kind } => {
                if self.ending && kind == BarrierKind::StopCheckpoint {
                    out.push(Action::AlreadyEnding);
                } else if self.ending {
                    out.push(Action::Refuse {
                        reason: "the job is already finishing or stopping".into(),
                    });
                } else {
                    self.ending |= kind.ends_input();
                    self.trigger(kind, now, &mut out);
                }
            }
            Event::Written { id, result } => match result {
                Ok(()) => {
                    let Some(p) = self.running.remove(&id) else {
                        return out;
                    };
                    if !p.kind.is_savepoint() {
                        self.failures = 0;
                        self.last_completed = Some(now);
                        let older: Vec<u64> = self
                            .running
                            .range(..id)
                            .filter(|(_, o)| !o.kind.is_savepoint() && !o.writing)
                            .map(|(k, _)| *k)
                            .collect();
                        for k in older {
                            self.running.remove(&k);
                            out.push(Action::Subsumed { id: k });
                        }
                    }
                    out.push(Action::Completed { id });
                    if p.kind.ends_input() {
                        out.push(Action::Finish);
                    }
                }
                Err(reason) => self.abort(id, reason, &mut out),
            },
        }
        out
    }

    fn maybe_trigger(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(interval) = self.rules.interval else {
            return;
        };
        if self.ending {
            return;
        }
        if self
            .last_triggered
            .is_some_and(|t| now.saturating_duration_since(t) < interval)
        {
            return;
        }
        if self
            .last_completed
            .is_some_and(|t| now.saturating_duration_since(t) < self.rules.min_pause)
        {
            return;
        }
        let periodic = self
            .running
            .values()
            .filter(|p| !p.kind.is_savepoint())
            .count();
        if periodic >= self.rules.max_concurrent {
            return;
        }
        self.trigger(BarrierKind::Checkpoint, now, out);
    }

    fn trigger(&mut self, kind: BarrierKind, now: Instant, out: &mut Vec<Action>) {
        let id = self.next_id;
        self.next_id += 1;
        self.last_triggered = Some(now);
        self.running.insert(
            id,
            Pending {
                kind,
                started: now,
                acks: 0,
                writing: false,
            },
        );
        out.push(Action::Trigger { id, kind });
    }

    fn expire(&mut self, now: Instant, out: &mut Vec<Action>) {
        let expired: Vec<u64> = self
            .running
            .iter()
            .filter(|(_, p)| {
                !p.writing && now.saturating_duration_since(p.started) > self.rules.timeout
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let reason = format!(
                "expired after {:?} (execution.checkpointing.timeout)",
                self.rules.timeout
            );
            self.abort(id, reason, out);
        }
    }

    fn abort(&mut self, id: u64, reason: String, out: &mut Vec<Action>) {
        let Some(p) = self.running.remove(&id) else {
            return;
        };
        let fail_job = match p.kind {
            BarrierKind::Final => Some(format!(
                "the final checkpoint {id} failed ({reason}) after the input ended; the job restarts from its latest completed checkpoint"
            )),
            BarrierKind::StopCheckpoint => Some(format!(
                "the final checkpoint {id} of a stop failed ({reason}); the job restarts from its latest checkpoint"
            )),
            k if k.ends_input() => Some(format!(
                "stop with savepoint failed ({reason}); the job stopped and restarts from its latest checkpoint"
            )),
            // A failed savepoint leaves the job running and does not count
            // against the checkpoints' tolerance.
            BarrierKind::Savepoint => None,
            _ => {
                self.failures += 1;
                (self.failures > self.rules.tolerable_failures).then(|| {
                    format!(
                        "checkpoint {id} failed ({reason}) and execution.checkpointing.tolerable-failed-checkpoints is {}",
                        self.rules.tolerable_failures
                    )
                })
            }
        };
        out.push(Action::Abort {
            id,
            reason,
            fail_job,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            interval: Some(Duration::from_millis(100)),
            timeout: Duration::from_secs(1),
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            tolerable_failures: 0,
            sources: 2,
            expected_acks: 3,
        }
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn tick(s: &mut Schedule, at: Instant) -> Vec<Action> {
        s.handle(Event::Tick { periodic: true }, at)
    }

    fn complete(s: &mut Schedule, id: u64, at: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for _ in 0..3 {
            out.extend(s.handle(Event::Ack { id }, at));
        }
        assert_eq!(out, vec![Action::Complete { id }]);
        s.handle(Event::Written { id, result: Ok(()) }, at)
    }

    #[test]
    fn periodic_checkpoints_follow_the_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(rules(), 1, t0);
        assert!(tick(&mut s, ms(t0, 50)).is_empty(), "before the interval");
        assert_eq!(
            tick(&mut s, ms(t0, 100)),
            vec![Action::Trigger {
                id: 1,
                kind: BarrierKind::Checkpoint
            }]
        );
        assert_eq!(
            complete(&mut s, 1, ms(t0, 120)),
            vec![Action::Completed { id: 1 }]
        );
        assert!(tick(&mut s, ms(t0, 150)).is_empty());
        assert!(matches!(
            tick(&mut s, ms(t0, 200))[..],
            [Action::Trigger { id: 2, .. }]
        ));
    }

    #[test]
    fn a_checkpoint_running_past_the_timeout_is_aborted() {
        let t0 = Instant::now();
        let mut s = Schedule::new(
            Rules {
                tolerable_failures: 5,
                ..rules()
            },
            1,
            t0,
        );
        tick(&mut s, ms(t0, 100));
        // At the timeout exactly it still runs; past it, it is aborted.
        assert!(s
            .handle(Event::Tick { periodic: false }, ms(t0, 1100))
            .is_empty());
        let out = s.handle(Event::Tick { periodic: false }, ms(t0, 1101));
        assert!(
            matches!(&out[..], [Action::Abort { id: 1, reason, fail_job: None }] if reason.contains("execution.checkpointing.timeout")),
            "{out:?}"
        );
        // Its late acknowledgements change nothing.
        assert!(s.handle(Event::Ack { id: 1 }, ms(t0, 1200)).is_empty());
        // A checkpoint whose metadata is being written does not expire.
        tick(&mut s, ms(t0, 1300));
        for _ in 0..3 {
            s.handle(Event::Ack { id: 2 }, ms(t0, 1301));
        }
        assert!(s
            .handle(Event::Tick { periodic: false }, ms(t0, 9000))
            .is_empty());
    }

    #[test]
    fn failures_beyond_the_tolerance_fail_the_job_and_a_completion_resets_them() {
        let t0 = Instant::now();
        let mut s = Schedule::new(
            Rules {
                tolerable_failures: 1,
                ..rules()
            },
            1,
            t0,
        );
        let decline = |s: &mut Schedule, id: u64, at| {
            s.handle(
                Event::Decline {
                    id,
                    reason: "disk full".into(),
                },
                at,
            )
        };
        tick(&mut s, ms(t0, 100));
        assert!(matches!(
            &decline(&mut s, 1, ms(t0, 110))[..],
            [Action::Abort { fail_job: None, .. }]
        ));
        tick(&mut s, ms(t0, 210));
        complete(&mut s, 2, ms(t0, 220));
        assert_eq!(s.failures(), 0, "a completed checkpoint resets the count");
        tick(&mut s, ms(t0, 320));
        assert!(matches!(
            &decline(&mut s, 3, ms(t0, 330))[..],
            [Action::Abort { fail_job: None, .. }]
        ));
        tick(&mut s, ms(t0, 430));
        let out = decline(&mut s, 4, ms(t0, 440));
        assert!(
            matches!(&out[..], [Action::Abort { id: 4, fail_job: Some(why), .. }] if why.contains("tolerable-failed-checkpoints is 1")),
            "{out:?}"
        );
        // A failed savepoint does not count.
        let mut s = Schedule::new(
            Rules {
                tolerable_failures: 0,
                ..rules()
            },
            1,
            t0,
        );
        s.handle(
            Event::Request {
                kind: BarrierKind::Savepoint,
            },
            t0,
        );
        assert!(matches!(
            &decline(&mut s, 1, t0)[..],
            [Action::Abort { fail_job: None, .. }]
        ));
    }

    #[test]
    fn min_pause_delays_the_next_checkpoint_after_a_completion() {
        let t0 = Instant::now();
        let mut s = Schedule::new(
            Rules {
                min_pause: Duration::from_millis(500),
                ..rules()
            },
            1,
            t0,
        );
        tick(&mut s, ms(t0, 100));
        complete(&mut s, 1, ms(t0, 300));
        // The interval has passed, the pause has not.
        assert!(tick(&mut s, ms(t0, 400)).is_empty());
        assert!(tick(&mut s, ms(t0, 799)).is_empty());
        assert!(matches!(
            tick(&mut s, ms(t0, 800))[..],
            [Action::Trigger { id: 2, .. }]
        ));
    }

    #[test]
    fn max_concurrent_bounds_the_periodic_checkpoints_in_flight() {
        let t0 = Instant::now();
        let mut s = Schedule::new(
            Rules {
                max_concurrent: 2,
                ..rules()
            },
            7,
            t0,
        );
        assert!(matches!(
            tick(&mut s, ms(t0, 100))[..],
            [Action::Trigger { id: 7, .. }]
        ));
        assert!(matches!(
            tick(&mut s, ms(t0, 200))[..],
            [Action::Trigger { id: 8, .. }]
        ));
        assert!(tick(&mut s, ms(t0, 300)).is_empty(), "two are running");
        // A savepoint is not periodic: it starts anyway, and leaves the
        // bound as it was.
        assert!(matches!(
            s.handle(
                Event::Request {
                    kind: BarrierKind::Savepoint
                },
                ms(t0, 310)
            )[..],
            [Action::Trigger {
                id: 9,
                kind: BarrierKind::Savepoint
            }]
        ));
        assert!(tick(&mut s, ms(t0, 400)).is_empty());
        // 8 completes first and subsumes 7.
        let out = complete(&mut s, 8, ms(t0, 450));
        assert_eq!(
            out,
            vec![Action::Subsumed { id: 7 }, Action::Completed { id: 8 }]
        );
        assert!(matches!(
            tick(&mut s, ms(t0, 550))[..],
            [Action::Trigger { id: 10, .. }]
        ));
    }

    #[test]
    fn the_final_checkpoint_follows_the_last_source_and_its_failure_fails_the_job() {
        let t0 = Instant::now();
        let mut s = Schedule::new(rules(), 1, t0);
        assert!(s.handle(Event::SourceFinished, t0).is_empty());
        assert_eq!(
            s.handle(Event::SourceFinished, t0),
            vec![Action::Trigger {
                id: 1,
                kind: BarrierKind::Final
            }]
        );
        // Ending: no periodic checkpoint, no savepoint; a stop waits for the end.
        assert!(tick(&mut s, ms(t0, 500)).is_empty());
        assert!(matches!(
            s.handle(
                Event::Request {
                    kind: BarrierKind::Savepoint
                },
                t0
            )[..],
            [Action::Refuse { .. }]
        ));
        assert_eq!(
            s.handle(
                Event::Request {
                    kind: BarrierKind::StopCheckpoint
                },
                t0
            ),
            vec![Action::AlreadyEnding]
        );
        let out = s.handle(Event::Tick { periodic: false }, ms(t0, 1001));
        assert!(
            matches!(
                &out[..],
                [Action::Abort {
                    id: 1,
                    fail_job: Some(_),
                    ..
                }]
            ),
            "{out:?}"
        );
        // Completed, it finishes the coordinator.
        let mut s = Schedule::new(rules(), 1, t0);
        s.handle(Event::SourceFinished, t0);
        s.handle(Event::SourceFinished, t0);
        assert_eq!(
            complete(&mut s, 1, t0),
            vec![Action::Completed { id: 1 }, Action::Finish]
        );
    }

    #[test]
    fn metadata_that_cannot_be_written_aborts_the_checkpoint() {
        let t0 = Instant::now();
        let mut s = Schedule::new(
            Rules {
                tolerable_failures: 3,
                ..rules()
            },
            1,
            t0,
        );
        tick(&mut s, ms(t0, 100));
        for _ in 0..3 {
            s.handle(Event::Ack { id: 1 }, ms(t0, 110));
        }
        let out = s.handle(
            Event::Written {
                id: 1,
                result: Err("bucket gone".into()),
            },
            ms(t0, 120),
        );
        assert!(
            matches!(
                &out[..],
                [Action::Abort {
                    id: 1,
                    fail_job: None,
                    ..
                }]
            ),
            "{out:?}"
        );
        assert_eq!(s.failures(), 1);
    }
}
