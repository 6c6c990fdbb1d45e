//! Device binding: a license for device A does not run on device B, and a
//! device key copied from A to B does not make B into A.
use std::fs;

use sealrun_tests::{World, stderr, stdout};

#[test]
fn license_for_another_device_is_refused() {
    let world = World::new();
    let (a, b) = (world.device("a"), world.device("b"));
    assert_ne!(a.code(), b.code());
    let package = world.seal("hello", "1.0.0");
    let lic = world.license("hello", &a, "for-a.license", &[]);

    let ok = a.sealrun(world.path()).arg("run").arg("--license").arg(&lic).arg(&package).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));

    let out = b.sealrun(world.path()).arg("run").arg("--license").arg(&lic).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(201), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("is for another device"), "{err}");
    assert!(err.contains(&a.code()) && err.contains(&b.code()), "both device codes are shown: {err}");
    assert!(stdout(&out).is_empty());

    // `license add` refuses it on B too, with the same explanation.
    let add = b.sealrun(world.path()).args(["license", "add"]).arg(&lic).output().unwrap();
    assert_eq!(add.status.code(), Some(201), "{}", stderr(&add));
}

#[test]
fn device_key_copied_to_another_machine_does_not_work() {
    let world = World::new();
    let (a, b) = (world.device("a"), world.device("b"));
    let package = world.seal("hello", "1.0.0");
    let lic = world.license("hello", &a, "for-a.license", &[]);
    b.code(); // B has its own key
    fs::copy(a.key_file(), b.key_file()).unwrap();

    let out = b.sealrun(world.path()).arg("run").arg("--license").arg(&lic).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(208), "{}", stderr(&out));
    assert!(stderr(&out).contains("was made on another machine"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let id = b.sealrun(world.path()).arg("id").output().unwrap();
    assert_eq!(id.status.code(), Some(208));
}

#[test]
fn no_license_prints_the_device_code_and_next_step() {
    let world = World::new();
    let a = world.device("a");
    let package = world.seal("hello", "1.0.0");
    let out = a.sealrun(world.path()).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(200));
    let err = stderr(&out);
    assert!(err.contains(&a.code()), "{err}");
    assert!(err.contains("Send this device code to the vendor"), "{err}");
    assert!(err.contains("sealrun license add"), "{err}");
}

#[test]
fn device_key_is_private_and_stable() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new();
    let a = world.device("a");
    let first = a.code();
    assert_eq!(a.code(), first, "the device code is stable across runs");
    let mode = fs::metadata(a.key_file()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(first.parse::<sealrun_format::device::DeviceCode>().is_ok());
}

#[test]
fn concurrent_first_runs_agree_on_one_identity() {
    let world = World::new();
    let a = world.device("a");
    let children: Vec<_> = (0..8)
        .map(|_| a.sealrun(world.path()).arg("id").stdout(std::process::Stdio::piped()).spawn().unwrap())
        .collect();
    let codes: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            stdout(&out).trim().to_owned()
        })
        .collect();
    assert!(codes.iter().all(|c| c == &codes[0]), "device codes differ: {codes:?}");
    assert_eq!(a.code(), codes[0]);
}

#[test]
fn doctor_reports_what_the_launcher_sees() {
    let world = World::new();
    let a = world.device("a");
    world.seal("hello", "1.0.0");
    let lic = world.license("hello", &a, "hello.license", &[]);
    let add = a.sealrun(world.path()).args(["license", "add"]).arg(&lic).output().unwrap();
    assert!(add.status.success(), "{}", stderr(&add));
    let out = a.sealrun(world.path()).arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("device code:   {}", a.code())), "{text}");
    assert!(text.contains("wasmtime 48."), "{text}");
    assert!(text.contains("licenses:      1 installed"), "{text}");
    assert!(text.contains("com.example.hello 1.0.0 for Test User") && text.contains("this device"), "{text}");
    assert!(text.contains("machine id:    present (from SEALRUN_MACHINE_ID)"), "{text}");
    assert!(!text.contains(&a.machine_id), "doctor must not print the raw machine ID: {text}");
    assert!(text.contains("cpu:"), "{text}");
}
