//! The admin listener (issue 16): the JSON API under `/api/v1` and the live status page at
//! `/`, over HTTPS only (TLS 1.3/1.2, ECDHE AES-GCM, T3b), and a plain-HTTP listener that
//! answers everything with a redirect to it (R62). axum on axum-server's rustls acceptor.
//!
//! - [`auth`]: login, sessions, roles, CSRF.
//! - [`api`]: the routes.
//! - [`page`]: the status page (HTML and a small script from the binary).
//! - [`error`]: JSON errors and the JSON body extractor.
//! - [`state`]: what the handlers share.

pub mod api;
pub mod auth;
pub mod certificates;
pub mod error;
pub mod page;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post, put};

use state::AdminState;

/// The largest request body the API reads.
pub const MAX_BODY: usize = 16 * 1024;
/// The largest certificate upload (a chain of RSA 4096 certificates and a key, as PEM).
pub const MAX_UPLOAD: usize = 64 * 1024;

/// Every route.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/status.js", get(page::script))
        .route("/status.css", get(page::style))
        .route("/healthz", get(crate::ops::http::healthz))
        .route("/readyz", get(crate::ops::http::readyz))
        .route("/metrics", get(crate::ops::http::metrics_signed_in))
        .route("/api/v1/drain", post(api::drain))
        .route("/api/v1/calls", get(api::calls))
        .route("/api/v1/certificates", get(certificates::list))
        .route(
            "/api/v1/certificates/{unit}",
            get(certificates::one)
                .put(certificates::put)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route(
            "/api/v1/certificates/{unit}/csr",
            get(certificates::get_request).post(certificates::make_request),
        )
        .route(
            "/api/v1/certificates/{unit}/{sha256}",
            axum::routing::delete(certificates::delete),
        )
        .route("/api/v1/login", post(auth::login))
        .route("/api/v1/logout", post(auth::logout))
        .route("/api/v1/session", get(auth::session))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/system", get(api::system))
        .route("/api/v1/peers", get(api::peers))
        .route("/api/v1/meetings", get(api::meetings))
        .route(
            "/api/v1/meetings/{number}",
            get(api::meeting)
                .put(api::put_meeting)
                .delete(api::delete_meeting),
        )
        .route("/api/v1/meetings/{number}/lock", post(api::lock))
        .route("/api/v1/meetings/{number}/unlock", post(api::unlock))
        .route("/api/v1/meetings/{number}/end", post(api::end))
        .route("/api/v1/meetings/{number}/switching", put(api::switching))
        .route("/api/v1/meetings/{number}/dial", post(api::dial))
        .route(
            "/api/v1/meetings/{number}/participants/{id}",
            get(api::participant).delete(api::kick),
        )
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// What every answer carries: HTTPS only from now on (HSTS), no sniffing, no framing, no
/// script or style from anywhere else, nothing cached.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

/// The running listeners.
#[derive(Debug)]
pub struct AdminServer {
    /// Where HTTPS listens.
    pub https: SocketAddr,
    /// Where the redirect listens.
    pub http_redirect: Option<SocketAddr>,
    handle: axum_server::Handle<SocketAddr>,
    tls: axum_server::tls_rustls::RustlsConfig,
}

impl AdminServer {
    /// Serves new connections with `tls` from now on (issue 18: a new admin identity);
    /// open connections keep theirs.
    pub fn reload(&self, tls: Arc<rustls::ServerConfig>) {
        self.tls.reload_from_config(tls);
    }

    /// Stops listening (open connections get a moment to finish).
    pub fn stop(&self) {
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(1)));
    }
}

fn bind(addr: SocketAddr, what: &str) -> std::io::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied && addr.port() < 1024 {
            " (a port below 1024 needs root or CAP_NET_BIND_SERVICE; or choose another port in [admin], e.g. https = \"0.0.0.0:8443\")"
        } else if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another program listens there; choose another port in [admin], or \"\" to turn it off)"
        } else {
            ""
        };
        std::io::Error::new(e.kind(), format!("{what} {addr}: {e}{hint}"))
    })
}

/// Binds the HTTPS listener at `https` with `tls`, and the redirect at `redirect`, and
/// serves them on the current runtime.
pub fn start(
    https: SocketAddr,
    redirect: Option<SocketAddr>,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<AdminState>,
) -> std::io::Result<AdminServer> {
    let listener = bind(https, "admin HTTPS listener")?;
    let https = listener.local_addr()?;
    let redirect_listener = redirect
        .map(|a| bind(a, "admin HTTP redirect listener"))
        .transpose()?;
    let handle = axum_server::Handle::new();
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    let server =
        axum_server::tls_rustls::from_tcp_rustls(listener, tls.clone())?.handle(handle.clone());
    let app = router(state);
    tokio::spawn(async move {
        if let Err(e) = server
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
        {
            tracing::error!("admin HTTPS listener: {e}");
        }
    });
    let http_redirect = match redirect_listener {
        Some(l) => {
            let addr = l.local_addr()?;
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            let app = page::redirect_router(https.port());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(l, app).await {
                    tracing::error!("admin HTTP redirect listener: {e}");
                }
            });
            Some(addr)
        }
        None => None,
    };
    Ok(AdminServer {
        https,
        http_redirect,
        handle,
        tls,
    })
}
