//! Issue 8, secrets in memory: a core dump of a running launcher holds
//! neither the content key, nor the device key, nor the guest's compiled
//! code. The dump is forced
//! with gdb's `gcore` as root, past the launcher's not-dumpable flag (which
//! already stops ordinary core dumps, see `process_hardening.rs`); gcore
//! honours `MADV_DONTDUMP`, which the launcher sets on its plaintext buffers
//! and on the code image wasmtime maps. The guest's linear memory, with its
//! data segments, is in the dump by design (docs/security.md), and the test
//! checks that it is, so a dump that misses everything cannot pass.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sealrun_tests::{World, spawn_until, stderr};

/// The canary's data marker: it lives in the guest's linear memory.
const MARKER: &[u8] = b"SEALRUN-CANARY-7f3c9e2a-d41b-4c8e-9a65-0b1e2f3a4c5d";
/// The canary's code constant, as the immediate of the x86-64 instruction
/// Cranelift compiles it to (`movabs r64, imm64`: REX.W, B8+r, then these
/// bytes). The value alone may sit in a register or a stack slot of the
/// running guest, which is its data; the instruction is its code.
const CODE_IMMEDIATE: [u8; 8] = 0x5EA1_C0DE_CA4A_7C0Du64.to_le_bytes();
/// Set by scripts/test: a missing gdb or a non-root run is then a failure.
const REQUIRE_ENV: &str = "SEALRUN_REQUIRE_GCORE";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether `hay` holds the canary's `movabs` instruction.
fn holds_code(hay: &[u8]) -> bool {
    hay.windows(10).any(|w| matches!(w[0], 0x48 | 0x49) && (0xb8..=0xbf).contains(&w[1]) && w[2..] == CODE_IMMEDIATE)
}

/// The process memory in an ELF core file: its PT_LOAD segments (the notes
/// hold registers, which are the guest's data).
fn memory(core: &[u8]) -> Vec<&[u8]> {
    let u16_at = |at: usize| u16::from_le_bytes(core[at..at + 2].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(core[at..at + 8].try_into().unwrap()) as usize;
    assert_eq!(&core[..5], b"\x7fELF\x02", "a 64-bit ELF core file");
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&ph| u32::from_le_bytes(core[ph..ph + 4].try_into().unwrap()) == 1)
        .map(|ph| {
            let (offset, size) = (u64_at(ph + 8), u64_at(ph + 32));
            &core[offset..(offset + size).min(core.len())]
        })
        .collect()
}

/// The content key the world's keystore made for the canary's release.
fn content_key(world: &World) -> Vec<u8> {
    let dir = world.path().join("keystore/content-keys");
    let mut found = Vec::new();
    for product in fs::read_dir(&dir).unwrap().flatten() {
        let file = product.path().join("1.0.0.key");
        if let Ok(text) = fs::read_to_string(&file) {
            found.push(hex::decode(text.lines().nth(1).expect("hex on the second line").trim()).unwrap());
        }
    }
    assert_eq!(found.len(), 1, "one content key in {}", dir.display());
    found.pop().unwrap()
}

/// Whether gcore can be used here; otherwise says why (and fails when the
/// run requires it).
fn gcore_usable() -> bool {
    let is_root = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let has_gcore = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("gcore").is_file()));
    if is_root && has_gcore {
        return true;
    }
    let why =
        if has_gcore { "not root (gcore cannot attach to a not-dumpable process)" } else { "gcore (gdb) missing" };
    assert!(std::env::var_os(REQUIRE_ENV).is_none(), "{REQUIRE_ENV} is set but {why}");
    eprintln!("SKIPPED: {why}; scripts/test runs this as root with gdb installed");
    false
}

fn dump(pid: u32, dir: &Path) -> Vec<u8> {
    let prefix: PathBuf = dir.join("core");
    let out = Command::new("gcore").arg("-o").arg(&prefix).arg(pid.to_string()).output().expect("run gcore");
    let file = PathBuf::from(format!("{}.{pid}", prefix.display()));
    assert!(out.status.success() && file.exists(), "gcore failed: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = fs::read(&file).unwrap();
    fs::remove_file(&file).unwrap();
    bytes
}

#[test]
fn a_core_dump_holds_no_content_key_and_no_code() {
    if !gcore_usable() {
        return;
    }
    let world = World::new();
    let a = world.device("a");
    // The device key, made here so that the test knows its bytes.
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let mut device_secret = [0u8; 32];
    rand_core::Rng::fill_bytes(&mut rng, &mut device_secret);
    let secret = sealrun_format::device::DeviceSecret::from_bytes(&device_secret);
    let sealed = sealrun_format::device::seal_device_key(&secret, a.machine_id.as_bytes(), &mut rng);
    fs::create_dir_all(a.key_file().parent().unwrap()).unwrap();
    fs::write(a.key_file(), sealed).unwrap();
    // The canary as a core module and as a command component (whose code
    // wasmtime loads as a component), both release 1.0.0 of one product.
    let packages = [
        world.seal_module(&sealrun_tests::sample("canary"), "com.example.canary", "1.0.0", "canary.sealed", &[]),
        world.seal_module(&sealrun_tests::component("canary"), "com.example.canary", "1.0.0", "canary-p2.sealed", &[]),
    ];
    let license = world.license("canary", &a, "canary.license", &[]);
    let key = content_key(&world);
    let scratch = tempfile::tempdir().unwrap();
    // First launch: the module is compiled in this process. Second: its
    // compiled code comes from the encrypted cache.
    let rounds = packages.iter().flat_map(|p| ["compiled now", "loaded from the cache"].map(|r| (p, r)));
    for (package, round) in rounds {
        let round = format!("{}, {round}", package.display());
        let mut run = a.sealrun(world.path());
        run.args(["run", "--license"]).arg(&license).arg(package).args(["--", "--spin"]);
        let mut child = spawn_until(&mut run, "spinning");
        let core = dump(child.id(), scratch.path());
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
        assert!(core.len() > 1 << 20, "{round}: a dump of {} bytes is too small to be real", core.len());
        assert!(contains(&core, MARKER), "{round}: the guest's linear memory is missing from the dump");
        assert!(!contains(&core, &key), "{round}: the content key is in the core dump");
        assert!(!contains(&core, &device_secret), "{round}: the device key is in the core dump");
        let segments = memory(&core);
        assert!(segments.len() > 10, "{round}: only {} memory segments in the dump", segments.len());
        assert!(!segments.iter().any(|m| holds_code(m)), "{round}: the compiled code is in the core dump");
    }
}
