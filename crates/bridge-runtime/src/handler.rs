//! What a service implements: a [`Handler`] that takes one decoded event (or one due
//! timer) with a [`Context`] and emits events, reads and writes state and sets timers.
//! It knows nothing of Kafka; the runtime (and the test driver) run it.

use std::time::Duration;

use bridge_events::{Event, Millis};

use crate::state::keys;
use crate::state::{Entries, Overlay, StateError, Write};

/// How a handler failed, and so how the runtime reacts.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Try again later (the ERP is down, a rate limit): retry with backoff, then pause the
    /// partition; Kafka keeps the record.
    #[error("retryable: {reason}")]
    Retryable {
        /// What went wrong.
        reason: String,
        /// A delay the other side asked for (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// This record can never succeed as it is (validation, unknown SKU): park it with the
    /// reason and the original bytes; it can be replayed after a fix.
    #[error("terminal `{class}`: {reason}")]
    Terminal {
        /// A short, fixed error class for metrics and headers, e.g. `unknown_sku`.
        class: &'static str,
        /// A readable reason naming what is wrong.
        reason: String,
    },
    /// The process cannot go on (bad configuration, corrupt state): stop with this message.
    #[error("fatal: {reason}")]
    Fatal {
        /// What is wrong.
        reason: String,
    },
    /// State could not be read.
    #[error("state")]
    State(#[from] StateError),
}

/// An event to produce, with its topic and key.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Destination topic.
    pub topic: String,
    /// Record key (the entity, so its events stay ordered).
    pub key: String,
    /// The event, boxed: an `Event` is 600 bytes, and a window closing emits thousands
    /// of outputs into one vector (growing it moved them all and faulted fresh pages in).
    pub event: Box<Event>,
}

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// Fires at the first punctuation (every commit interval) after the wall clock passes
    /// it, whether records arrive or not (idle partitions). A punctuation runs on committed
    /// state: a timer set for a later time than the one firing sees the writes of this one
    /// committed (how a handler seals data first and acts on it outside Kafka after).
    WallClock,
    /// Fires as soon as a record moves the partition's event time (largest `occurred_at`
    /// seen) past it, or at the next punctuation.
    EventTime,
}

/// A due timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// Which clock.
    pub kind: TimerKind,
    /// When it was due.
    pub at: Millis,
    /// The name it was set with (e.g. a window key).
    pub name: String,
}

/// One input record as a handler sees it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The decoded event.
    pub event: &'a Event,
    /// The record's topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// A service's logic.
pub trait Handler: Send {
    /// Handles one event (never a duplicate: the runtime dedupes by event id first).
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError>;

    /// Handles a due timer. The default ignores timers.
    fn on_timer(&mut self, _timer: &Timer, _ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        Ok(())
    }

    /// Runs at every punctuation of a partition (each commit interval in the runtime, each
    /// `advance_to` in the test driver), before its due timers, on committed state; work
    /// that proceeds in bounded slices whatever arrives (a scheduled scan). Default: nothing.
    fn on_punctuate(&mut self, _ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl<H: Handler + ?Sized> Handler for Box<H> {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        (**self).handle(input, ctx)
    }

    fn on_timer(&mut self, timer: &Timer, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        (**self).on_timer(timer, ctx)
    }

    fn on_punctuate(&mut self, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        (**self).on_punctuate(ctx)
    }
}

const NO_EXPIRY: i64 = i64::MAX;

/// What a handler works with while handling one record or timer.
pub struct Context<'a> {
    pub(crate) state: Overlay<'a>,
    pub(crate) outputs: Vec<Output>,
    pub(crate) parked: Option<(&'static str, String)>,
    now: Millis,
    partition: i32,
    caught_up: bool,
    /// The event time of the input being handled (none in a timer or punctuation).
    pub(crate) event_time: Option<Millis>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(state: Overlay<'a>, now: Millis, partition: i32, caught_up: bool) -> Self {
        Self {
            state,
            outputs: Vec::new(),
            parked: None,
            now,
            partition,
            caught_up,
            event_time: None,
        }
    }

    /// Whether the partition has no backlog: its consumer has read to the end of it (and,
    /// while a record is handled, whether it had before that record). Wall-clock logic
    /// that means "nothing more is coming" — closing an idle window — asks this first: a
    /// partition catching up is not idle, however old its records are.
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// The wall clock (simulated in the test driver).
    pub fn now(&self) -> Millis {
        self.now
    }

    /// The event time of the input being handled: its `occurred_at`, or — when that is
    /// further ahead of the wall clock than `[processor] max_event_time_ahead_ms` allows —
    /// the wall clock plus that lead, the time the partition's event time moved to.
    /// Windowing handlers place an input by this, not by `occurred_at`. `None` outside
    /// [`Handler::handle`].
    pub fn event_time(&self) -> Option<Millis> {
        self.event_time
    }

    /// The partition's event time: the largest `occurred_at` seen so far (this record's
    /// included), or `None` before the first record.
    pub fn watermark(&self) -> Result<Option<Millis>, StateError> {
        Ok(self
            .state
            .get(keys::WATERMARK)?
            .and_then(|raw| <[u8; 8]>::try_from(raw.as_slice()).ok())
            .map(i64::from_be_bytes))
    }

    /// The input partition this state belongs to.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Parks the input with this class and reason *as well as* producing what the handler
    /// emitted and keeping its state writes (a verdict for others to see, e.g. "rejected:
    /// unknown SKU", while the record waits in the parked topic for a fix). The input is
    /// not remembered for dedupe, so a replay of the parked record is handled again.
    /// Use a [`HandlerError::Terminal`] instead when nothing should be produced.
    pub fn park(&mut self, class: &'static str, reason: impl Into<String>) {
        self.parked = Some((class, reason.into()));
    }

    /// Emits an event to `topic` under `key`; it is produced in this record's transaction.
    pub fn emit(&mut self, topic: &str, key: &str, event: impl Into<Event>) {
        self.outputs.push(Output {
            topic: topic.to_owned(),
            key: key.to_owned(),
            event: Box::new(event.into()),
        });
    }

    /// The handler's value for `key`, unless it has expired.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        get_live(&self.state, &keys::with(keys::STATE, key), self.now)
    }

    /// Handler entries whose key starts with `prefix` (expired ones left out), keys without
    /// the runtime's prefix.
    pub fn scan(&self, prefix: &[u8]) -> Result<Entries, StateError> {
        let full = keys::with(keys::STATE, prefix);
        let mut live = Vec::new();
        for (key, raw) in self.state.scan_prefix(&full)? {
            if let Some(value) = unwrap_live(&key, raw, self.now)? {
                live.push((key[keys::STATE.len()..].to_vec(), value));
            }
        }
        Ok(live)
    }

    /// Up to `limit` live handler entries with keys starting with `prefix` and sorting after
    /// `after` (all of them from the start when `None`), keys without the runtime's prefix:
    /// a page of a scan that must not hold a whole store in memory.
    pub fn scan_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StateError> {
        let full = keys::with(keys::STATE, prefix);
        let start = match after {
            // The smallest key after `after`: `after` followed by a zero byte.
            Some(after) => [keys::STATE, after, &[0]].concat(),
            None => full.clone(),
        };
        let end = crate::state::prefix_end(&full);
        let mut live = Vec::new();
        let mut from = start;
        // Expired entries are skipped, so read on until the page is full or the prefix ends.
        loop {
            let batch = self.state.range(&from, end.as_deref(), limit.max(1))?;
            let exhausted = batch.len() < limit.max(1);
            for (key, raw) in batch {
                from = [key.as_slice(), &[0]].concat();
                if live.len() < limit
                    && let Some(value) = unwrap_live(&key, raw, self.now)?
                {
                    live.push((key[keys::STATE.len()..].to_vec(), value));
                }
            }
            if exhausted || live.len() >= limit {
                return Ok(live);
            }
        }
    }

    /// Stores a value; with a `ttl` it disappears after that long (wall clock).
    pub fn put(&mut self, key: &[u8], value: &[u8], ttl: Option<Duration>) {
        let expires = ttl.map_or(NO_EXPIRY, |t| self.now.saturating_add(t.as_millis() as i64));
        put_expiring(
            &mut self.state,
            keys::with(keys::STATE, key),
            value,
            expires,
        );
    }

    /// Deletes a value.
    pub fn delete(&mut self, key: &[u8]) {
        self.state.delete(keys::with(keys::STATE, key));
    }

    /// Sets a timer; setting the same kind, time and name twice is one timer.
    pub fn schedule(&mut self, kind: TimerKind, at: Millis, name: &str) {
        self.state.put(timer_key(kind, at, name), Vec::new());
    }

    /// Cancels a timer.
    pub fn cancel(&mut self, kind: TimerKind, at: Millis, name: &str) {
        self.state.delete(timer_key(kind, at, name));
    }
}

pub(crate) fn timer_prefix(kind: TimerKind) -> &'static [u8] {
    match kind {
        TimerKind::WallClock => keys::WALL_CLOCK_TIMER,
        TimerKind::EventTime => keys::EVENT_TIMER,
    }
}

pub(crate) fn timer_key(kind: TimerKind, at: Millis, name: &str) -> Vec<u8> {
    // Big-endian with the sign bit flipped sorts i64 correctly as bytes.
    let at = (at as u64 ^ (1 << 63)).to_be_bytes();
    [timer_prefix(kind), &at, name.as_bytes()].concat()
}

pub(crate) fn parse_timer(kind: TimerKind, key: &[u8]) -> Option<Timer> {
    let rest = key.get(timer_prefix(kind).len()..)?;
    let at = <[u8; 8]>::try_from(rest.get(..8)?).ok()?;
    let at = (u64::from_be_bytes(at) ^ (1 << 63)) as i64;
    let name = String::from_utf8(rest.get(8..)?.to_vec()).ok()?;
    Some(Timer { kind, at, name })
}

/// Stored values are `[expires_at: i64 BE][payload]`; an expiry also gets an index entry
/// `x/<expires_at><key>` so expired entries are found by a range scan, not a full one.
pub(crate) fn put_expiring(
    state: &mut Overlay<'_>,
    key: Vec<u8>,
    value: &[u8],
    expires_at: Millis,
) {
    let mut stored = Vec::with_capacity(8 + value.len());
    stored.extend_from_slice(&expires_at.to_be_bytes());
    stored.extend_from_slice(value);
    if expires_at != NO_EXPIRY {
        state.put(expiry_key(expires_at, &key), Vec::new());
    }
    state.put(key, stored);
}

/// Deletes up to `limit` dedupe buckets that expired by `now` (their keys sort by expiry:
/// one bounded range from the start); returns how many. Keys of an older format sort
/// before every bucket and go the same way.
pub(crate) fn sweep_dedupe(
    state: &mut Overlay<'_>,
    now: Millis,
    limit: usize,
) -> Result<usize, StateError> {
    let end = crate::state::dedupe::expired_end(now);
    let expired = state.range(keys::DEDUPE, Some(&end), limit)?;
    for (key, _) in &expired {
        state.delete(key.clone());
    }
    Ok(expired.len())
}

/// Whether `key` is an expiry index entry: derived from the entry it indexes, so kept out
/// of the changelog (half the changelog records of a dedupe-heavy loop) and rebuilt by
/// [`expiry_index`] on restore.
pub(crate) fn is_expiry_index(key: &[u8]) -> bool {
    key.starts_with(keys::EXPIRY)
}

/// The expiry index entries of the restored `writes`: one per handler entry that expires
/// (dedupe entries have none: [`sweep_dedupe`]).
pub(crate) fn expiry_index(writes: &[Write]) -> Vec<Write> {
    writes
        .iter()
        .filter(|w| w.key.starts_with(keys::STATE))
        .filter_map(|w| {
            let expiry = w.value.as_deref()?.first_chunk::<8>()?;
            let expires_at = i64::from_be_bytes(*expiry);
            (expires_at != NO_EXPIRY).then(|| Write {
                key: expiry_key(expires_at, &w.key),
                value: Some(Vec::new()),
            })
        })
        .collect()
}

fn expiry_key(expires_at: Millis, key: &[u8]) -> Vec<u8> {
    let at = (expires_at as u64 ^ (1 << 63)).to_be_bytes();
    [keys::EXPIRY, &at, key].concat()
}

/// The value of a stored entry (an 8-byte expiry, then the value) if it is live at `now`;
/// the expiry is cut off in place, no copy.
fn unwrap_live(key: &[u8], mut raw: Vec<u8>, now: Millis) -> Result<Option<Vec<u8>>, StateError> {
    let Some(expiry) = raw.first_chunk::<8>() else {
        return Err(StateError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: format!("{} bytes, shorter than the 8-byte expiry", raw.len()),
        });
    };
    if i64::from_be_bytes(*expiry) <= now {
        return Ok(None);
    }
    raw.drain(..8);
    Ok(Some(raw))
}

pub(crate) fn get_live(
    state: &Overlay<'_>,
    key: &[u8],
    now: Millis,
) -> Result<Option<Vec<u8>>, StateError> {
    match state.get(key)? {
        Some(raw) => unwrap_live(key, raw, now),
        None => Ok(None),
    }
}

/// Deletes up to `limit` entries that expired at or before `now`; returns how many.
pub(crate) fn sweep_expired(
    state: &mut Overlay<'_>,
    now: Millis,
    limit: usize,
) -> Result<usize, StateError> {
    let mut removed = 0;
    // Only the index entries that are due, and at most `limit` of them.
    let due_end = expiry_key(now.saturating_add(1), &[]);
    for (index_key, _) in state.range(keys::EXPIRY, Some(&due_end), limit)? {
        let Some(at) = index_key.get(keys::EXPIRY.len()..keys::EXPIRY.len() + 8) else {
            continue;
        };
        let at = <[u8; 8]>::try_from(at)
            .map(|b| (u64::from_be_bytes(b) ^ (1 << 63)) as i64)
            .unwrap_or(NO_EXPIRY);
        if at > now || removed >= limit {
            break;
        }
        let key = index_key[keys::EXPIRY.len() + 8..].to_vec();
        // The entry may have been written again with a later expiry: only delete if not.
        if get_live(state, &key, now)?.is_none() {
            state.delete(key);
        }
        state.delete(index_key);
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateStore;

    #[test]
    fn timer_keys_sort_by_time_including_negative_times() {
        let keys: Vec<Vec<u8>> = [-5, 0, 3, 1_700_000_000_000]
            .iter()
            .map(|at| timer_key(TimerKind::WallClock, *at, "w"))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(
            parse_timer(TimerKind::WallClock, &keys[0]),
            Some(Timer {
                kind: TimerKind::WallClock,
                at: -5,
                name: "w".into()
            })
        );
    }

    #[test]
    fn the_expiry_index_a_restore_derives_is_the_one_the_writes_made() {
        let base = crate::state::MemoryStore::default();
        let mut state = Overlay::new(&base);
        put_expiring(&mut state, keys::with(keys::STATE, b"count"), b"7", 9_000);
        put_expiring(
            &mut state,
            keys::with(keys::STATE, b"forever"),
            b"1",
            NO_EXPIRY,
        );
        state.put(timer_key(TimerKind::WallClock, 3, "w"), Vec::new());
        let writes = state.into_writes();
        let (made, entries): (Vec<Write>, Vec<Write>) =
            writes.into_iter().partition(|w| is_expiry_index(&w.key));
        assert_eq!(made.len(), 1, "`count` only: not `forever`");
        assert_eq!(expiry_index(&entries), made);
    }

    #[test]
    fn the_dedupe_sweep_deletes_expired_buckets_in_slices_and_keeps_live_ones()
    -> Result<(), StateError> {
        use crate::state::dedupe;
        let mut store = crate::state::MemoryStore::default();
        // Even ones expire at 1,000, odd ones at 9,000; and an entry of an older format.
        let mut writes: Vec<Write> = (0..7)
            .map(|n| dedupe::single(format!("e-{n}").as_bytes(), 1_000 + (n % 2) * 8_000, n))
            .collect();
        writes.push(Write {
            key: keys::with(keys::DEDUPE, b"legacy-id"),
            value: Some(500i64.to_be_bytes().to_vec()),
        });
        writes.push(Write {
            key: keys::with(keys::STATE, b"x"),
            value: Some(b"not a dedupe entry".to_vec()),
        });
        store.apply(&writes, 6)?;
        let mut removed = Vec::new();
        for _ in 0..3 {
            let mut state = Overlay::new(&store);
            removed.push(sweep_dedupe(&mut state, 2_000, 3)?);
            let writes = state.into_writes();
            store.apply(&writes, 6)?;
        }
        assert_eq!(
            removed,
            [3, 2, 0],
            "four expired buckets and the legacy entry"
        );
        assert_eq!(store.scan_prefix(keys::DEDUPE)?.len(), 3);
        for n in 0..7 {
            let id = format!("e-{n}");
            assert_eq!(store.seen(id.as_bytes(), 2_000)?, n % 2 == 1, "{id}");
        }
        assert!(store.get(b"s/x")?.is_some());
        Ok(())
    }
}
