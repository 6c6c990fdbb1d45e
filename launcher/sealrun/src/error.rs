//! The launcher's one error type. Every variant has its own exit code and a
//! message that names the problem and the next step for the end user.
use std::fmt;
use std::path::PathBuf;

use sealrun_format::device::DeviceCode;
use sealrun_format::dongle::DongleId;
use sealrun_host::time::{fmt_duration, rfc3339};
pub use sealrun_token::PinProblem;

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

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum LaunchError {
    /// No license was found for the product.
    NoLicense {
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
    WrongDevice {
        /// The license file.
        path: PathBuf,
        /// The device the license is for.
        licensed: DeviceCode,
        /// This device.
        this: DeviceCode,
    },
    /// The license is for another product or release, or lacks this build's key.
    WrongProduct {
        /// The license file.
        path: PathBuf,
        /// What does not match.
        source: sealrun_format::Error,
    },
    /// The license is expired or not valid yet.
    NotValidNow {
        /// The license file.
        path: PathBuf,
        /// Expired (true) or not yet valid (false).
        expired: bool,
        /// The instant concerned, RFC 3339.
        when: String,
        /// What this computer's clock says, RFC 3339.
        now: String,
    },
    /// A time-limited license was not used: the clock is behind the last
    /// time a time-limited license was accepted here, by more than
    /// [`crate::license::clock::CLOCK_SETBACK_TOLERANCE`].
    ClockSetBack {
        /// The license file.
        license: PathBuf,
        /// What the clock says (Unix seconds).
        now: sealrun_format::UnixTime,
        /// When this device last accepted a time-limited license (Unix seconds).
        last_seen: sealrun_format::UnixTime,
        /// How far the clock is behind that.
        by: std::time::Duration,
        /// How far behind it may be ([`crate::license::clock::CLOCK_SETBACK_TOLERANCE`]).
        tolerance: std::time::Duration,
    },
    /// The record of when a time-limited license was last accepted does not
    /// open: damaged, edited, copied from another device, or of another version.
    ClockRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong with it.
        source: sealrun_format::Error,
    },
    /// A file is damaged, tampered with, truncated, of another version or not ours.
    BadFile {
        /// The file.
        path: PathBuf,
        /// The format error.
        source: sealrun_format::Error,
    },
    /// The machine has no machine ID.
    NoMachineId(String),
    /// The device key file belongs to another machine or is damaged.
    ForeignDeviceKey(PathBuf),
    /// A file operation failed.
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command-line value is invalid.
    Usage(String),
    /// The app could not be started.
    GuestStart(String),
    /// The app trapped.
    GuestTrap(String),
    /// The app exceeded its memory limit.
    GuestOutOfMemory {
        /// The limit in MiB.
        limit_mib: u64,
    },
    /// The app ran past its time limit.
    TimedOut {
        /// The limit.
        limit: std::time::Duration,
    },
    /// The run was interrupted by a signal.
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// The licensing server refused a request.
    ServerRefused {
        /// HTTP status.
        status: u16,
        /// The server's message (it names the problem and the next step).
        detail: String,
    },
    /// The licensing server could not be reached.
    ServerUnreachable {
        /// The server.
        url: String,
        /// What failed.
        reason: String,
    },
    /// `deactivate` found no activation to give back.
    NothingToDeactivate {
        /// Product id.
        product: String,
    },
    /// The dongle a license is sealed to is not attached.
    NoDongle {
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
    DongleModule {
        /// The module.
        module: PathBuf,
        /// Why.
        reason: String,
    },
    /// A token operation failed (the token's own error is shown).
    DongleFailed {
        /// What was being done.
        action: &'static str,
        /// The PKCS#11 error.
        reason: String,
    },
    /// The attach record on a token is damaged or was altered.
    DongleRecord {
        /// The token's label.
        token: String,
        /// What is wrong.
        source: sealrun_format::Error,
    },
    /// The dongle is permitted on another device.
    DongleWrongDevice {
        /// The dongle.
        dongle: DongleId,
        /// The device its record permits.
        permitted: DeviceCode,
        /// This device.
        this: DeviceCode,
    },
    /// The dongle's PIN is missing, wrong or locked.
    DonglePin(PinProblem),
    /// The dongle was removed while the app ran and did not come back.
    DongleRemoved {
        /// The dongle's label.
        token: String,
        /// How long the launcher waited (`None`: it stopped at once, the
        /// dongle could not come back).
        grace: Option<std::time::Duration>,
        /// Why it gave up.
        why: String,
    },
    /// As many copies of the app as the license allows already run.
    CountReached {
        /// The product.
        product: String,
        /// The license's count.
        count: u32,
    },
    /// The license is a floating license, for `sealrun-floatd`.
    FloatingLicense {
        /// The license file.
        path: PathBuf,
    },
    /// Every seat of the floating license is in use.
    SeatsInUse {
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
    LicenseServerUnreachable {
        /// The license server.
        server: String,
        /// Why.
        reason: String,
    },
    /// The site's license manager refused.
    LicenseServerRefused {
        /// The license server.
        server: String,
        /// Its message.
        reason: String,
    },
    /// The floating seat was lost while the app ran.
    SeatLost {
        /// The product id.
        product: String,
        /// What happened, e.g. "was revoked by the site administrator".
        why: String,
    },
}

impl From<sealrun_token::TokenError> for LaunchError {
    fn from(e: sealrun_token::TokenError) -> LaunchError {
        use sealrun_token::TokenError as T;
        match e {
            T::Module { module, source } => LaunchError::DongleModule { module, reason: source.to_string() },
            T::Failed { action, source } => LaunchError::DongleFailed { action, reason: source.to_string() },
            T::Gone { action } => LaunchError::DongleFailed { action, reason: "it is gone".into() },
            T::Pin(p) => LaunchError::DonglePin(p),
            other => LaunchError::Usage(other.to_string()),
        }
    }
}

/// A PIN problem as the launcher tells it: what happened and where the
/// launcher takes a PIN from (`SEALRUN_PIN`, `--pin-file`).
fn pin_message(p: &PinProblem) -> String {
    match p {
        PinProblem::Missing => "the dongle needs its PIN and there is no terminal to ask for it.\n\
             Set SEALRUN_PIN, or put the PIN in a file readable only by you and pass --pin-file FILE (or set SEALRUN_PIN_FILE)."
            .into(),
        PinProblem::Unreadable(source) => {
            format!("no usable dongle PIN in {source} (it must be one line of 1 to 256 characters).")
        }
        PinProblem::Wrong { locked: true, .. } => "the dongle rejected the PIN, and has now locked it.\nAsk the token's administrator to unlock it with the SO PIN; sealrun will not try again.".into(),
        PinProblem::Wrong { final_try: true, .. } => "the dongle rejected the PIN. One try is left before the token locks itself: check the PIN before trying again.".into(),
        PinProblem::Wrong { .. } => "the dongle rejected the PIN. Check it and try again; sealrun tries each PIN once, so a token's lockout counter is never run down.".into(),
        PinProblem::Locked => "the dongle's PIN is locked after too many wrong tries.\nAsk the token's administrator to unlock it with the SO PIN; sealrun will not try a locked token.".into(),
        other => format!("{other}."),
    }
}

impl LaunchError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        use sealrun_format::Error as F;
        match self {
            LaunchError::NoLicense { .. } => exit::NO_LICENSE,
            LaunchError::WrongDevice { .. } => exit::WRONG_DEVICE,
            LaunchError::WrongProduct { .. } => exit::WRONG_PRODUCT,
            LaunchError::NotValidNow { .. } => exit::NOT_VALID_NOW,
            LaunchError::ClockSetBack { .. } | LaunchError::ClockRecord { .. } => exit::CLOCK_SET_BACK,
            LaunchError::BadFile { source, .. } => match source {
                F::Truncated { .. } => exit::TRUNCATED,
                F::UnsupportedVersion { .. } => exit::UNSUPPORTED_VERSION,
                F::NotSealrun(_) => exit::NOT_SEALRUN,
                _ => exit::DAMAGED,
            },
            LaunchError::NoMachineId(_) | LaunchError::ForeignDeviceKey(_) => exit::DEVICE,
            LaunchError::Io { .. } => exit::IO,
            LaunchError::Usage(_) => exit::USAGE,
            LaunchError::GuestStart(_) => exit::GUEST_START,
            LaunchError::GuestTrap(_) => exit::GUEST_TRAP,
            LaunchError::GuestOutOfMemory { .. } => exit::GUEST_OOM,
            LaunchError::TimedOut { .. } => exit::TIMED_OUT,
            LaunchError::Interrupted { signal } if *signal == libc::SIGTERM => exit::TERMINATED,
            LaunchError::Interrupted { signal } if *signal == libc::SIGHUP => exit::HUNG_UP,
            LaunchError::Interrupted { .. } => exit::INTERRUPTED,
            LaunchError::ServerRefused { .. } => exit::SERVER_REFUSED,
            LaunchError::ServerUnreachable { .. } => exit::SERVER_UNREACHABLE,
            LaunchError::NothingToDeactivate { .. } => exit::NO_LICENSE,
            LaunchError::NoDongle { .. } | LaunchError::DongleModule { .. } | LaunchError::DongleFailed { .. } => {
                exit::NO_DONGLE
            }
            LaunchError::DongleRecord { .. } => exit::DAMAGED,
            LaunchError::DongleWrongDevice { .. } => exit::WRONG_DEVICE,
            LaunchError::DonglePin(_) => exit::DONGLE_PIN,
            LaunchError::DongleRemoved { .. } => exit::DONGLE_REMOVED,
            LaunchError::CountReached { .. } => exit::COUNT_REACHED,
            LaunchError::FloatingLicense { .. } => exit::WRONG_DEVICE,
            LaunchError::SeatsInUse { .. } => exit::SEATS_IN_USE,
            LaunchError::LicenseServerUnreachable { .. } => exit::LICENSE_SERVER_UNREACHABLE,
            LaunchError::LicenseServerRefused { .. } => exit::LICENSE_SERVER_REFUSED,
            LaunchError::SeatLost { .. } => exit::SEAT_LOST,
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

fn next_step_for_format(e: &sealrun_format::Error) -> &'static str {
    use sealrun_format::Error as F;
    match e {
        F::Truncated { .. } => "The download was probably interrupted: download the file again.",
        F::TrailingData { .. } | F::Malformed { .. } | F::BadSignature(_) | F::DecryptionFailed | F::UnwrapFailed => {
            "Download the file again or ask the vendor for a fresh copy; do not run a file that fails this check."
        }
        F::UnsupportedVersion { .. } => "Update sealrun to a version that reads this format.",
        F::NotSealrun(_) => {
            "Check that you opened the right file: sealrun runs *.sealed packages with *.license files."
        }
        _ => "Ask the vendor for a fresh copy.",
    }
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::NoLicense { product, name, device, searched } => {
                if name == product {
                    writeln!(f, "no license for {product} was found on this device.")?;
                } else {
                    writeln!(f, "no license for {name} ({product}) was found on this device.")?;
                }
                writeln!(f, "Send this device code to the vendor to get a license:")?;
                writeln!(f)?;
                writeln!(f, "    {device}")?;
                writeln!(f)?;
                writeln!(f, "Then install it with `sealrun license add FILE`, or keep it next to the package.")?;
                write!(f, "Looked in: ")?;
                let list: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
                write!(f, "{}", list.join(", "))
            }
            LaunchError::WrongDevice { path, licensed, this } => write!(
                f,
                "the license {} is for another device.\n  licensed device: {licensed}\n  this device:     {this}\n\
                 Ask the vendor to issue a license for this device's code (shown above).",
                path.display()
            ),
            LaunchError::WrongProduct { path, source } => write!(
                f,
                "the license {} does not cover this package: {source}.\nAsk the vendor for a license that covers it.",
                path.display()
            ),
            LaunchError::NotValidNow { path, expired: true, when, now } => write!(
                f,
                "the license {} expired on {when}; this computer's clock says it is {now}.\n\
                 If the clock is wrong, set it right (turn on network time, e.g. `timedatectl set-ntp true`) and run the app again;\n\
                 otherwise ask the vendor to renew the license.",
                path.display()
            ),
            LaunchError::NotValidNow { path, expired: false, when, now } => write!(
                f,
                "the license {} is not valid before {when}; this computer's clock says it is {now}.\n\
                 Wait until then, or if the clock is wrong, set it right (turn on network time, e.g. `timedatectl set-ntp true`) and run the app again.",
                path.display()
            ),
            LaunchError::ClockSetBack { license, now, last_seen, by, tolerance } => write!(
                f,
                "this computer's clock says it is {}, but a time-limited app last ran here at {}:\n\
                 the clock was set back by {} (more than the {} allowed), so the time-limited license {} is not used.\n\
                 Set the clock right (turn on network time, e.g. `timedatectl set-ntp true`) and run the app again.\n\
                 (If the clock is right now and was ahead before, time-limited apps run again from {}.)",
                rfc3339(*now),
                rfc3339(*last_seen),
                fmt_duration(*by),
                fmt_duration(*tolerance),
                license.display(),
                rfc3339(last_seen.saturating_sub(tolerance.as_secs())),
            ),
            LaunchError::ClockRecord { path, source: source @ sealrun_format::Error::UnsupportedVersion { .. } } => {
                write!(
                    f,
                    "{}, the record of when a time-limited app last ran on this computer, cannot be read: {source}.\n\
                     It was written by a newer sealrun: update sealrun, then run the app again.",
                    path.display()
                )
            }
            LaunchError::ClockRecord { path, source } => {
                // A tag that does not verify says nothing more than the next line.
                let detail = match source {
                    sealrun_format::Error::BadSignature(_) => String::new(),
                    other => format!(" ({other})"),
                };
                write!(
                    f,
                    "{}, the record of when a time-limited app last ran on this computer, does not check out{detail}:\n\
                     it was damaged, edited or copied from another computer, so time-limited licenses cannot be checked against this computer's clock.\n\
                     Make sure the clock is right (turn on network time), then move {} aside and run the app again: sealrun starts a new record.",
                    path.display(),
                    path.display()
                )
            }
            LaunchError::BadFile { path, source } => {
                write!(f, "{}: {source}.\n{}", path.display(), next_step_for_format(source))
            }
            LaunchError::NoMachineId(why) => write!(
                f,
                "this machine has no machine ID ({why}), so it cannot be identified as a licensed device.\n\
                 Give it one with `systemd-machine-id-setup` (or `dbus-uuidgen --ensure=/etc/machine-id`) as root;\n\
                 in a container, mount the host's /etc/machine-id or set SEALRUN_MACHINE_ID to a stable value."
            ),
            LaunchError::ForeignDeviceKey(path) => write!(
                f,
                "the device key {} was made on another machine (or this machine's ID changed, or the file is damaged), so it is not this device's.\n\
                 Move it aside; sealrun will make a new device identity. Licenses for the old identity will not work here:\n\
                 send the new `sealrun id` to your vendor.",
                path.display()
            ),
            LaunchError::Io { action, path, source } => write!(f, "{action} {}: {source}", path.display()),
            LaunchError::Usage(msg) => write!(f, "{msg}"),
            LaunchError::GuestStart(msg) => write!(f, "the app could not be started: {msg}"),
            LaunchError::GuestTrap(msg) => write!(f, "the app crashed: {msg}\nReport this to the app's vendor."),
            LaunchError::GuestOutOfMemory { limit_mib } => write!(
                f,
                "the app ran out of memory: it needed more than the {limit_mib} MiB limit.\nRun it with a larger --max-memory (in MiB)."
            ),
            LaunchError::TimedOut { limit } => {
                write!(f, "the app was stopped after its time limit of {} s (--timeout).", limit.as_secs_f64())
            }
            LaunchError::Interrupted { signal } => {
                let name = match *signal {
                    libc::SIGTERM => "SIGTERM",
                    libc::SIGHUP => "SIGHUP (its terminal closed)",
                    _ => "Ctrl-C",
                };
                write!(f, "the app was stopped by {name}.")
            }
            LaunchError::ServerRefused { status, detail } => {
                write!(f, "the licensing server refused: {detail} (HTTP {status})")
            }
            LaunchError::ServerUnreachable { url, reason } => write!(
                f,
                "cannot reach the licensing server {url}: {reason}\nCheck the address and your network connection, then try again."
            ),
            LaunchError::NothingToDeactivate { product } => write!(
                f,
                "no license for {product} on this device came from an activation code, so there is nothing to give back.\n\
                 (Licenses installed from a file are moved by the vendor: ask them.)"
            ),
            LaunchError::NoDongle { dongle, path, attached, modules } => {
                writeln!(f, "the license {} needs dongle {dongle}, which is not attached.", path.display())?;
                if attached.is_empty() {
                    writeln!(f, "No Sealrun dongle is attached.")?;
                } else {
                    for (id, label) in attached {
                        writeln!(f, "  attached: dongle {id} (\"{label}\")")?;
                    }
                }
                if modules.is_empty() {
                    write!(
                        f,
                        "No PKCS#11 module was found: install your token's driver (e.g. OpenSC), or name its module with --pkcs11-module FILE or SEALRUN_PKCS11_MODULE."
                    )
                } else {
                    let list: Vec<String> = modules.iter().map(|p| p.display().to_string()).collect();
                    write!(f, "Plug in the dongle and run the app again. (Searched with: {}.)", list.join(", "))
                }
            }
            LaunchError::DongleModule { module, reason } => write!(
                f,
                "the PKCS#11 module {} cannot be used: {reason}\nCheck that the token driver is installed, or name another module with --pkcs11-module.",
                module.display()
            ),
            LaunchError::DongleFailed { action, reason } => {
                write!(f, "dongle: {action}: {reason}\nCheck that the token is plugged in properly, then try again.")
            }
            LaunchError::DongleRecord { token, source } => write!(
                f,
                "the attach record on dongle \"{token}\" does not check out: {source}.\n\
                 The token was altered or damaged; ask the vendor to provision it again."
            ),
            LaunchError::DongleWrongDevice { dongle, permitted, this } => write!(
                f,
                "dongle {dongle} is permitted on another device.\n  permitted device: {permitted}\n  this device:      {this}\n\
                 Use it on the device it was provisioned for, or ask the vendor to provision it for this device's code."
            ),
            LaunchError::DonglePin(p) => write!(f, "{}", pin_message(p)),
            LaunchError::DongleRemoved { token, grace: None, why } => write!(
                f,
                "the app was stopped: dongle \"{token}\" {why}.\n\
                 Plug in the dongle the app was started with, then start the app again."
            ),
            LaunchError::DongleRemoved { token, grace: Some(grace), why } => write!(
                f,
                "the app was stopped: dongle \"{token}\" {why} and did not come back within {} s.\n\
                 Plug it in and start the app again.",
                grace.as_secs()
            ),
            LaunchError::FloatingLicense { path } => write!(
                f,
                "the license {} is a floating license: the site's license manager (sealrun-floatd) serves it to the network; apps do not use it directly.\n\
                 List it under `licenses` in floatd.toml, and run the app with --license-server HOST:PORT (or SEALRUN_LICENSE_SERVER).",
                path.display()
            ),
            LaunchError::SeatsInUse { product, seats, since, server } => {
                let s = if *seats == 1 { "seat" } else { "seats" };
                let all = if *seats == 1 { "the" } else { "all" };
                write!(
                    f,
                    "{all} {seats} {s} of {product} are in use (since {}); try again later or run with `--wait`.\n\
                     (License server: {server}; `sealrun-floatd status` there shows who holds them.)",
                    rfc3339(*since)
                )
            }
            LaunchError::LicenseServerUnreachable { server, reason } => write!(
                f,
                "cannot reach the license server {server}: {reason}\n\
                 Check that sealrun-floatd runs there and that its port is open to this computer, then try again; your site administrator can help."
            ),
            LaunchError::LicenseServerRefused { server, reason } => {
                write!(f, "the license server {server} refused: {reason}\nAsk your site administrator.")
            }
            LaunchError::SeatLost { product, why } => write!(
                f,
                "the app was stopped: its seat of {product} {why}.\nStart it again when a seat is free, or ask your site administrator."
            ),
            LaunchError::CountReached { product, count } => {
                let copies = if *count == 1 { "copy".to_owned() } else { "copies".to_owned() };
                write!(
                    f,
                    "{count} {copies} of {product} may run at once with this license, and that many already run.\n\
                     Close one and try again."
                )
            }
        }
    }
}

impl std::error::Error for LaunchError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A locked token, and one wrong try from locking, are reported as such
    /// (SoftHSM2 never locks, so the end-to-end tests cannot reach these).
    #[test]
    fn pin_lockout_is_reported_with_its_next_step() {
        let locked = LaunchError::DonglePin(PinProblem::Locked);
        assert_eq!(locked.exit_code(), exit::DONGLE_PIN);
        let text = locked.to_string();
        assert!(text.contains("locked") && text.contains("SO PIN") && text.contains("will not try"), "{text}");
        let just_locked = LaunchError::DonglePin(PinProblem::Wrong { locked: true, final_try: false }).to_string();
        assert!(just_locked.contains("has now locked it"), "{just_locked}");
        let last = LaunchError::DonglePin(PinProblem::Wrong { locked: false, final_try: true }).to_string();
        assert!(last.contains("One try is left"), "{last}");
        let missing = LaunchError::DonglePin(PinProblem::Missing).to_string();
        assert!(missing.contains("SEALRUN_PIN") && missing.contains("--pin-file"), "{missing}");
        // No message runs its lines together or indents them by accident.
        for t in [text, just_locked, last, missing] {
            assert!(!t.contains("  "), "stray spaces in {t:?}");
        }
    }
}
