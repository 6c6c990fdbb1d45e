//! Entry point for the `floatd_requests` cargo-fuzz target (compiled only
//! with `--cfg fuzzing`): one request to a real daemon (SQLite state, a
//! floating license of 2 seats), routed by the first input byte and sent
//! with the rest as its body. Placeholders in the body let the fuzzer reach
//! past the signatures and MACs it cannot forge: `@device@` (a valid device
//! code), `@key@` (the license's key id), `@lease@` (the last lease granted),
//! `@seq@`, `@nonce@` and `@proof@` (a fresh request number, a nonce and a
//! valid heartbeat proof for them and `@lease@`; `@release@` the same for
//! a release).
//!
//! Whatever the body: no 5xx, every refusal is JSON, and never more seats
//! in use than the license has.
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use sealrun::license::device::Device;
use sealrun_format::device::{DeviceCode, DeviceSecret};
use sealrun_format::lease::{LeaseId, LeaseKey, LeaseRoot, Proof, ProofKey, open_lent, open_lent_secret, prove};
use sealrun_format::license::{Binding, Holder, License, LicenseSigner, SeatUnit, Terms, issue};
use sealrun_format::release::ReleaseRange;
use sealrun_format::{ContentKey, Release, VendorPublicKey, VendorSigningKey};
use tower::ServiceExt;

use crate::app::app;
use crate::config::Config;
use crate::daemon::Daemon;

/// Seats of the fuzzed license: small, so "all in use" is reached often.
const SEATS: u32 = 2;

const ROUTES: &[(&str, &str)] =
    &[("POST", "/v1/checkout"), ("POST", "/v1/heartbeat"), ("POST", "/v1/release"), ("POST", "/v1/admin/revoke")];

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Router,
    client: DeviceSecret,
    code: DeviceCode,
    license: License,
    key_id: String,
    content: ContentKey,
    /// The last lease granted, with its proof key and the next request
    /// number.
    last: Mutex<Option<(LeaseId, ProofKey, u64)>>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        let vendor = VendorSigningKey::from_seed(&[1; 32]);
        let host = DeviceSecret::from_bytes(&[2; 32]);
        let host_code = host.device_code(b"fuzz-host");
        let content = ContentKey::from_bytes(&[3; 32]);
        let terms = Terms {
            license_id: [4; 16],
            vendor_key: VendorPublicKey([0; 32]),
            product: "com.example.fuzz".into(),
            releases: ReleaseRange { min: Release::new(1, 0, 0), max: None },
            licensee: "Fuzz site".into(),
            issued_at: 1,
            not_before: 1,
            expires: None,
            features: vec![],
            meters: vec![],
            binding: Binding::Floating { holder: Holder::Device(host_code), seats: SEATS, unit: SeatUnit::Computer },
        };
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let bytes = issue(terms, &[(Release::new(1, 0, 0), &content)], &LicenseSigner::Vendor(&vendor), &mut rng)
            .expect("a floating license");
        let license = License::parse(&bytes).expect("it parses");
        std::fs::write(dir.join("floating.license"), &bytes).expect("write the license");
        let config = dir.join("floatd.toml");
        std::fs::write(&config, "licenses = [\"floating.license\"]\nstate_dir = \"state\"\nlisten = \"127.0.0.1:0\"\n")
            .expect("write the config");
        let config = Config::load(&config).expect("the config loads");
        let device = Device::new(host, host_code, dir.join("unused"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let daemon = rt.block_on(Daemon::start_as(&config, &device)).expect("the daemon starts");
        let client = DeviceSecret::from_bytes(&[5; 32]);
        let code = client.device_code(b"fuzz-client");
        Fixture {
            rt,
            app: app(Arc::new(daemon)),
            client,
            code,
            license,
            key_id: hex::encode(content.id().0),
            content,
            last: Mutex::new(None),
        }
    })
}

fn substitute(f: &Fixture, body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    if !text.contains('@') {
        return body.to_vec();
    }
    let mut last = f.last.lock().expect("not poisoned");
    let nonce = [9u8; sealrun_format::lease::LEASE_NONCE_LEN];
    let (lease, seq, heartbeat, release) = match last.as_mut() {
        Some((id, key, seq)) => {
            // A fresh number for each substituted body (both proofs are
            // made for it: one body is a heartbeat or a release).
            *seq += 1;
            (
                id.to_string(),
                *seq,
                hex::encode(prove(key, Proof::Heartbeat { seq: *seq }, id, &nonce)),
                hex::encode(prove(key, Proof::Release { seq: *seq }, id, &nonce)),
            )
        }
        None => (String::new(), 0, String::new(), String::new()),
    };
    text.replace("@device@", &f.code.to_string())
        .replace("@key@", &f.key_id)
        .replace("@lease@", &lease)
        .replace("@seq@", &seq.to_string())
        .replace("@nonce@", &hex::encode(nonce))
        .replace("@proof@", &heartbeat)
        .replace("@release@", &release)
        .into_bytes()
}

async fn send(app: &Router, method: &str, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let req = Request::builder().method(method).uri(path).header("content-type", "application/json");
    let resp = app.clone().oneshot(req.body(Body::from(body)).expect("a valid request")).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20).await.expect("a body");
    (status, bytes.to_vec())
}

/// One fuzzed request (see the module docs).
pub fn request(data: &[u8]) {
    let [route, body @ ..] = data else { return };
    // A checkout may wait in line for up to 20 s; the fuzzer would only
    // measure the wait, so waiting is left to the end-to-end tests.
    if body.windows(4).any(|w| w == b"wait") {
        return;
    }
    let f = fixture();
    let (method, path) = ROUTES[usize::from(*route) % ROUTES.len()];
    let body = substitute(f, body);
    let (status, answer) = f.rt.block_on(send(&f.app, method, path, body));
    let shown = String::from_utf8_lossy(&answer);
    assert!(!status.is_server_error(), "{method} {path} answered {status}: {shown}");
    let json: serde_json::Value =
        serde_json::from_slice(&answer).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {shown}"));
    if status == StatusCode::OK && path == "/v1/checkout" {
        let b64 = base64::engine::general_purpose::STANDARD;
        let lease: LeaseId = json["lease"].as_str().and_then(|s| s.parse().ok()).expect("a granted lease id");
        let raw = b64.decode(json["secret"].as_str().expect("a lease secret")).expect("base64");
        let lent = LeaseKey::from_bytes(&raw).expect("a lent secret");
        let secret =
            open_lent_secret(&lent, &f.license, &lease, &f.client, &f.code).expect("the secret opens on the client");
        let raw = b64.decode(json["key"].as_str().expect("a lent key")).expect("base64");
        let lent = LeaseKey::from_bytes(&raw).expect("a lent key");
        let key = open_lent(&lent, &f.license, &lease, &f.content.id(), &f.client, &f.code)
            .expect("the key opens on the client");
        assert_eq!(key.as_bytes(), f.content.as_bytes(), "the lent key is the license's");
        let proof_key = LeaseRoot::derive(&key, &f.license).proof_key(&lease, &secret);
        *f.last.lock().expect("not poisoned") = Some((lease, proof_key, 0));
    }
    let (_, status) = f.rt.block_on(send(&f.app, "GET", "/v1/status", Vec::new()));
    let status: serde_json::Value = serde_json::from_slice(&status).expect("status is JSON");
    let in_use = status["products"][0]["in_use"].as_u64().expect("in_use");
    assert!(in_use <= u64::from(SEATS), "{in_use} seats in use of {SEATS}");
}
