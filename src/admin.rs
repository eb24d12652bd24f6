//! The admin HTTP server: Prometheus metrics, health probes and a small JSON API.
//!
//! Routes (all `GET`, `HEAD` too):
//! - `/metrics`: [`Metrics::render`] as `text/plain; version=0.0.4`.
//! - `/healthz`: 200 `ok` while [`Health::is_alive`], else 503.
//! - `/readyz`: 200 `ready`, or 503 `not ready: <reason>`.
//! - `/api/signals`: the JSON of [`SignalSource::signals`].
//! - `/api/top?n=`: the JSON of [`SignalSource::top`]; `n` defaults to 10 and must be an
//!   integer in 1..=1000, else 400 with `{"error": ...}`.
//! - anything else: 404 `{"error": "not found", "path": ...}`; other methods: 405 JSON.
//!
//! The server knows nothing of the engine: the daemon hands it a [`SignalSource`] over its live
//! windows. Calls into the source run on the blocking pool, so a slow scan of many keys does not
//! stall the runtime.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::metrics::{Health, Metrics};

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";
/// `n` of `/api/top` when the query has none.
pub const DEFAULT_TOP_N: usize = 10;
/// Largest accepted `n` of `/api/top`.
pub const MAX_TOP_N: usize = 1000;

/// What the JSON API shows of the live detection state; implemented by the daemon.
pub trait SignalSource: Send + Sync + 'static {
    /// The current signals (open episodes and the like), as served on `/api/signals`.
    fn signals(&self) -> Value;
    /// The `n` strongest keys right now, as served on `/api/top?n=`.
    fn top(&self, n: usize) -> Value;
}

/// Everything the handlers read; cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub signals: Arc<dyn SignalSource>,
}

/// Binds the admin listener; the error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("admin server: cannot listen on {addr}: {e}"),
        )
    })
}

/// The routes, without a listener (for embedding or in-process tests).
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/signals", get(signals))
        .route("/api/top", get(top))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Serves until `shutdown` completes, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "admin server listening"),
        Err(e) => tracing::warn!(error = %e, "admin server listening on an unknown address"),
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("admin server stopped");
    Ok(())
}

fn json_error(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(state): State<AdminState>) -> Response {
    if state.health.is_alive() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not alive").into_response()
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        )
            .into_response(),
    }
}

/// Runs a call into the signal source on the blocking pool; a panic there becomes a 500.
async fn ask<F>(state: &AdminState, f: F) -> Response
where
    F: FnOnce(&dyn SignalSource) -> Value + Send + 'static,
{
    let source = Arc::clone(&state.signals);
    match tokio::task::spawn_blocking(move || f(source.as_ref())).await {
        Ok(value) => Json(value).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "signal source failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": "signal source failed" }),
            )
        }
    }
}

async fn signals(State(state): State<AdminState>) -> Response {
    ask(&state, |s| s.signals()).await
}

/// Parses `n` of `/api/top`: absent means [`DEFAULT_TOP_N`].
fn parse_top_n(raw: Option<&str>) -> Result<usize, String> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_TOP_N);
    };
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_TOP_N).contains(&n) => Ok(n),
        _ => Err(format!(
            "n must be an integer from 1 to {MAX_TOP_N}, got {raw:?}"
        )),
    }
}

async fn top(
    State(state): State<AdminState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let params = match query {
        Ok(Query(params)) => params,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("bad query string: {e}") }),
            )
        }
    };
    match parse_top_n(params.get("n").map(String::as_str)) {
        Ok(n) => ask(&state, move |s| s.top(n)).await,
        Err(message) => json_error(StatusCode::BAD_REQUEST, json!({ "error": message })),
    }
}

async fn not_found(uri: Uri) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        json!({ "error": "not found", "path": uri.path() }),
    )
}

async fn method_not_allowed(uri: Uri) -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({ "error": "method not allowed", "path": uri.path() }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_parsing() {
        assert_eq!(parse_top_n(None), Ok(DEFAULT_TOP_N));
        assert_eq!(parse_top_n(Some("2")), Ok(2));
        assert_eq!(parse_top_n(Some("1000")), Ok(1000));
        for bad in [
            "",
            "0",
            "-1",
            "1001",
            "abc",
            "2.5",
            "99999999999999999999999",
        ] {
            assert!(parse_top_n(Some(bad)).is_err(), "{bad:?} accepted");
        }
    }
}
