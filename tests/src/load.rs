//! A load generator for the licensing server: closed-loop clients on
//! keep-alive connections, each sending its next request as soon as the
//! last one is answered, for a fixed time. Used by `sealrun-bench --only
//! server`, which runs it in its own process against a real server.
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealrun_format::device::DeviceSecret;
use sealrun_format::license::certify_issuer;
use sealrun_format::{VendorPublicKey, VendorSigningKey};
use serde_json::{Value, json};

/// Result of one load run.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Requests answered successfully.
    pub ok: usize,
    /// Requests that failed (status or transport).
    pub failed: usize,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

impl LoadResult {
    /// Successful requests per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .max_idle_connections_per_host(256)
        .build()
        .into()
}

fn post(agent: &ureq::Agent, url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut r = agent.post(url);
    if let Some(t) = token {
        r = r.header("authorization", &format!("Bearer {t}"));
    }
    match r.send_json(body) {
        Ok(mut resp) => {
            let s = resp.status().as_u16();
            (s, resp.body_mut().read_json().unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// A vendor set up for load: certified, with a product, a release and an
/// activation code with room for every activation the run can make.
pub struct Setup {
    /// Server base URL.
    pub url: String,
    /// Vendor token.
    pub token: String,
    /// Product id.
    pub product: String,
    /// An activation code.
    pub code: String,
}

/// Certifies the vendor's issuing key with a fresh vendor key and creates
/// `product` 1.0.0 and a code.
pub fn setup(url: &str, token: &str, product: &str) -> Setup {
    let a = agent();
    let me: Value = a
        .get(format!("{url}/v1/vendor"))
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .expect("GET /v1/vendor")
        .body_mut()
        .read_json()
        .expect("vendor JSON");
    let mut issuer = [0u8; 32];
    hex::decode_to_slice(me["issuer_key"].as_str().expect("issuer key"), &mut issuer).expect("hex");
    let vendor = VendorSigningKey::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let cert = certify_issuer(&vendor, VendorPublicKey(issuer), now + 86_400);
    let mut r = a
        .put(format!("{url}/v1/vendor/certificate"))
        .header("authorization", &format!("Bearer {token}"))
        .send_json(json!({"vendor_key": vendor.public().to_string(), "certificate": hex::encode(cert.to_bytes())}))
        .expect("certify");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.body_mut().read_to_string());
    let (s, v) = post(&a, &format!("{url}/v1/products"), Some(token), &json!({"product": product}));
    assert!(s == 201 || s == 409, "{v}");
    let (s, v) = post(&a, &format!("{url}/v1/products/{product}/releases"), Some(token), &json!({"release": "1.0.0"}));
    assert!(s == 201 || s == 200, "{v}");
    let (s, v) =
        post(&a, &format!("{url}/v1/codes"), Some(token), &json!({"product": product, "max_activations": 100_000}));
    assert_eq!(s, 201, "{v}");
    Setup {
        url: url.to_owned(),
        token: token.to_owned(),
        product: product.to_owned(),
        code: v["codes"][0]["code"].as_str().expect("code").to_owned(),
    }
}

/// `n` distinct device codes (made before the clock starts).
pub fn devices(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let s = DeviceSecret::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
            s.device_code(format!("load-device-{i:08}-0123456789").as_bytes()).to_string()
        })
        .collect()
}

/// What each request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `POST /v1/licenses` with an idempotency key (vendor issuance).
    Licenses,
    /// `POST /v1/activate` from a new device each time.
    Activations,
}

/// Runs `clients` closed-loop clients for `warmup` + `window`; only requests
/// that start inside the window count.
pub fn run(
    s: &Setup,
    kind: Kind,
    clients: usize,
    warmup: Duration,
    window: Duration,
    devices: Arc<Vec<String>>,
) -> LoadResult {
    let start = Instant::now();
    let (from, to) = (start + warmup, start + warmup + window);
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (url, token, product, code, devices) =
                (s.url.clone(), s.token.clone(), s.product.clone(), s.code.clone(), devices.clone());
            std::thread::spawn(move || {
                let a = agent();
                let mut lat = Vec::new();
                let mut failed = 0;
                let mut i = 0usize;
                loop {
                    let t0 = Instant::now();
                    if t0 >= to {
                        break;
                    }
                    // Client c takes devices c, c + clients, ... so no two clients share one.
                    let device = &devices[(c + i * clients) % devices.len()];
                    let (status, _) = match kind {
                        Kind::Licenses => {
                            let mut r = a
                                .post(format!("{url}/v1/licenses"))
                                .header("authorization", &format!("Bearer {token}"))
                                .header("idempotency-key", &format!("load-{c}-{i}-{}", t0.elapsed().as_nanos()));
                            r = r.header("content-type", "application/json");
                            match r.send_json(json!({"product": product, "device": device, "licensee": "Load"})) {
                                Ok(mut resp) => {
                                    let st = resp.status().as_u16();
                                    let _ = resp.body_mut().read_to_vec();
                                    (st, ())
                                }
                                Err(_) => (0, ()),
                            }
                        }
                        Kind::Activations => {
                            let (st, _) =
                                post(&a, &format!("{url}/v1/activate"), None, &json!({"code": code, "device": device}));
                            (st, ())
                        }
                    };
                    let took = t0.elapsed();
                    if t0 >= from {
                        if (200..300).contains(&status) {
                            lat.push(took);
                        } else {
                            failed += 1;
                        }
                    }
                    i += 1;
                }
                (lat, failed)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut failed = 0;
    for h in handles {
        let (l, f) = h.join().expect("client thread");
        lat.extend(l);
        failed += f;
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    LoadResult { ok: lat.len(), failed, elapsed: window, p50: pct(0.50), p99: pct(0.99) }
}
