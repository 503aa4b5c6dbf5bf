//! Event ids remembered for dedupe, in buckets: the ids a transaction saw are written as one
//! state entry (a few, past [`BUCKET_BYTES`]) instead of one entry per id, and an index in
//! memory finds the bucket an id is in.
//!
//! A new sled key and a changelog record per input were half of every loop's cost
//! (the aggregator processed 38,455 records/s with them and 74,741 without any dedupe:
//! `docs/decisions/runtime.md`). A bucket is keyed by its expiry and the offset of the last
//! input in it, so buckets are written once, never updated, and expire in key order:
//! the sweep deletes the keys below `now`, as a bounded range.
//!
//! The index maps a 64-bit fingerprint of each id (SipHash with a key drawn per process)
//! to its bucket; a hit is confirmed by reading the bucket, so the answer is exact. It
//! takes about 20 bytes per remembered id and is rebuilt from the store's buckets when a
//! partition is opened (after a restore from the changelog too).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use bridge_events::Millis;

use super::keys;
use super::{Entries, StateError, StateStore, Write, prefix_end};

/// A bucket is sealed once its ids take this many bytes (changelog records stay well below
/// the broker's 1 MiB message limit).
pub(crate) const BUCKET_BYTES: usize = 64 * 1024;

/// The first byte of a bucket's value: its format.
const FORMAT: u8 = 0xB1;

const KEY_LEN: usize = 2 + 8 + 8;

fn flip(n: i64) -> [u8; 8] {
    (n as u64 ^ (1 << 63)).to_be_bytes()
}

fn unflip(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// The key of the bucket expiring at `expires_at` whose last input is at `last_offset`.
pub(crate) fn bucket_key(expires_at: Millis, last_offset: i64) -> Vec<u8> {
    [keys::DEDUPE, &flip(expires_at), &flip(last_offset)].concat()
}

/// The expiry and last offset in a bucket key (`None`: not a bucket key).
fn parse_key(key: &[u8]) -> Option<(Millis, i64)> {
    let rest = key.strip_prefix(keys::DEDUPE)?;
    let (expiry, offset) = rest.split_first_chunk::<8>()?;
    let offset: [u8; 8] = offset.try_into().ok()?;
    (key.len() == KEY_LEN).then(|| (unflip(*expiry), unflip(offset)))
}

/// Every dedupe key below this one has expired by `now` (bucket keys sort by expiry).
pub(crate) fn expired_end(now: Millis) -> Vec<u8> {
    [keys::DEDUPE, &flip(now.saturating_add(1))].concat()
}

fn corrupt(key: &[u8], reason: impl Into<String>) -> StateError {
    StateError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.into(),
    }
}

/// The ids in a bucket's value; `Ok(None)` for a value of another format (an entry of an
/// older build: it expires and is swept like a bucket).
fn ids<'v>(key: &[u8], value: &'v [u8]) -> Result<Option<Vec<&'v [u8]>>, StateError> {
    let Some((&FORMAT, mut rest)) = value.split_first() else {
        return Ok(None);
    };
    let mut ids = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err(corrupt(
                key,
                format!("an id of {len} bytes runs past the end"),
            ));
        }
        let (id, tail) = tail.split_at(len);
        ids.push(id);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(corrupt(key, "a trailing byte after the last id"));
    }
    Ok(Some(ids))
}

fn append(bucket: &mut Vec<u8>, id: &[u8]) {
    if bucket.is_empty() {
        bucket.push(FORMAT);
    }
    let id = cut(id);
    bucket.extend_from_slice(&(id.len() as u16).to_be_bytes());
    bucket.extend_from_slice(id);
}

/// Event ids are short; one longer than a u16 length is remembered by its first 65,535
/// bytes.
fn cut(id: &[u8]) -> &[u8] {
    &id[..id.len().min(usize::from(u16::MAX))]
}

/// Whether the bucket `key` holding `value` holds `id`.
fn holds(key: &[u8], value: &[u8], id: &[u8]) -> Result<bool, StateError> {
    Ok(ids(key, value)?.is_some_and(|ids| ids.contains(&cut(id))))
}

/// Whether `id` is remembered and not expired at `now`, by reading every live bucket: the
/// default for stores without an index (tests); [`super::Pending`] keeps one.
pub(crate) fn seen_by_scan(
    store: &(impl StateStore + ?Sized),
    id: &[u8],
    now: Millis,
) -> Result<bool, StateError> {
    let live: Entries = store.range(
        &expired_end(now),
        prefix_end(keys::DEDUPE).as_deref(),
        usize::MAX,
    )?;
    for (key, value) in live {
        if holds(&key, &value, id)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A bucket of one id, for stores that apply each record on its own.
pub(crate) fn single(id: &[u8], expires_at: Millis, offset: i64) -> Write {
    let mut value = Vec::with_capacity(3 + id.len());
    append(&mut value, id);
    Write {
        key: bucket_key(expires_at, offset),
        value: Some(value),
    }
}

/// The ids the open transaction remembered; the last of them not sealed in a bucket yet.
#[derive(Debug, Default)]
pub(crate) struct Fresh {
    ids: HashSet<Vec<u8>>,
    bucket: Vec<u8>,
    expires_at: Millis,
    last_offset: i64,
}

impl Fresh {
    pub(crate) fn contains(&self, id: &[u8]) -> bool {
        self.ids.contains(cut(id))
    }

    /// Adds `id`; returns a sealed bucket once it is full.
    pub(crate) fn add(
        &mut self,
        mut id: Vec<u8>,
        expires_at: Millis,
        offset: i64,
    ) -> Option<Write> {
        self.expires_at = if self.bucket.is_empty() {
            expires_at
        } else {
            self.expires_at.max(expires_at)
        };
        id.truncate(cut(&id).len());
        append(&mut self.bucket, &id);
        self.last_offset = offset;
        self.ids.insert(id);
        (self.bucket.len() >= BUCKET_BYTES)
            .then(|| self.seal())
            .flatten()
    }

    /// The bucket being filled, if it holds any id: keyed by the latest expiry in it, so
    /// no id is forgotten early.
    pub(crate) fn seal(&mut self) -> Option<Write> {
        if self.bucket.is_empty() {
            return None;
        }
        let value = std::mem::take(&mut self.bucket);
        Some(Write {
            key: bucket_key(self.expires_at, self.last_offset),
            value: Some(value),
        })
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.bucket.is_empty()
    }

    /// Forgets everything (the transaction committed or aborted).
    pub(crate) fn clear(&mut self) {
        self.ids.clear();
        self.bucket.clear();
    }
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type ByPrint<V> = HashMap<u64, V, BuildHasherDefault<Prehashed>>;

/// Where each committed id is: its fingerprint → the last offset of its bucket (the
/// bucket's expiry is kept once per bucket). Fingerprints two ids share keep every bucket.
#[derive(Debug, Default)]
pub(crate) struct Index<B = RandomState> {
    hasher: B,
    first: ByPrint<i64>,
    more: ByPrint<Vec<i64>>,
    expiries: HashMap<i64, Millis>,
}

impl Index {
    /// The index of every bucket in `store`.
    pub(crate) fn load(store: &(impl StateStore + ?Sized)) -> Result<Self, StateError> {
        let mut index = Self::default();
        let end = prefix_end(keys::DEDUPE);
        let mut start = keys::DEDUPE.to_vec();
        loop {
            let page = store.range(&start, end.as_deref(), 256)?;
            for (key, value) in &page {
                index.add(key, value)?;
            }
            match page.last() {
                Some((last, _)) if page.len() == 256 => start = [last.as_slice(), &[0]].concat(),
                _ => return Ok(index),
            }
        }
    }
}

impl<B: BuildHasher> Index<B> {
    fn print(&self, id: &[u8]) -> u64 {
        self.hasher.hash_one(cut(id))
    }

    /// Ids remembered.
    pub(crate) fn len(&self) -> usize {
        self.first.len() + self.more.values().map(Vec::len).sum::<usize>()
    }

    /// The keys of the buckets `id` may be in.
    pub(crate) fn candidates(&self, id: &[u8]) -> Vec<Vec<u8>> {
        let print = self.print(id);
        let Some(first) = self.first.get(&print) else {
            return Vec::new();
        };
        std::iter::once(first)
            .chain(self.more.get(&print).into_iter().flatten())
            .filter_map(|offset| {
                let expires_at = self.expiries.get(offset)?;
                Some(bucket_key(*expires_at, *offset))
            })
            .collect()
    }

    /// Indexes the bucket `key` (a committed write).
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let (Some((expires_at, offset)), Some(ids)) = (parse_key(key), ids(key, value)?) else {
            return Ok(());
        };
        self.expiries.insert(offset, expires_at);
        for id in ids {
            let print = self.print(id);
            match self.first.get(&print) {
                None => {
                    self.first.insert(print, offset);
                }
                Some(at) if *at == offset => {}
                Some(_) => {
                    let more = self.more.entry(print).or_default();
                    if !more.contains(&offset) {
                        more.push(offset);
                    }
                }
            }
        }
        Ok(())
    }

    /// Forgets the bucket `key` that held `value` (deleted by the sweep).
    pub(crate) fn remove(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let (Some((_, offset)), Some(ids)) = (parse_key(key), ids(key, value)?) else {
            return Ok(());
        };
        self.expiries.remove(&offset);
        for id in ids {
            let print = self.print(id);
            let more = self.more.get_mut(&print);
            if self.first.get(&print) == Some(&offset) {
                match more.and_then(Vec::pop) {
                    Some(next) => self.first.insert(print, next),
                    None => self.first.remove(&print),
                };
            } else if let Some(more) = more {
                more.retain(|o| *o != offset);
            }
            if self.more.get(&print).is_some_and(Vec::is_empty) {
                self.more.remove(&print);
            }
        }
        Ok(())
    }
}

/// Whether `id` is remembered at `now`: in `fresh`, or in a live bucket the index points to,
/// read through `get` (which sees the open transaction's deletions).
pub(crate) fn seen<B: BuildHasher>(
    fresh: &Fresh,
    index: &Index<B>,
    get: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, StateError>,
    id: &[u8],
    now: Millis,
) -> Result<bool, StateError> {
    if fresh.contains(id) {
        return Ok(true);
    }
    for key in index.candidates(id) {
        let live = parse_key(&key).is_some_and(|(expires_at, _)| expires_at > now);
        if live
            && let Some(value) = get(&key)?
            && holds(&key, &value, id)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryStore;

    #[test]
    fn bucket_keys_sort_by_expiry_then_offset_and_parse_back() {
        let keys = [
            bucket_key(-5, 9),
            bucket_key(0, 3),
            bucket_key(10, 1),
            bucket_key(10, 2),
        ];
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(parse_key(&keys[0]), Some((-5, 9)));
        assert!(keys[1] < expired_end(0) && expired_end(0) <= keys[2]);
        assert_eq!(parse_key(b"d/legacy-event-id"), None);
    }

    #[test]
    fn a_bucket_holds_exactly_its_ids_and_a_cut_value_is_corrupt() -> Result<(), StateError> {
        let mut fresh = Fresh::default();
        for (n, id) in ["e-1", "", "e-333"].iter().enumerate() {
            assert!(fresh.add(id.as_bytes().to_vec(), 100, n as i64).is_none());
        }
        let Some(bucket) = fresh.seal() else {
            panic!("a bucket with three ids");
        };
        let value = bucket.value.unwrap_or_default();
        assert_eq!(parse_key(&bucket.key), Some((100, 2)));
        for id in ["e-1", "", "e-333"] {
            assert!(holds(&bucket.key, &value, id.as_bytes())?, "{id}");
        }
        assert!(!holds(&bucket.key, &value, b"e-33")?);
        let cut_short = &value[..value.len() - 1];
        assert!(matches!(
            holds(&bucket.key, cut_short, b"e-1"),
            Err(StateError::Corrupt { .. })
        ));
        // A value of an older format (an 8-byte expiry) holds nothing and is no error.
        assert!(!holds(&bucket.key, &7i64.to_be_bytes(), b"e-1")?);
        Ok(())
    }

    #[test]
    fn a_full_bucket_is_sealed_under_the_latest_expiry_in_it() {
        let mut fresh = Fresh::default();
        let mut sealed = Vec::new();
        for n in 0..3_000i64 {
            let id = format!("event-{n:032}").into_bytes();
            // Expiries are not monotonic: the bucket takes the largest.
            let expires = 1_000 + (n % 7) * 10;
            sealed.extend(fresh.add(id, expires, n));
        }
        assert_eq!(sealed.len(), 1, "64 KiB hold ~1,700 ids of 38 bytes");
        assert!(
            sealed[0]
                .value
                .as_ref()
                .is_some_and(|v| v.len() >= BUCKET_BYTES)
        );
        assert_eq!(parse_key(&sealed[0].key).map(|(at, _)| at), Some(1_060));
        assert!(fresh.contains(b"event-00000000000000000000000000000000"));
        assert!(!fresh.is_sealed());
        assert!(fresh.seal().is_some() && fresh.is_sealed());
    }

    /// Every id gets the same fingerprint.
    #[derive(Default)]
    struct Colliding;

    impl BuildHasher for Colliding {
        type Hasher = Fixed;
        fn build_hasher(&self) -> Fixed {
            Fixed
        }
    }

    struct Fixed;

    impl Hasher for Fixed {
        fn finish(&self) -> u64 {
            42
        }
        fn write(&mut self, _: &[u8]) {}
    }

    /// Two ids with one fingerprint in different buckets: each is found while its bucket is
    /// there, and removing one bucket leaves the other found.
    #[test]
    fn ids_sharing_a_fingerprint_are_each_found_until_their_bucket_goes() -> Result<(), StateError>
    {
        let mut index = Index::<Colliding>::default();
        let mut store = MemoryStore::default();
        let a = single(b"id-a", 5_000, 1);
        let b = single(b"id-b", 6_000, 2);
        store.apply(&[a.clone(), b.clone()], 2)?;
        for w in [&a, &b] {
            index.add(&w.key, w.value.as_deref().unwrap_or_default())?;
        }
        let print_a = index.print(b"id-a");
        assert_eq!(index.first.len(), 1, "one fingerprint for both");
        let fresh = Fresh::default();
        let get = |k: &[u8]| store.get(k);
        assert!(seen(&fresh, &index, get, b"id-a", 0)?);
        assert!(seen(&fresh, &index, get, b"id-b", 0)?);
        assert!(!seen(&fresh, &index, get, b"id-c", 0)?);
        assert!(!seen(&fresh, &index, get, b"id-a", 5_000)?, "expired");
        index.remove(&a.key, a.value.as_deref().unwrap_or_default())?;
        assert_eq!(
            index.first.get(&print_a),
            Some(&2),
            "id-b's bucket moves up"
        );
        assert!(!seen(&fresh, &index, get, b"id-a", 0)?);
        assert!(seen(&fresh, &index, get, b"id-b", 0)?);
        index.remove(&b.key, b.value.as_deref().unwrap_or_default())?;
        assert_eq!(index.len(), 0);
        assert!(index.more.is_empty() && index.expiries.is_empty());
        Ok(())
    }

    #[test]
    fn the_index_loads_every_bucket_across_pages() -> Result<(), StateError> {
        let mut store = MemoryStore::default();
        let writes: Vec<Write> = (0..600)
            .map(|n| single(format!("e-{n}").as_bytes(), 10_000 + n, n))
            .collect();
        store.apply(&writes, 599)?;
        let index = Index::load(&store)?;
        assert_eq!(index.len(), 600);
        let fresh = Fresh::default();
        for n in [0, 255, 256, 599] {
            let id = format!("e-{n}");
            assert!(seen(&fresh, &index, |k| store.get(k), id.as_bytes(), 0)?);
            assert!(seen_by_scan(&store, id.as_bytes(), 0)?);
        }
        assert!(!seen_by_scan(&store, b"e-600", 0)?);
        Ok(())
    }
}
