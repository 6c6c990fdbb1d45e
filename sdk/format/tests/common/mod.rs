//! Shared by the file-vector tests: the fixed instants and reading the key
//! files of `tests/vectors/keys/`.
#![allow(dead_code)]
use std::fs;
use std::path::PathBuf;

use ed25519_dalek::{Signer, SigningKey};
use sealrun_format::{Error, UnixTime};

/// The product every vector is for.
pub(crate) const PRODUCT: &str = "com.example.vectors";
/// 2025-01-01T00:00:00Z.
pub(crate) const Y2025: UnixTime = 1_735_689_600;
/// 2026-01-01T00:00:00Z.
pub(crate) const Y2026: UnixTime = 1_767_225_600;
/// 2030-01-01T00:00:00Z.
pub(crate) const Y2030: UnixTime = 1_893_456_000;
/// The instant every check runs at: 2026-06-01T00:00:00Z (as in vectors.rs).
pub(crate) const NOW: UnixTime = 1_780_272_000;

/// A file of `tests/vectors/keys/`.
pub(crate) fn shared_key(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/keys").join(name)
}

/// A key file's text, trimmed.
pub(crate) fn key_file(path: PathBuf) -> String {
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_owned()
}

/// A key file of 32 bytes in hex.
pub(crate) fn hex32(path: PathBuf) -> [u8; 32] {
    let mut k = [0u8; 32];
    hex::decode_to_slice(key_file(path), &mut k).expect("32 hex bytes");
    k
}

/// The `FILE<TAB>OUTCOME` lines of a vector directory's `EXPECTED` file
/// (comments and blank lines skipped).
pub(crate) fn expected_outcomes(dir: &std::path::Path) -> Vec<(String, String)> {
    key_file(dir.join("EXPECTED"))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (f, o) = l.split_once('\t').expect("FILE<TAB>OUTCOME");
            (f.to_owned(), o.to_owned())
        })
        .collect()
}

/// Fails unless every file of a vector directory (but `EXPECTED`) is one of
/// the `expected` outcomes' files: a new vector must say what it expects.
pub(crate) fn assert_every_file_listed(dir: &std::path::Path, expected: &[(String, String)]) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "EXPECTED" {
            assert!(expected.iter().any(|(f, _)| *f == name), "{name} is not in EXPECTED");
        }
    }
}

/// The `EXPECTED` name of a reader's result: `ok` or the error's kind.
pub(crate) fn outcome<T>(r: &Result<T, Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(Error::NotSealrun(_)) => "not_sealrun",
        Err(Error::UnsupportedVersion { .. }) => "unsupported_version",
        Err(Error::Truncated { .. }) => "truncated",
        Err(Error::TrailingData { .. }) => "trailing_data",
        Err(Error::Malformed { .. }) => "malformed",
        Err(Error::BadSignature(_)) => "bad_signature",
        Err(Error::UnwrapFailed) => "unwrap_failed",
        Err(_) => "other_error",
    }
}

/// Re-signs a license whose bytes were changed, with `seed`'s key: a
/// forgery only the vendor could make, so only the field checks refuse it.
pub(crate) fn resigned(seed: &[u8; 32], license: &[u8]) -> Vec<u8> {
    let signed = &license[..license.len() - 64];
    let mut msg = b"sealrun/v1/license\0".to_vec();
    msg.extend_from_slice(signed);
    let mut out = signed.to_vec();
    out.extend_from_slice(&SigningKey::from_bytes(seed).sign(&msg).to_bytes());
    out
}
