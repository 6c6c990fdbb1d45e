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
//!
//! # Network for a component (as --allow-connect, --allow-listen,
//! # --allow-dns and --allow-udp; none unless set).
//! [apps."com.example.fetch"]
//! connect = ["api.example.com:443"]
//! listen = ["127.0.0.1:8080"]
//! dns = true
//! ```
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::LaunchError;
use crate::platform::dirs;

/// Largest settings file read: a few lines of TOML; a bigger file is a mistake.
const MAX_CONFIG_LEN: u64 = 64 * 1024;

/// The settings; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
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
pub(crate) struct AppSettings {
    /// Directories, as `--dir` takes them: `HOST[::GUEST][:ro]`.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Variables, as `--env` takes them: `NAME=VALUE` or `NAME`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Arguments, used when the command line gives none.
    #[serde(default)]
    pub args: Vec<String>,
    /// Endpoints the app may connect to, as `--allow-connect` takes them.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Addresses the app may listen on, as `--allow-listen` takes them.
    #[serde(default)]
    pub listen: Vec<String>,
    /// Name lookups, as `--allow-dns`.
    #[serde(default)]
    pub dns: bool,
    /// UDP, as `--allow-udp`.
    #[serde(default)]
    pub udp: bool,
    /// The vendor key (as `sealsdk inspect` prints it) whose packages get
    /// these settings. Unset: the first vendor whose package of this
    /// product used them, remembered in [`app_vendors_file`]. A product id
    /// is a name any vendor can give its package; the key is not.
    pub vendor: Option<String>,
}

/// Where the vendor keys that `[apps."…"]` settings were first used with
/// are remembered: `app-vendors.toml` in the data folder.
pub(crate) fn app_vendors_file() -> PathBuf {
    dirs::data_dir().join("app-vendors.toml")
}

/// Largest `app-vendors.toml` read: a line per product.
const MAX_APP_VENDORS_LEN: u64 = 256 * 1024;

fn read_app_vendors() -> BTreeMap<String, String> {
    use std::io::Read;
    let mut text = String::new();
    if let Ok(f) = std::fs::File::open(app_vendors_file()) {
        let _ = f.take(MAX_APP_VENDORS_LEN).read_to_string(&mut text);
    }
    toml::from_str(&text).unwrap_or_default()
}

fn write_app_vendors(all: &BTreeMap<String, String>) -> Result<(), LaunchError> {
    let path = app_vendors_file();
    let dir = dirs::data_dir();
    std::fs::create_dir_all(&dir).map_err(LaunchError::io("cannot create", &dir))?;
    let mut text =
        String::from("# Written by sealrun: the vendor key each product's [apps] settings in config.toml belong to.\n");
    for (product, key) in all {
        // Product ids and hex keys need no quoting beyond this.
        text.push_str(&format!("\"{product}\" = \"{key}\"\n"));
    }
    // A temporary file of its own (two launches may write at once), then
    // renamed into place.
    sealrun_host::fs::write_atomic(&path, text.as_bytes(), 0o600, sealrun_host::fs::Durability::Synced)
        .map_err(LaunchError::io("cannot write", &path))
}

/// Remembers `vendor` as the one `product`'s `[apps]` settings belong to,
/// unless one is remembered already (call after the package checked out).
pub(crate) fn remember_app_vendor(product: &str, vendor: &sealrun_format::VendorPublicKey) {
    let mut all = read_app_vendors();
    if all.contains_key(product) {
        return;
    }
    all.insert(product.to_owned(), vendor.to_string());
    if let Err(e) = write_app_vendors(&all) {
        tracing::warn!(error = %e, "cannot remember the vendor of the app settings");
    }
}

/// Why settings for a product are not given to a package: they belong to
/// another vendor's packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OtherVendor {
    /// The product.
    pub product: String,
    /// The vendor key the settings belong to.
    pub theirs: String,
    /// The vendor key of the package being launched.
    pub this: String,
    /// Where the binding was set: `config.toml` or `app-vendors.toml`.
    pub bound_in: PathBuf,
}

/// Where the settings file is.
pub(crate) fn file() -> PathBuf {
    dirs::config_dir().join("config.toml")
}

impl Config {
    /// The `[apps."product"]` settings for a package of `product` that
    /// claims to be signed by `vendor`, taken out of the configuration:
    /// given only to the vendor they belong to (`vendor = "…"`, else the
    /// first vendor key they were used with). On first use they are given
    /// for this run, and the caller calls [`remember_app_vendor`] once the
    /// package's signature and license have checked out: a forged package
    /// that never runs binds nothing.
    pub(crate) fn take_app_settings(
        &mut self,
        product: &str,
        vendor: &sealrun_format::VendorPublicKey,
    ) -> Result<Option<AppSettings>, OtherVendor> {
        let Some(app) = self.apps.remove(product) else { return Ok(None) };
        let this = vendor.to_string();
        let (theirs, bound_in) = match &app.vendor {
            Some(v) => (v.trim().to_ascii_lowercase(), file()),
            None => match read_app_vendors().get(product) {
                Some(v) => (v.clone(), app_vendors_file()),
                None => (this.clone(), app_vendors_file()),
            },
        };
        if theirs == this {
            Ok(Some(app))
        } else {
            Err(OtherVendor { product: product.to_owned(), theirs, this, bound_in })
        }
    }

    /// Reads the settings file; a missing file is the defaults.
    pub(crate) fn load() -> Result<Config, LaunchError> {
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
