//! The changelog: every state write is also produced, in the same transaction as the
//! outputs and the input offsets, to a compacted topic with the input topic's partition
//! count. Each record carries the input offset it was derived from (header
//! `bridge.source.offset`), so a restore ignores anything past the committed input offset
//! (as Quix Streams does) — which matters in at-least-once mode, where the changelog can
//! run ahead of the offsets.

use crate::state::Write;

/// Header naming the input offset a changelog record was derived from.
pub const SOURCE_OFFSET_HEADER: &str = "bridge.source.offset";

/// One changelog record: a state write and the input offset it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// The state key (the record key).
    pub key: Vec<u8>,
    /// The value, or `None` for a delete (a tombstone, so compaction drops the key).
    pub value: Option<Vec<u8>>,
    /// The input offset whose processing wrote it; timers fired without input use the
    /// last consumed offset.
    pub source_offset: i64,
}

impl ChangelogRecord {
    /// The records for one step's writes.
    pub fn from_writes(writes: &[Write], source_offset: i64) -> Vec<Self> {
        writes
            .iter()
            .map(|w| Self {
                key: w.key.clone(),
                value: w.value.clone(),
                source_offset,
            })
            .collect()
    }

    /// Reads the source offset header value.
    pub fn parse_source_offset(header: Option<&[u8]>) -> Option<i64> {
        std::str::from_utf8(header?).ok()?.parse().ok()
    }
}

/// The state to restore from a partition's changelog, read from its start in order, given
/// the group's committed input offset (the next offset to consume, or `None` if nothing was
/// ever committed): the writes to apply and the input offset they reflect.
pub fn restore(
    records: impl IntoIterator<Item = ChangelogRecord>,
    committed: Option<i64>,
) -> (Vec<Write>, Option<i64>) {
    let mut latest: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> = Default::default();
    let mut reflected = None;
    for record in records {
        let derived_from_committed_input = committed.is_some_and(|c| record.source_offset < c);
        if !derived_from_committed_input {
            continue;
        }
        reflected = reflected.max(Some(record.source_offset));
        latest.insert(record.key, record.value);
    }
    let writes = latest
        .into_iter()
        .map(|(key, value)| Write { key, value })
        .collect();
    (writes, reflected)
}

/// Whether the local sled tree can be used as it is at start-up: only after a clean stop
/// (the checkpoint says so) and when it reflects exactly the committed input offset.
/// Otherwise it is rebuilt from the changelog.
pub fn trust_local_state(
    local_offset: Option<i64>,
    clean_checkpoint: bool,
    committed: Option<i64>,
) -> bool {
    clean_checkpoint
        && match (local_offset, committed) {
            (Some(local), Some(committed)) => local + 1 == committed,
            (None, None) => true,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, value: Option<&str>, source_offset: i64) -> ChangelogRecord {
        ChangelogRecord {
            key: key.as_bytes().to_vec(),
            value: value.map(|v| v.as_bytes().to_vec()),
            source_offset,
        }
    }

    #[test]
    fn restore_keeps_the_last_value_and_honours_tombstones() {
        let (writes, reflected) = restore(
            [
                rec("a", Some("1"), 0),
                rec("b", Some("1"), 1),
                rec("a", Some("2"), 2),
                rec("b", None, 3),
            ],
            Some(4),
        );
        assert_eq!(
            writes,
            vec![
                Write {
                    key: b"a".to_vec(),
                    value: Some(b"2".to_vec())
                },
                Write {
                    key: b"b".to_vec(),
                    value: None
                },
            ]
        );
        assert_eq!(reflected, Some(3));
    }

    #[test]
    fn restore_ignores_entries_past_the_committed_offset() {
        // Offsets 0..=4 were committed (next to consume: 5); 5 and 6 were written but the
        // input offsets never committed, so that input will be processed again.
        let (writes, reflected) = restore(
            [
                rec("a", Some("1"), 4),
                rec("a", Some("2"), 5),
                rec("c", Some("x"), 6),
            ],
            Some(5),
        );
        assert_eq!(
            writes,
            vec![Write {
                key: b"a".to_vec(),
                value: Some(b"1".to_vec())
            }]
        );
        assert_eq!(reflected, Some(4));
        assert_eq!(restore([rec("a", Some("1"), 0)], None), (vec![], None));
    }

    #[test]
    fn local_state_is_trusted_only_after_a_clean_stop_at_the_committed_offset() {
        assert!(trust_local_state(Some(9), true, Some(10)));
        assert!(trust_local_state(None, true, None));
        assert!(
            !trust_local_state(Some(9), false, Some(10)),
            "unclean stop: rebuild"
        );
        assert!(
            !trust_local_state(Some(7), true, Some(10)),
            "behind the offsets: rebuild"
        );
        assert!(
            !trust_local_state(None, true, Some(10)),
            "lost disk: rebuild"
        );
    }

    #[test]
    fn the_source_offset_header_round_trips() {
        assert_eq!(ChangelogRecord::parse_source_offset(Some(b"42")), Some(42));
        assert_eq!(ChangelogRecord::parse_source_offset(Some(b"x")), None);
        assert_eq!(ChangelogRecord::parse_source_offset(None), None);
    }
}
