//! The HTTP API: `fn app(daemon) -> Router`. Bodies are read as bytes and
//! parsed here, so every malformed request gets the same JSON refusal.
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::daemon::{Daemon, Reply};
use crate::wire::{self, CheckoutRequest, LeaseRequest, RevokeRequest};

/// The routes, sharing `daemon`.
pub fn app(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/checkout", post(checkout))
        .route("/v1/heartbeat", post(heartbeat))
        .route("/v1/release", post(release))
        .route("/v1/admin/revoke", post(revoke))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(wire::MAX_REQUEST_BODY))
        .with_state(daemon)
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, axum::Json(self.body)).into_response();
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

fn parse<T: serde::de::DeserializeOwned>(daemon: &Daemon, body: Body) -> Result<T, Reply> {
    let body = body.map_err(|e| {
        crate::metrics::Metrics::inc(&daemon.metrics.refused_other);
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Reply::refuse(413, "too_large", format!("requests are at most {} bytes", wire::MAX_REQUEST_BODY))
        } else {
            Reply::refuse(400, "bad_request", "the request body could not be read")
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        crate::metrics::Metrics::inc(&daemon.metrics.refused_other);
        // serde's message names the field and the position, never a secret.
        Reply::refuse(400, "bad_request", format!("the request is not valid JSON for this call: {e}"))
    })
}

async fn checkout(State(d): State<Arc<Daemon>>, body: Body) -> Reply {
    match parse::<CheckoutRequest>(&d, body) {
        Ok(req) => d.checkout(req).await,
        Err(r) => r,
    }
}

async fn heartbeat(State(d): State<Arc<Daemon>>, body: Body) -> Reply {
    match parse::<LeaseRequest>(&d, body) {
        Ok(req) => d.heartbeat(req),
        Err(r) => r,
    }
}

async fn release(State(d): State<Arc<Daemon>>, body: Body) -> Reply {
    match parse::<LeaseRequest>(&d, body) {
        Ok(req) => d.release(req).await,
        Err(r) => r,
    }
}

async fn revoke(State(d): State<Arc<Daemon>>, headers: HeaderMap, body: Body) -> Reply {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !d.is_admin(token) {
        crate::metrics::Metrics::inc(&d.metrics.refused_other);
        return Reply::refuse(
            401,
            "unauthorized",
            "revoking needs the admin token (admin.token in the state directory; `sealrun-floatd revoke` reads it)",
        );
    }
    match parse::<RevokeRequest>(&d, body) {
        Ok(req) => d.revoke(&req.lease).await,
        Err(r) => r,
    }
}

async fn status(State(d): State<Arc<Daemon>>) -> Response {
    let mut r = axum::Json(d.status()).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn metrics(State(d): State<Arc<Daemon>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], d.metrics_text()).into_response()
}

async fn not_found() -> Reply {
    Reply::refuse(404, "not_found", "no such endpoint; see docs/floating.md")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// The read-only status page: seats and holders per product, refreshed
/// every 10 s by the browser.
async fn page(State(d): State<Arc<Daemon>>) -> Html<String> {
    use std::fmt::Write as _;
    let s = d.status();
    let mut o = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">\
         <title>sealrun-floatd</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.revoked{color:#a00}</style></head><body>\
         <h1>Floating licenses</h1>",
    );
    for p in &s.products {
        let expires = p.expires.map(sealrun_host::time::rfc3339).unwrap_or_else(|| "never".into());
        let _ = write!(
            o,
            "<h2>{}</h2><p>{} of {} seats in use (one per {}), {} waiting. Licensed to {}; expires {}.</p>",
            escape(&p.product),
            p.in_use,
            p.seats,
            escape(&p.unit),
            p.queued,
            escape(&p.licensee),
            escape(&expires)
        );
        o.push_str(
            "<table><tr><th>Lease</th><th>Host</th><th>User</th><th>PID</th><th>Since</th><th>Last heartbeat</th></tr>",
        );
        for l in &p.leases {
            let class = if l.revoked { " class=\"revoked\"" } else { "" };
            let _ = write!(
                o,
                "<tr{class}><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&l.lease),
                if l.revoked { " (revoked)" } else { "" },
                escape(&l.host),
                escape(&l.user),
                l.pid,
                escape(&sealrun_host::time::rfc3339(l.since)),
                escape(&sealrun_host::time::rfc3339(l.last_heartbeat))
            );
        }
        o.push_str("</table>");
    }
    let _ = write!(o, "<p><small>sealrun-floatd {}</small></p></body></html>", escape(&s.version));
    Html(o)
}
