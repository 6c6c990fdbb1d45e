//! For vendors (a vendor token): their account and plan, products and
//! releases, package uploads, licenses, dongles, activation codes, the
//! ledger and invoices.
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::billing::{Invoice, PlanHistory, PlanJson};
use crate::catalog::{Product, ReleaseInfo, ReleaseKey, parse_release};
use crate::dongles::{DongleInfo, DongleRequest, ProvisionedDongle};
use crate::error::ServerError;
use crate::ledger::{EntryJson, HeadLine};
use crate::licensing::{CodeInfo, CodeRequest, IssueRequest, IssuedLicense, LicenseInfo};
use crate::metrics::Metrics;
use crate::problem::ApiResult;
use crate::vendors::Vendor;

use super::{ApiJson, AppState, FormatQuery, MAX_PAGE, St, VendorCaller, render_invoice};
use crate::problem::{ApiError, Problem};

#[utoipa::path(get, path = "/v1/vendor", security(("vendor" = [])), responses((status = 200, body = Vendor), (status = 401, body = Problem)))]
pub(super) async fn vendor_self(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Json<Vendor>> {
    Ok(Json(s.svc.vendor(v).await?))
}

/// The vendor's certificate for the server's issuing key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CertificateRequest {
    /// The vendor's signing key (64 hex digits).
    pub vendor_key: String,
    /// The certificate (208 hex digits), from `sealsdk server certify`.
    pub certificate: String,
}

#[utoipa::path(put, path = "/v1/vendor/certificate", request_body = CertificateRequest, security(("vendor" = [])),
    responses((status = 200, body = Vendor), (status = 400, body = Problem)))]
pub(super) async fn vendor_certify(
    State(s): St,
    VendorCaller(v): VendorCaller,
    ApiJson(req): ApiJson<CertificateRequest>,
) -> ApiResult<Json<Vendor>> {
    Ok(Json(s.svc.certify(v, req.vendor_key.trim(), req.certificate.trim()).await?))
}

#[utoipa::path(get, path = "/v1/vendor/plan", security(("vendor" = [])), responses((status = 200, body = PlanJson)))]
pub(super) async fn vendor_plan(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Json<PlanJson>> {
    Ok(Json(s.svc.plan(v).await?))
}

#[utoipa::path(get, path = "/v1/vendor/plans", security(("vendor" = [])),
    responses((status = 200, body = PlanHistory, description = "every plan, past, present and scheduled, oldest first")))]
pub(super) async fn vendor_plans(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Json<PlanHistory>> {
    Ok(Json(s.svc.plan_history(v).await?))
}

/// A new product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProductRequest {
    /// Product id, e.g. `com.acme.tool`.
    pub product: String,
    /// Name for people [default: the id].
    #[serde(default)]
    pub name: Option<String>,
}

#[utoipa::path(post, path = "/v1/products", request_body = ProductRequest, security(("vendor" = [])),
    responses((status = 201, body = Product), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn create_product(
    State(s): St,
    VendorCaller(v): VendorCaller,
    ApiJson(req): ApiJson<ProductRequest>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    Ok((StatusCode::CREATED, Json(s.svc.create_product(v, &req.product, req.name.as_deref()).await?)))
}

#[utoipa::path(get, path = "/v1/products", security(("vendor" = [])), responses((status = 200, body = Vec<Product>)))]
pub(super) async fn products(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Json<Vec<Product>>> {
    Ok(Json(s.svc.products(v).await?))
}

#[utoipa::path(get, path = "/v1/products/{product}", security(("vendor" = [])), params(("product" = String, Path)),
    responses((status = 200, body = Product), (status = 404, body = Problem)))]
pub(super) async fn product(
    State(s): St,
    VendorCaller(v): VendorCaller,
    Path(p): Path<String>,
) -> ApiResult<Json<Product>> {
    Ok(Json(s.svc.product(v, &p).await?))
}

/// A release to make a content key for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReleaseRequest {
    /// MAJOR.MINOR.PATCH.
    pub release: String,
}

#[utoipa::path(post, path = "/v1/products/{product}/releases", request_body = ReleaseRequest, security(("vendor" = [])),
    params(("product" = String, Path)),
    responses((status = 201, body = ReleaseKey, description = "new key"), (status = 200, body = ReleaseKey, description = "existing key"),
              (status = 404, body = Problem)))]
pub(super) async fn create_release(
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
pub(super) async fn upload_package(
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
pub(super) const MAX_UPLOADS: usize = 8;
/// Uploads in progress at once for one vendor: a CI job uploading its
/// platforms side by side, but not a loop.
pub(super) const MAX_UPLOADS_PER_VENDOR: usize = 2;

/// An upload slot, given back when dropped.
pub(crate) struct UploadSlot<'a> {
    slots: &'a UploadSlots,
    vendor: i64,
}

impl UploadSlots {
    pub(super) fn new() -> Self {
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

pub(super) async fn futures_next<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

/// Paging of license lists.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct ListQuery {
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
pub(super) struct LicensePage {
    /// The licenses.
    pub licenses: Vec<LicenseInfo>,
    /// Cursor for the next page, if there may be one.
    pub next: Option<i64>,
}

#[utoipa::path(post, path = "/v1/licenses", request_body = IssueRequest, security(("vendor" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retrying with the same key returns the same license")),
    responses((status = 201, body = IssuedLicense), (status = 200, body = IssuedLicense, description = "a retry"),
              (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn issue_license(
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
pub(super) async fn provision_dongle(
    State(s): St,
    VendorCaller(v): VendorCaller,
    ApiJson(req): ApiJson<DongleRequest>,
) -> ApiResult<Response> {
    let d = s.svc.provision_dongle(v, &req).await?;
    // The answer carries a key: no cache may keep it.
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(d)).into_response())
}

#[utoipa::path(get, path = "/v1/dongles", security(("vendor" = [])), responses((status = 200, body = [DongleInfo])))]
pub(super) async fn dongles(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Json<Vec<DongleInfo>>> {
    Ok(Json(s.svc.dongles(v).await?))
}

#[utoipa::path(get, path = "/v1/licenses", security(("vendor" = [])),
    params(("product" = Option<String>, Query), ("after" = Option<i64>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = LicensePage)))]
pub(super) async fn licenses(
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
pub(super) async fn export_licenses(
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
pub(super) async fn revoke_license(
    State(s): St,
    VendorCaller(v): VendorCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.svc.revoke_license(v, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Codes made by a request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct CodesJson {
    /// The codes.
    pub codes: Vec<CodeInfo>,
}

/// Filter for code lists.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct ProductQuery {
    /// Only this product.
    #[serde(default)]
    pub product: Option<String>,
}

#[utoipa::path(post, path = "/v1/codes", request_body = CodeRequest, security(("vendor" = [])),
    responses((status = 201, body = CodesJson), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn create_codes(
    State(s): St,
    VendorCaller(v): VendorCaller,
    ApiJson(req): ApiJson<CodeRequest>,
) -> ApiResult<(StatusCode, [(header::HeaderName, &'static str); 1], Json<CodesJson>)> {
    let codes = s.svc.create_codes(v, &req).await?;
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(CodesJson { codes })))
}

#[utoipa::path(get, path = "/v1/codes", security(("vendor" = [])), params(("product" = Option<String>, Query)),
    responses((status = 200, body = CodesJson)))]
pub(super) async fn codes(
    State(s): St,
    VendorCaller(v): VendorCaller,
    Query(q): Query<ProductQuery>,
) -> ApiResult<Json<CodesJson>> {
    Ok(Json(CodesJson { codes: s.svc.codes(v, q.product.as_deref()).await? }))
}

#[utoipa::path(post, path = "/v1/codes/{id}/revoke", security(("vendor" = [])), params(("id" = i64, Path)),
    responses((status = 204, description = "revoked"), (status = 404, body = Problem)))]
pub(super) async fn revoke_code(
    State(s): St,
    VendorCaller(v): VendorCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: i64 = id.parse().map_err(|_| ServerError::NotFound("code"))?;
    s.svc.revoke_code(v, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/ledger", security(("vendor" = [])),
    responses((status = 200, body = Vec<EntryJson>, content_type = "application/x-ndjson", description = "one entry per line, then a last line {\"head\": …} with the operator-signed head of those entries")))]
pub(super) async fn ledger(State(s): St, VendorCaller(v): VendorCaller) -> ApiResult<Response> {
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
pub(super) async fn vendor_invoice(
    State(s): St,
    VendorCaller(v): VendorCaller,
    Path(period): Path<String>,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    render_invoice(s.svc.invoice(v, &period).await?, q.format.as_deref())
}

/// The vendor routes with JSON bodies.
pub(super) fn json_routes() -> Router<Arc<AppState>> {
    Router::new()
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
}

/// The vendor routes that move packages (no body limit).
pub(super) fn transfer_routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/products/{product}/releases/{release}/package", put(upload_package))
}
