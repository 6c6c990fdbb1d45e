//! For end users' launchers, without a token: activation, deactivation,
//! package download, and the product pages a browser opens.
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::licensing::{ActivateRequest, DeactivateRequest, Deactivated, IssuedLicense};
use crate::metrics::Metrics;
use crate::problem::ApiResult;

use super::{ApiJson, AppState, St, rate_limit};
use crate::problem::{ApiError, Problem};
use sealrun_wire::server::{CODE_HEADER, DEVICE_HEADER, LICENSE_HEADER, RELEASE_HEADER};

/// `POST /v1/activate`: redeem an activation code for this device.
#[utoipa::path(post, path = "/v1/activate", request_body = ActivateRequest,
    responses((status = 200, body = IssuedLicense), (status = 400, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 410, body = Problem), (status = 429, body = Problem)))]
pub(super) async fn activate(
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
pub(super) async fn deactivate(
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
pub(super) async fn download_package(
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

pub(super) async fn product_page(Path(p): Path<String>, headers: HeaderMap) -> Response {
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

/// The routes with JSON bodies.
pub(super) fn json_routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/activate", post(activate)).route("/v1/deactivate", post(deactivate))
}

/// The routes that move packages (no body limit).
pub(super) fn transfer_routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/products/{product}/package", get(download_package))
}

/// The pages a browser opens.
pub(super) fn page_routes() -> Router<Arc<AppState>> {
    Router::new().route("/products/{product}", get(product_page))
}
