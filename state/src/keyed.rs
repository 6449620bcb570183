//! Keyed state primitives, scoped to the current key and a namespace.
//!
//! A [`KeyedState`] wraps one subtask's [`StateBackend`] and knows the key
//! of the record being processed. Each primitive is a small handle created
//! from it once (registering its state) and then used with it for every
//! record:
//!
//! ```
//! use std::sync::Arc;
//! use weir_state::{HashMapBackend, KeyedState, SystemClock};
//!
//! let backend = Box::new(HashMapBackend::new(Arc::new(SystemClock)));
//! let mut state = KeyedState::new(backend, 128);
//! let count = state.value_state::<u64>("count", None).unwrap();
//! for user in ["ann", "bob", "ann"] {
//!     state.set_current_key(&user.to_string());
//!     let n = count.value(&mut state).unwrap().unwrap_or(0);
//!     count.update(&mut state, &(n + 1)).unwrap();
//! }
//! state.set_current_key(&"ann".to_string());
//! assert_eq!(count.value(&mut state).unwrap(), Some(2));
//! ```
//!
//! A namespace (for windows: the window) splits a key's state further; set
//! it on the handle with `set_namespace`. Handles are cheap to clone.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::backend::{Scan, StateBackend, StateDescriptor, StateId, StateKind};
use crate::codec::StateCodec;
use crate::error::{Result, StateError};
use crate::key::{address, address_prefix_into, key_group_for_bytes, prefix_end, KeyGroupRange};
use crate::ttl::{unwrap_stamp, wrap_stamp, StateTtlConfig, StateVisibility, UpdateType};

/// One subtask's keyed state with the current key.
pub struct KeyedState {
    backend: Box<dyn StateBackend>,
    max_parallelism: usize,
    group: u16,
    key: Vec<u8>,
    has_key: bool,
    /// Where incremental TTL clean-up of each state continues.
    cleanup_cursor: HashMap<StateId, Vec<u8>>,
}

impl KeyedState {
    /// Keyed state over `backend` for a job with `max_parallelism` key groups.
    pub fn new(backend: Box<dyn StateBackend>, max_parallelism: usize) -> Self {
        Self {
            backend,
            max_parallelism,
            group: 0,
            key: Vec::new(),
            has_key: false,
            cleanup_cursor: HashMap::new(),
        }
    }

    /// Makes `key` the current key; its key group is the stable hash of its
    /// encoding.
    pub fn set_current_key<K: StateCodec>(&mut self, key: &K) {
        self.key.clear();
        key.encode(&mut self.key);
        self.group = key_group_for_bytes(&self.key, self.max_parallelism);
        self.has_key = true;
    }

    /// Makes an already encoded key current, in a key group the caller
    /// computed (an operator that routes rows by its own hash).
    pub fn set_current_key_bytes(&mut self, group: u16, key: &[u8]) {
        self.key.clear();
        self.key.extend_from_slice(key);
        self.group = group;
        self.has_key = true;
    }

    /// The key group of the current key.
    pub fn current_key_group(&self) -> u16 {
        self.group
    }

    /// The backend underneath, for snapshots, metrics and raw access.
    pub fn backend(&mut self) -> &mut dyn StateBackend {
        self.backend.as_mut()
    }

    /// Gives the backend back.
    pub fn into_backend(self) -> Box<dyn StateBackend> {
        self.backend
    }

    /// A value per key and namespace.
    pub fn value_state<T: StateCodec>(
        &mut self,
        name: &str,
        ttl: Option<StateTtlConfig>,
    ) -> Result<ValueState<T>> {
        Ok(ValueState {
            handle: self.handle(name, StateKind::Value, ttl)?,
            _t: PhantomData,
        })
    }

    /// A list per key and namespace.
    pub fn list_state<T: StateCodec>(
        &mut self,
        name: &str,
        ttl: Option<StateTtlConfig>,
    ) -> Result<ListState<T>> {
        Ok(ListState {
            handle: self.handle(name, StateKind::List, ttl)?,
            _t: PhantomData,
        })
    }

    /// A map per key and namespace.
    pub fn map_state<K: StateCodec, V: StateCodec>(
        &mut self,
        name: &str,
        ttl: Option<StateTtlConfig>,
    ) -> Result<MapState<K, V>> {
        Ok(MapState {
            handle: self.handle(name, StateKind::Map, ttl)?,
            _t: PhantomData,
        })
    }

    /// A value folded with `reduce` as values are added.
    pub fn reducing_state<T: StateCodec>(
        &mut self,
        name: &str,
        ttl: Option<StateTtlConfig>,
        reduce: impl Fn(T, T) -> T + Send + Sync + 'static,
    ) -> Result<ReducingState<T>> {
        Ok(ReducingState {
            handle: self.handle(name, StateKind::Reducing, ttl)?,
            reduce: Arc::new(reduce),
        })
    }

    /// An accumulator of `function`, fed with values of type `IN`.
    pub fn aggregating_state<IN, OUT, F>(
        &mut self,
        name: &str,
        ttl: Option<StateTtlConfig>,
        function: F,
    ) -> Result<AggregatingState<IN, OUT>>
    where
        F: AggregateFunction<IN, OUT> + 'static,
    {
        Ok(AggregatingState {
            handle: self.handle(name, StateKind::Aggregating, ttl)?,
            function: Arc::new(function),
        })
    }

    fn handle(
        &mut self,
        name: &str,
        kind: StateKind,
        ttl: Option<StateTtlConfig>,
    ) -> Result<Handle> {
        let mut descriptor = StateDescriptor::new(name, kind);
        descriptor.ttl = ttl.clone();
        let id = self.backend.register(&descriptor)?;
        Ok(Handle {
            id,
            ttl,
            namespace: Vec::new(),
        })
    }

    fn prefix(&self, h: &Handle) -> Result<Vec<u8>> {
        if !self.has_key {
            return Err(StateError::Internal(
                "keyed state used before a current key was set".into(),
            ));
        }
        let mut p = Vec::with_capacity(self.key.len() + h.namespace.len() + 4);
        address_prefix_into(&mut p, self.group, &self.key, &h.namespace);
        Ok(p)
    }

    /// Reads a stored value, applying TTL: expired values are dropped (or
    /// returned, under `ReturnExpiredIfNotCleanedUp`), and read access
    /// refreshes the stamp under `OnReadAndWrite`.
    fn read(&mut self, h: &Handle, address: &[u8]) -> Result<Option<Vec<u8>>> {
        let stored = self.backend.get(h.id, address)?;
        self.after_access(h)?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        self.unstamp(h, address.to_vec(), stored)
    }

    fn unstamp(
        &mut self,
        h: &Handle,
        address: Vec<u8>,
        stored: Vec<u8>,
    ) -> Result<Option<Vec<u8>>> {
        let Some(ttl) = &h.ttl else {
            return Ok(Some(stored));
        };
        let now = self.backend.now_ms();
        let (stamp, value) = unwrap_stamp(&stored)
            .ok_or_else(|| StateError::Corrupt("TTL value without its time stamp".into()))?;
        if ttl.expired(stamp, now) {
            if ttl.visibility == StateVisibility::NeverReturnExpired {
                self.backend.write(h.id, vec![(address, None)])?;
                return Ok(None);
            }
            return Ok(Some(value.to_vec()));
        }
        if ttl.update_type == UpdateType::OnReadAndWrite {
            let value = value.to_vec();
            self.backend
                .write(h.id, vec![(address, Some(wrap_stamp(now, &value)))])?;
            return Ok(Some(value));
        }
        Ok(Some(value.to_vec()))
    }

    fn stamp(&self, h: &Handle, value: Vec<u8>) -> Vec<u8> {
        match &h.ttl {
            Some(_) => wrap_stamp(self.backend.now_ms(), &value),
            None => value,
        }
    }

    fn put(&mut self, h: &Handle, address: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let stored = self.stamp(h, value);
        self.backend.write(h.id, vec![(address, Some(stored))])?;
        self.after_access(h)
    }

    /// Scans every entry under `prefix` (after the prefix itself), applying
    /// TTL; returns (suffix, value) pairs.
    fn scan_prefix(&mut self, h: &Handle, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let end = prefix_end(prefix);
        let mut found = Vec::new();
        self.backend
            .scan(h.id, prefix, end.as_deref(), &mut |k, v| {
                found.push((k.to_vec(), v.to_vec()));
                Ok(Scan::Continue)
            })?;
        self.after_access(h)?;
        let mut out = Vec::with_capacity(found.len());
        for (k, v) in found {
            if k.len() == prefix.len() {
                continue;
            }
            if let Some(v) = self.unstamp(h, k.clone(), v)? {
                out.push((k[prefix.len()..].to_vec(), v));
            }
        }
        Ok(out)
    }

    fn clear_prefix(&mut self, h: &Handle, prefix: &[u8]) -> Result<()> {
        let end = prefix_end(prefix);
        self.backend.delete_range(h.id, prefix, end.as_deref())
    }

    /// Incremental TTL clean-up: look at a few more entries of the state,
    /// continuing where the last access stopped, and drop expired ones.
    fn after_access(&mut self, h: &Handle) -> Result<()> {
        let Some(ttl) = &h.ttl else {
            return Ok(());
        };
        if ttl.cleanup_incremental == 0 {
            return Ok(());
        }
        let now = self.backend.now_ms();
        let start = self.cleanup_cursor.remove(&h.id).unwrap_or_default();
        let mut seen = 0usize;
        let mut expired = Vec::new();
        let mut last = None;
        self.backend.scan(h.id, &start, None, &mut |k, v| {
            if seen == ttl.cleanup_incremental {
                return Ok(Scan::Stop);
            }
            seen += 1;
            if unwrap_stamp(v).is_none_or(|(stamp, _)| ttl.expired(stamp, now)) {
                expired.push((k.to_vec(), None));
            }
            last = Some(k.to_vec());
            Ok(Scan::Continue)
        })?;
        // Past the end: start over next time.
        let next = match (seen == ttl.cleanup_incremental, last) {
            (true, Some(mut k)) => {
                k.push(0);
                k
            }
            _ => Vec::new(),
        };
        self.cleanup_cursor.insert(h.id, next);
        if !expired.is_empty() {
            self.backend.write(h.id, expired)?;
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Handle {
    id: StateId,
    ttl: Option<StateTtlConfig>,
    namespace: Vec<u8>,
}

macro_rules! namespaced {
    ($t:ident $(<$($p:ident),*>)?) => {
        impl$(<$($p),*>)? $t$(<$($p),*>)? {
            /// Scopes the handle to namespace `ns` (for example a window).
            pub fn set_namespace<N: StateCodec>(&mut self, ns: &N) {
                self.handle.namespace.clear();
                ns.encode(&mut self.handle.namespace);
            }

            /// Back to the default (empty) namespace.
            pub fn clear_namespace(&mut self) {
                self.handle.namespace.clear();
            }
        }
    };
}

/// One value per key and namespace (Flink's `ValueState`).
#[derive(Clone)]
pub struct ValueState<T> {
    handle: Handle,
    _t: PhantomData<fn() -> T>,
}
namespaced!(ValueState<T>);

impl<T: StateCodec> ValueState<T> {
    /// The current key's value.
    pub fn value(&self, s: &mut KeyedState) -> Result<Option<T>> {
        let a = s.prefix(&self.handle)?;
        s.read(&self.handle, &a)?
            .map(|b| T::from_bytes(&b))
            .transpose()
    }

    /// Sets the current key's value.
    pub fn update(&self, s: &mut KeyedState, value: &T) -> Result<()> {
        let a = s.prefix(&self.handle)?;
        s.put(&self.handle, a, value.to_bytes())
    }

    /// Removes the current key's value.
    pub fn clear(&self, s: &mut KeyedState) -> Result<()> {
        let a = s.prefix(&self.handle)?;
        s.backend.write(self.handle.id, vec![(a, None)])
    }
}

/// A list per key and namespace (Flink's `ListState`). Each element is an
/// entry of its own, so appending does not rewrite the list.
#[derive(Clone)]
pub struct ListState<T> {
    handle: Handle,
    _t: PhantomData<fn() -> T>,
}
namespaced!(ListState<T>);

impl<T: StateCodec> ListState<T> {
    /// The current key's list (empty when there is none).
    pub fn get(&self, s: &mut KeyedState) -> Result<Vec<T>> {
        let p = s.prefix(&self.handle)?;
        s.scan_prefix(&self.handle, &p)?
            .into_iter()
            .map(|(_, v)| T::from_bytes(&v))
            .collect()
    }

    /// Appends one element.
    pub fn add(&self, s: &mut KeyedState, value: &T) -> Result<()> {
        self.add_all(s, std::slice::from_ref(value))
    }

    /// Appends elements in one write.
    pub fn add_all(&self, s: &mut KeyedState, values: &[T]) -> Result<()> {
        let p = s.prefix(&self.handle)?;
        // The entry at the prefix itself holds the next sequence number.
        let next = match s.backend.get(self.handle.id, &p)? {
            Some(b) => match &self.handle.ttl {
                Some(_) => match unwrap_stamp(&b) {
                    Some((_, v)) => u64::from_bytes(v)?,
                    None => 0,
                },
                None => u64::from_bytes(&b)?,
            },
            None => 0,
        };
        let mut changes = Vec::with_capacity(values.len() + 1);
        for (i, v) in values.iter().enumerate() {
            let mut a = p.clone();
            a.extend_from_slice(&(next + i as u64).to_be_bytes());
            changes.push((a, Some(s.stamp(&self.handle, v.to_bytes()))));
        }
        let meta = s.stamp(&self.handle, (next + values.len() as u64).to_bytes());
        changes.push((p, Some(meta)));
        s.backend.write(self.handle.id, changes)?;
        s.after_access(&self.handle)
    }

    /// Replaces the list.
    pub fn update(&self, s: &mut KeyedState, values: &[T]) -> Result<()> {
        self.clear(s)?;
        self.add_all(s, values)
    }

    /// Removes the list.
    pub fn clear(&self, s: &mut KeyedState) -> Result<()> {
        let p = s.prefix(&self.handle)?;
        s.clear_prefix(&self.handle, &p)
    }
}

/// A map per key and namespace (Flink's `MapState`). Iteration is in the
/// order of the encoded map keys.
#[derive(Clone)]
pub struct MapState<K, V> {
    handle: Handle,
    _t: PhantomData<fn() -> (K, V)>,
}
namespaced!(MapState<K, V>);

impl<K: StateCodec, V: StateCodec> MapState<K, V> {
    fn entry_address(&self, s: &KeyedState, key: &K) -> Result<Vec<u8>> {
        let mut a = s.prefix(&self.handle)?;
        key.encode(&mut a);
        Ok(a)
    }

    /// The value under `key`.
    pub fn get(&self, s: &mut KeyedState, key: &K) -> Result<Option<V>> {
        let a = self.entry_address(s, key)?;
        s.read(&self.handle, &a)?
            .map(|b| V::from_bytes(&b))
            .transpose()
    }

    /// Whether `key` is present.
    pub fn contains(&self, s: &mut KeyedState, key: &K) -> Result<bool> {
        Ok(self.get(s, key)?.is_some())
    }

    /// Puts `value` under `key`.
    pub fn put(&self, s: &mut KeyedState, key: &K, value: &V) -> Result<()> {
        let a = self.entry_address(s, key)?;
        s.put(&self.handle, a, value.to_bytes())
    }

    /// Removes `key`.
    pub fn remove(&self, s: &mut KeyedState, key: &K) -> Result<()> {
        let a = self.entry_address(s, key)?;
        s.backend.write(self.handle.id, vec![(a, None)])
    }

    /// Every entry of the current key's map.
    pub fn entries(&self, s: &mut KeyedState) -> Result<Vec<(K, V)>> {
        let p = s.prefix(&self.handle)?;
        s.scan_prefix(&self.handle, &p)?
            .into_iter()
            .map(|(k, v)| Ok((K::from_bytes(&k)?, V::from_bytes(&v)?)))
            .collect()
    }

    /// Whether the current key's map is empty.
    pub fn is_empty(&self, s: &mut KeyedState) -> Result<bool> {
        Ok(self.entries(s)?.is_empty())
    }

    /// Removes the current key's map.
    pub fn clear(&self, s: &mut KeyedState) -> Result<()> {
        let p = s.prefix(&self.handle)?;
        s.clear_prefix(&self.handle, &p)
    }
}

type ReduceFn<T> = Arc<dyn Fn(T, T) -> T + Send + Sync>;

/// A value combined with each added value by a reduce function (Flink's
/// `ReducingState`).
#[derive(Clone)]
pub struct ReducingState<T> {
    handle: Handle,
    reduce: ReduceFn<T>,
}
namespaced!(ReducingState<T>);

impl<T: StateCodec> ReducingState<T> {
    /// The reduced value.
    pub fn get(&self, s: &mut KeyedState) -> Result<Option<T>> {
        let a = s.prefix(&self.handle)?;
        s.read(&self.handle, &a)?
            .map(|b| T::from_bytes(&b))
            .transpose()
    }

    /// Folds `value` into the state.
    pub fn add(&self, s: &mut KeyedState, value: T) -> Result<()> {
        let a = s.prefix(&self.handle)?;
        let next = match s.read(&self.handle, &a)? {
            Some(b) => (self.reduce)(T::from_bytes(&b)?, value),
            None => value,
        };
        s.put(&self.handle, a, next.to_bytes())
    }

    /// Removes the value.
    pub fn clear(&self, s: &mut KeyedState) -> Result<()> {
        let a = s.prefix(&self.handle)?;
        s.backend.write(self.handle.id, vec![(a, None)])
    }
}

/// An aggregate function for [`AggregatingState`]: an accumulator that
/// values are added to and a result read from it (Flink's
/// `AggregateFunction`).
pub trait AggregateFunction<IN, OUT>: Send + Sync {
    /// The accumulator kept in state.
    type Acc: StateCodec;
    /// A new, empty accumulator.
    fn create_accumulator(&self) -> Self::Acc;
    /// Adds one value.
    fn add(&self, value: IN, acc: Self::Acc) -> Self::Acc;
    /// The result of an accumulator.
    fn result(&self, acc: &Self::Acc) -> OUT;
}

/// The accumulator is stored in its encoded form, so the handle only needs
/// to know how to add and read through bytes.
trait ErasedAggregate<IN, OUT>: Send + Sync {
    fn add(&self, acc: Option<&[u8]>, value: IN) -> Result<Vec<u8>>;
    fn result(&self, acc: &[u8]) -> Result<OUT>;
}

impl<IN, OUT, F: AggregateFunction<IN, OUT>> ErasedAggregate<IN, OUT> for F {
    fn add(&self, acc: Option<&[u8]>, value: IN) -> Result<Vec<u8>> {
        let acc = match acc {
            Some(b) => F::Acc::from_bytes(b)?,
            None => self.create_accumulator(),
        };
        Ok(AggregateFunction::add(self, value, acc).to_bytes())
    }

    fn result(&self, acc: &[u8]) -> Result<OUT> {
        Ok(AggregateFunction::result(self, &F::Acc::from_bytes(acc)?))
    }
}

/// An accumulator per key and namespace (Flink's `AggregatingState`).
#[derive(Clone)]
pub struct AggregatingState<IN, OUT> {
    handle: Handle,
    function: Arc<dyn ErasedAggregate<IN, OUT>>,
}
namespaced!(AggregatingState<IN, OUT>);

impl<IN, OUT> AggregatingState<IN, OUT> {
    /// The aggregate's result, if anything was added.
    pub fn get(&self, s: &mut KeyedState) -> Result<Option<OUT>> {
        let a = s.prefix(&self.handle)?;
        match s.read(&self.handle, &a)? {
            Some(acc) => Ok(Some(self.function.result(&acc)?)),
            None => Ok(None),
        }
    }

    /// Adds a value to the accumulator.
    pub fn add(&self, s: &mut KeyedState, value: IN) -> Result<()> {
        let a = s.prefix(&self.handle)?;
        let acc = s.read(&self.handle, &a)?;
        let next = self.function.add(acc.as_deref(), value)?;
        s.put(&self.handle, a, next)
    }

    /// Removes the accumulator.
    pub fn clear(&self, s: &mut KeyedState) -> Result<()> {
        let a = s.prefix(&self.handle)?;
        s.backend.write(self.handle.id, vec![(a, None)])
    }
}

/// The address of a value-like entry, for callers that build their own.
pub fn value_address(group: u16, key: &[u8], namespace: &[u8]) -> Vec<u8> {
    address(group, key, namespace, &[])
}

/// The key groups a backend holds entries for, for tests and tooling.
pub fn key_groups_present(
    backend: &mut dyn StateBackend,
    range: KeyGroupRange,
) -> Result<Vec<u16>> {
    let mut groups = std::collections::BTreeSet::new();
    for i in 0..backend.descriptors().len() {
        backend.scan(
            StateId(i),
            &range.lower_bound(),
            range.upper_bound().as_ref().map(|b| b.as_slice()),
            &mut |k, _| {
                if let Some(g) = crate::key::key_group_of(k) {
                    groups.insert(g);
                }
                Ok(Scan::Continue)
            },
        )?;
    }
    Ok(groups.into_iter().collect())
}
