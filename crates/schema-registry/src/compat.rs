//! Compatibility levels and the Avro compatibility check behind them.

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde::{Deserialize, Serialize};

/// A subject's compatibility rule, named as Confluent names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// Any change is accepted.
    None,
    /// The new schema reads data written with the latest one.
    Backward,
    /// The new schema reads data written with every earlier one.
    BackwardTransitive,
    /// The latest schema reads data written with the new one.
    Forward,
    /// Every earlier schema reads data written with the new one.
    ForwardTransitive,
    /// Backward and forward against the latest.
    Full,
    /// Backward and forward against every earlier one.
    FullTransitive,
}

impl Compatibility {
    /// Whether the rule looks at every earlier version, not only the latest.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Checks `candidate` against one `existing` schema; returns the reasons it fails.
    pub fn check(self, candidate: &Schema, existing: &Schema) -> Vec<String> {
        let backward = || {
            reader_problem(
                "new schema cannot read data written by",
                candidate,
                existing,
            )
        };
        let forward = || {
            reader_problem(
                "existing schema cannot read data written by new schema; against",
                existing,
                candidate,
            )
        };
        let problems: Vec<Option<String>> = match self {
            Self::None => vec![],
            Self::Backward | Self::BackwardTransitive => vec![backward()],
            Self::Forward | Self::ForwardTransitive => vec![forward()],
            Self::Full | Self::FullTransitive => vec![backward(), forward()],
        };
        problems.into_iter().flatten().collect()
    }
}

/// Returns why `reader` cannot read what `writer` wrote, or `None` when it can.
fn reader_problem(context: &str, reader: &Schema, writer: &Schema) -> Option<String> {
    SchemaCompatibility::can_read(writer, reader)
        .err()
        .map(|e| format!("{context} `{}`: {e}", schema_name(writer)))
}

fn schema_name(schema: &Schema) -> String {
    schema
        .name()
        .map(|n| n.fullname(None))
        .unwrap_or_else(|| "<unnamed>".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Schema {
        match Schema::parse_str(s) {
            Ok(schema) => schema,
            Err(e) => panic!("test schema does not parse: {e}"),
        }
    }

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    const V2_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
    const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#;
    const V2_RETYPED: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;

    #[test]
    fn backward_accepts_a_field_added_with_a_default() {
        assert!(
            Compatibility::Backward
                .check(&parse(V2_DEFAULT), &parse(V1))
                .is_empty()
        );
    }

    #[test]
    fn backward_refuses_a_field_added_without_a_default() {
        let problems = Compatibility::Backward.check(&parse(V2_NO_DEFAULT), &parse(V1));
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn backward_refuses_a_changed_field_type() {
        assert!(
            !Compatibility::Backward
                .check(&parse(V2_RETYPED), &parse(V1))
                .is_empty()
        );
    }

    #[test]
    fn forward_refuses_a_removed_field_without_default() {
        // Old readers need `a`; a writer without it breaks them.
        let no_a = r#"{"type":"record","name":"R","fields":[]}"#;
        assert!(
            !Compatibility::Forward
                .check(&parse(no_a), &parse(V1))
                .is_empty()
        );
        assert!(
            Compatibility::Backward
                .check(&parse(no_a), &parse(V1))
                .is_empty()
        );
    }

    #[test]
    fn none_accepts_anything() {
        assert!(
            Compatibility::None
                .check(&parse(V2_RETYPED), &parse(V1))
                .is_empty()
        );
    }
}
