//! Issue 24 (security fixes I), finding 8, through the real `sealrun`:
//! a `--timeout` too large to be a deadline is refused (it panicked), and
//! `SEALRUN_PIN` does not reach the programs the launcher starts.
use std::os::unix::fs::PermissionsExt;

use sealrun_tests::{World, stderr};

#[test]
fn a_timeout_beyond_a_year_is_refused_with_a_message() {
    let world = World::new();
    let (a, package) = world.licensed_sample("hello");
    for bad in ["1e30", "inf", "0", "-5", "31536001"] {
        let flag = format!("--timeout={bad}");
        let out = a.sealrun(world.path()).args(["run", &flag]).arg(&package).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "--timeout {bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("at most 31536000"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    let out = a.sealrun(world.path()).args(["run", "--timeout", "31536000"]).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "a year is allowed: {}", stderr(&out));
}

/// A desktop launch of a package with no license shows a dialog (here a
/// script standing in for zenity that records its environment): the PIN
/// given in `SEALRUN_PIN` is not in it.
#[test]
fn the_pin_does_not_reach_programs_the_launcher_starts() {
    let world = World::new();
    let package = world.seal("hello", "1.0.0");
    let a = world.device("a");
    let seen = world.path().join("dialog-env.txt");
    let dialog = world.path().join("dialog.sh");
    std::fs::write(&dialog, format!("#!/bin/sh\nenv > '{}'\nexit 1\n", seen.display())).unwrap();
    std::fs::set_permissions(&dialog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = a
        .sealrun(world.path())
        .args(["run", "--desktop"])
        .arg(&package)
        .env("SEALRUN_PIN", "pin-4711-secret")
        .env("SEALRUN_DIALOG", &dialog)
        .env("SEALRUN_TERMINAL", "none")
        .env("DISPLAY", ":99")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(200), "{}", stderr(&out));
    let env = std::fs::read_to_string(&seen).expect("the dialog ran");
    assert!(env.contains("DISPLAY=:99"), "the dialog got the session's environment: {env}");
    assert!(!env.contains("SEALRUN_PIN") && !env.contains("pin-4711-secret"), "{env}");
}
