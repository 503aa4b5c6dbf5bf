//! Keyed state: a [`StateStore`] per input partition, and [`Overlay`], the view one
//! transaction reads and writes through. Writes are collected as [`Write`]s — exactly
//! the records produced to the changelog topic — and applied to the store only after the
//! transaction commits, so an aborted transaction leaves no trace.

mod behind;
pub(crate) mod dedupe;
pub(crate) mod keys;
mod sled_store;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use bridge_events::Millis;

use keys::event_timer_at;

pub use self::behind::WriteBehind;
pub use self::sled_store::SledStore;

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The sled database failed.
    #[error("state store `{tree}`")]
    Sled {
        /// The tree (one per input partition).
        tree: String,
        /// The cause.
        #[source]
        source: sled::Error,
    },
    /// A committed batch could not be written to sled by the write-behind thread; every
    /// later state call fails with this (the process restarts and rebuilds the state).
    #[error("state writes in the background failed: {reason}")]
    Behind {
        /// The cause, as sled reported it.
        reason: String,
    },
    /// A stored value is not in the expected format.
    #[error("state value for key `{key}` is corrupt: {reason}")]
    Corrupt {
        /// The key, lossily printed.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Key-value pairs in key order, as scans return them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One state change: a put, or a delete when `value` is `None` (a changelog tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The key.
    pub key: Vec<u8>,
    /// The new value, or `None` to delete.
    pub value: Option<Vec<u8>>,
}

/// The smallest key above every key starting with `prefix` (`None`: there is none).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

pub(crate) fn bounds<'k>(
    start: &'k [u8],
    end: Option<&'k [u8]>,
) -> (Bound<&'k [u8]>, Bound<&'k [u8]>) {
    (
        Bound::Included(start),
        end.map_or(Bound::Unbounded, Bound::Excluded),
    )
}

/// The committed state of one input partition.
pub trait StateStore: Send {
    /// The committed value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Committed entries with `start <= key < end` (no `end`: no upper bound), in key
    /// order, at most `limit` of them. Bounded scans keep per-record work small.
    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Entries, StateError>;
    /// Committed entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StateError> {
        self.range(prefix, prefix_end(prefix).as_deref(), usize::MAX)
    }
    /// Applies the writes of a committed transaction that consumed input up to `offset`
    /// (taken, so a store that keeps them saves a copy).
    fn apply_owned(&mut self, writes: Vec<Write>, offset: i64) -> Result<(), StateError>;
    /// [`StateStore::apply_owned`] with borrowed writes.
    fn apply(&mut self, writes: &[Write], offset: i64) -> Result<(), StateError> {
        self.apply_owned(writes.to_vec(), offset)
    }
    /// The input offset the state reflects (the last `apply`), if any.
    fn offset(&self) -> Option<i64>;
    /// A time no event-time timer in the store is due before (`None`: unknown). A record
    /// that moves the watermark but not past it skips reading the timers.
    fn event_timer_floor(&self) -> Option<Millis> {
        None
    }
    /// After `apply`: a step that read the timers found none due before `floor`.
    fn learn_event_timer_floor(&mut self, _floor: Millis) {}
    /// Whether `event_id` is remembered for dedupe and has not expired at `now`. By
    /// default every live bucket is read; [`Pending`] keeps an index.
    fn seen(&self, event_id: &[u8], now: Millis) -> Result<bool, StateError> {
        dedupe::seen_by_scan(self, event_id, now)
    }
    /// Remembers `event_id` until `expires_at`, for the input at `offset`. By default a
    /// bucket of its own; [`Pending`] gathers a transaction's ids in one.
    fn remember(
        &mut self,
        event_id: Vec<u8>,
        expires_at: Millis,
        offset: i64,
    ) -> Result<(), StateError> {
        self.apply_owned(vec![dedupe::single(&event_id, expires_at, offset)], offset)
    }
}

/// What a store knows of its earliest event-time timer: a lower bound on every timer's
/// due time, learnt when a step reads the timers and lowered by every timer written after.
/// Reading the due timers was a range scan per record that moved the watermark — 11 % of
/// the aggregator's loop, which moves it on nearly every record and has a timer per window.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TimerFloor(Option<Millis>);

impl TimerFloor {
    pub(crate) fn get(self) -> Option<Millis> {
        self.0
    }

    pub(crate) fn learn(&mut self, floor: Millis) {
        self.0 = Some(floor);
    }

    /// Unknown again (writes it was learnt over were dropped).
    pub(crate) fn forget(&mut self) {
        self.0 = None;
    }

    /// Lowers the floor for every timer `writes` set.
    pub(crate) fn note<'w>(&mut self, writes: impl IntoIterator<Item = &'w Write>) {
        if let Some(floor) = &mut self.0 {
            for write in writes {
                if write.value.is_some()
                    && let Some(at) = event_timer_at(&write.key)
                {
                    *floor = (*floor).min(at);
                }
            }
        }
    }
}

/// State in memory: tests, the test driver, and stores rebuilt from the changelog.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    offset: Option<i64>,
    timers: TimerFloor,
}

impl MemoryStore {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl StateStore for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.entries.get(key).cloned())
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Entries, StateError> {
        Ok(self
            .entries
            .range::<[u8], _>(bounds(start, end))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply_owned(&mut self, writes: Vec<Write>, offset: i64) -> Result<(), StateError> {
        self.timers.note(&writes);
        for write in writes {
            match write.value {
                Some(value) => self.entries.insert(write.key, value),
                None => self.entries.remove(&write.key),
            };
        }
        self.offset = Some(offset);
        Ok(())
    }

    fn offset(&self) -> Option<i64> {
        self.offset
    }

    fn event_timer_floor(&self) -> Option<Millis> {
        self.timers.get()
    }

    fn learn_event_timer_floor(&mut self, floor: Millis) {
        self.timers.learn(floor);
    }
}

/// The first `limit` entries of `[start, end)` read by `base` with `writes` laid over
/// them (uncommitted writes over committed state, or batches not yet in sled over sled).
/// Enough base entries are read that deletions cannot hide one that belongs in the answer.
pub(crate) fn overlay_range(
    base: impl FnOnce(&[u8], Option<&[u8]>, usize) -> Result<Entries, StateError>,
    writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> Result<Entries, StateError> {
    let laid_over = || writes.range::<[u8], _>(bounds(start, end));
    let deletions = laid_over().filter(|(_, v)| v.is_none()).count();
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base(start, end, limit.saturating_add(deletions))?
        .into_iter()
        .collect();
    for (key, value) in laid_over() {
        match value {
            Some(v) => merged.insert(key.clone(), v.clone()),
            None => merged.remove(key),
        };
    }
    Ok(merged.into_iter().take(limit).collect())
}

/// The state one transaction sees: its own uncommitted writes over the committed store.
pub struct Overlay<'a> {
    base: &'a dyn StateStore,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    /// An empty transaction over `base`.
    pub fn new(base: &'a dyn StateStore) -> Self {
        Self {
            base,
            pending: BTreeMap::new(),
        }
    }

    /// The value as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.pending.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.base.get(key),
        }
    }

    /// Puts a value.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending.insert(key, Some(value));
    }

    /// Deletes a key.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.pending.insert(key, None);
    }

    /// Entries with `prefix` as this transaction sees them, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StateError> {
        self.range(prefix, prefix_end(prefix).as_deref(), usize::MAX)
    }

    /// The first `limit` entries with `start <= key < end` as this transaction sees them.
    pub fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StateError> {
        overlay_range(
            |s, e, l| self.base.range(s, e, l),
            &self.pending,
            start,
            end,
            limit,
        )
    }

    /// The earliest event-time timer this transaction set itself.
    pub(crate) fn earliest_own_event_timer(&self) -> Option<Millis> {
        let prefix = keys::EVENT_TIMER;
        self.pending
            .range::<[u8], _>(bounds(prefix, prefix_end(prefix).as_deref()))
            .find(|(_, value)| value.is_some())
            .and_then(|(key, _)| event_timer_at(key))
    }

    /// The transaction's writes, in key order: the changelog records to produce.
    pub fn into_writes(self) -> Vec<Write> {
        self.pending
            .into_iter()
            .map(|(key, value)| Write { key, value })
            .collect()
    }
}

/// A partition's state while a transaction is open: committed state underneath, the open
/// transaction's writes on top (later records in the same transaction see earlier ones).
/// [`Pending::commit`] moves them into the store as the batch commits; [`Pending::abort`]
/// drops them. The loop hands them over while Kafka commits, and rebuilds the store from
/// the changelog should Kafka refuse, so the store only ever holds committed state.
///
/// It also keeps the dedupe index of the store's buckets and gathers the event ids the
/// open transaction remembers into buckets of their own ([`dedupe`]).
///
/// A key the store did not hold when a read of this transaction looked, and that the
/// transaction then deletes, leaves no write at all: no tombstone in the changelog, no
/// delete in sled. A window opened and closed within one commit interval costs nothing
/// after it (in the aggregator benchmark most of them are). Only where the store is
/// exactly the changelog's committed view (exactly once): at least once, a crash between
/// the changelog flush and the offset commit leaves changelog entries the store skipped
/// on restore (past the committed offset), and a key of theirs must still get its
/// tombstone when processed again ([`Pending::keep_every_delete`]).
pub struct Pending<S: StateStore> {
    store: S,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Keys a read of the open transaction found in neither its writes nor the store
    /// (which does not change until the commit).
    absent: RefCell<HashSet<Vec<u8>>>,
    /// Every delete is written, absent key or not.
    every_delete: bool,
    last_offset: Option<i64>,
    timers: TimerFloor,
    fresh: dedupe::Fresh,
    index: dedupe::Index,
}

impl<S: StateStore> Pending<S> {
    /// Nothing pending over `store`; indexes the event ids it remembers.
    pub fn new(store: S) -> Result<Self, StateError> {
        let index = dedupe::Index::load(&store)?;
        Ok(Self::with_index(store, index))
    }

    /// Nothing pending over nothing.
    pub fn empty() -> Self
    where
        S: Default,
    {
        Self::with_index(S::default(), dedupe::Index::default())
    }

    fn with_index(store: S, index: dedupe::Index) -> Self {
        Self {
            store,
            writes: BTreeMap::new(),
            absent: RefCell::default(),
            every_delete: false,
            last_offset: None,
            timers: TimerFloor::default(),
            fresh: dedupe::Fresh::default(),
            index,
        }
    }

    /// Writes every delete, also of a key the store does not hold (see the type's
    /// documentation: at least once).
    pub fn keep_every_delete(mut self) -> Self {
        self.every_delete = true;
        self
    }

    /// Puts the ids remembered since the last bucket into one, so [`Pending::pending`]
    /// lists it; done by [`Pending::commit`] too.
    pub fn seal(&mut self) {
        if let Some(bucket) = self.fresh.seal() {
            self.writes.insert(bucket.key, bucket.value);
        }
    }

    /// Applies the pending writes to the store, as of input `offset`.
    pub fn commit(&mut self, offset: i64) -> Result<(), StateError> {
        self.seal();
        let writes: Vec<Write> = std::mem::take(&mut self.writes)
            .into_iter()
            .map(|(key, value)| Write { key, value })
            .collect();
        for write in writes.iter().filter(|w| w.key.starts_with(keys::DEDUPE)) {
            match &write.value {
                Some(value) => self.index.add(&write.key, value)?,
                None => {
                    if let Some(old) = self.store.get(&write.key)? {
                        self.index.remove(&write.key, &old)?;
                    }
                }
            }
        }
        self.fresh.clear();
        self.absent.get_mut().clear();
        self.last_offset = None;
        self.store.apply_owned(writes, offset)
    }

    /// Whether anything waits for a commit.
    pub fn has_pending(&self) -> bool {
        !self.writes.is_empty() || !self.fresh.is_sealed()
    }

    /// The writes waiting for a commit, one per key (the last one), in key order; ids
    /// remembered since the last [`Pending::seal`] are not among them yet.
    pub fn pending(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.writes
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// Event ids remembered in committed buckets.
    pub fn remembered(&self) -> usize {
        self.index.len()
    }

    /// Drops the pending writes.
    pub fn abort(&mut self) {
        self.writes.clear();
        self.absent.get_mut().clear();
        self.fresh.clear();
        self.last_offset = None;
        // It may have been learnt over the dropped writes (timers they deleted are back).
        self.timers.forget();
    }

    /// The committed store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The committed store, to flush or rebuild.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }
}

impl<S: StateStore> StateStore for Pending<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(value) = self.writes.get(key) {
            return Ok(value.clone());
        }
        let value = self.store.get(key)?;
        if value.is_none() && !self.every_delete {
            let mut absent = self.absent.borrow_mut();
            if !absent.contains(key) {
                absent.insert(key.to_vec());
            }
        }
        Ok(value)
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Entries, StateError> {
        overlay_range(
            |s, e, l| self.store.range(s, e, l),
            &self.writes,
            start,
            end,
            limit,
        )
    }

    fn apply_owned(&mut self, writes: Vec<Write>, offset: i64) -> Result<(), StateError> {
        self.timers.note(&writes);
        let absent = self.absent.get_mut();
        for write in writes {
            if write.value.is_none() && absent.contains(&write.key) {
                // Born in this transaction (or never there): nothing to delete.
                self.writes.remove(&write.key);
            } else {
                self.writes.insert(write.key, write.value);
            }
        }
        self.last_offset = Some(offset);
        Ok(())
    }

    fn offset(&self) -> Option<i64> {
        self.last_offset.or(self.store.offset())
    }

    fn event_timer_floor(&self) -> Option<Millis> {
        self.timers.get()
    }

    fn learn_event_timer_floor(&mut self, floor: Millis) {
        self.timers.learn(floor);
    }

    fn seen(&self, event_id: &[u8], now: Millis) -> Result<bool, StateError> {
        dedupe::seen(&self.fresh, &self.index, |k| self.get(k), event_id, now)
    }

    fn remember(
        &mut self,
        event_id: Vec<u8>,
        expires_at: Millis,
        offset: i64,
    ) -> Result<(), StateError> {
        if let Some(bucket) = self.fresh.add(event_id, expires_at, offset) {
            self.writes.insert(bucket.key, bucket.value);
        }
        self.last_offset = Some(offset);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
