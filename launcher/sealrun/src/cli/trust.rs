//! `sealrun trust allow-native|remove|list`: whose precompiled native code
//! may run.
use std::process::ExitCode;

use clap::Subcommand;
use sealrun_format::VendorPublicKey;

use crate::LaunchError;
use crate::runtime::native::{self, TrustPolicy};
use crate::runtime::read_header;

#[derive(Subcommand)]
pub(super) enum TrustCommand {
    /// Let apps from this vendor run their precompiled native code, outside the wasm sandbox
    AllowNative {
        /// A package from the vendor (*.sealed), or the vendor key in hex
        vendor: String,
    },
    /// Stop running a vendor's native code (apps compile from wasm again)
    Remove {
        /// A package from the vendor (*.sealed), or the vendor key in hex
        vendor: String,
    },
    /// List vendors whose native code may run
    List,
}

/// A vendor key from hex, or from the header of a package.
fn vendor_of(arg: &str) -> Result<(VendorPublicKey, String), LaunchError> {
    if let Some(key) = native::parse_key(arg) {
        return Ok((key, String::new()));
    }
    let path = std::path::Path::new(arg);
    let header = read_header(path)?;
    let m = header.manifest;
    Ok((m.vendor_key, format!("{} ({})", m.display_name, m.product)))
}

pub(super) fn execute(t: TrustCommand) -> Result<ExitCode, LaunchError> {
    let mut policy = TrustPolicy::load()?;
    let file = native::trust_file();
    match t {
        TrustCommand::AllowNative { vendor } => {
            let (key, note) = vendor_of(&vendor)?;
            let what = if note.is_empty() {
                format!("vendor {}", key.short_id())
            } else {
                format!("the vendor of {note}, key {}", key.short_id())
            };
            if policy.allow(key, &note)? {
                println!("native code from {what} may now run on this device ({})", file.display());
                eprintln!(
                    "sealrun: note: native code runs outside the wasm sandbox, with all of your user's rights; \
                     undo with `sealrun trust remove {key}`"
                );
            } else {
                println!("native code from {what} was already allowed");
            }
        }
        TrustCommand::Remove { vendor } => {
            let (key, _) = vendor_of(&vendor)?;
            if policy.remove(&key)? {
                println!("native code from vendor {} will no longer run; its apps compile from wasm", key.short_id());
            } else {
                println!("vendor {} was not allowed to run native code", key.short_id());
            }
        }
        TrustCommand::List => {
            if policy.native.is_empty() {
                println!("no vendor may run native code (the default)");
            }
            for (k, note) in &policy.native {
                println!("{k} {note}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
