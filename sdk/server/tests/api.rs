//! The API in process (router + `oneshot`), each test against SQLite and
//! PostgreSQL: the licensing flow, tenant isolation, bad input, retries and
//! races.
mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use common::*;
use sealrun_format::ledger::verify_chain;
use sealrun_format::license::License;
use sealrun_format::package::Package;

fn license_of(v: &Value) -> License {
    License::parse(&B64.decode(v["license"].as_str().unwrap()).unwrap()).unwrap()
}

both_backends!(licensing_flow, |env: Env| async move {
    let acme = vendor(&env, "acme").await;
    let package = product_with_package(&env, &acme, "com.acme.tool", "1.0.0").await;
    let pkg = Package::parse(&package).unwrap();

    // The same release keeps its key: 200 with created = false.
    let (s, again) = call(
        &env.app,
        "POST",
        "/v1/products/com.acme.tool/releases",
        Some(&acme.token),
        Some(json!({"release": "1.0.0"})),
    )
    .await;
    assert_eq!((s, again["created"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(again["key_id"].as_str().unwrap(), hex::encode(pkg.manifest().key_id.0));

    // Billing from now on (a plan takes effect when it is set, never
    // before): 1.50 per license, one free, 2.00 for this product.
    let (s, _) = call(
        &env.app,
        "PUT",
        "/v1/admin/vendors/acme/plan",
        Some(&env.admin),
        Some(json!({"currency": "EUR", "license_fee": 150, "seat_fee": 0, "free_licenses": 1, "product_fees": {"com.acme.tool": 200}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // A vendor license, retried with the same idempotency key: one license, one ledger entry.
    let (secret, dev) = device(1);
    let req = || {
        Request::builder()
            .method("POST")
            .uri("/v1/licenses")
            .header("authorization", format!("Bearer {}", acme.token))
            .header("content-type", "application/json")
            .header("idempotency-key", "order-4711")
            .body(Body::from(json!({"product": "com.acme.tool", "device": dev, "licensee": "Jo"}).to_string()))
            .unwrap()
    };
    let (s1, _, first, _) = call_raw(&env.app, req()).await;
    let (s2, _, second, _) = call_raw(&env.app, req()).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK), "{first} {second}");
    assert_eq!(first["license"], second["license"]);
    assert_eq!((&first["ledger_seq"], &second["ledger_seq"]), (&json!(1), &json!(1)), "where its entry is");
    assert_eq!(ledger_len(&env, &acme.token).await, 1);

    // The license is signed by the certified issuing key and opens on the device.
    let lic = license_of(&first);
    lic.verify_signature(&acme.key.public()).unwrap();
    lic.check_covers(pkg.manifest(), sealrun_server::now() as u64).unwrap();
    lic.unwrap_key(&pkg.manifest().key_id, &secret).unwrap();

    // An activation code for one device, three transfers.
    let (_, code) =
        create_code(&env, &acme, json!({"product": "com.acme.tool", "features": ["pro"], "license_days": 30})).await;
    let (_, dev_b) = device(2);
    let (_, dev_c) = device(3);
    let (s, a1) = call(&env.app, "POST", "/v1/activate", None, Some(json!({"code": code, "device": dev_b}))).await;
    assert_eq!(s, StatusCode::OK, "{a1}");
    assert_eq!(a1["created"], true);
    let l1 = license_of(&a1);
    assert_eq!(l1.terms.feature_names(), ["pro"]);
    assert_eq!(l1.terms.format_version(), 1, "plain features keep the license at version 1");
    assert!(l1.terms.expires.is_some());
    // Repeat from the same device (code typed in lower case without dashes): the same license.
    let typed = code.replace('-', "").to_lowercase();
    let (s, a2) = call(&env.app, "POST", "/v1/activate", None, Some(json!({"code": typed, "device": dev_b}))).await;
    assert_eq!((s, a2["created"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(a1["license"], a2["license"]);
    // Another device: the code is in use.
    let (s, p) = call(&env.app, "POST", "/v1/activate", None, Some(json!({"code": code, "device": dev_c}))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("code_exhausted")));
    // Give it back, then the other device gets it.
    let (s, d) = call(
        &env.app,
        "POST",
        "/v1/deactivate",
        None,
        Some(json!({"code": code, "device": dev_b, "license_id": a1["license_id"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!((d["used"].as_i64(), d["transfers_left"].as_i64()), (Some(0), Some(2)));
    let (s, a3) = call(&env.app, "POST", "/v1/activate", None, Some(json!({"code": code, "device": dev_c}))).await;
    assert_eq!((s, a3["created"].as_bool()), (StatusCode::OK, Some(true)));

    // Provision: the package, with the license, resumable.
    let dl = |range: Option<&str>| {
        let mut b = Request::builder()
            .uri("/v1/products/com.acme.tool/package")
            .header("sealrun-code", code.as_str())
            .header("sealrun-device", dev_c.as_str());
        if let Some(r) = range {
            b = b.header("range", r);
        }
        b.body(Body::empty()).unwrap()
    };
    let resp = tower::ServiceExt::oneshot(env.app.clone(), dl(None)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let lic_hdr = resp.headers()["sealrun-license"].to_str().unwrap().to_owned();
    assert_eq!(lic_hdr, a3["license"].as_str().unwrap(), "provision returns the device's existing license");
    let whole = axum::body::to_bytes(resp.into_body(), 1 << 30).await.unwrap();
    assert_eq!(&whole[..], &package[..]);
    let resp = tower::ServiceExt::oneshot(env.app.clone(), dl(Some("bytes=100-"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(
        resp.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-{}/{}", package.len() - 1, package.len())
    );
    let tail = axum::body::to_bytes(resp.into_body(), 1 << 30).await.unwrap();
    assert_eq!(&tail[..], &package[100..]);
    let (s, _, _, h) = call_raw(&env.app, dl(Some(&format!("bytes={}-", package.len())))).await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(h["content-range"].to_str().unwrap(), format!("bytes */{}", package.len()));

    // The ledger: 1 issue + 2 activations + 1 deactivation, chained.
    let (_, text_ledger) = text(&env.app, "/v1/ledger", &acme.token).await;
    let kinds: Vec<String> = text_ledger
        .lines()
        .filter(|l| !l.starts_with("{\"head\""))
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    // The second activation took the slot the deactivation freed: a transfer
    // (issue 25, finding 9), not a new license.
    assert_eq!(kinds, ["license_issued", "activation", "deactivation", "transfer"]);
    let entries = parse_ledger(&text_ledger);
    verify_chain(&entries).unwrap();

    let period = sealrun_server::billing::period_of(sealrun_server::now());
    let (s, inv) = call(&env.app, "GET", &format!("/v1/invoices/{period}"), Some(&acme.token), None).await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    // Two licenses (one free) at 2.00, and a transfer at the plan's transfer fee (none).
    assert_eq!(inv["lines"][0]["licenses"], 2);
    assert_eq!(inv["lines"][0]["free"], 1);
    assert_eq!(inv["lines"][0]["transfers"], 1);
    assert_eq!(inv["total"], 200);
    assert_eq!(inv["ledger_seq"], 4);
    let from = inv["lines"][0]["plan_from"].as_u64().unwrap();
    assert_eq!(inv["plans"].as_array().unwrap().last().unwrap()["effective_from"], from);
    let (s, csv) = text(&env.app, &format!("/v1/admin/vendors/acme/invoices/{period}?format=csv"), &env.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert!(csv.contains(&format!("acme,{period},EUR,{from},com.acme.tool,2,1,2.00,0,0.00,1,0.00,2.00")), "{csv}");
    let (s, html) = text(&env.app, &format!("/v1/invoices/{period}?format=html"), &acme.token).await;
    assert!(s.is_success() && html.contains("<td>com.acme.tool</td>"), "{html}");

    // Revoking a license goes into the ledger too.
    let (s, _) = call(
        &env.app,
        "POST",
        &format!("/v1/licenses/{}/revoke", first["license_id"].as_str().unwrap()),
        Some(&acme.token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(ledger_len(&env, &acme.token).await, 5);
});

/// The export, parsed line by line.
fn parse_ledger(text: &str) -> Vec<sealrun_format::ledger::LedgerEntry> {
    text.lines()
        .filter(|l| !l.starts_with("{\"head\""))
        .map(|l| serde_json::from_str::<sealrun_server::ledger::EntryJson>(l).unwrap().to_entry().unwrap())
        .collect()
}

both_backends!(tenant_isolation, |env: Env| async move {
    let a = vendor(&env, "vendor-a").await;
    let b = vendor(&env, "vendor-b").await;
    let _ = product_with_package(&env, &a, "com.a.app", "1.0.0").await;
    let (_, dev) = device(1);
    let (s, lic) = call(
        &env.app,
        "POST",
        "/v1/licenses",
        Some(&a.token),
        Some(json!({"product": "com.a.app", "device": dev, "licensee": "X"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let lid = lic["license_id"].as_str().unwrap().to_owned();
    let (code_id, _) = create_code(&env, &a, json!({"product": "com.a.app"})).await;
    let before = ledger_len(&env, &a.token).await;
    let (s, _) = call(&env.app, "POST", "/v1/products", Some(&b.token), Some(json!({"product": "com.b.app"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let package_b = sealed_package(&env, &b, "com.b.app", "1.0.0").await;

    // Every vendor endpoint, with B's token, against A's objects.
    let denied: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/v1/products/com.a.app".into(), None),
        ("POST", "/v1/products/com.a.app/releases".into(), Some(json!({"release": "1.0.0"}))),
        ("POST", "/v1/products/com.a.app/releases".into(), Some(json!({"release": "2.0.0"}))),
        ("POST", "/v1/licenses".into(), Some(json!({"product": "com.a.app", "device": dev, "licensee": "X"}))),
        ("POST", format!("/v1/licenses/{lid}/revoke"), None),
        ("POST", "/v1/codes".into(), Some(json!({"product": "com.a.app"}))),
        ("POST", format!("/v1/codes/{code_id}/revoke"), None),
    ];
    for (m, uri, body) in denied {
        let (s, p) = call(&env.app, m, &uri, Some(&b.token), body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {uri}: {p}");
    }
    let (s, _) = upload(&env, &b.token, "com.a.app", "1.0.0", package_b).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Lists show only B's own (nothing).
    for uri in ["/v1/products", "/v1/licenses", "/v1/codes", "/v1/licenses/export", "/v1/ledger"] {
        let (s, t) = text(&env.app, uri, &b.token).await;
        assert_eq!(s, StatusCode::OK, "{uri}");
        assert!(!t.contains("com.a.app") && !t.contains(&lid), "{uri} leaks A's data: {t}");
    }
    let period = sealrun_server::billing::period_of(sealrun_server::now());
    let (_, inv) = call(&env.app, "GET", &format!("/v1/invoices/{period}"), Some(&b.token), None).await;
    assert_eq!((inv["vendor"].as_str(), inv["total"].as_u64()), (Some("vendor-b"), Some(0)));
    // B cannot revoke A's token, nor use admin endpoints.
    let (s, _) = call(&env.app, "POST", "/v1/tokens/revoke", Some(&b.token), Some(json!({"token": a.token}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for (m, uri) in [
        ("GET", "/v1/admin/vendors"),
        ("GET", "/v1/admin/vendors/vendor-a/plan"),
        ("GET", &format!("/v1/admin/vendors/vendor-a/invoices/{period}") as &str),
    ] {
        let (s, _) = call(&env.app, m, uri, Some(&b.token), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
    }
    // A's state is untouched.
    assert_eq!(ledger_len(&env, &a.token).await, before);
    let (_, codes) = call(&env.app, "GET", "/v1/codes", Some(&a.token), None).await;
    assert!(codes["codes"][0]["revoked_at"].is_null());
    let (_, lics) = call(&env.app, "GET", "/v1/licenses", Some(&a.token), None).await;
    assert!(lics["licenses"][0]["revoked_at"].is_null());
    let (_, p) = call(&env.app, "GET", "/v1/products/com.a.app", Some(&a.token), None).await;
    assert_eq!(p["releases"].as_array().unwrap().len(), 1, "B made no release of A's product");
});

both_backends!(bad_input_is_refused_and_changes_nothing, |env: Env| async move {
    let v = vendor(&env, "acme").await;
    let _ = product_with_package(&env, &v, "com.acme.tool", "1.0.0").await;
    let (_, dev) = device(1);
    let (_, code) = create_code(&env, &v, json!({"product": "com.acme.tool"})).await;
    let (_, used_code) = create_code(&env, &v, json!({"product": "com.acme.tool"})).await;
    let (s, _) = call(&env.app, "POST", "/v1/activate", None, Some(json!({"code": used_code, "device": dev}))).await;
    assert_eq!(s, StatusCode::OK);
    let (old_id, old_code) =
        create_code(&env, &v, json!({"product": "com.acme.tool", "expires_at": sealrun_server::now() + 3600})).await;
    sqlx::query("UPDATE codes SET expires_at = 1 WHERE id = $1")
        .bind(old_id)
        .execute(env.state.svc.db.pool())
        .await
        .unwrap();
    let (rev_id, rev_code) = create_code(&env, &v, json!({"product": "com.acme.tool"})).await;
    let (s, _) = call(&env.app, "POST", &format!("/v1/codes/{rev_id}/revoke"), Some(&v.token), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let ledger_before = ledger_len(&env, &v.token).await;
    let (_, lic_before) = text(&env.app, "/v1/licenses/export", &v.token).await;
    let (_, dev2) = device(2);

    let raw = |method: &str, uri: &str, ct: Option<&str>, body: Vec<u8>| {
        let mut b = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {}", v.token));
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        b.body(Body::from(body)).unwrap()
    };
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            raw("POST", "/v1/licenses", Some("application/json"), b"{not json".to_vec()),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            raw("POST", "/v1/licenses", Some("application/json"), b"{\"product\":\"com.acme.tool\"}".to_vec()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_json",
        ),
        (
            raw(
                "POST",
                "/v1/licenses",
                Some("application/json"),
                json!({"product": "com.acme.tool", "device": dev, "licensee": "x", "colour": "red"})
                    .to_string()
                    .into_bytes(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_json",
        ),
        (raw("POST", "/v1/licenses", None, b"{}".to_vec()), StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_json"),
        (
            raw("POST", "/v1/licenses", Some("application/json"), vec![b' '; 200_000]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            raw(
                "POST",
                "/v1/licenses",
                Some("application/json"),
                json!({"product": "com.nope.x", "device": dev, "licensee": "x"}).to_string().into_bytes(),
            ),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            raw(
                "POST",
                "/v1/licenses",
                Some("application/json"),
                json!({"product": "com.acme.tool", "device": "SR1-NOPE", "licensee": "x"}).to_string().into_bytes(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            raw(
                "POST",
                "/v1/licenses",
                Some("application/json"),
                json!({"product": "com.acme.tool", "device": dev, "licensee": "x", "releases": "2.0.0..1.0.0"})
                    .to_string()
                    .into_bytes(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            raw(
                "POST",
                "/v1/licenses",
                Some("application/json"),
                json!({"product": "com.acme.tool", "device": dev, "licensee": "x", "releases": "9.0.0.."})
                    .to_string()
                    .into_bytes(),
            ),
            StatusCode::CONFLICT,
            "no_release",
        ),
        (raw("GET", "/v1/invoices/2026-13", None, vec![]), StatusCode::BAD_REQUEST, "invalid"),
        (
            {
                let mut r = raw(
                    "POST",
                    "/v1/licenses",
                    Some("application/json"),
                    json!({"product": "com.acme.tool", "device": dev, "licensee": "x"}).to_string().into_bytes(),
                );
                r.headers_mut().insert("idempotency-key", axum::http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
                r
            },
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            raw(
                "POST",
                "/v1/codes",
                Some("application/json"),
                json!({"product": "com.acme.tool", "max_activations": 0}).to_string().into_bytes(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (raw("GET", "/v1/no/such/thing", None, vec![]), StatusCode::NOT_FOUND, "not_found"),
    ];
    for (req, status, code_str) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (s, ct, p, _) = call_raw(&env.app, req).await;
        assert_eq!((s, p["code"].as_str()), (status, Some(code_str)), "{what}: {p}");
        assert_eq!(ct, "application/problem+json", "{what}");
    }
    // End-user calls.
    let act = |c: &str, d: &str| json!({"code": c, "device": d});
    for (body, status, c) in [
        (act("AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", &dev2), StatusCode::NOT_FOUND, "code_unknown"),
        (act("not a code", &dev2), StatusCode::NOT_FOUND, "code_unknown"),
        (act(&old_code, &dev2), StatusCode::GONE, "code_expired"),
        (act(&rev_code, &dev2), StatusCode::GONE, "code_revoked"),
        (act(&used_code, &dev2), StatusCode::CONFLICT, "code_exhausted"),
        (act(&code, "SR1-garbage"), StatusCode::BAD_REQUEST, "invalid"),
    ] {
        let (s, p) = call(&env.app, "POST", "/v1/activate", None, Some(body.clone())).await;
        assert_eq!((s, p["code"].as_str()), (status, Some(c)), "{body}: {p}");
    }
    let (s, p) = call(
        &env.app,
        "POST",
        "/v1/deactivate",
        None,
        Some(json!({"code": code, "device": dev2, "license_id": "00".repeat(16)})),
    )
    .await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_activated")));
    // Tokens.
    for token in [None, Some("srv_wrong"), Some(env.admin.as_str()), Some("")] {
        let (s, _) = call(&env.app, "GET", "/v1/products", token, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    let (s, _) = call(&env.app, "POST", "/v1/admin/vendors", Some(&v.token), Some(json!({"name": "evil"}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Nothing changed.
    assert_eq!(ledger_len(&env, &v.token).await, ledger_before);
    let (_, lic_after) = text(&env.app, "/v1/licenses/export", &v.token).await;
    assert_eq!(lic_before, lic_after);
});

both_backends!(concurrent_activations_stay_within_the_limit, |env: Env| async move {
    let v = vendor(&env, "acme").await;
    let _ = product_with_package(&env, &v, "com.acme.tool", "1.0.0").await;
    let (_, code) = create_code(&env, &v, json!({"product": "com.acme.tool", "max_activations": 5})).await;
    // 20 devices race for 5 activations; one device asks 5 times at once.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (app, code) = (env.app.clone(), code.clone());
        let (_, dev) = device(100 + i);
        tasks.push(tokio::spawn(async move {
            call(&app, "POST", "/v1/activate", None, Some(json!({"code": code, "device": dev}))).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (s, p) = t.await.unwrap();
        match s {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => assert_eq!(p["code"], "code_exhausted"),
            other => panic!("unexpected {other}: {p}"),
        }
    }
    assert_eq!(ok, 5);
    let (_, code2) = create_code(&env, &v, json!({"product": "com.acme.tool", "max_activations": 2})).await;
    let (_, dev) = device(999);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (app, code2, dev) = (env.app.clone(), code2.clone(), dev.clone());
        tasks.push(tokio::spawn(async move {
            call(&app, "POST", "/v1/activate", None, Some(json!({"code": code2, "device": dev}))).await
        }));
    }
    let mut licenses = std::collections::BTreeSet::new();
    for t in tasks {
        let (s, p) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{p}");
        licenses.insert(p["license_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(licenses.len(), 1, "one device, one license");
    let (_, codes) = call(&env.app, "GET", "/v1/codes", Some(&v.token), None).await;
    assert_eq!(codes["codes"][0]["used"], 5);
    assert_eq!(codes["codes"][1]["used"], 1);
    assert_eq!(ledger_len(&env, &v.token).await, 6);
});

// Issue 25, finding 4: eight deactivations of one activation at once end
// it once: one success, `used` down by one, one ledger entry, and the code
// still allows no more live activations than its limit. Ten rounds: the
// race is a race (before the fix it showed in about one round in three).
both_backends!(concurrent_deactivations_end_an_activation_once, |env: Env| async move {
    let v = vendor(&env, "acme").await;
    let _ = product_with_package(&env, &v, "com.acme.tool", "1.0.0").await;
    let (_, code) =
        create_code(&env, &v, json!({"product": "com.acme.tool", "max_activations": 2, "transfer_limit": 100})).await;
    let (_, keeper) = device(300);
    let (s, a) = call(&env.app, "POST", "/v1/activate", None, Some(json!({"code": code, "device": keeper}))).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    for round in 0..10u32 {
        let (_, dev) = device(301 + round);
        let (s, a) = call(&env.app, "POST", "/v1/activate", None, Some(json!({"code": code, "device": dev}))).await;
        assert_eq!(s, StatusCode::OK, "round {round}: {a}");
        let license_id = a["license_id"].as_str().unwrap().to_owned();
        let ledger_before = ledger_len(&env, &v.token).await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (app, body) = (env.app.clone(), json!({"code": code, "device": dev, "license_id": license_id}));
            tasks.push(tokio::spawn(async move { call(&app, "POST", "/v1/deactivate", None, Some(body)).await }));
        }
        let mut ok = 0;
        for t in tasks {
            let (s, p) = t.await.unwrap();
            match s {
                StatusCode::OK => ok += 1,
                StatusCode::NOT_FOUND | StatusCode::CONFLICT => {}
                other => panic!("unexpected {other}: {p}"),
            }
        }
        assert_eq!(ok, 1, "round {round}: one deactivation ended it");
        let (_, codes) = call(&env.app, "GET", "/v1/codes", Some(&v.token), None).await;
        assert_eq!(codes["codes"][0]["used"], 1, "round {round}: {codes}");
        assert_eq!(codes["codes"][0]["transfers"], i64::from(round) + 1, "round {round}: {codes}");
        assert_eq!(ledger_len(&env, &v.token).await, ledger_before + 1, "round {round}: one deactivation entry");
    }
    // Two more devices race for the one free activation: one gets it.
    let mut tasks = Vec::new();
    for i in 0..2 {
        let (app, code) = (env.app.clone(), code.clone());
        let (_, dev) = device(400 + i);
        tasks.push(tokio::spawn(async move {
            call(&app, "POST", "/v1/activate", None, Some(json!({"code": code, "device": dev}))).await.0
        }));
    }
    let mut got = 0;
    for t in tasks {
        got += usize::from(t.await.unwrap() == StatusCode::OK);
    }
    assert_eq!(got, 1, "never more live activations than the limit");
});

#[tokio::test]
async fn activation_attempts_are_rate_limited() {
    let limits =
        sealrun_server::api::Limits { per_address_per_minute: 100, per_code_per_minute: 2, behind_proxy: false };
    let env = env_with(Backend::Sqlite, limits).await.unwrap();
    let body = json!({"code": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "device": device(1).1});
    // The burst for one code is 2: the third wrong guess in a row is refused unseen.
    for expected in [StatusCode::NOT_FOUND, StatusCode::NOT_FOUND, StatusCode::TOO_MANY_REQUESTS] {
        let (s, _) = call(&env.app, "POST", "/v1/activate", None, Some(body.clone())).await;
        assert_eq!(s, expected);
    }
    // Another code from the same address still gets through.
    let other = json!({"code": "AAAAA-BBBBB-CCCCC-DDDDD-EEEE0", "device": device(1).1});
    assert_eq!(call(&env.app, "POST", "/v1/activate", None, Some(other)).await.0, StatusCode::NOT_FOUND);
    let (_, metrics) = text(&env.app, "/metrics", "").await;
    assert!(metrics.contains("sealrun_rate_limited_total 1"), "{metrics}");
    assert!(metrics.contains("sealrun_http_requests_total{route=\"/v1/activate\",status=\"429\"} 1"), "{metrics}");
}

/// Issue 25, finding 7: behind a proxy the key is the last hop over every
/// `X-Forwarded-For` line, so a client that sends its own lines (a new
/// forged address each time) ahead of the proxy's is still one client;
/// text that is no address makes no bucket; IPv6 addresses of one /64 are
/// one client.
#[tokio::test]
async fn forwarded_for_is_the_proxys_last_hop() {
    let limits =
        sealrun_server::api::Limits { per_address_per_minute: 2, per_code_per_minute: 1000, behind_proxy: true };
    let env = env_with(Backend::Sqlite, limits).await.unwrap();
    let attempt = |i: u32, lines: Vec<String>| {
        let body = json!({"code": format!("AAAAA-BBBBB-CCCCC-DDDDD-{:05}", i), "device": device(1).1});
        let mut b = Request::builder().method("POST").uri("/v1/activate").header("content-type", "application/json");
        for l in lines {
            b = b.header("x-forwarded-for", l);
        }
        b.body(Body::from(body.to_string())).unwrap()
    };
    // A client forging a new first line each time, the proxy appending the
    // real address on its own line: the third attempt is refused.
    let mut statuses = Vec::new();
    for i in 0..3 {
        let forged = format!("198.51.100.{i}");
        let (s, _, _, _) = call_raw(&env.app, attempt(i, vec![forged, "203.0.113.7".into()])).await;
        statuses.push(s);
    }
    assert_eq!(statuses, [StatusCode::NOT_FOUND, StatusCode::NOT_FOUND, StatusCode::TOO_MANY_REQUESTS]);
    // Another real client behind the proxy gets through.
    let (s, _, _, _) = call_raw(&env.app, attempt(10, vec!["203.0.113.8".into()])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Two addresses of one IPv6 /64 share a bucket.
    let v6 = |i: u32, a: &str| attempt(i, vec![format!("198.51.100.1, {a}")]);
    assert_eq!(call_raw(&env.app, v6(20, "2001:db8:1:2::1")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call_raw(&env.app, v6(21, "2001:db8:1:2::ffff")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call_raw(&env.app, v6(22, "2001:db8:1:2:abcd::9")).await.0, StatusCode::TOO_MANY_REQUESTS);
    // A hop written with a port is the same client.
    let (s, _, _, _) = call_raw(&env.app, attempt(50, vec!["203.0.113.9:5678".into()])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _, _) = call_raw(&env.app, attempt(51, vec!["203.0.113.9:6789".into()])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _, _) = call_raw(&env.app, attempt(52, vec!["203.0.113.9".into()])).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "with and without a port: one client");
    // Garbage in the header is no address: the proxy's own (the peer) counts.
    for i in 0..2 {
        let junk = format!("not-an-address-{i}-{}", "x".repeat(2000));
        assert_eq!(call_raw(&env.app, attempt(30 + i, vec![junk])).await.0, StatusCode::NOT_FOUND);
    }
    let junk = "still-not-an-address".to_owned();
    assert_eq!(call_raw(&env.app, attempt(40, vec![junk])).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let env = env(Backend::Sqlite).await.unwrap();
    let (s, h) = call(&env.app, "GET", "/healthz", None, None).await;
    assert_eq!((s, h["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, m) = text(&env.app, "/metrics", "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(m.contains("sealrun_http_requests_total{route=\"/healthz\",status=\"200\"} 1"), "{m}");
    let (s, doc) = call(&env.app, "GET", "/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["paths"]["/v1/activate"]["post"].is_object());
    assert!(doc["components"]["securitySchemes"]["vendor"].is_object());
}

/// docs/openapi.json is the served document (UPDATE_SNAPSHOTS=1 rewrites it).
#[test]
fn openapi_document_is_checked_in() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let served = sealrun_server::api::openapi_text();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(checked_in == served, "docs/openapi.json is out of date: run the tests with UPDATE_SNAPSHOTS=1");
}

both_backends!(concurrent_issuance_is_grouped_and_idempotent, |env: Env| async move {
    let v = vendor(&env, "acme").await;
    let _ = product_with_package(&env, &v, "com.acme.tool", "1.0.0").await;
    let (_, dev) = device(1);
    let issue = |key: String| {
        let (app, token, dev) = (env.app.clone(), v.token.clone(), dev.clone());
        tokio::spawn(async move {
            let req = Request::builder()
                .method("POST")
                .uri("/v1/licenses")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(Body::from(json!({"product": "com.acme.tool", "device": dev, "licensee": "Jo"}).to_string()))
                .unwrap();
            let (s, _, b, _) = call_raw(&app, req).await;
            (s, b["license_id"].as_str().unwrap_or_default().to_owned())
        })
    };
    // 40 different requests at once, each sent twice at once: 40 licenses.
    let mut tasks = Vec::new();
    for i in 0..40 {
        tasks.push(issue(format!("order-{i}")));
        tasks.push(issue(format!("order-{i}")));
    }
    let mut by_key = std::collections::BTreeMap::<usize, Vec<String>>::new();
    for (n, t) in tasks.into_iter().enumerate() {
        let (s, id) = t.await.unwrap();
        assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{s}");
        by_key.entry(n / 2).or_default().push(id);
    }
    for ids in by_key.values() {
        assert_eq!(ids[0], ids[1], "both sends of one request got the same license");
    }
    let (_, ledger) = text(&env.app, "/v1/ledger", &v.token).await;
    let entries = parse_ledger(&ledger);
    assert_eq!(entries.len(), 40);
    verify_chain(&entries).unwrap();
    let ids: std::collections::BTreeSet<String> = entries.iter().map(|e| hex::encode(e.fields.license_id)).collect();
    let answered: std::collections::BTreeSet<String> = by_key.values().map(|v| v[0].clone()).collect();
    assert_eq!(ids, answered);
});

#[tokio::test]
async fn product_page_does_not_echo_markup() {
    let env = env(Backend::Sqlite).await.unwrap();
    let req = Request::builder()
        .uri("/products/com.acme.tool")
        .header("host", "evil<script>alert(1)</script>")
        .body(Body::empty())
        .unwrap();
    let (s, ct, body, _) = call_raw(&env.app, req).await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/html"));
    let page = body.as_str().unwrap();
    assert!(
        !page.contains("<script>") && page.contains("sealrun install https://this-server/products/com.acme.tool"),
        "{page}"
    );
    let req = Request::builder()
        .uri("/products/com.acme.tool")
        .header("host", "licenses.example:8443")
        .body(Body::empty())
        .unwrap();
    let (_, _, body, _) = call_raw(&env.app, req).await;
    assert!(body.as_str().unwrap().contains("https://licenses.example:8443/products/com.acme.tool"));
}

both_backends!(floating_licenses_count_their_seats, |env: Env| async move {
    let acme = vendor(&env, "acme").await;
    let package = product_with_package(&env, &acme, "com.acme.tool", "1.0.0").await;
    let pkg = Package::parse(&package).unwrap();
    let (host_secret, host) = device(7);
    let (s, lic) = call(
        &env.app,
        "POST",
        "/v1/licenses",
        Some(&acme.token),
        Some(
            json!({"product": "com.acme.tool", "device": host, "floating": 5, "per_process": true, "licensee": "Site"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{lic}");
    let l = license_of(&lic);
    l.verify_signature(&acme.key.public()).unwrap();
    match l.terms.binding {
        sealrun_format::license::Binding::Floating { seats, unit, .. } => {
            assert_eq!((seats, unit), (5, sealrun_format::license::SeatUnit::Process))
        }
        other => panic!("not floating: {other:?}"),
    }
    // The license manager's host unwraps the key.
    l.unwrap_key(&pkg.manifest().key_id, &host_secret).unwrap();
    // The ledger records the seats, and the invoice bills them.
    let (_, ledger) = text(&env.app, "/v1/ledger", &acme.token).await;
    let entries = parse_ledger(&ledger);
    assert_eq!(entries.last().unwrap().fields.seats, 5);
    let (s, _) = call(
        &env.app,
        "PUT",
        "/v1/admin/vendors/acme/plan",
        Some(&env.admin),
        Some(json!({"currency": "EUR", "license_fee": 0, "seat_fee": 300, "free_licenses": 0})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let period = sealrun_server::billing::period_of(sealrun_server::now());
    let (_, inv) = call(&env.app, "GET", &format!("/v1/invoices/{period}"), Some(&acme.token), None).await;
    assert_eq!((inv["lines"][0]["seats"].as_u64(), inv["total"].as_u64()), (Some(5), Some(1500)), "{inv}");
    // Issue 25, finding 5: a dongle license's copies beyond the first are
    // billed as seats too (a count of 1024 cost one license fee).
    let (_, lab) = device(8);
    let (s, d) = call(&env.app, "POST", "/v1/dongles", Some(&acme.token), Some(json!({"device": lab}))).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let dongle = d["dongle_id"].as_str().unwrap().to_owned();
    let (s, lic) = call(
        &env.app,
        "POST",
        "/v1/licenses",
        Some(&acme.token),
        Some(json!({"product": "com.acme.tool", "dongle": dongle, "count": 4, "licensee": "Lab"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{lic}");
    let (_, ledger) = text(&env.app, "/v1/ledger", &acme.token).await;
    assert_eq!(parse_ledger(&ledger).last().unwrap().fields.seats, 3, "three copies beyond the first");
    let (_, inv) = call(&env.app, "GET", &format!("/v1/invoices/{period}"), Some(&acme.token), None).await;
    assert_eq!((inv["lines"][0]["seats"].as_u64(), inv["total"].as_u64()), (Some(8), Some(2400)), "{inv}");
    // Inconsistent requests are refused.
    for bad in [
        json!({"product": "com.acme.tool", "device": host, "floating": 0, "licensee": "Site"}),
        json!({"product": "com.acme.tool", "device": host, "per_process": true, "licensee": "Site"}),
        json!({"product": "com.acme.tool", "dongle": "00".repeat(16), "floating": 2, "count": 2, "licensee": "Site"}),
    ] {
        let (s, p) = call(&env.app, "POST", "/v1/licenses", Some(&acme.token), Some(bad.clone())).await;
        assert!(s.is_client_error(), "{bad}: {s} {p}");
    }
});

/// The operator key as `GET /v1/vendor` names it.
async fn operator_key(env: &Env, token: &str) -> sealrun_format::VendorPublicKey {
    let (_, me) = call(&env.app, "GET", "/v1/vendor", Some(token), None).await;
    let mut k = [0u8; 32];
    hex::decode_to_slice(me["operator_key"].as_str().unwrap(), &mut k).unwrap();
    sealrun_format::VendorPublicKey(k)
}

async fn issue_to(env: &Env, token: &str, n: u32) -> Value {
    let (s, lic) = call(
        &env.app,
        "POST",
        "/v1/licenses",
        Some(token),
        Some(json!({"product": "com.acme.tool", "device": device(n).1, "licensee": "Jo"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{lic}");
    lic
}

// Issue 25, finding 3: a plan change takes effect from a stated time, never
// backwards, and the invoice prices each part of the month by its plan.
// Finding 1: the invoice and the export's head are signed by the operator key.
both_backends!(plans_never_apply_backwards_and_invoices_are_signed, |env: Env| async move {
    let acme = vendor(&env, "acme").await;
    product_with_package(&env, &acme, "com.acme.tool", "1.0.0").await;
    let plan = |fee: u64| json!({"currency": "EUR", "license_fee": fee, "seat_fee": 0, "free_licenses": 0});
    let put = |from: i64, fee: u64| {
        let app = env.app.clone();
        let admin = env.admin.clone();
        async move {
            call(
                &app,
                "PUT",
                &format!("/v1/admin/vendors/acme/plan?effective_from={from}"),
                Some(&admin),
                Some(plan(fee)),
            )
            .await
        }
    };
    let (s, p) = put(sealrun_server::now() - 60, 1000).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("never backwards"), "{p}");
    let (s, p) = put(sealrun_server::now() + 1, 500).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["plans"].as_array().unwrap().len(), 2, "{p}");
    let from = p["plans"][1]["effective_from"].as_u64().unwrap();
    let (s, p) = put(from as i64, 700).await;
    assert!(s == StatusCode::BAD_REQUEST && p["detail"].as_str().unwrap().contains("after the last"), "{p}");
    let (s, p) = call(
        &env.app,
        "PUT",
        &format!("/v1/admin/vendors/acme/plan?effective_from={}", from + 5),
        Some(&env.admin),
        Some(json!({"currency": "USD", "license_fee": 1, "seat_fee": 0, "free_licenses": 0})),
    )
    .await;
    assert!(s == StatusCode::BAD_REQUEST && p["detail"].as_str().unwrap().contains("cannot change"), "{p}");

    // A license under the old (free) plan, then one under the new.
    let before = issue_to(&env, &acme.token, 1).await;
    assert_eq!(before["ledger_seq"], 1);
    while (sealrun_server::now() as u64) < from {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    issue_to(&env, &acme.token, 2).await;
    let period = sealrun_server::billing::period_of(sealrun_server::now());
    let (s, inv) = call(&env.app, "GET", &format!("/v1/invoices/{period}"), Some(&acme.token), None).await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    let segs = inv["plans"].as_array().unwrap();
    let ledger_at = {
        let (_, t) = text(&env.app, "/v1/ledger", &acme.token).await;
        serde_json::from_str::<Value>(t.lines().next().unwrap()).unwrap()["at"].as_u64().unwrap()
    };
    if ledger_at < from {
        // The usual case: the first license came before the change.
        assert_eq!(segs.len(), 2, "{inv}");
        assert_eq!(inv["total"], 500, "only the second license is priced by the new plan: {inv}");
    } else {
        // Both fell in the second after the change (a slow machine): both at the new price.
        assert_eq!(inv["total"], 1000, "{inv}");
    }

    // The invoice is signed over every field; an edit breaks the signature.
    let key = operator_key(&env, &acme.token).await;
    let parsed: sealrun_server::billing::Invoice = serde_json::from_value(inv.clone()).unwrap();
    let mut sig = [0u8; 64];
    hex::decode_to_slice(&parsed.signature, &mut sig).unwrap();
    parsed.statement().unwrap().verify(&key, &sig).unwrap();
    let mut edited = parsed.clone();
    edited.end = u64::MAX;
    assert!(edited.statement().unwrap().verify(&key, &sig).is_err());
    // So is the head that ends the export.
    let (_, export) = text(&env.app, "/v1/ledger", &acme.token).await;
    let head: sealrun_server::ledger::HeadLine = serde_json::from_str(export.lines().last().unwrap()).unwrap();
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&head.head.hash, &mut hash).unwrap();
    hex::decode_to_slice(&head.head.signature, &mut sig).unwrap();
    let signed =
        sealrun_format::ledger::ChainHead { vendor: "acme".into(), seq: 2, hash, signed_at: head.head.signed_at };
    signed.verify(&key, &sig).unwrap();
    assert_eq!(head.head.seq, 2);
});

// Issue 25, finding 6: an entry is stamped when it is appended under the
// head's lock, not when its license was built, and an invoice read while an
// append holds the lock waits for it, so no entry falls between two months.
both_backends!(entries_are_stamped_under_the_head_lock, |env: Env| async move {
    let acme = vendor(&env, "acme").await;
    product_with_package(&env, &acme, "com.acme.tool", "1.0.0").await;
    let id = env.state.svc.vendor_id("acme").await.unwrap();
    // Another writer holds the vendor's head, as a long append would. On
    // PostgreSQL it locks the row without writing a new version of it:
    // waiters behind a row that was updated each re-read the new version
    // when the holder commits and race for it (the issue lost that race in
    // one CI run), while waiters behind a row that is only locked queue in
    // order, which is what the test needs to know who goes first.
    let mut tx = env.state.svc.db.write().await.unwrap();
    let hold = match env.state.svc.db.backend() {
        sealrun_server::db::Backend::Postgres => "SELECT seq FROM ledger_heads WHERE vendor_id = $1 FOR UPDATE",
        _ => "UPDATE ledger_heads SET seq = seq WHERE vendor_id = $1",
    };
    sqlx::query(hold).bind(id).execute(tx.conn()).await.unwrap();
    let issue = {
        let (app, token) = (env.app.clone(), acme.token.clone());
        tokio::spawn(async move {
            call(
                &app,
                "POST",
                "/v1/licenses",
                Some(&token),
                Some(json!({"product": "com.acme.tool", "device": device(1).1, "licensee": "Jo"})),
            )
            .await
        })
    };
    // The issue must be waiting for the head before the invoice asks for
    // it: on PostgreSQL that is seen in pg_stat_activity (a fixed 700 ms
    // was too short once on a loaded 2-core machine, and the invoice got
    // the head first); SQLite's writers queue on one lock in order.
    let db = &env.state.svc.db;
    let waiting_on_locks = || async {
        let sql =
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()";
        let row = sqlx::query(sql).fetch_one(db.pool()).await.unwrap();
        sqlx::Row::get::<i64, _>(&row, 0)
    };
    let wait_for_waiters = |n: i64| async move {
        if db.backend() != sealrun_server::db::Backend::Postgres {
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            return;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while waiting_on_locks().await < n {
            assert!(std::time::Instant::now() < deadline, "nothing waited for the head");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    wait_for_waiters(1).await;
    let period = sealrun_server::billing::period_of(sealrun_server::now());
    let invoice = {
        let (app, token) = (env.app.clone(), acme.token.clone());
        tokio::spawn(async move { call(&app, "GET", &format!("/v1/invoices/{period}"), Some(&token), None).await })
    };
    wait_for_waiters(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(!issue.is_finished() && !invoice.is_finished(), "both wait for the head");
    let released = sealrun_server::now() as u64;
    tx.commit().await.unwrap();
    let (s, lic) = issue.await.unwrap();
    assert_eq!(s, StatusCode::CREATED, "{lic}");
    let (s, inv) = invoice.await.unwrap();
    assert_eq!(s, StatusCode::OK, "{inv}");
    assert_eq!(inv["ledger_seq"], 1, "the invoice waited for the append that held the head: {inv}");
    let (_, t) = text(&env.app, "/v1/ledger", &acme.token).await;
    let at = serde_json::from_str::<Value>(t.lines().next().unwrap()).unwrap()["at"].as_u64().unwrap();
    assert!(at >= released, "stamped at {at}, before the head was free at {released}");
});

/// A request body that sends what the test puts in, and ends when the
/// sender is dropped (an upload in progress).
struct Pending(tokio::sync::mpsc::Receiver<Result<axum::body::Bytes, std::io::Error>>);

impl futures_core::Stream for Pending {
    type Item = Result<axum::body::Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

type Upload = tokio::task::JoinHandle<(StatusCode, String, Value, axum::http::HeaderMap)>;

/// Starts an upload of `first` to `release` that stays open until the sender is dropped.
fn open_upload(
    env: &Env,
    token: &str,
    release: &str,
    first: &[u8],
) -> (tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>, Upload) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.try_send(Ok(axum::body::Bytes::copy_from_slice(first))).unwrap();
    let req = Request::builder()
        .method("PUT")
        .uri(format!("/v1/products/com.acme.tool/releases/{release}/package"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from_stream(Pending(rx)))
        .unwrap();
    let app = env.app.clone();
    (tx, tokio::spawn(async move { call_raw(&app, req).await }))
}

// Issue 25, finding 8: an upload is checked as it streams to disk (a wrong
// package stops at its header, while the rest is still on the way), and
// uploads in progress are bounded per vendor.
both_backends!(uploads_are_checked_as_they_stream_and_bounded, |env: Env| async move {
    let acme = vendor(&env, "acme").await;
    product_with_package(&env, &acme, "com.acme.tool", "1.0.0").await;
    let package = sealed_package(&env, &acme, "com.acme.tool", "1.0.0").await;
    let header_len = sealrun_format::package::Header::parse_prefix(&package).unwrap().as_bytes().len();

    let (tx1, first) = open_upload(&env, &acme.token, "1.0.0", &package[..100]);
    let (tx2, second) = open_upload(&env, &acme.token, "1.0.0", &package[..100]);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!first.is_finished() && !second.is_finished(), "both are taking their bodies");
    let (s, v) = upload(&env, &acme.token, "com.acme.tool", "1.0.0", package.clone()).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["code"], "too_many_uploads", "{v}");
    // Another vendor is not held up by acme's uploads.
    let other = vendor(&env, "other").await;
    product_with_package(&env, &other, "com.other.tool", "1.0.0").await;
    drop(tx1);
    let (s, _, v, _) = first.await.unwrap();
    assert_eq!(s, StatusCode::BAD_REQUEST, "a cut-short upload is refused: {v}");
    let (s, v) = upload(&env, &acme.token, "com.acme.tool", "1.0.0", package.clone()).await;
    assert_eq!(s, StatusCode::OK, "a slot was free again: {v}");
    drop(tx2);
    second.await.unwrap();

    // The 1.0.0 package sent as 2.0.0: refused once its header is in, the rest never sent.
    let (s, v) = call(
        &env.app,
        "POST",
        "/v1/products/com.acme.tool/releases",
        Some(&acme.token),
        Some(json!({"release": "2.0.0"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (tx, wrong) = open_upload(&env, &acme.token, "2.0.0", &package[..header_len + 10]);
    let (s, _, v, _) = tokio::time::timeout(std::time::Duration::from_secs(10), wrong)
        .await
        .expect("the answer comes before the upload ends")
        .unwrap();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("another release"), "{v}");
    drop(tx);

    // A flipped byte in the last chunk: refused when the upload ends, nothing stored.
    let mut bad = package.clone();
    let at = bad.len() - 70;
    bad[at] ^= 1;
    let (s, v) = upload(&env, &acme.token, "com.acme.tool", "1.0.0", bad).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let leftovers = std::fs::read_dir(env.dir.path().join("packages"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".upload-"))
        .count();
    assert_eq!(leftovers, 0, "refused uploads leave no temporary files");
});

/// Every operation the OpenAPI document marks as needing a token refuses a
/// request without one, with a made-up one, and (for operator routes) with
/// a vendor's: authentication is an extractor every such route takes, and
/// it runs before the body is read (the bodies here would not parse).
#[tokio::test]
async fn every_secured_route_refuses_a_missing_or_wrong_token() {
    let env = env(Backend::Sqlite).await.unwrap();
    let v = vendor(&env, "vendor-a").await;
    let (_, doc) = call(&env.app, "GET", "/v1/openapi.json", None, None).await;
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(security) = op["security"].as_array() else { continue };
            let admin_only = security.iter().all(|s| s.get("admin").is_some());
            let uri: String =
                path.split('/').map(|seg| if seg.starts_with('{') { "x" } else { seg }).collect::<Vec<_>>().join("/");
            let method = method.to_uppercase();
            let body = matches!(method.as_str(), "POST" | "PUT").then(|| json!({"not": "a valid body"}));
            let mut tokens = vec![None, Some("srv_0000000000000000000000000000000000000000000000")];
            if admin_only {
                tokens.push(Some(v.token.as_str()));
            }
            for token in tokens {
                let (s, _) = call(&env.app, &method, &uri, token, body.clone()).await;
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri} with {token:?}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 26, "only {checked} secured operations in the document");
}

// Issue 18: features with values and their own expiry, and meters, through
// a vendor's license request and through an activation code's template;
// codes stored before migration 0004 (names joined by commas) still give
// their features.
both_backends!(license_terms_of_version_2, |env: Env| async move {
    use sealrun_format::license::{Meter, MeterPeriod};
    let acme = vendor(&env, "acme").await;
    product_with_package(&env, &acme, "com.acme.tool", "1.0.0").await;
    let (_, dev) = device(1);
    let ends = sealrun_server::now() + 10 * 86_400;
    let body = json!({
        "product": "com.acme.tool", "device": dev, "licensee": "Jane",
        "features": ["pro", "seats-per-project=25"],
        "feature_expires": {"beta": ends},
        "meters": ["runs=500/month", "exports=1000"],
    });
    let (s, b) = call(&env.app, "POST", "/v1/licenses", Some(&acme.token), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let t = license_of(&b).terms;
    assert_eq!(t.format_version(), 2);
    assert_eq!(t.feature_names(), ["beta", "pro", "seats-per-project"]);
    assert_eq!(t.feature("beta").unwrap().expires, Some(ends as u64));
    assert_eq!(t.feature("seats-per-project").unwrap().value.as_deref(), Some("25"));
    assert_eq!(
        t.meters,
        [
            Meter { name: "exports".into(), limit: 1000, period: MeterPeriod::Life },
            Meter { name: "runs".into(), limit: 500, period: MeterPeriod::Month },
        ]
    );

    // Bad terms are refused with the field named, and nothing is issued.
    for (field, bad) in [
        ("features", json!({"features": ["Pro"]})),
        ("features", json!({"features": ["tier=\u{7}"]})),
        ("meters", json!({"meters": ["runs=0"]})),
        ("meters", json!({"meters": ["runs=5/week"]})),
        ("features", json!({"features": ["pro", "pro=2"]})),
        ("feature name", json!({"feature_expires": {"pro=2": ends}})),
        ("feature expiry", json!({"feature_expires": {"beta": 0}})),
    ] {
        let mut body = json!({"product": "com.acme.tool", "device": dev, "licensee": "Jane"});
        body.as_object_mut().unwrap().extend(bad.as_object().unwrap().clone());
        let (s, p) = call(&env.app, "POST", "/v1/licenses", Some(&acme.token), Some(body)).await;
        assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")), "{bad}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(field), "{bad}: {p}");
    }
    assert_eq!(ledger_len(&env, &acme.token).await, 1);

    // A code's template: the feature ends 7 days after each activation.
    let (id, code) = create_code(
        &env,
        &acme,
        json!({"product": "com.acme.tool", "features": ["tier=Gold, with support"], "feature_days": {"pro": 7},
               "meters": ["exports=50"]}),
    )
    .await;
    let (s, listed) = call(&env.app, "GET", "/v1/codes", Some(&acme.token), None).await;
    assert_eq!(s, StatusCode::OK);
    let row = listed["codes"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(row["features"], json!(["tier=Gold, with support"]));
    assert_eq!((&row["feature_days"], &row["meters"]), (&json!({"pro": 7}), &json!(["exports=50"])));
    let (_, dev_b) = device(2);
    let before = sealrun_server::now();
    let (s, a) = call(&env.app, "POST", "/v1/activate", None, Some(json!({"code": code, "device": dev_b}))).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let t = license_of(&a).terms;
    assert_eq!(t.feature("tier").unwrap().value.as_deref(), Some("Gold, with support"));
    let pro_ends = t.feature("pro").unwrap().expires.unwrap() as i64;
    assert!((before + 7 * 86_400..=sealrun_server::now() + 7 * 86_400).contains(&pro_ends), "{pro_ends}");
    assert_eq!(t.meter("exports").map(|m| m.limit), Some(50));
    assert_eq!(t.expires, None, "the license itself does not end with its feature");

    // A code with a bad template is refused.
    for bad in [json!({"feature_days": {"pro": 0}}), json!({"meters": ["x"]}), json!({"features": ["a", "a=1"]})] {
        let mut body = json!({"product": "com.acme.tool"});
        body.as_object_mut().unwrap().extend(bad.as_object().unwrap().clone());
        let (s, p) = call(&env.app, "POST", "/v1/codes", Some(&acme.token), Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {p}");
    }

    // A code as stored before migration 0004: names joined by commas.
    let (old_id, old_code) = create_code(&env, &acme, json!({"product": "com.acme.tool", "features": ["pro"]})).await;
    let mut tx = env.state.svc.db.write().await.unwrap();
    sqlx::query("UPDATE codes SET features = 'export,pro' WHERE id = $1")
        .bind(old_id)
        .execute(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (_, dev_c) = device(3);
    let (s, a) = call(&env.app, "POST", "/v1/activate", None, Some(json!({"code": old_code, "device": dev_c}))).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let t = license_of(&a).terms;
    assert_eq!((t.feature_names(), t.format_version()), (vec!["export", "pro"], 1));
});
