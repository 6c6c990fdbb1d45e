//! Clock tampering: a time-limited license is not used while this
//! computer's clock is well behind the last time it accepted one.
//!
//! The launcher keeps the latest wall-clock time at which it accepted a
//! time-limited license (one with an expiry) in `<data dir>/last-seen`,
//! next to the device key, sealed with a key derived from the device secret
//! (`sealrun_format::clock`): it cannot be edited, or copied from another
//! device, without the launcher noticing. For a time-limited license:
//!
//! 1. the record is opened, if there is one;
//! 2. if the clock is behind it by more than [`CLOCK_SETBACK_TOLERANCE`],
//!    the license is refused (exit 224);
//! 3. otherwise the license's validity period is checked as usual;
//! 4. once the license is accepted, the record advances to
//!    max(record, now).
//!
//! Only accepted time-limited licenses advance the record. A clock that is
//! briefly in the future and makes a license look expired (or any refused
//! license) therefore leaves no trace: once the clock is set right, the
//! license runs again. A clock that was ahead while a license was accepted
//! does move the record forward; the refusal says so and when that time is
//! reached. Licenses without an expiry never read the record and are never
//! refused by it.
//!
//! What this does not stop: deleting the record, or putting back an old
//! copy of the data dir, resets it (nothing in software on a machine the
//! user owns can prevent that). Where that matters, a floating license is
//! the answer: its server's clock decides. A dongle license gets the same
//! check as a device license (the record is this device's), but no more:
//! PKCS#11 tokens have no clock to ask.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sealrun_format::UnixTime;
use sealrun_format::clock::{LAST_SEEN_LEN, LastSeen, open_last_seen, seal_last_seen};

use crate::error::{LaunchError, LicenseError};
use crate::license::device::Device;

/// How far the clock may be behind the record before a time-limited
/// license is refused. NTP corrections step the clock by seconds at most,
/// but a dual-boot machine whose other OS keeps the hardware clock in local
/// time comes up off by its UTC offset (up to 14 h, typically 1 to 9 h)
/// until network time fixes it, and a laptop moved across time zones may
/// do the same. One hour lets the common cases (NTP, a one-hour DST or
/// neighbouring-zone slip) through and still stops the useful attack:
/// winding the clock back days or months to before an expiry.
pub const CLOCK_SETBACK_TOLERANCE: Duration = Duration::from_secs(60 * 60);

/// The record's file name, in the directory of the device key.
pub const RECORD_FILE: &str = "last-seen";

/// Test-only: the wall-clock time (Unix seconds) the launcher believes it
/// is, so end-to-end tests can set the clock back and forward without
/// root. Read only by debug builds (`cfg(debug_assertions)`, what `cargo
/// build` and `cargo test` make); release builds ignore it, so it cannot be
/// used to run an expired license.
pub const TEST_NOW_ENV: &str = "SEALRUN_TEST_NOW";

/// Now, in Unix seconds (in debug builds, [`TEST_NOW_ENV`] when set).
pub fn now() -> sealrun_format::UnixTime {
    now_ms() / 1000
}

/// Now, in Unix milliseconds: the system clock, or in debug builds
/// [`TEST_NOW_ENV`] when set.
pub fn now_ms() -> u64 {
    #[cfg(debug_assertions)]
    if let Some(secs) = std::env::var(TEST_NOW_ENV).ok().and_then(|v| v.trim().parse::<u64>().ok()) {
        return secs.saturating_mul(1000);
    }
    sealrun_host::time::now_ms()
}

/// The record of `device`: next to its key file.
pub fn record_file(device: &Device) -> PathBuf {
    device.key_file.with_file_name(RECORD_FILE)
}

/// The record of `device`, if there is one. A record that does not open
/// (damaged, edited, from another device, another version) is an error.
pub fn read(device: &Device) -> Result<Option<LastSeen>, LaunchError> {
    let path = record_file(device);
    // Non-blocking, so a FIFO put in its place cannot hang the launcher.
    let file = match crate::platform::files::open_read_nonblocking(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LaunchError::io("cannot open", &path)(e)),
    };
    let meta = file.metadata().map_err(LaunchError::io("cannot read", &path))?;
    let mut bytes = Vec::with_capacity(LAST_SEEN_LEN);
    if meta.is_file() {
        file.take(LAST_SEEN_LEN as u64 + 1).read_to_end(&mut bytes).map_err(LaunchError::io("cannot read", &path))?;
    }
    open_last_seen(&device.secret, &bytes)
        .map(Some)
        .map_err(|source| LaunchError::License(LicenseError::ClockRecord { path, source }))
}

/// Step 2: refuses the time-limited license `license` if the clock (`now`)
/// is behind the record by more than the tolerance. A missing record
/// passes: see [`advance`].
pub fn check(device: &Device, license: &Path, now: UnixTime) -> Result<(), LaunchError> {
    let Some(seen) = read(device)? else { return Ok(()) };
    let now_ms = now.saturating_mul(1000);
    let tolerance = u64::try_from(CLOCK_SETBACK_TOLERANCE.as_millis()).unwrap_or(u64::MAX);
    if now_ms.saturating_add(tolerance) < seen.at_ms {
        return Err(LaunchError::License(LicenseError::ClockSetBack {
            license: license.to_owned(),
            now,
            last_seen: seen.at_ms / 1000,
            by: Duration::from_millis(seen.at_ms - now_ms),
            tolerance: CLOCK_SETBACK_TOLERANCE,
        }));
    }
    Ok(())
}

/// Step 4: a time-limited license was accepted at `now`; the record becomes
/// max(record, now), written atomically (0600, temporary file and rename).
///
/// A missing record is started here. That is the first time-limited run on
/// this device (or the record was deleted, which nothing can prevent, see
/// the module documentation); refusing instead would lock out every new
/// device and gain nothing, since a deleted record and a new device look
/// the same.
pub fn advance(device: &Device, now: UnixTime) -> Result<(), LaunchError> {
    let path = record_file(device);
    let now_ms = now.saturating_mul(1000);
    let at_ms = match read(device)? {
        Some(seen) if seen.at_ms >= now_ms => return Ok(()),
        _ => now_ms,
    };
    // Two launches at once each write their own temporary file, and the
    // later rename wins (both hold about the same time).
    let record = seal_last_seen(&device.secret, at_ms);
    sealrun_host::fs::write_atomic(&path, &record, 0o600, sealrun_host::fs::Durability::Synced)
        .map_err(LaunchError::io("cannot write", &path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealrun_format::device::DeviceSecret;

    fn device(dir: &Path) -> Device {
        let secret = DeviceSecret::from_bytes(&[4; 32]);
        let code = secret.device_code(b"machine");
        Device::new(secret, code, dir.join("device.key"))
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(sealrun_host::time::fmt_duration(Duration::from_secs(40)), "40 s");
        assert_eq!(sealrun_host::time::fmt_duration(Duration::from_secs(7200)), "2 h");
        assert_eq!(sealrun_host::time::fmt_duration(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(sealrun_host::time::fmt_duration(Duration::from_secs(90_000)), "1 day 1 h");
        assert_eq!(sealrun_host::time::fmt_duration(Duration::from_secs(3 * 86_400)), "3 days");
    }

    #[test]
    fn the_record_only_moves_forward_and_refuses_a_set_back_clock() {
        let dir = tempfile::tempdir().unwrap();
        let d = device(dir.path());
        let lic = Path::new("app.license");
        let t = 1_780_272_000;
        assert!(check(&d, lic, t).is_ok(), "no record yet");
        advance(&d, t).unwrap();
        assert_eq!(read(&d).unwrap(), Some(LastSeen { at_ms: t * 1000 }));
        advance(&d, t - 5000).unwrap();
        assert_eq!(read(&d).unwrap(), Some(LastSeen { at_ms: t * 1000 }), "never moves back");
        let tol = CLOCK_SETBACK_TOLERANCE.as_secs();
        assert!(check(&d, lic, t - tol).is_ok(), "exactly the tolerance is allowed");
        match check(&d, lic, t - tol - 1) {
            Err(LaunchError::License(LicenseError::ClockSetBack { by, last_seen, .. })) => {
                assert_eq!(by, Duration::from_secs(tol + 1));
                assert_eq!(last_seen, t);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(crate::platform::files::mode(&record_file(&d)).unwrap(), 0o600);
    }

    #[test]
    fn a_record_from_another_device_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = device(dir.path());
        let other = DeviceSecret::from_bytes(&[5; 32]);
        std::fs::write(record_file(&d), seal_last_seen(&other, 1000)).unwrap();
        let err = check(&d, Path::new("a.license"), 2).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::CLOCK_SET_BACK);
        assert!(matches!(err, LaunchError::License(LicenseError::ClockRecord { .. })), "{err:?}");
    }
}
