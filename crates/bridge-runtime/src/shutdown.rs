//! Shutdown as a value: one [`Trigger`] fires it, any number of [`Shutdown`] clones wait.

use tokio::sync::watch;

/// Fires the shutdown; dropping it fires it too, so a finished owner never strands waiters.
pub struct Trigger(watch::Sender<bool>);

/// Waits for shutdown. Cheap to clone.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and its first waiter.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Asks every waiter to stop.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown is asked for (or its trigger is gone).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether shutdown has been asked for.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

/// A shutdown that fires on SIGTERM (Kubernetes) or Ctrl-C.
pub fn on_signals() -> Shutdown {
    let (trigger, shutdown) = channel();
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received, stopping"),
            _ = term => tracing::info!("SIGTERM received, stopping"),
        }
        trigger.fire();
    });
    shutdown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_sees_the_trigger() {
        let (trigger, first) = channel();
        let second = first.clone();
        assert!(!first.is_requested());
        trigger.fire();
        first.wait().await;
        assert!(second.is_requested());
    }

    #[tokio::test]
    async fn a_dropped_trigger_releases_waiters() {
        let (trigger, waiter) = channel();
        drop(trigger);
        waiter.wait().await;
    }
}
