//! The admin commands' side: ask a running daemon for its status, or to
//! revoke a lease (with the admin token from its state directory).
use std::time::Duration;

use crate::FloatdError;
use crate::wire::{RevokeRequest, Status};

/// Longest an admin call may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest status read (a few thousand leases).
const MAX_STATUS: u64 = 16 << 20;

fn agent(ca: Option<&std::path::Path>) -> Result<ureq::Agent, FloatdError> {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(TIMEOUT));
    if let Some(ca) = ca {
        let tls = sealrun_host::tls::tls_trusting(ca).map_err(|e| FloatdError::Config {
            path: ca.to_owned(),
            problem: format!("cannot use it as CA certificates: {e:?}"),
        })?;
        config = config.tls_config(tls);
    }
    Ok(config.build().into())
}

fn unreachable(url: &str) -> impl FnOnce(ureq::Error) -> FloatdError + '_ {
    move |e| FloatdError::Unreachable { url: url.to_owned(), reason: e.to_string() }
}

fn refusal(text: &str) -> String {
    serde_json::from_str::<crate::wire::Refusal>(text).map_or_else(|_| text.chars().take(200).collect(), |r| r.message)
}

/// `GET /v1/status` of the daemon at `url`.
pub fn status(url: &str, ca: Option<&std::path::Path>) -> Result<Status, FloatdError> {
    let mut resp = agent(ca)?.get(&format!("{url}/v1/status")).call().map_err(unreachable(url))?;
    let code = resp.status().as_u16();
    let text = resp.body_mut().with_config().limit(MAX_STATUS).read_to_string().map_err(unreachable(url))?;
    if code != 200 {
        return Err(FloatdError::Refused(refusal(&text)));
    }
    serde_json::from_str(&text).map_err(|_| FloatdError::Unreachable {
        url: url.to_owned(),
        reason: "the answer is not from sealrun-floatd".into(),
    })
}

/// Revokes `lease` at the daemon at `url`; returns the milliseconds until
/// its seat returns.
pub fn revoke(url: &str, ca: Option<&std::path::Path>, token: &str, lease: &str) -> Result<u64, FloatdError> {
    let mut resp = agent(ca)?
        .post(&format!("{url}/v1/admin/revoke"))
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(RevokeRequest { lease: lease.to_owned() })
        .map_err(unreachable(url))?;
    let code = resp.status().as_u16();
    let text = resp.body_mut().with_config().limit(MAX_STATUS).read_to_string().map_err(unreachable(url))?;
    if code != 200 {
        return Err(FloatdError::Refused(refusal(&text)));
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Ok(v["seat_returns_in_ms"].as_u64().unwrap_or(0))
}

/// The status as a table for people.
pub fn format_status(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    for p in &s.products {
        let expires = p.expires.map(sealrun_host::time::rfc3339).unwrap_or_else(|| "never".into());
        let _ = writeln!(
            o,
            "{}: {} of {} seats in use (one per {}), {} waiting; licensed to {}, expires {expires}",
            p.product, p.in_use, p.seats, p.unit, p.queued, p.licensee
        );
        if p.leases.is_empty() {
            let _ = writeln!(o, "  no leases");
            continue;
        }
        let _ = writeln!(
            o,
            "  {:<32}  {:<20}  {:<12}  {:>7}  {:<20}  {:<20}",
            "LEASE", "HOST", "USER", "PID", "SINCE", "LAST HEARTBEAT"
        );
        for l in &p.leases {
            let _ = writeln!(
                o,
                "  {:<32}  {:<20}  {:<12}  {:>7}  {:<20}  {:<20}{}",
                l.lease,
                l.host,
                l.user,
                l.pid,
                sealrun_host::time::rfc3339(l.since),
                sealrun_host::time::rfc3339(l.last_heartbeat),
                if l.revoked { "  REVOKED" } else { "" }
            );
        }
    }
    o
}
