//! The vendor's keystore: a directory (0700) holding the vendor signing key
//! and one content key per product release, each in a 0600 file.
//!
//! ```text
//! vendor.key                          signing key seed (secret)
//! vendor.pub                          public key
//! content-keys/<product>/<release>.key  content key of that release (secret)
//! dongles/<dongle id>.key             the vendor's copy of a dongle key (secret)
//! ```
//! Key files are one header line and one hex line, so they can be backed up
//! and diffed as text.
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use sealrun_format::dongle::{DongleId, DongleKey};
use sealrun_format::{ContentKey, Release, VendorPublicKey, VendorSigningKey};
use zeroize::Zeroizing;

use crate::{Result, SdkError, rng};

const VENDOR_KEY_HEADER: &str = "sealrun-vendor-key-v1";
const VENDOR_PUB_HEADER: &str = "sealrun-vendor-pub-v1";
const CONTENT_KEY_HEADER: &str = "sealrun-content-key-v1";
const DONGLE_KEY_HEADER: &str = "sealrun-dongle-key-v1";

/// Environment variable naming the keystore directory.
pub const KEYSTORE_ENV: &str = "SEALSDK_KEYSTORE";

/// The keystore directory used when none is given: `$XDG_DATA_HOME/sealsdk`,
/// else `~/.local/share/sealsdk` (a relative `$XDG_DATA_HOME` is ignored,
/// as the XDG spec says).
pub fn default_dir() -> PathBuf {
    sealrun_host::dirs::app_dir(sealrun_host::dirs::Base::Data, "sealsdk")
}

/// A keystore directory.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// The keystore at `dir` (created on first write).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Keystore { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn vendor_key_path(&self) -> PathBuf {
        self.dir.join("vendor.key")
    }

    /// The folder of a product's content keys; the product id is checked
    /// first, so that it is a safe path part ([a-z0-9.-], no "..").
    fn product_dir(&self, product: &str) -> Result<PathBuf> {
        if let Some(problem) = sealrun_format::text::product_id_problem(product) {
            return Err(sealrun_format::Error::InvalidInput { field: "product id", problem }.into());
        }
        Ok(self.dir.join("content-keys").join(product))
    }

    fn content_key_path(&self, product: &str, release: Release) -> Result<PathBuf> {
        Ok(self.product_dir(product)?.join(format!("{release}.key")))
    }

    /// Makes a new vendor key; refuses to replace an existing one.
    pub fn create_vendor_key(&self) -> Result<VendorSigningKey> {
        let path = self.vendor_key_path();
        if path.exists() {
            return Err(SdkError::VendorKeyExists(path));
        }
        let key = VendorSigningKey::generate(&mut rng());
        write_secret(&path, VENDOR_KEY_HEADER, &key.to_seed())?;
        let pub_path = self.dir.join("vendor.pub");
        let text = format!("{VENDOR_PUB_HEADER}\n{}\n", key.public());
        fs::write(&pub_path, text).map_err(SdkError::io("cannot write", &pub_path))?;
        Ok(key)
    }

    /// Loads the vendor key.
    pub fn vendor_key(&self) -> Result<VendorSigningKey> {
        let path = self.vendor_key_path();
        if !path.exists() {
            return Err(SdkError::NoVendorKey(self.dir.clone()));
        }
        let seed = read_secret(&path, VENDOR_KEY_HEADER)?;
        Ok(VendorSigningKey::from_seed(&seed))
    }

    /// The vendor public key.
    pub fn vendor_public(&self) -> Result<VendorPublicKey> {
        Ok(self.vendor_key()?.public())
    }

    /// The content key of a release, made and stored on first use so that
    /// re-sealing a release keeps its key (and its licenses keep working).
    pub fn content_key(&self, product: &str, release: Release) -> Result<ContentKey> {
        let path = self.content_key_path(product, release)?;
        if path.exists() {
            return Ok(ContentKey::from_bytes(&*read_secret(&path, CONTENT_KEY_HEADER)?));
        }
        let key = ContentKey::generate(&mut rng());
        write_secret(&path, CONTENT_KEY_HEADER, key.as_bytes())?;
        Ok(key)
    }

    /// Every release of `product` with a stored content key, in order.
    pub fn releases(&self, product: &str) -> Result<Vec<Release>> {
        let dir = self.product_dir(product)?;
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SdkError::io("cannot list", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(SdkError::io("cannot list", &dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".key")) else {
                continue;
            };
            if let Ok(r) = stem.parse::<Release>() {
                out.push(r);
            }
        }
        out.sort();
        Ok(out)
    }

    fn dongle_key_path(&self, dongle: &DongleId) -> PathBuf {
        self.dir.join("dongles").join(format!("{dongle}.key"))
    }

    /// Stores the vendor's copy of a new dongle key (never overwrites one).
    pub fn store_dongle_key(&self, dongle: &DongleId, key: &DongleKey) -> Result<PathBuf> {
        let path = self.dongle_key_path(dongle);
        write_secret(&path, DONGLE_KEY_HEADER, key.as_bytes())?;
        Ok(path)
    }

    /// Forgets a dongle key (when provisioning the token failed).
    pub fn remove_dongle_key(&self, dongle: &DongleId) -> Result<()> {
        let path = self.dongle_key_path(dongle);
        fs::remove_file(&path).map_err(SdkError::io("cannot remove", &path))
    }

    /// The vendor's copy of a dongle's key.
    pub fn dongle_key(&self, dongle: &DongleId) -> Result<DongleKey> {
        let path = self.dongle_key_path(dongle);
        if !path.exists() {
            return Err(SdkError::NoDongleKey { dongle: dongle.to_string(), dir: self.dir.clone() });
        }
        Ok(DongleKey::from_bytes(&*read_secret(&path, DONGLE_KEY_HEADER)?))
    }

    /// Loads the content key of a release that must already exist.
    pub fn existing_content_key(&self, product: &str, release: Release) -> Result<ContentKey> {
        let path = self.content_key_path(product, release)?;
        Ok(ContentKey::from_bytes(&*read_secret(&path, CONTENT_KEY_HEADER)?))
    }
}

fn write_secret(path: &Path, header: &str, bytes: &[u8; 32]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(SdkError::io("cannot create", parent))?;
    }
    let text = Zeroizing::new(format!("{header}\n{}\n", hex::encode(bytes)));
    // Written whole to a private temporary file, then hard-linked into place:
    // a crash never leaves a half-written key, and an existing key is never
    // replaced (linking fails if the name exists).
    sealrun_host::fs::write_new(path, text.as_bytes(), 0o600).map_err(SdkError::io("cannot create", path))
}

fn read_secret(path: &Path, header: &str) -> Result<Zeroizing<[u8; 32]>> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(SdkError::io("cannot read", path))?);
    let bad = || SdkError::BadKeyFile(path.to_owned());
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return Err(bad());
    }
    let hex_line = lines.next().ok_or_else(bad)?;
    if lines.next().is_some() {
        return Err(bad());
    }
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_line, out.as_mut()).map_err(|_| bad())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::at(dir.path().join("ks"));
        assert!(matches!(ks.vendor_key(), Err(SdkError::NoVendorKey(_))));
        let k = ks.create_vendor_key().unwrap();
        assert!(matches!(ks.create_vendor_key(), Err(SdkError::VendorKeyExists(_))));
        assert_eq!(ks.vendor_public().unwrap(), k.public());
        let mode = fs::metadata(dir.path().join("ks/vendor.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let r = Release::new(1, 2, 3);
        let c1 = ks.content_key("com.acme.tool", r).unwrap();
        let c2 = ks.content_key("com.acme.tool", r).unwrap();
        assert_eq!(c1.as_bytes(), c2.as_bytes());
        assert_eq!(ks.releases("com.acme.tool").unwrap(), vec![r]);
        fs::write(dir.path().join("ks/vendor.key"), "garbage").unwrap();
        assert!(matches!(ks.vendor_key(), Err(SdkError::BadKeyFile(_))));
    }
}
