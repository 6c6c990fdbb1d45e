//! How the launcher reports a guest that traps, runs out of memory or is
//! interrupted: each with its own exit code and message, the same for a
//! core module and a command component.
use sealrun_tests::{World, stderr, stdout};

/// hello sealed as a module and as a component, licensed to device "a".
fn setup() -> (World, sealrun_tests::Device, [std::path::PathBuf; 2]) {
    let world = World::new();
    let (a, packages) = world.licensed_module_and_component("hello");
    (world, a, packages)
}

#[test]
fn a_trap_is_reported_with_its_message() {
    let (world, a, packages) = setup();
    for package in &packages {
        let out = a.sealrun(world.path()).arg(package).args(["--", "--panic"]).output().unwrap();
        assert_eq!(out.status.code(), Some(210), "{}", stderr(&out));
        assert!(stderr(&out).contains("the app crashed"), "{}", stderr(&out));
        assert!(stderr(&out).contains("unreachable"), "{}", stderr(&out));
    }
}

#[test]
fn memory_limit_is_enforced_and_reported() {
    let (world, a, packages) = setup();
    for package in &packages {
        memory_limit_holds(&world, &a, package);
    }
}

fn memory_limit_holds(world: &World, a: &sealrun_tests::Device, package: &std::path::Path) {
    let out = a
        .sealrun(world.path())
        .args(["run", "--max-memory", "64"])
        .arg(package)
        .args(["--", "--alloc", "128"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(211), "{}", stderr(&out));
    assert!(stderr(&out).contains("ran out of memory") && stderr(&out).contains("64 MiB"), "{}", stderr(&out));
    let out = a
        .sealrun(world.path())
        .args(["run", "--max-memory", "256"])
        .arg(package)
        .args(["--", "--alloc", "128"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("alloc ok"));
}

/// Issue 24, finding 3: tables count against `--max-memory` too, with the
/// memories, in one budget (16 tables of 10 million function references
/// took 1.26 GB at `--max-memory 1`), one table is capped far lower, and
/// the GC proposal is off.
#[test]
fn tables_count_against_the_memory_limit() {
    let world = World::new();
    let a = world.device("a");
    let seal = |name: &str, module: &std::path::Path| {
        let product = format!("com.example.{name}");
        let package = world.seal_module(module, &product, "1.0.0", &format!("{name}.sealed"), &[]);
        world.license_product(&product, &a, &format!("{name}.license"), &[]);
        package
    };
    // 16 tables of a million elements: 128 MiB of host memory.
    let module = world.path().join("tables.wasm");
    sealrun_tests::write_table_module(&module, 16, 1_000_000);
    let package = seal("tables", &module);
    let out = a.sealrun(world.path()).args(["run", "--max-memory", "64"]).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(211), "{}", stderr(&out));
    assert!(stderr(&out).contains("ran out of memory") && stderr(&out).contains("64 MiB"), "{}", stderr(&out));
    let out = a.sealrun(world.path()).args(["run", "--max-memory", "200"]).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "16 tables fit in 200 MiB: {}", stderr(&out));
    // One table beyond the per-table cap, whatever the budget.
    let module = world.path().join("big-table.wasm");
    sealrun_tests::write_table_module(&module, 1, sealrun::runtime::runner::MAX_TABLE_ELEMENTS as u32 + 1);
    let package = seal("bigtable", &module);
    let out = a.sealrun(world.path()).args(["run", "--max-memory", "4096"]).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(211), "{}", stderr(&out));
}

/// The GC proposal is off in the launcher, so `sealsdk seal` refuses a
/// module that uses it (before, it sealed what the launcher would now
/// refuse to compile).
#[test]
fn a_module_using_the_gc_proposal_is_refused_at_seal_time() {
    let world = World::new();
    // Types: an empty struct (GC) and () -> (); one function, `_start`.
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.extend_from_slice(&[1, 6, 2, 0x5f, 0, 0x60, 0, 0]);
    m.extend_from_slice(&[3, 2, 1, 1]);
    m.extend_from_slice(&[7, 10, 1, 6, b'_', b's', b't', b'a', b'r', b't', 0, 0]);
    m.extend_from_slice(&[10, 4, 1, 2, 0, 0x0b]);
    let module = world.path().join("gc.wasm");
    std::fs::write(&module, &m).unwrap();
    let out = world.path().join("gc.sealed");
    let sealed = world.sealsdk(&[
        "seal",
        module.to_str().unwrap(),
        "--product",
        "com.example.gc",
        "--release",
        "1.0.0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!sealed.status.success(), "sealed a GC module");
    assert!(stderr(&sealed).contains("without the gc feature"), "{}", stderr(&sealed));
    assert!(!out.exists());
}

fn interrupt_with(signal: i32, expected: i32, text: &str) {
    let (world, a, packages) = setup();
    for package in &packages {
        let child = sealrun_tests::spawn_until(a.sealrun(world.path()).arg(package).args(["--", "--spin"]), "spinning");
        // The real signal, from outside, as a terminal or service manager sends it.
        let status =
            std::process::Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(expected), "{}: {}", package.display(), stderr(&out));
        assert!(stderr(&out).contains(text), "{}", stderr(&out));
    }
}

#[test]
fn timeout_stops_the_guest() {
    let (world, a, packages) = setup();
    for package in &packages {
        timeout_holds(&world, &a, package);
    }
}

fn timeout_holds(world: &World, a: &sealrun_tests::Device, package: &std::path::Path) {
    let started = std::time::Instant::now();
    let out =
        a.sealrun(world.path()).args(["run", "--timeout", "0.5"]).arg(package).args(["--", "--spin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(213), "{}", stderr(&out));
    assert!(stderr(&out).contains("time limit of 0.5 s"), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // A run that ends in time is not affected by its limit.
    let out = a.sealrun(world.path()).args(["run", "--timeout", "60"]).arg(package).output().unwrap();
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
