//! [`Health`]: the liveness and readiness flags that `/healthz` and `/readyz` report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Liveness and readiness, shared between the daemon and the admin server.
///
/// Starts alive and not ready ("starting").
#[derive(Debug)]
pub struct Health {
    alive: AtomicBool,
    ready: AtomicBool,
    /// Why not ready; written together with `ready` under this lock.
    reason: Mutex<String>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            alive: AtomicBool::new(true),
            ready: AtomicBool::new(false),
            reason: Mutex::new("starting".to_owned()),
        }
    }
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Set to false when the process can no longer make progress (liveness probe fails).
    pub fn set_alive(&self, alive: bool) {
        self.alive.store(alive, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Sets readiness; `reason` says why not ready (kept but unused while ready).
    pub fn set_ready(&self, ready: bool, reason: impl Into<String>) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        *r = reason.into();
        self.ready.store(ready, Ordering::Release);
    }

    /// `Ok(())` when ready, else the reason; flag and reason are read consistently.
    pub fn readiness(&self) -> Result<(), String> {
        let r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if self.ready.load(Ordering::Acquire) {
            Ok(())
        } else if r.is_empty() {
            Err("not ready".to_owned())
        } else {
            Err(r.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_flags() {
        let h = Health::new();
        assert!(h.is_alive());
        assert!(!h.is_ready());
        assert_eq!(h.readiness(), Err("starting".to_owned()));
        h.set_ready(false, "no partitions assigned");
        assert_eq!(h.readiness(), Err("no partitions assigned".to_owned()));
        h.set_ready(true, "");
        assert!(h.is_ready());
        assert_eq!(h.readiness(), Ok(()));
        h.set_ready(false, "");
        assert_eq!(h.readiness(), Err("not ready".to_owned()));
        h.set_alive(false);
        assert!(!h.is_alive());
    }
}
