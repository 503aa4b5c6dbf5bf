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
    for f in &shown {
        let since = chrono::DateTime::from_timestamp_millis(f.first_seen_at)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        println!(
            "{since}  {:?} {:?} {:?} {} {}: {}",
            f.state, f.severity, f.kind, f.entity_type, f.entity_ref, f.explanation
        );
    }
    let open = last
        .values()
        .filter(|f| f.state == FindingState::Open)
        .count();
    println!(
        "{open} open finding(s), {} resolved, on {topic}",
        last.len() - open
    );
    Ok(())
}
