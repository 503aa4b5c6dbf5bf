//! Findings as state: each open finding is kept under its entity, so a later run emits it
//! again only when its values change, and emits its resolution when the difference is
//! gone. Repairs are counted per entity and bounded.

use bridge_events::ids::FactIdentity;
use bridge_events::reconciliation::{
    FindingKind, FindingState, ReconciliationFinding, ResyncRequested, ResyncTarget, Severity,
};
use bridge_events::{AvroEvent, Envelope, Event, Millis};
use bridge_runtime::handler::{Context, HandlerError};
use bridge_runtime::json_state::decode;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::compare::Difference;

const SOURCE: &str = "reconciler";

/// An open finding as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFinding {
    /// What differs.
    pub kind: FindingKind,
    /// How urgent.
    pub severity: Severity,
    /// Magento's value.
    pub magento_value: Option<String>,
    /// The ERP's value.
    pub erp_value: Option<String>,
    /// ERP minus Magento.
    pub difference: Option<Decimal>,
    /// The sentence.
    pub explanation: String,
    /// First seen.
    pub first_seen_at: Millis,
}

/// Repairs asked for one entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempts {
    /// How many.
    pub count: u32,
    /// When the last one was asked.
    pub last_at: Millis,
}

/// The stable id of a finding: kind, entity and part.
pub fn finding_id(kind: FindingKind, entity_ref: &str, detail: &str) -> String {
    let fact = format!("{kind:?}/{detail}");
    FactIdentity {
        source: SOURCE,
        entity: entity_ref,
        fact: &fact,
        version: None,
    }
    .event_id()
}

/// Which comparison a finding belongs to: each settles only its own findings of an entity
/// (the ERP-side scan must not resolve what the order comparison found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Orders the bridge knows, against both systems.
    Orders,
    /// ERP orders against Magento.
    ErpOrders,
    /// Stock.
    Stock,
}

impl Scope {
    fn tag(self) -> char {
        match self {
            Self::Orders => 'o',
            Self::ErpOrders => 'e',
            Self::Stock => 's',
        }
    }
}

fn open_prefix(scope: Scope, entity_ref: &str) -> Vec<u8> {
    format!("f/{}/{entity_ref}\u{1f}", scope.tag()).into_bytes()
}

/// Repairs are counted per scope too: a clean result of one comparison must not reset the
/// count of another's repairs (the ERP-side scan sees every ERP order clean or not).
fn attempts_key(scope: Scope, entity_ref: &str) -> Vec<u8> {
    format!("a/{}/{entity_ref}", scope.tag()).into_bytes()
}

/// What settling one entity changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Findings opened or changed.
    pub opened: Vec<FindingKind>,
    /// Findings resolved.
    pub resolved: Vec<FindingKind>,
    /// Open findings of the entity now.
    pub open: Vec<FindingKind>,
}

/// Where findings go.
pub struct Sink<'t> {
    /// The findings topic.
    pub findings_topic: &'t str,
    /// The resync topic.
    pub resync_topic: &'t str,
}

impl Sink<'_> {
    /// Brings the stored findings of `entity_ref` to `differences`: emits new or changed
    /// ones as open and vanished ones as resolved.
    pub fn settle(
        &self,
        ctx: &mut Context<'_>,
        scope: Scope,
        entity_type: &str,
        entity_ref: &str,
        differences: &[Difference],
    ) -> Result<Settled, HandlerError> {
        let now = ctx.now();
        let prefix = open_prefix(scope, entity_ref);
        let mut stored = Vec::new();
        for (key, raw) in ctx.scan(&prefix)? {
            let finding: OpenFinding = decode(&key, &raw)?;
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            stored.push((id, finding));
        }
        let mut settled = Settled::default();
        let mut current = Vec::new();
        for d in differences {
            let id = finding_id(d.kind, entity_ref, &d.detail);
            let before = stored.iter().find(|(s, _)| *s == id).map(|(_, f)| f);
            let finding = OpenFinding {
                kind: d.kind,
                severity: d.severity,
                magento_value: d.magento_value.clone(),
                erp_value: d.erp_value.clone(),
                difference: d.difference,
                explanation: d.explanation.clone(),
                first_seen_at: before.map_or(now, |b| b.first_seen_at),
            };
            settled.open.push(d.kind);
            if before != Some(&finding) {
                ctx.put_json(&[prefix.as_slice(), id.as_bytes()].concat(), &finding, None)?;
                self.emit_finding(
                    ctx,
                    entity_type,
                    entity_ref,
                    &id,
                    &finding,
                    FindingState::Open,
                );
                settled.opened.push(d.kind);
            }
            current.push(id);
        }
        for (id, finding) in stored {
            if current.contains(&id) {
                continue;
            }
            ctx.delete(&[prefix.as_slice(), id.as_bytes()].concat());
            let resolved = OpenFinding {
                explanation: format!("Resolved: {}", finding.explanation),
                ..finding
            };
            self.emit_finding(
                ctx,
                entity_type,
                entity_ref,
                &id,
                &resolved,
                FindingState::Resolved,
            );
            settled.resolved.push(resolved.kind);
        }
        if current.is_empty() {
            ctx.delete(&attempts_key(scope, entity_ref));
        }
        Ok(settled)
    }

    fn emit_finding(
        &self,
        ctx: &mut Context<'_>,
        entity_type: &str,
        entity_ref: &str,
        id: &str,
        finding: &OpenFinding,
        state: FindingState,
    ) {
        let now = ctx.now();
        let fact = format!("{state:?}");
        let event = ReconciliationFinding {
            envelope: Envelope {
                event_id: FactIdentity {
                    source: SOURCE,
                    entity: id,
                    fact: &fact,
                    version: Some(now),
                }
                .event_id(),
                event_type: ReconciliationFinding::RECORD.into(),
                schema_version: ReconciliationFinding::VERSION,
                occurred_at: now,
                produced_at: now,
                source: SOURCE.into(),
                correlation_id: entity_ref.to_owned(),
                causation_id: None,
            },
            finding_id: id.to_owned(),
            kind: finding.kind,
            severity: finding.severity,
            state,
            entity_type: entity_type.to_owned(),
            entity_ref: entity_ref.to_owned(),
            magento_value: finding.magento_value.clone(),
            erp_value: finding.erp_value.clone(),
            difference: finding.difference,
            first_seen_at: finding.first_seen_at,
            explanation: finding.explanation.clone(),
        };
        match state {
            FindingState::Open => tracing::warn!(
                finding_id = id, kind = ?finding.kind, entity_ref, explanation = %finding.explanation,
                "reconciliation finding"
            ),
            FindingState::Resolved => tracing::info!(
                finding_id = id, kind = ?finding.kind, entity_ref, "reconciliation finding resolved"
            ),
        }
        ctx.emit(
            self.findings_topic,
            entity_ref,
            Event::ReconciliationFinding(event),
        );
    }

    /// Asks for a repair of `entity_ref` unless `max_attempts` were asked already or the
    /// last one is younger than `min_gap` (it may still be on its way). Returns whether it
    /// asked.
    #[allow(clippy::too_many_arguments)]
    pub fn request_repair(
        &self,
        ctx: &mut Context<'_>,
        scope: Scope,
        target: ResyncTarget,
        entity_type: &str,
        entity_ref: &str,
        reason: &str,
        finding: Option<&str>,
        quantity: Option<Decimal>,
        limits: (u32, Millis),
    ) -> Result<bool, HandlerError> {
        let (max_attempts, min_gap) = limits;
        let now = ctx.now();
        let key = attempts_key(scope, entity_ref);
        let mut attempts: Attempts = ctx.get_json(&key)?.unwrap_or_default();
        if attempts.count >= max_attempts
            || (attempts.count > 0 && now - attempts.last_at < min_gap)
        {
            return Ok(false);
        }
        attempts.count += 1;
        attempts.last_at = now;
        ctx.put_json(&key, &attempts, None)?;
        let fact = format!("ResyncRequested:{}", attempts.count);
        let event = ResyncRequested {
            envelope: Envelope {
                event_id: FactIdentity {
                    source: SOURCE,
                    entity: entity_ref,
                    fact: &fact,
                    version: Some(now),
                }
                .event_id(),
                event_type: ResyncRequested::RECORD.into(),
                schema_version: ResyncRequested::VERSION,
                occurred_at: now,
                produced_at: now,
                source: SOURCE.into(),
                correlation_id: entity_ref.to_owned(),
                causation_id: None,
            },
            target,
            entity_type: entity_type.to_owned(),
            entity_ref: entity_ref.to_owned(),
            reason: reason.to_owned(),
            finding_id: finding.map(str::to_owned),
            attempt: attempts.count as i32,
            quantity,
        };
        tracing::info!(entity_ref, attempt = attempts.count, target = ?target, "resync requested");
        ctx.emit(self.resync_topic, entity_ref, Event::ResyncRequested(event));
        Ok(true)
    }
}
