//! The Sealrun launcher: device identity, the license store, hardware keys, verification
//! and decryption of packages into locked memory, and the sandboxed runner.
//! The `sealrun` binary is a thin command-line front end over this library.

pub mod cache;
pub mod clock;
pub mod code_mem;
pub mod config;
pub mod desktop;
pub mod device;
pub mod doctor;
pub mod dongle;
pub mod error;
pub mod floating;
pub mod gui;
pub mod hardening;
pub mod launch;
pub mod native;
pub mod online;
pub mod paths;
pub mod runner;
pub mod scrub;
pub mod secure_buf;
pub mod store;
pub mod ui;

pub use error::LaunchError;

/// Now, in Unix seconds (in debug builds, [`clock::TEST_NOW_ENV`] when set).
pub fn now() -> sealrun_format::UnixTime {
    clock::now_ms() / 1000
}

/// An instant as RFC 3339 (UTC), for messages.
pub fn fmt_time(t: sealrun_format::UnixTime) -> String {
    use time::format_description::well_known::Rfc3339;
    i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{t}"))
}

/// Notes for the user about capabilities the package asks for that were
/// not granted (nothing is granted without the user saying so).
pub fn package_hints(
    manifest: &sealrun_format::package::Manifest,
    dirs: &[runner::DirGrant],
    env: &[(String, String)],
) -> Vec<String> {
    use sealrun_format::package::Capability;
    let mut out = Vec::new();
    for c in &manifest.capabilities {
        match c {
            Capability::Dir { writable, guest } if !dirs.iter().any(|d| &d.guest == guest) => {
                let mode = if *writable { "" } else { ":ro" };
                out.push(format!("this app asks for a directory at {guest}; grant one with --dir HOST::{guest}{mode}"));
            }
            Capability::Env(name) if !env.iter().any(|(k, _)| k == name) => {
                out.push(format!("this app reads ${name}; pass it with --env {name}=VALUE"));
            }
            _ => {}
        }
    }
    out
}
