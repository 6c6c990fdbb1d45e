//! Each sample sealed, licensed and run through `sealrun` behaves exactly as
//! the plain module run the way `wasmtime run` runs it, by the same wasmtime
//! (`plain-wasmtime`): same stdout, stderr, exit code and written files;
//! built as a core module (wasm32-wasip1) and as a command component
//! (wasm32-wasip2).
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sealrun_tests::{World, component, plain_wasmtime, sample, stderr, stdout};

struct Case {
    name: &'static str,
    /// Arguments after the module.
    args: &'static [&'static str],
    /// `--env` values.
    env: &'static [&'static str],
    /// Directories `(host subdir of work, guest, read_only)`.
    dirs: &'static [(&'static str, &'static str, bool)],
}

const CASES: &[Case] = &[
    Case { name: "hello", args: &["a", "b c", "--flag"], env: &["LANG=C", "HELLO_EXIT=7"], dirs: &[] },
    Case {
        name: "wordfreq",
        args: &["/in", "/out/freq.tsv", "--top", "5"],
        env: &[],
        dirs: &[("in", "/in", true), ("out", "/out", false)],
    },
    Case { name: "compute", args: &["200000", "20"], env: &[], dirs: &[] },
    Case { name: "canary", args: &[], env: &[], dirs: &[] },
    Case { name: "ticker", args: &["3", "10"], env: &[], dirs: &[] },
];

fn prepare_work(root: &Path) {
    fs::create_dir_all(root.join("in")).unwrap();
    fs::create_dir_all(root.join("out")).unwrap();
    fs::write(root.join("in/a.txt"), "the quick brown fox jumps over the lazy dog\nThe dog sleeps.\n").unwrap();
    fs::write(root.join("in/b.txt"), "Fox, fox, FOX! über straße dog\n").unwrap();
}

fn outputs_of(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(root.join("out"))
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

fn summary(o: &Output) -> (Option<i32>, String, String) {
    (o.status.code(), stdout(o), stderr(o))
}

#[test]
fn sealed_samples_behave_like_plain_wasmtime() {
    behave_like_plain_wasmtime(sample, "console");
}

#[test]
fn sealed_components_behave_like_plain_wasmtime() {
    behave_like_plain_wasmtime(component, "component (wasi:cli/command)");
}

/// Every case of [`CASES`] with the guests `wasm` finds, which `sealsdk
/// inspect` must describe as `kind`.
fn behave_like_plain_wasmtime(wasm: fn(&str) -> PathBuf, kind: &str) {
    let wasmtime = plain_wasmtime();
    let world = World::new();
    let dev = world.device("a");
    for case in CASES {
        let package = world.seal_module(
            &wasm(case.name),
            &format!("com.example.{}", case.name),
            "1.0.0",
            &format!("{}.sealed", case.name),
            &[],
        );
        let inspect = stdout(&world.sealsdk_ok(&["inspect", package.to_str().unwrap()]));
        assert!(inspect.contains(&format!("kind:          {kind}\n")), "{}: {inspect}", case.name);
        world.license(case.name, &dev, &format!("{}.license", case.name), &[]);

        // Plain run, as `wasmtime run` runs it.
        let plain_root = world.path().join(format!("plain-{}", case.name));
        prepare_work(&plain_root);
        let mut plain = Command::new(&wasmtime);
        plain.env_clear().env("PATH", std::env::var("PATH").unwrap()).current_dir(&plain_root).arg("run");
        for e in case.env {
            plain.args(["--env", e]);
        }
        for (host, guest, _) in case.dirs {
            // `wasmtime run` grants directories read-write; sealrun's :ro
            // only matters for writes, which these cases do not attempt in /in.
            plain.args(["--dir", &format!("{}::{guest}", plain_root.join(host).display())]);
        }
        plain.arg(wasm(case.name)).args(case.args);
        let plain_out = plain.output().unwrap();

        // Sealed run under sealrun.
        let sealed_root = world.path().join(format!("sealed-{}", case.name));
        prepare_work(&sealed_root);
        let mut sealed = dev.sealrun(&sealed_root);
        sealed.arg("run");
        for e in case.env {
            sealed.args(["--env", e]);
        }
        for (host, guest, ro) in case.dirs {
            let suffix = if *ro { ":ro" } else { "" };
            sealed.args(["--dir", &format!("{}::{guest}{suffix}", sealed_root.join(host).display())]);
        }
        sealed.arg(&package).arg("--").args(case.args);
        let sealed_out = sealed.output().unwrap();

        assert_eq!(summary(&sealed_out), summary(&plain_out), "sample {} differs from plain wasmtime", case.name);
        assert_eq!(outputs_of(&sealed_root), outputs_of(&plain_root), "files written by {} differ", case.name);
        assert!(!stdout(&sealed_out).is_empty(), "sample {} printed nothing", case.name);
    }
}

#[test]
fn short_form_and_sibling_license_work() {
    let world = World::new();
    // `hello.license` next to `hello.sealed` is found without --license.
    let (dev, package) = world.licensed_sample("hello");
    let out = dev.sealrun(world.path()).arg(&package).args(["--", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("hello from a sealed app\narg[1]=x\n"));
}

#[test]
fn installed_license_is_found_by_product() {
    let world = World::new();
    let dev = world.device("a");
    let package = world.seal("hello", "1.0.0");
    let lic = world.license("hello", &dev, "elsewhere.license", &[]);
    let add = dev.sealrun(world.path()).args(["license", "add"]).arg(&lic).output().unwrap();
    assert!(add.status.success(), "{}", stderr(&add));
    fs::remove_file(&lic).unwrap();
    let out = dev.sealrun(world.path()).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list = dev.sealrun(world.path()).args(["license", "list"]).output().unwrap();
    assert!(stdout(&list).contains("com.example.hello"), "{}", stdout(&list));
}

#[test]
fn options_may_follow_the_package() {
    let world = World::new();
    let (dev, package) = world.licensed_sample("hello");
    let out = dev
        .sealrun(world.path())
        .arg("run")
        .arg(&package)
        .args(["--env", "HELLO_EXIT=3", "--", "--env", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // After `--`, everything is the app's, even what looks like an option.
    assert!(stdout(&out).contains("arg[1]=--env\narg[2]=x\n"), "{}", stdout(&out));
}
