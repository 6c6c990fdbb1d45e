//! Server configuration: a TOML file, then environment overrides, then
//! defaults under one data directory.
//!
//! ```toml
//! listen = "127.0.0.1:8420"
//! data_dir = "/var/lib/sealrun-server"
//! # database = "postgres://sealrun@db/sealrun"   (default: data_dir/server.db)
//! # master_key_file = "/etc/sealrun-server/master.key"
//! # package_dir = "/srv/shared/packages"   (shared storage with several instances)
//! max_package_mib = 1024
//! behind_proxy = false
//! [rate_limit]
//! per_address_per_minute = 30
//! per_code_per_minute = 10
//! [tls]
//! cert = "/etc/sealrun-server/cert.pem"
//! key = "/etc/sealrun-server/key.pem"
//! ```
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api::Limits;
use crate::error::ServerError;

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "SEALRUN_SERVER_CONFIG";
/// Default listen address: loopback, for a reverse proxy in front or a trial.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8420";
/// Default largest package upload, in MiB: the server reads a package whole
/// to check its signature, so this also bounds that memory.
pub const DEFAULT_MAX_PACKAGE_MIB: u64 = 1024;

/// The configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    master_key_file: Option<PathBuf>,
    package_dir: Option<PathBuf>,
    max_package_mib: Option<u64>,
    behind_proxy: Option<bool>,
    rate_limit: Option<RateFile>,
    tls: Option<TlsFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateFile {
    per_address_per_minute: Option<u32>,
    per_code_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the database, master key and packages by default.
    pub data_dir: PathBuf,
    /// SQLite file path or PostgreSQL URL.
    pub database: String,
    /// The master key file (ignored when `SEALRUN_SERVER_MASTER_KEY` is set).
    pub master_key_file: PathBuf,
    /// Where uploaded packages are kept.
    pub package_dir: PathBuf,
    /// Largest package upload, in bytes.
    pub max_package_len: u64,
    /// Rate limits and proxy handling.
    pub limits: Limits,
    /// TLS certificate chain and key (PEM), if the server terminates TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The default data directory: `$XDG_DATA_HOME/sealrun-server`, else
/// `~/.local/share/sealrun-server` (a relative `$XDG_DATA_HOME` is ignored).
pub fn default_data_dir() -> PathBuf {
    sealrun_host::dirs::app_dir(sealrun_host::dirs::Base::Data, "sealrun-server")
}

impl Config {
    /// Loads `file` (if given) and applies the `SEALRUN_SERVER_*` overrides.
    pub fn load(file: Option<&Path>) -> Result<Config, ServerError> {
        let f: File = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ServerError::Io {
                    action: "cannot read the configuration file",
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ServerError::Config { path: path.to_owned(), source: Box::new(e) })?
            }
            None => File::default(),
        };
        let data_dir =
            env("SEALRUN_SERVER_DATA_DIR").map(PathBuf::from).or(f.data_dir).unwrap_or_else(default_data_dir);
        let listen_text = env("SEALRUN_SERVER_LISTEN").or(f.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_text.parse().map_err(|_| ServerError::ConfigValue {
            name: "listen",
            problem: "must be an address:port such as 127.0.0.1:8420",
        })?;
        let database = env("SEALRUN_SERVER_DATABASE")
            .or(f.database)
            .unwrap_or_else(|| data_dir.join("server.db").display().to_string());
        let master_key_file = env("SEALRUN_SERVER_MASTER_KEY_FILE")
            .map(PathBuf::from)
            .or(f.master_key_file)
            .unwrap_or_else(|| data_dir.join("master.key"));
        let package_dir = env("SEALRUN_SERVER_PACKAGE_DIR")
            .map(PathBuf::from)
            .or(f.package_dir)
            .unwrap_or_else(|| data_dir.join("packages"));
        let mib = match env("SEALRUN_SERVER_MAX_PACKAGE_MIB") {
            Some(v) => v
                .parse()
                .map_err(|_| ServerError::ConfigValue { name: "max_package_mib", problem: "must be a whole number" })?,
            None => f.max_package_mib.unwrap_or(DEFAULT_MAX_PACKAGE_MIB),
        };
        if mib == 0 || mib > 4096 {
            return Err(ServerError::ConfigValue { name: "max_package_mib", problem: "must be 1 to 4096" });
        }
        let rate = f.rate_limit.unwrap_or_default();
        let parse_rate = |name: &'static str, v: Option<String>, file: Option<u32>, default: u32| match v {
            Some(v) => v
                .parse()
                .map_err(|_| ServerError::ConfigValue { name, problem: "must be a whole number (0 turns it off)" }),
            None => Ok(file.unwrap_or(default)),
        };
        let defaults = Limits::default();
        let limits = Limits {
            per_address_per_minute: parse_rate(
                "rate_limit.per_address_per_minute",
                env("SEALRUN_SERVER_RATE_PER_ADDRESS"),
                rate.per_address_per_minute,
                defaults.per_address_per_minute,
            )?,
            per_code_per_minute: parse_rate(
                "rate_limit.per_code_per_minute",
                env("SEALRUN_SERVER_RATE_PER_CODE"),
                rate.per_code_per_minute,
                defaults.per_code_per_minute,
            )?,
            behind_proxy: match env("SEALRUN_SERVER_BEHIND_PROXY") {
                Some(v) => matches!(v.as_str(), "1" | "true" | "yes"),
                None => f.behind_proxy.unwrap_or(false),
            },
        };
        let tls_file = f.tls.unwrap_or_default();
        let cert = env("SEALRUN_SERVER_TLS_CERT").map(PathBuf::from).or(tls_file.cert);
        let key = env("SEALRUN_SERVER_TLS_KEY").map(PathBuf::from).or(tls_file.key);
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(ServerError::ConfigValue { name: "tls", problem: "needs both cert and key" }),
        };
        Ok(Config { listen, data_dir, database, master_key_file, package_dir, max_package_len: mib << 20, limits, tls })
    }
}
