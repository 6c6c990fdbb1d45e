//! The HTTP/JSON API under `/v1`, plus `/healthz`, `/metrics` and the
//! product pages. [`app`] builds the router; the binary serves it.
//!
//! Errors are `application/problem+json` (RFC 9457) with a stable `code`
//! member. Internal failures answer a bare "internal error" and are logged
//! by the [`observe`] middleware with the request's method and route, never
//! with request bodies, tokens or codes.
mod admin;
mod auth;
mod end_user;
mod ops;
mod vendor;

use auth::{AdminCaller, VendorCaller};
pub use ops::openapi_text;
use vendor::UploadSlots;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use crate::billing::{Invoice, LineJson, invoice_csv, invoice_html};
use crate::error::ServerError;
use crate::ledger::HeadLine;
use crate::metrics::Metrics;
pub use crate::problem::{ApiError, Problem};
use crate::problem::{ApiResult, InternalError};
use crate::ratelimit::RateLimiter;
use crate::secrets;
use crate::service::Service;

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
        .merge(end_user::json_routes())
        .merge(admin::routes())
        .merge(vendor::json_routes())
        .route("/v1/admin/tokens/revoke", post(auth::revoke_token))
        .route("/v1/tokens/revoke", post(auth::revoke_token))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY));
    let transfer_routes = Router::new()
        .merge(vendor::transfer_routes())
        .merge(end_user::transfer_routes())
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(json_routes)
        .merge(transfer_routes)
        .merge(ops::routes())
        .merge(end_user::page_routes())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see /v1/openapi.json")
        })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
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
        ops::healthz, end_user::activate, end_user::deactivate, admin::admin_create_vendor, admin::admin_vendors,
        admin::admin_vendor_token, admin::admin_set_plan, admin::admin_plan, admin::admin_invoice, auth::revoke_token,
        vendor::vendor_self, vendor::vendor_certify, vendor::vendor_plan, vendor::vendor_plans, vendor::create_product,
        vendor::products, vendor::product, vendor::create_release, vendor::upload_package, end_user::download_package,
        vendor::issue_license, vendor::licenses, vendor::export_licenses, vendor::revoke_license, vendor::create_codes,
        vendor::codes, vendor::revoke_code, vendor::ledger, vendor::vendor_invoice, vendor::provision_dongle,
        vendor::dongles
    ),
    components(schemas(Problem, LineJson, HeadLine)),
    // One tag per audience, from the module each handler lives in.
    tags(
        (name = "ops", description = "Health and metrics, for whoever runs the server."),
        (name = "end_user", description = "The launcher on an end user's machine: activation and package download."),
        (name = "admin", description = "The operator: vendors, their tokens and billing plans."),
        (name = "auth", description = "Token revocation, for the operator and for vendors."),
        (name = "vendor", description = "A vendor's products, releases, licenses, codes, dongles and invoices."),
    )
)]
struct ApiDoc;
