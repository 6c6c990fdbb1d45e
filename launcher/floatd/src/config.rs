//! `floatd.toml`: what the daemon serves and how.
//!
//! ```toml
//! listen = "0.0.0.0:27580"            # the default port, for firewall rules
//! licenses = ["acme-tool.license"]     # relative to this file
//! state_dir = "/var/lib/sealrun-floatd"
//! lease_ttl_secs = 30                  # a lease lapses this long after its last heartbeat
//! # heartbeat_secs = 10                # clients renew this often [default: a third of the lease time]
//! # pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so"   # for a license sealed to a dongle
//! # pkcs11_slot = 0                    # only this slot (among slots with a token) [default: any]
//! # pin_file = "/etc/sealrun-floatd/pin"
//! # tls_cert = "cert.pem"
//! # tls_key = "key.pem"
//! ```
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::FloatdError;
use crate::wire::DEFAULT_PORT;

/// Largest configuration file read: a few lines; more is a mistake.
const MAX_CONFIG_LEN: u64 = 64 * 1024;
/// Default lease time: a crashed client's seat returns within 30 s, while
/// a heartbeat every 10 s costs nothing on a LAN.
pub const DEFAULT_LEASE_TTL_SECS: u64 = 30;
/// Shortest lease: below 2 s, a scheduling hiccup on a busy client could
/// lose a seat.
pub const MIN_LEASE_TTL_SECS: u64 = 2;
/// Longest lease: a crashed client's seat would stay lost for a day.
pub const MAX_LEASE_TTL_SECS: u64 = 86_400;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    #[serde(default)]
    licenses: Vec<PathBuf>,
    state_dir: PathBuf,
    lease_ttl_secs: Option<u64>,
    heartbeat_secs: Option<u64>,
    pkcs11_module: Option<PathBuf>,
    pkcs11_slot: Option<usize>,
    pin_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// The daemon's settings, paths resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file they came from.
    pub path: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The floating license files.
    pub licenses: Vec<PathBuf>,
    /// Leases, the device key and the usage log live here.
    pub state_dir: PathBuf,
    /// How long a lease lasts after its last renewal.
    pub lease_ttl: Duration,
    /// How often clients renew.
    pub heartbeat: Duration,
    /// The PKCS#11 module for a license sealed to a dongle.
    pub pkcs11_module: Option<PathBuf>,
    /// Only this slot of the module (counted among slots with a token);
    /// by default the token is found by the dongle id the license names.
    pub pkcs11_slot: Option<usize>,
    /// The dongle PIN's file.
    pub pin_file: Option<PathBuf>,
    /// TLS certificate and key (PEM), if the daemon speaks HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Config {
    /// Whether there is something to serve. Checked by `serve` only: `id`
    /// must work on a fresh configuration, since the host's code is what
    /// the vendor needs to issue the first license.
    pub fn check_serving(&self) -> Result<(), FloatdError> {
        if self.licenses.is_empty() {
            return Err(FloatdError::Config {
                path: self.path.clone(),
                problem: "licenses is empty: list the floating license files to serve (the vendor issues them to the \
                          code `sealrun-floatd id` prints)"
                    .into(),
            });
        }
        Ok(())
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, FloatdError> {
        use std::io::Read;
        let bad = |problem: String| FloatdError::Config { path: path.to_owned(), problem };
        let f = std::fs::File::open(path).map_err(|e| {
            bad(format!(
                "cannot open it ({e}); pass the configuration with --config FILE (docs/floating.md has an example)"
            ))
        })?;
        let mut text = String::new();
        f.take(MAX_CONFIG_LEN).read_to_string(&mut text).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let file: File = toml::from_str(&text).map_err(|e| bad(e.message().trim_end_matches('.').to_owned()))?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let listen = match file.listen {
            None => SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            Some(l) => {
                l.parse().map_err(|_| bad(format!("listen = {l:?} is not an address like 0.0.0.0:{DEFAULT_PORT}")))?
            }
        };
        let ttl = file.lease_ttl_secs.unwrap_or(DEFAULT_LEASE_TTL_SECS);
        if !(MIN_LEASE_TTL_SECS..=MAX_LEASE_TTL_SECS).contains(&ttl) {
            return Err(bad(format!(
                "lease_ttl_secs = {ttl} is outside {MIN_LEASE_TTL_SECS}..={MAX_LEASE_TTL_SECS} seconds"
            )));
        }
        // At most half the lease time: a renewal that fails can be retried
        // before the lease lapses.
        let heartbeat = match file.heartbeat_secs {
            None => Duration::from_millis(ttl * 1000 / 3),
            Some(h) if h >= 1 && h * 2 <= ttl => Duration::from_secs(h),
            Some(h) => {
                return Err(bad(format!(
                    "heartbeat_secs = {h} must be at least 1 and at most half of lease_ttl_secs ({ttl})"
                )));
            }
        };
        let tls = match (file.tls_cert, file.tls_key) {
            (Some(c), Some(k)) => Some((resolve(c), resolve(k))),
            (None, None) => None,
            _ => return Err(bad("give both tls_cert and tls_key, or neither".into())),
        };
        Ok(Config {
            path: path.to_owned(),
            listen,
            licenses: file.licenses.into_iter().map(resolve).collect(),
            state_dir: resolve(file.state_dir),
            lease_ttl: Duration::from_secs(ttl),
            heartbeat,
            pkcs11_module: file.pkcs11_module.map(resolve),
            pkcs11_slot: file.pkcs11_slot,
            pin_file: file.pin_file.map(resolve),
            tls,
        })
    }

    /// The device key of the daemon's host, kept in the state directory.
    pub fn device_key_file(&self) -> PathBuf {
        self.state_dir.join("device.key")
    }

    /// The token admin commands present (made on first start, 0600).
    pub fn admin_token_file(&self) -> PathBuf {
        self.state_dir.join("admin.token")
    }

    /// The lease database.
    pub fn database_file(&self) -> PathBuf {
        self.state_dir.join("leases.sqlite")
    }

    /// The usage log (JSON lines).
    pub fn usage_log_file(&self) -> PathBuf {
        self.state_dir.join("usage.jsonl")
    }

    /// The address admin commands on this host talk to: the listen address,
    /// with a wildcard replaced by loopback.
    pub fn local_url(&self) -> String {
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, FloatdError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("floatd.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(&p)
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = load("licenses = [\"a.license\"]\nstate_dir = \"state\"\n").unwrap();
        assert_eq!(c.listen.port(), DEFAULT_PORT);
        assert_eq!(c.lease_ttl, Duration::from_secs(DEFAULT_LEASE_TTL_SECS));
        assert!(c.licenses[0].is_absolute() && c.licenses[0].ends_with("a.license"));
        assert!(c.state_dir.ends_with("state"));
        assert_eq!(c.local_url(), format!("http://127.0.0.1:{DEFAULT_PORT}"));
    }

    #[test]
    fn a_fresh_configuration_loads_but_does_not_serve() {
        let c = load("state_dir = \"s\"\n").unwrap();
        assert!(c.licenses.is_empty());
        assert!(c.check_serving().unwrap_err().to_string().contains("licenses is empty"));
        assert!(load("licenses = [\"a\"]\nstate_dir = \"s\"\n").unwrap().check_serving().is_ok());
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expect) in [
            ("licenses = [\"a\"]\nstate_dir = \"s\"\nlease_ttl_secs = 1\n", "lease_ttl_secs = 1"),
            ("licenses = [\"a\"]\nstate_dir = \"s\"\nheartbeat_secs = 20\n", "at most half"),
            ("licenses = [\"a\"]\nstate_dir = \"s\"\nlisten = \"nowhere\"\n", "not an address"),
            ("licenses = [\"a\"]\nstate_dir = \"s\"\ntls_cert = \"c\"\n", "both tls_cert and tls_key"),
            ("licenses = [\"a\"]\nstate_dir = \"s\"\nseats = 3\n", "unknown field"),
            ("licenses = [\"a\"]\n", "state_dir"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(expect), "{text:?}: {e}");
        }
    }
}
