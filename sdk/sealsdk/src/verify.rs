//! Checking a package, and a license against it, as the launcher would
//! (everything but the device binding, which needs the device).
use std::fs::File;
use std::path::Path;

use sealrun_format::UnixTime;
use sealrun_format::license::License;
use sealrun_format::package::{Header, Package};

use crate::{Result, SdkError};

/// What was verified.
#[derive(Debug)]
pub struct VerifyReport {
    /// The package header.
    pub package: Header,
    /// The license, if one was checked.
    pub license: Option<License>,
}

/// Verifies the package signature over every byte, and if `license` is
/// given, its signature chain to the package's vendor key and that it
/// covers the package at time `now`.
pub fn verify(package: &Path, license: Option<&Path>, now: UnixTime) -> Result<VerifyReport> {
    let file = File::open(package).map_err(SdkError::io("cannot open", package))?;
    let map = map(&file, package)?;
    let pkg = Package::parse(&map).map_err(SdkError::format(package))?;
    pkg.verify_signature().map_err(SdkError::format(package))?;
    let license = match license {
        None => None,
        Some(path) => {
            let bytes = std::fs::read(path).map_err(SdkError::io("cannot read", path))?;
            let lic = License::parse(&bytes).map_err(SdkError::format(path))?;
            lic.verify_signature(&pkg.manifest().vendor_key).map_err(SdkError::format(path))?;
            lic.check_covers(pkg.manifest(), now).map_err(SdkError::format(path))?;
            Some(lic)
        }
    };
    Ok(VerifyReport { package: pkg.header().clone(), license })
}

#[allow(unsafe_code)]
fn map(file: &File, path: &Path) -> Result<memmap2::Mmap> {
    // SAFETY: read-only map used only during this check; a concurrent change
    // to the file makes the signature check fail, never succeed wrongly.
    unsafe { memmap2::Mmap::map(file) }.map_err(SdkError::io("cannot read", path))
}
