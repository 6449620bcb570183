//! Rescaling the position of a generator whose subtask `s` of `p` produces
//! the indices `s, s + p, s + 2p, …` (`nexmark` events, `datagen` rows).
//!
//! Each subtask's position is the next index it would produce, so what an
//! earlier run produced is, per residue class, everything below a
//! threshold. A restore at another parallelism hands every new subtask
//! those thresholds ([`Produced`]); it walks its own class and skips what is
//! below them. Because the conditions are thresholds, a run restored from a
//! run that was itself restored folds both into one table (over the least
//! common multiple of the two parallelisms).

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// What an earlier run produced: index `i` was produced when
/// `i < next[i % step]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Produced {
    step: u64,
    next: Vec<u64>,
}

/// The largest table [`Produced`] keeps (the least common multiple of the
/// parallelisms a job has been restored through).
const MAX_STEP: u64 = 1 << 16;

impl Produced {
    /// Whether index `i` was produced already.
    #[inline]
    pub fn contains(&self, i: u64) -> bool {
        self.step > 0 && i < self.next[(i % self.step) as usize]
    }

    /// The first index at or above which nothing was produced.
    pub fn end(&self) -> u64 {
        self.next.iter().copied().max().unwrap_or(0)
    }

    /// Reads the `produced` field of a position.
    pub fn from_position(position: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(position.get("produced")?.clone()).ok()
    }

    fn merge(&self, other: &Produced) -> Result<Produced> {
        if self.step == 0 {
            return Ok(other.clone());
        }
        let step = lcm(self.step, other.step);
        if step > MAX_STEP {
            return Err(EngineError::Config(format!(
                "the generator's position cannot be redistributed: parallelisms {} and {} have too large a common multiple",
                self.step, other.step
            )));
        }
        let next = (0..step)
            .map(|r| self.next[(r % self.step) as usize].max(other.next[(r % other.step) as usize]))
            .collect();
        Ok(Produced { step, next })
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    a / gcd(a, b) * b
}

/// The position of subtask `subtask` (of `parallelism`) from the positions
/// of an earlier run's subtasks; `key` names the next index in them.
pub fn redistribute(
    old: &[Option<serde_json::Value>],
    key: &str,
    parallelism: usize,
    subtask: usize,
) -> Result<Option<serde_json::Value>> {
    let step = old.len() as u64;
    let mut next = Vec::with_capacity(old.len());
    let mut produced = Produced::default();
    for (s, position) in old.iter().enumerate() {
        // A subtask that recorded nothing produced nothing: its class starts
        // at its own index.
        let n = position
            .as_ref()
            .and_then(|p| p.get(key))
            .and_then(|v| v.as_u64())
            .unwrap_or(s as u64);
        next.push(n);
        if let Some(earlier) = position.as_ref().and_then(Produced::from_position) {
            produced = produced.merge(&earlier)?;
        }
    }
    let produced = produced.merge(&Produced { step, next })?;
    if subtask >= parallelism {
        return Err(EngineError::Internal(format!(
            "subtask {subtask} of {parallelism}"
        )));
    }
    Ok(Some(serde_json::json!({
        key: subtask as u64,
        "produced": produced,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates generators: `run(p, start, budget)` produces, per subtask,
    /// `budget[s]` indices from its position, skipping what was produced.
    fn run(
        positions: &[Option<serde_json::Value>],
        budget: &[usize],
        out: &mut Vec<u64>,
        limit: u64,
    ) -> Vec<Option<serde_json::Value>> {
        let p = positions.len() as u64;
        positions
            .iter()
            .enumerate()
            .map(|(s, pos)| {
                let mut next = pos
                    .as_ref()
                    .and_then(|v| v["next"].as_u64())
                    .unwrap_or(s as u64);
                let earlier = pos.as_ref().and_then(Produced::from_position);
                let mut made = 0;
                while made < budget[s] && next < limit {
                    if !earlier.as_ref().is_some_and(|e| e.contains(next)) {
                        out.push(next);
                        made += 1;
                    }
                    next += p;
                }
                let mut v = serde_json::json!({ "next": next });
                if let Some(e) = earlier {
                    v["produced"] = serde_json::to_value(e).unwrap();
                }
                Some(v)
            })
            .collect()
    }

    #[test]
    fn every_index_is_produced_once_across_rescales() {
        let limit = 1000;
        let mut out = Vec::new();
        let mut positions: Vec<Option<serde_json::Value>> = vec![None, None];
        positions = run(&positions, &[37, 80], &mut out, limit);
        for (p, budget) in [(3usize, 41usize), (1, 55), (4, 23), (2, 10_000)] {
            positions = (0..p)
                .map(|s| redistribute(&positions, "next", p, s).unwrap())
                .collect();
            positions = run(&positions, &vec![budget; p], &mut out, limit);
        }
        out.sort_unstable();
        assert_eq!(out, (0..limit).collect::<Vec<_>>());
    }
}
