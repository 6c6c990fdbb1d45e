//! The floating-license protocol between `sealrun` and `sealrun-floatd`:
//! JSON over HTTP (optionally HTTPS). docs/floating.md describes it.
//!
//! Every key the daemon sends is wrapped to the one device that asked
//! (see `sealrun_format::lease`), so the transport needs no secrecy for
//! keys. Every term the launcher acts on (the lease time, the renewal
//! interval, each renewal) is proven with an HMAC under the lease's proof
//! key, which only the daemon and the device holding the lent content key
//! can derive; a proxy can drop or delay messages (the app then pauses),
//! but not alter one that counts. TLS also hides who uses what.

/// The protocol version this launcher and daemon speak: 2 since lease
/// proofs are keyed by the content key and every request is numbered
/// (docs/floating.md, "Transport"). A launcher of version 1 sends no
/// checkout nonce and is refused with [`TOO_OLD`].
pub const PROTOCOL: u32 = 2;
/// The refusal code for a launcher whose checkout lacks the nonce of
/// protocol 2.
pub const TOO_OLD: &str = "client_too_old";
use serde::{Deserialize, Serialize};

/// The daemon's default port (TCP), for firewall rules.
pub const DEFAULT_PORT: u16 = 27580;
/// Largest request body the daemon reads: the largest request (a checkout)
/// is a few hundred bytes of names and codes.
pub const MAX_REQUEST_BODY: usize = 16 * 1024;
/// Longest time one checkout request may wait in line before the daemon
/// answers "still queued": long enough that a queue costs few requests,
/// short enough that proxies and clients do not time out.
pub const MAX_WAIT_POLL_SECS: u64 = 20;
/// Longest host or user name a client may report (shown in the status).
pub const MAX_NAME_LEN: usize = 128;

/// `POST /v1/checkout`: a seat for this device and process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The product id of the package.
    pub product: String,
    /// The package's content key id, hex: the release to unlock.
    pub key_id: String,
    /// The device code of the client (`sealrun id`).
    pub device: String,
    /// The client's host name (for the status page).
    pub host: String,
    /// The client's user name (for the status page).
    pub user: String,
    /// The client's process id (for the status page).
    pub pid: u32,
    /// Wait in line this many seconds (at most [`MAX_WAIT_POLL_SECS`]) for
    /// a seat; 0 answers at once.
    #[serde(default)]
    pub wait_secs: u64,
    /// The ticket of an earlier answer that said "queued": keeps the place.
    #[serde(default)]
    pub ticket: Option<String>,
    /// A fresh random nonce, hex (16 bytes), that the grant's proof binds,
    /// so an old grant cannot be replayed. Required since protocol 2;
    /// optional here only so the daemon can tell an old launcher what to
    /// do instead of refusing it as malformed.
    #[serde(default)]
    pub nonce: Option<String>,
}

/// The answer to a checkout that got a seat (HTTP 200).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Granted {
    /// The lease id (public: the status shows it, an admin revokes it).
    pub lease: String,
    /// The lease's secret wrapped to the client device, base64 (80 bytes,
    /// `sealrun_format::lease::lend_secret`). With the lent content key it
    /// gives the lease's proof key (`LeaseRoot::proof_key`).
    pub secret: String,
    /// The lease lasts this long after each renewal, in milliseconds.
    pub ttl_ms: u64,
    /// Renew this often, in milliseconds.
    pub renew_ms: u64,
    /// The floating license, base64: the client checks its vendor signature
    /// and terms against the package.
    pub license: String,
    /// The content key wrapped to the client for this lease, base64.
    pub key: String,
    /// Seats of the license.
    pub seats: u32,
    /// What a seat is: "computer" or "process".
    pub unit: String,
    /// HMAC-SHA256 under the lease's proof key of "granted for `ttl_ms`,
    /// renew every `renew_ms`", the lease id and the checkout's nonce, hex.
    /// Absent from daemons before protocol 2, which the launcher refuses.
    #[serde(default)]
    pub proof: Option<String>,
}

/// The answer to a checkout that waits in line (HTTP 202).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queued {
    /// Pass this back to keep the place in line.
    pub ticket: String,
    /// 1 for the first in line.
    pub position: u32,
    /// Seats of the license.
    pub seats: u32,
}

/// `POST /v1/heartbeat` and `POST /v1/release`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The lease id.
    pub lease: String,
    /// The request's number for this lease: 1 for the first heartbeat or
    /// release after the grant, one more for each request after it. The
    /// daemon refuses a number it has seen (a replay).
    #[serde(default)]
    pub seq: u64,
    /// A fresh random nonce, hex (16 bytes): the answer's proof binds it.
    pub nonce: String,
    /// HMAC-SHA256 under the lease's proof key of the request (heartbeat or
    /// release) and its number, the lease id and the nonce, hex
    /// (`lease::prove`).
    pub proof: String,
}

/// The answer to a heartbeat (HTTP 200).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Renewed {
    /// The lease now lasts this long, in milliseconds.
    pub ttl_ms: u64,
    /// HMAC-SHA256 under the lease's proof key of "renewed for `ttl_ms`",
    /// the lease id and the request's nonce, hex: only the license server
    /// can make it.
    pub proof: String,
}

/// `POST /v1/admin/revoke` (with the admin token).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// The lease id.
    pub lease: String,
}

/// Every refusal: a machine-readable code and a message for people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    /// What went wrong: `seats_in_use`, `unknown_product`, `unknown_lease`,
    /// `revoked`, `bad_request`, `not_covered`, `license_not_valid`,
    /// `unavailable`, `unauthorized`, `too_large`, `too_many`, `replayed`,
    /// [`TOO_OLD`].
    pub error: String,
    /// For people.
    pub message: String,
    /// For `seats_in_use`: the seats of the license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
    /// For `seats_in_use`: since when (Unix seconds) every seat is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's version.
    pub version: String,
    /// One entry per floating license served.
    pub products: Vec<ProductStatus>,
}

/// One license in [`Status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductStatus {
    /// The product id.
    pub product: String,
    /// The licensee.
    pub licensee: String,
    /// Seats of the license.
    pub seats: u32,
    /// "computer" or "process".
    pub unit: String,
    /// Seats in use now.
    pub in_use: u32,
    /// Requests waiting in line.
    pub queued: u32,
    /// When the license expires (Unix seconds), if it does.
    pub expires: Option<u64>,
    /// The leases.
    pub leases: Vec<LeaseStatus>,
}

/// One lease in [`ProductStatus`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseStatus {
    /// The lease id.
    pub lease: String,
    /// The holder's device code.
    pub device: String,
    /// The holder's host name.
    pub host: String,
    /// The holder's user name.
    pub user: String,
    /// The holder's process id.
    pub pid: u32,
    /// Checked out at (Unix seconds).
    pub since: u64,
    /// Last renewed at (Unix seconds).
    pub last_heartbeat: u64,
    /// Revoked by an admin: the seat returns when the lease lapses.
    pub revoked: bool,
}
