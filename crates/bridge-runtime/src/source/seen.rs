//! The published event ids (with when) and the named cursors of a source, in sled.

use std::path::Path;
use std::time::Duration;

/// sled failed.
#[derive(Debug, thiserror::Error)]
#[error("source state in sled: {0}")]
pub struct SeenError(#[from] sled::Error);

/// Published ids and cursors.
#[derive(Clone)]
pub struct Seen {
    ids: sled::Tree,
    cursors: sled::Tree,
    db: sled::Db,
}

impl Seen {
    /// Opens (or creates) the store under `dir`.
    pub fn open(dir: &Path) -> Result<Self, SeenError> {
        let db = sled::open(dir.join("source"))?;
        Ok(Self {
            ids: db.open_tree("published")?,
            cursors: db.open_tree("cursors")?,
            db,
        })
    }

    /// Whether `event_id` was published.
    pub fn contains(&self, event_id: &str) -> Result<bool, SeenError> {
        Ok(self.ids.contains_key(event_id)?)
    }

    /// Records published ids (at `now_ms`) and cursor values, durably.
    pub fn record<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
        cursors: &[(String, String)],
        now_ms: i64,
    ) -> Result<(), SeenError> {
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.insert(id, &now_ms.to_be_bytes());
        }
        self.ids.apply_batch(batch)?;
        for (name, value) in cursors {
            self.cursors.insert(name.as_bytes(), value.as_bytes())?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// A cursor's value.
    pub fn cursor(&self, name: &str) -> Result<Option<String>, SeenError> {
        Ok(self
            .cursors
            .get(name)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Forgets ids published more than `ttl` before `now_ms`; returns how many.
    pub fn sweep(&self, ttl: Duration, now_ms: i64) -> Result<usize, SeenError> {
        let oldest = now_ms.saturating_sub(ttl.as_millis() as i64);
        let mut removed = 0;
        for entry in self.ids.iter() {
            let (key, value) = entry?;
            let at = <[u8; 8]>::try_from(value.as_ref()).map_or(i64::MIN, i64::from_be_bytes);
            if at < oldest {
                self.ids.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_cursors_survive_a_reopen_and_old_ids_are_swept()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        {
            let seen = Seen::open(dir.path())?;
            seen.record(
                ["a", "b"].into_iter(),
                &[("orders".into(), "2024-03-01 00:00:00".into())],
                1_000,
            )?;
            seen.record(["c"].into_iter(), &[], 90_000)?;
        }
        let seen = Seen::open(dir.path())?;
        assert!(seen.contains("a")? && seen.contains("c")? && !seen.contains("d")?);
        assert_eq!(
            seen.cursor("orders")?.as_deref(),
            Some("2024-03-01 00:00:00")
        );
        assert_eq!(seen.sweep(Duration::from_secs(60), 100_000)?, 2);
        assert!(!seen.contains("a")? && seen.contains("c")?);
        Ok(())
    }
}
