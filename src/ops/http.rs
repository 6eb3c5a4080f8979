//! `/metrics`, `/healthz` and `/readyz`: on the admin HTTPS listener (`/metrics` for a
//! signed-in account there) and on a plain-HTTP listener of their own for scrapers and
//! supervisors (`[admin] metrics`, loopback by default), which serves nothing else.
//!
//! Liveness is process-local: call control's loop answers within [`ANSWER_WITHIN`] and
//! every media worker's loop went round lately. Readiness adds what decides whether new
//! calls should come (draining, trunk peers, media ports); a failing dependency never
//! fails liveness.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::oneshot;

use crate::admin::http::auth::Caller;
use crate::admin::http::state::AdminState;
use crate::admin::request::AdminRequest;

/// How long call control's loop has to answer a health check.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(2);

async fn ask<T>(
    state: &AdminState,
    make: impl FnOnce(oneshot::Sender<T>) -> AdminRequest,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    state.app.try_send(make(tx)).ok()?;
    tokio::time::timeout(ANSWER_WITHIN, rx).await.ok()?.ok()
}

fn json_status(status: StatusCode, body: &impl serde::Serialize) -> Response {
    (status, axum::Json(body)).into_response()
}

/// `GET /healthz`: 200 while the loops go round, 503 when one is stuck.
pub async fn healthz(State(state): State<Arc<AdminState>>) -> Response {
    match ask(&state, AdminRequest::Health).await {
        Some(h) if h.status == "ok" => json_status(StatusCode::OK, &h),
        Some(h) => json_status(StatusCode::SERVICE_UNAVAILABLE, &h),
        None => json_status(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "stuck", "why": "call control did not answer" }),
        ),
    }
}

/// `GET /readyz`: 200 when new calls should come here, else 503 with the reasons.
pub async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    match ask(&state, AdminRequest::Ready).await {
        Some(r) if r.ready => json_status(StatusCode::OK, &r),
        Some(r) => json_status(StatusCode::SERVICE_UNAVAILABLE, &r),
        None => json_status(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "ready": false, "reasons": ["call control did not answer"] }),
        ),
    }
}

/// The text exposition, after call control copied its atomics in.
pub async fn metrics_text(state: &AdminState) -> Response {
    let _ = ask(state, AdminRequest::Metrics).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        super::metrics::render(),
    )
        .into_response()
}

/// `GET /metrics` on the plain listener.
pub async fn metrics_plain(State(state): State<Arc<AdminState>>) -> Response {
    metrics_text(&state).await
}

/// `GET /metrics` on the admin listener: for a signed-in account.
pub async fn metrics_signed_in(State(state): State<Arc<AdminState>>, _: Caller) -> Response {
    metrics_text(&state).await
}

/// The plain listener's routes: these three, nothing else.
pub fn plain_router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_plain))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Binds and serves the plain listener at `addr`; where it listens.
pub fn start(addr: SocketAddr, state: Arc<AdminState>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        std::io::Error::new(e.kind(), format!("metrics listener {addr}: {e} (set [admin] metrics to another address, or \"\" to turn it off)"))
    })?;
    let local = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    if !local.ip().is_loopback() {
        tracing::warn!(%local, "the metrics listener (plain HTTP, no sign-in) is reachable beyond this machine, as [admin] metrics says");
    }
    let app = plain_router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics listener: {e}");
        }
    });
    Ok(local)
}
