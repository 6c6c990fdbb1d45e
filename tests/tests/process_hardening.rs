//! While an app runs, its decrypted bytes live only in the launcher's
//! private anonymous memory: no memfd another process could open, no core
//! dump, no ptrace or /proc access for other processes of the same user.
use sealrun_tests::{World, stderr};

#[test]
fn a_running_app_has_no_memfd_and_no_core_dumps() {
    let world = World::new();
    let (a, package) = world.licensed_sample("hello");
    let mut child =
        sealrun_tests::spawn_until(a.sealrun(world.path()).arg(&package).args(["--", "--spin"]), "spinning");
    let proc = format!("/proc/{}", child.id());
    let limits = std::fs::read_to_string(format!("{proc}/limits")).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert!(core.split_whitespace().skip(4).take(2).all(|v| v == "0"), "core dumps are on: {core}");
    let fds: Vec<String> = std::fs::read_dir(format!("{proc}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    assert!(!fds.iter().any(|f| f.contains("memfd:")), "the launcher holds a memfd: {fds:?}");
    // Not dumpable: /proc/<pid> entries belong to root, not to the user.
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(format!("{proc}/mem")).unwrap().uid();
    assert_eq!(uid, 0, "the process is still dumpable");
    child.kill().unwrap();
    let status = child.wait_with_output().unwrap();
    assert!(!stderr(&status).contains("panicked"));
}
