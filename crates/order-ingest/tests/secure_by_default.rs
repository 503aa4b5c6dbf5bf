//! Hostile and impossible input on the real broker and registry, fed by magento-sim: every
//! webhook route authenticates (unsigned, forged, wrong-recipient, replayed → `401`, nothing
//! published); bodies, connections and requests in progress are bounded; a value no event
//! can hold is parked with its reason on both paths while the next orders flow.

mod harness;

use std::time::Duration;

use bridge_events::Event;
use bridge_testkit::{stack, wait_until};
use harness::{AnyError, Harness, Paths, TestResult};
use magento::hmac_signature;
use magento_sim::SimConfig;
use order_ingest::config::Route;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `bridge.error.message` header of a parked record.
fn message(record: &bridge_testkit::Record) -> String {
    record
        .headers
        .iter()
        .find(|(k, _)| k == "bridge.error.message")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// This process's resident memory in KiB (the ingest runs in it).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_deliveries_are_refused_or_parked_and_ingest_goes_on() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let ingest = h.ingest(state.path(), Paths::WEBHOOK).await?;
    let url = format!("http://127.0.0.1:{}/webhooks/adobe-io", h.webhook_port);
    let client = reqwest::Client::new();
    let send = |body: Vec<u8>, sign: bool, tamper: bool| {
        let mut request = client.post(&url).body(body.clone());
        if sign {
            for (name, mut value) in h.sim.shared.signer.headers(&body) {
                if tamper && name.starts_with("x-adobe-digital-signature") {
                    value = value.chars().rev().collect();
                }
                request = request.header(name, value);
            }
        }
        request.send()
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let at = |value: Value, time: &str| {
        json!({
            "specversion": "1.0",
            "type": "com.adobe.commerce.observer.sales_order_save_commit_after",
            "id": "3f1c", "recipient_client_id": "magento-erp-bridge", "time": time,
            "data": {"key": "k", "value": value}
        })
        .to_string()
        .into_bytes()
    };
    let event = |value: Value| at(value, &now);
    let good = event(json!({"increment_id": "000000005", "items": [{"order_id": "5"}]}));

    // Unsigned, and signed by someone else: 401.
    assert_eq!(send(good.clone(), false, false).await?.status(), 401);
    assert_eq!(send(good.clone(), true, true).await?.status(), 401);
    // Another recipient, or none: 401.
    let other = String::from_utf8(event(json!({"increment_id": "000000005"})))?
        .replace("magento-erp-bridge", "someone-else");
    assert_eq!(send(other.into_bytes(), true, false).await?.status(), 401);
    let mut anonymous: Value = serde_json::from_slice(&good)?;
    anonymous
        .as_object_mut()
        .map(|o| o.remove("recipient_client_id"));
    let answer = send(serde_json::to_vec(&anonymous)?, true, false).await?;
    assert_eq!(answer.status(), 401);
    // A delivery signed long ago, replayed now (its `time` is signed with it): 401.
    let replayed = at(
        json!({"increment_id": "000000005"}),
        "2020-01-01T00:00:00.000Z",
    );
    let answer = send(replayed, true, false).await?;
    assert_eq!(answer.status(), 401);
    assert!(answer.text().await?.contains("replay"));
    // A body over the limit (1 MiB by default): 413, unread.
    let huge = event(json!({"increment_id": "000000005", "pad": "x".repeat(2 << 20)}));
    assert_eq!(send(huge, true, false).await?.status(), 413);
    // Malformed JSON, signed: 400 with the reason.
    let answer = send(b"{\"specversion\": \"1.0\", ".to_vec(), true, false).await?;
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await?.contains("malformed JSON"));
    assert_eq!(
        h.events(&h.orders).await?.len(),
        0,
        "nothing produced for refused deliveries"
    );

    // No order named: parked, the field named.
    let answer = send(event(json!({"state": "new"})), true, false).await?;
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await?.contains("parked"));
    // An order Magento does not know, whole in the payload: the body is never the source of
    // an order, so it is parked as not found, and nothing is published for it.
    let mut unknown: Value = serde_json::from_str(include_str!(
        "../../magento/tests/fixtures/magento/orders/order_simple_bundle_configurable_pending.json"
    ))?;
    unknown["entity_id"] = 99_999.into();
    unknown["increment_id"] = "000099999".into();
    let answer = send(event(unknown), true, false).await?;
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await?.contains("does not exist in Magento"));

    // A good delivery afterwards is published.
    let answer = send(good, true, false).await?;
    assert_eq!(answer.status(), 200, "{}", answer.text().await?);
    let orders = h.events(&h.orders).await?;
    assert!(
        orders
            .iter()
            .any(|e| matches!(e, Event::OrderPlaced(p) if p.order_ref == "000000005"))
    );
    assert!(
        !orders
            .iter()
            .any(|e| matches!(e, Event::OrderPlaced(p) if p.order_ref == "000099999")),
        "an order only the body knows is never published"
    );

    let parked = h.parked()?;
    assert_eq!(parked.len(), 2, "{parked:?}");
    // Parked records spread over partitions: find each by its reason.
    let unnamed = parked
        .iter()
        .find(|r| message(r).contains("data.value.increment_id"))
        .ok_or("no parked record names data.value.increment_id")?;
    assert!(
        unnamed
            .payload
            .as_deref()
            .is_some_and(|p| p.starts_with(b"{"))
    );
    let not_found = parked
        .iter()
        .find(|r| message(r).contains("does not exist in Magento"))
        .ok_or("no parked record for the order Magento does not know")?;
    // The original bytes are kept, and the order is the key.
    assert!(
        String::from_utf8_lossy(not_found.payload.as_deref().unwrap_or_default())
            .contains("000099999")
    );
    assert_eq!(not_found.key.as_deref(), Some(&b"000099999"[..]));
    assert!(
        h.metric(
            "bridge_ingest_webhooks_rejected_total{bridge_service=\"order-ingest\",reason=\"signature\"}"
        )
        .await
            >= 2.0
    );
    ingest.stop().await?;
    Ok(())
}

/// A quantity no event can hold (`1e27`) and one with more places than `decimal(18,4)`,
/// through the poller and the webhook: each is parked with its reason, never retried; the
/// orders after them are published; the service stays up.
#[tokio::test(flavor = "multi_thread")]
async fn impossible_values_are_parked_on_both_paths_and_the_next_orders_flow() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let ingest = h.ingest(state.path(), Paths::BOTH).await?;
    let template: Value = serde_json::from_str(include_str!(
        "../../magento/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
    ))?;
    let order = |id: &str, qty: Value| {
        let mut order = template.clone();
        order["increment_id"] = id.into();
        order["updated_at"] = magento_sim::store::magento_now().into();
        order["items"][0]["qty_ordered"] = qty;
        order
    };
    let mut orders = vec![
        order("WEB-HUGE", "1e27".into()),
        order("WEB-PLACES", "1.00001".into()),
        order("WEB-NEXT", "2".into()),
    ];
    for (i, o) in orders.iter_mut().enumerate() {
        o["entity_id"] = format!("{}", 880_000 + i).into();
    }
    let answer = reqwest::Client::new()
        .post(format!("{}/sim/import/orders", h.sim.url()))
        .json(&orders)
        .send()
        .await?;
    assert!(answer.status().is_success());
    wait_until(
        "the next order published and both impossible ones parked",
        Duration::from_secs(60),
        || async {
            let next = h.events(&h.orders).await.is_ok_and(|events| {
                events
                    .iter()
                    .any(|e| matches!(e, Event::OrderPlaced(p) if p.order_ref == "WEB-NEXT"))
            });
            let parked = h.parked().unwrap_or_default();
            let keyed = |id: &[u8]| parked.iter().any(|r| r.key.as_deref() == Some(id));
            next && keyed(b"WEB-HUGE") && keyed(b"WEB-PLACES")
        },
    )
    .await?;
    let parked = h.parked()?;
    let reason = |id: &[u8]| {
        parked
            .iter()
            .find(|r| r.key.as_deref() == Some(id))
            .map(message)
            .unwrap_or_default()
    };
    let huge = reason(b"WEB-HUGE");
    assert!(
        huge.contains("items[0].qty_ordered") && huge.contains("decimal(18,4)"),
        "{huge}"
    );
    assert!(!reason(b"WEB-PLACES").is_empty());
    let published = h.events(&h.orders).await?;
    assert!(
        !published.iter().any(|e| matches!(
            e,
            Event::OrderPlaced(p) if p.order_ref == "WEB-HUGE" || p.order_ref == "WEB-PLACES"
        )),
        "nothing published for an impossible order"
    );
    // Both deliveries were answered (parked is an answer), none left for Adobe to retry.
    wait_until(
        "every delivery answered",
        Duration::from_secs(60),
        || async {
            h.deliveries()
                .await
                .is_ok_and(|d| d["pending"] == 0 && d["delivered"] == 3)
        },
    )
    .await?;
    let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", h.http_port)).await?;
    assert_eq!(ready.status(), 200, "the service is still up");
    ingest.stop().await?;
    Ok(())
}

/// The custom route: HMAC-SHA256 over the timestamp and body. Signed → published; the same
/// delivery again, a stale timestamp, another secret, or no signature → `401`.
#[tokio::test(flavor = "multi_thread")]
async fn the_hmac_route_takes_signed_fresh_deliveries_once() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let secret_file = state.path().join("hmac-secret");
    std::fs::write(&secret_file, "custom-module-secret\n")?;
    let mut config = h.config(state.path(), Paths::WEBHOOK)?;
    config.ingest.webhook.routes = vec![Route::Custom];
    config.ingest.webhook.client_id = None;
    config.ingest.webhook.hmac_secret_file = Some(secret_file);
    let ingest = h.ingest_with(config, Paths::WEBHOOK).await?;
    let url = format!("http://127.0.0.1:{}/webhooks/custom", h.webhook_port);
    let http = reqwest::Client::new();
    let body = serde_json::to_vec(&json!({
        "type": "sales_order_save_commit_after",
        "data": {"value": {"entity_id": "5"}}
    }))?;
    let now = chrono::Utc::now().timestamp();
    let post = |signature: Option<String>| {
        let mut request = http.post(&url).body(body.clone());
        if let Some(signature) = signature {
            request = request.header(hmac_signature::HEADER, signature);
        }
        request.send()
    };
    let signed = hmac_signature::sign("custom-module-secret", now, &body);
    let answer = post(Some(signed.clone())).await?;
    assert_eq!(answer.status(), 200, "{}", answer.text().await?);
    for (signature, what) in [
        (Some(signed), "replayed"),
        (
            Some(hmac_signature::sign(
                "custom-module-secret",
                now - 3600,
                &body,
            )),
            "stale",
        ),
        (Some(hmac_signature::sign("guessed", now, &body)), "forged"),
        (None, "unsigned"),
    ] {
        assert_eq!(post(signature).await?.status(), 401, "{what}");
    }
    let placed = h
        .events(&h.orders)
        .await?
        .iter()
        .filter(|e| matches!(e, Event::OrderPlaced(p) if p.order_ref == "000000005"))
        .count();
    assert_eq!(placed, 1);
    // The I/O Events route is not served: only the configured routes are.
    let other = format!("http://127.0.0.1:{}/webhooks/adobe-io", h.webhook_port);
    assert_eq!(http.post(other).body("{}").send().await?.status(), 404);
    ingest.stop().await?;
    Ok(())
}

/// 10,000 connections at once that never finish their request head, then a burst of real
/// deliveries beyond the in-flight limit: connections over the cap are closed, slow ones
/// time out, surplus requests get `503` with `Retry-After`; memory stays bounded and a
/// delivery afterwards is published.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_is_refused_cleanly_and_the_receiver_stays_healthy() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let mut config = h.config(state.path(), Paths::WEBHOOK)?;
    config.ingest.webhook.server.header_timeout_ms = 1_000;
    config.ingest.webhook.server.max_connections = 512;
    config.ingest.webhook.server.max_in_flight = 4;
    let ingest = h.ingest_with(config, Paths::WEBHOOK).await?;
    let addr = format!("127.0.0.1:{}", h.webhook_port);
    let before = rss_kib();

    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..10_000 {
        let addr = addr.clone();
        slow.spawn(async move {
            let Ok(Ok(mut stream)) = tokio::time::timeout(
                Duration::from_secs(30),
                tokio::net::TcpStream::connect(&addr),
            )
            .await
            else {
                return Ok::<bool, AnyError>(false);
            };
            let _ = stream
                .write_all(b"POST /webhooks/adobe-io HTTP/1.1\r\nHost: x\r\n")
                .await;
            // The server must close it: read until EOF (or a reset), within a bound.
            let mut sink = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut sink))
                    .await
                    .is_ok();
            Ok(closed)
        });
    }
    let mut closed = 0;
    while let Some(result) = slow.join_next().await {
        if result?? {
            closed += 1;
        }
    }
    assert_eq!(closed, 10_000, "every connection closed by the server");
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 256, "memory grew by {grown_mib} MiB");
    let refused = h
        .metric(
            "bridge_listener_refused_total{bridge_service=\"order-ingest\",reason=\"connections\"}",
        )
        .await;
    assert!(refused > 0.0, "connections over the cap were refused");

    // Real deliveries, 64 at once against 4 slots: some wait for nothing and get 503.
    let body = serde_json::to_vec(&json!({
        "specversion": "1.0",
        "type": "com.adobe.commerce.observer.sales_order_save_commit_after",
        "id": "flood", "recipient_client_id": "magento-erp-bridge",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {"key": "k", "value": {"entity_id": "5"}}
    }))?;
    let headers = h.sim.shared.signer.headers(&body);
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/webhooks/adobe-io");
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let mut request = http.post(&url).body(body.clone());
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        burst.spawn(async move {
            let answer = request.send().await?;
            let retry_after = answer.headers().get("retry-after").is_some();
            Ok::<(u16, bool), AnyError>((answer.status().as_u16(), retry_after))
        });
    }
    let (mut ok, mut busy) = (0, 0);
    while let Some(result) = burst.join_next().await {
        match result?? {
            (200, _) => ok += 1,
            (503, true) => busy += 1,
            other => return Err(format!("unexpected answer {other:?}").into()),
        }
    }
    assert!(ok >= 1 && busy >= 1, "{ok} taken, {busy} refused");
    let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", h.http_port)).await?;
    assert_eq!(ready.status(), 200);
    let placed = h
        .events(&h.orders)
        .await?
        .iter()
        .filter(|e| matches!(e, Event::OrderPlaced(p) if p.order_ref == "000000005"))
        .count();
    assert_eq!(placed, 1, "published once however often it was delivered");
    ingest.stop().await?;
    Ok(())
}

/// A client that sends its head and then stalls its body is answered `408` once the
/// request time runs out, and the connection is freed.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_body_is_answered_408() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let mut config = h.config(state.path(), Paths::WEBHOOK)?;
    config.ingest.webhook.server.request_timeout_ms = 1_000;
    let ingest = h.ingest_with(config, Paths::WEBHOOK).await?;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", h.webhook_port)).await?;
    stream
        .write_all(
            b"POST /webhooks/adobe-io HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":",
        )
        .await?;
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(20));
    ingest.stop().await?;
    Ok(())
}

/// The receiver over TLS with a certificate the test makes (OpenSSL's command line): the
/// registration challenge is answered over https, and plain http is not served.
#[tokio::test(flavor = "multi_thread")]
async fn the_receiver_serves_tls_when_given_a_certificate() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let (cert, key) = (state.path().join("cert.pem"), state.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()?;
    assert!(made.success(), "openssl req");
    let mut config = h.config(state.path(), Paths::WEBHOOK)?;
    config.ingest.webhook.server.tls_cert_file = Some(cert.clone());
    config.ingest.webhook.server.tls_key_file = Some(key);
    let ingest = h.ingest_with(config, Paths::WEBHOOK).await?;
    let trusted = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&cert)?)?)
        .build()?;
    let url = format!(
        "https://127.0.0.1:{}/webhooks/adobe-io?challenge=c-123",
        h.webhook_port
    );
    let answer = trusted.get(&url).send().await?;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await?, json!({"challenge": "c-123"}));
    let plain = format!(
        "http://127.0.0.1:{}/webhooks/adobe-io?challenge=c",
        h.webhook_port
    );
    assert!(reqwest::get(&plain).await.is_err(), "no plain http");
    ingest.stop().await?;
    Ok(())
}
