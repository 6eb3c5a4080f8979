//! `/api/v1/certificates`: the store's units for any account; uploads and removals for
//! `admin` accounts, each written to the audit log with its result.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::api::{path, unavailable};
use super::auth::{AdminCaller, Caller};
use super::error::{ApiError, JsonBody};
use super::state::AdminState;
use crate::admin::certificates::{CertChange, CertChangeError, UnitView, UploadBody, upload};
use crate::admin::request::AdminRequest;
use crate::certs::store::Unit;

fn unit_of(name: &str) -> Result<Unit, ApiError> {
    Unit::parse(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_unit",
            format!("no unit `{name}` (sip-identity, admin-identity, trunk-trust, other-trust)"),
        )
    })
}

fn change_error(e: &CertChangeError) -> ApiError {
    ApiError::new(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.code(),
        e.to_string(),
    )
}

async fn units(state: &AdminState) -> Result<Vec<UnitView>, ApiError> {
    let (tx, rx) = oneshot::channel();
    state
        .app
        .send(AdminRequest::Certificates(tx))
        .await
        .map_err(|_| unavailable())?;
    rx.await.map_err(|_| unavailable())
}

/// `GET /api/v1/certificates`: every unit.
pub async fn list(State(state): State<Arc<AdminState>>, _: Caller) -> Result<Response, ApiError> {
    Ok(axum::Json(units(&state).await?).into_response())
}

/// `GET /api/v1/certificates/{unit}`.
pub async fn one(
    State(state): State<Arc<AdminState>>,
    _: Caller,
    unit: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let unit = unit_of(&path(unit)?)?;
    let found = units(&state)
        .await?
        .into_iter()
        .find(|u| u.unit == unit)
        .ok_or_else(|| ApiError::internal("certificates"))?;
    Ok(axum::Json(found).into_response())
}

async fn change(
    state: &AdminState,
    caller: &Caller,
    change: CertChange,
) -> Result<Response, ApiError> {
    let what = change.to_string();
    let (tx, rx) = oneshot::channel();
    state
        .app
        .send(AdminRequest::ChangeCertificates(change, tx))
        .await
        .map_err(|_| unavailable())?;
    let result = rx.await.map_err(|_| unavailable())?;
    let outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    state.audit(&caller.user, caller.from, &what, &outcome);
    result
        .map(|units| axum::Json(units).into_response())
        .map_err(|e| change_error(&e))
}

/// `PUT /api/v1/certificates/{unit}`: an identity's chain and key, or trust anchors to add.
pub async fn put(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
    unit: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<UploadBody>,
) -> Result<Response, ApiError> {
    let unit = unit_of(&path(unit)?)?;
    let store = crate::certs::store::CertStore::new(&state.data_dir);
    let c = match upload(unit, body, store.pending_key(unit)) {
        Ok(c) => c,
        Err(e) => {
            state.audit(
                &caller.user,
                caller.from,
                &format!("upload to {}", unit.name()),
                &e.to_string(),
            );
            return Err(change_error(&e));
        }
    };
    change(&state, &caller, c).await
}

/// `DELETE /api/v1/certificates/{unit}/{sha256}`.
pub async fn delete(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (unit, sha256) = path(p)?;
    let unit = unit_of(&unit)?;
    change(
        &state,
        &caller,
        CertChange::Remove {
            unit,
            sha256: sha256.to_ascii_lowercase(),
        },
    )
    .await
}

/// `POST /api/v1/certificates/{unit}/csr`: a key made here and a request for the CA
/// (R58); the answer and `GET` on the same path give the request as PEM.
pub async fn make_request(
    State(state): State<Arc<AdminState>>,
    AdminCaller(caller): AdminCaller,
    unit: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<crate::certs::csr::CsrBody>,
) -> Result<Response, ApiError> {
    let unit = unit_of(&path(unit)?)?;
    if !unit.is_identity() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_upload",
            format!("{} holds trust anchors: no request", unit.name()),
        ));
    }
    let cn = body
        .common_name
        .clone()
        .unwrap_or_else(|| state.node_name.clone());
    let what = format!("certificate request for {} (CN={cn})", unit.name());
    let key = crate::certs::csr::key_type(body.key.as_deref());
    let store = crate::certs::store::CertStore::new(&state.data_dir);
    let made = tokio::task::spawn_blocking(move || {
        let csr = crate::certs::csr::make(&cn, &body.sans, key?)?;
        store
            .save_request(unit, &csr.pem, &csr.key_pem)
            .map_err(|e| crate::certs::CertError::Generate(e.to_string()))?;
        Ok::<_, crate::certs::CertError>(csr.pem)
    })
    .await
    .map_err(|_| ApiError::internal("certificate request"))?;
    state.audit(
        &caller.user,
        caller.from,
        &what,
        &made
            .as_ref()
            .map_or_else(ToString::to_string, |_| "ok".to_owned()),
    );
    match made {
        Ok(pem) => {
            Ok(axum::Json(serde_json::json!({ "unit": unit.name(), "csr": pem })).into_response())
        }
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_request",
            e.to_string(),
        )),
    }
}

/// `GET /api/v1/certificates/{unit}/csr`: the pending request, PEM, as a download.
pub async fn get_request(
    State(state): State<Arc<AdminState>>,
    AdminCaller(_): AdminCaller,
    unit: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let unit = unit_of(&path(unit)?)?;
    let pem = crate::certs::store::CertStore::new(&state.data_dir)
        .request(unit)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{} has no pending certificate request", unit.name()),
            )
        })?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/pkcs10".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"mswitch-{}.csr\"", unit.name()),
            ),
        ],
        pem,
    )
        .into_response())
}
