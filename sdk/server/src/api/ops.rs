//! For operators and monitoring: health, metrics and the OpenAPI document.
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::problem::ApiResult;

use super::{ApiDoc, AppState, St};
use crate::problem::{ApiError, Problem};

/// `/healthz`: 200 when the database answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "healthy"), (status = 503, body = Problem)))]
pub(super) async fn healthz(State(s): St) -> ApiResult<Json<serde_json::Value>> {
    s.svc
        .db
        .ping()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unhealthy", "the database does not answer"))?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

pub(super) async fn metrics(State(s): St) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

pub(super) async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_text())
}

/// The OpenAPI document, as served and as checked in (docs/openapi.json).
pub fn openapi_text() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.to_pretty_json().expect("the OpenAPI document serialises") + "\n"
}

/// Health, metrics and the OpenAPI document.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi_json))
}
