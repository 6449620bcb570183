//! Sending a subtask's output to the subtasks of the next node.

use std::sync::Arc;

use super::channel::Outlet;
use crate::error::Result;
use crate::message::Message;
use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::create_hashes_with_hasher;
use datafusion::physical_expr::PhysicalExpr;

/// Fixed seeds: a key must map to the same key group in every process, so
/// that state split by key group can be restored anywhere.
const HASH_SEEDS: (u64, u64, u64, u64) = (0x5745_4952, 0x6b65_7967, 0x726f_7570, 0x7321_0000);

/// The subtask that owns key group `key_group` (Flink's range assignment).
pub fn subtask_for_key_group(
    key_group: usize,
    max_parallelism: usize,
    parallelism: usize,
) -> usize {
    key_group * parallelism / max_parallelism
}

fn hash_rows(arrays: &[ArrayRef], rows: usize, hashes: &mut Vec<u64>) -> Result<()> {
    hashes.clear();
    hashes.resize(rows, 0);
    let state =
        ahash::RandomState::with_seeds(HASH_SEEDS.0, HASH_SEEDS.1, HASH_SEEDS.2, HASH_SEEDS.3);
    create_hashes_with_hasher(arrays, &state, hashes)?;
    Ok(())
}

/// The key group of each of the `rows` rows of the key columns `keys`: the
/// same groups the hash exchange routed the rows by, so that state can be
/// addressed — and later split — by them. No key columns: group 0.
pub fn key_groups(
    keys: &[ArrayRef],
    rows: usize,
    max_parallelism: usize,
    hashes: &mut Vec<u64>,
) -> Result<Vec<u16>> {
    if keys.is_empty() {
        return Ok(vec![0; rows]);
    }
    hash_rows(keys, rows, hashes)?;
    Ok(hashes
        .iter()
        .map(|h| (*h % max_parallelism as u64) as u16)
        .collect())
}

/// How one output edge distributes batches.
pub enum Route {
    /// Everything to one channel.
    One(Outlet),
    /// Batches round-robin, watermarks and end markers to all.
    RoundRobin { targets: Vec<Outlet>, next: usize },
    /// Rows by key group.
    Hash {
        keys: Vec<Arc<dyn PhysicalExpr>>,
        targets: Vec<Outlet>,
        max_parallelism: usize,
        hashes: Vec<u64>,
    },
}

impl Route {
    fn targets(&self) -> &[Outlet] {
        match self {
            Route::One(s) => std::slice::from_ref(s),
            Route::RoundRobin { targets, .. } | Route::Hash { targets, .. } => targets,
        }
    }

    fn targets_mut(&mut self) -> &mut [Outlet] {
        match self {
            Route::One(s) => std::slice::from_mut(s),
            Route::RoundRobin { targets, .. } | Route::Hash { targets, .. } => targets,
        }
    }

    /// Splits a batch into (target index, rows) pieces.
    fn split(&mut self, batch: RecordBatch) -> Result<Vec<(usize, RecordBatch)>> {
        match self {
            Route::One(_) => Ok(vec![(0, batch)]),
            Route::RoundRobin { targets, next } => {
                let t = *next % targets.len();
                *next = next.wrapping_add(1);
                Ok(vec![(t, batch)])
            }
            Route::Hash {
                keys,
                targets,
                max_parallelism,
                hashes,
            } => {
                let rows = batch.num_rows();
                let parallelism = targets.len();
                if parallelism == 1 {
                    return Ok(vec![(0, batch)]);
                }
                let arrays = keys
                    .iter()
                    .map(|k| k.evaluate(&batch).and_then(|v| v.into_array(rows)))
                    .collect::<datafusion::error::Result<Vec<_>>>()?;
                hash_rows(&arrays, rows, hashes)?;
                let mut per_target: Vec<Vec<u32>> = vec![Vec::new(); parallelism];
                for (row, h) in hashes.iter().enumerate() {
                    let group = (*h % *max_parallelism as u64) as usize;
                    per_target[subtask_for_key_group(group, *max_parallelism, parallelism)]
                        .push(row as u32);
                }
                let mut out = Vec::new();
                for (t, rows_of) in per_target.into_iter().enumerate() {
                    if rows_of.is_empty() {
                        continue;
                    }
                    if rows_of.len() == rows {
                        out.push((t, batch));
                        break;
                    }
                    out.push((t, take_record_batch(&batch, &UInt32Array::from(rows_of))?));
                }
                Ok(out)
            }
        }
    }
}

/// All output edges of a subtask.
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// A router over the given routes (one per downstream edge).
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    /// Sends rows (async side).
    pub async fn send_batch(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        for route in &mut self.routes {
            for (t, piece) in route.split(batch.clone())? {
                route.targets_mut()[t].send(Message::Batch(piece)).await?;
            }
        }
        Ok(())
    }

    /// Sends a watermark or end marker to every downstream subtask.
    pub async fn broadcast(&mut self, message: Message) -> Result<()> {
        for route in &mut self.routes {
            for t in route.targets_mut() {
                t.send(message.clone()).await?;
            }
        }
        Ok(())
    }

    /// Sends rows from a blocking thread.
    pub fn blocking_send_batch(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        for route in &mut self.routes {
            for (t, piece) in route.split(batch.clone())? {
                route.targets_mut()[t].blocking_send(Message::Batch(piece))?;
            }
        }
        Ok(())
    }

    /// Broadcasts from a blocking thread.
    pub fn blocking_broadcast(&mut self, message: Message) -> Result<()> {
        for route in &mut self.routes {
            for t in route.targets_mut() {
                t.blocking_send(message.clone())?;
            }
        }
        Ok(())
    }

    /// Announces barrier `id` to every downstream subtask, after what was
    /// sent so far. Never waits, even when the data lanes are full.
    pub fn announce_barrier(&self, id: u64, kind: crate::message::BarrierKind) -> Result<()> {
        for route in &self.routes {
            for t in route.targets() {
                t.announce(id, kind)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::subtask_for_key_group;

    #[test]
    fn key_groups_are_assigned_by_range() {
        let owners: Vec<usize> = (0..128).map(|g| subtask_for_key_group(g, 128, 3)).collect();
        assert_eq!(owners[0], 0);
        assert_eq!(owners[127], 2);
        assert!(owners.windows(2).all(|w| w[0] <= w[1]));
    }
}
