//! From a package path to a decrypted module in memory: find the license,
//! verify everything, unwrap the content key, stream-decrypt from a memory
//! map into a locked buffer. Nothing here runs guest code.
use std::fs::File;
use std::path::{Path, PathBuf};

use sealrun_format::UnixTime;
use sealrun_format::license::{Binding, License};
use sealrun_format::package::{Manifest, Package};

use crate::device::Device;
use crate::error::LaunchError;
use crate::secure_buf::SecretBuffer;
use crate::{fmt_time, store};

/// Modules at least this large are decrypted on every core: below it one
/// core takes about a millisecond, less than starting the threads is worth.
pub const PARALLEL_DECRYPT_MIN_LEN: usize = 4 << 20;

/// A package whose module has been verified and decrypted.
pub struct Unlocked {
    /// The package manifest.
    pub manifest: Manifest,
    /// The module, in a locked, zeroizing buffer.
    pub module: SecretBuffer,
    /// The license that unlocked it.
    pub license_path: PathBuf,
    /// The license.
    pub license: License,
}

#[allow(unsafe_code)]
fn map(path: &Path) -> Result<memmap2::Mmap, LaunchError> {
    let file = File::open(path).map_err(LaunchError::io("cannot open", path))?;
    // SAFETY: the map is read-only and only read through `Package`, which
    // copies each chunk before hashing and decrypting it, so a file changed
    // while mapped can only cause a refusal. A file truncated while mapped
    // raises SIGBUS and ends the process (memmap's documented caveat); no
    // plaintext is produced either way.
    unsafe { memmap2::Mmap::map(&file) }.map_err(LaunchError::io("cannot read", path))
}

/// Verifies and decrypts `package` for `device` at time `now`.
pub fn unlock(package: &Path, license: Option<&Path>, device: &Device, now: UnixTime) -> Result<Unlocked, LaunchError> {
    let map = map(package)?;
    let pkg = Package::parse(&map).map_err(LaunchError::bad_file(package))?;
    let manifest = pkg.manifest().clone();
    let (license_path, license) = select_license(package, license, &manifest, device, now)?;
    let key = license.unwrap_key(&manifest.key_id, &device.secret).map_err(LaunchError::bad_file(&license_path))?;
    let len = usize::try_from(manifest.plaintext_len)
        .map_err(|_| LaunchError::Usage("the module is too large for this machine's address space".into()))?;
    let mut module = SecretBuffer::new(len).map_err(LaunchError::io("cannot allocate memory for", package))?;
    let threads =
        if len >= PARALLEL_DECRYPT_MIN_LEN { std::thread::available_parallelism().map_or(1, usize::from) } else { 1 };
    pkg.decrypt_into_parallel(&key, &mut module, threads).map_err(LaunchError::bad_file(package))?;
    Ok(Unlocked { manifest, module, license_path, license })
}

/// Checks one license file against the package and this device.
pub fn check_license(path: &Path, manifest: &Manifest, device: &Device, now: UnixTime) -> Result<License, LaunchError> {
    use sealrun_format::Error as F;
    let bytes = store::read_license_file(path)?;
    let license = License::parse(&bytes).map_err(LaunchError::bad_file(path))?;
    license.verify_signature(&manifest.vendor_key).map_err(|e| match e {
        e @ F::OtherVendor { .. } => LaunchError::WrongProduct { path: path.to_owned(), source: e },
        other => LaunchError::BadFile { path: path.to_owned(), source: other },
    })?;
    license.check_covers(manifest, now).map_err(|e| match e {
        F::Expired(t) => LaunchError::NotValidNow { path: path.to_owned(), expired: true, when: fmt_time(t) },
        F::NotYetValid(t) => LaunchError::NotValidNow { path: path.to_owned(), expired: false, when: fmt_time(t) },
        other => LaunchError::WrongProduct { path: path.to_owned(), source: other },
    })?;
    let Binding::Device(licensed) = license.terms.binding;
    if licensed != device.code {
        return Err(LaunchError::WrongDevice { path: path.to_owned(), licensed, this: device.code });
    }
    Ok(license)
}

fn select_license(
    package: &Path,
    explicit: Option<&Path>,
    manifest: &Manifest,
    device: &Device,
    now: UnixTime,
) -> Result<(PathBuf, License), LaunchError> {
    if let Some(path) = explicit {
        return check_license(path, manifest, device, now).map(|l| (path.to_owned(), l));
    }
    let (searched, found) = store::candidates(package, &manifest.product);
    let mut best: Option<LaunchError> = None;
    for path in found {
        match check_license(&path, manifest, device, now) {
            Ok(l) => return Ok((path, l)),
            Err(e) => {
                if best.as_ref().is_none_or(|b| rank(&e) > rank(b)) {
                    best = Some(e);
                }
            }
        }
    }
    Err(best.unwrap_or_else(|| LaunchError::NoLicense {
        product: manifest.product.clone(),
        name: manifest.display_name.clone(),
        device: device.code,
        searched,
    }))
}

/// How much a refusal tells the user; the most telling one is reported
/// when several licenses were tried.
fn rank(e: &LaunchError) -> u8 {
    match e {
        LaunchError::NotValidNow { .. } => 4,
        LaunchError::WrongProduct { .. } => 3,
        LaunchError::WrongDevice { .. } => 2,
        LaunchError::BadFile { .. } => 1,
        _ => 0,
    }
}
