//! Issue 24 (security fixes I), finding 8, through the real `sealrun`:
//! a `--timeout` too large to be a deadline is refused (it panicked), and
//! `SEALRUN_PIN` does not reach the programs the launcher starts.
use std::os::unix::fs::PermissionsExt;

use sealrun_tests::{World, stderr, stdout};

/// A stand-in dialog program at `program` that records its arguments, one
/// per line, in `record`.
fn recording_program(program: &std::path::Path, record: &std::path::Path) {
    std::fs::create_dir_all(program.parent().unwrap()).unwrap();
    std::fs::write(program, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", record.display())).unwrap();
    std::fs::set_permissions(program, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `sealrun run --desktop PACKAGE` as a double-click starts it, with
/// `dialog` as the dialog program and no terminal window.
fn desktop_launch(
    dev: &sealrun_tests::Device,
    cwd: &std::path::Path,
    package: &std::path::Path,
    dialog: &std::path::Path,
) -> std::process::Output {
    dev.sealrun(cwd)
        .args(["run", "--desktop"])
        .arg(package)
        .env("SEALRUN_DIALOG", dialog)
        .env("SEALRUN_TERMINAL", "none")
        .env("DISPLAY", ":99")
        .output()
        .unwrap()
}

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
    recording_program(&dialog, &seen);
    let out = desktop_launch(&a, world.path(), &evil, &dialog);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let args = std::fs::read_to_string(&seen).expect("the dialog ran");
    assert!(!args.lines().any(|l| l.starts_with("Your copy is blocked")), "{args}");
    assert!(args.contains("App\\nYour copy is blocked"), "{args}");
    let log = a.root.join("home/.local/state/sealrun/launcher.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.lines().any(|l| l.starts_with("Your copy is blocked")), "{text}");
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600, "the log is private");
    // A line separator, which dialogs draw as a line break, too.
    let evil = world.path().join("App\u{2028}Your copy is blocked.sealed");
    std::fs::copy(&package, &evil).unwrap();
    let out = a.sealrun(world.path()).arg("run").arg(&evil).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("App\\u{2028}Your copy"), "{}", stderr(&out));
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
    let seen = world.path().join("notify-args.txt");
    let notify = world.path().join("bin/notify-send");
    recording_program(&notify, &seen);
    let out = desktop_launch(&a, world.path(), &package, &notify);
    assert_eq!(out.status.code(), Some(200), "{}", stderr(&out));
    let args: Vec<String> =
        std::fs::read_to_string(&seen).expect("notify-send ran").lines().map(str::to_owned).collect();
    let dashes = args.iter().position(|a| a == "--").expect("a `--` before the title");
    let title = args.iter().position(|a| a.starts_with("--urgency=low Evil")).expect("the title");
    assert!(dashes < title, "{args:?}");
}

/// Issue 24, finding 2b: `[apps."<product>"]` grants, menu entries and
/// icons belong to one vendor. The user's settings for com.example.hello
/// go to the first vendor whose package used them; another vendor's
/// package with the same product id (a download that reuses the name) runs
/// without them and is told why, and its menu entry does not replace the
/// first one. A package whose signature does not check out gets none.
#[test]
fn app_settings_and_menu_entries_belong_to_one_vendor() {
    let first = World::new();
    let a = first.device("a");
    let genuine = first.seal("hello", "1.0.0");
    first.license("hello", &a, "hello.license", &[]);
    let out_dir = first.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let config = a.root.join("home/.config/sealrun/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "[apps.\"com.example.hello\"]\ndirs = [\"{}::/out\"]\nargs = [\"--write\", \"/out/proof.txt\"]\n",
            out_dir.display()
        ),
    )
    .unwrap();
    let proof = out_dir.join("proof.txt");
    // Another vendor's package with the product id, altered so that it never
    // runs, is double-clicked first: it binds nothing (the binding is made
    // once a package has checked out, not from a header read unchecked).
    let other = World::new();
    let impostor = other.seal("hello", "1.0.0");
    other.license_product("com.example.hello", &a, "hello.license", &[]);
    let mut bytes = std::fs::read(&impostor).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 1;
    let broken = other.path().join("broken.sealed");
    std::fs::write(&broken, &bytes).unwrap();
    let out = a
        .sealrun(other.path())
        .arg("run")
        .arg("--license")
        .arg(other.path().join("hello.license"))
        .arg(&broken)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = a.sealrun(first.path()).arg(&genuine).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&proof).unwrap(), "written by hello\n", "the genuine package got the grant");
    std::fs::remove_file(&proof).unwrap();

    // The other vendor's intact package, licensed to the same device.
    let out = a.sealrun(other.path()).arg(&impostor).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!proof.exists(), "the other vendor's package got the user's grant");
    assert!(stderr(&out).contains("belong to the packages of vendor"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("write ok"), "{}", stdout(&out));

    // Menu entries: one per vendor and product; the first stays as it was.
    let apps = a.root.join("home/.local/share/applications");
    let add = |world: &World, package: &std::path::Path| {
        a.sealrun(world.path())
            .args(["license", "add"])
            .arg(world.path().join("hello.license"))
            .arg("--menu")
            .arg(package)
            .output()
            .unwrap()
    };
    let out = add(&first, &genuine);
    assert!(out.status.success(), "{}", stderr(&out));
    let entries = |dir: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("sealrun-app-"))
            .collect();
        v.sort();
        v
    };
    let before = entries(&apps);
    assert_eq!(before.len(), 1, "{before:?}");
    let genuine_entry = std::fs::read_to_string(apps.join(&before[0])).unwrap();
    let out = add(&other, &impostor);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(entries(&apps).len(), 2, "a second entry, not a replacement: {:?}", entries(&apps));
    assert_eq!(std::fs::read_to_string(apps.join(&before[0])).unwrap(), genuine_entry);

    // A package altered after signing gets no menu entry (the header was
    // read without its signature before).
    let mut bytes = std::fs::read(&genuine).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 1;
    let altered = first.path().join("altered.sealed");
    std::fs::write(&altered, &bytes).unwrap();
    let out = add(&first, &altered);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_eq!(entries(&apps).len(), 2);
}
