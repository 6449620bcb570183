//! The input side of a subtask: several upstream channels read as one
//! stream. The watermark is the minimum over the channels that have not
//! ended; checkpoint barriers are aligned, or overtaken, per [`BarrierMode`].
//!
//! Each channel announces barrier `n` on its control lane with the number of
//! data messages before it (see [`super::channel`]). A channel has *reached*
//! the barrier once that many messages were taken from it.
//!
//! - Aligned: a channel that reached the barrier is held back until all have;
//!   then the subtask snapshots ([`GateEvent::Barrier`]).
//! - At least once: nothing is held back; the snapshot is taken when all
//!   channels reached the barrier, so it may include later rows too.
//! - Unaligned: the snapshot is taken at the first announcement; the
//!   messages each channel still delivers before its barrier are processed
//!   *and* recorded, and handed over with [`GateEvent::InflightDone`] once
//!   every channel reached the barrier. Restoring replays them first.
//! - Unaligned with an aligned timeout: aligned until the timeout, then as
//!   unaligned (held-back channels are released; they have nothing to record).

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::task::Poll;
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;

use super::channel::{Announcement, Inlet};
use crate::config::BarrierMode;
use crate::message::{BarrierKind, Message};

/// What the gate hands to the subtask.
pub enum GateEvent {
    /// Rows of input `.0` (the node's `i`th input in the job graph).
    Batch(usize, RecordBatch),
    /// Every channel of input `.0` ended, and some other input has not.
    InputEnded(usize),
    /// Every channel of input `.0` delivered the end-of-time watermark: no
    /// row of it comes any more (a bounded input read to its end, whose end
    /// marker, with checkpoints, waits for the final checkpoint). Once per
    /// input, before the watermark it lets advance.
    InputFinished(usize),
    /// The combined watermark advanced.
    Watermark(i64),
    /// Take the snapshot of checkpoint `id` now.
    Barrier {
        /// The checkpoint.
        id: u64,
        /// Whether in-flight data is being recorded for it.
        unaligned: bool,
        /// How long input was held back to align.
        alignment: Duration,
        /// For aligned and at-least-once checkpoints: nothing is in flight.
        /// Unaligned ones get it later, with [`GateEvent::InflightDone`].
        complete: bool,
        /// What the barrier is for (forward it as such).
        kind: BarrierKind,
    },
    /// Every channel reached barrier `id`: the messages recorded after its
    /// snapshot, per channel index.
    InflightDone {
        /// The checkpoint.
        id: u64,
        /// What each channel delivered between the snapshot and its barrier.
        recorded: Vec<(usize, Vec<Message>)>,
    },
    /// Every channel ended.
    End,
}

struct Channel {
    inlet: Inlet,
    /// Which input of the node it belongs to.
    input: usize,
    watermark: i64,
    ended: bool,
    /// Data messages taken so far.
    received: u64,
    /// Barriers announced and not yet handled, in order.
    announced: VecDeque<Announcement>,
    /// Held back until the other channels reach the barrier (aligned).
    blocked: bool,
    /// Recording for an unaligned snapshot.
    recording: Option<Vec<Message>>,
}

impl Channel {
    /// Whether the channel delivered everything before barrier `id`.
    fn reached(&self, id: u64) -> bool {
        self.ended
            || self
                .announced
                .front()
                .is_some_and(|a| a.id == id && self.received >= a.position)
    }
}

/// The checkpoint the gate is working on.
struct Current {
    id: u64,
    /// Final checkpoints and savepoints are aligned whatever the mode.
    kind: BarrierKind,
    started: Instant,
    /// Snapshot taken (unaligned): channels record until they reach the barrier.
    snapshotted: bool,
}

/// Merges the channels from the upstream subtasks.
pub struct InputGate {
    channels: Vec<Channel>,
    mode: BarrierMode,
    watermark: i64,
    /// Where the round-robin poll starts, so no channel starves.
    next: usize,
    end_reported: bool,
    current: Option<Current>,
    /// Restored in-flight messages, delivered before anything else.
    replay: VecDeque<(usize, Message)>,
    /// An upstream task stopped without an end marker.
    broken: bool,
    /// Events due before the next message is read.
    queued: VecDeque<GateEvent>,
    /// The inputs reported as finished ([`GateEvent::InputFinished`]).
    finished: Vec<usize>,
}

impl InputGate {
    /// A gate over the channels of a single input.
    pub fn new(inlets: Vec<Inlet>, mode: BarrierMode) -> Self {
        Self::with_inputs(inlets.into_iter().map(|i| (0, i)).collect(), mode)
    }

    /// A gate over channels of several inputs: `(input, channel)`.
    pub fn with_inputs(inlets: Vec<(usize, Inlet)>, mode: BarrierMode) -> Self {
        Self {
            channels: inlets
                .into_iter()
                .map(|(input, inlet)| Channel {
                    inlet,
                    input,
                    watermark: i64::MIN,
                    ended: false,
                    received: 0,
                    announced: VecDeque::new(),
                    blocked: false,
                    recording: None,
                })
                .collect(),
            mode,
            watermark: i64::MIN,
            next: 0,
            end_reported: false,
            current: None,
            replay: VecDeque::new(),
            broken: false,
            queued: VecDeque::new(),
            finished: Vec::new(),
        }
    }

    /// Messages restored from an unaligned checkpoint, per channel, to be
    /// delivered before new input.
    pub fn replay_first(&mut self, recorded: Vec<(usize, Vec<Message>)>) {
        for (channel, messages) in recorded {
            if channel < self.channels.len() {
                self.replay
                    .extend(messages.into_iter().map(|m| (channel, m)));
            }
        }
    }

    /// Whether an upstream task stopped without an end marker: the input
    /// is incomplete, and the subtask must not act as if it had ended.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn combined_watermark(&self) -> i64 {
        self.channels
            .iter()
            .filter(|c| !c.ended)
            .map(|c| c.watermark)
            .min()
            .unwrap_or(i64::MAX)
    }

    fn drain_control(&mut self) {
        for ch in &mut self.channels {
            while let Ok(a) = ch.inlet.control.try_recv() {
                ch.announced.push_back(a);
            }
        }
    }

    /// The barrier bookkeeping after any change; returns an event when one
    /// is due.
    fn check_barriers(&mut self) -> Option<GateEvent> {
        if self.current.is_none() {
            let first = self
                .channels
                .iter()
                .filter_map(|c| c.announced.front())
                .min_by_key(|a| a.id)?;
            self.current = Some(Current {
                id: first.id,
                kind: first.kind,
                started: Instant::now(),
                snapshotted: false,
            });
        }
        let (id, kind, started, snapshotted) = {
            let c = self.current.as_ref()?;
            (c.id, c.kind, c.started, c.snapshotted)
        };
        let mode = if kind.forces_alignment() {
            BarrierMode::Aligned
        } else {
            self.mode
        };
        let all_reached = self.channels.iter().all(|c| c.reached(id));
        if snapshotted {
            // Unaligned: stop recording on channels that reached the barrier.
            if all_reached {
                let recorded = self
                    .channels
                    .iter_mut()
                    .enumerate()
                    .filter_map(|(i, c)| c.recording.take().map(|r| (i, r)))
                    .filter(|(_, r)| !r.is_empty())
                    .collect();
                self.finish_current();
                return Some(GateEvent::InflightDone { id, recorded });
            }
            return None;
        }
        match mode {
            BarrierMode::Aligned | BarrierMode::Unaligned { .. } if all_reached => {
                let alignment = started.elapsed();
                self.finish_current();
                Some(GateEvent::Barrier {
                    id,
                    unaligned: false,
                    alignment,
                    complete: true,
                    kind,
                })
            }
            BarrierMode::AtLeastOnce if all_reached => {
                self.finish_current();
                Some(GateEvent::Barrier {
                    id,
                    unaligned: false,
                    alignment: Duration::ZERO,
                    complete: true,
                    kind,
                })
            }
            BarrierMode::Aligned => {
                for c in &mut self.channels {
                    c.blocked = !c.ended && c.reached(id);
                }
                None
            }
            BarrierMode::AtLeastOnce => None,
            BarrierMode::Unaligned { aligned_timeout } => {
                let go = aligned_timeout.is_none_or(|t| started.elapsed() >= t);
                if !go {
                    for c in &mut self.channels {
                        c.blocked = !c.ended && c.reached(id);
                    }
                    return None;
                }
                let alignment = started.elapsed();
                for c in &mut self.channels {
                    c.blocked = false;
                    if !c.reached(id) {
                        c.recording = Some(Vec::new());
                    }
                }
                if let Some(c) = self.current.as_mut() {
                    c.snapshotted = true;
                }
                Some(GateEvent::Barrier {
                    id,
                    unaligned: true,
                    alignment,
                    complete: false,
                    kind,
                })
            }
        }
    }

    /// Drops the handled barrier from every channel and releases them.
    fn finish_current(&mut self) {
        if let Some(current) = self.current.take() {
            for c in &mut self.channels {
                c.blocked = false;
                if c.announced.front().is_some_and(|a| a.id == current.id) {
                    c.announced.pop_front();
                }
            }
        }
    }

    /// The next event; `None` once the end has been reported, or when an
    /// upstream task stopped without an end marker (see [`InputGate::is_broken`]).
    pub async fn next(&mut self) -> Option<GateEvent> {
        loop {
            if self.broken {
                return None;
            }
            if let Some(e) = self.queued.pop_front() {
                return Some(e);
            }
            if let Some((index, message)) = self.replay.pop_front() {
                if let Some(e) = self.handle(index, message) {
                    return Some(e);
                }
                continue;
            }
            self.drain_control();
            if let Some(e) = self.check_barriers() {
                return Some(e);
            }
            if self.channels.iter().all(|c| c.ended) {
                if self.end_reported {
                    return None;
                }
                self.end_reported = true;
                return Some(GateEvent::End);
            }
            // Wake up for the aligned timeout, if one is running.
            let deadline = match (&self.current, self.mode) {
                (Some(Current { kind, .. }), _) if kind.forces_alignment() => None,
                (
                    Some(Current {
                        started,
                        snapshotted: false,
                        ..
                    }),
                    BarrierMode::Unaligned {
                        aligned_timeout: Some(t),
                    },
                ) => Some(tokio::time::Instant::from_std(*started + t)),
                _ => None,
            };
            let mut sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
            let polled = poll_fn(|cx| {
                let n = self.channels.len();
                for k in 0..n {
                    let i = (self.next + k) % n;
                    let ch = &mut self.channels[i];
                    if let Poll::Ready(Some(a)) = ch.inlet.control.poll_recv(cx) {
                        ch.announced.push_back(a);
                        return Poll::Ready(None);
                    }
                    if ch.ended || ch.blocked {
                        continue;
                    }
                    if let Poll::Ready(m) = ch.inlet.data.poll_recv(cx) {
                        self.next = i + 1;
                        return Poll::Ready(Some((i, m)));
                    }
                }
                if let Some(s) = sleep.as_mut() {
                    if s.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                }
                Poll::Pending
            })
            .await;
            let Some((index, message)) = polled else {
                continue;
            };
            let ch = &mut self.channels[index];
            // An announcement sent before this message must be seen before
            // deciding whether the message lies before its barrier.
            while let Ok(a) = ch.inlet.control.try_recv() {
                ch.announced.push_back(a);
            }
            let Some(message) = message else {
                // The upstream task stopped without an end marker: it failed
                // or was cancelled. This input is not complete.
                self.broken = true;
                return None;
            };
            ch.received += 1;
            if let Some(recording) = ch.recording.as_mut() {
                let before_barrier = ch
                    .announced
                    .front()
                    .is_none_or(|a| ch.received <= a.position);
                if before_barrier && !matches!(message, Message::End) {
                    recording.push(message.clone());
                }
            }
            if let Some(e) = self.handle(index, message) {
                return Some(e);
            }
        }
    }

    fn handle(&mut self, index: usize, message: Message) -> Option<GateEvent> {
        match message {
            Message::Batch(b) => Some(GateEvent::Batch(self.channels[index].input, b)),
            Message::Watermark(w) => {
                let ch = &mut self.channels[index];
                ch.watermark = ch.watermark.max(w);
                let input = ch.input;
                if w == i64::MAX
                    && !self.finished.contains(&input)
                    && self
                        .channels
                        .iter()
                        .filter(|c| c.input == input)
                        .all(|c| c.watermark == i64::MAX)
                {
                    self.finished.push(input);
                    let advanced = self.advance();
                    self.queued.extend(advanced);
                    return Some(GateEvent::InputFinished(input));
                }
                self.advance()
            }
            Message::End => {
                self.channels[index].ended = true;
                if self.channels.iter().all(|c| c.ended) {
                    return None;
                }
                let input = self.channels[index].input;
                let advanced = self.advance();
                if self
                    .channels
                    .iter()
                    .filter(|c| c.input == input)
                    .all(|c| c.ended)
                {
                    // The input's end first: its rows are all in, and the
                    // watermark it no longer holds back comes after.
                    self.queued.extend(advanced);
                    return Some(GateEvent::InputEnded(input));
                }
                advanced
            }
        }
    }

    fn advance(&mut self) -> Option<GateEvent> {
        let combined = self.combined_watermark();
        if combined > self.watermark {
            self.watermark = combined;
            return Some(GateEvent::Watermark(combined));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::runtime::channel::channel;

    fn batch(v: i64) -> Message {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        Message::Batch(
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).unwrap(),
        )
    }

    fn value(e: &GateEvent) -> Option<i64> {
        match e {
            GateEvent::Batch(_, b) => Some(
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .value(0),
            ),
            _ => None,
        }
    }

    #[tokio::test]
    async fn aligned_holds_back_the_channel_that_delivered_the_barrier() {
        let (mut a, ia) = channel(8);
        let (mut b, ib) = channel(8);
        let mut gate = InputGate::new(vec![ia, ib], BarrierMode::Aligned);
        a.send(batch(1)).await.unwrap();
        a.announce(1, BarrierKind::Checkpoint).unwrap();
        a.send(batch(2)).await.unwrap();
        b.send(batch(10)).await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            seen.push(value(&gate.next().await.unwrap()).unwrap());
        }
        seen.sort();
        assert_eq!(seen, [1, 10], "batch 2 is held back");
        b.announce(1, BarrierKind::Checkpoint).unwrap();
        assert!(matches!(
            gate.next().await.unwrap(),
            GateEvent::Barrier {
                id: 1,
                unaligned: false,
                complete: true,
                ..
            }
        ));
        assert_eq!(value(&gate.next().await.unwrap()), Some(2));
    }

    #[tokio::test]
    async fn unaligned_snapshots_at_once_and_records_what_was_before_the_barriers() {
        let (mut a, ia) = channel(8);
        let (mut b, ib) = channel(8);
        let mut gate = InputGate::new(
            vec![ia, ib],
            BarrierMode::Unaligned {
                aligned_timeout: None,
            },
        );
        b.send(batch(10)).await.unwrap();
        b.send(batch(11)).await.unwrap();
        a.announce(1, BarrierKind::Checkpoint).unwrap();
        a.send(batch(2)).await.unwrap();
        b.announce(1, BarrierKind::Checkpoint).unwrap();
        b.send(batch(12)).await.unwrap();
        assert!(matches!(
            gate.next().await.unwrap(),
            GateEvent::Barrier {
                id: 1,
                unaligned: true,
                complete: false,
                ..
            }
        ));
        let mut processed = Vec::new();
        let recorded = loop {
            match gate.next().await.unwrap() {
                GateEvent::InflightDone { id: 1, recorded } => break recorded,
                e => processed.push(value(&e).unwrap()),
            }
        };
        let recorded: Vec<(usize, Vec<i64>)> = recorded
            .into_iter()
            .map(|(c, ms)| {
                (
                    c,
                    ms.iter()
                        .map(|m| match m {
                            Message::Batch(b) => b
                                .column(0)
                                .as_any()
                                .downcast_ref::<Int64Array>()
                                .unwrap()
                                .value(0),
                            _ => -1,
                        })
                        .collect(),
                )
            })
            .collect();
        assert_eq!(recorded, vec![(1, vec![10, 11])]);
        assert!(processed.contains(&10) && processed.contains(&11));
    }

    #[tokio::test]
    async fn aligned_timeout_switches_to_unaligned() {
        let (mut a, ia) = channel(8);
        let (mut b, ib) = channel(8);
        let mut gate = InputGate::new(
            vec![ia, ib],
            BarrierMode::Unaligned {
                aligned_timeout: Some(Duration::from_millis(50)),
            },
        );
        a.announce(1, BarrierKind::Checkpoint).unwrap();
        a.send(batch(2)).await.unwrap();
        b.send(batch(10)).await.unwrap();
        // Aligned first: `a` is held back, `b` goes on.
        assert_eq!(value(&gate.next().await.unwrap()), Some(10));
        let started = Instant::now();
        match gate.next().await.unwrap() {
            GateEvent::Barrier {
                id: 1,
                unaligned: true,
                alignment,
                complete: false,
                ..
            } => assert!(alignment >= Duration::from_millis(50), "{alignment:?}"),
            _ => panic!("expected the switch to unaligned"),
        }
        assert!(started.elapsed() >= Duration::from_millis(40));
        // After the switch, what `b` delivers before its barrier is recorded.
        b.send(batch(11)).await.unwrap();
        b.announce(1, BarrierKind::Checkpoint).unwrap();
        let recorded = loop {
            match gate.next().await.unwrap() {
                GateEvent::InflightDone { id: 1, recorded } => break recorded,
                GateEvent::Batch(..) => {}
                _ => panic!("unexpected event"),
            }
        };
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].0, 1);
        assert_eq!(recorded[0].1.len(), 1);
    }

    #[tokio::test]
    async fn at_least_once_holds_nothing_back() {
        let (mut a, ia) = channel(8);
        let (mut b, ib) = channel(8);
        let mut gate = InputGate::new(vec![ia, ib], BarrierMode::AtLeastOnce);
        a.announce(1, BarrierKind::Checkpoint).unwrap();
        a.send(batch(2)).await.unwrap();
        // `a` passed its barrier, `b` has not: `a`'s later rows still flow.
        assert_eq!(value(&gate.next().await.unwrap()), Some(2));
        b.send(batch(10)).await.unwrap();
        b.announce(1, BarrierKind::Checkpoint).unwrap();
        assert_eq!(value(&gate.next().await.unwrap()), Some(10));
        assert!(matches!(
            gate.next().await.unwrap(),
            GateEvent::Barrier {
                id: 1,
                unaligned: false,
                complete: true,
                ..
            }
        ));
    }

    /// Two inputs (two channels for input 0, one for input 1): batches
    /// arrive tagged with their input, the watermark is the minimum over
    /// the inputs that have not ended, a barrier aligns across both, and an
    /// input that ends first stops holding the watermark back.
    #[tokio::test]
    async fn two_inputs_are_tagged_aligned_and_share_the_minimum_watermark() {
        let (mut a0, ia0) = channel(8);
        let (mut a1, ia1) = channel(8);
        let (mut b, ib) = channel(8);
        let mut gate =
            InputGate::with_inputs(vec![(0, ia0), (0, ia1), (1, ib)], BarrierMode::Aligned);
        a0.send(Message::Watermark(100)).await.unwrap();
        a1.send(Message::Watermark(50)).await.unwrap();
        b.send(batch(7)).await.unwrap();
        assert!(matches!(gate.next().await.unwrap(), GateEvent::Batch(1, _)));
        // Input 1 has no watermark yet: nothing advances.
        b.send(Message::Watermark(80)).await.unwrap();
        match gate.next().await.unwrap() {
            GateEvent::Watermark(w) => assert_eq!(w, 50, "minimum over the inputs"),
            _ => panic!("expected a watermark"),
        }
        // A barrier on input 0 only: input 0's channels are held back
        // once they reach it, input 1 keeps flowing until it does too.
        a0.announce(1, BarrierKind::Checkpoint).unwrap();
        a1.announce(1, BarrierKind::Checkpoint).unwrap();
        a0.send(batch(1)).await.unwrap();
        b.send(batch(8)).await.unwrap();
        match gate.next().await.unwrap() {
            GateEvent::Batch(1, b) => assert_eq!(value(&GateEvent::Batch(1, b)), Some(8)),
            _ => panic!("input 1 flows while input 0 is aligned"),
        }
        b.announce(1, BarrierKind::Checkpoint).unwrap();
        assert!(matches!(
            gate.next().await.unwrap(),
            GateEvent::Barrier {
                id: 1,
                complete: true,
                ..
            }
        ));
        assert!(matches!(gate.next().await.unwrap(), GateEvent::Batch(0, _)));
        // Input 1 ends: it no longer holds the watermark at 80.
        a1.send(Message::Watermark(120)).await.unwrap();
        match gate.next().await.unwrap() {
            GateEvent::Watermark(w) => assert_eq!(w, 80),
            _ => panic!("expected a watermark"),
        }
        b.send(Message::End).await.unwrap();
        assert!(matches!(
            gate.next().await.unwrap(),
            GateEvent::InputEnded(1)
        ));
        match gate.next().await.unwrap() {
            GateEvent::Watermark(w) => assert_eq!(w, 100, "input 0's minimum alone"),
            _ => panic!("expected a watermark"),
        }
        a0.send(Message::End).await.unwrap();
        match gate.next().await.unwrap() {
            GateEvent::Watermark(w) => assert_eq!(w, 120, "the last open channel's"),
            _ => panic!("expected a watermark"),
        }
        a1.send(Message::End).await.unwrap();
        assert!(matches!(gate.next().await.unwrap(), GateEvent::End));
    }
}
