//! The `.avsc` files of `schemas/`, compiled in, and bundled into one self-contained
//! schema per event record: a reference to a shared named type (by full name, e.g.
//! `bridge.events.Envelope`) is replaced by its definition at first use, as Avro requires
//! when a registry without schema references is to hold it.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};

use apache_avro::Schema;
use serde_json::{Map, Value};

macro_rules! sources {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../schemas/", $path)))),*]
    };
}

/// Every schema file: shared types under `common/`, one event record per other file.
pub const SOURCES: &[(&str, &str)] = sources![
    "common/Envelope.avsc",
    "common/OrderTotals.avsc",
    "common/OrderLine.avsc",
    "common/LineQuantity.avsc",
    "OrderPlaced.avsc",
    "OrderUpdated.avsc",
    "OrderCancelled.avsc",
    "CreditMemoCreated.avsc",
    "InventoryMovement.avsc",
    "StockDeltaAggregated.avsc",
    "ErpOrderResult.avsc",
    "StockAdjustmentPosted.avsc",
    "OrderShipped.avsc",
    "ReconciliationFinding.avsc",
    "ResyncRequested.avsc",
];

/// Why the schema files do not form a valid set.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    /// A file is not JSON.
    #[error("`{file}` is not JSON: {reason}")]
    NotJson {
        /// The file.
        file: String,
        /// The parser's message.
        reason: String,
    },
    /// A file's top level is not a named type.
    #[error("`{file}` does not define a named type at its top level")]
    Unnamed {
        /// The file.
        file: String,
    },
    /// The bundled schema is not valid Avro.
    #[error("bundled schema `{record}` is not valid avro: {reason}")]
    Invalid {
        /// The record.
        record: String,
        /// apache-avro's message.
        reason: String,
    },
    /// No such record.
    #[error("no schema for record `{0}`")]
    Unknown(String),
}

/// A bundled event schema: its self-contained JSON text and parsed form.
#[derive(Debug)]
pub struct RecordSchema {
    /// Full name, e.g. `bridge.events.OrderPlaced`.
    pub name: String,
    /// The self-contained schema text, as registered.
    pub text: String,
    /// The parsed schema.
    pub schema: Schema,
}

/// Full name of a named type definition (`namespace.name`, or `name` when it has dots).
pub fn full_name(definition: &Map<String, Value>, enclosing: Option<&str>) -> Option<String> {
    let name = definition.get("name")?.as_str()?;
    if name.contains('.') {
        return Some(name.to_owned());
    }
    match definition
        .get("namespace")
        .and_then(Value::as_str)
        .or(enclosing)
    {
        Some(ns) if !ns.is_empty() => Some(format!("{ns}.{name}")),
        _ => Some(name.to_owned()),
    }
}

/// Bundles `sources` into one self-contained schema per file outside `common/`.
pub fn bundle(sources: &[(&str, &str)]) -> Result<BTreeMap<String, RecordSchema>, SchemaError> {
    let mut shared = BTreeMap::new();
    let mut records = Vec::new();
    for (file, text) in sources {
        let json: Value = serde_json::from_str(text).map_err(|e| SchemaError::NotJson {
            file: (*file).to_owned(),
            reason: e.to_string(),
        })?;
        let name = json
            .as_object()
            .and_then(|o| full_name(o, None))
            .ok_or_else(|| SchemaError::Unnamed {
                file: (*file).to_owned(),
            })?;
        if file.starts_with("common/") {
            shared.insert(name, json);
        } else {
            records.push((name, json));
        }
    }
    let mut bundled = BTreeMap::new();
    for (name, json) in records {
        let mut defined = HashSet::new();
        let inlined = inline(&json, &shared, &mut defined, None);
        let schema = Schema::parse(&inlined).map_err(|e| SchemaError::Invalid {
            record: name.clone(),
            reason: e.to_string(),
        })?;
        let text = inlined.to_string();
        bundled.insert(name.clone(), RecordSchema { name, text, schema });
    }
    Ok(bundled)
}

/// Replaces the first reference to each shared type with its (itself inlined) definition.
fn inline(
    value: &Value,
    shared: &BTreeMap<String, Value>,
    defined: &mut HashSet<String>,
    ns: Option<&str>,
) -> Value {
    match value {
        Value::String(reference) => match shared.get(reference) {
            Some(definition) if defined.insert(reference.clone()) => {
                inline(definition, shared, defined, ns)
            }
            _ => value.clone(),
        },
        Value::Array(union) => Value::Array(
            union
                .iter()
                .map(|v| inline(v, shared, defined, ns))
                .collect(),
        ),
        Value::Object(object) => {
            let kind = object.get("type").and_then(Value::as_str);
            let own_name = match kind {
                Some("record" | "error" | "enum" | "fixed") => full_name(object, ns),
                _ => None,
            };
            if let Some(name) = &own_name {
                defined.insert(name.clone());
            }
            let inner_ns = own_name
                .as_deref()
                .and_then(|n| n.rsplit_once('.').map(|(ns, _)| ns.to_owned()))
                .or_else(|| ns.map(str::to_owned));
            let inner_ns = inner_ns.as_deref();
            let mut out = Map::new();
            for (key, v) in object {
                let v = match key.as_str() {
                    "fields" => match v {
                        Value::Array(fields) => Value::Array(
                            fields
                                .iter()
                                .map(|field| match field {
                                    Value::Object(f) => {
                                        let mut f = f.clone();
                                        if let Some(t) = f.get("type") {
                                            let t = inline(t, shared, defined, inner_ns);
                                            f.insert("type".into(), t);
                                        }
                                        Value::Object(f)
                                    }
                                    other => other.clone(),
                                })
                                .collect(),
                        ),
                        other => other.clone(),
                    },
                    "items" | "values" => inline(v, shared, defined, inner_ns),
                    "type" if !v.is_string() => inline(v, shared, defined, inner_ns),
                    "type" if kind.is_some_and(|k| shared.contains_key(k)) => {
                        inline(v, shared, defined, inner_ns)
                    }
                    _ => v.clone(),
                };
                out.insert(key.clone(), v);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

static BUNDLED: OnceLock<Result<BTreeMap<String, Arc<RecordSchema>>, SchemaError>> =
    OnceLock::new();

/// The compiled-in schemas, bundled once.
pub fn all() -> Result<&'static BTreeMap<String, Arc<RecordSchema>>, SchemaError> {
    BUNDLED
        .get_or_init(|| {
            bundle(SOURCES).map(|m| m.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The bundled schema of one record.
pub fn record(name: &str) -> Result<Arc<RecordSchema>, SchemaError> {
    all()?
        .get(name)
        .cloned()
        .ok_or_else(|| SchemaError::Unknown(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_schema_bundles_into_valid_self_contained_avro() {
        let all = all().map_err(|e| e.to_string());
        let Ok(all) = all else { panic!("{all:?}") };
        assert_eq!(all.len(), 11, "{:?}", all.keys().collect::<Vec<_>>());
        for (name, record) in all {
            // Self-contained: the text parses on its own, with no other schema given.
            assert!(Schema::parse_str(&record.text).is_ok(), "{name}");
            assert_eq!(
                record.schema.name().map(|n| n.fullname(None)).as_deref(),
                Some(name.as_str())
            );
        }
    }

    #[test]
    fn a_shared_type_is_defined_once_then_referenced_by_name() {
        let Ok(placed) = record("bridge.events.OrderPlaced") else {
            panic!("no OrderPlaced")
        };
        // OrderTotals is used twice: defined at the first use, named at the second.
        assert_eq!(
            placed.text.matches("\"name\":\"OrderTotals\"").count(),
            1,
            "{}",
            placed.text
        );
        assert!(
            placed
                .text
                .contains("\"type\":\"bridge.events.OrderTotals\"")
        );
    }

    #[test]
    fn a_reference_to_a_missing_type_is_reported() {
        let sources = [(
            "Broken.avsc",
            r#"{"type":"record","name":"B","namespace":"x","fields":[{"name":"e","type":"x.Missing"}]}"#,
        )];
        assert!(matches!(bundle(&sources), Err(SchemaError::Invalid { .. })));
    }
}
