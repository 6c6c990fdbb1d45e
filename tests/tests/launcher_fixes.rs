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

/// A package whose file name holds a line break (a downloaded
/// `App\nYour copy is blocked….sealed`) is refused before it is read, with
/// the name escaped: no message, dialog or log line shows forged text.
#[test]
fn a_package_path_with_control_characters_is_refused_escaped() {
    let world = World::new();
    let package = world.seal("hello", "1.0.0");
    let a = world.device("a");
    let evil = world.path().join("App\nYour copy is blocked, call 555.sealed");
    std::fs::copy(&package, &evil).unwrap();
    let out = a.sealrun(world.path()).arg("run").arg(&evil).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains("App\\nYour copy is blocked") && err.contains("control characters"), "{err}");
    // From the desktop: the dialog (a stand-in recording its arguments)
    // gets the same escaped text, and the log one entry.
    let seen = world.path().join("dialog-args.txt");
    let dialog = world.path().join("dialog.sh");
    std::fs::write(&dialog, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", seen.display())).unwrap();
    std::fs::set_permissions(&dialog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = a
        .sealrun(world.path())
        .args(["run", "--desktop"])
        .arg(&evil)
        .env("SEALRUN_DIALOG", &dialog)
        .env("SEALRUN_TERMINAL", "none")
        .env("DISPLAY", ":99")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let args = std::fs::read_to_string(&seen).expect("the dialog ran");
    assert!(!args.lines().any(|l| l.starts_with("Your copy is blocked")), "{args}");
    assert!(args.contains("App\\nYour copy is blocked"), "{args}");
    let log = a.root.join("home/.local/state/sealrun/launcher.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.lines().any(|l| l.starts_with("Your copy is blocked")), "{text}");
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600, "the log is private");
}

/// notify-send gets its title and text after `--`: a display name that
/// starts with `--` is not taken for an option.
#[test]
fn notify_send_takes_no_options_from_a_display_name() {
    let world = World::new();
    let module = sealrun_tests::sample("hello");
    let package =
        world.seal_module(&module, "com.example.hello", "1.0.0", "hello.sealed", &["--name=--urgency=low Evil"]);
    let a = world.device("a");
    let bin = world.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let seen = world.path().join("notify-args.txt");
    let notify = bin.join("notify-send");
    std::fs::write(&notify, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", seen.display())).unwrap();
    std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = a
        .sealrun(world.path())
        .args(["run", "--desktop"])
        .arg(&package)
        .env("SEALRUN_DIALOG", &notify)
        .env("SEALRUN_TERMINAL", "none")
        .env("DISPLAY", ":99")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(200), "{}", stderr(&out));
    let args: Vec<String> =
        std::fs::read_to_string(&seen).expect("notify-send ran").lines().map(str::to_owned).collect();
    let dashes = args.iter().position(|a| a == "--").expect("a `--` before the title");
    let title = args.iter().position(|a| a.starts_with("--urgency=low Evil")).expect("the title");
    assert!(dashes < title, "{args:?}");
}
