//! A package large enough to be decrypted on every core runs, and damage
//! anywhere in it is still refused.
use std::fs;

use sealrun_tests::{World, stderr, write_data_module};

/// Above the launcher's parallel-decryption threshold (4 MiB).
const DATA_LEN: usize = 24 << 20;

#[test]
fn a_large_package_runs_and_damage_is_refused() {
    let world = World::new();
    let a = world.device("a");
    let input = world.path().join("big.wasm");
    write_data_module(&input, DATA_LEN);
    let package = world.seal_module(&input, "com.example.big", "1.0.0", "big.sealed", &[]);
    let lic = world.license_product("com.example.big", &a, "big.license", &[]);
    let run = |pkg: &std::path::Path| {
        a.sealrun(world.path()).arg("run").arg("--license").arg(&lic).arg(pkg).output().unwrap()
    };
    let out = run(&package);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let bytes = fs::read(&package).unwrap();
    for at in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 100] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x20;
        let path = world.path().join(format!("bad-{at}.sealed"));
        fs::write(&path, &bad).unwrap();
        let out = run(&path);
        assert_eq!(out.status.code(), Some(204), "flip at {at}: {}", stderr(&out));
    }
}
