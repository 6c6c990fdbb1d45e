//! For the operator (the admin token): vendors, their tokens and plans,
//! and their invoices.
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::billing::{Invoice, PlanHistory, PlanJson};
use crate::problem::ApiResult;
use crate::vendors::{NewVendor, Vendor};

use super::{AdminCaller, ApiJson, AppState, FormatQuery, St, render_invoice};
use crate::problem::Problem;

/// A new vendor's name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VendorRequest {
    /// Lowercase letters, digits and dashes.
    pub name: String,
}

/// A token label.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenRequest {
    /// What the token is for, e.g. "ci".
    #[serde(default)]
    pub label: Option<String>,
}

/// A new token (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TokenJson {
    /// The token.
    pub token: String,
}

#[utoipa::path(post, path = "/v1/admin/vendors", request_body = VendorRequest, security(("admin" = [])),
    responses((status = 201, body = NewVendor), (status = 401, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn admin_create_vendor(
    State(s): St,
    _: AdminCaller,
    ApiJson(req): ApiJson<VendorRequest>,
) -> ApiResult<(StatusCode, Json<NewVendor>)> {
    Ok((StatusCode::CREATED, Json(s.svc.create_vendor(&req.name).await?)))
}

#[utoipa::path(get, path = "/v1/admin/vendors", security(("admin" = [])), responses((status = 200, body = Vec<Vendor>)))]
pub(super) async fn admin_vendors(State(s): St, _: AdminCaller) -> ApiResult<Json<Vec<Vendor>>> {
    Ok(Json(s.svc.vendors().await?))
}

#[utoipa::path(post, path = "/v1/admin/vendors/{vendor}/tokens", request_body = TokenRequest, security(("admin" = [])),
    params(("vendor" = String, Path)), responses((status = 201, body = TokenJson), (status = 404, body = Problem)))]
pub(super) async fn admin_vendor_token(
    State(s): St,
    _: AdminCaller,
    Path(vendor): Path<String>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenJson>)> {
    let id = s.svc.vendor_id(&vendor).await?;
    let t = s.svc.new_vendor_token(id, req.label.as_deref().unwrap_or("")).await?;
    Ok((StatusCode::CREATED, Json(TokenJson { token: t.to_string() })))
}

#[utoipa::path(put, path = "/v1/admin/vendors/{vendor}/plan", request_body = PlanJson, security(("admin" = [])),
    params(("vendor" = String, Path), ("effective_from" = Option<i64>, Query, description = "Unix seconds, now or later [default: now]")),
    responses((status = 200, body = PlanHistory), (status = 400, body = Problem)))]
pub(super) async fn admin_set_plan(
    State(s): St,
    _: AdminCaller,
    Path(vendor): Path<String>,
    Query(q): Query<EffectiveQuery>,
    ApiJson(plan): ApiJson<PlanJson>,
) -> ApiResult<Json<PlanHistory>> {
    let id = s.svc.vendor_id(&vendor).await?;
    s.svc.set_plan(id, &plan, q.effective_from).await?;
    Ok(Json(s.svc.plan_history(id).await?))
}

/// When a plan change takes effect.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct EffectiveQuery {
    /// Unix seconds, now or later [default: now].
    #[serde(default)]
    pub effective_from: Option<i64>,
}

#[utoipa::path(get, path = "/v1/admin/vendors/{vendor}/plan", security(("admin" = [])),
    params(("vendor" = String, Path)), responses((status = 200, body = PlanJson)))]
pub(super) async fn admin_plan(State(s): St, _: AdminCaller, Path(vendor): Path<String>) -> ApiResult<Json<PlanJson>> {
    let id = s.svc.vendor_id(&vendor).await?;
    Ok(Json(s.svc.plan(id).await?))
}

#[utoipa::path(get, path = "/v1/admin/vendors/{vendor}/invoices/{period}", security(("admin" = [])),
    params(("vendor" = String, Path), ("period" = String, Path, description = "YYYY-MM"), ("format" = Option<String>, Query)),
    responses((status = 200, body = Invoice)))]
pub(super) async fn admin_invoice(
    State(s): St,
    _: AdminCaller,
    Path((vendor, period)): Path<(String, String)>,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    let id = s.svc.vendor_id(&vendor).await?;
    render_invoice(s.svc.invoice(id, &period).await?, q.format.as_deref())
}

/// The admin routes (all with JSON bodies).
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/admin/vendors", post(admin_create_vendor).get(admin_vendors))
        .route("/v1/admin/vendors/{vendor}/tokens", post(admin_vendor_token))
        .route("/v1/admin/vendors/{vendor}/plan", put(admin_set_plan).get(admin_plan))
        .route("/v1/admin/vendors/{vendor}/invoices/{period}", get(admin_invoice))
}
