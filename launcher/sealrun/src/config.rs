//! The launcher's optional settings file, `$XDG_CONFIG_HOME/sealrun/config.toml`.
//! Flags and environment variables take precedence over it.
//!
//! ```toml
//! pkcs11_module = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
//! dongle_check_secs = 3
//! dongle_grace_secs = 120
//! license_server = "floatd.example.lan:27580"
//! license_server_ca = "/etc/ssl/site-ca.pem"
//! activation_server = "https://licenses.example"
//!
//! # What an app gets on every launch, also from a double-click (the
//! # command line adds to the directories and variables; its arguments
//! # replace these).
//! [apps."com.example.wordfreq"]
//! dirs = ["/home/me/Documents::/in:ro", "/home/me/out::/out"]
//! env = ["LANG", "MODE=fast"]
//! args = ["/in", "/out/freq.tsv"]
//! ```
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::LaunchError;
use crate::paths;

/// Largest settings file read: a few lines of TOML; a bigger file is a mistake.
const MAX_CONFIG_LEN: u64 = 64 * 1024;

/// The settings; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The PKCS#11 module for hardware keys.
    pub pkcs11_module: Option<PathBuf>,
    /// Seconds between dongle presence checks while an app runs.
    pub dongle_check_secs: Option<u64>,
    /// Seconds a removed dongle may stay away before the app is stopped.
    pub dongle_grace_secs: Option<u64>,
    /// The site's floating license server (`sealrun-floatd`), `host:port`.
    pub license_server: Option<String>,
    /// CA certificates (PEM) for an `https://` license server.
    pub license_server_ca: Option<PathBuf>,
    /// The licensing server the "Activate…" button of the missing-license
    /// dialog (and `sealrun activate`) uses when `$SEALRUN_SERVER` is unset.
    pub activation_server: Option<String>,
    /// Grants and arguments per product id, for launches that have no
    /// command line of their own (a double-click).
    #[serde(default)]
    pub apps: BTreeMap<String, AppSettings>,
}

/// What one app gets on every launch.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Directories, as `--dir` takes them: `HOST[::GUEST][:ro]`.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Variables, as `--env` takes them: `NAME=VALUE` or `NAME`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Arguments, used when the command line gives none.
    #[serde(default)]
    pub args: Vec<String>,
}

/// Where the settings file is.
pub fn file() -> PathBuf {
    paths::config_dir().join("config.toml")
}

impl Config {
    /// Reads the settings file; a missing file is the defaults.
    pub fn load() -> Result<Config, LaunchError> {
        use std::io::Read;
        let path = file();
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(LaunchError::io("cannot read", &path)(e)),
        };
        let mut text = String::new();
        f.take(MAX_CONFIG_LEN).read_to_string(&mut text).map_err(LaunchError::io("cannot read", &path))?;
        toml::from_str(&text).map_err(|e| {
            LaunchError::Usage(format!("{} is not valid: {}", path.display(), e.message().trim_end_matches('.')))
        })
    }
}
