//! The whole daemon as one call: metrics, health, the admin HTTP server, the Kafka loop and,
//! with `repartition`, the repartitioner, with one shutdown for all: the caller's, or the
//! failure of the loop or the repartitioner, which stops the rest. `recall-radar run` and the
//! demo both start it through here.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::kafka::daemon::{self, DaemonError, RunSummary, Services};
use crate::kafka::live::LiveWindows;
use crate::kafka::repartition::{self, RepartitionError};
use crate::metrics::{Health, Metrics};
use crate::policy::Policy;
use crate::shutdown::{self, Shutdown};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Admin(#[from] std::io::Error),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Repartition(#[from] RepartitionError),
}

/// A started daemon: where its admin server listens, and what it reports to.
pub struct Running {
    pub admin_addr: Option<SocketAddr>,
    pub services: Services,
    pub task: tokio::task::JoinHandle<Result<RunSummary, ServiceError>>,
}

/// Binds the admin server (so a taken port fails before anything else starts), then runs the
/// daemon, and the repartitioner if `kafka.repartition_topic` is set, until `shutdown` fires or
/// one of them fails. The task fails if either does.
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
    // Bound first: a taken port fails before anything runs.
    let listener = match config.admin_addr {
        Some(addr) => Some(admin::bind(addr).await?),
        None => None,
    };
    let admin_addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
    // Everything stops on the caller's shutdown or when a part fails.
    let (stop_all, stopping) = shutdown::channel();
    let forward = {
        let (stop_all, mut shutdown) = (stop_all.clone(), shutdown);
        tokio::spawn(async move {
            shutdown.wait().await;
            stop_all.fire();
        })
    };
    let admin_task = listener.map(|listener| {
        let state = AdminState {
            metrics: metrics.clone(),
            health,
            signals: live,
        };
        let mut stop = stopping.clone();
        tracing::info!(addr = ?admin_addr, "Admin server listening (/metrics, /healthz, /readyz, /api/signals, /api/top).");
        tokio::spawn(admin::serve(listener, state, async move {
            stop.wait().await
        }))
    });
    let repartitioner = config.kafka.repartition_topic.is_some().then(|| {
        let (config, stop_all, stop) = (config.clone(), stop_all.clone(), stopping.clone());
        tokio::spawn(async move {
            let result = repartition::run(config, metrics, stop).await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "Repartitioner failed; stopping the daemon.");
                stop_all.fire();
            }
            result
        })
    });
    let run_services = services.clone();
    let task = tokio::spawn(async move {
        let result = daemon::run(config, run_services, stopping).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "Daemon failed; stopping the rest.");
            stop_all.fire();
        }
        let repartitioned = match repartitioner {
            None => Ok(()),
            Some(t) => match t.await {
                Ok(r) => r.map(|_| ()),
                Err(e) => match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(_) => Ok(()), // cancelled: the runtime is going away
                },
            },
        };
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        forward.abort();
        let summary = result?;
        repartitioned?;
        Ok(summary)
    });
    Ok(Running {
        admin_addr,
        services,
        task,
    })
}
