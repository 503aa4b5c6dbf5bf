//! `bridgectl status`: what an operator looks at first — each processing loop's lag per
//! partition (its group's committed offsets against the input's end), the parked records
//! per parked topic, and from the services' metrics (when reachable: a port-forward in a
//! cluster) readiness, paused partitions, the ERP circuit breaker and the last
//! reconciliation. Whether anything needs attention decides the exit code (3).

use std::time::Duration;

use bridge_runtime::config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::Output;

/// Lag of one partition.
struct PartitionLag {
    partition: i32,
    committed: Option<i64>,
    end: i64,
}

impl PartitionLag {
    fn lag(&self) -> i64 {
        // Never committed: the group reads from the start when it comes.
        self.end - self.committed.unwrap_or(0).min(self.end)
    }
}

/// Each group's lag on its input, per partition.
fn lags(kafka: &KafkaConfig, group: &str, topic: &str) -> anyhow::Result<Vec<PartitionLag>> {
    let consumer: BaseConsumer = kafka
        .client()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut list = TopicPartitionList::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        list.add_partition(topic, p.id());
    }
    // An offset fetch for the group: it does not join the group.
    let committed = consumer.committed_offsets(list, timeout)?;
    let mut out = Vec::new();
    for e in committed.elements() {
        let (_, end) = consumer.fetch_watermarks(topic, e.partition(), timeout)?;
        out.push(PartitionLag {
            partition: e.partition(),
            committed: match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            },
            end,
        });
    }
    out.sort_by_key(|p| p.partition);
    Ok(out)
}

/// The `bridge_*` samples of a service's `/metrics` this command reads.
async fn service_metrics(client: &reqwest::Client, url: &str) -> Option<Value> {
    let text = client
        .get(format!("{}/metrics", url.trim_end_matches('/')))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let sample = |name: &str| -> Option<f64> {
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .reduce(f64::max)
    };
    let service = text
        .lines()
        .find_map(|l| l.split("bridge_service=\"").nth(1)?.split('"').next())
        .unwrap_or("?")
        .to_owned();
    Some(json!({
        "url": url,
        "service": service,
        "ready": sample("bridge_service_ready").map(|v| v >= 1.0),
        "paused_partitions": sample("bridge_paused_partitions"),
        "erp_breaker_open": sample("bridge_erp_breaker_open").map(|v| v >= 1.0),
        "last_reconciliation": sample("bridge_reconciler_last_run_timestamp_seconds")
            .filter(|t| *t > 0.0)
            .and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
            .map(|t| t.to_rfc3339()),
    }))
}

/// Prints the status; whether something needs attention.
pub async fn run(
    kafka: &KafkaConfig,
    groups: &[(&str, &str)],
    parked_topics: &[String],
    services: &[String],
    output: Output,
) -> anyhow::Result<bool> {
    let mut attention = Vec::new();
    let mut group_rows = Vec::new();
    for (group, topic) in groups {
        let partitions = lags(kafka, group, topic)?;
        let total: i64 = partitions.iter().map(PartitionLag::lag).sum();
        group_rows.push(json!({
            "group": group, "topic": topic, "lag": total,
            "partitions": partitions.iter().map(|p| json!({
                "partition": p.partition, "committed": p.committed, "end": p.end, "lag": p.lag(),
            })).collect::<Vec<_>>(),
        }));
    }
    let mut parked_rows = Vec::new();
    for topic in parked_topics {
        let count = crate::parked::read_all(kafka, topic)?.len();
        if count > 0 {
            attention.push(format!("{count} record(s) parked on {topic}"));
        }
        parked_rows.push(json!({ "topic": topic, "count": count }));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let mut service_rows = Vec::new();
    for url in services {
        match service_metrics(&client, url).await {
            Some(row) => {
                let name = row["service"].as_str().unwrap_or("?").to_owned();
                if row["ready"] == json!(false) {
                    attention.push(format!("{name} is not ready"));
                }
                if row["paused_partitions"].as_f64().is_some_and(|n| n > 0.0) {
                    attention.push(format!("{name} has paused partitions"));
                }
                if row["erp_breaker_open"] == json!(true) {
                    attention.push(format!("{name}: the ERP circuit breaker is open"));
                }
                service_rows.push(row);
            }
            None => {
                attention.push(format!("{url} does not answer"));
                service_rows.push(json!({ "url": url, "reachable": false }));
            }
        }
    }
    match output {
        Output::Json => println!(
            "{}",
            json!({ "groups": group_rows, "parked": parked_rows, "services": service_rows,
                    "attention": attention })
        ),
        Output::Text => print_text(&group_rows, &parked_rows, &service_rows, &attention),
    }
    Ok(!attention.is_empty())
}

fn print_text(groups: &[Value], parked: &[Value], services: &[Value], attention: &[String]) {
    println!(
        "{:<26} {:<32} {:>10}  per partition (committed/end)",
        "group", "input", "lag"
    );
    for g in groups {
        let parts: Vec<String> = g["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let committed = p["committed"]
                    .as_i64()
                    .map_or("-".into(), |c| c.to_string());
                format!("{}:{}/{}", p["partition"], committed, p["end"])
            })
            .collect();
        println!(
            "{:<26} {:<32} {:>10}  {}",
            g["group"].as_str().unwrap_or_default(),
            g["topic"].as_str().unwrap_or_default(),
            g["lag"],
            parts.join(" ")
        );
    }
    println!();
    for p in parked {
        println!(
            "parked  {:<34} {}",
            p["topic"].as_str().unwrap_or_default(),
            p["count"]
        );
    }
    for s in services {
        println!("service {s}");
    }
    println!();
    if attention.is_empty() {
        println!("nothing needs attention");
    } else {
        for a in attention {
            println!("attention: {a}");
        }
    }
}
