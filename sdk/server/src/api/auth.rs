//! Who calls: the bearer token, vendor and admin authentication as
//! extractors, and revoking a token (either audience).
use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::ServerError;
use crate::problem::ApiResult;

use super::{ApiJson, AppState, St};
use crate::problem::{ApiError, Problem};

fn bearer(headers: &HeaderMap) -> ApiResult<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send a token: Authorization: Bearer TOKEN")
        })
}

pub(super) async fn vendor_auth(s: &AppState, headers: &HeaderMap) -> ApiResult<i64> {
    Ok(s.svc.authenticate_vendor(bearer(headers)?).await?)
}

/// The vendor a request comes from, by its bearer token. An extractor, so
/// that a vendor route cannot forget the check: the handler cannot run
/// without one, and it runs before the body is read.
pub(crate) struct VendorCaller(pub(crate) i64);

impl FromRequestParts<Arc<AppState>> for VendorCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<AppState>) -> Result<Self, ApiError> {
        vendor_auth(s, &parts.headers).await.map(VendorCaller)
    }
}

/// A request from the operator (the admin token), as [`VendorCaller`].
pub(crate) struct AdminCaller;

impl FromRequestParts<Arc<AppState>> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<AppState>) -> Result<Self, ApiError> {
        s.svc.authenticate_admin(bearer(&parts.headers)?).await?;
        Ok(AdminCaller)
    }
}

/// A token to revoke.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeTokenRequest {
    /// The token, in full.
    pub token: String,
}

#[utoipa::path(post, path = "/v1/tokens/revoke", request_body = RevokeTokenRequest,
    responses((status = 204, description = "revoked"), (status = 404, body = Problem)))]
pub(super) async fn revoke_token(
    State(s): St,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RevokeTokenRequest>,
) -> ApiResult<StatusCode> {
    // An admin may revoke any token; a vendor only its own ones.
    let caller = bearer(&headers)?;
    if s.svc.authenticate_admin(caller).await.is_err() {
        let me = vendor_auth(&s, &headers).await?;
        let owner = s.svc.authenticate_vendor(&req.token).await.map_err(|_| ServerError::NotFound("token"))?;
        if owner != me {
            return Err(ServerError::NotFound("token").into());
        }
    }
    if s.svc.revoke_token(&req.token).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ServerError::NotFound("token").into())
    }
}
