//! The state overlay, changelog and restore, without a broker.

use super::*;

#[test]
fn prefix_end_is_the_next_key_after_the_prefix() {
    assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
    assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
    assert_eq!(prefix_end(b"\xff\xff"), None);
    assert_eq!(prefix_end(b""), None);
}

/// Every bounded range over pending writes equals the same slice of the fully merged
/// state, whatever the limit, even when deletions hide committed entries.
#[test]
fn bounded_ranges_over_pending_writes_match_the_merged_state() -> Result<(), StateError> {
    let mut store = MemoryStore::default();
    let committed: Vec<Write> = (0..20u8)
        .map(|i| Write {
            key: vec![b'k', i],
            value: Some(vec![i]),
        })
        .collect();
    store.apply(&committed, 0)?;
    let mut pending = Pending::new(store)?;
    let mut writes: Vec<Write> = (0..12u8)
        .map(|i| Write {
            key: vec![b'k', i],
            value: None,
        })
        .collect();
    writes.push(Write {
        key: vec![b'k', 5, 1],
        value: Some(vec![99]),
    });
    writes.push(Write {
        key: vec![b'k', 30],
        value: Some(vec![30]),
    });
    pending.apply(&writes, 1)?;
    let everything = pending.scan_prefix(b"k")?;
    assert_eq!(everything.len(), 8 + 2);
    for start in [vec![b'k'], vec![b'k', 4], vec![b'k', 13]] {
        for end in [None, Some(vec![b'k', 15]), Some(vec![b'l'])] {
            for limit in 0..14 {
                let got = pending.range(&start, end.as_deref(), limit)?;
                let want: Entries = everything
                    .iter()
                    .filter(|(k, _)| *k >= start && end.as_ref().is_none_or(|e| k < e))
                    .take(limit)
                    .cloned()
                    .collect();
                assert_eq!(got, want, "start {start:?} end {end:?} limit {limit}");
            }
        }
    }
    Ok(())
}

#[test]
fn an_overlay_sees_its_own_writes_and_leaves_the_store_alone() -> Result<(), StateError> {
    let mut store = MemoryStore::default();
    store.apply(
        &[Write {
            key: b"a".to_vec(),
            value: Some(b"1".to_vec()),
        }],
        0,
    )?;
    let mut txn = Overlay::new(&store);
    txn.put(b"b".to_vec(), b"2".to_vec());
    txn.delete(b"a".to_vec());
    assert_eq!(txn.get(b"a")?, None);
    assert_eq!(txn.get(b"b")?, Some(b"2".to_vec()));
    assert_eq!(txn.scan_prefix(b"")?, vec![(b"b".to_vec(), b"2".to_vec())]);
    let writes = txn.into_writes();
    // Nothing reached the store until the writes are applied (after the commit).
    assert_eq!(store.get(b"a")?, Some(b"1".to_vec()));
    store.apply(&writes, 1)?;
    assert_eq!(store.get(b"a")?, None);
    assert_eq!(store.offset(), Some(1));
    Ok(())
}

#[test]
fn pending_writes_are_seen_by_later_records_and_reach_the_store_only_on_commit()
-> Result<(), StateError> {
    let mut partition = Pending::new(MemoryStore::default())?;
    let put = |k: &str, v: &str| Write {
        key: k.as_bytes().to_vec(),
        value: Some(v.as_bytes().to_vec()),
    };
    partition.apply(&[put("a", "1")], 0)?;
    assert_eq!(partition.get(b"a")?, Some(b"1".to_vec()));
    assert_eq!(partition.store().get(b"a")?, None);
    partition.commit(0)?;
    assert_eq!(partition.store().get(b"a")?, Some(b"1".to_vec()));
    partition.apply(&[put("a", "2"), put("b", "9")], 1)?;
    assert_eq!(partition.scan_prefix(b"")?.len(), 2);
    partition.abort();
    assert_eq!(partition.get(b"a")?, Some(b"1".to_vec()));
    assert_eq!(partition.get(b"b")?, None);
    assert_eq!(partition.offset(), Some(0));
    Ok(())
}

/// A key the store did not hold, put and deleted within one transaction, leaves no
/// write (no tombstone for the changelog); one the store held is deleted as before, and
/// what was learnt about absent keys ends with the transaction.
#[test]
fn a_key_born_and_deleted_in_one_transaction_leaves_no_write() -> Result<(), StateError> {
    let put = |k: &str| Write {
        key: k.as_bytes().to_vec(),
        value: Some(b"v".to_vec()),
    };
    let delete = |k: &str| Write {
        key: k.as_bytes().to_vec(),
        value: None,
    };
    let mut partition = Pending::new(MemoryStore::default())?;
    partition.apply(&[put("old")], 0)?;
    partition.commit(0)?;
    // Read first, as a handler does before it creates an entry.
    assert_eq!(partition.get(b"new")?, None);
    assert_eq!(partition.get(b"old")?, Some(b"v".to_vec()));
    partition.apply(&[put("new")], 1)?;
    partition.apply(&[delete("new"), delete("old")], 2)?;
    let writes: Vec<_> = partition
        .pending()
        .map(|(k, v)| (k.to_vec(), v.is_some()))
        .collect();
    assert_eq!(
        writes,
        [(b"old".to_vec(), false)],
        "only the committed key's tombstone"
    );
    assert_eq!(partition.get(b"new")?, None);
    partition.commit(2)?;
    assert!(partition.store().scan_prefix(b"")?.is_empty());

    // Not read in this transaction: its absence is not known, the delete is kept.
    partition.apply(&[put("late")], 3)?;
    partition.commit(3)?;
    partition.apply(&[delete("late")], 4)?;
    assert_eq!(partition.pending().count(), 1);
    // Learnt before an abort, forgotten by it: the key may be committed by then.
    partition.abort();
    assert_eq!(partition.get(b"gone")?, None);
    partition.abort();
    partition.apply(&[put("gone")], 5)?;
    partition.commit(5)?;
    partition.apply(&[delete("gone")], 6)?;
    assert_eq!(
        partition.pending().count(),
        1,
        "the committed key's tombstone stays"
    );

    // At least once every delete is written: the changelog may hold the key from a
    // batch whose offsets were never committed.
    let mut every = Pending::new(MemoryStore::default())?.keep_every_delete();
    assert_eq!(every.get(b"new")?, None);
    every.apply(&[put("new")], 0)?;
    every.apply(&[delete("new")], 1)?;
    assert_eq!(every.pending().count(), 1, "the tombstone is written");
    Ok(())
}

/// Ids remembered in an open transaction are seen by later records of it, gone on
/// abort, written as one bucket on commit, found again by a store reopened from the
/// committed entries (a restart or a restore), and forgotten when the sweep deletes
/// their bucket.
#[test]
fn remembered_ids_follow_the_transaction_and_survive_a_reopen() -> Result<(), StateError> {
    let mut partition = Pending::new(MemoryStore::default())?;
    partition.remember(b"a".to_vec(), 5_000, 0)?;
    assert!(partition.seen(b"a", 0)?);
    partition.abort();
    assert!(!partition.seen(b"a", 0)?, "aborted: never remembered");
    for (n, id) in ["a", "b", "c"].iter().enumerate() {
        partition.remember(id.as_bytes().to_vec(), 5_000 + n as i64, n as i64)?;
    }
    assert!(partition.has_pending());
    partition.seal();
    let buckets: Vec<_> = partition.pending().map(|(k, _)| k.to_vec()).collect();
    assert_eq!(
        buckets,
        [dedupe::bucket_key(5_002, 2)],
        "one bucket, latest expiry"
    );
    partition.commit(2)?;
    assert!(!partition.has_pending());
    assert_eq!(partition.remembered(), 3);
    for id in ["a", "b", "c"] {
        assert!(partition.seen(id.as_bytes(), 5_001)?, "{id}");
        assert!(!partition.seen(id.as_bytes(), 5_002)?, "{id} expired");
    }
    let reopened = Pending::new(partition.store().clone())?;
    assert_eq!(reopened.remembered(), 3);
    assert!(reopened.seen(b"b", 0)? && !reopened.seen(b"d", 0)?);
    // The sweep's deletion hides the bucket at once and unindexes it on commit.
    partition.apply(
        &[Write {
            key: dedupe::bucket_key(5_002, 2),
            value: None,
        }],
        3,
    )?;
    assert!(!partition.seen(b"a", 0)?);
    partition.commit(3)?;
    assert_eq!(partition.remembered(), 0);
    assert!(partition.store().scan_prefix(keys::DEDUPE)?.is_empty());
    Ok(())
}
