//! A load run against a real `sealrun-floatd`: 1,000 simulated clients,
//! each with a device of its own, check out seats, renew them by heartbeat,
//! and give them back and check out again (churn), from a pool of worker
//! threads on keep-alive connections. A sampler asks the daemon for its seat
//! count (the `/metrics` gauge) every 20 ms: it must never exceed N.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sealrun_format::KeyId;
use sealrun_format::device::{DeviceCode, DeviceSecret};
use sealrun_format::lease::{LeaseId, LeaseKey, LeaseRoot, Proof, ProofKey, open_lent, open_lent_secret, prove};
use sealrun_format::license::License;
use serde_json::{Value, json};

/// One phase's figures.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Requests answered as intended (granted, renewed, released).
    pub ok: usize,
    /// Checkouts refused because every seat was taken.
    pub full: usize,
    /// Anything else (errors, transport failures).
    pub failed: usize,
    /// The phase's length.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

impl Phase {
    /// Requests (of any outcome but failure) per second.
    pub fn per_second(&self) -> f64 {
        (self.ok + self.full) as f64 / self.elapsed.as_secs_f64()
    }
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every client checks out once (more clients than seats).
    pub checkout: Phase,
    /// Holders renew their leases.
    pub heartbeat: Phase,
    /// Holders release and check out again, while others try to get in.
    pub churn: Phase,
    /// The most seats the daemon reported in use at any sample.
    pub max_in_use: u64,
    /// Status samples taken.
    pub samples: u64,
}

struct Client {
    secret: DeviceSecret,
    code: DeviceCode,
    /// The lease held: its id, proof key and the last request number.
    lease: Option<(LeaseId, ProofKey, u64)>,
}

impl Client {
    /// A heartbeat or release body (`what` for the next request number),
    /// proven with the lease's proof key.
    fn proven(&mut self, what: fn(u64) -> Proof) -> Value {
        let (id, key, seq) = self.lease.as_mut().expect("a lease");
        *seq += 1;
        let mut nonce = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut nonce);
        let proof = prove(key, what(*seq), id, &nonce);
        json!({"lease": id.to_string(), "seq": *seq, "nonce": hex::encode(nonce), "proof": hex::encode(proof)})
    }

    /// Takes the lease a checkout granted (for the package's key `key_id`).
    fn take(&mut self, v: &Value, key_id: &KeyId) -> bool {
        let b64 = base64::engine::general_purpose::STANDARD;
        let got = (|| {
            let license = License::parse(&b64.decode(v["license"].as_str()?).ok()?).ok()?;
            let lease: LeaseId = v["lease"].as_str()?.parse().ok()?;
            let lent = LeaseKey::from_bytes(&b64.decode(v["key"].as_str()?).ok()?).ok()?;
            let key = open_lent(&lent, &license, &lease, key_id, &self.secret, &self.code).ok()?;
            let lent = LeaseKey::from_bytes(&b64.decode(v["secret"].as_str()?).ok()?).ok()?;
            let secret = open_lent_secret(&lent, &license, &lease, &self.secret, &self.code).ok()?;
            Some((lease, LeaseRoot::derive(&key, &license).proof_key(&lease, &secret), 0))
        })();
        let ok = got.is_some();
        self.lease = got;
        ok
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .max_idle_connections_per_host(64)
        .build()
        .into()
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    match agent.post(url).send_json(body) {
        Ok(mut r) => (r.status().as_u16(), r.body_mut().read_json().unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[derive(Clone, Copy, PartialEq)]
enum Step {
    Checkout,
    Heartbeat,
    Churn,
}

/// Runs the three phases against the daemon at `url` lending `product`
/// (whose package has content key id `key_id`, hex), with `clients`
/// simulated clients on `workers` threads, each timed phase `window` long.
pub fn run(url: &str, product: &str, key_id: &str, clients: usize, workers: usize, window: Duration) -> Report {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let all: Vec<Client> = (0..clients)
        .map(|i| {
            let secret = DeviceSecret::generate(&mut rng);
            let code = secret.device_code(format!("load-{i}").as_bytes());
            Client { secret, code, lease: None }
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let max_in_use = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (url, stop, max_in_use, samples) = (url.to_owned(), stop.clone(), max_in_use.clone(), samples.clone());
        std::thread::spawn(move || {
            let a = agent();
            while !stop.load(Ordering::Relaxed) {
                // The metrics' gauge: computed under the seat table's lock,
                // and cheap enough to ask for often (the JSON status lists
                // every lease).
                if let Ok(mut r) = a.get(&format!("{url}/metrics")).call()
                    && let Ok(text) = r.body_mut().read_to_string()
                    && let Some(n) = text
                        .lines()
                        .find_map(|l| l.strip_prefix("sealrun_floatd_seats_in_use{"))
                        .and_then(|l| l.rsplit_once(' '))
                        .and_then(|(_, n)| n.trim().parse::<u64>().ok())
                {
                    max_in_use.fetch_max(n, Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Clients are dealt to workers; each worker drives its own in turn.
    let mut shards: Vec<Vec<Client>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, c) in all.into_iter().enumerate() {
        shards[i % workers].push(c);
    }
    let mut phases = Vec::new();
    for step in [Step::Checkout, Step::Heartbeat, Step::Churn] {
        let started = Instant::now();
        let handles: Vec<_> = shards
            .drain(..)
            .map(|mut shard| {
                let (url, product, key_id) = (url.to_owned(), product.to_owned(), key_id.to_owned());
                std::thread::spawn(move || {
                    let a = agent();
                    let key = KeyId(
                        hex::decode(&key_id).ok().and_then(|k| k.try_into().ok()).expect("key_id is 64 hex digits"),
                    );
                    let (mut lat, mut ok, mut full, mut failed) = (Vec::new(), 0, 0, 0);
                    let checkout = |a: &ureq::Agent, c: &Client| {
                        post(
                            a,
                            &format!("{url}/v1/checkout"),
                            &json!({"product": product, "key_id": key_id, "device": c.code.to_string(),
                                    "host": "load", "user": "load", "pid": 1, "nonce": hex::encode([1u8; 16])}),
                        )
                    };
                    let deadline = Instant::now() + window;
                    let mut i = 0;
                    loop {
                        if step == Step::Checkout {
                            if i == shard.len() {
                                break;
                            }
                        } else if Instant::now() >= deadline || shard.is_empty() {
                            break;
                        }
                        let n = shard.len();
                        let c = &mut shard[i % n];
                        i += 1;
                        let t = Instant::now();
                        let result = match (step, &c.lease) {
                            (Step::Heartbeat, None) => continue,
                            (Step::Heartbeat, Some(_)) => {
                                post(&a, &format!("{url}/v1/heartbeat"), &c.proven(|seq| Proof::Heartbeat { seq })).0
                                    == 200
                            }
                            (Step::Churn, Some(_)) => {
                                let released =
                                    post(&a, &format!("{url}/v1/release"), &c.proven(|seq| Proof::Release { seq })).0
                                        == 200;
                                if released {
                                    c.lease = None;
                                }
                                released
                            }
                            (_, None) | (Step::Checkout, Some(_)) => {
                                let (status, v) = checkout(&a, c);
                                match status {
                                    200 => c.take(&v, &key),
                                    409 => {
                                        full += 1;
                                        lat.push(t.elapsed());
                                        continue;
                                    }
                                    _ => false,
                                }
                            }
                        };
                        lat.push(t.elapsed());
                        if result {
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    (shard, lat, ok, full, failed)
                })
            })
            .collect();
        let (mut lat, mut ok, mut full, mut failed) = (Vec::new(), 0, 0, 0);
        for h in handles {
            let (shard, l, o, f, e) = h.join().expect("worker");
            shards.push(shard);
            lat.extend(l);
            ok += o;
            full += f;
            failed += e;
        }
        let elapsed = started.elapsed();
        lat.sort();
        phases.push(Phase { ok, full, failed, elapsed, p50: percentile(&lat, 0.5), p99: percentile(&lat, 0.99) });
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let mut p = phases.into_iter();
    Report {
        checkout: p.next().expect("three phases"),
        heartbeat: p.next().expect("three phases"),
        churn: p.next().expect("three phases"),
        max_in_use: max_in_use.load(Ordering::Relaxed),
        samples: samples.load(Ordering::Relaxed),
    }
}
