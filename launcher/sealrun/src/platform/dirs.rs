//! Where the launcher keeps its files (XDG base directories).
use std::path::PathBuf;

use sealrun_host::dirs::{Base, app_dir, base};

fn xdg(kind: Base) -> PathBuf {
    app_dir(kind, "sealrun")
}

/// `$XDG_DATA_HOME` itself, where desktop entries, MIME types and icons go.
pub(crate) fn data_home() -> PathBuf {
    base(Base::Data)
}

/// `$XDG_CONFIG_HOME` itself, where `mimeapps.list` is.
pub(crate) fn config_home() -> PathBuf {
    base(Base::Config)
}

/// `$XDG_STATE_HOME/sealrun`: the log of launches from the desktop.
pub(crate) fn state_dir() -> PathBuf {
    xdg(Base::State)
}

/// `$XDG_DATA_HOME/sealrun`: the device key, the last-seen time record
/// (`clock.rs`) and installed licenses.
pub(crate) fn data_dir() -> PathBuf {
    xdg(Base::Data)
}

/// Installed licenses, one folder per product.
pub(crate) fn licenses_dir() -> PathBuf {
    data_dir().join("licenses")
}

/// The sealed device key file.
pub(crate) fn device_key_file() -> PathBuf {
    data_dir().join("device.key")
}

/// `$XDG_CACHE_HOME/sealrun`: the encrypted compiled-code cache.
pub(crate) fn cache_dir() -> PathBuf {
    xdg(Base::Cache)
}

/// `$XDG_CONFIG_HOME/sealrun`: the user's settings (the native-code trust policy).
pub(crate) fn config_dir() -> PathBuf {
    xdg(Base::Config)
}
