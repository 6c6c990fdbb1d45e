//! Guests that misbehave on purpose (the `hostile` sample, as a core module
//! and as a command component): the launcher stays in control and says
//! clearly what happened. (The memory bomb,
//! Ctrl-C, SIGTERM and `--timeout` on an endless loop are in
//! guest_failures.rs; files outside granted directories in sandbox.rs.)
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sealrun_tests::{World, component, plain_wasmtime, sample, stderr, stdout};

/// hostile sealed as a module and as a component, licensed to device "a".
fn setup() -> (World, sealrun_tests::Device, [std::path::PathBuf; 2]) {
    let world = World::new();
    let (a, packages) = world.licensed_module_and_component("hostile");
    (world, a, packages)
}

/// The sealed sample run with the host directory `dir` granted as `/data`.
fn run_with_dir(
    world: &World,
    a: &sealrun_tests::Device,
    package: &std::path::Path,
    dir: &std::path::Path,
    args: [&str; 3],
) -> std::process::Output {
    let grant = format!("{}::/data", dir.display());
    a.sealrun(world.path()).args(["run", "--dir", &grant]).arg(package).args(args).output().unwrap()
}

#[test]
fn endless_recursion_is_a_clear_crash() {
    let (world, a, packages) = setup();
    for (package, wasm) in packages.iter().zip([sample("hostile"), component("hostile")]) {
        let out = a.sealrun(world.path()).arg(package).args(["--", "recurse"]).output().unwrap();
        assert_eq!(out.status.code(), Some(210), "{}", stderr(&out));
        // wasmtime's call stack runs out (or, for a guest whose frames live in
        // its linear memory, its own stack does): a trap either way.
        let e = stderr(&out);
        let why = ["call stack exhausted", "out of bounds memory access"];
        assert!(e.contains("the app crashed") && why.iter().any(|w| e.contains(w)), "{e}");
        let plain = Command::new(plain_wasmtime()).arg("run").arg(wasm).arg("recurse").output().unwrap();
        assert!(!plain.status.success() && why.iter().any(|w| stderr(&plain).contains(w)), "{}", stderr(&plain));
    }
}

#[test]
fn flooding_a_closed_pipe_ends_promptly() {
    let (world, a, packages) = setup();
    for package in &packages {
        flooding_a_closed_pipe_ends_promptly_by(&world, &a, package);
    }
}

fn flooding_a_closed_pipe_ends_promptly_by(world: &World, a: &sealrun_tests::Device, package: &std::path::Path) {
    let mut child = a
        .sealrun(world.path())
        .arg(package)
        .args(["--", "flood"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read some of the flood, then close the pipe, as `| head` does.
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    while got < 16 << 20 {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "the flood stopped early");
        got += n;
    }
    drop(out);
    let closed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(closed.elapsed() < Duration::from_secs(30), "the launcher kept running after its stdout closed");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    // The guest saw the write fail and exited with its own code (a
    // component's exit is success or failure, 1, as WASI 0.2 defines it);
    // no signal, no hang, and the launcher's memory did not grow with the
    // flood.
    let code = if package.to_string_lossy().ends_with("-component.sealed") { 1 } else { 3 };
    assert_eq!(status.code(), Some(code), "{err}");
    assert!(err.contains("flood: stdout closed after"), "{err}");
}

#[test]
fn dot_dot_absolute_paths_and_symlinks_do_not_leave_a_granted_dir() {
    let (world, a, packages) = setup();
    for package in &packages {
        dot_dot_absolute_paths_and_symlinks_do_not_leave_a_granted_dir_by(&world, &a, package);
    }
}

fn dot_dot_absolute_paths_and_symlinks_do_not_leave_a_granted_dir_by(
    world: &World,
    a: &sealrun_tests::Device,
    package: &std::path::Path,
) {
    let root = world.path().join(format!("escape-{}", package.file_stem().unwrap().to_string_lossy()));
    let data = root.join("data");
    let outside = root.join("outside");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), data.join("outside")).unwrap();
    std::os::unix::fs::symlink(&outside, data.join("outside-dir")).unwrap();
    let out = run_with_dir(world, a, package, &data, ["--", "escape", "/data"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().filter(|l| l.starts_with("refused ")).count(), 5, "{text}");
    assert!(!text.contains("ESCAPED"), "{text}");
    assert!(!root.join("planted.txt").exists());
}

#[test]
fn spinning_on_the_clock_and_random_bytes_works_and_stays_stoppable() {
    let (world, a, packages) = setup();
    for package in &packages {
        spinning_on_the_clock_and_random_bytes_works_and_stays_stoppable_by(&world, &a, package);
    }
}

fn spinning_on_the_clock_and_random_bytes_works_and_stays_stoppable_by(
    world: &World,
    a: &sealrun_tests::Device,
    package: &std::path::Path,
) {
    let out = a.sealrun(world.path()).arg(package).args(["--", "spin", "200000"]).output().unwrap();
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "spun 200000\n"), "{}", stderr(&out));
    let started = Instant::now();
    let out = a
        .sealrun(world.path())
        .args(["run", "--timeout", "1"])
        .arg(package)
        .args(["--", "spin", "100000000000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(213), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

/// Issue 24, finding 8: a guest that opens file after file (it got 20,000
/// before this cap, starving the launcher's own connections) stops at the
/// sandbox's limit with a clear crash; a guest that keeps fewer open runs
/// as before.
#[test]
fn a_guest_cannot_open_more_than_the_sandbox_allows() {
    let (world, a, packages) = setup();
    for package in &packages {
        a_guest_cannot_open_more_than_the_sandbox_allows_by(&world, &a, package);
    }
}

fn a_guest_cannot_open_more_than_the_sandbox_allows_by(
    world: &World,
    a: &sealrun_tests::Device,
    package: &std::path::Path,
) {
    let dir = world.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), b"x").unwrap();
    let grant = format!("{}::/data:ro", dir.display());
    let out = a
        .sealrun(world.path())
        .args(["run", "--dir", &grant])
        .arg(package)
        .args(["--", "open", "/data/f", "400"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).ends_with("opened all 400\n"), "{}", stdout(&out));
    let out = a
        .sealrun(world.path())
        .args(["run", "--dir", &grant])
        .arg(package)
        .args(["--", "open", "/data/f", "20000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(210), "{}", stderr(&out));
    let cap = sealrun::runtime::runner::MAX_GUEST_RESOURCES;
    assert!(
        stderr(&out).contains(&format!("more than {cap} files, directories, streams and sockets")),
        "{}",
        stderr(&out)
    );
    let opened: usize = stdout(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("opened "))
        .filter_map(|n| n.parse().ok())
        .max()
        .unwrap_or(0);
    assert!(opened < cap, "the guest opened {opened}");
}

/// Issue 24, finding 5: the guest may not leave symlinks in a writable
/// grant that point out of it (`out/report.txt -> ../../.bashrc`): the
/// guest cannot follow them, but the next host program that writes the
/// output would. Only links that lead down are made, also through a link
/// to `.` that would fool a check of the link's depth.
#[test]
fn the_guest_cannot_plant_symlinks_that_leave_its_grant() {
    let (world, a, packages) = setup();
    for package in &packages {
        the_guest_cannot_plant_symlinks_that_leave_its_grant_by(&world, &a, package);
    }
}

fn the_guest_cannot_plant_symlinks_that_leave_its_grant_by(
    world: &World,
    a: &sealrun_tests::Device,
    package: &std::path::Path,
) {
    let root = world.path().join(format!("plant-{}", package.file_stem().unwrap().to_string_lossy()));
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = run_with_dir(world, a, package, &data, ["--", "plant", "/data"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for refused in ["out/report.txt", "up.txt", "abs.txt", "loop/loop/deep.txt"] {
        assert!(text.contains(&format!("refused {refused}: errno 63")), "{refused}: {text}");
    }
    assert!(text.contains("planted out/ok.txt") && text.contains("planted loop"), "{text}");
    // On the host: every link there resolves inside the grant.
    let data = data.canonicalize().unwrap();
    let mut links = 0;
    let mut stack = vec![data.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.file_type().is_symlink() {
                links += 1;
                let target = std::fs::read_link(e.path()).unwrap();
                assert!(target.is_relative() && !target.components().any(|c| c.as_os_str() == ".."), "{target:?}");
                if let Ok(resolved) = e.path().canonicalize() {
                    assert!(resolved.starts_with(&data), "{} -> {}", e.path().display(), resolved.display());
                }
            } else if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    assert_eq!(links, 2, "out/ok.txt and loop");
    assert_eq!(std::fs::read_to_string(data.join("out/ok.txt")).unwrap(), "inside");
}
