//! Where the launcher keeps its files (XDG base directories).
use std::path::PathBuf;

/// An XDG base directory: `$var` when set and absolute, else `$HOME/fallback`
/// (the base directory spec ignores relative values).
pub fn xdg_base(var: &str, fallback: &str) -> PathBuf {
    if let Some(d) = std::env::var_os(var).map(PathBuf::from).filter(|d| d.is_absolute()) {
        return d;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(fallback)
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    xdg_base(var, fallback).join("sealrun")
}

/// `$XDG_DATA_HOME` itself, where desktop entries, MIME types and icons go.
pub fn data_home() -> PathBuf {
    xdg_base("XDG_DATA_HOME", ".local/share")
}

/// `$XDG_CONFIG_HOME` itself, where `mimeapps.list` is.
pub fn config_home() -> PathBuf {
    xdg_base("XDG_CONFIG_HOME", ".config")
}

/// `$XDG_STATE_HOME/sealrun`: the log of launches from the desktop.
pub fn state_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state")
}

/// `$XDG_DATA_HOME/sealrun`: the device key, the last-seen time record
/// (`clock.rs`) and installed licenses.
pub fn data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share")
}

/// Installed licenses, one folder per product.
pub fn licenses_dir() -> PathBuf {
    data_dir().join("licenses")
}

/// The sealed device key file.
pub fn device_key_file() -> PathBuf {
    data_dir().join("device.key")
}

/// `$XDG_CACHE_HOME/sealrun`: the encrypted compiled-code cache.
pub fn cache_dir() -> PathBuf {
    xdg("XDG_CACHE_HOME", ".cache")
}

/// `$XDG_CONFIG_HOME/sealrun`: the user's settings (the native-code trust policy).
pub fn config_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config")
}
