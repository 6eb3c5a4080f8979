//! The `/api/v1` routes: reads for any signed-in account, actions for `admin` accounts,
//! each action written to the audit log with its result. The handlers only translate
//! HTTP to typed [`AdminRequest`]s; the call-control loop does the work.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::auth::{AdminCaller, Caller};
use super::error::{ApiError, JsonBody};
use super::state::AdminState;
use crate::admin::meetings::parse_mode;
use crate::admin::request::{Action, ActionError, AdminRequest, valid_number};
use crate::admin::view::StatusView;
use crate::policy::Policy;

pub(super) fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the switch is shutting down",
    )
}

async fn status_of(state: &AdminState) -> Result<StatusView, ApiError> {
    let (tx, rx) = oneshot::channel();
    state
        .app
        .send(AdminRequest::Status(tx))
        .await
        .map_err(|_| unavailable())?;
    rx.await.map_err(|_| unavailable())
}

pub(super) fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_path", e.body_text()))
}

fn json<T: serde::Serialize>(v: &T) -> Response {
    axum::Json(v).into_response()
}

/// `GET /api/v1/status`: system, peers and meetings in one (what the page polls).
pub async fn status(State(state): State<Arc<AdminState>>, _: Caller) -> Result<Response, ApiError> {
    Ok(json(&status_of(&state).await?))
}

/// `GET /api/v1/system`.
pub async fn system(State(state): State<Arc<AdminState>>, _: Caller) -> Result<Response, ApiError> {
    Ok(json(&status_of(&state).await?.system))
}

/// `GET /api/v1/peers`.
pub async fn peers(State(state): State<Arc<AdminState>>, _: Caller) -> Result<Response, ApiError> {
    Ok(json(&status_of(&state).await?.peers))
}

/// `GET /api/v1/meetings`.
pub async fn meetings(
    State(state): State<Arc<AdminState>>,
    _: Caller,
) -> Result<Response, ApiError> {
    Ok(json(&status_of(&state).await?.meetings))
}

fn no_meeting(number: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_meeting",
        format!("no meeting {number} runs or is configured"),
    )
}

/// `GET /api/v1/meetings/{number}`.
pub async fn meeting(
    State(state): State<Arc<AdminState>>,
    _: Caller,
    number: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let number = path(number)?;
    let status = status_of(&state).await?;
    let m = status
        .meetings
        .iter()
        .find(|m| m.number == number)
        .ok_or_else(|| no_meeting(&number))?;
    Ok(json(m))
}

/// `GET /api/v1/meetings/{number}/participants/{id}`.
pub async fn participant(
    State(state): State<Arc<AdminState>>,
    _: Caller,
    p: Result<Path<(String, u32)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (number, id) = path(p)?;
    let status = status_of(&state).await?;
    let m = status
        .meetings
        .iter()
        .find(|m| m.number == number)
        .ok_or_else(|| no_meeting(&number))?;
    let p = m.participants.iter().find(|p| p.id == id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_participant",
            format!("meeting {number} has no participant {id}"),
        )
    })?;
    Ok(json(p))
}

/// Does `action` for `caller`, with its audit entry.
async fn act(state: &AdminState, caller: &Caller, action: Action) -> Result<Response, ApiError> {
    let what = action.to_string();
    let (tx, rx) = oneshot::channel();
    state
        .app
        .send(AdminRequest::Act(action, tx))
        .await
        .map_err(|_| unavailable())?;
    let result = rx.await.map_err(|_| unavailable())?;
    let outcome = match &result {
        Ok(d) => format!("ok: {}", d.result),
        Err(e) => e.to_string(),
    };
    state.audit(&caller.user, caller.from, &what, &outcome);
    match result {
        Ok(done) => Ok(json(&done)),
        Err(e) => Err(action_error(&e)),
    }
}

fn action_error(e: &ActionError) -> ApiError {
    ApiError::new(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.code(),
        e.to_string(),
    )
}

fn number_of(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let n = path(p)?;
    if valid_number(&n) {
        Ok(n)
    } else {
        Err(action_error(&ActionError::BadNumber(n)))
    }
}

/// An action on the meeting of the path: checked number, then [`act`].
async fn on_meeting(
    state: &AdminState,
    caller: &Caller,
    number: Result<Path<String>, PathRejection>,
    action: impl FnOnce(String) -> Action,
) -> Result<Response, ApiError> {
    let number = number_of(number)?;
    act(state, caller, action(number)).await
}

/// `POST /api/v1/meetings/{number}/lock`.
pub async fn lock(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
    number: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    on_meeting(&state, &caller, number, |number| Action::Lock {
        number,
        locked: true,
    })
    .await
}

/// `POST /api/v1/meetings/{number}/unlock`.
pub async fn unlock(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
    number: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    on_meeting(&state, &caller, number, |number| Action::Lock {
        number,
        locked: false,
    })
    .await
}

/// `POST /api/v1/meetings/{number}/end`.
pub async fn end(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
    number: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    on_meeting(&state, &caller, number, |number| Action::End { number }).await
}

/// `PUT /api/v1/meetings/{number}/switching` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchingBody {
    mode: String,
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// `PUT /api/v1/meetings/{number}/switching`: `{"mode": "site" | "segment"}`.
pub async fn switching(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
    number: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<SwitchingBody>,
) -> Result<Response, ApiError> {
    let number = number_of(number)?;
    let mode = parse_mode(&body.mode)
        .ok_or_else(|| bad(format!("mode `{}`: site or segment", body.mode)))?;
    act(&state, &caller, Action::SetSwitching { number, mode }).await
}

/// `DELETE /api/v1/meetings/{number}/participants/{id}`: kick (BYE).
pub async fn kick(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
    p: Result<Path<(String, u32)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (number, participant) = path(p)?;
    act(
        &state,
        &caller,
        Action::Kick {
            number,
            participant,
        },
    )
    .await
}

/// `POST /api/v1/meetings/{number}/dial` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialBody {
    target: String,
}

/// `POST /api/v1/meetings/{number}/dial`: `{"target": "NUMBER"}`, an outbound call through
/// the trunk that joins the meeting when answered (202: the call is placed).
pub async fn dial(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
    number: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<DialBody>,
) -> Result<Response, ApiError> {
    let number = number_of(number)?;
    if !valid_number(&body.target) {
        return Err(action_error(&ActionError::BadNumber(body.target)));
    }
    let mut r = act(
        &state,
        &caller,
        Action::DialOut {
            number,
            target: body.target,
        },
    )
    .await?;
    *r.status_mut() = StatusCode::ACCEPTED;
    Ok(r)
}

/// `PUT /api/v1/meetings/{number}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingBody {
    policy: Policy,
    #[serde(default = "site")]
    switching: String,
}

fn site() -> String {
    "site".into()
}

/// `PUT /api/v1/meetings/{number}`: create or change a configured meeting (kept across
/// restarts); `{"policy": "secure" | "non-secure" | "best-effort", "switching": "site" | "segment"}`.
pub async fn put_meeting(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
    number: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<MeetingBody>,
) -> Result<Response, ApiError> {
    let number = number_of(number)?;
    let mode = parse_mode(&body.switching)
        .ok_or_else(|| bad(format!("switching `{}`: site or segment", body.switching)))?;
    act(
        &state,
        &caller,
        Action::PutMeeting {
            number,
            policy: body.policy,
            mode,
        },
    )
    .await
}

/// `DELETE /api/v1/meetings/{number}`: remove a meeting configured through the API.
pub async fn delete_meeting(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
    number: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    on_meeting(&state, &caller, number, |number| Action::DeleteMeeting {
        number,
    })
    .await
}

/// `POST /api/v1/drain`: stop taking new calls (503 with Retry-After); running meetings
/// go on until the drain deadline, then every call gets BYE and the switch exits.
pub async fn drain(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
) -> Result<Response, ApiError> {
    act(&state, &caller, Action::Drain).await
}

/// `GET /api/v1/calls?limit=N` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/calls?limit=N`: the newest call records (100 by default, 1000 at most),
/// newest last.
pub async fn calls(
    State(state): State<Arc<AdminState>>,
    _: Caller,
    query: Result<axum::extract::Query<CallsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let limit = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?
        .0
        .limit
        .unwrap_or(100)
        .min(1000);
    let log = crate::ops::cdr::CallLog::new(&state.data_dir);
    let records = tokio::task::spawn_blocking(move || log.newest(limit))
        .await
        .map_err(|_| ApiError::internal("call records"))?;
    Ok(json(&records))
}

/// Anything else under `/api`.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// A route with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
