//! A package opened once per launch: mapped read-only, its structure and
//! header parsed, its manifest kept. Later steps (the license check, the
//! signature check, decryption, the cache id) all read this one map, and a
//! header that changed on disk meanwhile is refused.
use std::fs::File;
use std::path::{Path, PathBuf};

use sealrun_format::ContentKey;
use sealrun_format::package::{Header, Manifest, Package};

use crate::error::LaunchError;
use crate::platform::locked_memory::SecretBuffer;

/// Modules at least this large are decrypted on every core: below it one
/// core takes about a millisecond, less than starting the threads is worth.
pub(crate) const PARALLEL_DECRYPT_MIN_LEN: usize = 4 << 20;

/// An opened package; the module inside is still encrypted.
pub(crate) struct OpenedPackage {
    path: PathBuf,
    manifest: Manifest,
    map: memmap2::Mmap,
    header: Vec<u8>,
}

fn map(path: &Path) -> Result<memmap2::Mmap, LaunchError> {
    let file = File::open(path).map_err(LaunchError::io("cannot open", path))?;
    // Only read through `Package`, which
    // copies each chunk into private memory before hashing and decrypting
    // it, so a file changed while mapped can only cause a refusal. A file
    // truncated while mapped raises SIGBUS and ends the process (memmap's
    // documented caveat); no plaintext is produced either way.
    sealrun_host::fs::map_read_only(&file).map_err(LaunchError::io("cannot read", path))
}

/// Reads just the header of `package` (for the vendor key and names, where
/// nothing else of the package is needed).
pub fn read_header(package: &Path) -> Result<Header, LaunchError> {
    let map = map(package)?;
    Header::parse_prefix(&map).map_err(LaunchError::bad_file(package))
}

/// The manifest of `package` once the vendor signature over its header and
/// every chunk checks out (for what is shown before any license is: menu
/// entries, their names and icons).
pub(crate) fn read_verified_manifest(package: &Path) -> Result<Manifest, LaunchError> {
    let opened = OpenedPackage::open(package)?;
    opened.verify_signature()?;
    Ok(opened.manifest)
}

impl OpenedPackage {
    /// Maps `path` and parses the package's structure and header.
    pub(crate) fn open(path: &Path) -> Result<OpenedPackage, LaunchError> {
        let map = map(path)?;
        let (manifest, header) = {
            let pkg = Package::parse(&map).map_err(LaunchError::bad_file(path))?;
            (pkg.manifest().clone(), pkg.header().as_bytes().to_vec())
        };
        Ok(OpenedPackage { path: path.to_owned(), manifest, map, header })
    }

    /// The package file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest, as parsed when the package was opened (the vendor
    /// signature over it is checked by [`verify_signature`](Self::verify_signature)
    /// and by every decryption).
    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The package, parsed again from the map. The file may have been
    /// rewritten since it was opened: a header that differs from the one the
    /// license was checked against is refused, so every later check is about
    /// the same package.
    fn package(&self) -> Result<Package<'_>, sealrun_format::Error> {
        let pkg = Package::parse(&self.map)?;
        if pkg.header().as_bytes() != self.header.as_slice() {
            return Err(sealrun_format::Error::Malformed {
                artifact: sealrun_format::Artifact::Package,
                field: "header",
                problem: "changed while the package was being read",
            });
        }
        Ok(pkg)
    }

    /// Checks the vendor signature over the header and every chunk.
    pub(crate) fn verify_signature(&self) -> Result<(), LaunchError> {
        self.package().and_then(|p| p.verify_signature()).map_err(LaunchError::bad_file(&self.path))
    }

    /// The id of exactly this package (header and signature), for the
    /// compiled-code cache.
    pub(crate) fn identity(&self) -> Result<[u8; 32], LaunchError> {
        Ok(self.package().map_err(LaunchError::bad_file(&self.path))?.identity())
    }

    /// Verifies the package signature and decrypts the module with `key`
    /// into locked memory, on every core for large modules.
    pub(crate) fn decrypt(&self, key: &ContentKey) -> Result<SecretBuffer, LaunchError> {
        let len = usize::try_from(self.manifest.plaintext_len)
            .map_err(|_| LaunchError::Usage("the module is too large for this machine's address space".into()))?;
        let mut module = SecretBuffer::new(len).map_err(LaunchError::io("cannot allocate memory for", &self.path))?;
        let threads = if len >= PARALLEL_DECRYPT_MIN_LEN {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            1
        };
        self.package()
            .and_then(|p| p.decrypt_into_parallel(key, &mut module, threads))
            .map_err(LaunchError::bad_file(&self.path))?;
        self.release_map_pages();
        Ok(module)
    }

    /// Decrypts the vendor's precompiled code number `index` with `key`
    /// into `buf` (which must be exactly its length), on every core.
    pub(crate) fn decrypt_native_into(
        &self,
        key: &ContentKey,
        index: usize,
        buf: &mut [u8],
    ) -> Result<(), sealrun_format::Error> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        self.package().and_then(|p| p.decrypt_native_into(key, index, buf, threads))
    }

    /// Drops the package's pages from this process's memory once they have
    /// been read: the plaintext copy is what the compile needs, and holding
    /// both would count the module twice in the launcher's peak memory.
    #[allow(unsafe_code)]
    fn release_map_pages(&self) {
        // SAFETY: MADV_DONTNEED on a read-only shared file mapping only drops
        // this process's view of the pages; a later read faults them back in
        // from the file, with the same contents. Failure is harmless.
        let _ = unsafe { self.map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealrun_format::package::{PackageSpec, seal_to_vec};
    use sealrun_format::{Release, VendorSigningKey};

    /// A package rewritten in place between the license check and the
    /// decryption (same length, another header) is refused, not decrypted
    /// under the header the license was checked against.
    #[test]
    fn header_changed_after_open_is_refused() {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let dir = tempfile::tempdir().unwrap();
        let vendor = VendorSigningKey::generate(&mut rng);
        let content = ContentKey::generate(&mut rng);
        let module = b"\0asm\x01\0\0\0".to_vec();
        let spec = |name: &str| PackageSpec {
            product: "com.example.app".into(),
            release: Release::new(1, 0, 0),
            display_name: name.into(),
            kind: sealrun_format::package::AppKind::Console,
            capabilities: vec![],
            chunk_size_log2: 12,
            plaintext_len: module.len() as u64,
            icon: None,
        };
        let first = seal_to_vec(spec("App A"), &module, &content, &vendor, &mut rng).unwrap();
        let second = seal_to_vec(spec("App B"), &module, &content, &vendor, &mut rng).unwrap();
        assert_eq!(first.len(), second.len());
        let pkg = dir.path().join("app.sealed");
        std::fs::write(&pkg, &first).unwrap();
        let opened = OpenedPackage::open(&pkg).unwrap();
        assert_eq!(&opened.decrypt(&content).unwrap()[..], &module[..], "control: the package opens");
        // Rewritten in place (the map sees it), same length.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&pkg)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &second))
            .unwrap();
        match opened.decrypt(&content) {
            Err(LaunchError::BadFile { source, .. }) => {
                assert!(source.to_string().contains("changed while the package was being read"), "{source}")
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("a package changed after it was opened was decrypted"),
        }
    }
}
