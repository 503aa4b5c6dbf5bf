//! [`SledStore`]: one input partition's committed state in a sled tree, written behind
//! the processing thread ([`super::WriteBehind`]).

use super::behind::{Batch, Behind, in_key_order};
use super::keys::APPLIED_OFFSET;
use super::{Entries, StateError, StateStore, Write, WriteBehind, bounds, overlay_range};

/// State in a sled tree (one tree per input partition). The applied offset is stored in
/// the same atomic batch as the writes, so tree and offset never disagree; batches reach
/// the tree through the write-behind queue, and reads look there first.
pub struct SledStore {
    tree: sled::Tree,
    name: String,
    offset: Option<i64>,
    behind: Behind,
}

impl SledStore {
    /// Opens (or creates) the tree `name` in `db`, whose batches `behind` writes. Waits
    /// for batches still queued (a partition given back and assigned again) first, so the
    /// offset read is the last one applied.
    pub fn open(db: &sled::Db, name: &str, behind: &WriteBehind) -> Result<Self, StateError> {
        behind.drain()?;
        let sled_err = |source| StateError::Sled {
            tree: name.to_owned(),
            source,
        };
        let tree = db.open_tree(name).map_err(sled_err)?;
        let offset = match tree.get(APPLIED_OFFSET).map_err(sled_err)? {
            Some(raw) => Some(decode_offset(&raw).ok_or_else(|| StateError::Corrupt {
                key: "meta/offset".into(),
                reason: format!("{} bytes, expected 8", raw.len()),
            })?),
            None => None,
        };
        Ok(Self {
            tree,
            name: name.to_owned(),
            offset,
            behind: behind.behind(),
        })
    }

    /// Removes every entry (before a rebuild from the changelog).
    pub fn clear(&mut self) -> Result<(), StateError> {
        self.behind.drain()?;
        self.offset = None;
        self.tree.clear().map_err(|source| self.sled_error(source))
    }

    fn sled_error(&self, source: sled::Error) -> StateError {
        StateError::Sled {
            tree: self.name.clone(),
            source,
        }
    }

    /// Entries in sled itself, without the queued batches.
    fn sled_range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StateError> {
        self.tree
            .range::<&[u8], _>(bounds(start, end))
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .filter(|r| !matches!(r, Ok((k, _)) if k.as_slice() == APPLIED_OFFSET))
            .take(limit)
            .collect::<Result<_, _>>()
            .map_err(|source| self.sled_error(source))
    }
}

fn decode_offset(raw: &[u8]) -> Option<i64> {
    <[u8; 8]>::try_from(raw).ok().map(i64::from_be_bytes)
}

impl StateStore for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(queued) = self.behind.get(&self.name, key)? {
            return Ok(queued);
        }
        self.tree
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|source| self.sled_error(source))
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Entries, StateError> {
        let queued = self.behind.laid_over(&self.name, start, end)?;
        if queued.is_empty() {
            return self.sled_range(start, end, limit);
        }
        overlay_range(
            |s, e, l| self.sled_range(s, e, l),
            &queued,
            start,
            end,
            limit,
        )
    }

    fn apply_owned(&mut self, writes: Vec<Write>, offset: i64) -> Result<(), StateError> {
        self.behind.submit(Batch {
            tree: self.tree.clone(),
            name: self.name.clone(),
            writes: in_key_order(writes),
            offset,
        })?;
        self.offset = Some(offset);
        Ok(())
    }

    fn offset(&self) -> Option<i64> {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryStore;

    fn put(key: &[u8], value: &[u8]) -> Write {
        Write {
            key: key.to_vec(),
            value: Some(value.to_vec()),
        }
    }

    #[test]
    fn sled_keeps_writes_and_offset_across_reopen() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        {
            let db = sled::open(dir.path())?;
            let behind = WriteBehind::start()?;
            let mut store = SledStore::open(&db, "p0", &behind)?;
            store.apply(&[put(b"count/x", b"7")], 41)?;
            behind.drain()?;
            db.flush()?;
        }
        let db = sled::open(dir.path())?;
        let store = SledStore::open(&db, "p0", &WriteBehind::start()?)?;
        assert_eq!(store.offset(), Some(41));
        assert_eq!(store.get(b"count/x")?, Some(b"7".to_vec()));
        assert_eq!(
            store.scan_prefix(b"")?.len(),
            1,
            "the offset is not an entry"
        );
        Ok(())
    }

    /// Committed batches not yet in sled are read from the queue: point reads, deletes
    /// hiding sled entries, and bounded ranges over both.
    #[test]
    fn queued_batches_are_read_before_they_reach_sled() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = sled::open(dir.path())?;
        let tree = db.open_tree("p0")?;
        tree.insert(b"k1", b"sled")?;
        tree.insert(b"k2", b"sled")?;
        let behind = WriteBehind::stalled();
        let mut store = SledStore::open(&db, "p0", &behind)?;
        let other = SledStore::open(&db, "p1", &behind)?;
        store.apply(&[put(b"k2", b"q1"), put(b"k3", b"q1")], 0)?;
        store.apply(
            &[
                Write {
                    key: b"k1".to_vec(),
                    value: None,
                },
                put(b"k3", b"q2"),
            ],
            1,
        )?;
        assert_eq!(tree.get(b"k3")?, None, "nothing reached sled");
        assert_eq!(store.get(b"k1")?, None);
        assert_eq!(store.get(b"k2")?, Some(b"q1".to_vec()));
        assert_eq!(store.get(b"k3")?, Some(b"q2".to_vec()));
        assert_eq!(
            store.range(b"k", None, 1)?,
            vec![(b"k2".to_vec(), b"q1".to_vec())]
        );
        assert_eq!(store.scan_prefix(b"k")?.len(), 2);
        assert_eq!(store.offset(), Some(1));
        // Another tree's batches are not this one's.
        assert_eq!(other.get(b"k3")?, None);
        Ok(())
    }

    /// Whatever the worker has applied at each moment, reads equal those of a store that
    /// applies every batch at once.
    #[test]
    fn reads_while_batches_are_written_behind_match_a_store_that_applies_at_once()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = sled::open(dir.path())?;
        let behind = WriteBehind::start()?;
        let mut store = SledStore::open(&db, "p0", &behind)?;
        let mut mirror = MemoryStore::default();
        for round in 0..300i64 {
            let writes: Vec<Write> = (0..20i64)
                .map(|i| {
                    let key = format!("k{:03}", (round * 7 + i * 13) % 97).into_bytes();
                    let value = ((round + i) % 5 != 0).then(|| round.to_be_bytes().to_vec());
                    Write { key, value }
                })
                .collect();
            mirror.apply(&writes, round)?;
            store.apply_owned(writes, round)?;
            let probe = format!("k{:03}", round % 97).into_bytes();
            assert_eq!(store.get(&probe)?, mirror.get(&probe)?, "round {round}");
            assert_eq!(
                store.range(b"k0", Some(b"k05"), 7)?,
                mirror.range(b"k0", Some(b"k05"), 7)?,
                "round {round}"
            );
        }
        behind.drain()?;
        assert_eq!(store.scan_prefix(b"")?, mirror.scan_prefix(b"")?);
        Ok(())
    }
}
