//! Licenses sealed to hardware keys (dongles): which PKCS#11 modules and
//! PIN the user gave, opening a license through its dongle, and watching
//! that the dongle stays attached while the app runs. The token itself
//! (records, login, decryption, provisioning) is `sealrun-token`'s.
use std::path::PathBuf;
use std::time::Duration;

use sealrun_format::device::{DeviceCode, DeviceSecret};
use sealrun_format::dongle::{DongleId, DongleRecord, SealedLicense, TokenDecrypt};
use sealrun_format::{KeyId, VendorPublicKey};
use sealrun_token::cryptoki::types::AuthPin;
use sealrun_token::{DecryptFailed, Library, PinProblem, TokenView, checked_pin, decrypt, read_pin_file};
use zeroize::Zeroizing;

use crate::error::{DongleError, GuestError, LaunchError, LicenseError, TokenFault};

pub use sealrun_token::{KEY_LABEL, MAX_PIN_LEN, RECORD_LABEL};

/// Names the PKCS#11 module (the token driver's shared library).
pub const MODULE_ENV: &str = "SEALRUN_PKCS11_MODULE";
/// The token's user PIN.
pub const PIN_ENV: &str = "SEALRUN_PIN";
/// A file whose first line is the token's user PIN.
pub const PIN_FILE_ENV: &str = "SEALRUN_PIN_FILE";
/// Seconds between checks that the dongle is still attached while an app runs.
pub const CHECK_INTERVAL_ENV: &str = "SEALRUN_DONGLE_CHECK_SECS";
/// Seconds a removed dongle may stay away before the app is stopped.
pub const GRACE_ENV: &str = "SEALRUN_DONGLE_GRACE_SECS";
/// `SEALRUN_PIN` as [`take_pin_from_env`] took it: absent, not UTF-8
/// (`Err`), or the PIN.
type EnvPin = Option<Result<Zeroizing<String>, ()>>;
static ENV_PIN: std::sync::OnceLock<EnvPin> = std::sync::OnceLock::new();

/// Takes `SEALRUN_PIN` out of the process environment, keeping its value
/// here, so that no program the launcher starts (a dialog, a terminal
/// window, a PKCS#11 module's helpers) inherits the PIN. `main` calls it
/// first, before any thread exists.
#[allow(unsafe_code)]
pub fn take_pin_from_env() {
    let value = std::env::var_os(PIN_ENV);
    if value.is_some() {
        // SAFETY: called at the start of `main`, while the process has one
        // thread, so no other thread reads the environment meanwhile.
        unsafe { std::env::remove_var(PIN_ENV) };
    }
    let pin = value.filter(|v| !v.is_empty()).map(|v| v.into_string().map(Zeroizing::new).map_err(|_| ()));
    let _ = ENV_PIN.set(pin);
}

/// `SEALRUN_PIN`: as taken at start, or (in a process that did not take
/// it, such as a test or the license manager) as the environment has it.
fn env_pin() -> EnvPin {
    match ENV_PIN.get() {
        Some(taken) => taken.as_ref().map(|r| r.as_ref().map(|p| Zeroizing::new(p.to_string())).map_err(|&()| ())),
        None => std::env::var_os(PIN_ENV)
            .filter(|p| !p.is_empty())
            .map(|v| v.into_string().map(Zeroizing::new).map_err(|_| ())),
    }
}

/// Default check interval: a removal is noticed within a few seconds, while
/// a check (a login and one small decryption) costs the token a few
/// milliseconds every interval.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(3);
/// Default grace period: long enough to notice a pulled dongle and plug it
/// back in (or walk to fetch it), short enough that the dongle cannot serve a
/// second machine for long while this one waits.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(120);
/// Longest check interval a user may set: the user is who would gain from
/// a long one (a dongle pulled out and carried to a second computer is
/// noticed only at the next check), so it is bounded, at a minute.
pub const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// Longest grace period a user may set, for the same reason: ten minutes.
pub const MAX_GRACE: Duration = Duration::from_secs(600);
/// Where the PKCS#11 module and the PIN come from.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The module from `--pkcs11-module`.
    pub module: Option<PathBuf>,
    /// The PIN file from `--pin-file`.
    pub pin_file: Option<PathBuf>,
}

impl Options {
    /// The modules to try: the flag's, else `SEALRUN_PKCS11_MODULE`, else the
    /// config file's `pkcs11_module`, else every known location present
    /// ([`sealrun_token::KNOWN_MODULES`]).
    pub fn modules(&self) -> Result<Vec<PathBuf>, LaunchError> {
        if let Some(m) = &self.module {
            return Ok(vec![m.clone()]);
        }
        if let Some(m) = std::env::var_os(MODULE_ENV).filter(|m| !m.is_empty()) {
            return Ok(vec![PathBuf::from(m)]);
        }
        if let Some(m) = crate::config::Config::load()?.pkcs11_module {
            return Ok(vec![m]);
        }
        Ok(sealrun_token::installed_modules())
    }

    /// The PIN: the `--pin-file` flag's file, else `SEALRUN_PIN`, else
    /// `SEALRUN_PIN_FILE`'s file, else a prompt on the terminal.
    pub fn pin(&self, token: &str) -> Result<AuthPin, LaunchError> {
        if let Some(pin) = self.given_pin()? {
            return Ok(pin);
        }
        match sealrun_host::prompt::prompt_secret(&format!("PIN for dongle \"{token}\": ")) {
            Some(p) => Ok(checked_pin(p, "the prompt")?),
            None => Err(LaunchError::Dongle(DongleError::Pin(PinProblem::Missing))),
        }
    }

    /// The PIN if one was given (flag, environment), without asking.
    pub fn given_pin(&self) -> Result<Option<AuthPin>, LaunchError> {
        if self.pin_file.is_none()
            && let Some(p) = env_pin()
        {
            let p = p.map_err(|()| LaunchError::Dongle(DongleError::Pin(PinProblem::Unreadable(PIN_ENV.into()))))?;
            return Ok(Some(checked_pin(p, PIN_ENV)?));
        }
        let file = self.pin_file.clone().or_else(|| std::env::var_os(PIN_FILE_ENV).map(PathBuf::from));
        if let Some(f) = file {
            let text = read_pin_file(&f).ok_or_else(|| {
                LaunchError::Dongle(DongleError::Pin(PinProblem::Unreadable(f.display().to_string())))
            })?;
            let first = Zeroizing::new(text.lines().next().unwrap_or("").to_owned());
            return Ok(Some(checked_pin(first, &f.display().to_string())?));
        }
        Ok(None)
    }
}

/// An attached dongle that unlocked an app: what the launcher needs to check,
/// while the app runs, that the same dongle is still there.
pub struct Attached {
    /// The dongle.
    pub dongle: DongleId,
    /// The token's label, for messages.
    pub label: String,
    serial: String,
    module: PathBuf,
    pin: AuthPin,
    vendor: VendorPublicKey,
    device: DeviceCode,
    probe: TokenDecrypt,
    probe_key: KeyId,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Attached({} \"{}\")", self.dongle, self.label)
    }
}

/// Why a presence check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Absence {
    /// Not attached (or not answering) now; may come back.
    Away,
    /// Something is attached under this dongle's id that is not it (another
    /// PIN, another key, another device): waiting would not help, and
    /// retrying a PIN could lock a token.
    Replaced(String),
}

impl Attached {
    /// Records how to recognise the dongle again: `probe` is a decryption
    /// only its key can do, whose plaintext is the content key `probe_key`.
    pub(crate) fn new(
        lib: &Library,
        view: &TokenView,
        record: &DongleRecord,
        pin: AuthPin,
        probe: TokenDecrypt,
        probe_key: KeyId,
    ) -> Attached {
        Attached {
            dongle: record.dongle,
            label: view.label.clone(),
            serial: view.serial.clone(),
            module: lib.path().to_owned(),
            pin,
            vendor: record.vendor_key,
            device: record.device,
            probe,
            probe_key,
        }
    }

    /// Checks that this dongle is attached now: same serial and record, a
    /// valid record for this device, the PIN still opens it and its key still
    /// decrypts the probe to the same content key.
    pub fn check(&self) -> Result<(), Absence> {
        let lib = Library::open(&self.module).map_err(|_| Absence::Away)?;
        let found = lib.find(&self.dongle).map_err(|_| Absence::Away)?;
        let Some((view, record)) = found else { return Err(Absence::Away) };
        if view.serial != self.serial
            || record.verify(&self.vendor).is_err()
            || record.device != self.device
            || record.vendor_key != self.vendor
        {
            return Err(Absence::Replaced("a token with another serial number or attach record".into()));
        }
        let session = match lib.login(view.slot, &self.pin) {
            Ok(s) => s,
            // Not retried: a token counts every wrong try.
            Err(sealrun_token::TokenError::Pin(_)) => {
                return Err(Absence::Replaced("a token that no longer accepts the PIN given at launch".into()));
            }
            Err(_) => return Err(Absence::Away),
        };
        let plain = decrypt(&session, &self.dongle, &self.probe).map_err(|e| match e {
            DecryptFailed::Refused => Absence::Replaced("a token whose key is not this dongle's".into()),
            DecryptFailed::Unavailable => Absence::Away,
        })?;
        let id = <&[u8; 32]>::try_from(plain.as_slice()).map(|b| sealrun_format::ContentKey::from_bytes(b).id());
        if id.ok() != Some(self.probe_key) {
            return Err(Absence::Replaced("a token whose key is not this dongle's".into()));
        }
        Ok(())
    }
}

/// A license sealed to a dongle that this device holds for others (a
/// floating license for `sealrun-floatd`), opened through the token.
pub struct Held {
    /// The license, its vendor signature checked against the vendor key of
    /// the dongle's record.
    pub license: sealrun_format::license::License,
    /// Every content key it carries.
    pub keys: Vec<sealrun_format::ContentKey>,
    /// The dongle, to check that it stays attached.
    pub attached: Attached,
}

/// Opens `sealed` with the dongle it names, attached to this device (in
/// slot `slot` only, counted among slots with a token, if given): the
/// record must be signed by its vendor and permit `device`, and the license
/// inside must be signed by the same vendor.
pub fn open_held(
    opts: &Options,
    slot: Option<usize>,
    sealed: &SealedLicense,
    device: &DeviceCode,
) -> Result<Held, LaunchError> {
    let modules = opts.modules()?;
    let mut attached = Vec::new();
    for m in &modules {
        let Ok(lib) = Library::open(m) else { continue };
        let Ok(tokens) = lib.tokens() else { continue };
        for (index, view) in tokens.into_iter().enumerate() {
            if slot.is_some_and(|s| s != index) {
                continue;
            }
            let Some(Ok(record)) = view.record.clone() else { continue };
            if record.dongle != sealed.dongle {
                attached.push((record.dongle, view.label.clone()));
                continue;
            }
            record
                .verify(&record.vendor_key)
                .map_err(|source| LaunchError::Dongle(DongleError::Record { token: view.label.clone(), source }))?;
            if &record.device != device {
                return Err(LaunchError::Dongle(DongleError::WrongDevice {
                    dongle: record.dongle,
                    permitted: record.device,
                    this: *device,
                }));
            }
            let pin = opts.pin(&view.label)?;
            let session = lib.login(view.slot, &pin)?;
            let refused = |_| {
                LaunchError::Dongle(DongleError::Failed {
                    action: "the token did not open the license",
                    source: TokenFault::Refused,
                })
            };
            let plain = decrypt(&session, &sealed.dongle, &sealed.decrypt_request()).map_err(refused)?;
            let bad = |source| LaunchError::BadFile { path: PathBuf::from("the sealed license"), source };
            let license = sealed.open(&plain).map_err(bad)?;
            license.verify_signature(&record.vendor_key).map_err(bad)?;
            let mut keys = Vec::new();
            let mut probe = None;
            for k in &license.keys {
                let request = license.dongle_key_request(&k.key_id).map_err(bad)?;
                let raw = decrypt(&session, &sealed.dongle, &request).map_err(refused)?;
                keys.push(license.key_from_dongle(&k.key_id, &raw).map_err(bad)?);
                probe.get_or_insert((request, k.key_id));
            }
            let (probe, probe_key) = probe.ok_or_else(|| bad(sealrun_format::Error::UnwrapFailed))?;
            let attached = Attached::new(&lib, &view, &record, pin, probe, probe_key);
            return Ok(Held { license, keys, attached });
        }
    }
    Err(LaunchError::Dongle(DongleError::NotAttached {
        dongle: sealed.dongle,
        path: PathBuf::from("the floating license"),
        attached,
        modules,
    }))
}

/// What `sealrun dongle list` shows for one token.
pub struct Listed {
    /// The module that sees it.
    pub module: PathBuf,
    /// The token.
    pub token: TokenView,
}

/// Every token every candidate module sees, with problems loading modules.
pub fn list(opts: &Options) -> Result<(Vec<Listed>, Vec<LaunchError>), LaunchError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for m in opts.modules()? {
        match Library::open(&m).and_then(|lib| lib.tokens()) {
            Ok(tokens) => out.extend(tokens.into_iter().map(|token| Listed { module: m.clone(), token })),
            Err(e) => problems.push(e.into()),
        }
    }
    Ok((out, problems))
}

/// Has the token of `listed` (logged in with `pin`, once) open each of
/// `sealed` that is sealed to its dongle: the licenses inside, or why not.
pub fn open_licenses(
    listed: &Listed,
    pin: &AuthPin,
    sealed: &[&sealrun_format::dongle::SealedLicense],
) -> Result<Vec<Result<sealrun_format::license::License, sealrun_format::Error>>, LaunchError> {
    let Some(Ok(record)) = &listed.token.record else { return Ok(Vec::new()) };
    let lib = Library::open(&listed.module)?;
    let view = lib.find(&record.dongle)?.map(|(v, _)| v).filter(|v| v.serial == listed.token.serial);
    let Some(view) = view else { return Ok(Vec::new()) };
    let session = lib.login(view.slot, pin)?;
    Ok(sealed
        .iter()
        .map(|s| {
            let plain = decrypt(&session, &record.dongle, &s.decrypt_request())
                .map_err(|_| sealrun_format::Error::UnwrapFailed)?;
            // Shown only if the vendor of the dongle signed it.
            s.open(&plain).and_then(|l| l.verify_signature(&record.vendor_key).map(|()| l))
        })
        .collect())
}

/// Watches that the dongle stays attached while the app runs.
pub struct DongleWatch {
    attached: Attached,
    interval: Duration,
    grace: Duration,
}

/// A time setting from the variable `env` (its value `from_env`: seconds,
/// decimals allowed), else the config file's `key` (whole seconds), else
/// `default`; above 0 and at most `max`.
fn secs_setting(
    (env, from_env): (&str, Option<String>),
    config: Option<u64>,
    key: &str,
    default: Duration,
    max: Duration,
) -> Result<Duration, LaunchError> {
    let most = max.as_secs();
    match from_env {
        Some(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= max.as_secs_f64() => Ok(Duration::from_secs_f64(s)),
            _ => Err(LaunchError::Usage(format!("{env}={v:?}: give a number of seconds above 0 and at most {most}"))),
        },
        None => match config.map(Duration::from_secs).filter(|d| !d.is_zero()) {
            Some(d) if d > max => Err(LaunchError::Usage(format!(
                "{key} = {} in {}: give at most {most} seconds",
                d.as_secs(),
                crate::config::file().display()
            ))),
            Some(d) => Ok(d),
            None => Ok(default),
        },
    }
}

impl DongleWatch {
    /// Checks every `SEALRUN_DONGLE_CHECK_SECS` (or the config file's
    /// `dongle_check_secs`, or [`DEFAULT_CHECK_INTERVAL`]), with a grace of
    /// `SEALRUN_DONGLE_GRACE_SECS` (or `dongle_grace_secs`, or [`DEFAULT_GRACE`]).
    pub fn new(attached: Attached) -> Result<DongleWatch, LaunchError> {
        let config = crate::config::Config::load()?;
        let var = |name: &'static str| (name, std::env::var(name).ok());
        let interval = secs_setting(
            var(CHECK_INTERVAL_ENV),
            config.dongle_check_secs,
            "dongle_check_secs",
            DEFAULT_CHECK_INTERVAL,
            MAX_CHECK_INTERVAL,
        )?;
        let grace =
            secs_setting(var(GRACE_ENV), config.dongle_grace_secs, "dongle_grace_secs", DEFAULT_GRACE, MAX_GRACE)?;
        Ok(DongleWatch { attached, interval, grace })
    }
}

impl crate::watch::Watch for DongleWatch {
    fn interval(&self) -> Duration {
        self.interval
    }
    fn grace(&self) -> Duration {
        self.grace
    }
    fn check(&mut self) -> Result<(), crate::watch::Lost> {
        use crate::watch::Lost;
        match self.attached.check() {
            Ok(()) => Ok(()),
            Err(Absence::Away) => Err(Lost::Away("was removed".into())),
            Err(Absence::Replaced(what)) => Err(Lost::Gone(format!("was replaced by {what}"))),
        }
    }
    fn paused(&self, why: &str) -> String {
        format!(
            "dongle \"{}\" {why}: the app is paused. Plug it back in within {} s to continue.",
            self.attached.label,
            self.grace.as_secs()
        )
    }
    fn resumed(&self) -> String {
        format!("dongle \"{}\" is back: the app continues.", self.attached.label)
    }
    fn give_up(&self, why: &str) -> LaunchError {
        // Gone for good (replaced) is reported as such, without a grace period.
        let grace = if why.starts_with("was removed") { Some(self.grace) } else { None };
        LaunchError::Dongle(DongleError::Removed { token: self.attached.label.clone(), grace, why: why.to_owned() })
    }
}

/// One of the runs a license's count allows, held while the app runs: a
/// Unix socket bound to one of `count` names in the abstract namespace,
/// which the kernel frees when the process ends in any way (so a crash
/// never leaks a run).
///
/// Not a lock file: a lock is on a file, and the file's name can be
/// deleted under its holder, after which a second copy creates and locks a
/// new file of the same name (an outside review ran two copies on a count
/// of 1 with one `rm`). An abstract name has no file to delete: only its
/// holder can give it up. The names are derived from the device secret
/// ([`DeviceSecret::local_name`]), so another user of the machine cannot
/// compute them in advance. What is left (docs/hardware-keys.md): names in
/// use are listed in `/proc/net/unix`, so another local user who watches a
/// run can bind its names after it ends and block later runs (denial of
/// service, never an extra run); and abstract names belong to a network
/// namespace, so a copy started in a namespace of its own (`unshare -rn`,
/// where user namespaces are allowed) counts apart.
#[derive(Debug)]
pub struct RunSlot {
    _name: std::os::unix::net::UnixListener,
}

impl RunSlot {
    /// Takes a free run of `license` for `device` if its binding has a
    /// count; `None` for licenses without one. A paused run keeps its slot,
    /// so a dongle pulled and plugged back in never lets one more copy start.
    pub fn claim(
        license: &sealrun_format::license::License,
        device: &DeviceSecret,
    ) -> Result<Option<RunSlot>, LaunchError> {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixListener};
        let sealrun_format::license::Binding::Dongle { count, .. } = license.terms.binding else { return Ok(None) };
        for k in 0..count {
            let mut data = license.terms.license_id.to_vec();
            data.extend_from_slice(&k.to_be_bytes());
            let name = format!("sealrun-run-{}", hex::encode(device.local_name(b"dongle run slot", &data)));
            let addr = SocketAddr::from_abstract_name(name.as_bytes())
                .map_err(|e| GuestError::start("cannot name a run slot", e))?;
            match UnixListener::bind_addr(&addr) {
                Ok(l) => return Ok(Some(RunSlot { _name: l })),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(GuestError::start("cannot take a run slot", e)),
            }
        }
        Err(LaunchError::License(LicenseError::CountReached { product: license.terms.product.clone(), count }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check interval and grace are bounded (issue 24, finding 8): a
    /// user who sets a day long one could carry the dongle to a second
    /// computer and back before the first noticed.
    /// A PIN file is a regular file of at most 4 KiB (issue 24, finding
    /// 2: files named in config are type-checked and bounded).
    #[test]
    fn pin_files_are_bounded_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("pin");
        std::fs::write(&good, "123456\nignored\n").unwrap();
        let opts = Options { module: None, pin_file: Some(good) };
        assert!(opts.given_pin().unwrap().is_some());
        for bad in [PathBuf::from("/dev/zero"), dir.path().to_owned(), dir.path().join("missing")] {
            let opts = Options { module: None, pin_file: Some(bad.clone()) };
            assert!(
                matches!(opts.given_pin(), Err(LaunchError::Dongle(DongleError::Pin(PinProblem::Unreadable(_))))),
                "{bad:?}"
            );
        }
        let big = dir.path().join("big");
        std::fs::write(&big, "1".repeat(5000)).unwrap();
        let opts = Options { module: None, pin_file: Some(big) };
        assert!(opts.given_pin().is_err());
    }

    #[test]
    fn presence_check_settings_are_bounded() {
        let check = |env: Option<&str>, config: Option<u64>| {
            secs_setting(
                (CHECK_INTERVAL_ENV, env.map(str::to_owned)),
                config,
                "dongle_check_secs",
                DEFAULT_CHECK_INTERVAL,
                MAX_CHECK_INTERVAL,
            )
        };
        assert_eq!(check(None, None).unwrap(), DEFAULT_CHECK_INTERVAL);
        assert_eq!(check(Some("0.5"), None).unwrap(), Duration::from_millis(500));
        assert_eq!(check(Some("60"), Some(1)).unwrap(), MAX_CHECK_INTERVAL, "the variable wins");
        assert_eq!(check(None, Some(60)).unwrap(), MAX_CHECK_INTERVAL);
        for bad in ["86400", "60.5", "0", "-1", "inf", "NaN", "soon"] {
            let e = check(Some(bad), None).unwrap_err().to_string();
            assert!(e.contains("at most 60"), "{bad}: {e}");
        }
        let e = check(None, Some(86_400)).unwrap_err().to_string();
        assert!(e.contains("dongle_check_secs = 86400") && e.contains("at most 60"), "{e}");
        let grace = secs_setting((GRACE_ENV, Some("601".into())), None, "dongle_grace_secs", DEFAULT_GRACE, MAX_GRACE);
        assert!(grace.unwrap_err().to_string().contains("at most 600"));
    }
}
