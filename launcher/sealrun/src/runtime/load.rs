//! From an opened package and its content key to code ready to run: from
//! the encrypted compiled-code cache when a valid entry is there, else from
//! the vendor's precompiled code when the user trusts the vendor with it,
//! else decrypted into locked memory and compiled. Nothing here runs guest
//! code.
use std::path::PathBuf;

use sealrun_format::device::DeviceSecret;
use sealrun_format::{ContentKey, UnixTime};

use super::cache::{self, CodeCache, Lookup};
use super::code_mem::Code;
use super::native::{self, TrustPolicy};
use super::package::OpenedPackage;
use super::runner;
use crate::error::{GuestError, LaunchError};
use crate::ui::Ui;

/// Where loaded code came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// The encrypted compiled-code cache.
    Cache {
        /// The entry file.
        entry: PathBuf,
    },
    /// The vendor's precompiled native code, now verified and loaded.
    Native {
        /// How long verifying, decrypting and loading took.
        took: std::time::Duration,
        /// The cache entry written and its size, as for `Compiled`.
        stored: Option<(PathBuf, u64)>,
    },
    /// Compiled now.
    Compiled {
        /// How long compiling took.
        took: std::time::Duration,
        /// The cache entry written and its size, if the cache is on and
        /// writing worked.
        stored: Option<(PathBuf, u64)>,
    },
}

/// What the loader needs besides the package: the content key the license
/// unlocked, this device's secret (cache entries are bound to it), the
/// time (stamped on new cache entries) and where to report progress.
pub(crate) struct LoadWith<'a> {
    /// The package's content key.
    pub key: &'a ContentKey,
    /// This device's secret.
    pub device_secret: &'a DeviceSecret,
    /// Now, for new cache entries.
    pub now: UnixTime,
    /// The cache, or `None` for `--no-cache`.
    pub cache: Option<&'a CodeCache>,
    /// Progress and warnings.
    pub ui: &'a dyn Ui,
    /// Loading for `sealrun serve`: an HTTP service is loaded (anything
    /// else refuses it).
    pub serving: bool,
}

/// The compiled code of `package` (a module or a component, as `C` says),
/// with the engine it belongs to (the host engine `engine`, or a target
/// engine for vendor-precompiled code) and where it came from. What was
/// loaded without the cache is stored in it. Problems with the cache are
/// warnings.
pub(crate) fn load_code<C: Code>(
    package: &OpenedPackage,
    engine: wasmtime::Engine,
    with: &LoadWith<'_>,
) -> Result<(wasmtime::Engine, C, Source), LaunchError> {
    let manifest = package.manifest();
    let (ui, key) = (with.ui, with.key);
    let cache = with.cache.filter(|c| c.enabled());
    let (engine, native) = match trusted_native(package, ui)? {
        Some((index, native_engine)) => (native_engine, Some(index)),
        None => (engine, None),
    };
    // The entry id names this exact package (header and signature); its
    // key needs the content key and this device's secret.
    let identity = package.identity()?;
    let origin = if native.is_some() { cache::Origin::VendorNative } else { cache::Origin::Compiled };
    let (id, entry_key) = cache::entry_for(&identity, &engine, origin, key, with.device_secret);
    let label = format!("{} {} ({})", manifest.product, manifest.release, manifest.display_name);
    if let Some(c) = cache
        && c.entry_path(&id).is_file()
    {
        // The package is verified on every launch, also when its code
        // comes from the cache: a damaged or altered package is refused
        // even though the cached code is intact. The signature check runs
        // on its own thread while the entry is decrypted.
        let (lookup, verified) = std::thread::scope(|s| {
            let verify = s.spawn(|| package.verify_signature());
            let lookup = c.load::<C>(&engine, &id, &entry_key);
            let verified = verify.join().unwrap_or_else(|_| {
                Err(LaunchError::bad_file(package.path())(sealrun_format::Error::DecryptionFailed))
            });
            (lookup, verified)
        });
        verified?;
        match lookup {
            Lookup::Hit(module) => {
                let entry = c.entry_path(&id);
                return Ok((engine, module, Source::Cache { entry }));
            }
            Lookup::Miss => {}
            Lookup::Refused(why) => ui.warn(&format!(
                "the compiled-code cache entry for {} was not used: {why}; compiling again and replacing it",
                manifest.display_name
            )),
        }
    }
    let started = std::time::Instant::now();
    let (module, native) = match native {
        Some(index) => (load_native::<C>(package, key, &engine, index)?, true),
        None => {
            let plaintext = package.decrypt(key)?;
            let mut compiled = None;
            ui.compiling(&manifest.display_name, plaintext.len() as u64, cache.is_some(), &mut || {
                compiled = Some(runner::compile::<C>(&engine, &plaintext));
            });
            // The plaintext is not needed once compiled: zero and release it now.
            drop(plaintext);
            (compiled.expect("the ui runs the compile")?, false)
        }
    };
    let took = started.elapsed();
    let stored = cache.and_then(|c| match c.store(&module, &id, &entry_key, &label, with.now) {
        Ok(size) => Some((c.entry_path(&id), size)),
        Err(e) => {
            ui.warn(&format!("could not save the compiled code in {}: {e}", c.dir().display()));
            None
        }
    });
    let source = if native { Source::Native { took, stored } } else { Source::Compiled { took, stored } };
    Ok((engine, module, source))
}

/// The package's precompiled code for this machine and the engine to load
/// it with, if there is some, the user trusts this vendor with native
/// code, and it was compiled by exactly this runtime.
fn trusted_native(package: &OpenedPackage, ui: &dyn Ui) -> Result<Option<(usize, wasmtime::Engine)>, LaunchError> {
    let manifest = package.manifest();
    let Some((index, native)) = sealrun_engine::host_target().and_then(|t| manifest.native_for(t)) else {
        return Ok(None);
    };
    if !TrustPolicy::load()?.allows_native(&manifest.vendor_key) {
        tracing::debug!(target = %native.target, "native code present, vendor not trusted with native code");
        return Ok(None);
    }
    let engine = native::engine_for_target(&native.target, manifest.kind)?;
    if sealrun_engine::runtime_fingerprint(&engine) != native.runtime {
        ui.warn(&format!(
            "{} carries precompiled code for {} from another wasmtime version or configuration; compiling it here instead",
            manifest.display_name, native.target
        ));
        return Ok(None);
    }
    Ok(Some((index, engine)))
}

#[allow(unsafe_code)]
fn load_native<C: Code>(
    package: &OpenedPackage,
    key: &ContentKey,
    engine: &wasmtime::Engine,
    index: usize,
) -> Result<C, LaunchError> {
    let len = usize::try_from(package.manifest().native[index].len)
        .map_err(|_| LaunchError::Usage("the precompiled code is too large for this machine".into()))?;
    let mut failure = None;
    let fill = |buf: &mut [u8]| {
        package.decrypt_native_into(key, index, buf).map_err(|e| {
            let message = e.to_string();
            failure = Some(e);
            message
        })
    };
    // SAFETY: `fill` succeeds only when the code authenticated: its digest
    // is in the header, which the vendor's signature covers (checked over
    // every module chunk too), and the user's trust policy allows native
    // code from this vendor key. It was compiled by a runtime with
    // exactly this engine's compatibility fingerprint (checked by the
    // caller), which wasmtime checks again, as code of the package's kind
    // (`C`; wasmtime refuses a module's code loaded as a component's).
    let loaded = unsafe { super::code_mem::load_trusted(engine, len, fill) };
    match (loaded, failure) {
        (Ok(module), _) => Ok(module),
        (Err(_), Some(e)) => Err(LaunchError::bad_file(package.path())(e)),
        (Err(e), None) => Err(GuestError::start("the precompiled code could not be loaded", e)),
    }
}
