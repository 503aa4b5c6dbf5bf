//! Waiting on a condition with a timeout, instead of sleeping and hoping.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{HarnessError, Result};

const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it returns true, or fails naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(timed_out(what, timeout));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] for code outside an async runtime.
pub fn wait_until_blocking(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(timed_out(what, timeout));
        }
        std::thread::sleep(POLL);
    }
}

fn timed_out(what: &str, timeout: Duration) -> HarnessError {
    HarnessError::Timeout {
        what: what.to_owned(),
        seconds: timeout.as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn returns_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let result = wait_until_blocking("third call", Duration::from_secs(5), || {
            calls.fetch_add(1, Ordering::SeqCst) >= 2
        });
        assert!(result.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn fails_naming_the_condition() {
        let result = wait_until_blocking("never", Duration::from_millis(250), || false);
        assert!(matches!(result, Err(HarnessError::Timeout { what, .. }) if what == "never"));
    }
}
