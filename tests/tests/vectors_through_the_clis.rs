//! The format test vectors (`sdk/format/tests/vectors`, and the license
//! terms of version 2 in `terms-vectors`, one case per file) through the
//! command-line readers: `sealsdk inspect`, `sealsdk verify`
//! and the `sealrun` launcher, with a device whose key is the vectors' test
//! device key. No input makes either program panic, and each refusal gets
//! the exit code of its kind.
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use sealrun_format::device::{DeviceSecret, seal_device_key};
use sealrun_tests::{Device, bin, repo_root, stderr, stdout};

fn vectors() -> PathBuf {
    repo_root().join("sdk/format/tests/vectors")
}

fn table(name: &str) -> Vec<Vec<String>> {
    fs::read_to_string(vectors().join(name))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

fn hex32(name: &str) -> [u8; 32] {
    let text = fs::read_to_string(vectors().join("keys").join(name)).unwrap();
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).unwrap();
    out
}

fn no_panic(o: &Output, what: &str) {
    assert!(!stderr(o).contains("panicked"), "{what} panicked: {}", stderr(o));
    assert!(o.status.code().is_some(), "{what} died from a signal");
}

fn sealsdk(args: &[&str]) -> Output {
    Command::new(bin("sealsdk")).env_clear().args(args).output().unwrap()
}

#[test]
fn every_vector_through_sealsdk_inspect_and_verify() {
    let rows = table("EXPECTED");
    assert!(rows.len() > 50, "the vector table is read");
    for row in rows {
        let (file, outcome) = (&row[0], row[1].as_str());
        let path = vectors().join(file);
        let p = path.to_str().unwrap();
        let inspect = sealsdk(&["inspect", p]);
        no_panic(&inspect, &format!("sealsdk inspect {file}"));
        if outcome == "ok" {
            assert_eq!(inspect.status.code(), Some(0), "inspect {file}: {}", stderr(&inspect));
            assert!(stdout(&inspect).contains("Sealrun"), "{}", stdout(&inspect));
        } else if outcome == "unsupported_version" {
            assert_eq!(inspect.status.code(), Some(1), "inspect {file} ({outcome}): {}", stderr(&inspect));
        }
        let bytes = fs::read(&path).unwrap();
        if !bytes.starts_with(b"SEALPKG\x1a") && !bytes.starts_with(b"SEALLIC\x1a") {
            assert_eq!(inspect.status.code(), Some(3), "inspect {file}: {}", stderr(&inspect));
            assert!(stderr(&inspect).contains("is not a Sealrun package or license"), "{}", stderr(&inspect));
        }
        if file.ends_with(".sealed") {
            let verify = sealsdk(&["verify", p]);
            no_panic(&verify, &format!("sealsdk verify {file}"));
            // `verify` checks structure and the signature, not decryption.
            let passes = matches!(outcome, "ok" | "decryption_failed" | "unwrap_failed" | "no_key_for_package");
            assert_eq!(verify.status.code() == Some(0), passes, "verify {file} ({outcome}): {}", stderr(&verify));
            if !passes {
                assert_eq!(verify.status.code(), Some(1), "verify {file}: {}", stderr(&verify));
            }
        }
    }
}

/// A device holding the vectors' test device key.
fn vector_device() -> (tempfile::TempDir, Device) {
    let dir = tempfile::tempdir().unwrap();
    let machine_id = fs::read_to_string(vectors().join("keys/machine-id")).unwrap().trim().to_owned();
    let dev = Device { root: dir.path().to_owned(), machine_id: machine_id.clone() };
    let secret = DeviceSecret::from_bytes(&hex32("device.secret"));
    let key_file = dev.key_file();
    fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    fs::write(&key_file, seal_device_key(&secret, machine_id.as_bytes(), &mut rng)).unwrap();
    fs::create_dir_all(dir.path().join("tmp")).unwrap();
    (dir, dev)
}

/// The launcher exit codes a format outcome may show as.
fn launcher_codes(outcome: &str) -> &'static [i32] {
    match outcome {
        // The vectors' module is not WebAssembly: unlocking succeeded and
        // compiling it is what fails.
        "ok" => &[212],
        "not_sealrun" => &[207],
        "unsupported_version" => &[206],
        "truncated" => &[205],
        "trailing_data" | "malformed" => &[204],
        // A change the signature catches may first show as another product.
        "bad_signature" | "decryption_failed" | "unwrap_failed" => &[202, 204],
        "other_vendor" | "wrong_product" | "release_not_licensed" | "no_key_for_package" => &[202],
        "expired" | "not_yet_valid" => &[203],
        other => panic!("unknown outcome {other}"),
    }
}

fn sealrun(dev: &Device, package: &str, license: &str) -> Output {
    let out = dev
        .sealrun(&dev.root)
        .arg("run")
        .arg("--license")
        .arg(vectors().join(license))
        .arg(vectors().join(package))
        .output()
        .unwrap();
    no_panic(&out, &format!("sealrun {package} with {license}"));
    out
}

#[test]
fn package_vectors_through_sealrun() {
    let (_dir, dev) = vector_device();
    for row in table("EXPECTED").iter().filter(|r| r[0].ends_with(".sealed")) {
        if row[1] == "ok" && row[0] != "package_ok.sealed" {
            continue; // a valid package of another vendor or key: PAIRS pairs it up
        }
        let out = sealrun(&dev, &row[0], "license_ok.license");
        let code = out.status.code().unwrap();
        assert!(launcher_codes(&row[1]).contains(&code), "{} ({}): exit {code}: {}", row[0], row[1], stderr(&out));
    }
}

#[test]
fn license_vectors_and_pairs_through_sealrun() {
    let (_dir, dev) = vector_device();
    for row in table("EXPECTED").iter().filter(|r| r[0].ends_with(".license")) {
        let out = sealrun(&dev, "package_ok.sealed", &row[0]);
        let code = out.status.code().unwrap();
        // Licenses bound elsewhere pass the format readers but not the
        // launcher's device check.
        let allowed: &[i32] = if row[0].contains("other_machine") || row[0].contains("other_device") {
            &[201]
        } else {
            launcher_codes(&row[1])
        };
        assert!(allowed.contains(&code), "{} ({}): exit {code}: {}", row[0], row[1], stderr(&out));
    }
    for row in table("PAIRS") {
        let out = sealrun(&dev, &row[0], &row[1]);
        let code = out.status.code().unwrap();
        let allowed: &[i32] = if row[1].contains("other_machine") || row[1].contains("other_device") {
            &[201]
        } else {
            launcher_codes(&row[2])
        };
        assert!(allowed.contains(&code), "{} + {} ({}): exit {code}: {}", row[0], row[1], row[2], stderr(&out));
    }
}

/// The license-terms vectors of format version 2 (issue 18,
/// `sdk/format/tests/terms-vectors`) through `sealsdk inspect` and the
/// launcher: a good one is shown with its terms and unlocks the package;
/// each refusal has the exit code of its kind.
#[test]
fn terms_vectors_through_sealsdk_and_sealrun() {
    let dir = repo_root().join("sdk/format/tests/terms-vectors");
    let rows: Vec<(String, String)> = fs::read_to_string(dir.join("EXPECTED"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (f, o) = l.split_once('\t').unwrap();
            (f.to_owned(), o.to_owned())
        })
        .collect();
    assert!(rows.len() >= 19, "the terms vector table is read");
    let (_dir, dev) = vector_device();
    for (file, outcome) in &rows {
        let path = dir.join(file);
        let inspect = sealsdk(&["inspect", path.to_str().unwrap()]);
        no_panic(&inspect, &format!("sealsdk inspect {file}"));
        if outcome == "ok" {
            assert_eq!(inspect.status.code(), Some(0), "inspect {file}: {}", stderr(&inspect));
        }
        if file == "terms_ok.license" {
            let text = stdout(&inspect);
            assert!(text.contains("format v2"), "{text}");
            assert!(text.contains("preview=Q1 build (through 2027-02-28 UTC)"), "{text}");
            assert!(
                text.contains("meters:        exports 777777 (for the license's life), runs 500 per month"),
                "{text}"
            );
        }
        let out = dev
            .sealrun(&dev.root)
            .arg("run")
            .arg("--license")
            .arg(&path)
            .arg(vectors().join("package_ok.sealed"))
            .output()
            .unwrap();
        no_panic(&out, &format!("sealrun with {file}"));
        let code = out.status.code().unwrap();
        assert!(launcher_codes(outcome).contains(&code), "{file} ({outcome}): exit {code}: {}", stderr(&out));
    }
}
