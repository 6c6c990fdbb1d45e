//! Clock tampering (issue 8, part 2), with real `sealsdk` and `sealrun`
//! processes: a time-limited license is refused (exit 224) while the clock
//! is set back more than the tolerance behind the last time-limited run,
//! licenses without an expiry never are, a clock in the future is told
//! about and leaves no trace, and the last-seen record is sealed to the
//! device. The launcher's clock is set with `SEALRUN_TEST_NOW` (read by
//! debug builds only).
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sealrun::license::clock::{CLOCK_SETBACK_TOLERANCE, TEST_NOW_ENV};
use sealrun_format::Error;
use sealrun_format::clock::{LAST_SEEN_LEN, open_last_seen};
use sealrun_format::device::{DeviceSecret, open_device_key};
use sealrun_tests::{Device, World, stderr, stdout};

/// 2030-06-01T00:00:00Z: "now" in these tests, inside the licenses' period
/// (2030-01-01 through 2030-12-31).
const T: u64 = 1_906_502_400;
const MIN: u64 = 60;
const HOUR: u64 = 3600;
/// 2031-06-01T00:00:00Z: months after the time-limited license expired.
const FUTURE: u64 = 1_938_038_400;

struct Setup {
    world: World,
    dev: Device,
    package: PathBuf,
    /// Valid 2030-01-01 through 2030-12-31.
    limited: PathBuf,
    /// Valid from 2030-01-01, never expires.
    unlimited: PathBuf,
}

fn setup() -> Setup {
    let world = World::new();
    let dev = world.device("a");
    let package = world.seal("hello", "1.0.0");
    let limited =
        world.license("hello", &dev, "limited.license", &["--not-before", "2030-01-01", "--expires", "2030-12-31"]);
    let unlimited = world.license("hello", &dev, "forever.license", &["--not-before", "2030-01-01"]);
    Setup { world, dev, package, limited, unlimited }
}

/// `sealrun` on `dev` whose clock says `t` (Unix seconds).
fn sealrun_at(dev: &Device, cwd: &Path, t: u64) -> Command {
    let mut c = dev.sealrun(cwd);
    c.env(TEST_NOW_ENV, t.to_string());
    c
}

fn run_at(s: &Setup, license: &Path, t: u64) -> Output {
    sealrun_at(&s.dev, s.world.path(), t).arg("run").arg("--license").arg(license).arg(&s.package).output().unwrap()
}

fn assert_runs(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
}

fn record_file(dev: &Device) -> PathBuf {
    dev.key_file().with_file_name("last-seen")
}

/// The device secret, from its key file (the tests know the machine ID).
fn secret(dev: &Device) -> DeviceSecret {
    open_device_key(&std::fs::read(dev.key_file()).unwrap(), dev.machine_id.as_bytes()).expect("the device key opens")
}

/// The time in `dev`'s last-seen record, in Unix seconds.
fn last_seen(dev: &Device) -> u64 {
    let bytes = std::fs::read(record_file(dev)).expect("a last-seen record");
    open_last_seen(&secret(dev), &bytes).expect("the record opens").at_ms / 1000
}

#[test]
fn clock_set_back_beyond_the_tolerance_refuses_a_time_limited_license() {
    let s = setup();
    assert_runs(&run_at(&s, &s.limited, T));
    assert_eq!(last_seen(&s.dev), T);
    let out = run_at(&s, &s.limited, T - 2 * HOUR);
    assert_eq!(out.status.code(), Some(224), "{}", stderr(&out));
    let text = stderr(&out);
    for want in [
        "clock says it is 2030-05-31T22:00:00Z",
        "last ran here at 2030-06-01T00:00:00Z",
        "set back by 2 h (more than the 1 h allowed)",
        "Set the clock right",
        "network time",
        "run the app again",
        s.limited.to_str().unwrap(),
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(stdout(&out).is_empty(), "the app must not run");
    assert_eq!(last_seen(&s.dev), T, "a refusal does not touch the record");
    // Set right again, it runs.
    assert_runs(&run_at(&s, &s.limited, T + MIN));
}

#[test]
fn clock_set_back_within_the_tolerance_runs() {
    let s = setup();
    assert_eq!(CLOCK_SETBACK_TOLERANCE.as_secs(), HOUR);
    assert_runs(&run_at(&s, &s.limited, T));
    assert_runs(&run_at(&s, &s.limited, T - 30 * MIN));
    assert_runs(&run_at(&s, &s.limited, T - HOUR));
    assert_eq!(last_seen(&s.dev), T, "the record never moves back");
    let out = run_at(&s, &s.limited, T - HOUR - MIN);
    assert_eq!(out.status.code(), Some(224), "{}", stderr(&out));
    assert!(stderr(&out).contains("set back by 1 h 1 min"), "{}", stderr(&out));
}

#[test]
fn a_license_without_expiry_never_reads_the_record() {
    let s = setup();
    assert_runs(&run_at(&s, &s.limited, T));
    assert_runs(&run_at(&s, &s.unlimited, T - 2 * HOUR));
    assert_runs(&run_at(&s, &s.unlimited, T - 100 * 24 * HOUR));
    assert_eq!(last_seen(&s.dev), T, "a license without expiry does not move the record");
    // Whatever the record says: damaged, it is still neither read nor rewritten.
    let record = record_file(&s.dev);
    let mut bytes = std::fs::read(&record).unwrap();
    bytes[12] ^= 0x40;
    std::fs::write(&record, &bytes).unwrap();
    assert_runs(&run_at(&s, &s.unlimited, T - 2 * HOUR));
    assert_eq!(std::fs::read(&record).unwrap(), bytes);
    // A device that never ran a time-limited license has no record at all.
    let fresh = s.world.device("fresh");
    let lic = s.world.license("hello", &fresh, "fresh.license", &["--not-before", "2030-01-01"]);
    let out =
        sealrun_at(&fresh, s.world.path(), T).arg("run").arg("--license").arg(&lic).arg(&s.package).output().unwrap();
    assert_runs(&out);
    assert!(!record_file(&fresh).exists());
}

#[test]
fn a_clock_in_the_future_is_named_and_leaves_no_trace() {
    let s = setup();
    assert_runs(&run_at(&s, &s.limited, T));
    let out = run_at(&s, &s.limited, FUTURE);
    assert_eq!(out.status.code(), Some(203), "{}", stderr(&out));
    let text = stderr(&out);
    for want in [
        "expired on 2031-01-01T00:00:00Z",
        "this computer's clock says it is 2031-06-01T00:00:00Z",
        "If the clock is wrong, set it right",
        "renew",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    // The refused run did not move the record: at the right time, the
    // license runs again.
    assert_eq!(last_seen(&s.dev), T);
    assert_runs(&run_at(&s, &s.limited, T + MIN));
    assert_eq!(last_seen(&s.dev), T + MIN);

    // Not valid yet, likewise.
    let later =
        s.world.license("hello", &s.dev, "later.license", &["--not-before", "2031-01-01", "--expires", "2031-12-31"]);
    let out = run_at(&s, &later, T + 2 * MIN);
    assert_eq!(out.status.code(), Some(203), "{}", stderr(&out));
    let text = stderr(&out);
    for want in [
        "not valid before 2031-01-01T00:00:00Z",
        "this computer's clock says it is 2030-06-01T00:02:00Z",
        "if the clock is wrong, set it right",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert_eq!(last_seen(&s.dev), T + MIN);
}

#[test]
fn a_tampered_or_foreign_record_is_refused_with_the_way_out() {
    let s = setup();
    assert_runs(&run_at(&s, &s.limited, T));
    let record = record_file(&s.dev);
    let good = std::fs::read(&record).unwrap();
    // One byte of the time changed (as if edited to an earlier time).
    let mut edited = good.clone();
    edited[15] ^= 0x01;
    std::fs::write(&record, &edited).unwrap();
    let out = run_at(&s, &s.limited, T + MIN);
    assert_eq!(out.status.code(), Some(224), "{}", stderr(&out));
    let text = stderr(&out);
    for want in [
        record.to_str().unwrap(),
        "the record of when a time-limited app last ran on this computer, does not check out",
        "damaged, edited or copied from another computer",
        "Make sure the clock is right",
        "aside and run the app again",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(stdout(&out).is_empty());
    assert_eq!(std::fs::read(&record).unwrap(), edited, "a refused run does not replace the record");

    // A record copied from another device does not open here either.
    let b = s.world.device("b");
    let lic_b = s.world.license("hello", &b, "b.license", &["--not-before", "2030-01-01", "--expires", "2030-12-31"]);
    let out = sealrun_at(&b, s.world.path(), T - 5 * HOUR)
        .arg("run")
        .arg("--license")
        .arg(&lic_b)
        .arg(&s.package)
        .output()
        .unwrap();
    assert_runs(&out);
    std::fs::copy(record_file(&b), &record).unwrap();
    let out = run_at(&s, &s.limited, T + MIN);
    assert_eq!(out.status.code(), Some(224), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not check out"), "{}", stderr(&out));

    // Moved aside, as the message says: a new record is started.
    std::fs::rename(&record, record.with_extension("old")).unwrap();
    assert_runs(&run_at(&s, &s.limited, T + MIN));
    assert_eq!(last_seen(&s.dev), T + MIN);
}

/// The record after a run is not plaintext-editable: it opens only with this
/// device's secret, and is private to the user.
#[test]
fn the_record_is_sealed_to_the_device() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    assert_runs(&run_at(&s, &s.limited, T));
    let record = record_file(&s.dev);
    let bytes = std::fs::read(&record).unwrap();
    assert_eq!(bytes.len(), LAST_SEEN_LEN);
    assert_eq!(std::fs::metadata(&record).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(open_last_seen(&secret(&s.dev), &bytes).unwrap().at_ms, T * 1000);
    let b = s.world.device("b");
    b.code(); // makes b's device key
    assert!(matches!(open_last_seen(&secret(&b), &bytes), Err(Error::BadSignature(_))));
    // No temporary file is left behind.
    let dir: Vec<String> = std::fs::read_dir(record.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!dir.iter().any(|n| n.ends_with(".tmp")), "{dir:?}");
}

/// A time-limited license sealed to a dongle gets the same check (the
/// record is this device's). Skipped without SoftHSM2.
#[test]
fn a_time_limited_dongle_license_gets_the_same_check() {
    use sealrun_tests::softhsm::{PIN, SoftHsm, provision};
    let world = World::new();
    let Some(hsm) = SoftHsm::new(&world.path().join("hsm")) else { return };
    hsm.init_token("clock-dongle");
    let dev = world.device("a");
    let package = world.seal("hello", "1.0.0");
    let dongle = provision(&world, &hsm, &dev);
    let lic = world.path().join("dongle-limited.license");
    world.sealsdk_ok(&[
        "license",
        "issue",
        "--product",
        "com.example.hello",
        "--dongle",
        &dongle,
        "--count",
        "1",
        "--licensee",
        "Dongle User",
        "--not-before",
        "2030-01-01",
        "--expires",
        "2030-12-31",
        "-o",
        lic.to_str().unwrap(),
    ]);
    let run = |t: u64| {
        sealrun_at(&dev, world.path(), t)
            .envs(hsm.env())
            .env("SEALRUN_PIN", PIN)
            .arg("run")
            .arg("--license")
            .arg(&lic)
            .arg(&package)
            .output()
            .unwrap()
    };
    assert_runs(&run(T));
    assert_eq!(last_seen(&dev), T);
    let out = run(T - 3 * HOUR);
    assert_eq!(out.status.code(), Some(224), "{}", stderr(&out));
    assert!(stderr(&out).contains("set back by 3 h"), "{}", stderr(&out));
}
