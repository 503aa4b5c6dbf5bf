//! One ERP call as both flows make it: through the circuit breaker and the rate limit,
//! timed and counted, blocking the processing thread until the ERP answers.

use std::future::Future;

use bridge_runtime::guard::Guard;
use bridge_runtime::handler::HandlerError;
use tracing::Instrument;

use crate::metrics::WriterMetrics;
use erp::connector::ErpError;

/// A business refusal: a verdict, not a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable, e.g. `credit_limit` (or `unmappable` for our own mapping's gap).
    pub code: String,
    /// Readable.
    pub reason: String,
}

impl Refusal {
    /// The parked record's error class: our mapping's gap, or the ERP's refusal.
    pub fn park_class(&self) -> &'static str {
        if self.code == "unmappable" {
            "unmappable"
        } else {
            "erp_rejected"
        }
    }
}

/// Makes ERP calls for one processing loop.
pub struct ErpCaller {
    runtime: tokio::runtime::Handle,
    guard: Guard,
    metrics: WriterMetrics,
}

impl ErpCaller {
    /// Calls through `guard`, blocking on `runtime`.
    pub fn new(runtime: tokio::runtime::Handle, guard: Guard, metrics: WriterMetrics) -> Self {
        Self {
            runtime,
            guard,
            metrics,
        }
    }

    /// One ERP call. The outer error is "retry later" (the runtime backs off, then pauses
    /// the partition); the inner one is the ERP's refusal.
    pub fn call<T>(
        &mut self,
        op: &'static str,
        call: impl Future<Output = Result<T, ErpError>>,
    ) -> Result<Result<T, Refusal>, HandlerError> {
        if !self.guard.admit()?.is_zero() {
            self.metrics.rate_limited.inc();
        }
        let started = std::time::Instant::now();
        // The operation's span; each HTTP exchange it makes is a client span under it.
        let span = tracing::info_span!(
            "erp call",
            otel.name = %format_args!("erp {op}"),
            bridge.operation = op,
        );
        let result = self.runtime.block_on(call.instrument(span));
        self.metrics.call(op, &result);
        // Inside the record's span: the exemplar is its trace.
        bridge_runtime::metrics::observe_traced(
            &self.metrics.call_seconds,
            started.elapsed().as_secs_f64(),
        );
        let outcome = match result {
            Ok(value) => {
                self.guard.succeeded();
                Ok(Ok(value))
            }
            Err(ErpError::Rejected { code, reason }) => {
                self.guard.succeeded();
                Ok(Err(Refusal { code, reason }))
            }
            Err(e) => {
                let retry_after = match &e {
                    ErpError::Unavailable { retry_after, .. } => *retry_after,
                    _ => None,
                };
                Err(self.guard.failed(format!("{op}: {e}"), retry_after))
            }
        };
        self.metrics
            .breaker_open
            .set(i64::from(self.guard.is_tripped()));
        outcome
    }
}
