//! The daemon's state and its operations: checkout, heartbeat, release,
//! revoke and status. HTTP lives in `app.rs`; this is what it calls.
//!
//! Time: leases lapse by the daemon's monotonic clock, so changing the
//! host's wall clock neither frees nor extends a seat. After a restart
//! every stored lease lives for one full TTL from the restart, which is
//! later than any deadline its holder was given before (docs/floating.md).
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sealrun_format::device::DeviceCode;
use sealrun_format::lease::{
    LEASE_NONCE_LEN, LeaseId, LeaseRoot, LeaseSecret, Proof, ProofKey, check_proof, lend, lend_secret, prove,
};
use sealrun_format::{KeyId, UnixTime};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use zeroize::Zeroizing;

use crate::FloatdError;
use crate::config::Config;
use crate::licenses::{self, Served};
use crate::metrics::{Gauges, Metrics};
use crate::seats::{Checkout, EndReason, Holder, Lease, Pool, RenewError, Request};
use crate::store::Store;
use crate::usage::UsageLog;
use crate::wire::{self, CheckoutRequest, Granted, LeaseRequest, Queued, Refusal, Renewed};

/// How often lapsed leases are swept and renewals written.
pub const TICK: Duration = Duration::from_millis(500);
/// How often a dongle that holds a license is checked.
pub const DONGLE_CHECK: Duration = Duration::from_secs(5);

/// An answer: HTTP status and JSON body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: serde_json::Value,
}

impl Reply {
    fn ok(body: impl serde::Serialize) -> Reply {
        Reply { status: 200, body: serde_json::to_value(body).unwrap_or_default() }
    }

    /// A refusal with a machine code and a message for people.
    pub fn refuse(status: u16, error: &str, message: impl Into<String>) -> Reply {
        let r = Refusal { error: error.into(), message: message.into(), seats: None, since: None };
        Reply { status, body: serde_json::to_value(r).unwrap_or_default() }
    }
}

/// One served license and its seats.
struct Product {
    served: Served,
    /// False while its dongle is away: no seat is lent or renewed.
    dongle_ok: AtomicBool,
}

/// The running daemon.
pub struct Daemon {
    ttl: Duration,
    heartbeat: Duration,
    clock: Instant,
    products: Vec<Product>,
    pools: Mutex<Vec<Pool>>,
    changed: Notify,
    store: Store,
    usage: UsageLog,
    /// Counters.
    pub metrics: Metrics,
    admin_hash: [u8; 32],
    renewed: Mutex<Vec<(LeaseId, u64, u64, u64)>>,
    _lock: std::fs::File,
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// 16 bytes as 32 hex digits, or nothing.
fn parse_nonce(text: &str) -> Option<[u8; LEASE_NONCE_LEN]> {
    hex::decode(text).ok().and_then(|n| <[u8; LEASE_NONCE_LEN]>::try_from(n).ok())
}

fn wall() -> UnixTime {
    sealrun::license::clock::now()
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), FloatdError> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| FloatdError::Io {
        action: "cannot create",
        path: dir.to_owned(),
        source,
    })
}

/// Takes the state directory for this process: two daemons on one lease
/// table would each lend every seat.
fn lock_state_dir(config: &Config) -> Result<std::fs::File, FloatdError> {
    let path = config.state_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| FloatdError::Io { action: "cannot open", path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(FloatdError::Locked(config.state_dir.clone())),
        Err(std::fs::TryLockError::Error(source)) => Err(FloatdError::Io { action: "cannot lock", path, source }),
    }
}

/// The admin token: read from the state directory, or made there (0600)
/// on first start. Anything but 64 hex digits in the file is refused: an
/// empty token must never open the admin endpoints.
fn admin_token(config: &Config) -> Result<[u8; 32], FloatdError> {
    let path = config.admin_token_file();
    let valid = |t: &str| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit());
    match std::fs::read_to_string(&path) {
        Ok(t) if valid(t.trim()) => return Ok(hash(t.trim().as_bytes())),
        Ok(_) => {
            return Err(FloatdError::Config {
                path,
                problem:
                    "the admin token is not 64 hex digits (damaged?); remove the file and start again to make a new one"
                        .into(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(FloatdError::Io { action: "cannot read", path, source }),
    }
    let mut raw = Zeroizing::new([0u8; 32]);
    rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), raw.as_mut());
    let token = Zeroizing::new(hex::encode(raw.as_ref()));
    // Written whole to a temporary file, then renamed: a crash never leaves
    // a short token behind.
    sealrun_host::fs::write_atomic(&path, token.as_bytes(), 0o600, sealrun_host::fs::Durability::Synced)
        .map_err(|source| FloatdError::Io { action: "cannot write", path: path.clone(), source })?;
    Ok(hash(token.as_bytes()))
}

/// At most this many characters of what a client sent are echoed in
/// messages and the usage log.
const ECHO_LEN: usize = 64;

fn clip(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(ECHO_LEN).collect();
    if s.chars().count() > ECHO_LEN {
        out.push('…');
    }
    out
}

/// The device of the daemon's host (its key in the state directory).
pub fn host_device(config: &Config) -> Result<sealrun::license::device::Device, FloatdError> {
    create_private_dir(&config.state_dir)?;
    Ok(sealrun::license::device::load_or_create_at(config.device_key_file())?)
}

impl Daemon {
    /// Starts from `config`: takes the state directory, unwraps the
    /// licenses, opens the lease table and puts back the leases a previous
    /// run left.
    pub async fn start(config: &Config) -> Result<Daemon, FloatdError> {
        let device = host_device(config)?;
        Daemon::start_as(config, &device).await
    }

    /// [`Daemon::start`] as the host `device` (tests give one; `start` loads
    /// the host's from the state directory).
    pub async fn start_as(config: &Config, device: &sealrun::license::device::Device) -> Result<Daemon, FloatdError> {
        create_private_dir(&config.state_dir)?;
        let lock = lock_state_dir(config)?;
        let served = licenses::load(config, device)?;
        let store = Store::open(&config.database_file()).await?;
        let usage = UsageLog::open(&config.usage_log_file()).map_err(|source| FloatdError::Io {
            action: "cannot open",
            path: config.usage_log_file(),
            source,
        })?;
        let admin_hash = admin_token(config)?;
        let mut pools: Vec<Pool> = served.iter().map(|s| Pool::new(s.seats, s.unit)).collect();
        let clock = Instant::now();
        let ttl_ms = config.lease_ttl.as_millis() as u64;
        let mut dropped = Vec::new();
        for stored in store.all().await? {
            match served.iter().position(|s| s.product() == stored.product) {
                Some(i) => {
                    let mut lease = stored.lease;
                    lease.seat = pools[i].seat_for(lease.id, &lease.holder.device);
                    // Its holder may have been promised a longer lease time
                    // before a configuration change: honour the longer.
                    lease.expires = ttl_ms.max(lease.ttl);
                    usage.log(
                        "restore",
                        json!({"product": stored.product, "lease": lease.id.to_string(), "device": lease.holder.device.to_string()}),
                    );
                    pools[i].restore(lease);
                }
                None => {
                    tracing::warn!(product = %stored.product, lease = %stored.lease.id, "dropping a stored lease of a product no longer served");
                    dropped.push(stored.lease.id);
                }
            }
        }
        store.delete(&dropped).await?;
        for (s, p) in served.iter().zip(&pools) {
            tracing::info!(product = %s.product(), seats = s.seats, unit = s.unit.as_str(), restored = p.leases().len(), "serving");
        }
        let products = served.into_iter().map(|served| Product { served, dongle_ok: AtomicBool::new(true) }).collect();
        Ok(Daemon {
            ttl: config.lease_ttl,
            heartbeat: config.heartbeat,
            clock,
            products,
            pools: Mutex::new(pools),
            changed: Notify::new(),
            store,
            usage,
            metrics: Metrics::default(),
            admin_hash,
            renewed: Mutex::new(Vec::new()),
            _lock: lock,
        })
    }

    fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    fn pools(&self) -> std::sync::MutexGuard<'_, Vec<Pool>> {
        // A panic while holding the lock leaves the table as it was before
        // the operation that panicked: every operation mutates last.
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refuse_other(&self, status: u16, error: &str, message: impl Into<String>) -> Reply {
        Metrics::inc(&self.metrics.refused_other);
        let message = message.into();
        self.usage.log("refusal", json!({"error": error, "message": message}));
        Reply::refuse(status, error, message)
    }

    /// Why product `index` cannot lend or renew a seat at `now_wall`: its
    /// license is not valid then, or its dongle is away.
    fn not_lendable(&self, index: usize, now_wall: UnixTime) -> Option<Reply> {
        let p = &self.products[index];
        let terms = &p.served.license.terms;
        if now_wall < terms.not_before || terms.expires.is_some_and(|e| now_wall >= e) {
            let message =
                format!("the floating license for {} is not valid now (expired or not yet valid)", p.served.product());
            return Some(self.refuse_other(403, "license_not_valid", message));
        }
        if !p.dongle_ok.load(Ordering::SeqCst) {
            let message = "the license server's dongle is not attached; ask the site administrator";
            return Some(self.refuse_other(503, "unavailable", message));
        }
        None
    }

    /// `POST /v1/checkout`.
    pub async fn checkout(&self, req: CheckoutRequest) -> Reply {
        let Some(index) = self.products.iter().position(|p| p.served.product() == req.product) else {
            return self.refuse_other(
                404,
                "unknown_product",
                format!("this license server has no floating license for {:?}", clip(&req.product)),
            );
        };
        let product = &self.products[index];
        let served = &product.served;
        let key_id = match hex::decode(&req.key_id).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()) {
            Some(k) => KeyId(k),
            None => return self.refuse_other(400, "bad_request", "key_id is not 64 hex digits"),
        };
        let Some(key) = served.key(&key_id) else {
            return self.refuse_other(
                404,
                "not_covered",
                format!(
                    "the floating license for {} covers releases {}, and this package is another build or release",
                    req.product, served.license.terms.releases
                ),
            );
        };
        let nonce = match req.nonce.as_deref().map(parse_nonce) {
            Some(Some(n)) => n,
            Some(None) => return self.refuse_other(400, "bad_request", "nonce is not 32 hex digits"),
            None => {
                return self.refuse_other(
                    400,
                    wire::TOO_OLD,
                    format!(
                        "this sealrun is too old for this license server (it speaks floating protocol {}); update sealrun",
                        wire::PROTOCOL
                    ),
                );
            }
        };
        let Ok(device) = DeviceCode::from_str(&req.device) else {
            return self.refuse_other(400, "bad_request", "device is not a device code (sealrun id prints one)");
        };
        for (field, value) in [("host", &req.host), ("user", &req.user)] {
            if value.len() > wire::MAX_NAME_LEN || value.chars().any(char::is_control) {
                return self.refuse_other(
                    400,
                    "bad_request",
                    format!("{field} is longer than {} bytes or has control characters", wire::MAX_NAME_LEN),
                );
            }
        }
        let mut ticket = match req.ticket.as_deref().map(hex::decode) {
            None => None,
            Some(Ok(t)) if t.len() == 16 => <[u8; 16]>::try_from(t).ok(),
            Some(_) => return self.refuse_other(400, "bad_request", "ticket is not 32 hex digits"),
        };
        let holder = Holder { device, host: req.host.clone(), user: req.user.clone(), pid: req.pid };
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let id = LeaseId::generate(&mut rng);
        let secret = LeaseSecret::generate(&mut rng);
        let proof_key = LeaseRoot::derive(key, &served.license).proof_key(&id, &secret);
        let mut new_ticket = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut rng, &mut new_ticket);
        let wait = Duration::from_secs(req.wait_secs.min(wire::MAX_WAIT_POLL_SECS));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a seat freed in between wakes us.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            // Checked on every turn: a waiting request must not get a seat
            // the license or its dongle no longer allows.
            let now_wall = wall();
            if let Some(refused) = self.not_lendable(index, now_wall) {
                return refused;
            }
            let request = Request {
                id,
                proof_key: *proof_key.as_bytes(),
                holder: &holder,
                wait: !wait.is_zero(),
                ticket,
                new_ticket,
            };
            let (outcome, seats_in_use, replaced) = {
                let mut pools = self.pools();
                let pool = &mut pools[index];
                let o = pool.checkout(&request, self.now(), now_wall, self.ttl_ms());
                (o, pool.in_use(), pool.take_replaced())
            };
            match outcome {
                Checkout::Granted => {
                    let proven = (&secret, &proof_key, &nonce);
                    return self.grant(index, id, proven, key, &holder, seats_in_use, replaced).await;
                }
                Checkout::TooMany => {
                    return self.refuse_other(
                        429,
                        "too_many",
                        "this device holds as many leases as allowed, or the line is full; try again later",
                    );
                }
                Checkout::Full { since } => {
                    Metrics::inc(&self.metrics.refused_full);
                    self.usage.log(
                        "refusal",
                        json!({"error": "seats_in_use", "product": served.product(), "device": device.to_string(),
                               "host": req.host, "user": req.user}),
                    );
                    let all = if served.seats == 1 {
                        "the only seat".to_owned()
                    } else {
                        format!("all {} seats", served.seats)
                    };
                    let r = Refusal {
                        error: "seats_in_use".into(),
                        message: format!("{all} of {} are in use", req.product),
                        seats: Some(served.seats),
                        since: Some(since),
                    };
                    return Reply { status: 409, body: serde_json::to_value(r).unwrap_or_default() };
                }
                Checkout::Queued { ticket: t, position } => {
                    ticket = Some(t);
                    if tokio::time::timeout_at(deadline, changed).await.is_err() {
                        let q = Queued { ticket: hex::encode(t), position, seats: served.seats };
                        return Reply { status: 202, body: serde_json::to_value(q).unwrap_or_default() };
                    }
                }
            }
        }
    }

    /// Undoes a grant that cannot be answered: the new lease goes, and the
    /// unconfirmed leases it replaced come back with their seats (their
    /// holders may still run on them).
    fn withdraw(&self, index: usize, id: &LeaseId, replaced: Vec<Lease>) {
        let mut pools = self.pools();
        pools[index].forget(id);
        for lease in replaced {
            pools[index].restore(lease);
        }
        drop(pools);
        self.changed.notify_waiters();
    }

    /// Stores and answers a granted lease; `proven` is its secret, its
    /// proof key and the checkout's nonce; `replaced` the unconfirmed
    /// leases whose seat it took, whose rows go only once the new lease is
    /// stored (a crash in between leaves both, which delays a seat by a
    /// lease time at most; never neither, which could lend it twice).
    #[allow(clippy::too_many_arguments)]
    async fn grant(
        &self,
        index: usize,
        id: LeaseId,
        proven: (&LeaseSecret, &ProofKey, &[u8; LEASE_NONCE_LEN]),
        key: &sealrun_format::ContentKey,
        holder: &Holder,
        in_use: u32,
        replaced: Vec<Lease>,
    ) -> Reply {
        let served = &self.products[index].served;
        let product = served.product();
        let lease = self.pools()[index].get(&id).cloned();
        let stored = match &lease {
            Some(l) => self.store.insert(product, l).await,
            None => Ok(()),
        };
        // A revocation that came between the grant and the insert found no
        // row to mark: mark it now.
        if stored.is_ok() && self.pools()[index].get(&id).is_some_and(|l| l.revoked) {
            let _ = self.store.revoke(&id).await;
        }
        if let Err(e) = stored {
            // Not stored, not granted: a crash now must not forget a seat in use.
            tracing::error!(error = %e, "cannot store a lease");
            self.withdraw(index, &id, replaced);
            return self.refuse_other(
                503,
                "unavailable",
                "the license server cannot store leases right now; try again",
            );
        }
        let (secret, proof_key, nonce) = proven;
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let lent = lend(key, &served.license, &id, &holder.device, &mut rng)
            .and_then(|k| Ok((k, lend_secret(secret, &served.license, &id, &holder.device, &mut rng)?)));
        let (lent, lent_secret) = match lent {
            Ok(l) => l,
            Err(_) => {
                self.withdraw(index, &id, replaced);
                let _ = self.store.delete(&[id]).await;
                return self.refuse_other(400, "bad_request", "device holds no valid public key");
            }
        };
        if !replaced.is_empty() {
            let ids: Vec<LeaseId> = replaced.iter().map(|l| l.id).collect();
            if let Err(e) = self.store.delete(&ids).await {
                // The rows stay: after a restart they hold their seat one
                // lease time more, as a lease whose deletion failed does.
                tracing::error!(error = %e, "cannot delete replaced leases");
            }
            for lease in &replaced {
                self.ended(index, lease, EndReason::Replaced, in_use);
            }
        }
        Metrics::inc(&self.metrics.checkouts);
        tracing::info!(%product, lease = %id, host = %holder.host, user = %holder.user, in_use, "checkout");
        self.usage.log(
            "checkout",
            json!({"product": product, "lease": id.to_string(), "device": holder.device.to_string(),
                   "host": holder.host, "user": holder.user, "pid": holder.pid, "seats_in_use": in_use}),
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let (ttl_ms, renew_ms) = (self.ttl_ms(), self.heartbeat.as_millis() as u64);
        let proof = prove(proof_key, Proof::Granted { ttl_ms, renew_ms }, &id, nonce);
        Reply::ok(Granted {
            lease: id.to_string(),
            secret: b64.encode(lent_secret.to_bytes()),
            ttl_ms,
            renew_ms,
            license: b64.encode(&served.bytes),
            key: b64.encode(lent.to_bytes()),
            seats: served.seats,
            unit: served.unit.as_str().into(),
            proof: Some(hex::encode(proof)),
        })
    }

    fn parse_lease(&self, req: &LeaseRequest) -> Result<(LeaseId, [u8; LEASE_NONCE_LEN], Vec<u8>), Reply> {
        let id = LeaseId::from_str(&req.lease)
            .map_err(|_| self.refuse_other(400, "bad_request", "lease is not 32 hex digits"))?;
        let nonce = parse_nonce(&req.nonce)
            .ok_or_else(|| self.refuse_other(400, "bad_request", "nonce is not 32 hex digits"))?;
        let proof = hex::decode(&req.proof)
            .ok()
            .filter(|p| p.len() == 32)
            .ok_or_else(|| self.refuse_other(400, "bad_request", "proof is not 64 hex digits"))?;
        Ok((id, nonce, proof))
    }

    /// A proven request about a lease whose number was seen before.
    fn replayed(&self) -> Reply {
        self.refuse_other(
            409,
            "replayed",
            "this request was answered before (a replay); a launcher numbers each request afresh",
        )
    }

    fn unknown_lease(&self) -> Reply {
        self.refuse_other(
            404,
            "unknown_lease",
            "no such lease (it lapsed, or was never granted); check out a seat again",
        )
    }

    /// `POST /v1/heartbeat`.
    pub fn heartbeat(&self, req: LeaseRequest) -> Reply {
        let (id, nonce, proof) = match self.parse_lease(&req) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let seq = req.seq;
        let proven =
            |key: &[u8; 32]| check_proof(&ProofKey::from_bytes(key), Proof::Heartbeat { seq }, &id, &nonce, &proof);
        let (now, now_wall, ttl) = (self.now(), wall(), self.ttl_ms());
        let mut pools = self.pools();
        let Some(i) = pools.iter().position(|p| p.knows(&id)) else {
            drop(pools);
            return self.unknown_lease();
        };
        let served = &self.products[i].served;
        let product = served.product();
        // Neither a missing dongle nor a lapsed license renews anything: the
        // lease lapses at its old time.
        if let Some(refused) = self.not_lendable(i, now_wall) {
            return refused;
        }
        let renewed = pools[i].renew(&id, &proven, seq, now, now_wall, ttl);
        let key = pools[i].get(&id).map(|l| ProofKey::from_bytes(&l.proof_key));
        drop(pools);
        match (renewed, key) {
            (Ok(()), Some(key)) => {
                Metrics::inc(&self.metrics.renewals);
                self.renewed.lock().unwrap_or_else(|p| p.into_inner()).push((id, now_wall, ttl, seq));
                tracing::debug!(%product, lease = %id, "renewal");
                self.usage.log("renewal", json!({"product": product, "lease": id.to_string()}));
                let proof = prove(&key, Proof::Renewed { ttl_ms: ttl }, &id, &nonce);
                Reply::ok(Renewed { ttl_ms: ttl, proof: hex::encode(proof) })
            }
            (Err(RenewError::Revoked), _) => {
                self.refuse_other(410, "revoked", format!("the site administrator revoked this seat of {product}"))
            }
            (Err(RenewError::Replayed), _) => self.replayed(),
            _ => self.unknown_lease(),
        }
    }

    /// `POST /v1/release`.
    pub async fn release(&self, req: LeaseRequest) -> Reply {
        let (id, nonce, proof) = match self.parse_lease(&req) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let seq = req.seq;
        let proven =
            |key: &[u8; 32]| check_proof(&ProofKey::from_bytes(key), Proof::Release { seq }, &id, &nonce, &proof);
        let released = {
            let mut pools = self.pools();
            match pools.iter().position(|p| p.knows(&id)) {
                Some(i) => pools[i].release(&id, &proven, seq).map(|l| (i, l, pools[i].in_use())),
                None => Err(RenewError::Unknown),
            }
        };
        let (i, lease, in_use) = match released {
            Ok(r) => r,
            Err(RenewError::Replayed) => return self.replayed(),
            Err(_) => return self.unknown_lease(),
        };
        self.changed.notify_waiters();
        if let Err(e) = self.store.delete(&[id]).await {
            // The row stays: after a restart it holds its seat one TTL more.
            tracing::error!(error = %e, "cannot delete a released lease");
        }
        self.ended(i, &lease, EndReason::Released, in_use);
        Reply::ok(json!({"released": id.to_string()}))
    }

    fn ended(&self, product: usize, lease: &Lease, why: EndReason, in_use: u32) {
        let product = self.products[product].served.product();
        let (event, counter) = match why {
            EndReason::Released => ("release", &self.metrics.releases),
            EndReason::Lapsed => ("expiry", &self.metrics.expiries),
            EndReason::Replaced => ("replaced", &self.metrics.expiries),
        };
        Metrics::inc(counter);
        tracing::info!(%product, lease = %lease.id, host = %lease.holder.host, in_use, "{event}");
        self.usage.log(
            event,
            json!({"product": product, "lease": lease.id.to_string(), "device": lease.holder.device.to_string(),
                   "host": lease.holder.host, "user": lease.holder.user, "pid": lease.holder.pid, "seats_in_use": in_use}),
        );
    }

    /// Whether `token` is the admin token.
    pub fn is_admin(&self, token: &str) -> bool {
        hash(token.as_bytes()) == self.admin_hash
    }

    /// `POST /v1/admin/revoke` (the caller checked the admin token).
    pub async fn revoke(&self, lease: &str) -> Reply {
        let Ok(id) = LeaseId::from_str(lease) else {
            return self.refuse_other(400, "bad_request", "lease is not 32 hex digits");
        };
        let found = {
            let mut pools = self.pools();
            pools.iter_mut().enumerate().find_map(|(i, p)| p.revoke(&id).map(|l| (i, l.holder.clone(), l.expires)))
        };
        let Some((i, holder, expires)) = found else {
            return self.refuse_other(404, "unknown_lease", "no such lease; `sealrun-floatd status` lists them");
        };
        if let Err(e) = self.store.revoke(&id).await {
            // In force now, but a restart would forget it: say so.
            tracing::error!(error = %e, "cannot store a revocation");
            return self.refuse_other(
                503,
                "unavailable",
                "revoked until the daemon restarts, but it could not be stored; fix the database and revoke again",
            );
        }
        let product = self.products[i].served.product();
        Metrics::inc(&self.metrics.revocations);
        let returns_in = expires.saturating_sub(self.now());
        tracing::info!(%product, lease = %id, host = %holder.host, "revoked");
        self.usage.log(
            "revoke",
            json!({"product": product, "lease": id.to_string(), "device": holder.device.to_string(), "host": holder.host, "user": holder.user}),
        );
        Reply::ok(json!({"revoked": id.to_string(), "seat_returns_in_ms": returns_in}))
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> wire::Status {
        let pools = self.pools();
        let products = self
            .products
            .iter()
            .zip(pools.iter())
            .map(|(p, pool)| wire::ProductStatus {
                product: p.served.product().to_owned(),
                licensee: p.served.license.terms.licensee.clone(),
                seats: pool.seats(),
                unit: pool.unit().as_str().into(),
                in_use: pool.in_use(),
                queued: pool.queued(),
                expires: p.served.license.terms.expires,
                leases: pool
                    .leases()
                    .into_iter()
                    .map(|l| wire::LeaseStatus {
                        lease: l.id.to_string(),
                        device: l.holder.device.to_string(),
                        host: l.holder.host.clone(),
                        user: l.holder.user.clone(),
                        pid: l.holder.pid,
                        since: l.since,
                        last_heartbeat: l.last_heartbeat,
                        revoked: l.revoked,
                    })
                    .collect(),
            })
            .collect();
        wire::Status { version: env!("CARGO_PKG_VERSION").into(), products }
    }

    /// The metrics text.
    pub fn metrics_text(&self) -> String {
        let pools = self.pools();
        let gauges: Vec<Gauges<'_>> = self
            .products
            .iter()
            .zip(pools.iter())
            .map(|(p, pool)| Gauges {
                product: p.served.product(),
                seats: pool.seats(),
                in_use: pool.in_use(),
                queued: pool.queued(),
            })
            .collect();
        self.metrics.render(&gauges)
    }

    /// Sweeps lapsed leases and stale tickets, and writes renewals.
    pub async fn tick(&self) {
        let now = self.now();
        let mut lapsed = Vec::new();
        let mut line_changed = false;
        {
            let mut pools = self.pools();
            for (i, pool) in pools.iter_mut().enumerate() {
                let queued = pool.queued();
                for lease in pool.expire(now) {
                    lapsed.push((i, lease));
                }
                line_changed |= pool.queued() != queued;
                let in_use = pool.in_use();
                for (j, lease) in lapsed.iter().filter(|(j, _)| *j == i) {
                    self.ended(*j, lease, EndReason::Lapsed, in_use);
                }
            }
        }
        if !lapsed.is_empty() || line_changed {
            self.changed.notify_waiters();
        }
        let ids: Vec<LeaseId> = lapsed.iter().map(|(_, l)| l.id).collect();
        if let Err(e) = self.store.delete(&ids).await {
            tracing::error!(error = %e, "cannot delete lapsed leases");
        }
        let renewals = std::mem::take(&mut *self.renewed.lock().unwrap_or_else(|p| p.into_inner()));
        // Only the last renewal of each lease matters, and only for leases
        // still held.
        let mut last: std::collections::HashMap<LeaseId, (u64, u64, u64)> = std::collections::HashMap::new();
        for (id, at, ttl, seq) in renewals {
            let e = last.entry(id).or_insert((at, ttl, seq));
            *e = (at, ttl, e.2.max(seq));
        }
        let batch: Vec<(LeaseId, u64, u64, u64)> = last
            .into_iter()
            .filter(|(id, _)| !ids.contains(id))
            .map(|(id, (at, ttl, seq))| (id, at, ttl, seq))
            .collect();
        if let Err(e) = self.store.renewed(&batch).await {
            // Kept for the next tick: the stored request numbers are what
            // refuses a replay after a restart.
            tracing::error!(error = %e, "cannot record renewals; trying again at the next tick");
            self.renewed.lock().unwrap_or_else(|p| p.into_inner()).extend(batch);
        }
    }

    /// Checks the dongles that hold licenses (blocking: PKCS#11 calls).
    pub fn check_dongles(&self) {
        for p in &self.products {
            let Some(d) = &p.served.dongle else { continue };
            let ok = d.check().is_ok();
            let was = p.dongle_ok.swap(ok, Ordering::SeqCst);
            if was != ok {
                let product = p.served.product();
                if ok {
                    tracing::warn!(%product, dongle = %d.dongle, "the dongle is back: lending seats again");
                } else {
                    tracing::error!(%product, dongle = %d.dongle, "the dongle is not attached: no seat is lent or renewed until it is back");
                }
                self.usage.log("dongle", json!({"product": product, "attached": ok}));
            }
        }
    }

    /// Whether any license is held by a dongle.
    pub fn has_dongles(&self) -> bool {
        self.products.iter().any(|p| p.served.dongle.is_some())
    }

    /// Closes the lease table (after the last request).
    pub async fn close(&self) {
        self.tick().await;
        self.store.close().await;
    }
}
