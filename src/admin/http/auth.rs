//! Signing in and who is asking: `POST /api/v1/login` (a session cookie for the page, the
//! same token as a bearer token for API clients), `POST /api/v1/logout`, `GET
//! /api/v1/session`, and the [`Caller`] / [`AdminCaller`] extractors every other route
//! takes. A change made with the cookie must carry the session's CSRF token in
//! `X-CSRF-Token` (the cookie is also `SameSite=Strict`); a bearer token is never sent by
//! a browser on its own, so it needs none.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, JsonBody};
use super::state::{AdminState, random64, unix_now};
use crate::admin::accounts::{LoginError, Role};

/// The session cookie's name.
pub const COOKIE: &str = "mswitch_session";

/// An authenticated request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account.
    pub user: String,
    /// Its role.
    pub role: Role,
    /// Where the request came from.
    pub from: SocketAddr,
    token: String,
}

/// An authenticated request of an `admin` account.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Caller);

fn peer(parts: &Parts) -> SocketAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0)
}

/// The session token of a request, and whether it came in the cookie.
pub(crate) fn token_of(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let t = v.strip_prefix("Bearer ")?;
        return Some((t.trim().to_owned(), false));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .map(|t| (t.to_owned(), true))
}

impl FromRequestParts<Arc<AdminState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AdminState>,
    ) -> Result<Self, Self::Rejection> {
        let (token, via_cookie) = token_of(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let session = state
            .sessions
            .lock()
            .map_err(|_| ApiError::internal("sessions"))?
            .check(&token, unix_now())
            .ok_or_else(ApiError::unauthorized)?;
        // The account as the file has it now: a new password, another role or the
        // account's removal (`mswitch admin passwd` while the switch runs) ends the
        // sessions signed in before.
        let current = state
            .with_accounts(false, |a| a.credential(&session.user))
            .ok_or_else(|| ApiError::internal("accounts"))?;
        if current != Some(session.credential) {
            if let Ok(mut s) = state.sessions.lock() {
                s.revoke_user(&session.user);
            }
            return Err(ApiError::unauthorized());
        }
        let changes = !matches!(parts.method, Method::GET | Method::HEAD);
        if changes && via_cookie {
            let presented = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !session.csrf_matches(presented) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "a change signed in by cookie needs the session's X-CSRF-Token",
                ));
            }
        }
        Ok(Self {
            user: session.user,
            role: session.role,
            from: peer(parts),
            token,
        })
    }
}

impl FromRequestParts<Arc<AdminState>> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AdminState>,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.role != Role::Admin {
            state.audit(
                &caller.user,
                caller.from,
                &format!("{} {}", parts.method, parts.uri.path()),
                "forbidden: role viewer",
            );
            return Err(ApiError::forbidden());
        }
        Ok(Self(caller))
    }
}

/// `POST /api/v1/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    user: String,
    password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn cookie(value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// `POST /api/v1/login`: `{"user", "password"}` -> the session (cookie and bearer token).
pub async fn login(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    JsonBody(body): JsonBody<Login>,
) -> Result<Response, ApiError> {
    let now = unix_now();
    let user = body.user.chars().take(64).collect::<String>();
    // argon2 takes tens of milliseconds of a core: off the runtime's threads, and one
    // login at a time (the accounts' lock), which also slows a guesser down.
    let checked = {
        let state = state.clone();
        let user = user.clone();
        tokio::task::spawn_blocking(move || {
            state.with_accounts(true, |a| {
                a.login(&user, &body.password, now)
                    .map(|role| (role, a.credential(&user).unwrap_or_default()))
            })
        })
        .await
        .map_err(|_| ApiError::internal("login"))?
        .ok_or_else(|| ApiError::internal("accounts"))?
    };
    let (role, credential) = match checked {
        Ok(signed_in) => signed_in,
        Err(LoginError::Wrong) => {
            state.audit(&user, from, "login", "wrong user or password");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "login_failed",
                "wrong user or password",
            ));
        }
        Err(LoginError::Locked(until)) => {
            state.audit(&user, from, "login", &format!("locked until {until}"));
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "locked",
                "too many failed logins: the account is locked for a while",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&until.saturating_sub(now).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(r);
        }
    };
    let random = random64().ok_or_else(|| ApiError::internal("the system RNG failed"))?;
    let (issued, idle) = {
        let mut sessions = state
            .sessions
            .lock()
            .map_err(|_| ApiError::internal("sessions"))?;
        (
            sessions.issue((&user, role, credential), now, random),
            sessions.policy().idle_secs,
        )
    };
    state.audit(&user, from, "login", "ok");
    let body = serde_json::json!({
        "user": user,
        "role": role,
        "token": issued.token,
        "csrf": issued.csrf,
        "idle_timeout_s": idle,
    });
    let mut r = axum::Json(body).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie(&issued.token, idle));
    Ok(r)
}

/// `POST /api/v1/logout`: the session ends, the cookie goes.
pub async fn logout(State(state): State<Arc<AdminState>>, caller: Caller) -> Response {
    if let Ok(mut s) = state.sessions.lock() {
        s.revoke(&caller.token);
    }
    state.audit(&caller.user, caller.from, "logout", "ok");
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie("", 0));
    r
}

/// `GET /api/v1/session`: who is signed in, and the CSRF token the page sends with changes.
pub async fn session(
    State(state): State<Arc<AdminState>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let csrf = state
        .sessions
        .lock()
        .map_err(|_| ApiError::internal("sessions"))?
        .check(&caller.token, unix_now())
        .map(|s| s.csrf_token())
        .ok_or_else(ApiError::unauthorized)?;
    Ok(axum::Json(serde_json::json!({
        "user": caller.user,
        "role": caller.role,
        "csrf": csrf,
    }))
    .into_response())
}
