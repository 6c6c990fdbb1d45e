//! Vendor-precompiled native code: the runtime it must be compiled for, and
//! the user's trust policy that decides whether it may run at all.
//!
//! A package may carry its module compiled ahead of time for named targets.
//! Running that code skips the first compile, but it gives up the wasm
//! sandbox's strongest guarantee: the launcher can no longer check that the
//! machine code came from the module (Cranelift did not produce it here), so
//! a vendor key that signs a native artifact can run anything as the user.
//! That is why it is off unless the user lists the vendor's key in their
//! trust policy (`sealrun trust allow-native`).
//!
//! The SDK compiles artifacts with [`sealrun_engine::engine_for_target`], the same function
//! the launcher uses to load them, so the runtime fingerprints agree exactly
//! when the wasmtime version, settings and target do. The target engines
//! assume no CPU features beyond the target's baseline, so an artifact runs on
//! every machine of its target.
use std::fs;
use std::path::PathBuf;

use sealrun_format::VendorPublicKey;
use wasmtime::Engine;

use crate::error::LaunchError;
use crate::platform::dirs;

/// The engine that loads native code for `target` (the SDK compiled it
/// with the same [`sealrun_engine::engine_for_target`]).
pub(crate) fn engine_for_target(target: &str, kind: sealrun_format::package::AppKind) -> Result<Engine, LaunchError> {
    sealrun_engine::engine_for_target(target, kind).map_err(|e| LaunchError::Usage(e.to_string()))
}

/// File name of the trust policy in the config dir.
const TRUST_FILE: &str = "trust-native";

/// The user's trust policy: vendor keys whose native code may run.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustPolicy {
    /// Trusted vendor keys, each with the note it was added with.
    pub native: Vec<(VendorPublicKey, String)>,
}

/// Where the policy lives: `$XDG_CONFIG_HOME/sealrun/trust-native`, one
/// vendor key (64 hex digits) per line, optionally followed by a note.
pub(crate) fn trust_file() -> PathBuf {
    dirs::config_dir().join(TRUST_FILE)
}

impl TrustPolicy {
    /// Reads the policy; a missing file is the default (nothing trusted).
    /// A line that does not hold a key is an error naming the line, not a
    /// silent "trusted" or "not trusted".
    pub(crate) fn load() -> Result<TrustPolicy, LaunchError> {
        let path = trust_file();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TrustPolicy::default()),
            Err(e) => return Err(LaunchError::Io { action: "cannot read", path, source: e }),
        };
        let mut native = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, note) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let key = parse_key(key).ok_or_else(|| {
                LaunchError::Usage(format!(
                    "{} line {}: expected a vendor key (64 hex digits), found {key:?}; fix or remove the line",
                    path.display(),
                    n + 1
                ))
            })?;
            native.push((key, note.trim().to_owned()));
        }
        Ok(TrustPolicy { native })
    }

    /// Whether native code signed by `vendor` may run.
    pub(crate) fn allows_native(&self, vendor: &VendorPublicKey) -> bool {
        self.native.iter().any(|(k, _)| k == vendor)
    }

    /// Adds `vendor` (if new) and saves; returns whether it was new.
    pub(crate) fn allow(&mut self, vendor: VendorPublicKey, note: &str) -> Result<bool, LaunchError> {
        if self.allows_native(&vendor) {
            return Ok(false);
        }
        self.native.push((vendor, note.replace(['\n', '\r'], " ")));
        self.save()?;
        Ok(true)
    }

    /// Removes `vendor` and saves; returns whether it was there.
    pub(crate) fn remove(&mut self, vendor: &VendorPublicKey) -> Result<bool, LaunchError> {
        let before = self.native.len();
        self.native.retain(|(k, _)| k != vendor);
        let removed = self.native.len() != before;
        if removed {
            self.save()?;
        }
        Ok(removed)
    }

    fn save(&self) -> Result<(), LaunchError> {
        let path = trust_file();
        let dir = dirs::config_dir();
        let io = |source| LaunchError::Io { action: "cannot write", path: path.clone(), source };
        crate::platform::files::create_private_dir(&dir).map_err(io)?;
        let mut text = String::from(
            "# Vendor keys whose precompiled native code sealrun may run (outside the wasm sandbox).\n\
             # Managed with `sealrun trust allow-native|remove|list`.\n",
        );
        for (k, note) in &self.native {
            text.push_str(&format!("{k} {note}\n"));
        }
        sealrun_host::fs::write_atomic(&path, text.as_bytes(), 0o600, sealrun_host::fs::Durability::Synced).map_err(io)
    }
}

/// A vendor key from 64 hex digits.
pub(crate) fn parse_key(s: &str) -> Option<VendorPublicKey> {
    if s.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(VendorPublicKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_strictly() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_key(&hex), Some(VendorPublicKey([0xab; 32])));
        assert_eq!(parse_key(&hex[..62]), None);
        assert_eq!(parse_key(&"zz".repeat(32)), None);
        assert_eq!(parse_key(&format!("{}é", &hex[..62])), None);
    }
}
