//! The HTTP/JSON API under `/v1`, plus `/healthz`, `/metrics` and the
//! product pages. [`app`] builds the router; the binary serves it.
//!
//! Errors are `application/problem+json` (RFC 9457) with a stable `code`
//! member. Internal failures answer a bare "internal error" and are logged
//! by the [`observe`] middleware with the request's method and route, never
//! with request bodies, tokens or codes.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::billing::{Invoice, PlanHistory, PlanJson, invoice_csv, invoice_html};
use crate::catalog::{Product, ReleaseInfo, ReleaseKey, parse_release};
use crate::dongles::{DongleInfo, DongleRequest, ProvisionedDongle};
use crate::error::ServerError;
use crate::ledger::{EntryJson, HeadLine};
use crate::licensing::{
    ActivateRequest, CodeInfo, CodeRequest, DeactivateRequest, Deactivated, IssueRequest, IssuedLicense, LicenseInfo,
};
use crate::metrics::Metrics;
pub use crate::problem::{ApiError, Problem};
use crate::problem::{ApiResult, InternalError};
use crate::ratelimit::RateLimiter;
use crate::secrets;
use crate::service::Service;
use crate::vendors::{NewVendor, Vendor};

/// Largest JSON request body: every request is a handful of short fields;
/// the largest (a code batch request) is far below this.
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// How long a request may take, uploads and downloads excepted (they are
/// bounded by size, and a slow link is not an error).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most licenses one list request returns.
pub const MAX_PAGE: i64 = 1000;

pub use sealrun_wire::server::{CODE_HEADER, DEVICE_HEADER, LICENSE_HEADER, RELEASE_HEADER};

/// Rate limits for end-user calls.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Attempts per minute per client address (0: no limit).
    pub per_address_per_minute: u32,
    /// Attempts per minute per code (0: no limit).
    pub per_code_per_minute: u32,
    /// Take the client address from the last `X-Forwarded-For` hop (only
    /// behind a reverse proxy that sets it).
    pub behind_proxy: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { per_address_per_minute: 30, per_code_per_minute: 10, behind_proxy: false }
    }
}

/// What every handler shares.
pub struct AppState {
    /// The service.
    pub svc: Service,
    /// Metrics.
    pub metrics: Metrics,
    by_address: RateLimiter,
    by_code: RateLimiter,
    behind_proxy: bool,
    uploads: UploadSlots,
}

impl AppState {
    /// State over a service, with rate limits.
    pub fn new(svc: Service, limits: Limits) -> Arc<AppState> {
        Arc::new(AppState {
            svc,
            metrics: Metrics::default(),
            // Bursts of a few, so a user retrying by hand is never refused.
            by_address: RateLimiter::new(limits.per_address_per_minute, limits.per_address_per_minute.clamp(1, 10)),
            by_code: RateLimiter::new(limits.per_code_per_minute, limits.per_code_per_minute.clamp(1, 5)),
            behind_proxy: limits.behind_proxy,
            uploads: UploadSlots::new(),
        })
    }
}

type St = State<Arc<AppState>>;

/// `Json` whose rejections (malformed JSON, wrong fields, too large, wrong
/// content type) are problem+json too.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => {
                let status = rej.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "bad_json" };
                Err(ApiError::new(status, code, rej.body_text()))
            }
        }
    }
}

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

async fn vendor_auth(s: &AppState, headers: &HeaderMap) -> ApiResult<i64> {
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

/// The rate-limit key of the client: its address, or behind a proxy the
/// last hop of `X-Forwarded-For`, which the proxy appended; over all the
/// header's lines, since a client may send lines of its own ahead of the
/// proxy's. Only an address is a key (anything else falls back to the
/// peer), so forged text makes no buckets, and IPv6 counts by /64: one
/// host's addresses share a bucket.
fn client_address(s: &AppState, headers: &HeaderMap, peer: SocketAddr) -> String {
    let forwarded = || {
        let line = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
        let hop = line.rsplit(',').next()?.trim();
        // Some proxies write the hop with a port: `1.2.3.4:5678`, `[2001:db8::1]:443`.
        hop.parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
            .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
    };
    let ip = if s.behind_proxy { forwarded().unwrap_or(peer.ip()) } else { peer.ip() };
    rate_key(ip)
}

/// An address as a rate-limit key: IPv4 as it is, IPv6 by its /64 (and an
/// IPv4-mapped IPv6 address as the IPv4 one).
fn rate_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Applies the per-address and per-code limits to an end-user call.
fn rate_limit(s: &AppState, headers: &HeaderMap, peer: SocketAddr, code: &str) -> ApiResult<()> {
    let addr = client_address(s, headers, peer);
    let code_key = secrets::normalize_code(code).map(|c| secrets::token_hash(&c)).unwrap_or_default();
    if !s.by_address.allow(addr.as_bytes()) || (!code_key.is_empty() && !s.by_code.allow(&code_key)) {
        Metrics::inc(&s.metrics.rate_limited);
        return Err(ServerError::RateLimited.into());
    }
    Ok(())
}

/// Records metrics, applies the timeout, and logs internal errors.
async fn observe(State(s): St, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().clone();
    let transfer = route.ends_with("/package");
    let started = Instant::now();
    let resp = if transfer {
        next.run(req).await
    } else {
        match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
            Ok(r) => r,
            Err(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the server took too long to answer; try again",
            )
            .into_response(),
        }
    };
    if let Some(InternalError(e)) = resp.extensions().get::<InternalError>() {
        tracing::error!(%method, %route, error = %e, "request failed");
    }
    s.metrics.observe(&route, resp.status().as_u16(), started.elapsed());
    resp
}

/// The router.
pub fn app(state: Arc<AppState>) -> Router {
    let json_routes = Router::new()
        .route("/v1/activate", post(activate))
        .route("/v1/deactivate", post(deactivate))
        .route("/v1/admin/vendors", post(admin_create_vendor).get(admin_vendors))
        .route("/v1/admin/vendors/{vendor}/tokens", post(admin_vendor_token))
        .route("/v1/admin/vendors/{vendor}/plan", put(admin_set_plan).get(admin_plan))
        .route("/v1/admin/vendors/{vendor}/invoices/{period}", get(admin_invoice))
        .route("/v1/admin/tokens/revoke", post(revoke_token))
        .route("/v1/vendor", get(vendor_self))
        .route("/v1/vendor/certificate", put(vendor_certify))
        .route("/v1/vendor/plan", get(vendor_plan))
        .route("/v1/vendor/plans", get(vendor_plans))
        .route("/v1/products", post(create_product).get(products))
        .route("/v1/products/{product}", get(product))
        .route("/v1/products/{product}/releases", post(create_release))
        .route("/v1/licenses", post(issue_license).get(licenses))
        .route("/v1/dongles", post(provision_dongle).get(dongles))
        .route("/v1/licenses/export", get(export_licenses))
        .route("/v1/licenses/{license_id}/revoke", post(revoke_license))
        .route("/v1/codes", post(create_codes).get(codes))
        .route("/v1/codes/{id}/revoke", post(revoke_code))
        .route("/v1/ledger", get(ledger))
        .route("/v1/invoices/{period}", get(vendor_invoice))
        .route("/v1/tokens/revoke", post(revoke_token))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY));
    let transfer_routes = Router::new()
        .route("/v1/products/{product}/releases/{release}/package", put(upload_package))
        .route("/v1/products/{product}/package", get(download_package))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(json_routes)
        .merge(transfer_routes)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/products/{product}", get(product_page))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see /v1/openapi.json")
        })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// `/healthz`: 200 when the database answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "healthy"), (status = 503, body = Problem)))]
async fn healthz(State(s): St) -> ApiResult<Json<serde_json::Value>> {
    s.svc
        .db
        .ping()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unhealthy", "the database does not answer"))?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

async fn metrics(State(s): St) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_text())
}

/// The OpenAPI document, as served and as checked in (docs/openapi.json).
pub fn openapi_text() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.to_pretty_json().expect("the OpenAPI document serialises") + "\n"
}

/// `POST /v1/activate`: redeem an activation code for this device.
#[utoipa::path(post, path = "/v1/activate", request_body = ActivateRequest,
    responses((status = 200, body = IssuedLicense), (status = 400, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 410, body = Problem), (status = 429, body = Problem)))]
async fn activate(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ActivateRequest>,
) -> ApiResult<Json<IssuedLicense>> {
    rate_limit(&s, &headers, peer, &req.code)?;
    let a = s.svc.activate(&req, None).await?;
    if a.created {
        Metrics::inc(&s.metrics.activations);
        Metrics::inc(&s.metrics.licenses_issued);
    }
    Ok(Json(a.to_json()))
}

/// `POST /v1/deactivate`: give an activation back.
#[utoipa::path(post, path = "/v1/deactivate", request_body = DeactivateRequest,
    responses((status = 200, body = Deactivated), (status = 404, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem)))]
async fn deactivate(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<DeactivateRequest>,
) -> ApiResult<Json<Deactivated>> {
    rate_limit(&s, &headers, peer, &req.code)?;
    let d = s.svc.deactivate(&req).await?;
    Metrics::inc(&s.metrics.deactivations);
    Ok(Json(d))
}

/// A new vendor's name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorRequest {
    /// Lowercase letters, digits and dashes.
    pub name: String,
}

/// A token label.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// What the token is for, e.g. "ci".
    #[serde(default)]
    pub label: Option<String>,
}

/// A new token (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenJson {
    /// The token.
    pub token: String,
}

/// A token to revoke.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokenRequest {
    /// The token, in full.
    pub token: String,
}

#[utoipa::path(post, path = "/v1/admin/vendors", request_body = VendorRequest, security(("admin" = [])),
    responses((status = 201, body = NewVendor), (status = 401, body = Problem), (status = 409, body = Problem)))]
async fn admin_create_vendor(
    State(s): St,
    _: AdminCaller,
    ApiJson(req): ApiJson<VendorRequest>,
) -> ApiResult<(StatusCode, Json<NewVendor>)> {
    Ok((StatusCode::CREATED, Json(s.svc.create_vendor(&req.name).await?)))
}

#[utoipa::path(get, path = "/v1/admin/vendors", security(("admin" = [])), responses((status = 200, body = Vec<Vendor>)))]
async fn admin_vendors(State(s): St, _: AdminCaller) -> ApiResult<Json<Vec<Vendor>>> {
    Ok(Json(s.svc.vendors().await?))
}

#[utoipa::path(post, path = "/v1/admin/vendors/{vendor}/tokens", request_body = TokenRequest, security(("admin" = [])),
    params(("vendor" = String, Path)), responses((status = 201, body = TokenJson), (status = 404, body = Problem)))]
async fn admin_vendor_token(
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
async fn admin_set_plan(
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
pub struct EffectiveQuery {
    /// Unix seconds, now or later [default: now].
    #[serde(default)]
    pub effective_from: Option<i64>,
}

#[utoipa::path(get, path = "/v1/admin/vendors/{vendor}/plan", security(("admin" = [])),
    params(("vendor" = String, Path)), responses((status = 200, body = PlanJson)))]
async fn admin_plan(State(s): St, _: AdminCaller, Path(vendor): Path<String>) -> ApiResult<Json<PlanJson>> {
    let id = s.svc.vendor_id(&vendor).await?;
    Ok(Json(s.svc.plan(id).await?))
}

/// Output format of invoices and exports.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FormatQuery {
    /// `json` (default), `csv` or `html`.
    #[serde(default)]
    pub format: Option<String>,
}

fn render_invoice(inv: Invoice, format: Option<&str>) -> ApiResult<Response> {
    Ok(match format.unwrap_or("json") {
        "json" => Json(inv).into_response(),
        "csv" => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], invoice_csv(&inv)).into_response(),
        "html" => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], invoice_html(&inv)).into_response(),
        _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "format must be json, csv or html")),
    })
}

#[utoipa::path(get, path = "/v1/admin/vendors/{vendor}/invoices/{period}", security(("admin" = [])),
    params(("vendor" = String, Path), ("period" = String, Path, description = "YYYY-MM"), ("format" = Option<String>, Query)),
    responses((status = 200, body = Invoice)))]
async fn admin_invoice(
    State(s): St,
    _: AdminCaller,
    Path((vendor, period)): Path<(String, String)>,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    let id = s.svc.vendor_id(&vendor).await?;
    render_invoice(s.svc.invoice(id, &period).await?, q.format.as_deref())
}

#[utoipa::path(post, path = "/v1/tokens/revoke", request_body = RevokeTokenRequest,
    responses((status = 204, description = "revoked"), (status = 404, body = Problem)))]
async fn revoke_token(
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

#[utoipa::path(get, path = "/v1/vendor", security(("vendor" = [])), responses((status = 200, body = Vendor), (status = 401, body = Problem)))]
async fn vendor_self(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Json<Vendor>> {
    Ok(Json(s.svc.vendor(v).await?))
}

/// The vendor's certificate for the server's issuing key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRequest {
    /// The vendor's signing key (64 hex digits).
    pub vendor_key: String,
    /// The certificate (208 hex digits), from `sealsdk server certify`.
    pub certificate: String,
}

#[utoipa::path(put, path = "/v1/vendor/certificate", request_body = CertificateRequest, security(("vendor" = [])),
    responses((status = 200, body = Vendor), (status = 400, body = Problem)))]
async fn vendor_certify(
    State(s): St,
    VendorCaller(v): VendorCaller,
    ApiJson(req): ApiJson<CertificateRequest>,
) -> ApiResult<Json<Vendor>> {
    Ok(Json(s.svc.certify(v, req.vendor_key.trim(), req.certificate.trim()).await?))
}

#[utoipa::path(get, path = "/v1/vendor/plan", security(("vendor" = [])), responses((status = 200, body = PlanJson)))]
async fn vendor_plan(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Json<PlanJson>> {
    Ok(Json(s.svc.plan(v).await?))
}

#[utoipa::path(get, path = "/v1/vendor/plans", security(("vendor" = [])),
    responses((status = 200, body = PlanHistory, description = "every plan, past, present and scheduled, oldest first")))]
async fn vendor_plans(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Json<PlanHistory>> {
    Ok(Json(s.svc.plan_history(v).await?))
}

/// A new product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductRequest {
    /// Product id, e.g. `com.acme.tool`.
    pub product: String,
    /// Name for people [default: the id].
    #[serde(default)]
    pub name: Option<String>,
}

#[utoipa::path(post, path = "/v1/products", request_body = ProductRequest, security(("vendor" = [])),
    responses((status = 201, body = Product), (status = 400, body = Problem), (status = 409, body = Problem)))]
async fn create_product(
    State(s): St,
    VendorCaller(v): VendorCaller,
    ApiJson(req): ApiJson<ProductRequest>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    Ok((StatusCode::CREATED, Json(s.svc.create_product(v, &req.product, req.name.as_deref()).await?)))
}

#[utoipa::path(get, path = "/v1/products", security(("vendor" = [])), responses((status = 200, body = Vec<Product>)))]
async fn products(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Json<Vec<Product>>> {
    Ok(Json(s.svc.products(v).await?))
}

#[utoipa::path(get, path = "/v1/products/{product}", security(("vendor" = [])), params(("product" = String, Path)),
    responses((status = 200, body = Product), (status = 404, body = Problem)))]
async fn product(State(s): St, VendorCaller(v): VendorCaller, Path(p): Path<String>) -> ApiResult<Json<Product>> {
    Ok(Json(s.svc.product(v, &p).await?))
}

/// A release to make a content key for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// MAJOR.MINOR.PATCH.
    pub release: String,
}

#[utoipa::path(post, path = "/v1/products/{product}/releases", request_body = ReleaseRequest, security(("vendor" = [])),
    params(("product" = String, Path)),
    responses((status = 201, body = ReleaseKey, description = "new key"), (status = 200, body = ReleaseKey, description = "existing key"),
              (status = 404, body = Problem)))]
async fn create_release(
    State(s): St,
    VendorCaller(v): VendorCaller,
    Path(p): Path<String>,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> ApiResult<Response> {
    let release = parse_release(&req.release)?;
    let key = s.svc.release_key(v, &p, release).await?;
    let status = if key.created { StatusCode::CREATED } else { StatusCode::OK };
    let mut r = (status, Json(key)).into_response();
    // The body carries a secret: no cache may keep it.
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[utoipa::path(put, path = "/v1/products/{product}/releases/{release}/package", security(("vendor" = [])),
    params(("product" = String, Path), ("release" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = ReleaseInfo), (status = 413, body = Problem), (status = 422, body = Problem)))]
async fn upload_package(
    State(s): St,
    VendorCaller(v): VendorCaller,
    headers: HeaderMap,
    Path((p, r)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Json<ReleaseInfo>> {
    use sha2::Digest;
    use tokio::io::AsyncWriteExt;
    let release = parse_release(&r)?;
    // Check ownership and read what the package must say before taking it.
    let target = s.svc.upload_target(v, &p, release).await?;
    let max = s.svc.max_package_len();
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the package is larger than this server accepts ({max} bytes; the operator sets max_package_mib)"),
        )
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max)
    {
        return Err(too_large());
    }
    let _slot = s.uploads.take(v)?;
    let tmp = s.svc.upload_file()?;
    let mut file = tokio::fs::File::from_std(tmp.reopen().map_err(|source| ServerError::Io {
        action: "cannot open the upload file",
        path: tmp.path().to_owned(),
        source,
    })?);
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    // The package is checked and hashed as it streams to disk: the server
    // holds one network chunk and the header, never the whole upload.
    let mut check = sealrun_format::package::StreamCheck::new();
    let mut sha = sha2::Sha256::new();
    let mut header_checked = false;
    let io = |source| ServerError::Io { action: "cannot write the upload", path: tmp.path().to_owned(), source };
    while let Some(chunk) = futures_next(&mut stream).await {
        let chunk: Bytes =
            chunk.map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "upload_broken", "the upload was interrupted"))?;
        total += chunk.len() as u64;
        if total > max {
            return Err(too_large());
        }
        check.update(&chunk).map_err(ServerError::from)?;
        if !header_checked && let Some(h) = check.header() {
            // A wrong product, release or key stops the upload here.
            target.check(h)?;
            header_checked = true;
        }
        sha.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
    }
    check.finish().map_err(ServerError::from)?;
    file.flush().await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    drop(file);
    let len = i64::try_from(total).unwrap_or(i64::MAX);
    let info = s.svc.store_checked(&target, tmp.path(), hex::encode(sha.finalize()), len).await?;
    Ok(Json(info))
}

/// Package uploads in progress. Each holds an open file and a stream from
/// the network; the bounds keep a few vendors (or one vendor's script) from
/// filling the disk's write queue and the connection pool with uploads.
pub(crate) struct UploadSlots {
    taken: std::sync::Mutex<(usize, std::collections::HashMap<i64, usize>)>,
}

/// Uploads in progress at once, for all vendors: enough for a release day
/// of a few vendors on two cores, small enough that each gets the disk.
pub const MAX_UPLOADS: usize = 8;
/// Uploads in progress at once for one vendor: a CI job uploading its
/// platforms side by side, but not a loop.
pub const MAX_UPLOADS_PER_VENDOR: usize = 2;

/// An upload slot, given back when dropped.
pub(crate) struct UploadSlot<'a> {
    slots: &'a UploadSlots,
    vendor: i64,
}

impl UploadSlots {
    fn new() -> Self {
        UploadSlots { taken: std::sync::Mutex::new((0, std::collections::HashMap::new())) }
    }

    fn take(&self, vendor: i64) -> Result<UploadSlot<'_>, ApiError> {
        let mut t = self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = t.1.get(&vendor).copied().unwrap_or(0);
        if mine >= MAX_UPLOADS_PER_VENDOR {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_uploads",
                format!("you have {MAX_UPLOADS_PER_VENDOR} uploads in progress already; retry when one has finished"),
            ));
        }
        if t.0 >= MAX_UPLOADS {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the server is taking as many uploads as it can at once; retry in a minute",
            ));
        }
        t.0 += 1;
        *t.1.entry(vendor).or_default() += 1;
        Ok(UploadSlot { slots: self, vendor })
    }
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        let mut t = self.slots.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        t.0 -= 1;
        if let Some(n) = t.1.get_mut(&self.vendor) {
            *n -= 1;
            if *n == 0 {
                t.1.remove(&self.vendor);
            }
        }
    }
}

async fn futures_next<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

/// `GET /v1/products/{product}/package`: the package (Range requests and
/// ETag supported) and, in the `Sealrun-License` header, this device's
/// license from the activation code: one exchange provisions both.
#[utoipa::path(get, path = "/v1/products/{product}/package",
    params(("product" = String, Path),
           ("sealrun-code" = String, Header, description = "activation code"),
           ("sealrun-device" = String, Header, description = "device code (`sealrun id`)")),
    responses((status = 200, description = "the package; the license is in the Sealrun-License header"),
              (status = 206, description = "part of the package (Range)"),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 416, body = Problem)))]
async fn download_package(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(p): Path<String>,
) -> ApiResult<Response> {
    let hdr = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(code), Some(device)) = (hdr(CODE_HEADER), hdr(DEVICE_HEADER)) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "send the activation code and device code in the Sealrun-Code and Sealrun-Device headers (`sealrun install` does)",
        ));
    };
    rate_limit(&s, &headers, peer, &code)?;
    let a = s.svc.activate(&ActivateRequest { code, device }, Some(&p)).await?;
    if a.created {
        Metrics::inc(&s.metrics.activations);
        Metrics::inc(&s.metrics.licenses_issued);
    }
    let (release, sha, path, len) = s.svc.package_for(&a).await?;
    crate::provision::serve_file(&headers, &path, len, &sha, |h| {
        use base64::Engine;
        let lic = base64::engine::general_purpose::STANDARD.encode(&a.license);
        h.insert(LICENSE_HEADER, HeaderValue::from_str(&lic).expect("base64 is a valid header value"));
        h.insert(RELEASE_HEADER, HeaderValue::from_str(&release).expect("a release is a valid header value"));
    })
    .await
}

async fn product_page(Path(p): Path<String>, headers: HeaderMap) -> Response {
    // The Host header is the caller's to choose: only a plain host[:port] is
    // echoed into the page, so it cannot inject markup.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
        .unwrap_or("this-server");
    let ok = sealrun_format::text::product_id_problem(&p).is_none();
    let name = if ok { p.as_str() } else { "this product" };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Install {name}</title></head>\
<body><h1>Install {name}</h1><p>With your activation code, run:</p>\
<pre>sealrun install https://{host}/products/{name} --code YOUR-CODE</pre></body></html>\n"
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// Paging of license lists.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ListQuery {
    /// Only this product.
    #[serde(default)]
    pub product: Option<String>,
    /// Continue after this cursor (from `next`).
    #[serde(default)]
    pub after: Option<i64>,
    /// At most this many (default and maximum 1000).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// A page of licenses.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LicensePage {
    /// The licenses.
    pub licenses: Vec<LicenseInfo>,
    /// Cursor for the next page, if there may be one.
    pub next: Option<i64>,
}

#[utoipa::path(post, path = "/v1/licenses", request_body = IssueRequest, security(("vendor" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retrying with the same key returns the same license")),
    responses((status = 201, body = IssuedLicense), (status = 200, body = IssuedLicense, description = "a retry"),
              (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn issue_license(
    State(s): St,
    VendorCaller(v): VendorCaller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<IssueRequest>,
) -> ApiResult<(StatusCode, Json<IssuedLicense>)> {
    // A value that is not text is passed on as one the check refuses.
    let key = headers.get("idempotency-key").map(|k| k.to_str().unwrap_or("\u{1}")).map(str::to_owned);
    let lic = s.svc.issue_license(v, &req, key.as_deref()).await?;
    if lic.created {
        Metrics::inc(&s.metrics.licenses_issued);
    }
    Ok((if lic.created { StatusCode::CREATED } else { StatusCode::OK }, Json(lic)))
}

#[utoipa::path(post, path = "/v1/dongles", request_body = DongleRequest, security(("vendor" = [])),
    responses((status = 201, body = ProvisionedDongle, description = "the new dongle; its key is in this answer only"),
              (status = 400, body = Problem), (status = 409, body = Problem)))]
async fn provision_dongle(
    State(s): St,
    VendorCaller(v): VendorCaller,
    ApiJson(req): ApiJson<DongleRequest>,
) -> ApiResult<Response> {
    let d = s.svc.provision_dongle(v, &req).await?;
    // The answer carries a key: no cache may keep it.
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(d)).into_response())
}

#[utoipa::path(get, path = "/v1/dongles", security(("vendor" = [])), responses((status = 200, body = [DongleInfo])))]
async fn dongles(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Json<Vec<DongleInfo>>> {
    Ok(Json(s.svc.dongles(v).await?))
}

#[utoipa::path(get, path = "/v1/licenses", security(("vendor" = [])),
    params(("product" = Option<String>, Query), ("after" = Option<i64>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = LicensePage)))]
async fn licenses(
    State(s): St,
    VendorCaller(v): VendorCaller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<LicensePage>> {
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let (licenses, next) = s.svc.licenses(v, q.product.as_deref(), q.after.unwrap_or(0), limit).await?;
    Ok(Json(LicensePage { licenses, next }))
}

#[utoipa::path(get, path = "/v1/licenses/export", security(("vendor" = [])),
    params(("format" = Option<String>, Query, description = "json (lines) or csv")),
    responses((status = 200, description = "every license, as JSON lines or CSV")))]
async fn export_licenses(
    State(s): St,
    VendorCaller(v): VendorCaller,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    use std::fmt::Write as _;
    let csv = match q.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "format must be json or csv")),
    };
    let mut out = String::new();
    if csv {
        out.push_str("license_id,product,device,licensee,releases,issued_at,expires_at,revoked_at,code_hint\n");
    }
    let mut after = 0;
    loop {
        let (page, next) = s.svc.licenses(v, None, after, MAX_PAGE).await?;
        for l in &page {
            if csv {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{}",
                    l.license_id,
                    l.product,
                    l.device,
                    csv_field(&l.licensee),
                    l.releases,
                    l.issued_at,
                    l.expires_at.map(|t| t.to_string()).unwrap_or_default(),
                    l.revoked_at.map(|t| t.to_string()).unwrap_or_default(),
                    l.code_hint.clone().unwrap_or_default()
                );
            } else {
                out.push_str(&serde_json::to_string(l).expect("serialises"));
                out.push('\n');
            }
        }
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    let ct = if csv { "text/csv; charset=utf-8" } else { "application/x-ndjson" };
    Ok(([(header::CONTENT_TYPE, ct)], out).into_response())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

#[utoipa::path(post, path = "/v1/licenses/{license_id}/revoke", security(("vendor" = [])), params(("license_id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 404, body = Problem)))]
async fn revoke_license(State(s): St, VendorCaller(v): VendorCaller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.svc.revoke_license(v, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Codes made by a request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CodesJson {
    /// The codes.
    pub codes: Vec<CodeInfo>,
}

/// Filter for code lists.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProductQuery {
    /// Only this product.
    #[serde(default)]
    pub product: Option<String>,
}

#[utoipa::path(post, path = "/v1/codes", request_body = CodeRequest, security(("vendor" = [])),
    responses((status = 201, body = CodesJson), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn create_codes(
    State(s): St,
    VendorCaller(v): VendorCaller,
    ApiJson(req): ApiJson<CodeRequest>,
) -> ApiResult<(StatusCode, [(header::HeaderName, &'static str); 1], Json<CodesJson>)> {
    let codes = s.svc.create_codes(v, &req).await?;
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(CodesJson { codes })))
}

#[utoipa::path(get, path = "/v1/codes", security(("vendor" = [])), params(("product" = Option<String>, Query)),
    responses((status = 200, body = CodesJson)))]
async fn codes(
    State(s): St,
    VendorCaller(v): VendorCaller,
    Query(q): Query<ProductQuery>,
) -> ApiResult<Json<CodesJson>> {
    Ok(Json(CodesJson { codes: s.svc.codes(v, q.product.as_deref()).await? }))
}

#[utoipa::path(post, path = "/v1/codes/{id}/revoke", security(("vendor" = [])), params(("id" = i64, Path)),
    responses((status = 204, description = "revoked"), (status = 404, body = Problem)))]
async fn revoke_code(State(s): St, VendorCaller(v): VendorCaller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id: i64 = id.parse().map_err(|_| ServerError::NotFound("code"))?;
    s.svc.revoke_code(v, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/ledger", security(("vendor" = [])),
    responses((status = 200, body = Vec<EntryJson>, content_type = "application/x-ndjson", description = "one entry per line, then a last line {\"head\": …} with the operator-signed head of those entries")))]
async fn ledger(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Response> {
    let mut out = String::new();
    let chain = s.svc.ledger(v).await?;
    for e in &chain {
        out.push_str(&serde_json::to_string(&EntryJson::from(e)).expect("serialises"));
        out.push('\n');
    }
    // The last line: the head of exactly these entries, signed by the operator.
    let head = HeadLine { head: s.svc.signed_head(v, &chain).await? };
    out.push_str(&serde_json::to_string(&head).expect("serialises"));
    out.push('\n');
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response())
}

#[utoipa::path(get, path = "/v1/invoices/{period}", security(("vendor" = [])),
    params(("period" = String, Path, description = "YYYY-MM"), ("format" = Option<String>, Query)),
    responses((status = 200, body = Invoice), (status = 400, body = Problem)))]
async fn vendor_invoice(
    State(s): St,
    VendorCaller(v): VendorCaller,
    Path(period): Path<String>,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    render_invoice(s.svc.invoice(v, &period).await?, q.format.as_deref())
}

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme("admin", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        c.add_security_scheme("vendor", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Sealrun licensing server", description = "License issuance, activation codes, package provision and vendor billing."),
    modifiers(&Security),
    paths(
        healthz, activate, deactivate, admin_create_vendor, admin_vendors, admin_vendor_token, admin_set_plan,
        admin_plan, admin_invoice, revoke_token, vendor_self, vendor_certify, vendor_plan, vendor_plans, create_product, products,
        product, create_release, upload_package, download_package, issue_license, licenses, export_licenses,
        revoke_license, create_codes, codes, revoke_code, ledger, vendor_invoice, provision_dongle, dongles
    ),
    components(schemas(Problem, LineJson, HeadLine))
)]
struct ApiDoc;

use crate::billing::LineJson;
