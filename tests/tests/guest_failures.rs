//! How the launcher reports a guest that traps, runs out of memory or is
//! interrupted: each with its own exit code and message.
use sealrun_tests::{World, stderr, stdout};

fn setup() -> (World, sealrun_tests::Device, std::path::PathBuf) {
    let world = World::new();
    let (a, package) = world.licensed_sample("hello");
    (world, a, package)
}

#[test]
fn a_trap_is_reported_with_its_message() {
    let (world, a, package) = setup();
    let out = a.sealrun(world.path()).arg(&package).args(["--", "--panic"]).output().unwrap();
    assert_eq!(out.status.code(), Some(210), "{}", stderr(&out));
    assert!(stderr(&out).contains("the app crashed"), "{}", stderr(&out));
    assert!(stderr(&out).contains("unreachable"), "{}", stderr(&out));
}

#[test]
fn memory_limit_is_enforced_and_reported() {
    let (world, a, package) = setup();
    let out = a
        .sealrun(world.path())
        .args(["run", "--max-memory", "64"])
        .arg(&package)
        .args(["--", "--alloc", "128"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(211), "{}", stderr(&out));
    assert!(stderr(&out).contains("ran out of memory") && stderr(&out).contains("64 MiB"), "{}", stderr(&out));
    let out = a
        .sealrun(world.path())
        .args(["run", "--max-memory", "256"])
        .arg(&package)
        .args(["--", "--alloc", "128"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("alloc ok"));
}

fn interrupt_with(signal: i32, expected: i32, text: &str) {
    let (world, a, package) = setup();
    let child = sealrun_tests::spawn_until(a.sealrun(world.path()).arg(&package).args(["--", "--spin"]), "spinning");
    // The real signal, from outside, as a terminal or service manager sends it.
    let status =
        std::process::Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(expected), "{}", stderr(&out));
    assert!(stderr(&out).contains(text), "{}", stderr(&out));
}

#[test]
fn timeout_stops_the_guest() {
    let (world, a, package) = setup();
    let started = std::time::Instant::now();
    let out = a
        .sealrun(world.path())
        .args(["run", "--timeout", "0.5"])
        .arg(&package)
        .args(["--", "--spin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(213), "{}", stderr(&out));
    assert!(stderr(&out).contains("time limit of 0.5 s"), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // A run that ends in time is not affected by its limit.
    let out = a.sealrun(world.path()).args(["run", "--timeout", "60"]).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn ctrl_c_stops_the_guest_cleanly() {
    interrupt_with(2, 130, "stopped by Ctrl-C");
}

#[test]
fn sigterm_stops_the_guest_cleanly() {
    interrupt_with(15, 143, "stopped by SIGTERM");
}
