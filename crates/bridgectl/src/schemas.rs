//! `bridgectl schemas check|release`: the evolution gate by hand.

use anyhow::bail;
use bridge_events::event::RECORDS;
use bridge_events::evolution::{
    check_all, check_backward, history_dir, releases, short_name as short,
};
use bridge_events::schema;

/// Checks every current schema against every released version; returns the problems.
pub fn check() -> anyhow::Result<Vec<String>> {
    Ok(check_all(&history_dir())?)
}

/// Records the current schema of every changed record as its next version.
pub fn release() -> anyhow::Result<()> {
    let dir = history_dir();
    for (record, _) in RECORDS {
        let current = schema::record(record)?;
        let released = releases(&dir, short(record))?;
        let current_json: serde_json::Value = serde_json::from_str(&current.text)?;
        let latest = released
            .last()
            .map(|(_, t)| serde_json::from_str::<serde_json::Value>(t))
            .transpose()?;
        if latest.as_ref() == Some(&current_json) {
            continue;
        }
        let next = released.last().map_or(1, |(v, _)| v + 1);
        if let Some((version, text)) = released.last() {
            let old = apache_avro::Schema::parse_str(text)?;
            if let Err(e) = check_backward(record, *version, &current.schema, &old) {
                bail!(
                    "{e}\nan incompatible change needs a new topic version (….v2), not a release"
                );
            }
        }
        let folder = dir.join(short(record));
        std::fs::create_dir_all(&folder)?;
        let path = folder.join(format!("v{next}.avsc"));
        std::fs::write(&path, serde_json::to_string_pretty(&current_json)? + "\n")?;
        println!("released {record} v{next}: {}", path.display());
    }
    Ok(())
}
