//! The tracing backend the trace tests export to and query: a real Jaeger (v2, built from
//! its Go module by `deploy/local/jaeger.sh`). `make test` starts one for the run
//! (`BRIDGE_TEST_JAEGER` is its query URL, `BRIDGE_TEST_OTLP_HTTP` and
//! `BRIDGE_TEST_OTLP_GRPC` its OTLP endpoints); without them the first use starts one on
//! free ports in a temporary folder, killed when the test process ends.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::{HarnessError, Result};

/// A running Jaeger.
pub struct Jaeger {
    /// The query API's base URL (`/api/traces/{id}`, `/api/traces?service=…`).
    pub query_url: String,
    /// The OTLP/HTTP base URL (`/v1/traces` is added by the exporter).
    pub otlp_http: String,
    /// The OTLP/gRPC URL.
    pub otlp_grpc: String,
    _dir: Option<tempfile::TempDir>,
}

static JAEGER: OnceLock<std::result::Result<Jaeger, String>> = OnceLock::new();

/// The Jaeger of this test process, started on first use when the environment names none.
pub fn jaeger() -> Result<&'static Jaeger> {
    JAEGER
        .get_or_init(|| start().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| HarnessError::Broker(format!("jaeger did not start: {e}")))
}

fn start() -> Result<Jaeger> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(query_url), Some(otlp_http), Some(otlp_grpc)) = (
        var("BRIDGE_TEST_JAEGER"),
        var("BRIDGE_TEST_OTLP_HTTP"),
        var("BRIDGE_TEST_OTLP_GRPC"),
    ) {
        return Ok(Jaeger {
            query_url,
            otlp_http,
            otlp_grpc,
            _dir: None,
        });
    }
    let dir = tempfile::tempdir().map_err(|source| HarnessError::Io {
        context: "make jaeger's folder".into(),
        source,
    })?;
    let port = crate::broker::free_port;
    let (grpc, http, query, query_grpc, health) = (port()?, port()?, port()?, port()?, port()?);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/jaeger.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg("start")
        .env("BRIDGE_DATA_DIR", dir.path())
        .env("BRIDGE_JAEGER_OTLP_GRPC_PORT", grpc.to_string())
        .env("BRIDGE_JAEGER_OTLP_HTTP_PORT", http.to_string())
        .env("BRIDGE_JAEGER_QUERY_PORT", query.to_string())
        .env("BRIDGE_JAEGER_QUERY_GRPC_PORT", query_grpc.to_string())
        .env("BRIDGE_JAEGER_HEALTH_PORT", health.to_string())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|source| HarnessError::Io {
            context: format!("run {}", script.display()),
            source,
        })?;
    if !status.success() {
        return Err(HarnessError::Broker(format!(
            "{} start failed",
            script.display()
        )));
    }
    let pid = std::fs::read_to_string(dir.path().join("jaeger/jaeger.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok());
    if let Some(pid) = pid {
        crate::broker::watchdog(pid, dir.path());
    }
    Ok(Jaeger {
        query_url: format!("http://127.0.0.1:{query}"),
        otlp_http: format!("http://127.0.0.1:{http}"),
        otlp_grpc: format!("http://127.0.0.1:{grpc}"),
        _dir: Some(dir),
    })
}

impl Jaeger {
    /// The spans of trace `trace_id` (32 hex digits) as the query API answers them (Jaeger's
    /// JSON: `spans` with `spanID`, `operationName`, `references`, `tags`, `processID`, and
    /// `processes` naming each span's service); `None` while Jaeger does not know it.
    pub async fn trace(&self, trace_id: &str) -> Result<Option<Value>> {
        let url = format!("{}/api/traces/{trace_id}", self.query_url);
        let answer = reqwest::get(&url).await.map_err(|e| query_error(&url, e))?;
        if answer.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: Value = answer.json().await.map_err(|e| query_error(&url, e))?;
        Ok(body["data"].as_array().and_then(|d| d.first()).cloned())
    }

    /// The ids of the traces of `service` with a span tagged `key=value` in the last hour.
    pub async fn find(&self, service: &str, key: &str, value: &str) -> Result<Vec<String>> {
        let url = format!("{}/api/traces", self.query_url);
        let tags = serde_json::json!({ key: value }).to_string();
        let answer = reqwest::Client::new()
            .get(&url)
            .query(&[
                ("service", service),
                ("tags", tags.as_str()),
                ("lookback", "1h"),
                ("limit", "20"),
            ])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| query_error(&url, e))?;
        let body: Value = answer.json().await.map_err(|e| query_error(&url, e))?;
        Ok(body["data"]
            .as_array()
            .map(|traces| {
                traces
                    .iter()
                    .filter_map(|t| t["traceID"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn query_error(url: &str, e: reqwest::Error) -> HarnessError {
    HarnessError::Io {
        context: format!("query jaeger at {url}"),
        source: std::io::Error::other(e.to_string()),
    }
}
