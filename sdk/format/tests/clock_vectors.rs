//! File-based test vectors for the launcher's sealed last-seen time
//! (`<data dir>/last-seen`, `clock.rs`), one case per file under
//! `tests/clock-vectors/`, each with its expected outcome in `EXPECTED`,
//! run through the reader with `tests/vectors/keys/device.secret` (the
//! device whose record it is; `other-device.secret` is another device).
//!
//! Records have no randomness, so the files are exactly what the writer
//! makes; to rewrite them after a deliberate format change:
//!
//! ```text
//! cargo test -p sealrun-format --test clock_vectors -- --ignored regenerate_clock_vectors
//! ```
mod common;

use std::fs;
use std::path::PathBuf;

use common::{NOW, hex32};
use sealrun_format::Error;
use sealrun_format::clock::{LAST_SEEN_LEN, LastSeen, open_last_seen, seal_last_seen};
use sealrun_format::device::DeviceSecret;

/// The time in the good record: [`NOW`] and 123 ms, so the millisecond
/// part is visible in the bytes.
const AT_MS: u64 = NOW * 1000 + 123;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clock-vectors")
}

fn secret(name: &str) -> DeviceSecret {
    DeviceSecret::from_bytes(&hex32(common::shared_key(name)))
}

fn outcome(r: &Result<LastSeen, Error>) -> &'static str {
    match r {
        Ok(LastSeen { at_ms: AT_MS }) => "ok",
        Ok(_) => "ok_but_another_time",
        Err(Error::NotSealrun(_)) => "not_sealrun",
        Err(Error::UnsupportedVersion { .. }) => "unsupported_version",
        Err(Error::Truncated { .. }) => "truncated",
        Err(Error::TrailingData { .. }) => "trailing_data",
        Err(Error::Malformed { .. }) => "malformed",
        Err(Error::BadSignature(_)) => "bad_signature",
        Err(_) => "other_error",
    }
}

/// One vector: file name without extension, bytes, expected outcome.
type Case = (&'static str, Vec<u8>, &'static str);

fn cases() -> Vec<Case> {
    let this = secret("device.secret");
    let other = secret("other-device.secret");
    let ok = seal_last_seen(&this, AT_MS);
    let mut flipped_tag = ok.clone();
    flipped_tag[LAST_SEEN_LEN - 1] ^= 1;
    // An earlier time under the good tag: what editing the file to undo a
    // clock check would look like.
    let mut edited_time = ok.clone();
    edited_time[10..18].copy_from_slice(&(AT_MS - 2 * 3600 * 1000).to_be_bytes());
    let mut version_2 = ok.clone();
    version_2[8..10].copy_from_slice(&2u16.to_be_bytes());
    let mut bad_magic = ok.clone();
    bad_magic[3] = b'X';
    vec![
        ("last_seen_ok", ok.clone(), "ok"),
        ("last_seen_truncated", ok[..LAST_SEEN_LEN - 1].to_vec(), "truncated"),
        ("last_seen_trailing_byte", [&ok[..], &[0]].concat(), "trailing_data"),
        ("last_seen_bad_tag", flipped_tag, "bad_signature"),
        ("last_seen_edited_time", edited_time, "bad_signature"),
        ("last_seen_other_device", seal_last_seen(&other, AT_MS), "bad_signature"),
        ("last_seen_version_2", version_2, "unsupported_version"),
        ("last_seen_bad_magic", bad_magic, "not_sealrun"),
        ("last_seen_empty", Vec::new(), "not_sealrun"),
    ]
}

fn expected() -> Vec<(String, String)> {
    common::expected_outcomes(&dir())
}

#[test]
fn every_clock_vector_gives_its_expected_outcome() {
    let this = secret("device.secret");
    let exp = expected();
    assert!(exp.len() >= 9, "the vector list is complete");
    for (file, want) in &exp {
        let bytes = fs::read(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(outcome(&open_last_seen(&this, &bytes)), want, "{file}");
    }
    common::assert_every_file_listed(&dir(), &exp);
}

/// The files are exactly what the writer makes today: the format is pinned
/// (a known-answer test for the key derivation and the tag).
#[test]
fn the_files_are_what_the_writer_makes() {
    for (name, bytes, _) in cases() {
        let file = fs::read(dir().join(format!("{name}.record"))).unwrap();
        assert_eq!(file, bytes, "{name}.record differs from what the writer makes now");
    }
}

/// The record after a run is not plaintext-editable: it opens only with the
/// device secret that sealed it, and no other time fits its tag.
#[test]
fn the_record_opens_only_with_its_device_secret() {
    let ok = fs::read(dir().join("last_seen_ok.record")).unwrap();
    assert_eq!(open_last_seen(&secret("device.secret"), &ok), Ok(LastSeen { at_ms: AT_MS }));
    assert_eq!(outcome(&open_last_seen(&secret("other-device.secret"), &ok)), "bad_signature");
    assert_eq!(outcome(&open_last_seen(&DeviceSecret::from_bytes(&[0; 32]), &ok)), "bad_signature");
}

/// Every single-bit flip and every cut of the good record is refused.
#[test]
fn every_flip_and_cut_of_the_good_record_is_refused() {
    let this = secret("device.secret");
    let ok = fs::read(dir().join("last_seen_ok.record")).unwrap();
    let mut n = 0;
    for i in 0..ok.len() * 8 {
        let mut v = ok.clone();
        v[i / 8] ^= 1 << (i % 8);
        assert!(open_last_seen(&this, &v).is_err(), "bit {i}");
        n += 1;
    }
    for len in 0..ok.len() {
        assert!(open_last_seen(&this, &ok[..len]).is_err(), "cut at {len}");
        n += 1;
    }
    assert_eq!(n, LAST_SEEN_LEN * 9);
}

#[test]
#[ignore = "rewrites tests/clock-vectors; run by hand"]
fn regenerate_clock_vectors() {
    fs::create_dir_all(dir()).unwrap();
    let mut expected = String::from(
        "# Expected outcome of every last-seen vector: FILE<TAB>OUTCOME (see clock_vectors.rs).\n\
         # Written by `regenerate_clock_vectors`.\n",
    );
    for (name, bytes, want) in cases() {
        fs::write(dir().join(format!("{name}.record")), bytes).unwrap();
        expected.push_str(&format!("{name}.record\t{want}\n"));
    }
    fs::write(dir().join("EXPECTED"), expected).unwrap();
}
