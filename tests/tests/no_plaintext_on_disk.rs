//! Invariant 1: no plaintext module bytes reach the disk. The `canary`
//! sample carries a unique marker in its data and a distinctive constant in
//! its code; after sealing, licensing and running it with HOME, the XDG dirs
//! and TMPDIR inside a fresh tree, no file in that tree or in the working
//! directory contains the marker, the code constant (as wasm or as compiled
//! x86-64 code, which the encrypted compiled-code cache holds) or any slice
//! of the module's bytes; for the canary as a core module and as a command
//! component (whose cache entry holds a component's compiled code).
use std::fs;
use std::path::Path;

use sealrun_tests::{World, component, plain_wasmtime, sample, stderr, stdout};

const MARKER: &[u8] = b"SEALRUN-CANARY-7f3c9e2a-d41b-4c8e-9a65-0b1e2f3a4c5d";
/// `i64.const 0x5EA1C0DECA4A7C0D` as it appears in the code section.
const CODE_MARKER: &[u8] = &[0x42, 0x8d, 0xf8, 0xa9, 0xd2, 0xec, 0x9b, 0xf0, 0xd0, 0xde, 0x00];
/// The same constant as Cranelift emits it into compiled x86-64 code (a
/// little-endian immediate), so the scan sees plaintext compiled code too.
const COMPILED_MARKER: &[u8] = &0x5EA1_C0DE_CA4A_7C0Du64.to_le_bytes();
/// Length of the module slices searched for.
const WINDOW: usize = 32;

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            files(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn canary_leaves_no_plaintext_on_disk() {
    leaves_no_plaintext(&sample("canary"));
}

#[test]
fn canary_component_leaves_no_plaintext_on_disk() {
    leaves_no_plaintext(&component("canary"));
}

fn leaves_no_plaintext(wasm: &Path) {
    let module = fs::read(wasm).unwrap();
    assert!(contains(&module, MARKER), "the canary sample lost its marker");
    assert!(contains(&module, CODE_MARKER), "the canary sample lost its code constant");
    // Control: compiled code, as wasmtime serializes it, does carry the
    // compiled marker, so its absence below means something.
    let wasmtime = plain_wasmtime();
    let scratch = tempfile::tempdir().unwrap();
    let cwasm = scratch.path().join("canary.cwasm");
    let st = std::process::Command::new(wasmtime).arg("compile").arg(wasm).arg("-o").arg(&cwasm).status();
    assert!(st.unwrap().success(), "wasmtime compile failed");
    assert!(contains(&fs::read(&cwasm).unwrap(), COMPILED_MARKER), "compiled code no longer shows the constant");

    let world = World::new();
    let (a, package) = world.licensed_wasm("canary", wasm);
    let work = a.root.join("work");
    // Twice: the first launch compiles and writes the cache entry, the
    // second loads it.
    let _ = a.sealrun(&work).arg(&package).output().unwrap();
    let out = a.sealrun(&work).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("canary ok"), "the canary did not run: {}", stdout(&out));
    assert!(stdout(&out).contains(std::str::from_utf8(MARKER).unwrap()));
    scan(&world, &work, &module);
}

/// The same for a run unlocked by a dongle (SoftHSM2 tokens kept inside the
/// scanned tree, so the token store is scanned too).
#[test]
fn canary_leaves_no_plaintext_on_disk_with_a_dongle() {
    use sealrun_tests::softhsm::{PIN, SoftHsm, dongle_license, provision};
    let module = fs::read(sample("canary")).unwrap();
    let world = World::new();
    let Some(hsm) = SoftHsm::new(&world.path().join("hsm")) else { return };
    hsm.init_token("canary");
    let a = world.device("a");
    let dongle = provision(&world, &hsm, &a);
    let package = world.seal("canary", "1.0.0");
    let lic = dongle_license(&world, "canary", &dongle, 1, "canary.license");
    let work = a.root.join("work");
    for _ in 0..2 {
        let out = a
            .sealrun(&work)
            .envs(hsm.env())
            .env("SEALRUN_PIN", PIN)
            .arg("run")
            .arg("--license")
            .arg(&lic)
            .arg(&package)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stdout(&out).contains("canary ok"), "the canary did not run: {}", stdout(&out));
    }
    let mut tokens = Vec::new();
    files(&hsm.tokens, &mut tokens);
    assert!(!tokens.is_empty(), "the scan covers the token store");
    scan(&world, &work, &module);
}

fn scan(world: &World, work: &Path, module: &[u8]) {
    // Slices of the module spread over its whole length, each long enough
    // not to occur by chance.
    let windows: Vec<&[u8]> = (0..64).map(|i| &module[i * (module.len() - WINDOW) / 63..][..WINDOW]).collect();
    let mut all = Vec::new();
    files(world.path(), &mut all); // includes the device's home, TMPDIR and work dir
    assert!(work.starts_with(world.path()), "the scan covers the working directory");
    assert!(all.iter().any(|p| p.ends_with("device.key")), "the scan covers the device's data dir");
    assert!(
        all.iter().any(|p| p.extension().is_some_and(|x| x == "code")),
        "the scan covers the compiled-code cache (the launch wrote an entry)"
    );
    assert!(all.len() > 5, "the scan sees the world's files");
    for path in all {
        let bytes = fs::read(&path).unwrap();
        assert!(!contains(&bytes, MARKER), "{} contains the canary marker", path.display());
        assert!(!contains(&bytes, CODE_MARKER), "{} contains the canary code", path.display());
        assert!(!contains(&bytes, COMPILED_MARKER), "{} contains the canary's compiled code", path.display());
        for w in &windows {
            assert!(!contains(&bytes, w), "{} contains plaintext module bytes", path.display());
        }
    }
}
