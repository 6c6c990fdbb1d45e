//! Sealing streams: a large module is sealed with about one copy of it in
//! memory (the mapped input), not two. Alone in its own test binary because
//! it reads the peak RSS of this process's children.
use std::process::Command;

use sealrun_tests::{World, bin, stderr};

/// Size of the generated module's data segment.
const DATA_LEN: usize = 256 << 20;

#[allow(unsafe_code)]
fn children_peak_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss
}

#[test]
fn sealing_a_large_module_needs_about_one_copy_of_memory() {
    let world = World::new();
    let input = world.path().join("big.wasm");
    sealrun_tests::write_data_module(&input, DATA_LEN);
    let before = children_peak_rss_kib();
    let out = Command::new(bin("sealsdk"))
        .env("SEALSDK_KEYSTORE", world.path().join("keystore"))
        .args(["seal", input.to_str().unwrap(), "--product", "com.example.big", "--release", "1.0.0"])
        .current_dir(world.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let peak_mib = children_peak_rss_kib().max(before) / 1024;
    let module_mib = (DATA_LEN >> 20) as i64;
    eprintln!("sealing a {module_mib} MiB module peaked at {peak_mib} MiB RSS");
    assert!(peak_mib < module_mib * 3 / 2, "peak RSS {peak_mib} MiB for a {module_mib} MiB module");
    let sealed = std::fs::metadata(world.path().join("big.sealed")).unwrap().len();
    assert!(sealed > DATA_LEN as u64);
}
