//! Deny by default: the guest cannot read host files outside granted
//! directories, cannot write to a read-only grant, and sees no host
//! environment variable it was not given.
use std::fs;

use sealrun_tests::{Device, World, stderr, stdout};

fn hello(world: &World) -> (Device, std::path::PathBuf) {
    world.licensed_sample("hello")
}

#[test]
fn no_file_access_outside_granted_dirs() {
    let world = World::new();
    let (a, package) = hello(&world);
    let secret = world.path().join("host-secret.txt");
    fs::write(&secret, "host secret").unwrap();
    let granted = world.path().join("granted");
    fs::create_dir_all(&granted).unwrap();
    fs::write(granted.join("ok.txt"), "12345").unwrap();

    for path in [secret.to_str().unwrap(), "/etc/passwd", "/data/../host-secret.txt", "../host-secret.txt"] {
        let out = a
            .sealrun(world.path())
            .arg("run")
            .args(["--dir", &format!("{}::/data", granted.display())])
            .arg(&package)
            .args(["--", "--read", path])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "reading {path} should fail: {}", stdout(&out));
        assert!(stdout(&out).contains("read failed"), "{}", stdout(&out));
    }
    let out = a
        .sealrun(world.path())
        .arg("run")
        .args(["--dir", &format!("{}::/data", granted.display())])
        .arg(&package)
        .args(["--", "--read", "/data/ok.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("read ok: 5 bytes"));
}

#[test]
fn read_only_dirs_refuse_writes() {
    let world = World::new();
    let (a, package) = hello(&world);
    let dir = world.path().join("ro");
    fs::create_dir_all(&dir).unwrap();
    let out = a
        .sealrun(world.path())
        .arg("run")
        .args(["--dir", &format!("{}::/ro:ro", dir.display())])
        .arg(&package)
        .args(["--", "--write", "/ro/x.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(!dir.join("x.txt").exists());

    let out = a
        .sealrun(world.path())
        .arg("run")
        .args(["--dir", &format!("{}::/rw", dir.display())])
        .arg(&package)
        .args(["--", "--write", "/rw/x.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(fs::read_to_string(dir.join("x.txt")).unwrap(), "written by hello\n");
}

#[test]
fn guest_sees_only_the_environment_it_is_given() {
    let world = World::new();
    let (a, package) = hello(&world);
    let out = a
        .sealrun(world.path())
        .env("HOST_SECRET_TOKEN", "hunter2")
        .env("PASS_ME", "through")
        .arg("run")
        .args(["--env", "LANG=C", "--env", "PASS_ME"])
        .arg(&package)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let env_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("env ")).collect();
    assert!(!text.contains("hunter2") && !text.contains("HOST_SECRET_TOKEN"), "{text}");
    assert!(!text.contains("HOME=") && !text.contains("PATH="), "{text}");
    assert!(text.contains("env LANG=C\n") && text.contains("env PASS_ME=through\n"), "{text}");
    assert_eq!(env_lines.len(), 2, "{text}");
}
