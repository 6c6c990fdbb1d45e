//! Entry point for the `server_requests` cargo-fuzz target (compiled only
//! with `--cfg fuzzing`): one request, routed by the first input byte to a
//! JSON endpoint (or the package upload) and sent with the rest as its body,
//! through the real router over a real SQLite database, as the operator, a
//! vendor or nobody. `@device@` in a body becomes a valid device code, which
//! the fuzzer could not make up (it carries a checksum). Whatever the body, the answer must be a clean refusal or
//! a success: never a 500, never a non-JSON error.
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::api::{AppState, Limits, app};
use crate::db::Db;
use crate::secrets::MasterKey;
use crate::service::Service;

/// Who sends a request.
#[derive(Clone, Copy)]
enum Who {
    Nobody,
    Operator,
    Vendor,
}

/// The endpoints that take a body, with fixed path parameters that exist
/// (vendor 1, product `com.example.fuzz`, release 1.0.0).
const ROUTES: &[(&str, &str, Who)] = &[
    ("POST", "/v1/activate", Who::Nobody),
    ("POST", "/v1/deactivate", Who::Nobody),
    ("POST", "/v1/admin/vendors", Who::Operator),
    ("POST", "/v1/admin/vendors/1/tokens", Who::Operator),
    ("PUT", "/v1/admin/vendors/1/plan", Who::Operator),
    ("PUT", "/v1/vendor/certificate", Who::Vendor),
    ("POST", "/v1/products", Who::Vendor),
    ("POST", "/v1/products/com.example.fuzz/releases", Who::Vendor),
    ("POST", "/v1/licenses", Who::Vendor),
    ("POST", "/v1/dongles", Who::Vendor),
    ("POST", "/v1/codes", Who::Vendor),
    ("POST", "/v1/licenses/00000000000000000000000000000000/revoke", Who::Vendor),
    ("POST", "/v1/codes/1/revoke", Who::Vendor),
    ("PUT", "/v1/products/com.example.fuzz/releases/1.0.0/package", Who::Vendor),
    ("POST", "/v1/activate", Who::Vendor),
];

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Router,
    operator: String,
    vendor: String,
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app.clone().oneshot(req.body(Body::from(body)).expect("a valid request")).await.expect("infallible");
    let status = resp.status();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.expect("a body");
    (status, ct, bytes.to_vec())
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let (app, operator, vendor) = rt.block_on(async {
            let dir = tempfile::tempdir().expect("a temporary directory").keep();
            let db = Db::connect(&dir.join("server.db").display().to_string(), true).await.expect("SQLite");
            let master = MasterKey::from_bytes(&[7; 32]);
            let operator = Service::initialise(&db, &master).await.expect("initialise").to_string();
            let svc = Service::open(db, MasterKey::from_bytes(&[7; 32]), dir.join("packages"), 1 << 20)
                .await
                .expect("open the service");
            let limits = Limits { per_address_per_minute: 0, per_code_per_minute: 0, behind_proxy: false };
            let state: Arc<AppState> = AppState::new(svc, limits);
            let app = app(state).layer(MockConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
            let body = br#"{"name":"fuzz"}"#.to_vec();
            let (s, _, v) = send(&app, "POST", "/v1/admin/vendors", Some(&operator), body).await;
            assert_eq!(s, StatusCode::CREATED);
            let v: serde_json::Value = serde_json::from_slice(&v).expect("JSON");
            let vendor = v["token"].as_str().expect("a vendor token").to_owned();
            let product = br#"{"product":"com.example.fuzz"}"#.to_vec();
            let (s, _, _) = send(&app, "POST", "/v1/products", Some(&vendor), product).await;
            assert_eq!(s, StatusCode::CREATED);
            let release = br#"{"release":"1.0.0"}"#.to_vec();
            let (s, _, _) = send(&app, "POST", "/v1/products/com.example.fuzz/releases", Some(&vendor), release).await;
            assert!(s.is_success());
            (app, operator, vendor)
        });
        Fixture { rt, app, operator, vendor }
    })
}

fn fuzz_device() -> String {
    sealrun_format::device::DeviceSecret::from_bytes(&[5; 32]).device_code(b"fuzz-client").to_string()
}

/// One fuzzed request (see the module docs).
pub fn request(data: &[u8]) {
    let [route, body @ ..] = data else { return };
    let f = fixture();
    let (method, path, who) = ROUTES[usize::from(*route) % ROUTES.len()];
    let token = match who {
        Who::Nobody => None,
        Who::Operator => Some(f.operator.as_str()),
        Who::Vendor => Some(f.vendor.as_str()),
    };
    let body = match std::str::from_utf8(body) {
        Ok(text) if text.contains("@device@") => text.replace("@device@", &fuzz_device()).into_bytes(),
        _ => body.to_vec(),
    };
    let (status, ct, answer) = f.rt.block_on(send(&f.app, method, path, token, body));
    let shown = String::from_utf8_lossy(&answer);
    assert!(!status.is_server_error(), "{method} {path} answered {status}: {shown}");
    if status.is_client_error() {
        assert_eq!(ct, "application/problem+json", "{method} {path}: a refusal that is not problem+json: {shown}");
    }
}
