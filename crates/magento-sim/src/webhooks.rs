//! Adobe I/O Events deliveries of the sim's changes to a webhook URL: CloudEvents 1.0
//! bodies, signed, each event retried on its own like Adobe does (first retry after a
//! minute, the interval doubling up to 15 minutes, for up to 24 hours; all scaled down by
//! configuration for tests), with `x-adobe-retry-count` on retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::signing::Signer;
use crate::store::Change;

/// When to retry a failed delivery.
#[derive(Debug, Clone, Copy)]
pub struct RetrySchedule {
    /// Wait before the first retry (Adobe: 1 min).
    pub first: Duration,
    /// Longest wait between retries (Adobe: 15 min).
    pub cap: Duration,
    /// Stop retrying this long after the first attempt (Adobe: 24 h).
    pub give_up_after: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(60),
            cap: Duration::from_secs(15 * 60),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// Delivery counters.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Answered 2xx.
    pub delivered: AtomicU64,
    /// Attempts that failed (each retry counts).
    pub failed_attempts: AtomicU64,
    /// Events given up on.
    pub given_up: AtomicU64,
    /// Events not yet delivered nor given up.
    pub pending: AtomicU64,
}

/// Sends changes to one webhook.
#[derive(Clone)]
pub struct Deliveries {
    url: String,
    client: reqwest::Client,
    signer: Arc<Signer>,
    retry: RetrySchedule,
    recipient_client_id: String,
    instance: String,
    /// Counters, shared with the admin endpoint.
    pub stats: Arc<DeliveryStats>,
}

impl Deliveries {
    /// Deliveries to `url`, signed by `signer`.
    pub fn new(
        url: String,
        signer: Arc<Signer>,
        retry: RetrySchedule,
        recipient_client_id: String,
    ) -> Self {
        Self {
            url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            signer,
            retry,
            recipient_client_id,
            instance: uuid::Uuid::new_v4().to_string(),
            stats: Arc::default(),
        }
    }

    /// The CloudEvents body of `change`.
    pub fn envelope(&self, change: &Change) -> Value {
        let id = uuid::Uuid::new_v4().to_string();
        let magento_event = change.event.trim_start_matches("observer.");
        json!({
            "specversion": "1.0",
            "type": format!("com.adobe.commerce.observer.{magento_event}"),
            "source": format!("urn:uuid:{}", self.instance),
            "id": id,
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "datacontenttype": "application/json",
            "event_id": id,
            "recipient_client_id": self.recipient_client_id,
            "data": {
                "key": uuid::Uuid::new_v4().to_string(),
                "value": change.value,
                "source": "magento-sim.local",
                "_metadata": {
                    "commerceEdition": "Adobe Commerce",
                    "commerceVersion": "2.4.7",
                    "eventsClientVersion": "1.8.0",
                    "storeId": "1",
                    "websiteId": "1",
                    "storeGroupId": "1"
                }
            }
        })
    }

    /// Delivers `change` in the background, retrying until it is answered 2xx or the
    /// schedule gives up.
    pub fn announce(&self, change: Change) {
        let this = self.clone();
        this.stats.pending.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let body = this.envelope(&change).to_string().into_bytes();
            let headers = this.signer.headers(&body);
            let started = Instant::now();
            let mut wait = this.retry.first;
            let mut attempt = 0u32;
            loop {
                let mut request = this
                    .client
                    .post(&this.url)
                    .header("content-type", "application/cloudevents+json")
                    .body(body.clone());
                for (name, value) in &headers {
                    request = request.header(*name, value);
                }
                if attempt > 0 {
                    request = request.header("x-adobe-retry-count", attempt.to_string());
                }
                match request.send().await {
                    Ok(answer) if answer.status().is_success() => {
                        this.stats.delivered.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Ok(answer) => {
                        tracing::debug!(status = %answer.status(), attempt, "delivery refused");
                        this.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        tracing::debug!(%error, attempt, "delivery failed");
                        this.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if started.elapsed() + wait > this.retry.give_up_after {
                    this.stats.given_up.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(attempts = attempt + 1, "delivery given up");
                    break;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(this.retry.cap);
                attempt += 1;
            }
            this.stats.pending.fetch_sub(1, Ordering::Relaxed);
        });
    }
}
