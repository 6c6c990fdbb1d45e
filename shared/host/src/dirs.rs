//! Where a program keeps its files: the XDG base directories on Linux
//! (through `etcetera`, which follows the spec: a relative `$XDG_*` value
//! is ignored), and later the platform's own folders on Windows and macOS.
use std::path::PathBuf;

use etcetera::BaseStrategy;

/// One kind of base directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// `$XDG_DATA_HOME`, else `~/.local/share`: what the program keeps.
    Data,
    /// `$XDG_CONFIG_HOME`, else `~/.config`: what the user sets.
    Config,
    /// `$XDG_CACHE_HOME`, else `~/.cache`: what can be rebuilt.
    Cache,
    /// `$XDG_STATE_HOME`, else `~/.local/state`: logs and history.
    State,
}

/// The base directory itself (`$XDG_DATA_HOME`, where desktop entries go).
/// Without a home directory, paths are relative to the working directory.
pub fn base(kind: Base) -> PathBuf {
    let Ok(xdg) = etcetera::base_strategy::Xdg::new() else {
        let fallback = match kind {
            Base::Data => ".local/share",
            Base::Config => ".config",
            Base::Cache => ".cache",
            Base::State => ".local/state",
        };
        return PathBuf::from(".").join(fallback);
    };
    match kind {
        Base::Data => xdg.data_dir(),
        Base::Config => xdg.config_dir(),
        Base::Cache => xdg.cache_dir(),
        Base::State => xdg.state_dir().unwrap_or_else(|| xdg.home_dir().join(".local/state")),
    }
}

/// The program's own directory in `kind`: `base(kind)/app`.
pub fn app_dir(kind: Base, app: &str) -> PathBuf {
    base(kind).join(app)
}
