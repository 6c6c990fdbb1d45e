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
            let bytes = read_bounded(path, sealrun_format::limits::MAX_LICENSE_FILE_LEN)?;
            let lic = License::parse(&bytes).map_err(SdkError::format(path))?;
            lic.verify_signature(&pkg.manifest().vendor_key).map_err(SdkError::format(path))?;
            lic.check_covers(pkg.manifest(), now).map_err(SdkError::format(path))?;
            Some(lic)
        }
    };
    Ok(VerifyReport { package: pkg.header().clone(), license })
}

/// Reads at most `limit` + 1 bytes: enough for the parser to report a file
/// that is too long, without reading a huge or endless one whole.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = File::open(path).map_err(SdkError::io("cannot open", path))?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).map_err(SdkError::io("cannot read", path))?;
    Ok(buf)
}

fn map(file: &File, path: &Path) -> Result<memmap2::Mmap> {
    // Used only during this check: a concurrent change can make the answer
    // stale (check a file nobody is writing); a concurrent truncation
    // raises SIGBUS and ends the process.
    sealrun_host::fs::map_read_only(file).map_err(SdkError::io("cannot read", path))
}
