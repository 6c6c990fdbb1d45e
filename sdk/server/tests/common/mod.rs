//! Test harness: a service over a fresh SQLite file or a fresh PostgreSQL
//! database, the router over it, and helpers that act as operator, vendor
//! and end user.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use sealrun_format::device::DeviceSecret;
use sealrun_format::license::certify_issuer;
use sealrun_format::package::{PackageSpec, seal_to_vec};
use sealrun_format::{ContentKey, Release, VendorPublicKey, VendorSigningKey};
use sealrun_server::api::{AppState, Limits, app};
use sealrun_server::db::Db;
use sealrun_server::secrets::{MasterKey, rng};
use sealrun_server::service::Service;

/// The PostgreSQL server tests use (a maintenance database URL); scripts/test
/// starts a throwaway one and sets it.
pub const POSTGRES_ENV: &str = "SEALRUN_TEST_POSTGRES";
/// Set by scripts/test: a missing PostgreSQL is then a failure, not a skip.
pub const REQUIRE_POSTGRES_ENV: &str = "SEALRUN_REQUIRE_POSTGRES";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Env {
    pub app: Router,
    pub state: Arc<AppState>,
    pub admin: String,
    pub dir: tempfile::TempDir,
}

/// A fresh PostgreSQL database URL, or `None` (with a note) when none is
/// configured and the run does not require one.
pub async fn fresh_postgres() -> Option<String> {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        assert!(
            std::env::var_os(REQUIRE_POSTGRES_ENV).is_none(),
            "{REQUIRE_POSTGRES_ENV} is set but {POSTGRES_ENV} is not: scripts/test should have started PostgreSQL"
        );
        eprintln!("SKIPPED (PostgreSQL half): set {POSTGRES_ENV} to a PostgreSQL URL, as scripts/test does");
        return None;
    };
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&base).await.expect("connect to the test PostgreSQL");
    let mut raw = [0u8; 8];
    sealrun_server::secrets::fill_random(&mut raw);
    let name = format!("sealrun_test_{}", hex::encode(raw));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create database");
    admin.close().await;
    let (head, _) = base.rsplit_once('/').expect("URL with a database");
    Some(format!("{head}/{name}"))
}

pub async fn env_with(backend: Backend, limits: Limits) -> Option<Env> {
    let dir = tempfile::tempdir().unwrap();
    let database = match backend {
        Backend::Sqlite => dir.path().join("server.db").display().to_string(),
        Backend::Postgres => fresh_postgres().await?,
    };
    let master = MasterKey::from_bytes(&[7; 32]);
    let db = Db::connect(&database, true).await.unwrap();
    let admin = Service::initialise(&db, &master).await.unwrap().to_string();
    let svc = Service::open(db, MasterKey::from_bytes(&[7; 32]), dir.path().join("packages"), 64 << 20).await.unwrap();
    let state = AppState::new(svc, limits);
    let app = app(state.clone()).layer(MockConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
    Some(Env { app, state, admin, dir })
}

pub async fn env(backend: Backend) -> Option<Env> {
    env_with(backend, Limits { per_address_per_minute: 0, per_code_per_minute: 0, behind_proxy: false }).await
}

/// One request; returns the status, the content type and the body as JSON
/// (or as a JSON string when it is not JSON).
pub async fn call_raw(app: &Router, req: Request<Body>) -> (StatusCode, String, Value, axum::http::HeaderMap) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let bytes = axum::body::to_bytes(resp.into_body(), 256 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, ct, body, headers)
}

pub async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(v) => b.header("content-type", "application/json").body(Body::from(v.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    let (s, ct, v, _) = call_raw(app, req).await;
    if s.is_client_error() || s.is_server_error() {
        assert_eq!(ct, "application/problem+json", "{method} {uri}: error is not problem+json: {v}");
        assert!(v["detail"].is_string() && v["code"].is_string(), "{v}");
    }
    (s, v)
}

/// A vendor with a certified issuing key.
pub struct Vendor {
    pub name: String,
    pub token: String,
    pub key: VendorSigningKey,
}

pub async fn vendor(env: &Env, name: &str) -> Vendor {
    let (s, v) = call(&env.app, "POST", "/v1/admin/vendors", Some(&env.admin), Some(json!({ "name": name }))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let key = VendorSigningKey::generate(&mut rng());
    let mut issuer = [0u8; 32];
    hex::decode_to_slice(v["vendor"]["issuer_key"].as_str().unwrap(), &mut issuer).unwrap();
    let cert = certify_issuer(&key, VendorPublicKey(issuer), sealrun_server::now() as u64 + 86_400 * 30);
    let (s, v) = call(
        &env.app,
        "PUT",
        "/v1/vendor/certificate",
        Some(&token),
        Some(json!({ "vendor_key": key.public().to_string(), "certificate": hex::encode(cert.to_bytes()) })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    Vendor { name: name.to_owned(), token, key }
}

/// Creates `product` with release `release` and uploads a package for it
/// (a few KiB of random bytes; the server does not run modules).
pub async fn product_with_package(env: &Env, v: &Vendor, product: &str, release: &str) -> Vec<u8> {
    let (s, b) = call(&env.app, "POST", "/v1/products", Some(&v.token), Some(json!({ "product": product }))).await;
    assert!(s == StatusCode::CREATED || s == StatusCode::CONFLICT, "{b}");
    let package = sealed_package(env, v, product, release).await;
    let (s, b) = upload(env, &v.token, product, release, package.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    package
}

/// A package sealed with the server's key for `product` `release`.
pub async fn sealed_package(env: &Env, v: &Vendor, product: &str, release: &str) -> Vec<u8> {
    let (s, b) = call(
        &env.app,
        "POST",
        &format!("/v1/products/{product}/releases"),
        Some(&v.token),
        Some(json!({ "release": release })),
    )
    .await;
    assert!(s.is_success(), "{b}");
    let mut k = [0u8; 32];
    hex::decode_to_slice(b["content_key"].as_str().unwrap(), &mut k).unwrap();
    let module = vec![0x5au8; 10_000];
    let spec = PackageSpec {
        product: product.into(),
        release: release.parse::<Release>().unwrap(),
        display_name: product.into(),
        kind: sealrun_format::package::AppKind::Console,
        capabilities: vec![],
        chunk_size_log2: 12,
        plaintext_len: module.len() as u64,
        icon: None,
    };
    seal_to_vec(spec, &module, &ContentKey::from_bytes(&k), &v.key, &mut rng()).unwrap()
}

pub async fn upload(env: &Env, token: &str, product: &str, release: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("PUT")
        .uri(format!("/v1/products/{product}/releases/{release}/package"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(bytes))
        .unwrap();
    let (s, _, v, _) = call_raw(&env.app, req).await;
    (s, v)
}

/// A device: its secret and its code.
pub fn device(n: u32) -> (DeviceSecret, String) {
    let secret = DeviceSecret::generate(&mut rng());
    let code = secret.device_code(format!("machine-{n}-0123456789abcdef").as_bytes()).to_string();
    (secret, code)
}

pub async fn create_code(env: &Env, v: &Vendor, body: Value) -> (i64, String) {
    let (s, b) = call(&env.app, "POST", "/v1/codes", Some(&v.token), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    (b["codes"][0]["id"].as_i64().unwrap(), b["codes"][0]["code"].as_str().unwrap().to_owned())
}

/// GET returning text (exports).
pub async fn text(app: &Router, uri: &str, token: &str) -> (StatusCode, String) {
    let req =
        Request::builder().uri(uri).header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let s = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 256 << 20).await.unwrap();
    (s, String::from_utf8(bytes.to_vec()).unwrap())
}

pub async fn ledger_len(env: &Env, token: &str) -> usize {
    let (s, t) = text(&env.app, "/v1/ledger", token).await;
    assert_eq!(s, StatusCode::OK);
    let last = t.lines().last().unwrap_or_default();
    assert!(last.starts_with("{\"head\""), "the export ends in the signed head: {last}");
    t.lines().count() - 1
}

/// Runs an async test body against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let env = common::env(common::Backend::Sqlite).await.unwrap();
                ($body)(env).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(env) = common::env(common::Backend::Postgres).await {
                    ($body)(env).await;
                }
            }
        }
    };
}
