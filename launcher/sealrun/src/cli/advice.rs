//! What `sealrun` tells the end user about an error: the problem and the
//! next step, in the user's terms (the options and variables of this CLI).
//! The library's errors state only the problem; the advice lives here, next
//! to what prints it.
use std::fmt;

use sealrun_host::time::{fmt_duration, rfc3339};

use crate::error::{
    ActivationError as A, DeviceError, DongleError as D, GuestError as G, LaunchError as E, LicenseError as L,
    PinProblem, SeatError as S,
};
#[cfg(test)]
use crate::error::{DongleError, LaunchError};

/// `e` as the launcher tells it to the user: what went wrong and what to do.
pub fn message(e: &E) -> String {
    Advised(e).to_string()
}

struct Advised<'a>(&'a E);

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

impl fmt::Display for Advised<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            E::License(L::NotFound { product, name, device, searched }) => {
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
            E::License(L::WrongDevice { path, licensed, this }) => write!(
                f,
                "the license {} is for another device.\n  licensed device: {licensed}\n  this device:     {this}\n\
                 Ask the vendor to issue a license for this device's code (shown above).",
                path.display()
            ),
            E::License(L::WrongProduct { path, source }) => write!(
                f,
                "the license {} does not cover this package: {source}.\nAsk the vendor for a license that covers it.",
                path.display()
            ),
            E::License(L::NotValidNow { path, expired: true, when, now }) => write!(
                f,
                "the license {} expired on {}; this computer's clock says it is {}.\n\
                 If the clock is wrong, set it right (turn on network time, e.g. `timedatectl set-ntp true`) and run the app again;\n\
                 otherwise ask the vendor to renew the license.",
                path.display(),
                rfc3339(*when),
                rfc3339(*now)
            ),
            E::License(L::NotValidNow { path, expired: false, when, now }) => write!(
                f,
                "the license {} is not valid before {}; this computer's clock says it is {}.\n\
                 Wait until then, or if the clock is wrong, set it right (turn on network time, e.g. `timedatectl set-ntp true`) and run the app again.",
                path.display(),
                rfc3339(*when),
                rfc3339(*now)
            ),
            E::License(L::ClockSetBack { license, now, last_seen, by, tolerance }) => write!(
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
            E::License(L::ClockRecord { path, source: source @ sealrun_format::Error::UnsupportedVersion { .. } }) => {
                write!(
                    f,
                    "{}, the record of when a time-limited app last ran on this computer, cannot be read: {source}.\n\
                     It was written by a newer sealrun: update sealrun, then run the app again.",
                    path.display()
                )
            }
            E::License(L::ClockRecord { path, source }) => {
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
            E::BadFile { path, source } => {
                write!(f, "{}: {source}.\n{}", path.display(), next_step_for_format(source))
            }
            E::Device(d @ DeviceError::NoMachineId(_)) => write!(
                f,
                "{d}, so it cannot be identified as a licensed device.\n\
                 Give it one with `systemd-machine-id-setup` (or `dbus-uuidgen --ensure=/etc/machine-id`) as root;\n\
                 in a container, mount the host's /etc/machine-id or set SEALRUN_MACHINE_ID to a stable value."
            ),
            E::Device(DeviceError::ForeignKey(path)) => write!(
                f,
                "the device key {} was made on another machine (or this machine's ID changed, or the file is damaged), so it is not this device's.\n\
                 Move it aside; sealrun will make a new device identity. Licenses for the old identity will not work here:\n\
                 send the new `sealrun id` to your vendor.",
                path.display()
            ),
            E::Io { action, path, source } => write!(f, "{action} {}: {source}", path.display()),
            E::Usage(msg) => write!(f, "{msg}"),
            E::Guest(g @ G::Start { .. }) => write!(f, "{g}"),
            E::Guest(G::Trap(msg)) => write!(f, "the app crashed: {msg}\nReport this to the app's vendor."),
            E::Guest(G::OutOfMemory { limit_mib }) => write!(
                f,
                "the app ran out of memory: it needed more than the {limit_mib} MiB limit.\nRun it with a larger --max-memory (in MiB)."
            ),
            E::Guest(G::TimedOut { limit }) => {
                write!(f, "the app was stopped after its time limit of {} s (--timeout).", limit.as_secs_f64())
            }
            E::Guest(G::Interrupted { signal }) => {
                let name = match *signal {
                    signal_hook::consts::SIGTERM => "SIGTERM",
                    signal_hook::consts::SIGHUP => "SIGHUP (its terminal closed)",
                    _ => "Ctrl-C",
                };
                write!(f, "the app was stopped by {name}.")
            }
            E::Activation(A::Refused { status, detail }) => {
                write!(f, "the licensing server refused: {detail} (HTTP {status})")
            }
            E::Activation(A::Unreachable { url, reason }) => write!(
                f,
                "cannot reach the licensing server {url}: {reason}\nCheck the address and your network connection, then try again."
            ),
            E::License(L::NothingToDeactivate { product }) => write!(
                f,
                "no license for {product} on this device came from an activation code, so there is nothing to give back.\n\
                 (Licenses installed from a file are moved by the vendor: ask them.)"
            ),
            E::Dongle(D::NotAttached { dongle, path, attached, modules }) => {
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
            E::Dongle(D::Module { module, source: reason }) => write!(
                f,
                "the PKCS#11 module {} cannot be used: {reason}\nCheck that the token driver is installed, or name another module with --pkcs11-module.",
                module.display()
            ),
            E::Dongle(D::Failed { action, source: reason }) => {
                write!(f, "dongle: {action}: {reason}\nCheck that the token is plugged in properly, then try again.")
            }
            E::Dongle(D::Record { token, source }) => write!(
                f,
                "the attach record on dongle \"{token}\" does not check out: {source}.\n\
                 The token was altered or damaged; ask the vendor to provision it again."
            ),
            E::Dongle(D::WrongDevice { dongle, permitted, this }) => write!(
                f,
                "dongle {dongle} is permitted on another device.\n  permitted device: {permitted}\n  this device:      {this}\n\
                 Use it on the device it was provisioned for, or ask the vendor to provision it for this device's code."
            ),
            E::Dongle(D::Pin(p)) => write!(f, "{}", pin_message(p)),
            E::Dongle(D::Removed { token, grace: None, why }) => write!(
                f,
                "the app was stopped: dongle \"{token}\" {why}.\n\
                 Plug in the dongle the app was started with, then start the app again."
            ),
            E::Dongle(D::Removed { token, grace: Some(grace), why }) => write!(
                f,
                "the app was stopped: dongle \"{token}\" {why} and did not come back within {} s.\n\
                 Plug it in and start the app again.",
                grace.as_secs()
            ),
            E::License(L::Floating { path }) => write!(
                f,
                "the license {} is a floating license: the site's license manager (sealrun-floatd) serves it to the network; apps do not use it directly.\n\
                 List it under `licenses` in floatd.toml, and run the app with --license-server HOST:PORT (or SEALRUN_LICENSE_SERVER).",
                path.display()
            ),
            E::Seat(S::InUse { product, seats, since, server }) => {
                let s = if *seats == 1 { "seat" } else { "seats" };
                let all = if *seats == 1 { "the" } else { "all" };
                write!(
                    f,
                    "{all} {seats} {s} of {product} are in use (since {}); try again later or run with `--wait`.\n\
                     (License server: {server}; `sealrun-floatd status` there shows who holds them.)",
                    rfc3339(*since)
                )
            }
            E::Seat(S::Unreachable { server, reason }) => write!(
                f,
                "cannot reach the license server {server}: {reason}\n\
                 Check that sealrun-floatd runs there and that its port is open to this computer, then try again; your site administrator can help."
            ),
            E::Seat(S::Refused { server, reason }) => {
                write!(f, "the license server {server} refused: {reason}\nAsk your site administrator.")
            }
            E::Seat(S::Lost { product, why }) => write!(
                f,
                "the app was stopped: its seat of {product} {why}.\nStart it again when a seat is free, or ask your site administrator."
            ),
            E::License(L::CountReached { product, count }) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit;

    /// A locked token, and one wrong try from locking, are reported as such
    /// (SoftHSM2 never locks, so the end-to-end tests cannot reach these).
    #[test]
    fn pin_lockout_is_reported_with_its_next_step() {
        let locked = LaunchError::Dongle(DongleError::Pin(PinProblem::Locked));
        assert_eq!(locked.exit_code(), exit::DONGLE_PIN);
        let text = message(&locked);
        assert!(text.contains("locked") && text.contains("SO PIN") && text.contains("will not try"), "{text}");
        let just_locked = message(&DongleError::Pin(PinProblem::Wrong { locked: true, final_try: false }).into());
        assert!(just_locked.contains("has now locked it"), "{just_locked}");
        let last = message(&DongleError::Pin(PinProblem::Wrong { locked: false, final_try: true }).into());
        assert!(last.contains("One try is left"), "{last}");
        let missing = message(&DongleError::Pin(PinProblem::Missing).into());
        assert!(missing.contains("SEALRUN_PIN") && missing.contains("--pin-file"), "{missing}");
        // No message runs its lines together or indents them by accident.
        for t in [text, just_locked, last, missing] {
            assert!(!t.contains("  "), "stray spaces in {t:?}");
        }
    }
}
