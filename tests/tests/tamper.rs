//! The tamper matrix, through the real launcher: every damaged, truncated,
//! reordered or foreign input is refused with the right message and exit
//! code before any guest code runs, and nothing panics; for a package of a
//! core module and one of a command component.
use std::fs;
use std::path::{Path, PathBuf};

use sealrun_format::package::Header;
use sealrun_tests::{Device, World, stderr, stdout};

/// What the guest prints first; its absence proves no guest code ran.
const GUEST_MARK: &str = "hello from a sealed app";

struct Setup {
    world: World,
    dev: Device,
    package: Vec<u8>,
    license: PathBuf,
}

/// hello sealed as a core module and as a component, each in its world.
fn setups() -> [Setup; 2] {
    [setup(sealrun_tests::sample("hello")), setup(sealrun_tests::component("hello"))]
}

fn setup(input: PathBuf) -> Setup {
    let world = World::new();
    let dev = world.device("a");
    let out = world.path().join("hello.sealed");
    // 4 KiB chunks give the matrix many chunk boundaries to cut at.
    world.sealsdk_ok(&[
        "seal",
        input.to_str().unwrap(),
        "--product",
        "com.example.hello",
        "--release",
        "1.0.0",
        "--chunk-kib",
        "4",
        "-o",
        out.to_str().unwrap(),
    ]);
    let license = world.license("hello", &dev, "good.license", &[]);
    let package = fs::read(&out).unwrap();
    Setup { world, dev, package, license }
}

/// Runs `bytes` as a package with the good license; returns (exit, stderr).
fn run_package(s: &Setup, name: &str, bytes: &[u8]) -> (Option<i32>, String) {
    let path = s.world.path().join(format!("case-{name}.sealed"));
    fs::write(&path, bytes).unwrap();
    run(s, &path, &s.license)
}

fn run(s: &Setup, package: &Path, license: &Path) -> (Option<i32>, String) {
    let out = s.dev.sealrun(s.world.path()).arg("run").arg("--license").arg(license).arg(package).output().unwrap();
    let err = stderr(&out);
    assert!(!stdout(&out).contains(GUEST_MARK), "guest code ran for {}", package.display());
    assert!(!err.contains("panicked"), "sealrun panicked: {err}");
    (out.status.code(), err)
}

fn expect(result: (Option<i32>, String), code: i32, text: &str, case: &str) {
    assert_eq!(result.0, Some(code), "case {case}: wrong exit code; stderr: {}", result.1);
    assert!(result.1.contains(text), "case {case}: stderr lacks {text:?}: {}", result.1);
}

#[test]
fn flipped_bytes_anywhere_in_the_package_are_refused() {
    for s in setups() {
        let header = Header::parse_prefix(&s.package).unwrap();
        let hlen = header.as_bytes().len();
        let layout = header.manifest.layout();
        let sig_at = s.package.len() - 64;
        // Every byte of the header and manifest, plus bytes in every chunk
        // (first, middle, in the tag) and in the signature.
        let mut offsets: Vec<usize> = (0..hlen).collect();
        for i in 0..layout.chunk_count() {
            let start = hlen + layout.ciphertext_offset(i) as usize;
            let len = layout.plaintext_chunk_len(i) as usize + 16;
            offsets.extend([start, start + len / 2, start + len - 1]);
        }
        offsets.extend([sig_at, sig_at + 31, sig_at + 63]);
        for at in offsets {
            let mut bad = s.package.clone();
            bad[at] ^= 0x01;
            let (code, err) = run_package(&s, &format!("flip-{at}"), &bad);
            let code = code.unwrap_or(-1);
            // Damage shows as a damaged file, or (in the magic, version, lengths
            // or product) as not-ours / unsupported / truncated / wrong product.
            assert!(
                [202, 204, 205, 206, 207].contains(&code),
                "flip at {at} (header is {hlen} bytes): exit {code}: {err}"
            );
            if at >= hlen {
                expect((Some(code), err), 204, "damaged or tampered", &format!("flip-{at}"));
            }
        }
    }
}

#[test]
fn truncation_at_every_chunk_boundary_and_mid_chunk_is_refused() {
    for s in setups() {
        let header = Header::parse_prefix(&s.package).unwrap();
        let hlen = header.as_bytes().len();
        let layout = header.manifest.layout();
        let mut cuts = vec![0, 4, 9, hlen - 1, hlen];
        for i in 0..layout.chunk_count() {
            let start = hlen + layout.ciphertext_offset(i) as usize;
            cuts.extend([start, start + 100]);
        }
        cuts.extend([s.package.len() - 64, s.package.len() - 1]);
        for cut in cuts {
            let result = run_package(&s, &format!("cut-{cut}"), &s.package[..cut]);
            if cut < 8 {
                expect(result, 207, "not a Sealrun package", &format!("cut-{cut}"));
            } else {
                expect(result, 205, "truncated", &format!("cut-{cut}"));
            }
        }
    }
}

#[test]
fn dropped_duplicated_reordered_and_appended_chunks_are_refused() {
    for s in setups() {
        let header = Header::parse_prefix(&s.package).unwrap();
        let hlen = header.as_bytes().len();
        let full = 4096 + 16;
        let chunk = |i: usize| &s.package[hlen + i * full..hlen + (i + 1) * full];
        let body_end = s.package.len() - 64;
        let sig = &s.package[body_end..];
        let head = &s.package[..hlen];

        let mut dropped = head.to_vec();
        dropped.extend_from_slice(&s.package[hlen + full..]);
        expect(run_package(&s, "dropped", &dropped), 205, "truncated", "dropped");

        let mut duplicated = head.to_vec();
        duplicated.extend_from_slice(chunk(0));
        duplicated.extend_from_slice(&s.package[hlen..]);
        expect(run_package(&s, "duplicated", &duplicated), 204, "unexpected bytes", "duplicated");

        let mut dup_replacing = head.to_vec();
        dup_replacing.extend_from_slice(chunk(0));
        dup_replacing.extend_from_slice(&s.package[hlen + full..]);
        dup_replacing[hlen + full..hlen + 2 * full].copy_from_slice(chunk(0));
        expect(run_package(&s, "dup-replacing", &dup_replacing), 204, "damaged or tampered", "dup-replacing");

        let mut swapped = head.to_vec();
        swapped.extend_from_slice(chunk(1));
        swapped.extend_from_slice(chunk(0));
        swapped.extend_from_slice(&s.package[hlen + 2 * full..body_end]);
        swapped.extend_from_slice(sig);
        assert_eq!(swapped.len(), s.package.len());
        expect(run_package(&s, "swapped", &swapped), 204, "damaged or tampered", "swapped");

        let mut appended = s.package.clone();
        appended.extend_from_slice(b"extra");
        expect(run_package(&s, "appended", &appended), 204, "5 unexpected bytes", "appended");

        // A package header from version 2 of the format.
        let mut v2 = s.package.clone();
        v2[9] = 2;
        expect(run_package(&s, "v2", &v2), 206, "unsupported package format version 2", "v2");

        // Not a Sealrun file at all: the plain module.
        let plain = fs::read(sealrun_tests::sample("hello")).unwrap();
        expect(run_package(&s, "plain-wasm", &plain), 207, "not a Sealrun package", "plain");
    }
}

#[test]
fn damaged_and_foreign_licenses_are_refused() {
    for s in setups() {
        let pkg = s.world.path().join("hello.sealed");
        let lic = fs::read(&s.license).unwrap();
        for at in (0..lic.len()).step_by(3).chain([lic.len() - 1]) {
            let mut bad = lic.clone();
            bad[at] ^= 0x01;
            let path = s.world.path().join(format!("flip-{at}.license"));
            fs::write(&path, &bad).unwrap();
            let (code, err) = run(&s, &pkg, &path);
            let code = code.unwrap_or(-1);
            // The signature is checked before the device, so a flip is never
            // mistaken for a license of another device.
            assert!([202, 203, 204, 205, 206, 207].contains(&code), "license flip at {at}: exit {code}: {err}");
        }

        // Signed by another vendor key.
        let other = World::new();
        other.seal("hello", "1.0.0");
        let foreign = other.license("hello", &s.dev, "foreign.license", &[]);
        expect(run(&s, &pkg, &foreign), 202, "the license is from another vendor", "other vendor");

        // For another product of the same vendor.
        s.world.seal("canary", "1.0.0");
        let canary_lic = s.world.license("canary", &s.dev, "canary.license", &[]);
        expect(run(&s, &pkg, &canary_lic), 202, "is for product com.example.canary", "other product");

        // A package file given as the license.
        expect(run(&s, &pkg, &pkg), 207, "not a Sealrun license", "package as license");
    }
}
