//! Floating licenses, the launcher's side: find the site's license manager
//! (`sealrun-floatd`), check out a seat, keep it with heartbeats while the
//! app runs, and give it back when the app ends.
//!
//! The seat rule the launcher keeps: the app runs only while its lease is
//! certainly live at the daemon. The lease lasts one TTL from when the
//! daemon answered a renewal; the launcher counts from when it *sent* that
//! renewal, less a margin, so its deadline is always earlier. Past the
//! deadline the app is paused (or stopped with `--on-seat-loss stop`)
//! until a renewal gets through again.
pub(crate) use sealrun_wire::floating as wire;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use sealrun_format::device::{DeviceCode, DeviceSecret};
use sealrun_format::lease::{
    LEASE_NONCE_LEN, LeaseId, LeaseKey, LeaseRoot, Proof, ProofKey, check_proof, open_lent, open_lent_secret, prove,
};
use sealrun_format::license::{Binding, License};
use sealrun_format::package::Manifest;
use sealrun_format::{ContentKey, UnixTime};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{LaunchError, LicenseError, SeatError};
use crate::license::device::Device;
use crate::platform::boot_now;
use crate::platform::dirs;
use crate::watch;
use crate::watch::{Lost, Watch};

/// Environment variable naming the license server (`host:port`).
pub(crate) const SERVER_ENV: &str = "SEALRUN_LICENSE_SERVER";
/// Environment variable naming a PEM file of CA certificates to trust for
/// an `https://` license server.
pub(crate) const CA_ENV: &str = "SEALRUN_LICENSE_SERVER_CA";
/// File extension of the small file a site admin hands out.
pub(crate) const FLOATING_EXT: &str = "floating";
/// Largest floating file read: two or three lines of TOML.
const MAX_FLOATING_FILE_LEN: u64 = 16 * 1024;
/// Largest answer read from the daemon (a license is at most 16 KiB).
const MAX_ANSWER: u64 = 256 * 1024;
/// Time to connect to the daemon: it is on the LAN.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often to retry while the seat is lost (paused), at most.
const LOST_RETRY: Duration = Duration::from_secs(1);

/// Where the license server is and how to reach it.
#[derive(Debug, Clone)]
pub(crate) struct ServerSpec {
    /// Its base URL, `http://host:port` or `https://host:port`.
    pub url: String,
    /// CA certificates to trust for HTTPS.
    pub ca: Option<PathBuf>,
}

/// Reads `host:port`, `host` (the default port), or an `http(s)://` URL.
pub(crate) fn parse_server(text: &str, origin: &str, ca: Option<PathBuf>) -> Result<ServerSpec, LaunchError> {
    let t = text.trim().trim_end_matches('/');
    let bad = || {
        LaunchError::Usage(format!(
            "{origin}: {text:?} is not a license server address; it looks like floatd.example.lan:{} or https://floatd.example.lan:{}",
            wire::DEFAULT_PORT,
            wire::DEFAULT_PORT
        ))
    };
    let (scheme, rest) = match t.split_once("://") {
        Some((s @ ("http" | "https"), r)) => (s, r),
        Some(_) => return Err(bad()),
        None => ("http", t),
    };
    if rest.is_empty() || rest.contains(['/', ' ', '?', '#', '@']) {
        return Err(bad());
    }
    // A port is there if the text after the last ':' is digits (and, for
    // IPv6, outside the brackets).
    let has_port = rest.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (!h.starts_with('[') || h.ends_with(']'))
    });
    if let Some((_, p)) = rest.rsplit_once(':').filter(|_| has_port)
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(bad());
    }
    let host_port = if has_port { rest.to_owned() } else { format!("{rest}:{}", wire::DEFAULT_PORT) };
    Ok(ServerSpec { url: format!("{scheme}://{host_port}"), ca })
}

/// The floating file a site admin hands out (`*.floating`, TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FloatingFile {
    /// The license server, `host:port`.
    pub server: String,
    /// The product it is for; absent means every product.
    pub product: Option<String>,
    /// CA certificates for an `https://` server (relative to the file).
    pub ca: Option<PathBuf>,
}

impl FloatingFile {
    /// Reads and checks a floating file.
    pub(crate) fn read(path: &Path) -> Result<FloatingFile, LaunchError> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(LaunchError::io("cannot open", path))?;
        let mut text = String::new();
        f.take(MAX_FLOATING_FILE_LEN).read_to_string(&mut text).map_err(LaunchError::io("cannot read", path))?;
        let mut file: FloatingFile = toml::from_str(&text).map_err(|e| {
            LaunchError::Usage(format!(
                "{} is not a valid floating file: {} (it holds server = \"host:port\", and optionally product and ca)",
                path.display(),
                e.message().trim_end_matches('.')
            ))
        })?;
        if let Some(p) = &file.product
            && let Some(problem) = sealrun_format::text::product_id_problem(p)
        {
            return Err(LaunchError::Usage(format!("{}: product {p:?} {problem}", path.display())));
        }
        if let Some(ca) = &file.ca
            && ca.is_relative()
        {
            file.ca = Some(path.parent().unwrap_or(Path::new(".")).join(ca));
        }
        parse_server(&file.server, &path.display().to_string(), None)?;
        Ok(file)
    }

    /// The server it names, for `product`: a file for another product is
    /// refused, naming both.
    pub(crate) fn spec_for(&self, path: &Path, product: &str) -> Result<ServerSpec, LaunchError> {
        match &self.product {
            Some(p) if p != product => Err(LaunchError::Usage(format!(
                "{} is the floating file for {p}, and this package is {product}",
                path.display()
            ))),
            _ => self.spec(path),
        }
    }

    fn spec(&self, path: &Path) -> Result<ServerSpec, LaunchError> {
        parse_server(&self.server, &path.display().to_string(), self.ca.clone())
    }
}

/// Where installed floating files live: with the product's licenses, or in
/// `_floating` for files that name no product.
pub(crate) fn floating_dir(product: Option<&str>) -> PathBuf {
    dirs::licenses_dir().join(product.unwrap_or("_floating"))
}

fn floating_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == FLOATING_EXT))
        .collect();
    v.sort();
    v
}

/// The license server for `product`, if one is named: by `flag`
/// (`--license-server`), else `SEALRUN_LICENSE_SERVER`, else
/// `license_server` in the config file, else a floating file installed with
/// `sealrun license add`. The second value says whether the user named the
/// server for this run (flag or environment): then no local license is
/// tried first.
///
/// A floating file merely lying next to the package is not used: a
/// downloaded folder could bring one that sends the launch (with the user's
/// and host's names, and the grants the user made for the real product) to
/// a server of its own. Name it with `--license FILE.floating` or install it.
pub(crate) fn find_server(flag: Option<&str>, product: &str) -> Result<Option<(ServerSpec, bool)>, LaunchError> {
    let ca_env = std::env::var_os(CA_ENV).filter(|c| !c.is_empty()).map(PathBuf::from);
    if let Some(s) = flag {
        return Ok(Some((parse_server(s, "--license-server", ca_env)?, true)));
    }
    if let Some(s) = std::env::var(SERVER_ENV).ok().filter(|s| !s.trim().is_empty()) {
        return Ok(Some((parse_server(&s, SERVER_ENV, ca_env)?, true)));
    }
    let config = crate::config::Config::load()?;
    if let Some(s) = &config.license_server {
        let origin = format!("license_server in {}", crate::config::file().display());
        let ca = ca_env.or_else(|| config.license_server_ca.clone());
        return Ok(Some((parse_server(s, &origin, ca)?, false)));
    }
    let mut candidates = floating_files(&floating_dir(Some(product)));
    candidates.extend(floating_files(&floating_dir(None)));
    for path in candidates {
        if !path.is_file() {
            continue;
        }
        let file = FloatingFile::read(&path)?;
        if file.product.as_deref().is_none_or(|p| p == product) {
            let mut spec = file.spec(&path)?;
            if ca_env.is_some() {
                spec.ca = ca_env;
            }
            return Ok(Some((spec, false)));
        }
    }
    Ok(None)
}

/// Installs a floating file: checked, then copied into the license store.
pub(crate) fn install(path: &Path) -> Result<(PathBuf, FloatingFile), LaunchError> {
    let file = FloatingFile::read(path)?;
    let dir = floating_dir(file.product.as_deref());
    std::fs::create_dir_all(&dir).map_err(LaunchError::io("cannot create", &dir))?;
    let name = path.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("site.floating"));
    let dest = dir.join(name);
    // Written again from what was read: the CA path, relative to the
    // original file, is stored absolute.
    let quote = |v: &str| {
        let mut q = String::from("\"");
        for c in v.chars() {
            match c {
                '"' => q.push_str("\\\""),
                '\\' => q.push_str("\\\\"),
                c if c.is_control() => q.push_str(&format!("\\u{:04X}", c as u32)),
                c => q.push(c),
            }
        }
        q.push('"');
        q
    };
    let mut text = format!("server = {}\n", quote(&file.server));
    if let Some(p) = &file.product {
        text.push_str(&format!("product = {}\n", quote(p)));
    }
    if let Some(ca) = &file.ca {
        text.push_str(&format!("ca = {}\n", quote(&ca.display().to_string())));
    }
    std::fs::write(&dest, text).map_err(LaunchError::io("cannot write", &dest))?;
    Ok((dest, file))
}

/// How a request to the daemon went.
enum Answer {
    /// 2xx, with its status and body.
    Ok(u16, serde_json::Value),
    /// A refusal.
    Refused(wire::Refusal),
    /// Not reachable, or not a license server's answer.
    Unreachable(String),
}

/// A connection to one license server.
#[derive(Clone)]
struct Client {
    spec: ServerSpec,
    agent: ureq::Agent,
}

impl Client {
    fn new(spec: ServerSpec) -> Result<Client, LaunchError> {
        let mut config =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_connect(Some(CONNECT_TIMEOUT));
        if let Some(ca) = &spec.ca {
            let tls = sealrun_host::tls::tls_trusting(ca).map_err(|e| match e {
                sealrun_host::tls::CaFileError::Io(source) => {
                    LaunchError::Io { action: "cannot read", path: ca.clone(), source }
                }
                sealrun_host::tls::CaFileError::NoCertificate => {
                    LaunchError::Usage(format!("{} holds no PEM certificate", ca.display()))
                }
                sealrun_host::tls::CaFileError::NotAFile => LaunchError::Usage(format!(
                    "{} (the license server's CA file) is not a regular file of at most {} bytes",
                    ca.display(),
                    sealrun_host::tls::MAX_CA_FILE_LEN
                )),
            })?;
            config = config.tls_config(tls);
        }
        Ok(Client { spec, agent: config.build().into() })
    }

    fn post(&self, path: &str, body: &impl serde::Serialize, timeout: Duration) -> Answer {
        let url = format!("{}{path}", self.spec.url);
        let sent = self.agent.post(&url).config().timeout_global(Some(timeout)).build().send_json(body);
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => return Answer::Unreachable(e.to_string()),
        };
        let status = resp.status().as_u16();
        let text = match resp.body_mut().with_config().limit(MAX_ANSWER).read_to_string() {
            Ok(t) => t,
            Err(e) => return Answer::Unreachable(e.to_string()),
        };
        let not_ours = || Answer::Unreachable(format!("the answer (HTTP {status}) is not from sealrun-floatd"));
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_or_else(|_| not_ours(), |v| Answer::Ok(status, v));
        }
        // The message is the server's text, shown to the user: escaped.
        serde_json::from_str::<wire::Refusal>(&text).map_or_else(
            |_| not_ours(),
            |mut r| {
                r.message = sealrun_format::text::shown(&r.message).into_owned();
                Answer::Refused(r)
            },
        )
    }
}

/// A seat held: the lease, renewed by [`SeatWatch`] (or [`KeepAlive`]
/// while the app loads) and given back by [`Seat::release`] (also when the
/// process is stopped).
pub struct Seat {
    client: Client,
    product: String,
    checkout: wire::CheckoutRequest,
    license: License,
    device_secret: std::sync::Arc<crate::platform::locked_memory::SecretBox<DeviceSecret>>,
    device: DeviceCode,
    /// Derives the proof key of a new lease after a lapse (from the lent
    /// content key; the content key itself is not kept here).
    root: crate::platform::locked_memory::SecretBox<LeaseRoot>,
    state: Mutex<LeaseState>,
}

struct LeaseState {
    lease: LeaseId,
    /// The lease's proof key: every request is proven with it, and every
    /// answer that counts must be.
    proof_key: ProofKey,
    /// The number of the last request sent about this lease (the daemon
    /// refuses one it has seen).
    seq: u64,
    ttl: Duration,
    renew: Duration,
    /// The app may run until then, on [`boot_now`](crate::platform::boot_now)'s clock (the daemon's
    /// expiry, less the margin).
    deadline: Duration,
    /// When the next renewal is due, on [`boot_now`](crate::platform::boot_now)'s clock.
    next_renewal: Duration,
    released: bool,
}

/// The margin taken off every lease on the launcher's side: scheduling
/// delays and a clock that runs slightly fast must not let the app run
/// past the daemon's expiry.
fn margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(200))
}

/// The longest a heartbeat may take: a slow answer counts as none, well
/// before the lease could lapse.
fn heartbeat_timeout(ttl: Duration) -> Duration {
    (ttl / 6).clamp(Duration::from_millis(300), Duration::from_secs(5))
}

/// The longest lease time the launcher accepts from a server (as the
/// daemon's configuration allows).
const MAX_TTL: Duration = Duration::from_secs(86_400);

/// A seat checked out, with the license and content key it unlocked.
pub(crate) struct CheckedOut {
    /// The floating license (checked against the package).
    pub license: License,
    /// The content key, lent for this lease.
    pub key: ContentKey,
    /// The seat.
    pub seat: Arc<Seat>,
}

fn whoami() -> (String, String) {
    let host = sysinfo::System::host_name().unwrap_or_else(|_| "unknown".into());
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let clip = |s: String| s.chars().filter(|c| !c.is_control()).take(wire::MAX_NAME_LEN / 4).collect::<String>();
    (clip(host), clip(user))
}

fn refused(spec: &ServerSpec, r: &wire::Refusal) -> LaunchError {
    LaunchError::Seat(SeatError::Refused { server: spec.url.clone(), reason: r.message.clone() })
}

fn not_floatd(spec: &ServerSpec) -> LaunchError {
    LaunchError::Seat(SeatError::Unreachable {
        server: spec.url.clone(),
        reason: "its answer is not from sealrun-floatd".into(),
    })
}

/// Checks out a seat of `manifest`'s product for `device` from `spec`.
/// With `wait`, waits in line when every seat is taken, telling the user
/// through `on_queued(position, seats)`.
pub(crate) fn checkout(
    spec: &ServerSpec,
    manifest: &Manifest,
    device: &Device,
    now: UnixTime,
    wait: bool,
    on_queued: &mut dyn FnMut(u32, u32),
) -> Result<CheckedOut, LaunchError> {
    let client = Client::new(spec.clone())?;
    let (host, user) = whoami();
    let mut req = wire::CheckoutRequest {
        product: manifest.product.clone(),
        key_id: hex::encode(manifest.key_id.0),
        device: device.code.to_string(),
        host,
        user,
        pid: std::process::id(),
        wait_secs: if wait { wire::MAX_WAIT_POLL_SECS } else { 0 },
        ticket: None,
        nonce: None,
    };
    let timeout = Duration::from_secs(wire::MAX_WAIT_POLL_SECS + 10);
    loop {
        let sent = boot_now();
        let n = nonce();
        req.nonce = Some(hex::encode(n));
        match client.post("/v1/checkout", &req, timeout) {
            Answer::Ok(202, body) => {
                let q: wire::Queued = serde_json::from_value(body).map_err(|_| not_floatd(spec))?;
                on_queued(q.position, q.seats);
                req.ticket = Some(q.ticket);
            }
            Answer::Ok(_, body) => {
                let granted: wire::Granted = serde_json::from_value(body).map_err(|_| not_floatd(spec))?;
                let (license, key, lease, proof_key) = accept(spec, &granted, manifest, device, now, &n)?;
                let root = crate::platform::locked_memory::SecretBox::new(LeaseRoot::derive(&key, &license));
                let ttl = Duration::from_millis(granted.ttl_ms).min(MAX_TTL);
                let renew = Duration::from_millis(granted.renew_ms).min(ttl / 2);
                let state = LeaseState {
                    lease,
                    proof_key,
                    seq: 0,
                    ttl,
                    renew,
                    deadline: sent + ttl.saturating_sub(margin(ttl)),
                    next_renewal: boot_now() + renew,
                    released: false,
                };
                req.wait_secs = 0;
                req.ticket = None;
                let seat = Arc::new(Seat {
                    client,
                    product: manifest.product.clone(),
                    checkout: req,
                    license: license.clone(),
                    device_secret: device.secret.clone(),
                    device: device.code,
                    root,
                    state: Mutex::new(state),
                });
                return Ok(CheckedOut { license, key, seat });
            }
            Answer::Refused(r) if r.error == "seats_in_use" => {
                return Err(LaunchError::Seat(SeatError::InUse {
                    product: manifest.product.clone(),
                    seats: r.seats.unwrap_or(0),
                    since: r.since.unwrap_or(0),
                    server: spec.url.clone(),
                }));
            }
            Answer::Refused(r) => return Err(refused(spec, &r)),
            Answer::Unreachable(reason) => {
                return Err(LaunchError::Seat(SeatError::Unreachable { server: spec.url.clone(), reason }));
            }
        }
    }
}

/// Checks what the daemon sent: a floating license for this package,
/// signed under its vendor key and valid now, a key lent to this device
/// that opens, the lease's secret wrapped to this device, and a proof of
/// the grant's terms for the checkout's `nonce` under the proof key they
/// give (which a proxy, lacking the content key, cannot make).
fn accept(
    spec: &ServerSpec,
    granted: &wire::Granted,
    manifest: &Manifest,
    device: &Device,
    now: UnixTime,
    nonce: &[u8; LEASE_NONCE_LEN],
) -> Result<(License, ContentKey, LeaseId, ProofKey), LaunchError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = |what: String| {
        LaunchError::Seat(SeatError::Refused {
            server: spec.url.clone(),
            reason: format!("what it sent does not check out ({what}); it may not be a genuine license server"),
        })
    };
    let bytes = b64.decode(&granted.license).map_err(|_| bad("the license is not base64".into()))?;
    let license = License::parse(&bytes).map_err(|e| bad(e.to_string()))?;
    license.verify_signature(&manifest.vendor_key).map_err(|e| bad(e.to_string()))?;
    if !matches!(license.terms.binding, Binding::Floating { .. }) {
        return Err(bad("the license is not a floating license".into()));
    }
    license.check_covers(manifest, now).map_err(|e| match e {
        sealrun_format::Error::Expired(t) => LaunchError::License(LicenseError::NotValidNow {
            path: PathBuf::from(&spec.url),
            expired: true,
            when: t,
            now,
        }),
        sealrun_format::Error::NotYetValid(t) => LaunchError::License(LicenseError::NotValidNow {
            path: PathBuf::from(&spec.url),
            expired: false,
            when: t,
            now,
        }),
        other => bad(other.to_string()),
    })?;
    let lease: LeaseId = granted.lease.parse().map_err(|_| bad("the lease id".into()))?;
    let raw = Zeroizing::new(b64.decode(&granted.key).map_err(|_| bad("the key is not base64".into()))?);
    let lent = LeaseKey::from_bytes(&raw).map_err(|e| bad(e.to_string()))?;
    let key = open_lent(&lent, &license, &lease, &manifest.key_id, &device.secret, &device.code)
        .map_err(|_| bad("the lent key does not open on this device".into()))?;
    let raw = Zeroizing::new(b64.decode(&granted.secret).map_err(|_| bad("the secret is not base64".into()))?);
    let lent = LeaseKey::from_bytes(&raw).map_err(|e| bad(e.to_string()))?;
    let secret = open_lent_secret(&lent, &license, &lease, &device.secret, &device.code)
        .map_err(|_| bad("the lease secret does not open on this device".into()))?;
    let proof_key = LeaseRoot::derive(&key, &license).proof_key(&lease, &secret);
    check_grant(spec, granted, &proof_key, &lease, nonce)?;
    Ok((license, key, lease, proof_key))
}

/// Whether the grant's terms (lease time, renewal interval) are proven for
/// this checkout: a proxy that raised the lease time, swapped the lease
/// secret or replayed an older grant is caught here.
fn check_grant(
    spec: &ServerSpec,
    granted: &wire::Granted,
    proof_key: &ProofKey,
    lease: &LeaseId,
    nonce: &[u8; LEASE_NONCE_LEN],
) -> Result<(), LaunchError> {
    let Some(proof) = &granted.proof else {
        return Err(LaunchError::Seat(SeatError::Refused {
            server: spec.url.clone(),
            reason: format!(
                "it speaks an older floating protocol than {}; ask the site administrator to update sealrun-floatd",
                wire::PROTOCOL
            ),
        }));
    };
    let what = Proof::Granted { ttl_ms: granted.ttl_ms, renew_ms: granted.renew_ms };
    if hex::decode(proof).is_ok_and(|p| check_proof(proof_key, what, lease, nonce, &p)) {
        Ok(())
    } else {
        Err(LaunchError::Seat(SeatError::Refused {
            server: spec.url.clone(),
            reason: "what it sent does not check out (the grant's terms are not proven by the license server: \
                     something between this computer and the license server altered them)"
                .into(),
        }))
    }
}

/// How a renewal went.
enum Renewal {
    Renewed,
    Revoked,
    Expired,
    Full,
    Unreachable(String),
    Refused(String),
}

fn nonce() -> [u8; LEASE_NONCE_LEN] {
    let mut n = [0u8; LEASE_NONCE_LEN];
    rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut n);
    n
}

impl Seat {
    /// The license server's address.
    pub fn server(&self) -> &str {
        &self.client.spec.url
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A proven, numbered request about the current lease: `what` is
    /// [`Proof::Heartbeat`] or [`Proof::Release`] for the number.
    fn request(
        &self,
        what: fn(u64) -> Proof,
    ) -> (wire::LeaseRequest, LeaseId, ProofKey, [u8; LEASE_NONCE_LEN], Duration) {
        let mut s = self.state();
        s.seq += 1;
        let n = nonce();
        let proof = prove(&s.proof_key, what(s.seq), &s.lease, &n);
        let req = wire::LeaseRequest {
            lease: s.lease.to_string(),
            seq: s.seq,
            nonce: hex::encode(n),
            proof: hex::encode(proof),
        };
        (req, s.lease, ProofKey::from_bytes(s.proof_key.as_bytes()), n, s.ttl)
    }

    /// Renews the lease, or, if it lapsed at the daemon, checks out the
    /// seat again (never a second one: per computer it is the same seat).
    /// A renewal counts only if the answer proves it came from the daemon.
    fn renew(&self) -> Renewal {
        if self.license.terms.expires.is_some_and(|e| crate::license::clock::now() >= e) {
            return Renewal::Expired;
        }
        let (body, lease, key, n, ttl) = self.request(|seq| Proof::Heartbeat { seq });
        let sent = boot_now();
        match self.client.post("/v1/heartbeat", &body, heartbeat_timeout(ttl)) {
            Answer::Ok(_, v) => {
                let Ok(r) = serde_json::from_value::<wire::Renewed>(v) else {
                    return Renewal::Unreachable("the answer is not from sealrun-floatd".into());
                };
                let ttl_ms = r.ttl_ms;
                let proven =
                    hex::decode(&r.proof).is_ok_and(|p| check_proof(&key, Proof::Renewed { ttl_ms }, &lease, &n, &p));
                if !proven {
                    return Renewal::Unreachable(
                        "the answer to a renewal does not prove it came from the license server".into(),
                    );
                }
                let ttl = Duration::from_millis(ttl_ms).min(MAX_TTL);
                let mut s = self.state();
                s.ttl = ttl;
                s.renew = s.renew.min(ttl / 2);
                s.deadline = sent + ttl.saturating_sub(margin(ttl));
                s.next_renewal = boot_now() + s.renew;
                Renewal::Renewed
            }
            Answer::Refused(r) if r.error == "revoked" => Renewal::Revoked,
            Answer::Refused(r) if r.error == "license_not_valid" => Renewal::Expired,
            Answer::Refused(r) if r.error == "unknown_lease" => self.checkout_again(),
            Answer::Refused(r) => Renewal::Refused(r.message),
            Answer::Unreachable(why) => Renewal::Unreachable(why),
        }
    }

    fn checkout_again(&self) -> Renewal {
        let ttl = self.state().ttl;
        let sent = boot_now();
        let timeout = heartbeat_timeout(ttl).max(Duration::from_secs(2));
        let n = nonce();
        let mut req = self.checkout.clone();
        req.nonce = Some(hex::encode(n));
        match self.client.post("/v1/checkout", &req, timeout) {
            Answer::Ok(200, v) => {
                let Ok(g) = serde_json::from_value::<wire::Granted>(v) else {
                    return Renewal::Unreachable("the answer is not from sealrun-floatd".into());
                };
                let b64 = base64::engine::general_purpose::STANDARD;
                let opened = g.lease.parse::<LeaseId>().ok().and_then(|lease| {
                    let raw = Zeroizing::new(b64.decode(&g.secret).ok()?);
                    let lent = LeaseKey::from_bytes(&raw).ok()?;
                    let secret = open_lent_secret(&lent, &self.license, &lease, &self.device_secret, &self.device);
                    let proof_key = self.root.proof_key(&lease, &secret.ok()?);
                    check_grant(&self.client.spec, &g, &proof_key, &lease, &n).ok()?;
                    Some((lease, proof_key))
                });
                let Some((lease, proof_key)) = opened else {
                    return Renewal::Unreachable(
                        "the new lease does not check out (its terms are not proven by the license server)".into(),
                    );
                };
                let ttl = Duration::from_millis(g.ttl_ms).min(MAX_TTL);
                let mut s = self.state();
                s.lease = lease;
                s.proof_key = proof_key;
                s.seq = 0;
                s.ttl = ttl;
                s.renew = Duration::from_millis(g.renew_ms).min(ttl / 2);
                s.deadline = sent + ttl.saturating_sub(margin(ttl));
                s.next_renewal = boot_now() + s.renew;
                Renewal::Renewed
            }
            Answer::Ok(..) => Renewal::Full,
            Answer::Refused(r) if r.error == "seats_in_use" => Renewal::Full,
            Answer::Refused(r) if r.error == "license_not_valid" => Renewal::Expired,
            Answer::Refused(r) => Renewal::Refused(r.message),
            Answer::Unreachable(why) => Renewal::Unreachable(why),
        }
    }

    /// Renews now, before the app starts: after a long load the lease must
    /// be live again, and a checkout that waited in line counted its
    /// deadline from the start of the wait.
    pub fn ensure_live(&self) -> Result<(), LaunchError> {
        let outcome = self.renew();
        let deadline = self.state().deadline;
        let ttl = self.state().ttl;
        match outcome {
            Renewal::Renewed => Ok(()),
            // Still certainly live: the watcher keeps trying.
            Renewal::Unreachable(_) | Renewal::Refused(_) if boot_now() + heartbeat_timeout(ttl) < deadline => Ok(()),
            Renewal::Revoked => Err(LaunchError::Seat(SeatError::Lost {
                product: self.product.clone(),
                why: "was revoked by the site administrator".into(),
            })),
            Renewal::Expired => Err(LaunchError::Seat(SeatError::Lost {
                product: self.product.clone(),
                why: "ended: the floating license expired".into(),
            })),
            Renewal::Full => Err(LaunchError::Seat(SeatError::Lost {
                product: self.product.clone(),
                why: "lapsed while the app loaded, and every seat is taken now".into(),
            })),
            Renewal::Unreachable(reason) | Renewal::Refused(reason) => {
                Err(LaunchError::Seat(SeatError::Unreachable { server: self.server().to_owned(), reason }))
            }
        }
    }

    /// Gives the seat back (once; later calls do nothing). Best effort: a
    /// seat not given back returns when its lease lapses.
    pub fn release(&self) {
        {
            let mut s = self.state();
            if s.released {
                return;
            }
            s.released = true;
        }
        let (body, _, _, _, ttl) = self.request(|seq| Proof::Release { seq });
        if let Answer::Unreachable(why) = self.client.post("/v1/release", &body, heartbeat_timeout(ttl)) {
            tracing::debug!(%why, "could not give the seat back; it returns when the lease lapses");
        }
    }
}

/// Gives a seat back when dropped (a run that ends normally; a run that is
/// stopped gives it back through `runtime::runner::at_stop`).
pub(crate) struct SeatGuard(pub Arc<Seat>);

impl Drop for SeatGuard {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Renews a seat from a thread of its own while the app loads (a large
/// module may compile for longer than a lease lasts); stops when dropped.
pub(crate) struct KeepAlive {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeepAlive {
    /// Starts renewing `seat`.
    pub(crate) fn start(seat: Arc<Seat>) -> KeepAlive {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            loop {
                let wait = {
                    let s = seat.state();
                    s.next_renewal.saturating_sub(boot_now()).min(LOST_RETRY)
                };
                if !matches!(rx.recv_timeout(wait), Err(std::sync::mpsc::RecvTimeoutError::Timeout)) {
                    return;
                }
                if boot_now() >= seat.state().next_renewal {
                    // Failures are for `ensure_live` and the watcher to judge.
                    let _ = seat.renew();
                    let mut s = seat.state();
                    s.next_renewal = s.next_renewal.max(boot_now() + LOST_RETRY);
                }
            }
        });
        KeepAlive { stop: Some(tx), thread: Some(thread) }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What to do when the seat is lost while the app runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnSeatLoss {
    /// Pause the app until the seat is back (the default).
    Pause,
    /// Stop the app.
    Stop,
}

/// Keeps a seat while the app runs: renews it every renewal interval, and
/// reports it lost (the app is paused) once the deadline is near without a
/// renewal getting through. It looks at the clock every second, without
/// network traffic unless a renewal is due, so a computer waking from
/// suspend with a lapsed lease pauses the app within a second.
pub(crate) struct SeatWatch {
    seat: Arc<Seat>,
    on_loss: OnSeatLoss,
    /// Renewals are failing; the user was told once.
    trouble: bool,
    lost: bool,
}

impl SeatWatch {
    /// Watches `seat`.
    pub(crate) fn new(seat: Arc<Seat>, on_loss: OnSeatLoss) -> SeatWatch {
        SeatWatch { seat, on_loss, trouble: false, lost: false }
    }
}

impl Watch for SeatWatch {
    fn interval(&self) -> Duration {
        let s = self.seat.state();
        let now = boot_now();
        // Wake for the next renewal, and in any case just before the app
        // would have to pause, and at least every second.
        let until_renewal = s.next_renewal.saturating_sub(now);
        let until_pause = s.deadline.saturating_sub(now + heartbeat_timeout(s.ttl));
        LOST_RETRY.min(until_renewal).min(until_pause).max(Duration::from_millis(10))
    }

    fn grace(&self) -> Duration {
        match self.on_loss {
            OnSeatLoss::Pause => Duration::MAX,
            OnSeatLoss::Stop => Duration::ZERO,
        }
    }

    fn check(&mut self) -> Result<(), Lost> {
        let server = self.seat.server().to_owned();
        let (deadline, ttl, due) = {
            let s = self.seat.state();
            (s.deadline, s.ttl, s.next_renewal)
        };
        let now = boot_now();
        // A renewal that might answer after the deadline cannot be waited
        // for with the app running: pause first, then keep trying.
        if !self.lost && now + heartbeat_timeout(ttl) >= deadline {
            self.lost = true;
            return Err(Lost::Away(format!("the license server {server} did not renew the seat in time")));
        }
        if !self.lost && !self.trouble && now < due {
            return Ok(());
        }
        let outcome = self.seat.renew();
        match outcome {
            Renewal::Renewed => {
                if self.trouble && !self.lost {
                    watch::say(&format!("the license server {server} answers again"));
                }
                self.trouble = false;
                self.lost = false;
                Ok(())
            }
            Renewal::Revoked => Err(Lost::Gone("was revoked by the site administrator".into())),
            Renewal::Expired => Err(Lost::Gone("ended: the floating license expired".into())),
            Renewal::Full | Renewal::Unreachable(_) | Renewal::Refused(_) if self.lost => {
                Err(Lost::Away(describe(&outcome, &server, &self.seat.product)))
            }
            Renewal::Full => {
                self.lost = true;
                Err(Lost::Away(describe(&outcome, &server, &self.seat.product)))
            }
            Renewal::Unreachable(_) | Renewal::Refused(_) => {
                if !self.trouble {
                    self.trouble = true;
                    let left = deadline.saturating_sub(boot_now());
                    watch::say(&format!(
                        "cannot renew the seat with the license server {server} ({}); the app keeps running for up to {} s while it retries",
                        describe(&outcome, &server, &self.seat.product),
                        left.as_secs()
                    ));
                }
                Ok(())
            }
        }
    }

    fn paused(&self, why: &str) -> String {
        format!(
            "the app is paused: {why}. It resumes by itself when the seat is back (Ctrl-C ends it; --on-seat-loss stop stops instead of pausing)."
        )
    }

    fn resumed(&self) -> String {
        format!("the seat of {} is back; the app resumes", self.seat.product)
    }

    fn give_up(&self, why: &str) -> LaunchError {
        let why = if why.starts_with("was ") || why.starts_with("ended") {
            why.to_owned()
        } else {
            format!("was lost: {why}")
        };
        LaunchError::Seat(SeatError::Lost { product: self.seat.product.clone(), why })
    }
}

fn describe(r: &Renewal, server: &str, product: &str) -> String {
    match r {
        Renewal::Full => format!("every seat of {product} is taken now; waiting for one"),
        Renewal::Unreachable(why) => format!("the license server {server} cannot be reached: {why}"),
        Renewal::Refused(why) => format!("the license server {server} refused: {why}"),
        Renewal::Renewed => "renewed".into(),
        Renewal::Revoked => "revoked".into(),
        Renewal::Expired => "the floating license expired".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        let p = |s: &str| parse_server(s, "test", None).map(|s| s.url);
        assert_eq!(p("floatd.lan").unwrap(), format!("http://floatd.lan:{}", wire::DEFAULT_PORT));
        assert_eq!(p("floatd.lan:9000").unwrap(), "http://floatd.lan:9000");
        assert_eq!(p("https://floatd.lan:9000/").unwrap(), "https://floatd.lan:9000");
        assert_eq!(p("127.0.0.1:1").unwrap(), "http://127.0.0.1:1");
        assert_eq!(p("[::1]:27580").unwrap(), "http://[::1]:27580");
        assert_eq!(p("[::1]").unwrap(), format!("http://[::1]:{}", wire::DEFAULT_PORT));
        for bad in ["", "ftp://x", "x:0", "x:99999", "a b", "x/y", "user@x"] {
            let e = p(bad).unwrap_err().to_string();
            assert!(e.contains("not a license server address"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_launcher_deadline_is_inside_the_lease() {
        for ttl in [2, 3, 30, 3600].map(Duration::from_secs) {
            let m = margin(ttl);
            assert!(m < ttl / 2 && m >= Duration::from_millis(200));
            assert!(heartbeat_timeout(ttl) < ttl / 3, "a heartbeat can time out and be retried before the deadline");
        }
    }
}
