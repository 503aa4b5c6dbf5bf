//! Rows of one entity (orders, credit memos, shipments) by entity id, with the index a
//! database would give the pollers' keyset query: `(updated_at, entity_id)` in order.
//!
//! order-ingest polls "`updated_at` from X, sorted by `updated_at`, `entity_id`, one page"
//! every few hundred milliseconds, and the reconciler's runs read pages too; scanning and
//! matching every row of a 100,000-order store for each page made the sim, not the
//! services, the bottleneck of a large run. A search of that shape (filters on those two
//! fields only, that sort) walks the index from its lower bound instead
//! ([`crate::search::SearchCriteria::apply_indexed`]). Orders are also indexed by
//! `increment_id`: magento-writer finds each order it writes back to by a search on it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};

use serde_json::Value;

/// Rows by entity id, indexed by `(updated_at, entity_id)`.
#[derive(Debug, Default)]
pub struct Table {
    rows: BTreeMap<u64, Value>,
    by_updated: BTreeSet<(String, u64)>,
    by_increment: HashMap<IncrementKey, BTreeSet<u64>>,
}

/// An `increment_id` as searches compare it: numbers as numbers (`000000042` is `42`),
/// the rest as text; a null one equals anything.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum IncrementKey {
    Number(u64),
    Text(String),
    Null,
    Missing,
}

impl IncrementKey {
    /// The key of a filter value.
    pub(crate) fn of_text(text: &str) -> Self {
        match text.parse::<f64>() {
            Ok(n) => Self::Number(if n == 0.0 { 0 } else { n.to_bits() }),
            Err(_) => Self::Text(text.to_owned()),
        }
    }

    fn of_row(row: &Value) -> Self {
        match row.get("increment_id") {
            None => Self::Missing,
            Some(Value::Null) => Self::Null,
            Some(Value::String(s)) => Self::of_text(s),
            Some(other) => Self::of_text(&other.to_string()),
        }
    }
}

/// A row's `updated_at` as the index keeps it (text, as searches compare timestamps).
pub(crate) fn updated_at(row: &Value) -> String {
    match row.get("updated_at") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

impl Table {
    /// Stores `row` as entity `id`, replacing any row with that id.
    pub fn insert(&mut self, id: u64, row: Value) {
        if let Some(old) = self.rows.get(&id) {
            self.by_updated.remove(&(updated_at(old), id));
            unindex(&mut self.by_increment, &IncrementKey::of_row(old), id);
        }
        self.by_updated.insert((updated_at(&row), id));
        self.by_increment
            .entry(IncrementKey::of_row(&row))
            .or_default()
            .insert(id);
        self.rows.insert(id, row);
    }

    /// Row `id`.
    pub fn get(&self, id: &u64) -> Option<&Value> {
        self.rows.get(id)
    }

    /// Row `id` to change; the index follows its `updated_at` when the change is done.
    pub fn get_mut(&mut self, id: &u64) -> Option<RowMut<'_>> {
        let row = self.rows.get_mut(id)?;
        Some(RowMut {
            id: *id,
            before: updated_at(row),
            increment: IncrementKey::of_row(row),
            row,
            index: &mut self.by_updated,
            increments: &mut self.by_increment,
        })
    }

    /// Every row, by entity id.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.rows.values()
    }

    /// Entity ids of the rows whose `increment_id` may equal `value` in a search (those
    /// with a null one too: a null field equals anything there).
    pub(crate) fn with_increment(&self, value: &str) -> impl Iterator<Item = u64> + '_ {
        [IncrementKey::of_text(value), IncrementKey::Null]
            .into_iter()
            .filter_map(|key| self.by_increment.get(&key))
            .flatten()
            .copied()
    }

    /// `(updated_at, entity_id)` from `(updated_at, 0)` on, in that order.
    pub(crate) fn updated_from(
        &self,
        updated_at: &str,
        first_id: u64,
    ) -> impl Iterator<Item = &(String, u64)> {
        self.by_updated.range((updated_at.to_owned(), first_id)..)
    }
}

/// A row being changed (see [`Table::get_mut`]).
pub struct RowMut<'t> {
    id: u64,
    before: String,
    increment: IncrementKey,
    row: &'t mut Value,
    index: &'t mut BTreeSet<(String, u64)>,
    increments: &'t mut HashMap<IncrementKey, BTreeSet<u64>>,
}

fn unindex(increments: &mut HashMap<IncrementKey, BTreeSet<u64>>, key: &IncrementKey, id: u64) {
    if let Some(ids) = increments.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            increments.remove(key);
        }
    }
}

impl Deref for RowMut<'_> {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.row
    }
}

impl DerefMut for RowMut<'_> {
    fn deref_mut(&mut self) -> &mut Value {
        self.row
    }
}

impl Drop for RowMut<'_> {
    fn drop(&mut self) {
        let after = updated_at(self.row);
        if after != self.before {
            self.index
                .remove(&(std::mem::take(&mut self.before), self.id));
            self.index.insert((after, self.id));
        }
        let increment = IncrementKey::of_row(self.row);
        if increment != self.increment {
            unindex(self.increments, &self.increment, self.id);
            self.increments
                .entry(increment)
                .or_default()
                .insert(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_index_follows_inserts_replacements_and_changes() {
        let mut table = Table::default();
        table.insert(
            2,
            json!({"entity_id": 2, "updated_at": "2024-03-02 00:00:00"}),
        );
        table.insert(
            1,
            json!({"entity_id": 1, "updated_at": "2024-03-05 00:00:00"}),
        );
        table.insert(
            3,
            json!({"entity_id": 3, "updated_at": "2024-03-02 00:00:00"}),
        );
        let order = |t: &Table| -> Vec<u64> { t.updated_from("", 0).map(|(_, id)| *id).collect() };
        assert_eq!(order(&table), [2, 3, 1]);
        if let Some(mut row) = table.get_mut(&2) {
            row["updated_at"] = "2024-03-09 00:00:00".into();
        }
        assert_eq!(order(&table), [3, 1, 2]);
        table.insert(
            1,
            json!({"entity_id": 1, "updated_at": "2024-03-01 00:00:00"}),
        );
        assert_eq!(order(&table), [1, 3, 2]);
        assert_eq!(table.updated_from("2024-03-03", 0).count(), 1);
        if let Some(mut row) = table.get_mut(&3) {
            row["increment_id"] = "000000042".into();
        }
        assert_eq!(table.with_increment("42").collect::<Vec<_>>(), [3]);
        table.insert(3, json!({"entity_id": 3, "increment_id": "000000043"}));
        assert_eq!(table.with_increment("42").count(), 0);
        assert_eq!(table.with_increment("43").collect::<Vec<_>>(), [3]);
        assert_eq!(table.values().count(), 3);
    }
}
