//! The launcher's one error type, grouped by concern (license, dongle,
//! seat, activation, device, guest; damaged files, I/O, usage). Every
//! variant has its exit code here; its `Display` states the problem in one
//! line. The next step for the end user is the CLI's to tell
//! (`crate::cli::advice`), next to what prints it.
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use cryptoki::error::Error as CkError;
use sealrun_format::UnixTime;
use sealrun_format::device::DeviceCode;
use sealrun_format::dongle::DongleId;
use sealrun_host::time::rfc3339;
pub use sealrun_token::PinProblem;

/// A cause from a library whose error type is opaque here (wasmtime's, the
/// OS's machine-ID lookup).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Exit codes of `sealrun` (the README has the table). A guest's own exit
/// code is passed through unchanged; the launcher's own codes sit at 200
/// and above, where programs rarely put theirs.
pub mod exit {
    /// Bad command line (clap's convention).
    pub const USAGE: u8 = 2;
    /// No license for this product was found.
    pub const NO_LICENSE: u8 = 200;
    /// The license is bound to another device.
    pub const WRONG_DEVICE: u8 = 201;
    /// The license is for another product or release.
    pub const WRONG_PRODUCT: u8 = 202;
    /// The license is expired or not yet valid.
    pub const NOT_VALID_NOW: u8 = 203;
    /// The package or license is damaged or was tampered with.
    pub const DAMAGED: u8 = 204;
    /// The package is truncated (incomplete download).
    pub const TRUNCATED: u8 = 205;
    /// The file uses a format version this launcher does not read.
    pub const UNSUPPORTED_VERSION: u8 = 206;
    /// The file is not a Sealrun package or license.
    pub const NOT_SEALRUN: u8 = 207;
    /// The device identity is unavailable (no machine ID, foreign key file).
    pub const DEVICE: u8 = 208;
    /// A file could not be read or written.
    pub const IO: u8 = 209;
    /// The app trapped (crashed).
    pub const GUEST_TRAP: u8 = 210;
    /// The app ran out of its memory limit.
    pub const GUEST_OOM: u8 = 211;
    /// The app could not be started (bad module, missing import, bad --dir).
    pub const GUEST_START: u8 = 212;
    /// The app ran past its `--timeout`.
    pub const TIMED_OUT: u8 = 213;
    /// The licensing server refused (bad or used-up code, …).
    pub const SERVER_REFUSED: u8 = 214;
    /// The licensing server could not be reached.
    pub const SERVER_UNREACHABLE: u8 = 215;
    /// The dongle the license needs is not attached, or no PKCS#11 module
    /// can reach it.
    pub const NO_DONGLE: u8 = 216;
    /// The dongle's PIN is missing, wrong or locked.
    pub const DONGLE_PIN: u8 = 217;
    /// The dongle was removed while the app ran and did not come back in time.
    pub const DONGLE_REMOVED: u8 = 218;
    /// As many copies of the app as the license allows are already running.
    pub const COUNT_REACHED: u8 = 219;
    /// Every seat of the floating license is in use (and `--wait` was not given).
    pub const SEATS_IN_USE: u8 = 220;
    /// The site's license manager (`sealrun-floatd`) could not be reached.
    pub const LICENSE_SERVER_UNREACHABLE: u8 = 221;
    /// The site's license manager refused (unknown product, release not
    /// covered, license expired, …).
    pub const LICENSE_SERVER_REFUSED: u8 = 222;
    /// The app's floating seat was lost (revoked, or not regained with
    /// `--on-seat-loss stop`), and the app was stopped.
    pub const SEAT_LOST: u8 = 223;
    /// A time-limited license was not used: this computer's clock is behind
    /// the last time a time-limited app ran here by more than the tolerance,
    /// or the record of that time is damaged or from another device.
    pub const CLOCK_SET_BACK: u8 = 224;
    /// Its terminal closed: SIGHUP (128 + 1).
    pub const HUNG_UP: u8 = 129;
    /// Interrupted by SIGINT (128 + 2).
    pub const INTERRUPTED: u8 = 130;
    /// Terminated by SIGTERM (128 + 15).
    pub const TERMINATED: u8 = 143;
}

/// What went wrong, grouped by concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// Finding or checking the license.
    #[error(transparent)]
    License(#[from] LicenseError),
    /// The dongle a license is sealed to.
    #[error(transparent)]
    Dongle(#[from] DongleError),
    /// A floating seat from the site's license manager.
    #[error(transparent)]
    Seat(#[from] SeatError),
    /// The vendor's licensing server (activation codes).
    #[error(transparent)]
    Activation(#[from] ActivationError),
    /// This device's identity.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Starting or running the app.
    #[error(transparent)]
    Guest(#[from] GuestError),
    /// A file is damaged, tampered with, truncated, of another version or not ours.
    #[error("{}: {source}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// The format error.
        source: sealrun_format::Error,
    },
    /// A file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command-line value is invalid (the text says which and why).
    #[error("{0}")]
    Usage(String),
}

/// Finding or checking the license for a package.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LicenseError {
    /// No license was found for the product.
    #[error("no license for {product} was found on this device")]
    NotFound {
        /// Product id.
        product: String,
        /// Display name.
        name: String,
        /// This device's code.
        device: DeviceCode,
        /// Where the launcher looked.
        searched: Vec<PathBuf>,
    },
    /// The license is bound to another device.
    #[error("the license {} is for another device ({licensed}, not {this})", path.display())]
    WrongDevice {
        /// The license file.
        path: PathBuf,
        /// The device the license is for.
        licensed: DeviceCode,
        /// This device.
        this: DeviceCode,
    },
    /// The license is for another product or release, or lacks this build's key.
    #[error("the license {} does not cover this package: {source}", path.display())]
    WrongProduct {
        /// The license file.
        path: PathBuf,
        /// What does not match.
        source: sealrun_format::Error,
    },
    /// The license is expired or not valid yet.
    #[error("the license {} is {} {}; the clock says {}", path.display(),
        if *expired { "expired since" } else { "not valid before" }, rfc3339(*when), rfc3339(*now))]
    NotValidNow {
        /// The license file.
        path: PathBuf,
        /// Expired (true) or not yet valid (false).
        expired: bool,
        /// The instant concerned.
        when: UnixTime,
        /// What this computer's clock says.
        now: UnixTime,
    },
    /// A time-limited license was not used: the clock is behind the last
    /// time a time-limited license was accepted here, by more than
    /// [`crate::license::clock::CLOCK_SETBACK_TOLERANCE`].
    #[error("the clock was set back by {}s, so the time-limited license {} is not used", by.as_secs(), license.display())]
    ClockSetBack {
        /// The license file.
        license: PathBuf,
        /// What the clock says (Unix seconds).
        now: UnixTime,
        /// When this device last accepted a time-limited license (Unix seconds).
        last_seen: UnixTime,
        /// How far the clock is behind that.
        by: std::time::Duration,
        /// How far behind it may be ([`crate::license::clock::CLOCK_SETBACK_TOLERANCE`]).
        tolerance: std::time::Duration,
    },
    /// The record of when a time-limited license was last accepted does not
    /// open: damaged, edited, copied from another device, or of another version.
    #[error("the clock record {} does not check out: {source}", path.display())]
    ClockRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong with it.
        source: sealrun_format::Error,
    },
    /// The license is a floating license, for `sealrun-floatd`.
    #[error("the license {} is a floating license, served by sealrun-floatd", path.display())]
    Floating {
        /// The license file.
        path: PathBuf,
    },
    /// As many copies of the app as the license allows already run.
    #[error("{count} copies of {product} may run at once, and that many already run")]
    CountReached {
        /// The product.
        product: String,
        /// The license's count.
        count: u32,
    },
    /// `deactivate` found no activation to give back.
    #[error("no license for {product} on this device came from an activation code")]
    NothingToDeactivate {
        /// Product id.
        product: String,
    },
}

/// The dongle (PKCS#11 token) a license is sealed to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DongleError {
    /// The dongle a license is sealed to is not attached.
    #[error("the license {} needs dongle {dongle}, which is not attached", path.display())]
    NotAttached {
        /// The dongle the license needs.
        dongle: DongleId,
        /// The license file.
        path: PathBuf,
        /// Sealrun dongles that are attached (id and label).
        attached: Vec<(DongleId, String)>,
        /// The PKCS#11 modules searched.
        modules: Vec<PathBuf>,
    },
    /// A PKCS#11 module could not be loaded or initialised.
    #[error("the PKCS#11 module {} cannot be used: {source}", module.display())]
    Module {
        /// The module.
        module: PathBuf,
        /// What the loader or `C_Initialize` said (shared: a module's
        /// failure is reported for every license that needs it).
        source: Arc<CkError>,
    },
    /// A token operation failed.
    #[error("dongle: {action}: {source}")]
    Failed {
        /// What was being done.
        action: &'static str,
        /// Why.
        source: TokenFault,
    },
    /// The attach record on a token is damaged or was altered.
    #[error("the attach record on dongle \"{token}\" does not check out: {source}")]
    Record {
        /// The token's label.
        token: String,
        /// What is wrong.
        source: sealrun_format::Error,
    },
    /// The dongle is permitted on another device.
    #[error("dongle {dongle} is permitted on another device ({permitted}, not {this})")]
    WrongDevice {
        /// The dongle.
        dongle: DongleId,
        /// The device its record permits.
        permitted: DeviceCode,
        /// This device.
        this: DeviceCode,
    },
    /// The dongle's PIN is missing, wrong or locked.
    #[error(transparent)]
    Pin(PinProblem),
    /// The dongle was removed while the app ran and did not come back.
    #[error("the app was stopped: dongle \"{token}\" {why}")]
    Removed {
        /// The dongle's label.
        token: String,
        /// How long the launcher waited (`None`: it stopped at once, the
        /// dongle could not come back).
        grace: Option<std::time::Duration>,
        /// What the watcher saw, e.g. "was removed", "was replaced by …".
        why: String,
    },
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFault {
    /// The token's own error.
    #[error(transparent)]
    Token(CkError),
    /// The token went away during the operation.
    #[error("it is gone")]
    Gone,
    /// The token stopped answering mid-operation.
    #[error("it was pulled out or failed")]
    PulledOut,
    /// The token refused to decrypt what it was given.
    #[error("it is damaged, or sealed to another dongle")]
    Refused,
}

/// A floating seat from the site's license manager (`sealrun-floatd`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeatError {
    /// Every seat of the floating license is in use.
    #[error("all {seats} seats of {product} are in use (license server {server})")]
    InUse {
        /// The product id.
        product: String,
        /// Seats of the license.
        seats: u32,
        /// Since when all are in use (Unix seconds).
        since: u64,
        /// The license server.
        server: String,
    },
    /// The site's license manager could not be reached.
    #[error("cannot reach the license server {server}: {reason}")]
    Unreachable {
        /// The license server.
        server: String,
        /// What failed (the transport's error, or what was wrong with the answer).
        reason: String,
    },
    /// The site's license manager refused.
    #[error("the license server {server} refused: {reason}")]
    Refused {
        /// The license server.
        server: String,
        /// Its message, or what did not check out in its answer.
        reason: String,
    },
    /// The floating seat was lost while the app ran.
    #[error("the app was stopped: its seat of {product} {why}")]
    Lost {
        /// The product id.
        product: String,
        /// What happened, e.g. "was revoked by the site administrator".
        why: String,
    },
}

/// The vendor's licensing server (online activation).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// The licensing server refused a request.
    #[error("the licensing server refused: {detail} (HTTP {status})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's message (it names the problem and the next step).
        detail: String,
    },
    /// The licensing server could not be reached, or its answer is not one.
    #[error("cannot reach the licensing server {url}: {reason}")]
    Unreachable {
        /// The server.
        url: String,
        /// What failed (the transport's error, or what was wrong with the answer).
        reason: String,
    },
}

/// This device's identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The machine has no machine ID.
    #[error("this machine has no machine ID ({})", machine_id_problem(.0.as_ref()))]
    NoMachineId(Option<BoxError>),
    /// The device key file belongs to another machine or is damaged.
    #[error("the device key {} was made on another machine or is damaged", .0.display())]
    ForeignKey(PathBuf),
}

fn machine_id_problem(source: Option<&BoxError>) -> String {
    source.map_or_else(|| "the machine ID is empty".to_owned(), ToString::to_string)
}

/// Starting or running the app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuestError {
    /// The app could not be started.
    #[error("the app could not be started: {}", start_problem(step, source.as_ref()))]
    Start {
        /// What was being set up ("" when the cause says it all).
        step: Cow<'static, str>,
        /// wasmtime's or the OS's error, when there is one.
        source: Option<BoxError>,
    },
    /// The app trapped, or broke a limit of the sandbox.
    #[error("the app crashed: {0}")]
    Trap(BoxError),
    /// The app exceeded its memory limit.
    #[error("the app ran out of memory: it needed more than the {limit_mib} MiB limit")]
    OutOfMemory {
        /// The limit in MiB.
        limit_mib: u64,
    },
    /// The app ran past its time limit.
    #[error("the app was stopped after its time limit of {} s (--timeout)", limit.as_secs_f64())]
    TimedOut {
        /// The limit.
        limit: std::time::Duration,
    },
    /// The run was interrupted by a signal.
    #[error("the app was stopped by signal {signal}")]
    Interrupted {
        /// The signal number.
        signal: i32,
    },
}

fn start_problem(step: &str, source: Option<&BoxError>) -> String {
    match (step.is_empty(), source) {
        (true, Some(e)) => e.to_string(),
        (false, Some(e)) => format!("{step}: {e}"),
        (_, None) => step.to_owned(),
    }
}

impl GuestError {
    /// The app could not be started while doing `step`, because of `source`.
    pub(crate) fn start(step: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> LaunchError {
        LaunchError::Guest(GuestError::Start { step: step.into(), source: Some(source.into()) })
    }

    /// The app could not be started: `problem` says why.
    pub(crate) fn cannot_start(problem: impl Into<Cow<'static, str>>) -> LaunchError {
        LaunchError::Guest(GuestError::Start { step: problem.into(), source: None })
    }
}

impl From<sealrun_token::TokenError> for LaunchError {
    fn from(e: sealrun_token::TokenError) -> LaunchError {
        use sealrun_token::TokenError as T;
        match e {
            T::Module { module, source } => DongleError::Module { module, source: Arc::new(source) }.into(),
            T::Failed { action, source } => DongleError::Failed { action, source: TokenFault::Token(source) }.into(),
            T::Gone { action } => DongleError::Failed { action, source: TokenFault::Gone }.into(),
            T::Pin(p) => DongleError::Pin(p).into(),
            other => LaunchError::Usage(other.to_string()),
        }
    }
}

impl LaunchError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        use sealrun_format::Error as F;
        match self {
            LaunchError::License(e) => match e {
                LicenseError::NotFound { .. } | LicenseError::NothingToDeactivate { .. } => exit::NO_LICENSE,
                LicenseError::WrongDevice { .. } | LicenseError::Floating { .. } => exit::WRONG_DEVICE,
                LicenseError::WrongProduct { .. } => exit::WRONG_PRODUCT,
                LicenseError::NotValidNow { .. } => exit::NOT_VALID_NOW,
                LicenseError::ClockSetBack { .. } | LicenseError::ClockRecord { .. } => exit::CLOCK_SET_BACK,
                LicenseError::CountReached { .. } => exit::COUNT_REACHED,
            },
            LaunchError::BadFile { source, .. } => match source {
                F::Truncated { .. } => exit::TRUNCATED,
                F::UnsupportedVersion { .. } => exit::UNSUPPORTED_VERSION,
                F::NotSealrun(_) => exit::NOT_SEALRUN,
                _ => exit::DAMAGED,
            },
            LaunchError::Device(_) => exit::DEVICE,
            LaunchError::Io { .. } => exit::IO,
            LaunchError::Usage(_) => exit::USAGE,
            LaunchError::Guest(e) => match e {
                GuestError::Start { .. } => exit::GUEST_START,
                GuestError::Trap(_) => exit::GUEST_TRAP,
                GuestError::OutOfMemory { .. } => exit::GUEST_OOM,
                GuestError::TimedOut { .. } => exit::TIMED_OUT,
                GuestError::Interrupted { signal } if *signal == signal_hook::consts::SIGTERM => exit::TERMINATED,
                GuestError::Interrupted { signal } if *signal == signal_hook::consts::SIGHUP => exit::HUNG_UP,
                GuestError::Interrupted { .. } => exit::INTERRUPTED,
            },
            LaunchError::Activation(ActivationError::Refused { .. }) => exit::SERVER_REFUSED,
            LaunchError::Activation(ActivationError::Unreachable { .. }) => exit::SERVER_UNREACHABLE,
            LaunchError::Dongle(e) => match e {
                DongleError::NotAttached { .. } | DongleError::Module { .. } | DongleError::Failed { .. } => {
                    exit::NO_DONGLE
                }
                DongleError::Record { .. } => exit::DAMAGED,
                DongleError::WrongDevice { .. } => exit::WRONG_DEVICE,
                DongleError::Pin(_) => exit::DONGLE_PIN,
                DongleError::Removed { .. } => exit::DONGLE_REMOVED,
            },
            LaunchError::Seat(e) => match e {
                SeatError::InUse { .. } => exit::SEATS_IN_USE,
                SeatError::Unreachable { .. } => exit::LICENSE_SERVER_UNREACHABLE,
                SeatError::Refused { .. } => exit::LICENSE_SERVER_REFUSED,
                SeatError::Lost { .. } => exit::SEAT_LOST,
            },
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LaunchError {
        let path = path.into();
        move |source| LaunchError::Io { action, path, source }
    }

    pub(crate) fn bad_file(path: impl Into<PathBuf>) -> impl FnOnce(sealrun_format::Error) -> LaunchError {
        let path = path.into();
        move |source| LaunchError::BadFile { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain of causes is there for those who walk it (logs, floatd).
    #[test]
    fn wrapped_causes_are_sources() {
        use std::error::Error as _;
        let e = LaunchError::from(LicenseError::WrongProduct {
            path: "x.license".into(),
            source: sealrun_format::Error::UnwrapFailed,
        });
        let inner = e.source().expect("the group is transparent: its source is the license's cause");
        assert_eq!(inner.to_string(), sealrun_format::Error::UnwrapFailed.to_string());
        let io = LaunchError::io("cannot read", "/nowhere")(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(io.source().is_some_and(|s| s.is::<std::io::Error>()));
        let start = GuestError::start("WASI", std::io::Error::other("no"));
        assert_eq!(start.to_string(), "the app could not be started: WASI: no");
        assert!(start.source().is_some());
    }
}
