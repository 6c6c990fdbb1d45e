//! The license store: `$XDG_DATA_HOME/sealrun/licenses/<product>/<id>.license`,
//! plus the license kept next to a package (`tool.sealed` → `tool.license`).
use std::fs;
use std::path::{Path, PathBuf};

use sealrun_format::dongle::SealedLicense;
use sealrun_format::license::AnyLicense;
use sealrun_format::license::{Binding, License};
use sealrun_host::fs::{Durability, write_atomic};

use crate::error::{LaunchError, LicenseError};
use crate::license::device::Device;
use crate::platform::dirs;

/// What [`add_any`] installed.
pub enum Added {
    /// A device license, readable.
    Plain(Box<License>),
    /// A license sealed to a dongle: its terms need the token.
    Sealed(SealedLicense),
}

/// Installs a license file of either kind: device licenses must be for this
/// device; licenses sealed to a dongle are checked when the dongle is used.
pub fn add_any(file: &Path, device: &Device) -> Result<(PathBuf, Added), LaunchError> {
    let bytes = read_license_file(file)?;
    match AnyLicense::parse(&bytes).map_err(LaunchError::bad_file(file))? {
        AnyLicense::Plain(_) => add_bytes(&bytes, file, device).map(|(p, l)| (p, Added::Plain(Box::new(l)))),
        AnyLicense::Sealed(sealed) => {
            use sha2::{Digest, Sha256};
            let dir = dongle_licenses_dir();
            let name = hex_prefix(&Sha256::digest(&bytes));
            let dest = write_atomically(&dir, &name, &bytes)?;
            Ok((dest, Added::Sealed(sealed)))
        }
    }
}

fn hex_prefix(d: &[u8]) -> String {
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Licenses sealed to dongles: their product is not readable without the
/// token, so they share one folder (`_` cannot start a product id).
pub fn dongle_licenses_dir() -> PathBuf {
    dirs::licenses_dir().join("_dongles")
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, LaunchError> {
    fs::create_dir_all(dir).map_err(LaunchError::io("cannot create", dir))?;
    let dest = dir.join(format!("{name}.license"));
    // Synced, through a temporary file of its own (issue 26: a fixed
    // temporary name let two installs at once mix their bytes, and an
    // unsynced license could be lost to a power cut after "installed").
    write_atomic(&dest, bytes, 0o644, Durability::Synced).map_err(LaunchError::io("cannot write", &dest))?;
    Ok(dest)
}

/// Installs license bytes (named `origin` in messages) into the store.
pub fn add_bytes(bytes: &[u8], origin: &Path, device: &Device) -> Result<(PathBuf, License), LaunchError> {
    let file = origin;
    let license = License::parse(bytes).map_err(LaunchError::bad_file(file))?;
    match license.terms.binding {
        Binding::Device(licensed) if licensed != device.code => {
            return Err(LaunchError::License(LicenseError::WrongDevice {
                path: file.to_owned(),
                licensed,
                this: device.code,
            }));
        }
        Binding::Device(_) => {}
        Binding::Floating { .. } => return Err(LaunchError::License(LicenseError::Floating { path: file.to_owned() })),
        Binding::Dongle { .. } => {
            return Err(LaunchError::Usage(format!(
                "{} names a dongle but is not sealed to it; ask the vendor for the sealed license file",
                file.display()
            )));
        }
    }
    // Product ids are validated to [a-z0-9.-] by the parser: safe as a folder name.
    let dir = dirs::licenses_dir().join(&license.terms.product);
    let dest = write_atomically(&dir, &license.terms.license_id_hex(), bytes)?;
    Ok((dest, license))
}

/// Reads a license file, refusing anything that is not a regular file or is
/// larger than any license can be (so `/dev/zero` or a FIFO cannot hang or
/// exhaust the launcher).
pub fn read_license_file(path: &Path) -> Result<Vec<u8>, LaunchError> {
    use std::io::Read;
    let file = fs::File::open(path).map_err(LaunchError::io("cannot open", path))?;
    let meta = file.metadata().map_err(LaunchError::io("cannot read", path))?;
    if !meta.is_file() {
        return Err(LaunchError::Usage(format!("{} is not a regular file", path.display())));
    }
    let limit = sealrun_format::limits::MAX_LICENSE_FILE_LEN.max(sealrun_format::dongle::MAX_SEALED_LICENSE_FILE_LEN);
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(LaunchError::io("cannot read", path))?;
    if bytes.len() as u64 > limit {
        use sealrun_format::{Artifact, Error};
        let source = if bytes.starts_with(&sealrun_format::license::LICENSE_MAGIC)
            || bytes.starts_with(&sealrun_format::dongle::SEALED_LICENSE_MAGIC)
        {
            Error::TrailingData { artifact: Artifact::License, extra: meta.len().saturating_sub(limit) }
        } else {
            Error::NotSealrun(Artifact::License)
        };
        return Err(LaunchError::BadFile { path: path.to_owned(), source });
    }
    Ok(bytes)
}

/// The license files that may belong to `product`, in the order they are
/// tried: the one next to the package, then the store's.
pub fn candidates(package: &Path, product: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut searched = Vec::new();
    let mut found = Vec::new();
    let sibling = package.with_extension("license");
    searched.push(sibling.clone());
    if sibling.is_file() {
        found.push(sibling);
    }
    let dir = dirs::licenses_dir().join(product);
    searched.push(dir.clone());
    found.extend(license_files(&dir));
    // Sealed licenses whose product tag matches (the rest are for other products).
    let sealed = dongle_licenses_dir();
    if sealed.is_dir() {
        searched.push(sealed.clone());
    }
    found.extend(license_files(&sealed).into_iter().filter(|p| {
        read_license_file(p).ok().and_then(|b| SealedLicense::parse(&b).ok()).is_some_and(|s| s.may_be_for(product))
    }));
    (searched, found)
}

fn license_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "license"))
        .collect();
    out.sort();
    out
}

/// Every installed license file, by product.
pub fn all() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root = dirs::licenses_dir();
    let mut products: Vec<PathBuf> = fs::read_dir(&root).into_iter().flatten().flatten().map(|e| e.path()).collect();
    products.sort();
    for p in products {
        out.extend(license_files(&p));
    }
    out
}
