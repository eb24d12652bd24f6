//! Shutdown, passed in rather than global, so tests can drive it: a [`Trigger`] fires once and
//! every [`Shutdown`] clone sees it. [`on_signals`] wires SIGINT and SIGTERM to a trigger;
//! [`within_grace`] holds a drain to the grace period.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Fires the shutdown; dropping it does not.
#[derive(Clone, Debug)]
pub struct Trigger(watch::Sender<bool>);

/// Waits for the shutdown.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the shutdown has fired (at once if it already has).
    pub async fn wait(&mut self) {
        // An error means every trigger is gone: nobody can fire any more, so wait forever.
        if self.0.wait_for(|fired| *fired).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs `work`, which watches `shutdown` itself and drains when it fires, but gives up on it
/// `grace` after the shutdown fired, wherever it is waiting then (a commit through a broker
/// outage, a full producer queue), saying so for `what`: `None` when the grace period ran out
/// first.
pub async fn within_grace<T>(
    mut shutdown: Shutdown,
    grace: Duration,
    what: &str,
    work: impl Future<Output = T>,
) -> Option<T> {
    let deadline = async move {
        shutdown.wait().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        biased;
        done = work => Some(done),
        () = deadline => {
            tracing::error!(grace = ?grace, "{what} did not finish within the grace period; stopping now.");
            None
        }
    }
}

/// Fires `trigger` on the first SIGINT or SIGTERM; a second signal exits at once.
pub fn on_signals(trigger: Trigger) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "Shutting down: draining in-flight work.");
        trigger.fire();
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("Second signal: exiting without draining.");
        std::process::exit(130);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let (trigger, shutdown) = channel();
        let mut a = shutdown.clone();
        let waiter = tokio::spawn(async move { a.wait().await });
        assert!(!shutdown.is_triggered());
        trigger.fire();
        waiter.await.unwrap();
        assert!(shutdown.is_triggered());
        let mut late = shutdown.clone();
        late.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn within_grace_gives_up_on_a_wait_only_after_the_grace_period() {
        let (trigger, shutdown) = channel();
        let grace = Duration::from_secs(3);
        // Work that never ends: given up on `grace` after the signal, not before it.
        let stuck = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { within_grace(shutdown, grace, "test", std::future::pending::<()>()).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!stuck.is_finished(), "gave up before any signal");
        let fired = tokio::time::Instant::now();
        trigger.fire();
        assert_eq!(stuck.await.unwrap(), None);
        assert_eq!(fired.elapsed(), grace);
        // Work that ends within the grace period gives its result.
        let drained = within_grace(shutdown, grace, "test", async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            7
        });
        assert_eq!(drained.await, Some(7));
    }
}
