//! Errors as the API answers them: problem+json (RFC 9457) with a stable
//! code. Internal failures carry no details to the caller; the logging
//! middleware finds them in the response's extensions.
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ServerError;

/// An API error: a status and a message for the caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    internal: Option<String>,
}

/// The problem+json body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status and `code` say what happened.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary (the status text).
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong and what to do.
    pub detail: String,
    /// Stable machine-readable error code.
    pub code: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: detail.into(), internal: None }
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        use ServerError as E;
        let (status, code) = match &e {
            E::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::Exists(_) => (StatusCode::CONFLICT, "exists"),
            E::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid"),
            E::Format(_) => (StatusCode::BAD_REQUEST, "invalid"),
            E::NoIssuerCert => (StatusCode::CONFLICT, "issuer_not_certified"),
            E::IssuerCertExpired => (StatusCode::CONFLICT, "issuer_certificate_expired"),
            E::NoRelease(_) => (StatusCode::CONFLICT, "no_release"),
            E::NoPackage => (StatusCode::NOT_FOUND, "no_package"),
            E::PackageMismatch(_) => (StatusCode::UNPROCESSABLE_ENTITY, "package_mismatch"),
            E::CodeUnknown => (StatusCode::NOT_FOUND, "code_unknown"),
            E::CodeRevoked => (StatusCode::GONE, "code_revoked"),
            E::CodeExpired => (StatusCode::GONE, "code_expired"),
            E::CodeExhausted(_) => (StatusCode::CONFLICT, "code_exhausted"),
            E::TransferLimit(_) => (StatusCode::CONFLICT, "transfer_limit"),
            E::NotActivated => (StatusCode::NOT_FOUND, "not_activated"),
            E::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            _ => {
                return ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    detail: "internal error; the operator's log has the details".into(),
                    internal: Some(e.to_string()),
                };
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// Marks a response as an internal error, for the logging middleware.
#[derive(Clone)]
pub(crate) struct InternalError(pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: "about:blank".into(),
            title: self.status.canonical_reason().unwrap_or("Error").into(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.into(),
        };
        let mut r = (self.status, Json(body)).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(i) = self.internal {
            r.extensions_mut().insert(InternalError(i));
        }
        r
    }
}

/// What a handler returns.
pub(crate) type ApiResult<T> = Result<T, ApiError>;
