//! The registry's state and rules, with no I/O: every change is an [`Entry`] that the
//! caller first makes durable in the journal and then applies, so a restart that replays
//! the journal rebuilds exactly the same state.

use std::collections::BTreeMap;

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use crate::compat::Compatibility;

/// Why a registry request failed, with the error code Confluent's API gives it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// The subject has no (undeleted) version.
    #[error("subject `{0}` not found")]
    SubjectNotFound(String),
    /// The subject exists but not at that version.
    #[error("version `{version}` not found for subject `{subject}`")]
    VersionNotFound {
        /// The subject asked for.
        subject: String,
        /// The version asked for.
        version: String,
    },
    /// No schema with that id, or the schema is not registered under the subject.
    #[error("schema not found")]
    SchemaNotFound,
    /// The candidate breaks the subject's compatibility rule.
    #[error("schema being registered is incompatible with an earlier schema for subject `{subject}`: {}", problems.join("; "))]
    Incompatible {
        /// The subject registered to.
        subject: String,
        /// What breaks, one entry per failed check.
        problems: Vec<String>,
    },
    /// The text is not a valid Avro schema.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// A version that is neither a positive number nor `latest`.
    #[error("the specified version `{0}` is not valid")]
    InvalidVersion(String),
    /// A permanent delete of a version that was not soft-deleted first.
    #[error(
        "subject `{subject}` version `{version}` was not deleted first before being permanently deleted"
    )]
    NotSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: u32,
    },
}

impl RegistryError {
    /// The Confluent `error_code` for this error (its first three digits are the HTTP status).
    pub fn code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound { .. } => 40402,
            Self::SchemaNotFound => 40403,
            Self::NotSoftDeleted { .. } => 40407,
            Self::Incompatible { .. } => 409,
            Self::InvalidSchema(_) => 42201,
            Self::InvalidVersion(_) => 42202,
        }
    }
}

/// One durable change to the registry, as it is stored in the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A schema registered (or soft-deleted, with `deleted`) under a subject and version.
    Schema {
        /// The subject.
        subject: String,
        /// The version under the subject, from 1.
        version: u32,
        /// The global schema id.
        id: u32,
        /// The schema text as registered.
        schema: String,
        /// Soft-deleted: hidden from lookups but its id still resolves.
        deleted: bool,
    },
    /// A version removed for good.
    Purge {
        /// The subject.
        subject: String,
        /// The version.
        version: u32,
    },
    /// The compatibility rule for one subject, or the global one when `subject` is `None`.
    Config {
        /// The subject, or none for the global default.
        subject: Option<String>,
        /// The rule; `None` removes a subject override.
        compatibility: Option<Compatibility>,
    },
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// The global schema id.
    pub id: u32,
    /// Soft-deleted.
    pub deleted: bool,
}

/// What a subject-version lookup returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The version.
    pub version: u32,
    /// The global schema id.
    pub id: u32,
    /// The schema text.
    pub schema: String,
}

/// Outcome of preparing a registration.
#[derive(Debug, PartialEq)]
pub enum Registration {
    /// The same schema is already registered under the subject; nothing to write.
    Existing(u32),
    /// A new version: make the entry durable, then apply it.
    New(Entry),
}

#[derive(Debug, Clone)]
struct Stored {
    text: String,
    /// The parsed JSON, used to recognise the same schema written differently.
    json: serde_json::Value,
}

/// The whole registry state.
#[derive(Debug, Default)]
pub struct Registry {
    schemas: BTreeMap<u32, Stored>,
    subjects: BTreeMap<String, BTreeMap<u32, Version>>,
    global: Option<Compatibility>,
    overrides: BTreeMap<String, Compatibility>,
}

/// A version as written in a request path: a number or `latest` (also `-1`).
pub fn parse_version(text: &str) -> Result<Option<u32>, RegistryError> {
    match text {
        "latest" | "-1" => Ok(None),
        _ => match text.parse::<u32>() {
            Ok(v) if v > 0 => Ok(Some(v)),
            _ => Err(RegistryError::InvalidVersion(text.to_owned())),
        },
    }
}

impl Registry {
    /// The global compatibility rule (BACKWARD unless set, as in Confluent's registry).
    pub fn global_compatibility(&self) -> Compatibility {
        self.global.unwrap_or(Compatibility::Backward)
    }

    /// The subject's own rule, if it has one.
    pub fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.overrides.get(subject).copied()
    }

    /// The rule in force for a subject.
    pub fn effective_compatibility(&self, subject: &str) -> Compatibility {
        self.subject_compatibility(subject)
            .unwrap_or_else(|| self.global_compatibility())
    }

    /// Subjects with at least one version (`deleted` includes soft-deleted ones).
    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, versions)| versions.values().any(|v| deleted || !v.deleted))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The versions of a subject.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>, RegistryError> {
        let versions: Vec<u32> = self
            .subjects
            .get(subject)
            .into_iter()
            .flat_map(|vs| vs.iter())
            .filter(|(_, v)| deleted || !v.deleted)
            .map(|(n, _)| *n)
            .collect();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    /// The schema text for a global id (soft-deleted ones too: old data still needs them).
    pub fn schema_by_id(&self, id: u32) -> Result<&str, RegistryError> {
        self.schemas
            .get(&id)
            .map(|s| s.text.as_str())
            .ok_or(RegistryError::SchemaNotFound)
    }

    /// Every (subject, version) that uses a global id.
    pub fn usages_of(&self, id: u32) -> Vec<(String, u32)> {
        self.subjects
            .iter()
            .flat_map(|(s, vs)| {
                vs.iter()
                    .filter(move |(_, v)| v.id == id && !v.deleted)
                    .map(move |(n, _)| (s.clone(), *n))
            })
            .collect()
    }

    /// One version of a subject; `None` is the latest.
    pub fn version(
        &self,
        subject: &str,
        version: Option<u32>,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let versions = self
            .subjects
            .get(subject)
            .filter(|vs| vs.values().any(|v| deleted || !v.deleted))
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
        let found = match version {
            None => versions.iter().rev().find(|(_, v)| deleted || !v.deleted),
            Some(n) => versions
                .get_key_value(&n)
                .filter(|(_, v)| deleted || !v.deleted),
        };
        let (number, v) = found.ok_or_else(|| RegistryError::VersionNotFound {
            subject: subject.to_owned(),
            version: version.map_or_else(|| "latest".to_owned(), |n| n.to_string()),
        })?;
        Ok(SubjectVersion {
            subject: subject.to_owned(),
            version: *number,
            id: v.id,
            schema: self.schema_by_id(v.id)?.to_owned(),
        })
    }

    /// Finds a schema already registered under the subject.
    pub fn lookup(&self, subject: &str, text: &str) -> Result<SubjectVersion, RegistryError> {
        let (_, json) = parse(text)?;
        let versions = self
            .subjects
            .get(subject)
            .filter(|vs| vs.values().any(|v| !v.deleted))
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
        let (number, _) = versions
            .iter()
            .filter(|(_, v)| !v.deleted)
            .find(|(_, v)| self.schemas.get(&v.id).is_some_and(|s| s.json == json))
            .ok_or(RegistryError::SchemaNotFound)?;
        self.version(subject, Some(*number), false)
    }

    /// Checks a candidate against the subject's rule; `against` limits it to one version.
    pub fn check_compatibility(
        &self,
        subject: &str,
        text: &str,
        against: Option<Option<u32>>,
    ) -> Result<Vec<String>, RegistryError> {
        let (candidate, _) = parse(text)?;
        let rule = self.effective_compatibility(subject);
        let live: Vec<u32> = match self.subjects.get(subject) {
            Some(vs) => vs
                .iter()
                .filter(|(_, v)| !v.deleted)
                .map(|(_, v)| v.id)
                .collect(),
            None => Vec::new(),
        };
        let ids: Vec<u32> = match against {
            Some(version) => vec![self.version(subject, version, false)?.id],
            None if rule.is_transitive() => live,
            None => live.last().copied().into_iter().collect(),
        };
        let mut problems = Vec::new();
        for id in ids {
            let (existing, _) = parse(self.schema_by_id(id)?)?;
            problems.extend(rule.check(&candidate, &existing));
        }
        Ok(problems)
    }

    /// Decides what registering `text` under `subject` means, without changing anything.
    pub fn prepare_register(
        &self,
        subject: &str,
        text: &str,
    ) -> Result<Registration, RegistryError> {
        let (_, json) = parse(text)?;
        if let Ok(existing) = self.lookup(subject, text) {
            return Ok(Registration::Existing(existing.id));
        }
        let problems = self.check_compatibility(subject, text, None)?;
        if !problems.is_empty() {
            return Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                problems,
            });
        }
        let id = self
            .schemas
            .iter()
            .find(|(_, s)| s.json == json)
            .map(|(id, _)| *id)
            .unwrap_or_else(|| self.schemas.keys().next_back().map_or(1, |last| last + 1));
        let version = self
            .subjects
            .get(subject)
            .and_then(|vs| vs.keys().next_back())
            .map_or(1, |last| last + 1);
        Ok(Registration::New(Entry::Schema {
            subject: subject.to_owned(),
            version,
            id,
            schema: compact(&json),
            deleted: false,
        }))
    }

    /// The entries that delete a subject's versions (soft, or permanent after soft).
    pub fn prepare_delete(
        &self,
        subject: &str,
        version: Option<Option<u32>>,
        permanent: bool,
    ) -> Result<(Vec<u32>, Vec<Entry>), RegistryError> {
        let all = self
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
        let targets: Vec<u32> = match version {
            None => all
                .iter()
                .filter(|(_, v)| permanent || !v.deleted)
                .map(|(n, _)| *n)
                .collect(),
            Some(v) => vec![self.version(subject, v, permanent)?.version],
        };
        if targets.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        let mut entries = Vec::new();
        for number in &targets {
            let Some(v) = all.get(number) else { continue };
            if permanent {
                if !v.deleted {
                    return Err(RegistryError::NotSoftDeleted {
                        subject: subject.to_owned(),
                        version: *number,
                    });
                }
                entries.push(Entry::Purge {
                    subject: subject.to_owned(),
                    version: *number,
                });
            } else {
                entries.push(Entry::Schema {
                    subject: subject.to_owned(),
                    version: *number,
                    id: v.id,
                    schema: self.schema_by_id(v.id)?.to_owned(),
                    deleted: true,
                });
            }
        }
        Ok((targets, entries))
    }

    /// Applies a durable entry. Entries replayed from the journal go through here too.
    pub fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Schema {
                subject,
                version,
                id,
                schema,
                deleted,
            } => {
                if let Ok((_, json)) = parse(&schema) {
                    self.schemas
                        .entry(id)
                        .or_insert(Stored { text: schema, json });
                }
                self.subjects
                    .entry(subject)
                    .or_default()
                    .insert(version, Version { id, deleted });
            }
            Entry::Purge { subject, version } => {
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    versions.remove(&version);
                    if versions.is_empty() {
                        self.subjects.remove(&subject);
                    }
                }
            }
            Entry::Config {
                subject: None,
                compatibility,
            } => self.global = compatibility,
            Entry::Config {
                subject: Some(subject),
                compatibility: Some(level),
            } => {
                self.overrides.insert(subject, level);
            }
            Entry::Config {
                subject: Some(subject),
                compatibility: None,
            } => {
                self.overrides.remove(&subject);
            }
        }
    }
}

fn parse(text: &str) -> Result<(Schema, serde_json::Value), RegistryError> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let schema = Schema::parse(&json).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    Ok((schema, json))
}

fn compact(json: &serde_json::Value) -> String {
    json.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
    const BAD: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;

    fn register(r: &mut Registry, subject: &str, text: &str) -> Result<u32, RegistryError> {
        match r.prepare_register(subject, text)? {
            Registration::Existing(id) => Ok(id),
            Registration::New(entry) => {
                let Entry::Schema { id, .. } = &entry else {
                    panic!("registration produced {entry:?}")
                };
                let id = *id;
                r.apply(entry);
                Ok(id)
            }
        }
    }

    #[test]
    fn registering_the_same_schema_twice_gives_one_id_and_one_version() {
        let mut r = Registry::default();
        let first = register(&mut r, "s", V1);
        // Same schema, other whitespace and key order.
        let again = register(
            &mut r,
            "s",
            r#"{ "name":"R", "type":"record", "fields":[{"type":"string","name":"a"}] }"#,
        );
        assert_eq!(first, Ok(1));
        assert_eq!(again, Ok(1));
        assert_eq!(r.versions("s", false), Ok(vec![1]));
    }

    #[test]
    fn ids_are_global_and_shared_between_subjects() {
        let mut r = Registry::default();
        assert_eq!(register(&mut r, "a", V1), Ok(1));
        assert_eq!(register(&mut r, "b", V1), Ok(1));
        assert_eq!(register(&mut r, "b", V2), Ok(2));
        assert_eq!(
            r.usages_of(1),
            vec![("a".to_owned(), 1), ("b".to_owned(), 1)]
        );
    }

    #[test]
    fn incompatible_schema_is_refused_with_the_reason() {
        let mut r = Registry::default();
        register(&mut r, "s", V1).ok();
        let err = register(&mut r, "s", BAD);
        assert!(
            matches!(&err, Err(RegistryError::Incompatible { problems, .. }) if !problems.is_empty()),
            "{err:?}"
        );
        assert_eq!(err.map_err(|e| e.code()), Err(409));
    }

    #[test]
    fn none_rule_on_the_subject_allows_any_change() {
        let mut r = Registry::default();
        register(&mut r, "s", V1).ok();
        r.apply(Entry::Config {
            subject: Some("s".into()),
            compatibility: Some(Compatibility::None),
        });
        assert_eq!(register(&mut r, "s", BAD), Ok(2));
    }

    #[test]
    fn soft_delete_hides_the_version_but_keeps_the_id_resolvable() {
        let mut r = Registry::default();
        register(&mut r, "s", V1).ok();
        let (versions, entries) = r.prepare_delete("s", None, false).unwrap_or_default();
        assert_eq!(versions, vec![1]);
        entries.into_iter().for_each(|e| r.apply(e));
        assert!(r.versions("s", false).is_err());
        assert_eq!(r.versions("s", true), Ok(vec![1]));
        assert!(r.schema_by_id(1).is_ok());
        // A permanent delete now succeeds; before the soft delete it would not.
        let (_, purge) = r.prepare_delete("s", None, true).unwrap_or_default();
        purge.into_iter().for_each(|e| r.apply(e));
        assert!(r.subjects(true).is_empty());
    }

    #[test]
    fn permanent_delete_requires_a_soft_delete_first() {
        let mut r = Registry::default();
        register(&mut r, "s", V1).ok();
        assert!(matches!(
            r.prepare_delete("s", None, true),
            Err(RegistryError::NotSoftDeleted { .. })
        ));
    }

    #[test]
    fn latest_and_numbered_versions_resolve() {
        let mut r = Registry::default();
        register(&mut r, "s", V1).ok();
        register(&mut r, "s", V2).ok();
        assert_eq!(r.version("s", None, false).map(|v| v.version), Ok(2));
        assert_eq!(r.version("s", Some(1), false).map(|v| v.id), Ok(1));
        assert!(matches!(
            r.version("s", Some(7), false),
            Err(RegistryError::VersionNotFound { .. })
        ));
        assert_eq!(parse_version("latest"), Ok(None));
        assert!(parse_version("zero").is_err());
    }

    #[test]
    fn invalid_avro_is_refused() {
        let mut r = Registry::default();
        let err = register(&mut r, "s", r#"{"type":"recrod"}"#);
        assert_eq!(err.map_err(|e| e.code()), Err(42201));
    }
}
