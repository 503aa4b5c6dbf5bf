//! The evolution rule: within a topic a record's schema only changes BACKWARD-compatibly
//! (today's readers read every released version's data: add fields with defaults, never
//! change a type or remove a field without a default). Released versions live in
//! `schemas/history/<Record>/v<N>.avsc`; an incompatible change gets a new topic (`….v2`)
//! and both run side by side during migration.

use std::path::{Path, PathBuf};

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use apache_avro::schema_compatibility::SchemaCompatibility;

/// Why a schema may not follow a released one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{record}` is not backward compatible with released v{version}: {}", problems.join("; "))]
pub struct EvolutionError {
    /// The record.
    pub record: String,
    /// The released version it breaks.
    pub version: i32,
    /// What breaks, each naming a field path.
    pub problems: Vec<String>,
}

/// The folder with the released versions of every record.
pub fn history_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/history")
}

/// Released versions of a record (short name, e.g. `OrderPlaced`), in order: `(N, text)`.
pub fn releases(dir: &Path, record: &str) -> std::io::Result<Vec<(i32, String)>> {
    let folder = dir.join(record);
    let mut found = Vec::new();
    if !folder.exists() {
        return Ok(found);
    }
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        let version = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix('v'))
            .and_then(|n| n.strip_suffix(".avsc"))
            .and_then(|n| n.parse::<i32>().ok());
        if let Some(version) = version {
            found.push((version, std::fs::read_to_string(&path)?));
        }
    }
    found.sort_by_key(|(v, _)| *v);
    Ok(found)
}

/// Checks that `new` reads data written with `old`; on failure names each breaking field.
pub fn check_backward(
    record: &str,
    version: i32,
    new: &Schema,
    old: &Schema,
) -> Result<(), EvolutionError> {
    if SchemaCompatibility::can_read(old, new).is_ok() {
        return Ok(());
    }
    let mut problems = Vec::new();
    explain(old, new, record, &mut problems);
    if problems.is_empty() {
        let reason = SchemaCompatibility::can_read(old, new)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        problems.push(format!("{record}: {reason}"));
    }
    Err(EvolutionError {
        record: record.to_owned(),
        version,
        problems,
    })
}

/// Walks two record schemas field by field and reports the deepest fields that break.
fn explain(old: &Schema, new: &Schema, path: &str, problems: &mut Vec<String>) {
    match (unwrap_union(old), unwrap_union(new)) {
        (
            Schema::Record(RecordSchema {
                fields: old_fields, ..
            }),
            Schema::Record(RecordSchema {
                fields: new_fields, ..
            }),
        ) => {
            for field in new_fields {
                let here = format!("{path}.{}", field.name);
                match old_fields.iter().find(|f| f.name == field.name) {
                    None if field.default.is_none() => {
                        problems.push(format!("field `{here}` was added without a default"));
                    }
                    None => {}
                    Some(before)
                        if SchemaCompatibility::can_read(&before.schema, &field.schema)
                            .is_err() =>
                    {
                        let count = problems.len();
                        explain(&before.schema, &field.schema, &here, problems);
                        if problems.len() == count {
                            problems.push(format!(
                                "field `{here}` changed type from {} to {}",
                                describe(&before.schema),
                                describe(&field.schema)
                            ));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        (Schema::Array(a), Schema::Array(b)) => {
            explain(&a.items, &b.items, &format!("{path}[]"), problems)
        }
        _ => {}
    }
}

fn unwrap_union(schema: &Schema) -> &Schema {
    match schema {
        Schema::Union(union) => union
            .variants()
            .iter()
            .find(|v| !matches!(v, Schema::Null))
            .unwrap_or(schema),
        _ => schema,
    }
}

fn describe(schema: &Schema) -> String {
    serde_json::to_string(schema).unwrap_or_else(|_| format!("{schema:?}"))
}

/// Why the whole set could not be checked (unreadable files, broken compiled-in schemas).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// A history file could not be read.
    #[error("cannot read schema history")]
    Io(#[from] std::io::Error),
    /// A released schema is not valid Avro.
    #[error("released `{record}` v{version} is not valid avro: {reason}")]
    InvalidRelease {
        /// The record.
        record: String,
        /// The version.
        version: i32,
        /// apache-avro's message.
        reason: String,
    },
    /// The compiled-in schemas are broken.
    #[error("event schemas")]
    Schema(#[from] crate::schema::SchemaError),
}

/// The short name of a record (`OrderPlaced` for `bridge.events.OrderPlaced`).
pub fn short_name(record: &str) -> &str {
    record.rsplit('.').next().unwrap_or(record)
}

/// Checks every record against its releases in `dir`: BACKWARD compatible with every
/// released version, identical to the latest one, and its Rust `VERSION` equal to it.
/// Returns one readable problem per violation.
pub fn check_all(dir: &Path) -> Result<Vec<String>, GateError> {
    let mut problems = Vec::new();
    for (record, version) in crate::event::RECORDS {
        let current = crate::schema::record(record)?;
        let released = releases(dir, short_name(record))?;
        for (v, text) in &released {
            let old = Schema::parse_str(text).map_err(|e| GateError::InvalidRelease {
                record: (*record).to_owned(),
                version: *v,
                reason: e.to_string(),
            })?;
            if let Err(e) = check_backward(record, *v, &current.schema, &old) {
                problems.push(e.to_string());
            }
        }
        let current_json: Option<serde_json::Value> = serde_json::from_str(&current.text).ok();
        let latest = released
            .last()
            .and_then(|(_, t)| serde_json::from_str::<serde_json::Value>(t).ok());
        match released.last() {
            None => problems.push(format!("`{record}` has no release: run `bridgectl schemas release`")),
            Some(_) if latest != current_json => problems.push(format!(
                "`{record}` differs from its latest release: run `bridgectl schemas release` and bump its version in bridge-events"
            )),
            Some((latest_version, _)) if latest_version != version => problems.push(format!(
                "`{record}` is released as v{latest_version} but its Rust type says v{version}"
            )),
            Some(_) => {}
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Schema {
        Schema::parse_str(text).unwrap_or(Schema::Null)
    }

    const V1: &str = r#"{"type":"record","name":"R","fields":[
        {"name":"id","type":"string"},
        {"name":"totals","type":{"type":"record","name":"T","fields":[{"name":"grand_total","type":"long"}]}}]}"#;

    #[test]
    fn a_changed_nested_type_is_named_by_its_path() {
        let v2 = V1.replace(
            r#""grand_total","type":"long""#,
            r#""grand_total","type":"string""#,
        );
        let err = check_backward("R", 1, &parse(&v2), &parse(V1));
        let Err(err) = err else {
            panic!("a type change passed")
        };
        assert_eq!(
            err.problems,
            vec![r#"field `R.totals.grand_total` changed type from "long" to "string""#]
        );
    }

    #[test]
    fn an_added_field_needs_a_default() {
        let without = V1.replace(
            r#"{"name":"id","type":"string"},"#,
            r#"{"name":"id","type":"string"},{"name":"x","type":"int"},"#,
        );
        let with = V1.replace(
            r#"{"name":"id","type":"string"},"#,
            r#"{"name":"id","type":"string"},{"name":"x","type":"int","default":0},"#,
        );
        let err = check_backward("R", 1, &parse(&without), &parse(V1));
        assert!(
            matches!(&err, Err(e) if e.problems == ["field `R.x` was added without a default"]),
            "{err:?}"
        );
        assert_eq!(check_backward("R", 1, &parse(&with), &parse(V1)), Ok(()));
    }

    #[test]
    fn widening_int_to_long_is_allowed() {
        let old = r#"{"type":"record","name":"R","fields":[{"name":"n","type":"int"}]}"#;
        let new = r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}"#;
        assert_eq!(check_backward("R", 1, &parse(new), &parse(old)), Ok(()));
    }
}
