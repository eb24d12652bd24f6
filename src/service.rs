//! The whole daemon as one call: metrics, health, the admin HTTP server and the Kafka loop, with
//! one shutdown for all. `recall-radar run` and the demo both start it through here.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::kafka::daemon::{self, DaemonError, RunSummary, Services};
use crate::kafka::live::LiveWindows;
use crate::metrics::{Health, Metrics};
use crate::policy::Policy;
use crate::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Admin(#[from] std::io::Error),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// A started daemon: where its admin server listens, and what it reports to.
pub struct Running {
    pub admin_addr: Option<SocketAddr>,
    pub services: Services,
    pub task: tokio::task::JoinHandle<Result<RunSummary, ServiceError>>,
}

/// Binds the admin server (so a taken port fails before anything else starts), then runs the
/// daemon until `shutdown` fires.
pub async fn start(config: Config, shutdown: Shutdown) -> Result<Running, ServiceError> {
    let metrics = Metrics::new();
    let health = Health::new();
    let policy = Policy::new(config.detector.clone());
    let live = Arc::new(LiveWindows::new(
        policy.classes().to_vec(),
        config.detector.evidence_limit,
    ));
    let services = Services {
        metrics: metrics.clone(),
        health: health.clone(),
        live: live.clone(),
    };
    let mut admin_addr = None;
    let mut admin_task = None;
    if let Some(addr) = config.admin_addr {
        let listener = admin::bind(addr).await?;
        admin_addr = Some(listener.local_addr()?);
        let state = AdminState {
            metrics,
            health,
            signals: live,
        };
        let mut stop = shutdown.clone();
        admin_task = Some(tokio::spawn(admin::serve(listener, state, async move {
            stop.wait().await
        })));
        tracing::info!(addr = ?admin_addr, "Admin server listening (/metrics, /healthz, /readyz, /api/signals, /api/top).");
    }
    let run_services = services.clone();
    let task = tokio::spawn(async move {
        let result = daemon::run(config, run_services, shutdown).await;
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        Ok(result?)
    });
    Ok(Running {
        admin_addr,
        services,
        task,
    })
}
