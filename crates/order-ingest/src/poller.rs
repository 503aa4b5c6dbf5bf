//! The REST poller: orders (and credit memos, shipments) by `updated_at`, from the saved cursor minus
//! an overlap, oldest first, ties by entity id.
//!
//! Paging is by key, never by page number: each query starts at the newest `updated_at`
//! read (re-reading that second; the publisher drops what was already published), and a
//! second holding more rows than a page is read on by `entity_id > last`. Rows updated
//! while the poller runs move to the end of the order and shift nothing under it (page
//! numbers would skip rows then), and Magento's page-past-the-end quirk (the last page
//! again) cannot happen: no page number past 1 is ever asked for. Each page is one
//! transaction with the cursor, so the cursor never runs ahead of what is in Kafka.

use std::sync::Arc;
use std::time::Duration;

use bridge_runtime::health::Heartbeat;
use bridge_runtime::shutdown::Shutdown;
use chrono::NaiveDateTime;
use serde_json::Value;
use tracing::Instrument;

use crate::config::PollSettings;
use crate::metrics::{IngestMetrics, KindLabels};
use crate::pipeline::{IngestError, Pipeline, id_text};
use magento::rest::{Position, RestError};

/// What is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/V1/orders`.
    Orders,
    /// `/V1/creditmemos`.
    CreditMemos,
    /// `/V1/shipments`.
    Shipments,
}

impl Kind {
    /// The REST collection and the cursor's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::CreditMemos => "creditmemos",
            Self::Shipments => "shipments",
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollStats {
    /// REST pages read.
    pub pages: usize,
    /// Rows read (re-reads included).
    pub rows: usize,
    /// Records produced.
    pub produced: usize,
}

const FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// A poll stops after this many pages and goes on at the next interval.
const MAX_PAGES: usize = 10_000;

/// Polls Magento.
pub struct Poller {
    pipeline: Arc<Pipeline>,
    settings: PollSettings,
    metrics: IngestMetrics,
    heartbeat: Option<Arc<Heartbeat>>,
}

impl Poller {
    /// A poller publishing through `pipeline`.
    pub fn new(pipeline: Arc<Pipeline>, settings: PollSettings, metrics: IngestMetrics) -> Self {
        Self {
            pipeline,
            settings,
            metrics,
            heartbeat: None,
        }
    }

    /// Tells `/healthz` of its progress: a beat per row, page and round, so a poll that
    /// hangs (a Magento call or a publish that never returns) turns liveness red.
    pub fn with_heartbeat(mut self, heartbeat: Arc<Heartbeat>) -> Self {
        self.heartbeat = Some(heartbeat);
        self
    }

    fn beat(&self) {
        if let Some(heartbeat) = &self.heartbeat {
            heartbeat.beat(std::time::Instant::now());
        }
    }

    /// Polls every interval until `shutdown`.
    pub async fn run(&self, shutdown: Shutdown) {
        let mut kinds = vec![Kind::Orders];
        if self.settings.creditmemos {
            kinds.push(Kind::CreditMemos);
        }
        if self.settings.shipments {
            kinds.push(Kind::Shipments);
        }
        let every = Duration::from_millis(self.settings.source_items_interval_ms);
        let mut last_sync: Option<std::time::Instant> = None;
        loop {
            self.beat();
            if !every.is_zero() && last_sync.is_none_or(|at| at.elapsed() >= every) {
                self.sync_source_items(&mut last_sync).await;
            }
            for kind in &kinds {
                match self.poll(*kind).await {
                    Ok(stats) => tracing::debug!(kind = kind.name(), ?stats, "polled"),
                    Err(error) => {
                        self.metrics
                            .poll_failures
                            .get_or_create(&KindLabels {
                                kind: kind.name().into(),
                            })
                            .inc();
                        tracing::warn!(kind = kind.name(), %error, "poll failed; next interval tries again");
                    }
                }
            }
            self.beat();
            tokio::select! {
                _ = shutdown.clone().wait() => return,
                _ = tokio::time::sleep(Duration::from_millis(self.settings.interval_ms)) => {}
            }
        }
    }

    /// One source-item sync; `last_sync` moves on success.
    async fn sync_source_items(&self, last_sync: &mut Option<std::time::Instant>) {
        let labels = KindLabels {
            kind: "source_items".into(),
        };
        match crate::source_items::sync(&self.pipeline, self.settings.page_size, &|| self.beat())
            .await
        {
            Ok(stats) => {
                tracing::debug!(?stats, "source items synced");
                *last_sync = Some(std::time::Instant::now());
            }
            Err(error) => {
                self.metrics.poll_failures.get_or_create(&labels).inc();
                tracing::warn!(%error, "source-item sync failed; next interval tries again");
            }
        }
        let age = last_sync.map_or(0, |at| at.elapsed().as_secs() as i64);
        self.metrics.poll_lag.get_or_create(&labels).set(age);
    }

    /// One poll of `kind`, from the saved cursor to now.
    pub async fn poll(&self, kind: Kind) -> Result<PollStats, IngestError> {
        let saved = self
            .pipeline
            .publisher
            .cursor(kind.name())
            .map_err(|e| RestError::Unavailable(format!("cursor store: {e}")))?;
        let now = chrono::Utc::now().naive_utc();
        let start = saved
            .as_deref()
            .and_then(|s| NaiveDateTime::parse_from_str(s, FORMAT).ok())
            .unwrap_or_else(|| {
                now - chrono::Duration::hours(self.settings.initial_lookback_hours as i64)
            });
        let mut newest = start.format(FORMAT).to_string();
        let from = (start - chrono::Duration::seconds(self.settings.overlap_seconds as i64))
            .format(FORMAT)
            .to_string();
        let mut position = Position {
            updated_at: from,
            after_entity: None,
        };
        let size = self.settings.page_size;
        let mut stats = PollStats::default();
        let origin = format!("magento:rest:/V1/{}", kind.name());
        while stats.pages < MAX_PAGES {
            let rows = self
                .pipeline
                .magento
                .updated_after(kind.name(), &position, size)
                .await?;
            stats.pages += 1;
            stats.rows += rows.items.len();
            self.beat();
            let mut outcomes = Vec::with_capacity(rows.items.len());
            let mut last: Option<(String, u64)> = None;
            for row in &rows.items {
                let updated = row
                    .get("updated_at")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if updated > newest.as_str() {
                    newest = updated.to_owned();
                }
                let id = id_of(row);
                if last
                    .as_ref()
                    .is_none_or(|(at, n)| (updated, id) > (at.as_str(), *n))
                {
                    last = Some((updated.to_owned(), id));
                }
                self.beat();
                // Each polled entity starts a trace of its own.
                let span = tracing::info_span!(
                    parent: None,
                    "poll",
                    otel.name = %format_args!("ingest {}", kind.name()),
                    otel.kind = "internal",
                );
                outcomes.push(match kind {
                    Kind::Orders => self.pipeline.order(row, &origin).instrument(span).await?,
                    Kind::CreditMemos => {
                        self.pipeline
                            .creditmemo(row, &origin)
                            .instrument(span)
                            .await?
                    }
                    Kind::Shipments => {
                        self.pipeline
                            .shipment(row, &origin)
                            .instrument(span)
                            .await?
                    }
                });
            }
            let published = self
                .pipeline
                .publish(outcomes, vec![(kind.name().to_owned(), newest.clone())])
                .await?;
            stats.produced += published.produced;
            let full = rows.items.len() >= size && rows.total_count > rows.items.len();
            match last {
                Some((last_at, last_id)) if full && last_at == position.updated_at => {
                    // The page held nothing but this second (or the rest of it): go on by id.
                    position.after_entity = Some(last_id);
                }
                Some((last_at, _)) if full => {
                    // Start again at the newest second read; its rows may not all have fit.
                    position = Position {
                        updated_at: last_at,
                        after_entity: None,
                    };
                }
                // The crowded second is done (an empty page too: it held a whole number of
                // pages): everything after it.
                _ if position.after_entity.is_some() => {
                    position = Position {
                        updated_at: next_second(&position.updated_at),
                        after_entity: None,
                    };
                }
                _ => break,
            }
        }
        if let Ok(cursor) = NaiveDateTime::parse_from_str(&newest, FORMAT) {
            let lag = (now - cursor).num_seconds().max(0);
            self.metrics
                .poll_lag
                .get_or_create(&KindLabels {
                    kind: kind.name().into(),
                })
                .set(lag);
        }
        Ok(stats)
    }
}

fn id_of(row: &Value) -> u64 {
    row.get("entity_id")
        .map(id_text)
        .and_then(|id| id.parse().ok())
        .unwrap_or_default()
}

/// The Magento time one second after `at` (`at` itself if it does not parse).
fn next_second(at: &str) -> String {
    NaiveDateTime::parse_from_str(at, FORMAT)
        .map(|t| {
            (t + chrono::Duration::seconds(1))
                .format(FORMAT)
                .to_string()
        })
        .unwrap_or_else(|_| at.to_owned())
}
