//! `bridgectl findings`: the reconciler's findings as they stand — the last state of each
//! finding on the findings topic, open ones (or all with `--all`), oldest first.

use bridge_runtime::config::{KafkaConfig, RegistryConfig};
use std::collections::BTreeMap;

use bridge_events::Event;
use bridge_events::reconciliation::{FindingState, ReconciliationFinding};
use rdkafka::message::Message;

/// Prints the findings on `topic`.
pub async fn list(
    kafka: &KafkaConfig,
    registry: &RegistryConfig,
    topic: &str,
    all: bool,
    output: crate::Output,
) -> anyhow::Result<()> {
    let codec = registry.codec()?;
    let mut last: BTreeMap<String, ReconciliationFinding> = BTreeMap::new();
    for message in crate::parked::read_all(kafka, topic)? {
        let Some(payload) = message.payload() else {
            continue;
        };
        if let Event::ReconciliationFinding(f) = codec.decode(payload).await? {
            last.insert(f.finding_id.clone(), f);
        }
    }
    let mut shown: Vec<&ReconciliationFinding> = last
        .values()
        .filter(|f| all || f.state == FindingState::Open)
        .collect();
    shown.sort_by_key(|f| f.first_seen_at);
    let open = last
        .values()
        .filter(|f| f.state == FindingState::Open)
        .count();
    if output == crate::Output::Json {
        let rows: Vec<serde_json::Value> = shown
            .iter()
            .map(|f| {
                serde_json::json!({
                    "finding_id": f.finding_id,
                    "state": format!("{:?}", f.state),
                    "severity": format!("{:?}", f.severity),
                    "kind": format!("{:?}", f.kind),
                    "entity_type": f.entity_type,
                    "entity_ref": f.entity_ref,
                    "explanation": f.explanation,
                    "first_seen_at": f.first_seen_at,
                })
            })
            .collect();
        let resolved = last.len() - open;
        let doc = serde_json::json!({ "topic": topic, "open": open, "resolved": resolved, "findings": rows });
        println!("{doc}");
        return Ok(());
    }
    for f in &shown {
        let since = chrono::DateTime::from_timestamp_millis(f.first_seen_at)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        println!(
            "{since}  {:?} {:?} {:?} {} {}: {}",
            f.state, f.severity, f.kind, f.entity_type, f.entity_ref, f.explanation
        );
    }
    println!(
        "{open} open finding(s), {} resolved, on {topic}",
        last.len() - open
    );
    Ok(())
}
