//! Operator (non-keyed) state: lists that belong to a subtask, such as a
//! source's positions, and how they are redistributed when a job is
//! restored with another parallelism.

use std::marker::PhantomData;

use crate::codec::{get_bytes, put_bytes, StateCodec};
use crate::error::{Result, StateError};

/// How a list's elements are spread over the subtasks on restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redistribution {
    /// The elements of all old subtasks, concatenated in subtask order, are
    /// split into contiguous, evenly sized parts (Flink's `getListState`).
    SplitEvenly,
    /// Every new subtask gets every element (Flink's `getUnionListState`).
    Union,
}

/// An operator list state's elements, as snapshotted by one subtask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorStateSnapshot {
    /// The state's name.
    pub name: String,
    /// How it is redistributed.
    pub mode: Redistribution,
    /// The encoded elements.
    pub items: Vec<Vec<u8>>,
}

impl StateCodec for OperatorStateSnapshot {
    fn encode(&self, out: &mut Vec<u8>) {
        self.name.encode(out);
        out.push(match self.mode {
            Redistribution::SplitEvenly => 0,
            Redistribution::Union => 1,
        });
        crate::codec::put_varint(out, self.items.len() as u64);
        for item in &self.items {
            put_bytes(out, item);
        }
    }

    fn decode(input: &mut &[u8]) -> Result<Self> {
        let name = String::decode(input)?;
        let mode = match u8::decode(input)? {
            0 => Redistribution::SplitEvenly,
            1 => Redistribution::Union,
            m => return Err(StateError::Corrupt(format!("operator state mode {m}"))),
        };
        let n = crate::codec::get_varint(input)?;
        let mut items = Vec::new();
        for _ in 0..n {
            items.push(get_bytes(input)?.to_vec());
        }
        Ok(Self { name, mode, items })
    }
}

/// A list kept by one operator subtask.
///
/// ```
/// use weir_state::{OperatorListState, Redistribution, redistribute};
/// let mut a = OperatorListState::<u64>::new("offsets", Redistribution::SplitEvenly);
/// a.add(1);
/// a.add(2);
/// a.add(3);
/// let b = OperatorListState::<u64>::new("offsets", Redistribution::SplitEvenly);
/// // Two subtasks become three: the three elements are split evenly.
/// let parts = redistribute(&[vec![a.snapshot()], vec![b.snapshot()]], 3);
/// let restored: Vec<Vec<u64>> = parts
///     .iter()
///     .map(|p| OperatorListState::<u64>::restore(&p[0]).unwrap().get().to_vec())
///     .collect();
/// assert_eq!(restored, vec![vec![1], vec![2], vec![3]]);
/// ```
pub struct OperatorListState<T> {
    name: String,
    mode: Redistribution,
    items: Vec<T>,
    _t: PhantomData<T>,
}

impl<T: StateCodec> OperatorListState<T> {
    /// An empty list.
    pub fn new(name: impl Into<String>, mode: Redistribution) -> Self {
        Self {
            name: name.into(),
            mode,
            items: Vec::new(),
            _t: PhantomData,
        }
    }

    /// The elements.
    pub fn get(&self) -> &[T] {
        &self.items
    }

    /// Appends an element.
    pub fn add(&mut self, item: T) {
        self.items.push(item);
    }

    /// Replaces the elements.
    pub fn update(&mut self, items: Vec<T>) {
        self.items = items;
    }

    /// Removes every element.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// The list in its stored form.
    pub fn snapshot(&self) -> OperatorStateSnapshot {
        OperatorStateSnapshot {
            name: self.name.clone(),
            mode: self.mode,
            items: self.items.iter().map(StateCodec::to_bytes).collect(),
        }
    }

    /// The list from a (redistributed) snapshot.
    pub fn restore(snapshot: &OperatorStateSnapshot) -> Result<Self> {
        Ok(Self {
            name: snapshot.name.clone(),
            mode: snapshot.mode,
            items: snapshot
                .items
                .iter()
                .map(|b| T::from_bytes(b))
                .collect::<Result<_>>()?,
            _t: PhantomData,
        })
    }
}

/// Spreads the operator states of the old subtasks (`old[i]` holds subtask
/// i's lists) over `new_parallelism` subtasks, by each list's
/// [`Redistribution`]. Every new subtask gets every list name, possibly empty.
pub fn redistribute(
    old: &[Vec<OperatorStateSnapshot>],
    new_parallelism: usize,
) -> Vec<Vec<OperatorStateSnapshot>> {
    let mut names: Vec<(String, Redistribution)> = Vec::new();
    for s in old.iter().flatten() {
        if !names.iter().any(|(n, _)| *n == s.name) {
            names.push((s.name.clone(), s.mode));
        }
    }
    let mut out = vec![Vec::new(); new_parallelism];
    for (name, mode) in names {
        let all: Vec<Vec<u8>> = old
            .iter()
            .flatten()
            .filter(|s| s.name == name)
            .flat_map(|s| s.items.iter().cloned())
            .collect();
        for (i, target) in out.iter_mut().enumerate() {
            let items = match mode {
                Redistribution::Union => all.clone(),
                Redistribution::SplitEvenly => {
                    let start = i * all.len() / new_parallelism;
                    let end = (i + 1) * all.len() / new_parallelism;
                    all[start..end].to_vec()
                }
            };
            target.push(OperatorStateSnapshot {
                name: name.clone(),
                mode,
                items,
            });
        }
    }
    out
}
