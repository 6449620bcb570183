//! The input side of an operator subtask: several upstream channels read as
//! one stream, with the watermark being the minimum over the channels that
//! have not ended.

use std::future::poll_fn;
use std::task::Poll;

use tokio::sync::mpsc::Receiver;

use crate::message::Message;

/// What the gate hands to the operator.
pub enum GateEvent {
    /// Rows from some channel.
    Batch(datafusion::arrow::record_batch::RecordBatch),
    /// The combined watermark advanced.
    Watermark(i64),
    /// Every channel delivered barrier `n` (aligned).
    Barrier(u64),
    /// Every channel ended.
    End,
}

struct Channel {
    receiver: Receiver<Message>,
    watermark: i64,
    ended: bool,
    /// Held back until the other channels deliver the same barrier.
    blocked_on: Option<u64>,
}

/// Merges the channels from the upstream subtasks.
pub struct InputGate {
    channels: Vec<Channel>,
    watermark: i64,
    /// Where the round-robin poll starts, so no channel starves.
    next: usize,
    end_reported: bool,
}

impl InputGate {
    /// A gate over these channels.
    pub fn new(receivers: Vec<Receiver<Message>>) -> Self {
        Self {
            channels: receivers
                .into_iter()
                .map(|receiver| Channel {
                    receiver,
                    watermark: i64::MIN,
                    ended: false,
                    blocked_on: None,
                })
                .collect(),
            watermark: i64::MIN,
            next: 0,
            end_reported: false,
        }
    }

    fn combined_watermark(&self) -> i64 {
        self.channels
            .iter()
            .filter(|c| !c.ended)
            .map(|c| c.watermark)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The next event; `None` once the end has been reported.
    pub async fn next(&mut self) -> Option<GateEvent> {
        loop {
            if self.channels.iter().all(|c| c.ended) {
                if self.end_reported {
                    return None;
                }
                self.end_reported = true;
                return Some(GateEvent::End);
            }
            let (index, message) = poll_fn(|cx| {
                let n = self.channels.len();
                for k in 0..n {
                    let i = (self.next + k) % n;
                    let ch = &mut self.channels[i];
                    if ch.ended || ch.blocked_on.is_some() {
                        continue;
                    }
                    if let Poll::Ready(m) = ch.receiver.poll_recv(cx) {
                        self.next = i + 1;
                        return Poll::Ready((i, m));
                    }
                }
                Poll::Pending
            })
            .await;
            match message {
                Some(Message::Batch(b)) => return Some(GateEvent::Batch(b)),
                Some(Message::Watermark(w)) => {
                    let ch = &mut self.channels[index];
                    ch.watermark = ch.watermark.max(w);
                    if let Some(e) = self.advance() {
                        return Some(e);
                    }
                }
                Some(Message::Barrier(n)) => {
                    self.channels[index].blocked_on = Some(n);
                    if self
                        .channels
                        .iter()
                        .all(|c| c.ended || c.blocked_on == Some(n))
                    {
                        self.channels.iter_mut().for_each(|c| c.blocked_on = None);
                        return Some(GateEvent::Barrier(n));
                    }
                }
                Some(Message::End) | None => {
                    self.channels[index].ended = true;
                    if self.channels.iter().all(|c| c.ended) {
                        continue;
                    }
                    if let Some(e) = self.advance() {
                        return Some(e);
                    }
                }
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
