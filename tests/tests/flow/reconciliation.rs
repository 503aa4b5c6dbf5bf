//! What the reconciliation tests read of a flow: the ERP's activity, orders booked with a
//! fault, findings (open ones by entity), runs and the reconciler's peak memory.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bridge_events::Event;
use bridge_events::reconciliation::{FindingState, ReconciliationFinding};

use bridge_testkit::{metric_sum, wait_until};

use super::{AnyError, Flow, TestResult, differences, expected};

pub fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What changes in the ERP's books as the flow books, cancels, credits and repairs: cheap to
/// read under the lock, unlike a comparison of every order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErpActivity {
    /// Sales orders created (numbers given).
    created: u64,
    /// Credit notes, amendments, shipments and duplicate creates.
    other: [u64; 4],
}

pub fn erp_activity(flow: &Flow) -> ErpActivity {
    let books = flow.erp.shared.books();
    ErpActivity {
        created: books.last_order_number,
        other: [
            books.credit_notes.len() as u64,
            books.amendments,
            books.shipments.len() as u64,
            books.duplicate_creates,
        ],
    }
}

/// Waits until the ERP agrees with Magento on every order but `faulted` (which the ERP
/// booked wrongly on purpose), and those are booked.
pub async fn booked_but_faulted(
    flow: &Flow,
    timeout: Duration,
) -> Result<BTreeSet<String>, AnyError> {
    let mut last = Vec::new();
    // The comparison reads every order of both sims under their locks (seconds for a
    // large store). It runs only when it can succeed — the ERP created at least as many
    // orders as the last comparison found missing — once the ERP's books stood still for a
    // poll, and never more than a fifth of the time: a store's pipeline is not held up by
    // the test watching it. Every 30 s it runs anyway and prints how far the flow got.
    let started = std::time::Instant::now();
    let mut next_compare = started;
    let mut next_report = started + Duration::from_secs(30);
    let mut activity = erp_activity(flow);
    // ERP orders created by the last comparison, and how many it found missing.
    let (mut created_then, mut missing_then) = (0, 0);
    let outcome = wait_until("the ERP to book every order", timeout, || {
        let now = std::time::Instant::now();
        let was = std::mem::replace(&mut activity, erp_activity(flow));
        let futile = activity.created < created_then + missing_then;
        if now < next_report && (now < next_compare || was != activity || futile) {
            return std::future::ready(false);
        }
        let faulted: BTreeSet<String> = flow.erp.shared.books().faulted.keys().cloned().collect();
        let diff: Vec<String> = differences(&flow.erp, &expected(&flow.sim))
            .into_iter()
            .filter(|d| {
                let reference = d.split(':').next().unwrap_or_default();
                // A faulted order's amounts (and a refund the ERP could not take on
                // its short total) differ; its existence and cancellation must not.
                !faulted.contains(reference)
                    || !(d.contains("ERP totals") || d.contains("ERP credited"))
            })
            .collect();
        let done = diff.is_empty();
        if now >= next_report {
            println!(
                "{:>5.0} s: {} ERP orders created, {} differences left (compared in {} ms), e.g. {:?}",
                started.elapsed().as_secs_f64(),
                activity.created,
                diff.len(),
                now.elapsed().as_millis(),
                diff.iter().take(3).collect::<Vec<_>>()
            );
            next_report = now + Duration::from_secs(30);
        }
        created_then = activity.created;
        missing_then = diff.iter().filter(|d| d.ends_with(": not in the ERP")).count() as u64;
        last = diff;
        next_compare = now + (now.elapsed() * 5).max(Duration::from_secs(2));
        std::future::ready(done)
    })
    .await;
    if let Err(e) = outcome {
        return Err(format!("{e}: {:?}", last.iter().take(8).collect::<Vec<_>>()).into());
    }
    // An order booked wrongly and then cancelled on both sides is history: nothing to find.
    let books = flow.erp.shared.books();
    Ok(books
        .faulted
        .keys()
        .filter(|r| {
            books
                .order_by_ref(r)
                .is_some_and(|o| o.status != "cancelled")
        })
        .cloned()
        .collect())
}

/// What the reconciler's process may peak at over a clean run of any size: sled's cache
/// (128 MiB by default), the catch-up on the orders topic and the allocator's slack
/// (measured 170 MiB at 2,000 orders, ~300 at 20,000, 431–463 at 100,000, and flat over
/// twelve runs: docs/decisions/reconciler.md).
pub const RECONCILER_PEAK_MIB: u64 = 640;

/// The process's peak resident set, in MiB.
pub fn peak_rss_mib() -> u64 {
    bridge_runtime::process_metrics::memory("self", "VmHWM") >> 20
}

pub async fn findings(flow: &Flow) -> Result<Vec<ReconciliationFinding>, AnyError> {
    Ok(flow
        .events(&flow.findings)
        .await?
        .into_iter()
        .filter_map(|e| match e {
            Event::ReconciliationFinding(f) => Some(f),
            _ => None,
        })
        .collect())
}

/// The stock findings only (the sim's seed orders never reach an ERP in the stock test:
/// no erp-writer runs there, so they are — rightly — missing in the ERP).
pub async fn stock_findings(flow: &Flow) -> Result<Vec<ReconciliationFinding>, AnyError> {
    Ok(findings(flow)
        .await?
        .into_iter()
        .filter(|f| f.entity_type == "stock")
        .collect())
}

/// Open findings per entity after replaying the topic (the last state of each finding).
pub fn open_by_entity(
    all: &[ReconciliationFinding],
) -> BTreeMap<String, Vec<ReconciliationFinding>> {
    let mut last: BTreeMap<&str, &ReconciliationFinding> = BTreeMap::new();
    for f in all {
        last.insert(&f.finding_id, f);
    }
    let mut open: BTreeMap<String, Vec<ReconciliationFinding>> = BTreeMap::new();
    for f in last.values() {
        if f.state == FindingState::Open {
            open.entry(f.entity_ref.clone())
                .or_default()
                .push((*f).clone());
        }
    }
    open
}

pub async fn runs(flow: &Flow) -> f64 {
    flow.reconciler_metrics()
        .await
        .map(|m| metric_sum(&m, "bridge_reconciler_runs_total"))
        .unwrap_or_default()
}

/// Waits until every partition finished at least `more` further runs.
pub async fn more_runs(flow: &Flow, more: f64) -> TestResult {
    let from = runs(flow).await;
    wait_until(
        "more reconciliation runs",
        Duration::from_secs(120),
        || async move { runs(flow).await >= from + more * 3.0 },
    )
    .await?;
    Ok(())
}
