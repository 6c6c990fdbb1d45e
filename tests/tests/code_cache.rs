//! The encrypted compiled-code cache (performance issue), through real
//! `sealrun` processes: a second launch loads the cache instead of compiling,
//! and an entry that was damaged, truncated, copied from another device or
//! made for another package of the same name is refused with a warning,
//! recompiled and replaced, while the app runs exactly as before; for a
//! core module and for a command component alike.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use sealrun_tests::{Device, World, for_each_kind, stderr, stdout};

const HELLO: &str = "hello from a sealed app\n";

fn cache_dir(dev: &Device) -> PathBuf {
    dev.root.join("home/.cache/sealrun/code")
}

fn entries(dev: &Device) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(cache_dir(dev)) else { return Vec::new() };
    let mut out: Vec<PathBuf> =
        dir.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "code")).collect();
    out.sort();
    out
}

/// Runs the package with the launcher's debug log on, which says where the
/// module came from.
fn launch(dev: &Device, package: &Path, extra: &[&str]) -> Output {
    let out = dev.sealrun(&dev.root).env("SEALRUN_LOG", "sealrun=debug").args(extra).arg(package).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), HELLO);
    out
}

fn from_cache(out: &Output) -> bool {
    let err = stderr(out);
    assert!(err.contains("module ready"), "no source in the log: {err}");
    err.contains("source=Cache")
}

fn warned(out: &Output) -> bool {
    stderr(out).contains("warning: the compiled-code cache entry for")
}

/// After a refusal the launcher compiled, warned, and wrote a fresh entry
/// that the next launch uses.
fn assert_rebuilt(dev: &Device, package: &Path, out: &Output, bad: &[u8], entry: &Path) {
    assert!(!from_cache(out), "a refused entry was used");
    assert!(warned(out), "no warning: {}", stderr(out));
    assert!(stderr(out).contains("compiling again and replacing it"), "{}", stderr(out));
    let now = fs::read(entry).unwrap();
    assert_ne!(now, bad, "the refused entry was not replaced");
    let again = launch(dev, package, &[]);
    assert!(from_cache(&again) && !warned(&again), "the rebuilt entry is not used: {}", stderr(&again));
}

#[test]
fn second_launch_uses_the_cache() {
    for_each_kind("hello", |_world, dev, package, _wasm| {
        let first = launch(dev, package, &[]);
        assert!(!from_cache(&first));
        let [entry] = &entries(dev)[..] else { panic!("expected one entry: {:?}", entries(dev)) };
        let second = launch(dev, package, &[]);
        assert!(from_cache(&second), "{}", stderr(&second));
        assert!(!warned(&second));
        // The file is private to the user.
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(entry).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(cache_dir(dev)).unwrap().permissions().mode() & 0o777, 0o700);
    });
}

#[test]
fn no_cache_flag_and_zero_cap_neither_read_nor_write() {
    for_each_kind("hello", |_world, dev, package, _wasm| {
        assert!(!from_cache(&launch(dev, package, &["run", "--no-cache"])));
        assert!(entries(dev).is_empty());
        let out = dev.sealrun(&dev.root).env("SEALRUN_CACHE_MAX_MB", "0").arg(package).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(entries(dev).is_empty());
        launch(dev, package, &[]);
        assert_eq!(entries(dev).len(), 1);
        assert!(!from_cache(&launch(dev, package, &["run", "--no-cache"])), "--no-cache read the cache");
    });
}

#[test]
fn flipped_byte_is_refused_and_rebuilt() {
    for_each_kind("hello", |_world, dev, package, _wasm| {
        launch(dev, package, &[]);
        let entry = entries(dev).remove(0);
        let good = fs::read(&entry).unwrap();
        // One byte in the header, one in the first chunk, one in the last tag.
        for at in [20, 200, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            fs::write(&entry, &bad).unwrap();
            let out = launch(dev, package, &[]);
            assert_rebuilt(dev, package, &out, &bad, &entry);
        }
    });
}

#[test]
fn truncated_entry_is_refused_and_rebuilt() {
    for_each_kind("hello", |_world, dev, package, _wasm| {
        launch(dev, package, &[]);
        let entry = entries(dev).remove(0);
        let good = fs::read(&entry).unwrap();
        for len in [0, 10, good.len() / 2, good.len() - 1] {
            fs::write(&entry, &good[..len]).unwrap();
            let out = launch(dev, package, &[]);
            assert_rebuilt(dev, package, &out, &good[..len], &entry);
        }
    });
}

#[test]
fn entry_from_another_device_is_refused_and_rebuilt() {
    for_each_kind("hello", |world, a, package, _wasm| entry_from_another_device(world, a, package));
}

fn entry_from_another_device(world: &World, a: &Device, package: &Path) {
    let b = world.device("b");
    let b_license = world.license("hello", &b, "hello-b.license", &[]);
    launch(a, package, &[]);
    let a_entry = entries(a).remove(0);
    // Same package, same runtime, same launcher: the entry has the same
    // name on device b, but b cannot open a's entry.
    fs::create_dir_all(cache_dir(&b)).unwrap();
    let b_entry = cache_dir(&b).join(a_entry.file_name().unwrap());
    let copied = fs::read(&a_entry).unwrap();
    fs::write(&b_entry, &copied).unwrap();
    let out = launch(&b, package, &["run", "--license", b_license.to_str().unwrap()]);
    assert!(!from_cache(&out) && warned(&out), "{}", stderr(&out));
    assert_ne!(fs::read(&b_entry).unwrap(), copied, "b kept a's entry");
    let again = launch(&b, package, &["run", "--license", b_license.to_str().unwrap()]);
    assert!(from_cache(&again) && !warned(&again));
}

#[test]
fn entry_of_another_package_with_the_same_name_is_refused() {
    for_each_kind("hello", |world, dev, package, wasm| {
        launch(dev, package, &[]);
        let first = entries(dev).remove(0);
        // The vendor seals the same product and release again (new nonces, so a
        // different package) at the same path: a new entry, not the old one.
        let resealed = world.seal_module(wasm, "com.example.hello", "1.0.0", "hello.sealed", &[]);
        assert_eq!(resealed, package);
        let out = launch(dev, package, &[]);
        assert!(!from_cache(&out) && !warned(&out), "the old entry was used for a new package: {}", stderr(&out));
        let second = entries(dev).into_iter().find(|e| *e != first).expect("a second entry");
        // The old package's entry planted under the new package's name.
        let old = fs::read(&first).unwrap();
        fs::write(&second, &old).unwrap();
        let out = launch(dev, package, &[]);
        assert_rebuilt(dev, package, &out, &old, &second);
    });
}

#[test]
fn prepare_compiles_ahead_and_cache_commands_manage_entries() {
    for_each_kind("hello", |world, dev, package, _wasm| {
        let prepare = || dev.sealrun(&dev.root).arg("prepare").arg(package).output().unwrap();
        let out = prepare();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stdout(&out).starts_with("com.example.hello 1.0.0 is ready: compiled in "), "{}", stdout(&out));
        assert!(stdout(&out).contains("cached encrypted"), "{}", stdout(&out));
        let again = stdout(&prepare());
        assert!(again.starts_with("com.example.hello 1.0.0 is ready: already compiled for this device ("), "{again}");
        assert!(from_cache(&launch(dev, package, &[])), "run did not use the prepared entry");

        let cmd = |args: &[&str]| {
            let out = dev.sealrun(&dev.root).args(args).output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
            stdout(&out)
        };
        let list = cmd(&["cache", "list"]);
        assert!(list.contains("com.example.hello 1.0.0 (com.example.hello)"), "{list}");
        assert_eq!(list.lines().count(), 1);
        let size = cmd(&["cache", "size"]);
        assert!(size.contains(" in 1 entry (cap 2.0 GiB) in "), "{size}");
        assert!(cmd(&["cache", "clear"]).starts_with("removed 1 entry ("));
        assert!(entries(dev).is_empty());
        assert!(cmd(&["cache", "list"]).contains("is empty"));
        assert!(!from_cache(&launch(dev, package, &[])));

        // A license problem (the one next to the package is for device a)
        // stops prepare with the launcher's own exit code.
        let other = world.device("other");
        let out = other.sealrun(&other.root).arg("prepare").arg(package).output().unwrap();
        assert_eq!(out.status.code(), Some(201), "{}", stderr(&out));
    });
}

#[test]
fn cache_cap_evicts_least_recently_used() {
    let world = World::new();
    let dev = world.device("a");
    let names = ["hello", "compute", "canary", "wordfreq"];
    let packages: Vec<PathBuf> = names
        .iter()
        .map(|name| {
            let package = world.seal(name, "1.0.0");
            world.license(name, &dev, &format!("{name}.license"), &[]);
            package
        })
        .collect();
    let prepare = |package: &Path, cap: &str| {
        let out = dev.sealrun(&dev.root).env("SEALRUN_CACHE_MAX_MB", cap).arg("prepare").arg(package).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    // First without a cap worth the name, to learn the entries' sizes.
    packages.iter().for_each(|p| prepare(p, "2048"));
    let all: u64 = entries(&dev).iter().map(|e| fs::metadata(e).unwrap().len()).sum();
    let smallest = entries(&dev).iter().map(|e| fs::metadata(e).unwrap().len()).min().unwrap();
    fs::remove_dir_all(cache_dir(&dev)).unwrap();
    // A cap one byte short of all four: the last one in must evict.
    let cap = all - 1;
    let cap_mib = format!("{:.9}", cap as f64 / (1u64 << 20) as f64);
    let mut order = Vec::new();
    for (name, package) in names.iter().zip(&packages) {
        let before = entries(&dev);
        prepare(package, &cap_mib);
        let new: Vec<PathBuf> = entries(&dev).into_iter().filter(|e| !before.contains(e)).collect();
        assert_eq!(new.len(), 1, "{name}: {new:?}");
        order.push(new[0].clone());
        let total: u64 = entries(&dev).iter().map(|e| fs::metadata(e).unwrap().len()).sum();
        assert!(total <= cap, "after {name} the cache holds {total} bytes, over its cap of {cap}");
    }
    let left = entries(&dev);
    assert!(left.contains(order.last().unwrap()), "the newest entry was evicted");
    assert!(!left.contains(&order[0]), "the least recently used entry survived: {left:?}");
    assert!(all - smallest <= cap, "sanity: evicting one entry is enough");
}

/// Entries of 4 MiB and more are decrypted into a sealed memfd that wasmtime
/// maps without a copy: the same guarantees hold on that path, for a module
/// made here and for the `bulk` sample as a module and as a component.
#[test]
fn large_entries_load_through_a_memfd() {
    let world = World::new();
    let dev = world.device("a");
    let module = world.path().join("big.wasm");
    sealrun_tests::write_data_module(&module, 8 << 20);
    let package = world.seal_module(&module, "com.example.big", "1.0.0", "big.sealed", &[]);
    world.license_product("com.example.big", &dev, "big.license", &[]);
    large_entry_loads_through_a_memfd(&dev, &package);
    for_each_kind("bulk", |_world, dev, package, _wasm| large_entry_loads_through_a_memfd(dev, package));
}

fn large_entry_loads_through_a_memfd(dev: &Device, package: &Path) {
    let run = || {
        let out = dev.sealrun(&dev.root).env("SEALRUN_LOG", "sealrun=debug").arg(package).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stderr(&out)
    };
    assert!(run().contains("source=Compiled"));
    let entry = entries(dev).remove(0);
    assert!(fs::metadata(&entry).unwrap().len() >= 8 << 20, "the entry holds the data segment");
    let warm = run();
    assert!(warm.contains("compiled code mapped from a sealed memfd") && warm.contains("source=Cache"), "{warm}");
    let good = fs::read(&entry).unwrap();
    let mut bad = good.clone();
    let at = good.len() - 100_000;
    bad[at] ^= 0x80;
    fs::write(&entry, &bad).unwrap();
    let refused = run();
    assert!(
        refused.contains("warning: the compiled-code cache entry for") && refused.contains("source=Compiled"),
        "{refused}"
    );
    assert!(run().contains("source=Cache"));
}

/// Invariant 3 holds with the cache on: the package is verified on every
/// launch, so a package damaged after its code was cached is refused.
#[test]
fn package_damaged_after_caching_is_refused() {
    for_each_kind("hello", |_world, dev, package, _wasm| {
        launch(dev, package, &[]);
        assert!(from_cache(&launch(dev, package, &[])));
        let good = fs::read(package).unwrap();
        let mut bad = good.clone();
        let at = good.len() / 2;
        bad[at] ^= 0x01;
        fs::write(package, &bad).unwrap();
        let out = dev.sealrun(&dev.root).arg(package).output().unwrap();
        assert_eq!(out.status.code(), Some(204), "{}", stderr(&out));
        assert!(stdout(&out).is_empty(), "the app ran from the cache");
        fs::write(package, &good).unwrap();
        assert!(from_cache(&launch(dev, package, &[])), "the entry was lost");
    });
}
