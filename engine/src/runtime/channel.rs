//! A channel between two subtasks: a bounded data lane (a full lane is
//! backpressure) and an unbounded control lane for checkpoint barriers.
//!
//! A barrier is announced on the control lane with its position in the data
//! lane: the number of messages sent before it. The receiver therefore knows
//! at once which queued messages belong before the barrier, which is what
//! lets an unaligned checkpoint overtake them and store them instead.

use tokio::sync::mpsc::{self, Receiver, Sender, UnboundedReceiver, UnboundedSender};

use crate::error::{EngineError, Result};
use crate::message::{BarrierKind, Message};

/// Barrier `id` lies after the first `position` data messages of the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    /// The checkpoint.
    pub id: u64,
    /// Data messages sent before the barrier.
    pub position: u64,
    /// What the barrier is for; all kinds but periodic checkpoints are
    /// aligned: nothing may be in flight when the last output is committed
    /// or a savepoint is taken.
    pub kind: BarrierKind,
}

/// The sending end.
pub struct Outlet {
    data: Sender<Message>,
    control: UnboundedSender<Announcement>,
    sent: u64,
}

/// The receiving end.
pub struct Inlet {
    /// Batches, watermarks and the end marker.
    pub data: Receiver<Message>,
    /// Barrier announcements.
    pub control: UnboundedReceiver<Announcement>,
}

/// A channel whose data lane holds `capacity` messages.
pub fn channel(capacity: usize) -> (Outlet, Inlet) {
    let (data_tx, data_rx) = mpsc::channel(capacity);
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    (
        Outlet {
            data: data_tx,
            control: control_tx,
            sent: 0,
        },
        Inlet {
            data: data_rx,
            control: control_rx,
        },
    )
}

fn closed() -> EngineError {
    EngineError::Cancelled
}

impl Outlet {
    /// Sends a data message, waiting while the lane is full.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.data.send(message).await.map_err(|_| closed())?;
        self.sent += 1;
        Ok(())
    }

    /// Sends from a blocking thread.
    pub fn blocking_send(&mut self, message: Message) -> Result<()> {
        self.data.blocking_send(message).map_err(|_| closed())?;
        self.sent += 1;
        Ok(())
    }

    /// Announces barrier `id` after everything sent so far; never waits.
    pub fn announce(&self, id: u64, kind: BarrierKind) -> Result<()> {
        self.control
            .send(Announcement {
                id,
                position: self.sent,
                kind,
            })
            .map_err(|_| closed())
    }
}
