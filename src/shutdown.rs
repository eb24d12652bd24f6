//! Shutdown, passed in rather than global, so tests can drive it: a [`Trigger`] fires once and
//! every [`Shutdown`] clone sees it. [`on_signals`] wires SIGINT and SIGTERM to a trigger.

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
}
