//! Crash safety of license issuance: `kill -9` the server while clients
//! issue licenses, restart it, let the clients retry what they never got an
//! answer for (same idempotency keys), and check the ledger: every license a
//! client received is in it exactly once, nothing else is, and the hash
//! chain verifies. On SQLite and on PostgreSQL.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealrun_format::device::DeviceSecret;
use sealrun_format::ledger::{EntryKind, LedgerEntry, verify_chain};
use sealrun_tests::World;
use sealrun_tests::server::{Server, certify_and_seal, fresh_postgres};
use serde_json::{Value, json};

/// Client threads issuing licenses at once.
const CLIENTS: usize = 8;
/// Licenses received before the kill (enough that some are in flight).
const BEFORE_KILL: usize = 150;

enum Outcome {
    Received(String),
    /// Sent, but no answer came (the server died): must be retried.
    Pending,
}

fn issue(agent: &ureq::Agent, url: &str, token: &str, key: &str, device: &str) -> Option<String> {
    let body = json!({ "product": "com.acme.hello", "device": device, "licensee": "Load" });
    let mut resp = agent
        .post(format!("{url}/v1/licenses"))
        .header("authorization", &format!("Bearer {token}"))
        .header("idempotency-key", key)
        .send_json(&body)
        .ok()?;
    let status = resp.status().as_u16();
    let v: Value = resp.body_mut().read_json().ok()?;
    assert!(status == 200 || status == 201, "unexpected {status}: {v}");
    Some(v["license_id"].as_str().expect("license_id").to_owned())
}

fn ledger(agent: &ureq::Agent, url: &str, token: &str) -> Vec<LedgerEntry> {
    let text = agent
        .get(format!("{url}/v1/ledger"))
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap();
    sealrun_sdk::ledger::parse_export(&text).expect("the export parses")
}

fn crash_under_load(database: Option<&str>) {
    let w = World::new();
    let mut srv = Server::init(&w.path().join("server"), database);
    let token = srv.vendor("acme");
    srv.start();
    let env = [("SEALSDK_SERVER", srv.url.as_str()), ("SEALSDK_TOKEN", token.as_str())];
    certify_and_seal(&w, &env, "hello", "com.acme.hello", &[]);
    let devices: Vec<String> = (0..32)
        .map(|i| {
            let s = DeviceSecret::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
            s.device_code(format!("load-machine-{i}-0123456789").as_bytes()).to_string()
        })
        .collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();

    let outcomes: Arc<Mutex<BTreeMap<String, Outcome>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let url = srv.url.clone();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (agent, url, token, devices, outcomes, stop) =
                (agent.clone(), url.clone(), token.clone(), devices.clone(), outcomes.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("client{t}-req{i}");
                    let got = issue(&agent, &url, &token, &key, &devices[i % devices.len()]);
                    let mut o = outcomes.lock().unwrap();
                    match got {
                        Some(id) => {
                            o.insert(key, Outcome::Received(id));
                        }
                        None => {
                            // The server is gone: this request may or may not have committed.
                            o.insert(key, Outcome::Pending);
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while outcomes.lock().unwrap().len() < BEFORE_KILL {
        assert!(Instant::now() < deadline, "the server issued too few licenses");
        std::thread::sleep(Duration::from_millis(5));
    }
    srv.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }

    srv.start();
    let mut outcomes = Arc::try_unwrap(outcomes).ok().unwrap().into_inner().unwrap();
    let pending: Vec<String> =
        outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Pending)).map(|(k, _)| k.clone()).collect();
    assert!(!pending.is_empty(), "every client was cut off mid-request");
    for key in &pending {
        let id = issue(&agent, &srv.url, &token, key, &devices[0]).expect("the restarted server answers");
        outcomes.insert(key.clone(), Outcome::Received(id));
    }
    // A retry of a request answered before the crash gets the same license.
    let (k, Outcome::Received(first)) = outcomes.iter().next().unwrap() else { unreachable!() };
    assert_eq!(&issue(&agent, &srv.url, &token, k, &devices[0]).unwrap(), first);

    let received: Vec<String> = outcomes
        .values()
        .map(|o| match o {
            Outcome::Received(id) => id.clone(),
            Outcome::Pending => unreachable!(),
        })
        .collect();
    let entries = ledger(&agent, &srv.url, &token);
    verify_chain(&entries).expect("the hash chain verifies after the crash");
    let in_ledger: Vec<String> = entries
        .iter()
        .filter(|e| e.fields.kind == EntryKind::LicenseIssued)
        .map(|e| hex::encode(e.fields.license_id))
        .collect();
    let ledger_set: BTreeSet<&String> = in_ledger.iter().collect();
    assert_eq!(ledger_set.len(), in_ledger.len(), "a license is in the ledger twice");
    let received_set: BTreeSet<&String> = received.iter().collect();
    assert_eq!(received_set.len(), received.len(), "two requests got the same license");
    assert_eq!(ledger_set, received_set, "the ledger and what clients received differ");
    eprintln!("crash test: {} licenses, {} in flight at the kill", received.len(), pending.len());
}

#[test]
fn kill_9_during_issuance_sqlite() {
    crash_under_load(None);
}

#[test]
fn kill_9_during_issuance_postgres() {
    if let Some(db) = fresh_postgres() {
        crash_under_load(Some(&db));
    }
}
