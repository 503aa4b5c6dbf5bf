//! `bridgectl watch`: the running summary of the local flow — orders placed in
//! magento-sim, in the ERP, rejected, stock adjustments posted, parked, the reconciler's
//! open and resolved findings and repairs — every few seconds until Ctrl-C.

use std::time::Duration;

use serde_json::Value;

/// Where the summary reads from.
pub struct Sources {
    /// magento-sim, e.g. `http://127.0.0.1:8090`.
    pub sim: String,
    /// erp-sim, e.g. `http://127.0.0.1:8070`.
    pub erp: String,
    /// erp-writer's health port, e.g. `http://127.0.0.1:8093`.
    pub writer: String,
    /// order-ingest's health port.
    pub ingest: String,
    /// The reconciler's health port.
    pub reconciler: String,
}

async fn json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

async fn text(client: &reqwest::Client, url: &str) -> Option<String> {
    client.get(url).send().await.ok()?.text().await.ok()
}

/// Σ of the samples of `metric` in Prometheus text whose labels contain `with`.
fn sum(metrics: &str, metric: &str, with: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(metric) && l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn number(value: &Option<Value>, path: &[&str]) -> String {
    let mut at = value.as_ref();
    for key in path {
        at = at.and_then(|v| v.get(key));
    }
    at.map_or("?".into(), |v| match v {
        Value::Object(map) => map
            .values()
            .filter_map(Value::as_u64)
            .sum::<u64>()
            .to_string(),
        other => other.to_string(),
    })
}

/// Prints one line every `every` until Ctrl-C.
pub async fn run(sources: Sources, every: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    println!(
        "running summary every {} s (Ctrl-C stops everything):",
        every.as_secs()
    );
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let sim = json(&client, &format!("{}/sim/stats", sources.sim)).await;
        let erp = json(&client, &format!("{}/admin/stats", sources.erp)).await;
        let writer = text(&client, &format!("{}/metrics", sources.writer))
            .await
            .unwrap_or_default();
        let ingest = text(&client, &format!("{}/metrics", sources.ingest))
            .await
            .unwrap_or_default();
        let reconciler = text(&client, &format!("{}/metrics", sources.reconciler))
            .await
            .unwrap_or_default();
        println!(
            "{}  placed {} | in ERP {} (cancelled {}, credit notes {}) | rejected {} | shipped {} | stock adjustments {} | parked: ingest {}, erp-writer {} | ERP faults fired {} | reconciler: open findings {}, resolved {}, resyncs {}",
            chrono::Utc::now().format("%H:%M:%S"),
            number(&sim, &["orders"]),
            number(&erp, &["sales_orders"]),
            number(&erp, &["cancelled"]),
            number(&erp, &["credit_notes"]),
            sum(&writer, "bridge_erp_verdicts_total", "verdict=\"rejected\""),
            sum(&writer, "bridge_erp_verdicts_total", "verdict=\"shipped\""),
            number(&erp, &["adjustments"]),
            sum(&ingest, "bridge_parked_total", ""),
            sum(&writer, "bridge_parked_total", ""),
            number(&erp, &["faults_fired"]),
            sum(&reconciler, "bridge_reconciler_open_findings", ""),
            sum(&reconciler, "bridge_reconciler_findings_resolved_total", ""),
            sum(&reconciler, "bridge_reconciler_resyncs_total", ""),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_summed_by_label() {
        let text = "# HELP x\nbridge_parked_total{bridge_service=\"erp-writer\",error_code=\"a\"} 2\nbridge_parked_total{bridge_service=\"erp-writer\",error_code=\"b\"} 3\nbridge_other 9\n";
        assert_eq!(sum(text, "bridge_parked_total", ""), 5);
        assert_eq!(sum(text, "bridge_parked_total", "error_code=\"b\""), 3);
    }
}
