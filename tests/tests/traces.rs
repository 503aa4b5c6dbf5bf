//! One trace per order, in a real tracing backend. The service binaries export over
//! OTLP/HTTP to Jaeger (`bridge_testkit::jaeger`); an order is placed in magento-sim, which
//! announces it by an Adobe I/O webhook; it is booked in erp-sim and its verdict written
//! back to Magento. Jaeger's query API must then hold one trace for it: the webhook's
//! server span at the root, order-ingest's `send`, erp-writer's and the reconciler's
//! `process` spans continuing it, erp-writer's ERP call and its `send` of the verdict,
//! magento-writer's `process` and Magento call, every span's parent in the trace. The
//! order carries recognisable personal data, and none of it may be in any span.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use bridge_e2e::binary;
use bridge_e2e::processes::{Sims, flow_services, spawn, tail};
use bridge_testkit::{KafkaBroker, free_port, jaeger, stack, wait_until};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Markers of personal data the order carries.
const PERSONAL: [&str; 3] = [
    "Zebulontrace",
    "zebulon.trace@example.invalid",
    "+1 555 0142 7878",
];
const SERVICES: [&str; 4] = ["order-ingest", "erp-writer", "reconciler", "magento-writer"];

/// A span of the trace as the test reads it.
#[derive(Debug, Clone)]
struct Span {
    id: String,
    parent: Option<String>,
    service: String,
    name: String,
    kind: String,
    tags: BTreeMap<String, Value>,
}

fn spans_of(trace: &Value) -> Vec<Span> {
    let services: BTreeMap<&str, &str> = trace["processes"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(id, p)| (id.as_str(), p["serviceName"].as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let empty = Vec::new();
    trace["spans"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|s| {
            let tags: BTreeMap<String, Value> = s["tags"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .filter_map(|t| Some((t["key"].as_str()?.to_owned(), t["value"].clone())))
                .collect();
            Span {
                id: s["spanID"].as_str().unwrap_or_default().to_owned(),
                parent: s["references"].as_array().and_then(|refs| {
                    refs.iter()
                        .find(|r| r["refType"] == "CHILD_OF")
                        .and_then(|r| r["spanID"].as_str().map(str::to_owned))
                }),
                service: services
                    .get(s["processID"].as_str().unwrap_or_default())
                    .copied()
                    .unwrap_or_default()
                    .to_owned(),
                name: s["operationName"].as_str().unwrap_or_default().to_owned(),
                kind: tags
                    .get("span.kind")
                    .and_then(Value::as_str)
                    .unwrap_or("internal")
                    .to_owned(),
                tags,
            }
        })
        .collect()
}

/// What of the expected chain the trace does not hold yet (empty: all of it).
fn missing(spans: &[Span]) -> Vec<String> {
    let find = |service: &str, name: &str| {
        spans
            .iter()
            .find(|s| s.service == service && s.name == name)
    };
    let mut missing = Vec::new();
    let mut need = |what: &str, ok: bool| {
        if !ok {
            missing.push(what.to_owned());
        }
    };
    let sent = find("order-ingest", "send bridge.orders.v1");
    need("order-ingest send bridge.orders.v1", sent.is_some());
    for service in ["erp-writer", "reconciler"] {
        need(
            &format!("{service} process bridge.orders.v1 under order-ingest's send"),
            spans.iter().any(|s| {
                s.service == service
                    && s.name == "process bridge.orders.v1"
                    && s.parent.as_deref() == sent.map(|x| x.id.as_str())
            }),
        );
    }
    let verdict = find("erp-writer", "send bridge.erp-results.v1");
    need("erp-writer send bridge.erp-results.v1", verdict.is_some());
    need(
        "magento-writer process bridge.erp-results.v1 under erp-writer's send",
        spans.iter().any(|s| {
            s.service == "magento-writer"
                && s.name == "process bridge.erp-results.v1"
                && s.parent.as_deref() == verdict.map(|x| x.id.as_str())
        }),
    );
    for service in ["erp-writer", "magento-writer"] {
        need(
            &format!("an HTTP client span of {service}"),
            spans
                .iter()
                .any(|s| s.service == service && s.kind == "client"),
        );
    }
    missing
}

/// The ancestors of `span`, nearest first.
fn ancestors<'a>(spans: &'a [Span], span: &'a Span) -> Vec<&'a Span> {
    let mut chain = Vec::new();
    let mut at = span;
    while let Some(parent) = at
        .parent
        .as_deref()
        .and_then(|p| spans.iter().find(|s| s.id == p))
    {
        chain.push(parent);
        at = parent;
        if chain.len() > spans.len() {
            break;
        }
    }
    chain
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_is_one_trace_from_the_webhook_to_the_erp_and_back_to_magento() -> TestResult {
    let jaeger = jaeger()?;
    // Its own order number: the backend may hold an earlier run's traces.
    let order_ref = format!(
        "WEB-TRACE-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let order_ref = order_ref.as_str();
    // A broker of its own: the services run with the default topics and groups.
    let broker = KafkaBroker::start()?;
    let registry = &stack()?.registry_url;
    let dir = tempfile::tempdir()?;
    let logs = dir.path();
    let bridgectl = Command::new(binary("bridgectl")?)
        .args([
            "--bootstrap-servers",
            &broker.bootstrap(),
            "--registry-url",
            registry,
        ])
        .arg("create-topics")
        .stdout(Stdio::null())
        .status()?;
    assert!(bridgectl.success(), "bridgectl create-topics: {bridgectl}");

    let (sim_port, erp_port, webhook_port) = (free_port()?, free_port()?, free_port()?);
    let sim = format!("http://127.0.0.1:{sim_port}");
    let erp = format!("http://127.0.0.1:{erp_port}");
    let _erp_sim = spawn(
        "erp-sim",
        &[format!("--listen=127.0.0.1:{erp_port}")],
        &[],
        logs,
    )?;
    let _magento_sim = spawn(
        "magento-sim",
        &[
            format!("--listen=127.0.0.1:{sim_port}"),
            format!("--webhook-url=http://127.0.0.1:{webhook_port}/webhooks/adobe-io"),
            "--orders-per-second=0".into(),
            "--retry-first-seconds=1".into(),
        ],
        &[],
        logs,
    )?;
    let mut services = flow_services(&Sims {
        magento: &sim,
        erp: &erp,
        webhook_port,
    });
    // The services the order crosses; the webhook path only (the poller would find the
    // order too).
    services.retain(|(name, _)| SERVICES.contains(name));
    services[0]
        .1
        .push(("BRIDGE__INGEST__POLL__ENABLED", "false".into()));
    let mut running = Vec::new();
    let mut ports = Vec::new();
    for (name, mut env) in services {
        let port = free_port()?;
        env.extend([
            ("BRIDGE__KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap()),
            ("BRIDGE__REGISTRY__URL", registry.clone()),
            ("BRIDGE__HTTP__LISTEN", format!("127.0.0.1:{port}")),
            (
                "BRIDGE__PROCESSOR__STATE_DIR",
                logs.join(format!("{name}-state")).display().to_string(),
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_http.clone()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ]);
        running.push(spawn(name, &[], &env, logs)?);
        ports.push((name, port));
    }
    for (name, port) in &ports {
        let port = *port;
        let ready = wait_until(
            &format!("{name} ready"),
            Duration::from_secs(90),
            || async move {
                reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
        if ready.is_err() {
            return Err(format!(
                "{name} not ready: {}",
                tail(&std::fs::read_to_string(logs.join(format!("{name}.log")))?)
            )
            .into());
        }
    }

    // The order, with personal data, announced by webhook.
    let fixture = include_str!(
        "../../crates/magento/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
    )
    .replace("roni@example.com", PERSONAL[1])
    .replace("Roni", PERSONAL[0])
    .replace("(555) 229-3326", PERSONAL[2]);
    let mut order: Value = serde_json::from_str(&fixture)?;
    order["entity_id"] = "990101".into();
    order["increment_id"] = order_ref.into();
    order["updated_at"] = magento_sim::store::magento_now().into();
    let http = reqwest::Client::new();
    let imported = http
        .post(format!("{sim}/sim/import/orders"))
        .json(&order)
        .send()
        .await?;
    assert!(imported.status().is_success(), "{}", imported.text().await?);

    let written_back = wait_until(
        "the verdict written back to Magento",
        Duration::from_secs(120),
        || async {
            let Ok(answer) = http.get(format!("{sim}/sim/writebacks")).send().await else {
                return false;
            };
            let writebacks: Value = answer.json().await.unwrap_or_default();
            writebacks.to_string().contains(order_ref)
        },
    )
    .await;
    if written_back.is_err() {
        let mut report = String::new();
        for name in SERVICES {
            report.push_str(&format!(
                "\n--- {name}\n{}",
                tail(&std::fs::read_to_string(logs.join(format!("{name}.log")))?)
            ));
        }
        return Err(format!("the order did not come back:{report}").into());
    }

    // Its trace, found by the order's key on order-ingest's send span.
    let seen = std::sync::Mutex::new((Vec::<String>::new(), Vec::<String>::new()));
    let seen_ref = &seen;
    let complete = wait_until(
        "the order's whole trace in jaeger",
        Duration::from_secs(60),
        move || async move {
            let Ok(ids) = jaeger
                .find("order-ingest", "messaging.kafka.message.key", order_ref)
                .await
            else {
                return false;
            };
            let trace = match ids.as_slice() {
                [id] => jaeger.trace(id).await.ok().flatten(),
                _ => None,
            };
            let lacking = trace.map(|t| missing(&spans_of(&t)));
            let done = lacking.as_ref().is_some_and(Vec::is_empty);
            if let Ok(mut seen) = seen_ref.lock() {
                *seen = (ids, lacking.unwrap_or_default());
            }
            done
        },
    )
    .await;
    let (found, last_missing) = seen.lock().map(|s| s.clone()).map_err(|_| "poisoned")?;
    assert_eq!(
        found.len(),
        1,
        "the order is in {} traces: {found:?}",
        found.len()
    );
    if complete.is_err() {
        return Err(format!("the trace {found:?} lacks {last_missing:#?}").into());
    }
    let raw = jaeger.trace(&found[0]).await?.ok_or("the trace is gone")?;
    let spans = spans_of(&raw);

    // One root, the webhook's server span; every other span's parent is in the trace.
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent.is_none()).collect();
    assert_eq!(roots.len(), 1, "roots: {roots:#?}");
    let root = roots[0];
    assert_eq!(root.service, "order-ingest");
    assert_eq!(root.kind, "server");
    assert_eq!(root.name, "POST /webhooks/adobe-io");
    assert_eq!(
        root.tags
            .get("http.response.status_code")
            .and_then(Value::as_i64),
        Some(200)
    );
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.id.as_str()).collect();
    for span in &spans {
        if let Some(parent) = &span.parent {
            assert!(
                ids.contains(parent.as_str()),
                "{} {} has a parent outside the trace",
                span.service,
                span.name
            );
        }
    }
    // The ERP call: a client span under erp-writer's process span, to erp-sim, succeeded.
    let erp_calls: Vec<&Span> = spans
        .iter()
        .filter(|s| s.service == "erp-writer" && s.kind == "client")
        .collect();
    assert!(
        erp_calls.iter().any(|c| {
            c.tags
                .get("url.full")
                .and_then(Value::as_str)
                .is_some_and(|u| u.starts_with(&format!("{erp}/api/sales-orders")))
                && c.tags
                    .get("http.response.status_code")
                    .and_then(Value::as_i64)
                    .is_some_and(|s| s < 300)
                && ancestors(&spans, c)
                    .iter()
                    .any(|a| a.name == "process bridge.orders.v1")
        }),
        "{erp_calls:#?}"
    );
    // Messaging attributes on every process span.
    for span in spans.iter().filter(|s| s.name.starts_with("process ")) {
        assert_eq!(span.kind, "consumer", "{span:?}");
        for key in [
            "messaging.system",
            "messaging.destination.name",
            "messaging.destination.partition.id",
            "messaging.kafka.offset",
            "messaging.consumer.group.name",
            "messaging.message.id",
        ] {
            assert!(
                span.tags.contains_key(key),
                "{} {} lacks {key}",
                span.service,
                span.name
            );
        }
    }
    let text = raw.to_string();
    for marker in PERSONAL {
        assert!(
            !text.contains(marker),
            "personal data `{marker}` in the trace"
        );
    }
    drop(running);
    Ok(())
}
