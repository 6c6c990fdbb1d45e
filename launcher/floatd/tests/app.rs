//! The HTTP API in-process (`app(daemon)` with `oneshot`): a checkout lends
//! a key that opens only on the asking device, heartbeats renew, release
//! frees, and bad requests get JSON refusals. The end-to-end tests in
//! `tests/tests/floating.rs` run the same over real sockets and processes.
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use sealrun::license::device::Device;
use sealrun_floatd::app::app;
use sealrun_floatd::config::Config;
use sealrun_floatd::daemon::Daemon;
use sealrun_format::device::DeviceSecret;
use sealrun_format::lease::{LeaseId, LeaseKey, LeaseRoot, Proof, check_proof, open_lent, open_lent_secret, prove};
use sealrun_format::license::{Binding, Holder, License, LicenseSigner, SeatUnit, Terms, issue};
use sealrun_format::release::ReleaseRange;
use sealrun_format::{ContentKey, Release, VendorPublicKey, VendorSigningKey};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    router: axum::Router,
    content: ContentKey,
    client: DeviceSecret,
}

async fn fixture(seats: u32) -> Fixture {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let dir = tempfile::tempdir().unwrap();
    let vendor = VendorSigningKey::generate(&mut rng);
    let host = DeviceSecret::generate(&mut rng);
    let code = host.device_code(b"host");
    let content = ContentKey::generate(&mut rng);
    let terms = Terms {
        license_id: [0; 16],
        vendor_key: VendorPublicKey([0; 32]),
        product: "com.example.app".into(),
        releases: ReleaseRange { min: Release::new(1, 0, 0), max: None },
        licensee: "Site".into(),
        issued_at: 1,
        not_before: 1,
        expires: None,
        features: vec![],
        meters: vec![],
        binding: Binding::Floating { holder: Holder::Device(code), seats, unit: SeatUnit::Computer },
    };
    let bytes = issue(terms, &[(Release::new(1, 0, 0), &content)], &LicenseSigner::Vendor(&vendor), &mut rng).unwrap();
    std::fs::write(dir.path().join("floating.license"), bytes).unwrap();
    let config = dir.path().join("floatd.toml");
    std::fs::write(&config, "licenses = [\"floating.license\"]\nstate_dir = \"state\"\nlisten = \"127.0.0.1:0\"\n")
        .unwrap();
    let config = Config::load(&config).unwrap();
    let device = Device::new(host, code, dir.path().join("unused"));
    let daemon = Arc::new(Daemon::start_as(&config, &device).await.unwrap());
    Fixture { _dir: dir, router: app(daemon), content, client: DeviceSecret::generate(&mut rng) }
}

async fn call(router: &axum::Router, method: &str, path: &str, body: String) -> (StatusCode, Value) {
    let req =
        Request::builder().method(method).uri(path).header("content-type", "application/json").body(Body::from(body));
    let resp = router.clone().oneshot(req.unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn checkout_body(f: &Fixture, machine: &[u8]) -> Value {
    json!({"product": "com.example.app", "key_id": hex::encode(f.content.id().0),
           "device": f.client.device_code(machine).to_string(), "host": "ws1", "user": "ann", "pid": 7,
           "nonce": hex::encode(CHECKOUT_NONCE)})
}

/// The nonce every checkout of these tests sends.
const CHECKOUT_NONCE: [u8; 16] = [6; 16];

#[tokio::test]
async fn checkout_lends_a_key_for_the_asking_device_only() {
    let f = fixture(1).await;
    let (status, v) = call(&f.router, "POST", "/v1/checkout", checkout_body(&f, b"ws1").to_string()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let license = License::parse(&b64.decode(v["license"].as_str().unwrap()).unwrap()).unwrap();
    let lease: LeaseId = v["lease"].as_str().unwrap().parse().unwrap();
    let lent = LeaseKey::from_bytes(&b64.decode(v["key"].as_str().unwrap()).unwrap()).unwrap();
    let code = f.client.device_code(b"ws1");
    let key = open_lent(&lent, &license, &lease, &f.content.id(), &f.client, &code).unwrap();
    assert_eq!(key.as_bytes(), f.content.as_bytes());
    let other = DeviceSecret::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
    assert!(open_lent(&lent, &license, &lease, &f.content.id(), &other, &other.device_code(b"ws1")).is_err());

    // The one seat is taken: another computer is refused, the same one is not.
    let (status, v2) = call(&f.router, "POST", "/v1/checkout", checkout_body(&f, b"ws2").to_string()).await;
    assert_eq!(
        (status, v2["error"].as_str(), v2["seats"].as_u64()),
        (StatusCode::CONFLICT, Some("seats_in_use"), Some(1))
    );
    let (status, _) = call(&f.router, "POST", "/v1/checkout", checkout_body(&f, b"ws1").to_string()).await;
    assert_eq!(status, StatusCode::OK);

    // The lease secret opens on the client only; with the lent content key
    // it gives the proof key, under which the grant's terms are proven for
    // the checkout's nonce, every request is proven, and so is the
    // daemon's answer to a heartbeat.
    let wrapped = LeaseKey::from_bytes(&b64.decode(v["secret"].as_str().unwrap()).unwrap()).unwrap();
    let secret = open_lent_secret(&wrapped, &license, &lease, &f.client, &code).unwrap();
    let proof_key = LeaseRoot::derive(&key, &license).proof_key(&lease, &secret);
    let grant = hex::decode(v["proof"].as_str().unwrap()).unwrap();
    let terms = Proof::Granted { ttl_ms: v["ttl_ms"].as_u64().unwrap(), renew_ms: v["renew_ms"].as_u64().unwrap() };
    assert!(check_proof(&proof_key, terms, &lease, &CHECKOUT_NONCE, &grant), "the grant's terms are proven");
    assert!(!check_proof(&proof_key, terms, &lease, &[0; 16], &grant), "for this checkout only");
    let nonce = [4u8; 16];
    let req = |seq: u64, proof: [u8; 32]| {
        json!({"lease": v["lease"], "seq": seq, "nonce": hex::encode(nonce), "proof": hex::encode(proof)}).to_string()
    };
    let forged = req(1, [0; 32]);
    let (status, r) = call(&f.router, "POST", "/v1/heartbeat", forged).await;
    assert_eq!((status, r["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_lease")), "no proof, no renewal");
    // The secret alone (protocol 1's key) proves nothing.
    let v1 = sealrun_format::lease::ProofKey::from_bytes(secret.as_bytes());
    let (status, _) =
        call(&f.router, "POST", "/v1/heartbeat", req(1, prove(&v1, Proof::Heartbeat { seq: 1 }, &lease, &nonce))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the secret without the content key proves nothing");
    let heartbeat = req(1, prove(&proof_key, Proof::Heartbeat { seq: 1 }, &lease, &nonce));
    let (status, r) = call(&f.router, "POST", "/v1/heartbeat", heartbeat.clone()).await;
    assert_eq!((status, r["ttl_ms"].as_u64()), (StatusCode::OK, Some(30_000)));
    let answer = hex::decode(r["proof"].as_str().unwrap()).unwrap();
    assert!(check_proof(&proof_key, Proof::Renewed { ttl_ms: 30_000 }, &lease, &nonce, &answer));
    // The same heartbeat again is a replay.
    let (status, r) = call(&f.router, "POST", "/v1/heartbeat", heartbeat.clone()).await;
    assert_eq!((status, r["error"].as_str()), (StatusCode::CONFLICT, Some("replayed")), "{r}");
    // A heartbeat's proof does not release.
    let (status, _) =
        call(&f.router, "POST", "/v1/release", req(2, prove(&proof_key, Proof::Heartbeat { seq: 2 }, &lease, &nonce)))
            .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let release = req(3, prove(&proof_key, Proof::Release { seq: 3 }, &lease, &nonce));
    let (status, _) = call(&f.router, "POST", "/v1/release", release).await;
    assert_eq!(status, StatusCode::OK);
    let again = req(4, prove(&proof_key, Proof::Heartbeat { seq: 4 }, &lease, &nonce));
    let (status, r) = call(&f.router, "POST", "/v1/heartbeat", again).await;
    assert_eq!((status, r["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_lease")));
    let (status, s) = call(&f.router, "GET", "/v1/status", String::new()).await;
    assert_eq!(
        (status, s["products"][0]["in_use"].as_u64()),
        (StatusCode::OK, Some(1)),
        "the second lease of ws1 holds the seat"
    );
}

#[tokio::test]
async fn bad_requests_get_json_refusals() {
    let f = fixture(2).await;
    for (path, body, status, error) in [
        ("/v1/checkout", "{".to_owned(), StatusCode::BAD_REQUEST, "bad_request"),
        ("/v1/checkout", "x".repeat(20_000), StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        (
            "/v1/heartbeat",
            r#"{"lease":"zz","nonce":"00","proof":"00"}"#.to_owned(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        ("/v1/heartbeat", r#"{"lease":"zz","secret":"00"}"#.to_owned(), StatusCode::BAD_REQUEST, "bad_request"),
        ("/v1/admin/revoke", r#"{"lease":"00"}"#.to_owned(), StatusCode::UNAUTHORIZED, "unauthorized"),
        ("/nowhere", String::new(), StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (got, v) = call(&f.router, "POST", path, body).await;
        assert_eq!((got, v["error"].as_str()), (status, Some(error)), "{path}: {v}");
    }
    let mut v = checkout_body(&f, b"m");
    v["product"] = json!("com.example.unknown");
    let (got, r) = call(&f.router, "POST", "/v1/checkout", v.to_string()).await;
    assert_eq!((got, r["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_product")));
    v["product"] = json!("com.example.app");
    v["host"] = json!("a\u{7}b");
    let (got, r) = call(&f.router, "POST", "/v1/checkout", v.to_string()).await;
    assert_eq!((got, r["error"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    v["host"] = json!("ws");
    v["device"] = json!("SR1-NOT-A-CODE");
    let (got, r) = call(&f.router, "POST", "/v1/checkout", v.to_string()).await;
    assert_eq!((got, r["error"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    // A launcher of protocol 1 sends no nonce: told to update, not served
    // (its proofs could be forged by a proxy).
    let mut old = checkout_body(&f, b"m");
    old.as_object_mut().unwrap().remove("nonce");
    let (got, r) = call(&f.router, "POST", "/v1/checkout", old.to_string()).await;
    assert_eq!((got, r["error"].as_str()), (StatusCode::BAD_REQUEST, Some("client_too_old")), "{r}");
    assert!(r["message"].as_str().unwrap().contains("update sealrun"), "{r}");
    old["nonce"] = json!("abcd");
    let (got, r) = call(&f.router, "POST", "/v1/checkout", old.to_string()).await;
    assert_eq!((got, r["error"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{r}");
}
