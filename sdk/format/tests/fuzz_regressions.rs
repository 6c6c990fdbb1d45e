//! Inputs the fuzz targets (`fuzz/`) once failed on, kept in
//! `fuzz/regressions/<target>/` and replayed here through the readers
//! with the ordinary test build (scripts/fuzz replays them too).
mod common;

use std::fs;
use std::path::PathBuf;

use sealrun_format::ContentKey;
use sealrun_format::package::Package;

fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions").join(target);
    let mut files: Vec<_> =
        fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), fs::read(&p).unwrap())).collect()
}

/// Issue 8: a package whose key id is not the key's was refused before any
/// chunk was read, and the output buffer kept what the caller had in it,
/// although `decrypt_into` promises a zeroed buffer on every failure.
#[test]
fn issue8_every_refused_decryption_zeroes_the_buffer() {
    let key = ContentKey::from_bytes(&common::hex32(common::shared_key("content.key")));
    let cases = regressions("package");
    assert!(!cases.is_empty(), "no package regressions found");
    for (name, bytes) in cases {
        let Ok(pkg) = Package::parse(&bytes) else { continue };
        let len = pkg.manifest().plaintext_len as usize;
        for threads in [1, 3] {
            let mut out = vec![0xA5; len];
            if pkg.decrypt_into_parallel(&key, &mut out, threads).is_err() {
                assert!(out.iter().all(|&b| b == 0), "{name}: a refusal left bytes behind ({threads} threads)");
            }
        }
        // The wrong length is refused and zeroed as well.
        let mut short = vec![0xA5; len / 2];
        assert!(pkg.decrypt_into(&key, &mut short).is_err());
        assert!(short.iter().all(|&b| b == 0), "{name}: a wrong-length refusal left bytes behind");
    }
}

/// Issue 8: `open_all` refused a ciphertext of the wrong length before
/// reading a chunk and left the output buffer as the caller had it, although
/// it promises a zeroed buffer on every failure. The `stream` target's input
/// is (chunk size, change, two parameter bytes, plaintext); the regression
/// file cuts or extends the sealed stream.
#[test]
fn issue8_open_all_zeroes_the_buffer_on_a_length_mismatch() {
    use sealrun_format::stream::{ChunkLayout, ChunkOpener, open_all};
    let key = ContentKey::from_bytes(&common::hex32(common::shared_key("content.key")));
    let cases = regressions("stream");
    assert!(!cases.is_empty(), "no stream regressions found");
    for (name, bytes) in cases {
        let plaintext = &bytes[4..];
        let layout = ChunkLayout::new(12, plaintext.len() as u64);
        let opener = ChunkOpener::new(&key, [0; 7], layout, [0; 32]);
        for extra in [-1i64, 1] {
            let len = (layout.ciphertext_len() as i64 + extra) as usize;
            let mut out = vec![0xA5; plaintext.len()];
            assert!(open_all(&opener, &vec![0u8; len], &mut out, 2, |_, _| ()).is_err());
            assert!(out.iter().all(|&b| b == 0), "{name}: a refusal ({extra:+} bytes) left bytes behind");
        }
    }
}
