//! From a package path to a decrypted module in memory: find the license,
//! verify everything, unwrap the content key, stream-decrypt from a memory
//! map into a locked buffer, compile it or load it from the encrypted
//! compiled-code cache. Nothing here runs guest code.
use std::fs::File;
use std::path::{Path, PathBuf};

use sealrun_format::dongle::SealedLicense;
use sealrun_format::license::AnyLicense;
use sealrun_format::license::{Binding, License};
use sealrun_format::package::{Manifest, Package};
use sealrun_format::{ContentKey, UnixTime};

use crate::cache::{self, CodeCache, Lookup};
use crate::device::Device;
use crate::dongle::{self, Attached};
use crate::error::LaunchError;
use crate::native::{self, TrustPolicy};
use crate::secure_buf::SecretBuffer;
use crate::ui::Ui;
use crate::{clock, runner, store};
use sealrun_host::time::rfc3339 as fmt_time;
use sealrun_token::{DecryptFailed, Library, TokenError};

/// Modules at least this large are decrypted on every core: below it one
/// core takes about a millisecond, less than starting the threads is worth.
pub const PARALLEL_DECRYPT_MIN_LEN: usize = 4 << 20;

/// A package whose license checks out and whose content key is unwrapped;
/// the module itself is still encrypted.
pub struct Opened {
    /// The package file.
    pub path: PathBuf,
    /// The package manifest.
    pub manifest: Manifest,
    /// The license that unlocked it.
    pub license_path: PathBuf,
    /// The license.
    pub license: License,
    /// The dongle that unlocked it, for a dongle-bound license: the app may
    /// run only while it stays attached.
    pub dongle: Option<Attached>,
    map: memmap2::Mmap,
    header: Vec<u8>,
    /// Boxed, so that moving an `Opened` moves a pointer and leaves no copy
    /// of the key in the frames it passes through.
    key: Box<ContentKey>,
}

/// A package ready to run: its module compiled (or loaded from the cache).
pub struct Loaded {
    /// The package manifest.
    pub manifest: Manifest,
    /// The license that unlocked it.
    pub license_path: PathBuf,
    /// The license.
    pub license: License,
    /// The engine the module belongs to (the host engine, or a target
    /// engine for vendor-precompiled code).
    pub engine: wasmtime::Engine,
    /// The compiled module.
    pub module: wasmtime::Module,
    /// Where the module came from.
    pub source: Source,
    /// The dongle that must stay attached while the app runs.
    pub dongle: Option<Attached>,
}

/// Where a [`Loaded`] module came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
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

fn map(path: &Path) -> Result<memmap2::Mmap, LaunchError> {
    let file = File::open(path).map_err(LaunchError::io("cannot open", path))?;
    // Only read through `Package`, which
    // copies each chunk into private memory before hashing and decrypting
    // it, so a file changed while mapped can only cause a refusal. A file
    // truncated while mapped raises SIGBUS and ends the process (memmap's
    // documented caveat); no plaintext is produced either way.
    sealrun_host::fs::map_read_only(&file).map_err(LaunchError::io("cannot read", path))
}

/// Reads just the header of `package` (for the vendor key and names).
pub fn read_header(package: &Path) -> Result<sealrun_format::package::Header, LaunchError> {
    let map = map(package)?;
    sealrun_format::package::Header::parse_prefix(&map).map_err(LaunchError::bad_file(package))
}

/// The manifest of `package` once the vendor signature over its header and
/// every chunk checks out (for what is shown before any license is: menu
/// entries, their names and icons).
pub fn read_verified_manifest(package: &Path) -> Result<sealrun_format::package::Manifest, LaunchError> {
    let map = map(package)?;
    let p = sealrun_format::package::Package::parse(&map).map_err(LaunchError::bad_file(package))?;
    p.verify_signature().map_err(LaunchError::bad_file(package))?;
    Ok(p.manifest().clone())
}

/// Finds and checks the license for `package` on `device` at time `now`, and
/// unwraps the content key. Nothing is decrypted yet. Dongles are found with
/// the default PKCS#11 modules and PIN sources.
pub fn open(package: &Path, license: Option<&Path>, device: &Device, now: UnixTime) -> Result<Opened, LaunchError> {
    open_with(package, license, device, now, &dongle::Options::default())
}

/// [`open`], finding dongles as `dongles` says.
pub fn open_with(
    package: &Path,
    license: Option<&Path>,
    device: &Device,
    now: UnixTime,
    dongles: &dongle::Options,
) -> Result<Opened, LaunchError> {
    let map = map(package)?;
    let pkg = Package::parse(&map).map_err(LaunchError::bad_file(package))?;
    let manifest = pkg.manifest().clone();
    let mut tokens = Tokens { opts: dongles, libs: None, pins: Vec::new() };
    let s = select_license(package, license, &manifest, device, now, &mut tokens)?;
    // Accepted: a time-limited license moves the last-seen record forward
    // (refused ones never do, see `clock`).
    if s.license.terms.expires.is_some() {
        clock::advance(device, now)?;
    }
    let header = pkg.header().as_bytes().to_vec();
    Ok(Opened {
        path: package.to_owned(),
        manifest,
        license_path: s.path,
        license: s.license,
        dongle: s.dongle,
        map,
        header,
        key: s.key,
    })
}

/// How `sealrun run` looks for a license.
pub struct RunLicense<'a> {
    /// `--license`: this file only.
    pub license: Option<&'a Path>,
    /// Where dongles are found.
    pub tokens: &'a dongle::Options,
    /// `--license-server`.
    pub license_server: Option<&'a str>,
    /// `--wait`: wait in line for a floating seat.
    pub wait: bool,
}

/// Opens `package` for a run: with a local license, or with a seat from the
/// site's license server. A server named for this run (`--license-server`,
/// `SEALRUN_LICENSE_SERVER`) is asked straight away; one found in the
/// config file or a floating file only when no local license works.
/// `on_queued(product, server, position, seats)` is told about waiting in
/// line.
pub fn open_for_run(
    package: &Path,
    how: &RunLicense<'_>,
    device: &Device,
    now: UnixTime,
    on_queued: &mut dyn FnMut(&str, &str, u32, u32),
) -> Result<(Opened, Option<std::sync::Arc<crate::floating::Seat>>), LaunchError> {
    let local = || open_with(package, how.license, device, now, how.tokens);
    let floating_file = how.license.filter(|l| l.extension().is_some_and(|e| e == crate::floating::FLOATING_EXT));
    if how.license.is_some() && floating_file.is_none() && how.license_server.is_none() {
        return Ok((local()?, None));
    }
    let product = read_header(package)?.manifest.product;
    let found = match floating_file {
        // `--license FILE.floating`: that server, for this run.
        Some(f) if how.license_server.is_none() => {
            Some((crate::floating::FloatingFile::read(f)?.spec_for(f, &product)?, true))
        }
        _ => crate::floating::find_server(how.license_server, &product)?,
    };
    let Some((spec, named)) = found else {
        return Ok((local()?, None));
    };
    if !named {
        match local() {
            Ok(o) => return Ok((o, None)),
            // No local license works: the site's seats are the way.
            Err(
                LaunchError::NoLicense { .. }
                | LaunchError::WrongDevice { .. }
                | LaunchError::NotValidNow { .. }
                | LaunchError::ClockSetBack { .. }
                | LaunchError::ClockRecord { .. }
                | LaunchError::WrongProduct { .. }
                | LaunchError::FloatingLicense { .. },
            ) => {}
            Err(e) => return Err(e),
        }
    }
    let url = spec.url.clone();
    let mut told = |position: u32, seats: u32| on_queued(&product, &url, position, seats);
    let (opened, seat) = open_floating(package, device, now, &spec, how.wait, &mut told)?;
    Ok((opened, Some(seat)))
}

/// Opens `package` with a seat of its floating license, checked out from
/// the license server `spec` (waiting in line with `wait`).
///
/// No clock-tampering check here (`clock`): a floating license's validity
/// is decided by the license server's clock (it refuses to lend or renew a
/// seat of an expired license), so setting this computer's clock back gains
/// nothing. The server's own clock is the site administrator's to keep.
pub fn open_floating(
    package: &Path,
    device: &Device,
    now: UnixTime,
    spec: &crate::floating::ServerSpec,
    wait: bool,
    on_queued: &mut dyn FnMut(u32, u32),
) -> Result<(Opened, std::sync::Arc<crate::floating::Seat>), LaunchError> {
    let map = map(package)?;
    let pkg = Package::parse(&map).map_err(LaunchError::bad_file(package))?;
    let manifest = pkg.manifest().clone();
    let header = pkg.header().as_bytes().to_vec();
    let out = crate::floating::checkout(spec, &manifest, device, now, wait, on_queued)?;
    let opened = Opened {
        path: package.to_owned(),
        manifest,
        license_path: PathBuf::from(&spec.url),
        license: out.license,
        dongle: None,
        map,
        header,
        key: Box::new(out.key),
    };
    Ok((opened, out.seat))
}

impl Opened {
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

    /// Verifies the package signature and decrypts the module into locked
    /// memory, on every core for large modules.
    pub fn decrypt(&self) -> Result<SecretBuffer, LaunchError> {
        let len = usize::try_from(self.manifest.plaintext_len)
            .map_err(|_| LaunchError::Usage("the module is too large for this machine's address space".into()))?;
        let mut module = SecretBuffer::new(len).map_err(LaunchError::io("cannot allocate memory for", &self.path))?;
        let threads = if len >= PARALLEL_DECRYPT_MIN_LEN {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            1
        };
        self.package()
            .and_then(|p| p.decrypt_into_parallel(&self.key, &mut module, threads))
            .map_err(LaunchError::bad_file(&self.path))?;
        self.release_map_pages();
        Ok(module)
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

    /// The module, ready to run: from the cache when a valid entry is there
    /// (no decryption, no compile); else from the vendor's precompiled code
    /// when the package has some for this machine and the user's trust policy
    /// allows it; else decrypted and compiled with `engine` (the host
    /// engine). What was loaded without the cache is stored in it. Problems
    /// with the cache are warnings.
    pub fn load(
        self,
        device: &Device,
        engine: wasmtime::Engine,
        cache: Option<&CodeCache>,
        ui: &dyn Ui,
    ) -> Result<Loaded, LaunchError> {
        let cache = cache.filter(|c| c.enabled());
        let (engine, native) = match self.trusted_native(ui)? {
            Some((index, native_engine)) => (native_engine, Some(index)),
            None => (engine, None),
        };
        // The entry id names this exact package (header and signature); its
        // key needs the content key and this device's secret.
        let identity = self.package().map_err(LaunchError::bad_file(&self.path))?.identity();
        let origin = if native.is_some() { cache::Origin::VendorNative } else { cache::Origin::Compiled };
        let (id, key) = cache::entry_for(&identity, &engine, origin, &self.key, device);
        let label = format!("{} {} ({})", self.manifest.product, self.manifest.release, self.manifest.display_name);
        if let Some(c) = cache
            && c.entry_path(&id).is_file()
        {
            // The package is verified on every launch, also when its code
            // comes from the cache: a damaged or altered package is refused
            // even though the cached code is intact. The signature check runs
            // on its own thread while the entry is decrypted.
            let (lookup, verified) = std::thread::scope(|s| {
                let verify = s.spawn(|| self.package().and_then(|p| p.verify_signature()));
                let lookup = c.load(&engine, &id, &key);
                (lookup, verify.join().unwrap_or(Err(sealrun_format::Error::DecryptionFailed)))
            });
            verified.map_err(LaunchError::bad_file(&self.path))?;
            match lookup {
                Lookup::Hit(module) => {
                    let entry = c.entry_path(&id);
                    return Ok(self.into_loaded(engine, module, Source::Cache { entry }));
                }
                Lookup::Miss => {}
                Lookup::Refused(why) => ui.warn(&format!(
                    "the compiled-code cache entry for {} was not used: {why}; compiling again and replacing it",
                    self.manifest.display_name
                )),
            }
        }
        let started = std::time::Instant::now();
        let (module, native) = match native {
            Some(index) => (self.load_native(&engine, index)?, true),
            None => {
                let plaintext = self.decrypt()?;
                let mut compiled = None;
                ui.compiling(&self.manifest.display_name, plaintext.len() as u64, cache.is_some(), &mut || {
                    compiled = Some(runner::compile(&engine, &plaintext));
                });
                // The plaintext is not needed once compiled: zero and release it now.
                drop(plaintext);
                (compiled.expect("the ui runs the compile")?, false)
            }
        };
        let took = started.elapsed();
        let stored = cache.and_then(|c| match c.store(&module, &id, &key, &label) {
            Ok(size) => Some((c.entry_path(&id), size)),
            Err(e) => {
                ui.warn(&format!("could not save the compiled code in {}: {e}", c.dir().display()));
                None
            }
        });
        let source = if native { Source::Native { took, stored } } else { Source::Compiled { took, stored } };
        Ok(self.into_loaded(engine, module, source))
    }

    /// The package's precompiled code for this machine and the engine to
    /// load it with, if there is some, the user trusts this vendor with
    /// native code, and it was compiled by exactly this runtime.
    fn trusted_native(&self, ui: &dyn Ui) -> Result<Option<(usize, wasmtime::Engine)>, LaunchError> {
        let Some((index, native)) = sealrun_engine::host_target().and_then(|t| self.manifest.native_for(t)) else {
            return Ok(None);
        };
        if !TrustPolicy::load()?.allows_native(&self.manifest.vendor_key) {
            tracing::debug!(target = %native.target, "native code present, vendor not trusted with native code");
            return Ok(None);
        }
        let engine = native::engine_for_target(&native.target)?;
        if sealrun_engine::runtime_fingerprint(&engine) != native.runtime {
            ui.warn(&format!(
                "{} carries precompiled code for {} from another wasmtime version or configuration; compiling it here instead",
                self.manifest.display_name, native.target
            ));
            return Ok(None);
        }
        Ok(Some((index, engine)))
    }

    #[allow(unsafe_code)]
    fn load_native(&self, engine: &wasmtime::Engine, index: usize) -> Result<wasmtime::Module, LaunchError> {
        let len = usize::try_from(self.manifest.native[index].len)
            .map_err(|_| LaunchError::Usage("the precompiled code is too large for this machine".into()))?;
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let mut failure = None;
        let fill = |buf: &mut [u8]| {
            self.package().and_then(|p| p.decrypt_native_into(&self.key, index, buf, threads)).map_err(|e| {
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
        // caller), which wasmtime checks again.
        let loaded = unsafe { crate::code_mem::load_trusted(engine, len, fill) };
        match (loaded, failure) {
            (Ok(module), _) => Ok(module),
            (Err(_), Some(e)) => Err(LaunchError::bad_file(&self.path)(e)),
            (Err(e), None) => Err(LaunchError::GuestStart(format!("the precompiled code could not be loaded: {e}"))),
        }
    }

    fn into_loaded(self, engine: wasmtime::Engine, module: wasmtime::Module, source: Source) -> Loaded {
        Loaded {
            manifest: self.manifest,
            license_path: self.license_path,
            license: self.license,
            engine,
            module,
            source,
            dongle: self.dongle,
        }
    }
}

/// A license that checked out, with the content key it unlocked.
struct Selected {
    path: PathBuf,
    license: License,
    /// Boxed as in [`Opened`].
    key: Box<ContentKey>,
    dongle: Option<Attached>,
}

/// The PKCS#11 modules, loaded when the first dongle license is tried and
/// finalized when the launch has its key.
struct Tokens<'a> {
    opts: &'a dongle::Options,
    libs: Option<Result<Modules, LaunchError>>,
    /// PIN outcomes by token serial: several licenses for one dongle ask
    /// for the PIN once, and never try a wrong one twice (a token counts
    /// every try).
    pins: Vec<(String, Result<cryptoki::types::AuthPin, sealrun_token::PinProblem>)>,
}

/// The modules that loaded, and every module tried (for messages).
type Modules = (Vec<Library>, Vec<PathBuf>);

/// The modules of `slot`, loaded on first use.
fn load_modules<'a>(
    slot: &'a mut Option<Result<Modules, LaunchError>>,
    opts: &dongle::Options,
) -> Result<&'a Modules, LaunchError> {
    let loaded = slot.get_or_insert_with(|| {
        let modules = opts.modules()?;
        let mut libs = Vec::new();
        let mut first_problem = None;
        for m in &modules {
            match Library::open(m) {
                Ok(l) => libs.push(l),
                Err(e) => {
                    tracing::debug!(module = %m.display(), error = %e, "PKCS#11 module not usable");
                    first_problem.get_or_insert(LaunchError::from(e));
                }
            }
        }
        match first_problem {
            Some(e) if libs.is_empty() => Err(e),
            _ => Ok((libs, modules)),
        }
    });
    match loaded {
        Ok(l) => Ok(l),
        Err(e) => Err(clone_module_error(e)),
    }
}

fn clone_module_error(e: &LaunchError) -> LaunchError {
    match e {
        LaunchError::DongleModule { module, reason } => {
            LaunchError::DongleModule { module: module.clone(), reason: reason.clone() }
        }
        other => LaunchError::DongleFailed { action: "cannot use the PKCS#11 modules", reason: other.to_string() },
    }
}

/// Checks a license sealed to a dongle: the dongle must be attached, its
/// record signed by the package's vendor and permitting this device; the
/// token then decrypts the license and the content key.
fn check_sealed(
    path: &Path,
    sealed: &SealedLicense,
    manifest: &Manifest,
    device: &Device,
    now: UnixTime,
    tokens: &mut Tokens<'_>,
) -> Result<Selected, LaunchError> {
    let opts = tokens.opts;
    let (libs, modules) = load_modules(&mut tokens.libs, opts)?;
    let mut attached = Vec::new();
    let mut found = None;
    for lib in libs {
        // A module that cannot list its tokens does not hide the others'.
        let listed = lib.tokens().unwrap_or_else(|e| {
            tracing::debug!(module = %lib.path().display(), error = %e, "cannot list tokens");
            Vec::new()
        });
        for t in listed {
            if let Some(Ok(r)) = &t.record {
                attached.push((r.dongle, t.label.clone()));
                if r.dongle == sealed.dongle && found.is_none() {
                    found = Some((lib, t.clone(), r.clone()));
                }
            }
        }
    }
    let Some((lib, view, record)) = found else {
        return Err(LaunchError::NoDongle {
            dongle: sealed.dongle,
            path: path.to_owned(),
            attached,
            modules: modules.clone(),
        });
    };
    record
        .verify(&manifest.vendor_key)
        .map_err(|source| LaunchError::DongleRecord { token: view.label.clone(), source })?;
    if record.device != device.code {
        return Err(LaunchError::DongleWrongDevice {
            dongle: record.dongle,
            permitted: record.device,
            this: device.code,
        });
    }
    let known = tokens.pins.iter().find(|(serial, _)| serial == &view.serial).map(|(_, r)| r.clone());
    let remembered = known.is_some();
    let pin = match known {
        Some(Ok(pin)) => pin,
        Some(Err(p)) => return Err(LaunchError::DonglePin(p)),
        None => opts.pin(&view.label)?,
    };
    let session = match lib.login(view.slot, &pin) {
        Ok(s) => s,
        Err(TokenError::Pin(p)) => {
            tokens.pins.push((view.serial.clone(), Err(p.clone())));
            return Err(LaunchError::DonglePin(p));
        }
        Err(e) => return Err(e.into()),
    };
    if !remembered {
        tokens.pins.push((view.serial.clone(), Ok(pin.clone())));
    }
    let unwrap_failed = || LaunchError::BadFile { path: path.to_owned(), source: sealrun_format::Error::UnwrapFailed };
    let token_failed = |e: DecryptFailed| match e {
        DecryptFailed::Refused => unwrap_failed(),
        DecryptFailed::Unavailable => LaunchError::DongleFailed {
            action: "the token stopped answering",
            reason: "it was pulled out or failed".into(),
        },
    };
    let plain = sealrun_token::decrypt(&session, &sealed.dongle, &sealed.decrypt_request()).map_err(token_failed)?;
    let license = sealed.open(&plain).map_err(LaunchError::bad_file(path))?;
    if matches!(license.terms.binding, Binding::Floating { .. }) {
        return Err(LaunchError::FloatingLicense { path: path.to_owned() });
    }
    let invalid_now = check_terms(path, &license, manifest, now)?;
    check_time(path, &license, device, now, invalid_now)?;
    let probe = license.dongle_key_request(&manifest.key_id).map_err(|_| unwrap_failed())?;
    let raw = sealrun_token::decrypt(&session, &sealed.dongle, &probe).map_err(token_failed)?;
    let key = license.key_from_dongle(&manifest.key_id, &raw).map_err(|_| unwrap_failed())?;
    let attached = Attached::new(lib, &view, &record, pin, probe, manifest.key_id);
    Ok(Selected { path: path.to_owned(), license, key: Box::new(key), dongle: Some(attached) })
}

/// Checks one license file of either kind and unlocks its content key.
fn check_any(
    path: &Path,
    manifest: &Manifest,
    device: &Device,
    now: UnixTime,
    tokens: &mut Tokens<'_>,
) -> Result<Selected, LaunchError> {
    let bytes = store::read_license_file(path)?;
    match AnyLicense::parse(&bytes).map_err(LaunchError::bad_file(path))? {
        AnyLicense::Sealed(sealed) => check_sealed(path, &sealed, manifest, device, now, tokens),
        AnyLicense::Plain(license) => {
            check_plain(path, &license, manifest, device, now)?;
            let key = license.unwrap_key(&manifest.key_id, &device.secret).map_err(LaunchError::bad_file(path))?;
            Ok(Selected { path: path.to_owned(), license: *license, key: Box::new(key), dongle: None })
        }
    }
}

fn check_plain(
    path: &Path,
    license: &License,
    manifest: &Manifest,
    device: &Device,
    now: UnixTime,
) -> Result<(), LaunchError> {
    let invalid_now = check_terms(path, license, manifest, now)?;
    match license.terms.binding {
        Binding::Device(licensed) if licensed != device.code => {
            Err(LaunchError::WrongDevice { path: path.to_owned(), licensed, this: device.code })
        }
        Binding::Device(_) => check_time(path, license, device, now, invalid_now),
        Binding::Floating { .. } => Err(LaunchError::FloatingLicense { path: path.to_owned() }),
        // A readable license that names a dongle was not sealed to it: no
        // token would ever be asked, so it is not a valid dongle license.
        Binding::Dongle { .. } => Err(LaunchError::BadFile {
            path: path.to_owned(),
            source: sealrun_format::Error::Malformed {
                artifact: sealrun_format::Artifact::License,
                field: "binding",
                problem: "names a dongle but the license is not sealed to it",
            },
        }),
    }
}

/// Why a license is not valid at the time checked: expired (true) or not
/// yet valid (false), and the instant concerned.
type InvalidNow = Option<(bool, UnixTime)>;

/// The signature chain up to the package's vendor key, product and
/// release. Whether the validity period holds `now` is returned for
/// [`check_time`], which must follow once the binding checks out.
fn check_terms(path: &Path, license: &License, manifest: &Manifest, now: UnixTime) -> Result<InvalidNow, LaunchError> {
    use sealrun_format::Error as F;
    license.verify_signature(&manifest.vendor_key).map_err(|e| match e {
        e @ F::OtherVendor { .. } => LaunchError::WrongProduct { path: path.to_owned(), source: e },
        other => LaunchError::BadFile { path: path.to_owned(), source: other },
    })?;
    // Another product or release is reported as such, whatever the clock.
    match license.check_covers(manifest, now) {
        Ok(()) => Ok(None),
        Err(F::Expired(t)) => Ok(Some((true, t))),
        Err(F::NotYetValid(t)) => Ok(Some((false, t))),
        Err(other) => Err(LaunchError::WrongProduct { path: path.to_owned(), source: other }),
    }
}

/// The validity period, for a license that is otherwise right for this
/// package and this device. For a time-limited license (one with an
/// expiry) the clock is first checked against this device's last-seen
/// record (`clock`): set back too far, the license is refused whatever its
/// period says. A license without an expiry never reads the record.
fn check_time(
    path: &Path,
    license: &License,
    device: &Device,
    now: UnixTime,
    invalid_now: InvalidNow,
) -> Result<(), LaunchError> {
    if license.terms.expires.is_some() {
        clock::check(device, path, now)?;
    }
    match invalid_now {
        None => Ok(()),
        Some((expired, t)) => {
            Err(LaunchError::NotValidNow { path: path.to_owned(), expired, when: fmt_time(t), now: fmt_time(now) })
        }
    }
}

fn select_license(
    package: &Path,
    explicit: Option<&Path>,
    manifest: &Manifest,
    device: &Device,
    now: UnixTime,
    tokens: &mut Tokens<'_>,
) -> Result<Selected, LaunchError> {
    if let Some(path) = explicit {
        return check_any(path, manifest, device, now, tokens);
    }
    let (searched, found) = store::candidates(package, &manifest.product);
    let mut best: Option<LaunchError> = None;
    for path in found {
        match check_any(&path, manifest, device, now, tokens) {
            Ok(s) => return Ok(s),
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
        // The right dongle is there: what stops it is the most useful news.
        LaunchError::DonglePin(_) => 7,
        LaunchError::DongleRecord { .. } => 6,
        // A sealed license is tried only when its product tag names this
        // product: "plug in the dongle" beats a stale device license.
        LaunchError::NoDongle { .. } | LaunchError::DongleWrongDevice { .. } => 5,
        LaunchError::ClockSetBack { .. } | LaunchError::ClockRecord { .. } | LaunchError::NotValidNow { .. } => 4,
        LaunchError::WrongProduct { .. } => 3,
        LaunchError::WrongDevice { .. } => 2,
        LaunchError::BadFile { .. } => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealrun_format::device::DeviceSecret;
    use sealrun_format::license::{LicenseSigner, Terms, issue};
    use sealrun_format::package::{PackageSpec, seal_to_vec};
    use sealrun_format::release::ReleaseRange;
    use sealrun_format::{Release, VendorSigningKey};

    /// A package rewritten in place between the license check and the
    /// decryption (same length, another header) is refused, not decrypted
    /// under the header the license was never checked against.
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
            capabilities: vec![],
            chunk_size_log2: 12,
            plaintext_len: module.len() as u64,
            icon: None,
        };
        let first = seal_to_vec(spec("App A"), &module, &content, &vendor, &mut rng).unwrap();
        let second = seal_to_vec(spec("App B"), &module, &content, &vendor, &mut rng).unwrap();
        assert_eq!(first.len(), second.len());
        let secret = DeviceSecret::from_bytes(&[3; 32]);
        let code = secret.device_code(b"machine");
        let device = Device::new(secret, code, dir.path().join("device.key"));
        let terms = Terms {
            license_id: [0; 16],
            vendor_key: vendor.public(),
            product: "com.example.app".into(),
            releases: ReleaseRange { min: Release::new(1, 0, 0), max: None },
            licensee: "T".into(),
            issued_at: 1,
            not_before: 1,
            expires: None,
            features: vec![],
            binding: Binding::Device(code),
        };
        let license =
            issue(terms, &[(Release::new(1, 0, 0), &content)], &LicenseSigner::Vendor(&vendor), &mut rng).unwrap();
        let (pkg, lic) = (dir.path().join("app.sealed"), dir.path().join("app.license"));
        std::fs::write(&pkg, &first).unwrap();
        std::fs::write(&lic, &license).unwrap();
        let opened = open(&pkg, Some(&lic), &device, 100).unwrap();
        assert_eq!(&opened.decrypt().unwrap()[..], &module[..], "control: the package opens");
        // Rewritten in place (the map sees it), same length.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&pkg)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &second))
            .unwrap();
        match opened.decrypt() {
            Err(LaunchError::BadFile { source, .. }) => {
                assert!(source.to_string().contains("changed while the package was being read"), "{source}")
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("a package changed after its license check was decrypted"),
        }
    }
}
