//! Finding and checking the license for a package and unwrapping its
//! content key, one file per binding: this device (`device`), a dongle
//! (`dongle`), a floating seat (`floating`), an online activation
//! (`online`), with the clock-tampering record (`clock`) and the license
//! store (`store`). Knows nothing of running: it is given the package's
//! manifest and returns the key; the runtime decrypts.
pub mod clock;
pub mod device;
pub mod dongle;
pub(crate) mod floating;
pub(crate) mod online;
pub mod store;

use std::path::{Path, PathBuf};

use sealrun_format::dongle::SealedLicense;
use sealrun_format::license::AnyLicense;
use sealrun_format::license::{Binding, License};
use sealrun_format::package::Manifest;
use sealrun_format::{ContentKey, UnixTime};
use sealrun_token::{DecryptFailed, Library, TokenError};

use crate::error::{DongleError, LaunchError, LicenseError, TokenFault};
use device::Device;
use dongle::Attached;

/// A license that checked out for a package, with the content key it
/// unwrapped; nothing is decrypted yet.
pub struct Unlocked {
    /// The license file (or the license server's address, for a seat).
    pub license_path: PathBuf,
    /// The license.
    pub license: License,
    /// The dongle that unlocked it, for a dongle-bound license: the app may
    /// run only while it stays attached.
    pub dongle: Option<Attached>,
    /// The floating seat it runs on, for a floating license.
    pub seat: Option<std::sync::Arc<floating::Seat>>,
    /// Boxed, so that moving an `Unlocked` moves a pointer and leaves no
    /// copy of the key in the frames it passes through.
    key: Box<ContentKey>,
}

impl Unlocked {
    /// The package's content key.
    pub fn key(&self) -> &ContentKey {
        &self.key
    }
}

/// Finds and checks a local license for the package at `package` (whose
/// manifest is `manifest`) on `device` at time `now`, and unwraps the
/// content key: `license` if given, else the installed ones. Dongles are
/// found as `dongles` says.
pub fn unlock(
    package: &Path,
    manifest: &Manifest,
    license: Option<&Path>,
    device: &Device,
    now: UnixTime,
    dongles: &dongle::Options,
) -> Result<Unlocked, LaunchError> {
    let mut tokens = Tokens { opts: dongles, libs: None, pins: Vec::new() };
    let s = select_license(package, license, manifest, device, now, &mut tokens)?;
    // Accepted: a time-limited license moves the last-seen record forward
    // (refused ones never do, see `clock`).
    if s.license.terms.expires.is_some() {
        clock::advance(device, now)?;
    }
    Ok(Unlocked { license_path: s.path, license: s.license, dongle: s.dongle, seat: None, key: s.key })
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
pub fn unlock_for_run(
    package: &Path,
    manifest: &Manifest,
    how: &RunLicense<'_>,
    device: &Device,
    now: UnixTime,
    on_queued: &mut dyn FnMut(&str, &str, u32, u32),
) -> Result<Unlocked, LaunchError> {
    let local = || unlock(package, manifest, how.license, device, now, how.tokens);
    let floating_file = how.license.filter(|l| l.extension().is_some_and(|e| e == floating::FLOATING_EXT));
    if how.license.is_some() && floating_file.is_none() && how.license_server.is_none() {
        return local();
    }
    let product = &manifest.product;
    let found = match floating_file {
        // `--license FILE.floating`: that server, for this run.
        Some(f) if how.license_server.is_none() => Some((floating::FloatingFile::read(f)?.spec_for(f, product)?, true)),
        _ => floating::find_server(how.license_server, product)?,
    };
    let Some((spec, named)) = found else {
        return local();
    };
    if !named {
        match local() {
            Ok(o) => return Ok(o),
            // No local license works: the site's seats are the way.
            Err(
                LaunchError::License(LicenseError::NotFound { .. })
                | LaunchError::License(LicenseError::WrongDevice { .. })
                | LaunchError::License(LicenseError::NotValidNow { .. })
                | LaunchError::License(LicenseError::ClockSetBack { .. })
                | LaunchError::License(LicenseError::ClockRecord { .. })
                | LaunchError::License(LicenseError::WrongProduct { .. })
                | LaunchError::License(LicenseError::Floating { .. }),
            ) => {}
            Err(e) => return Err(e),
        }
    }
    let url = spec.url.clone();
    let mut told = |position: u32, seats: u32| on_queued(product, &url, position, seats);
    unlock_floating(manifest, device, now, &spec, how.wait, &mut told)
}

/// A seat of the package's floating license, checked out from the license
/// server `spec` (waiting in line with `wait`).
///
/// No clock-tampering check here (`clock`): a floating license's validity
/// is decided by the license server's clock (it refuses to lend or renew a
/// seat of an expired license), so setting this computer's clock back gains
/// nothing. The server's own clock is the site administrator's to keep.
fn unlock_floating(
    manifest: &Manifest,
    device: &Device,
    now: UnixTime,
    spec: &floating::ServerSpec,
    wait: bool,
    on_queued: &mut dyn FnMut(u32, u32),
) -> Result<Unlocked, LaunchError> {
    let out = floating::checkout(spec, manifest, device, now, wait, on_queued)?;
    Ok(Unlocked {
        license_path: PathBuf::from(&spec.url),
        license: out.license,
        dongle: None,
        seat: Some(out.seat),
        key: Box::new(out.key),
    })
}

/// A license that checked out, with the content key it unlocked.
struct Selected {
    path: PathBuf,
    license: License,
    /// Boxed as in [`Unlocked`].
    key: Box<ContentKey>,
    dongle: Option<Attached>,
}

/// The PKCS#11 modules, loaded when the first dongle license is tried and
/// finalized when the launch has its key.
struct Tokens<'a> {
    opts: &'a dongle::Options,
    libs: Option<Modules>,
    /// PIN outcomes by token serial: several licenses for one dongle ask
    /// for the PIN once, and never try a wrong one twice (a token counts
    /// every try).
    pins: Vec<(String, Result<cryptoki::types::AuthPin, sealrun_token::PinProblem>)>,
}

/// The modules that loaded, and every module tried (for messages).
type Modules = (Vec<Library>, Vec<PathBuf>);

/// The modules of `slot`, loaded on first use. A failure is not kept: the
/// next dongle license tries again and reports the same cause.
fn load_modules<'a>(slot: &'a mut Option<Modules>, opts: &dongle::Options) -> Result<&'a Modules, LaunchError> {
    let loaded = match slot.take() {
        Some(m) => m,
        None => open_modules(opts)?,
    };
    Ok(slot.insert(loaded))
}

fn open_modules(opts: &dongle::Options) -> Result<Modules, LaunchError> {
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
        return Err(LaunchError::Dongle(DongleError::NotAttached {
            dongle: sealed.dongle,
            path: path.to_owned(),
            attached,
            modules: modules.clone(),
        }));
    };
    record
        .verify(&manifest.vendor_key)
        .map_err(|source| LaunchError::Dongle(DongleError::Record { token: view.label.clone(), source }))?;
    if record.device != device.code {
        return Err(LaunchError::Dongle(DongleError::WrongDevice {
            dongle: record.dongle,
            permitted: record.device,
            this: device.code,
        }));
    }
    let known = tokens.pins.iter().find(|(serial, _)| serial == &view.serial).map(|(_, r)| r.clone());
    let remembered = known.is_some();
    let pin = match known {
        Some(Ok(pin)) => pin,
        Some(Err(p)) => return Err(LaunchError::Dongle(DongleError::Pin(p))),
        None => opts.pin(&view.label)?,
    };
    let session = match lib.login(view.slot, &pin) {
        Ok(s) => s,
        Err(TokenError::Pin(p)) => {
            tokens.pins.push((view.serial.clone(), Err(p.clone())));
            return Err(LaunchError::Dongle(DongleError::Pin(p)));
        }
        Err(e) => return Err(e.into()),
    };
    if !remembered {
        tokens.pins.push((view.serial.clone(), Ok(pin.clone())));
    }
    let unwrap_failed = || LaunchError::BadFile { path: path.to_owned(), source: sealrun_format::Error::UnwrapFailed };
    let token_failed = |e: DecryptFailed| match e {
        DecryptFailed::Refused => unwrap_failed(),
        DecryptFailed::Unavailable => LaunchError::Dongle(DongleError::Failed {
            action: "the token stopped answering",
            source: TokenFault::PulledOut,
        }),
    };
    let plain = sealrun_token::decrypt(&session, &sealed.dongle, &sealed.decrypt_request()).map_err(token_failed)?;
    let license = sealed.open(&plain).map_err(LaunchError::bad_file(path))?;
    if matches!(license.terms.binding, Binding::Floating { .. }) {
        return Err(LaunchError::License(LicenseError::Floating { path: path.to_owned() }));
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
            Err(LaunchError::License(LicenseError::WrongDevice { path: path.to_owned(), licensed, this: device.code }))
        }
        Binding::Device(_) => check_time(path, license, device, now, invalid_now),
        Binding::Floating { .. } => Err(LaunchError::License(LicenseError::Floating { path: path.to_owned() })),
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
        e @ F::OtherVendor { .. } => {
            LaunchError::License(LicenseError::WrongProduct { path: path.to_owned(), source: e })
        }
        other => LaunchError::BadFile { path: path.to_owned(), source: other },
    })?;
    // Another product or release is reported as such, whatever the clock.
    match license.check_covers(manifest, now) {
        Ok(()) => Ok(None),
        Err(F::Expired(t)) => Ok(Some((true, t))),
        Err(F::NotYetValid(t)) => Ok(Some((false, t))),
        Err(other) => Err(LaunchError::License(LicenseError::WrongProduct { path: path.to_owned(), source: other })),
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
            Err(LaunchError::License(LicenseError::NotValidNow { path: path.to_owned(), expired, when: t, now }))
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
    Err(best.unwrap_or_else(|| {
        LaunchError::License(LicenseError::NotFound {
            product: manifest.product.clone(),
            name: manifest.display_name.clone(),
            device: device.code,
            searched,
        })
    }))
}

/// How much a refusal tells the user; the most telling one is reported
/// when several licenses were tried.
fn rank(e: &LaunchError) -> u8 {
    match e {
        // The right dongle is there: what stops it is the most useful news.
        LaunchError::Dongle(DongleError::Pin(_)) => 7,
        LaunchError::Dongle(DongleError::Record { .. }) => 6,
        // A sealed license is tried only when its product tag names this
        // product: "plug in the dongle" beats a stale device license.
        LaunchError::Dongle(DongleError::NotAttached { .. }) | LaunchError::Dongle(DongleError::WrongDevice { .. }) => {
            5
        }
        LaunchError::License(LicenseError::ClockSetBack { .. })
        | LaunchError::License(LicenseError::ClockRecord { .. })
        | LaunchError::License(LicenseError::NotValidNow { .. }) => 4,
        LaunchError::License(LicenseError::WrongProduct { .. }) => 3,
        LaunchError::License(LicenseError::WrongDevice { .. }) => 2,
        LaunchError::BadFile { .. } => 1,
        _ => 0,
    }
}
