//! Entry points for the cargo-fuzz targets in `fuzz/` (compiled only with
//! `--cfg fuzzing`). Each takes the fuzzer's bytes, runs them through every
//! reader the launcher runs, and panics only when an invariant breaks: a
//! reader panics, two readers disagree, a refused decryption leaves bytes
//! behind, or an accepted input does not encode back to the same bytes.
//!
//! The keys are the file-vector keys (`tests/vectors/keys`, `tests/dongle-vectors/keys`),
//! so seeds taken from the vectors get past the signatures and reach the
//! deeper readers.
use std::str::FromStr;

use crate::device::{DeviceCode, DeviceSecret, open_device_key};
use crate::dongle::{DongleId, DongleKey, DongleRecord};
use crate::lease::{LeaseId, LeaseKey, LeaseRoot, LeaseSecret, Proof, check_proof, open_lent, open_lent_secret};
use crate::license::AnyLicense;
use crate::license::License;
use crate::package::{Header, Manifest, Package};
use crate::stream::{ChunkLayout, ChunkOpener, StreamOpener, StreamSealer, TAG_LEN, open_all};
use crate::{ContentKey, Release, UnixTime, VendorPublicKey, VendorSigningKey};

/// Decryption buffers are filled with this first, to see what a refusal leaves.
const FILL: u8 = 0xA5;
/// Packages declaring more plaintext than this are parsed and verified but
/// not decrypted: a fuzz input is small, and a big buffer only costs time.
const MAX_FUZZ_PLAINTEXT: u64 = 1 << 20;
/// 2026-06-01T00:00:00Z, the instant the file vectors are checked at.
const NOW: UnixTime = 1_780_272_000;

fn hex32(text: &str) -> [u8; 32] {
    let text = text.trim();
    assert_eq!(text.len(), 64, "a key file holds 32 bytes in hex");
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex digits");
    }
    out
}

struct Keys {
    vendor: VendorPublicKey,
    content: ContentKey,
    device: DeviceSecret,
    machine_id: &'static [u8],
    dongle_key: DongleKey,
    manifest: Manifest,
}

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let package: &[u8] = include_bytes!("../tests/vectors/package_ok.sealed");
        Keys {
            vendor: VendorSigningKey::from_seed(&hex32(include_str!("../tests/vectors/keys/vendor.seed"))).public(),
            content: ContentKey::from_bytes(&hex32(include_str!("../tests/vectors/keys/content.key"))),
            device: DeviceSecret::from_bytes(&hex32(include_str!("../tests/vectors/keys/device.secret"))),
            machine_id: include_str!("../tests/vectors/keys/machine-id").trim().as_bytes(),
            dongle_key: DongleKey::from_bytes(&hex32(include_str!("../tests/dongle-vectors/keys/dongle.key"))),
            manifest: Package::parse(package).expect("package_ok.sealed parses").manifest().clone(),
        }
    })
}

/// A package file: header prefix and full parse agree, the signature, and
/// (for small ones) decryption in one thread and in three, which must agree
/// and leave nothing behind on failure.
pub fn package(data: &[u8]) {
    let prefix = Header::parse_prefix(data);
    // The streaming check, fed in uneven slices, accepts exactly what the
    // whole-package parse and signature check accept.
    let mut check = crate::package::StreamCheck::new();
    let streamed = data
        .chunks(1 + data.first().copied().unwrap_or(0) as usize)
        .try_for_each(|piece| check.update(piece))
        .and_then(|()| check.finish());
    let whole = Package::parse(data).and_then(|p| p.verify_signature());
    assert_eq!(streamed.is_ok(), whole.is_ok(), "StreamCheck and parse + verify_signature disagree");
    let Ok(pkg) = Package::parse(data) else { return };
    assert!(prefix.is_ok(), "Package::parse accepted what Header::parse_prefix refused");
    let _ = pkg.verify_signature();
    let len = pkg.manifest().plaintext_len;
    if len > MAX_FUZZ_PLAINTEXT {
        return;
    }
    let k = keys();
    let mut one = vec![FILL; len as usize];
    let single = pkg.decrypt_into(&k.content, &mut one);
    let mut three = vec![FILL; len as usize];
    let parallel = pkg.decrypt_into_parallel(&k.content, &mut three, 3);
    assert_eq!(single.is_ok(), parallel.is_ok(), "one and three threads disagree");
    if single.is_ok() {
        assert_eq!(one, three, "one and three threads decrypt differently");
    } else {
        assert!(one.iter().all(|&b| b == 0), "a refused decryption left bytes behind");
        assert!(three.iter().all(|&b| b == 0), "a refused parallel decryption left bytes behind");
    }
}

/// The STREAM reader, as a property: the fuzzer picks a chunk size, a
/// plaintext and one change to the sealed stream (none, a bit flip, a cut,
/// an extension, two chunks swapped, a chunk dropped). Opening must succeed
/// exactly when nothing changed, give back the plaintext, and zero the
/// output otherwise; the in-order opener must agree with `open_all`.
pub fn stream(data: &[u8]) {
    let [log2, op, a, b, rest @ ..] = data else { return };
    let log2 = crate::limits::MIN_CHUNK_SIZE_LOG2 + log2 % 3;
    let plaintext = &rest[..rest.len().min(64 << 10)];
    let layout = ChunkLayout::new(log2, plaintext.len() as u64);
    let k = keys();
    let prefix = [*a; crate::stream::NONCE_PREFIX_LEN];
    let aad = [*b; 32];
    let mut sealer = StreamSealer::new(&k.content, prefix, layout, aad);
    let mut sealed = Vec::with_capacity(layout.ciphertext_len() as usize);
    let chunk = layout.chunk_size() as usize;
    for i in 0..layout.chunk_count() {
        let start = i as usize * chunk;
        let mut buf = plaintext[start..start + layout.plaintext_chunk_len(i) as usize].to_vec();
        sealer.seal_next(&mut buf).expect("sealing follows the layout");
        sealed.extend_from_slice(&buf);
    }
    sealer.finish().expect("every chunk sealed");
    let at = (usize::from(*a) << 8 | usize::from(*b)) % sealed.len();
    let stride = chunk + TAG_LEN;
    let chunks = layout.chunk_count() as usize;
    let changed = match op % 6 {
        0 => false,
        1 => {
            sealed[at] ^= 1 << (b % 8);
            true
        }
        2 => {
            sealed.truncate(at);
            true
        }
        3 => {
            sealed.push(*a);
            true
        }
        4 if chunks >= 3 => {
            // Swap two full chunks (the last may be shorter).
            let (x, y) = (usize::from(*a) % (chunks - 1), usize::from(*b) % (chunks - 1));
            if x == y {
                false
            } else {
                let (lo, hi) = (x.min(y), x.max(y));
                let (head, tail) = sealed.split_at_mut(hi * stride);
                head[lo * stride..(lo + 1) * stride].swap_with_slice(&mut tail[..stride]);
                true
            }
        }
        5 if chunks >= 2 => {
            let x = usize::from(*a) % (chunks - 1);
            sealed.drain(x * stride..(x + 1) * stride);
            true
        }
        _ => false,
    };
    let opener = ChunkOpener::new(&k.content, prefix, layout, aad);
    let mut out = vec![FILL; plaintext.len()];
    let all = open_all(&opener, &sealed, &mut out, 2, |_, _| ());
    assert_eq!(all.is_ok(), !changed, "open_all: a changed stream opened, or an intact one did not");
    if all.is_ok() {
        assert_eq!(out, plaintext, "open_all gave other bytes");
    } else {
        assert!(out.iter().all(|&x| x == 0), "open_all left bytes behind");
    }
    // The in-order opener over the same bytes, chunk by chunk.
    let mut reader = StreamOpener::new(ChunkOpener::new(&k.content, prefix, layout, aad));
    let mut ok = sealed.len() as u64 == layout.ciphertext_len();
    let mut got = Vec::with_capacity(plaintext.len());
    for i in 0..layout.chunk_count() {
        let start = i as usize * stride;
        let len = layout.plaintext_chunk_len(i) as usize;
        let Some(ct) = sealed.get(start..start + len + TAG_LEN) else {
            ok = false;
            break;
        };
        let mut buf = vec![FILL; len];
        if reader.open_next(ct, &mut buf).is_err() {
            ok = false;
            break;
        }
        got.extend_from_slice(&buf);
    }
    let finished = reader.finish().is_ok();
    assert_eq!(ok && finished, !changed, "StreamOpener disagrees with open_all");
    if !changed {
        assert_eq!(got, plaintext, "StreamOpener gave other bytes");
    }
}

/// A license file, plain or sealed to a dongle: canonical (encodes back to
/// the same bytes), then the launcher's chain with the vector keys.
pub fn license(data: &[u8]) {
    let plain = License::parse(data);
    let Ok(any) = AnyLicense::parse(data) else {
        assert!(plain.is_err(), "License::parse accepted what AnyLicense::parse refused");
        return;
    };
    let k = keys();
    match any {
        AnyLicense::Plain(lic) => {
            assert_eq!(lic.to_bytes(), data, "a plain license is not canonical");
            if lic.verify_signature(&k.vendor).is_ok() {
                let _ = lic.check_covers(&k.manifest, NOW);
            }
            let _ = lic.unwrap_key(&k.manifest.key_id, &k.device);
        }
        AnyLicense::Sealed(sealed) => {
            assert!(plain.is_err(), "License::parse accepted a sealed license");
            assert_eq!(sealed.to_bytes(), data, "a sealed license is not canonical");
            let Ok(inner) = k.dongle_key.decrypt(&sealed.decrypt_request()) else { return };
            let Ok(lic) = sealed.open(&inner) else { return };
            if lic.verify_signature(&k.vendor).is_ok() {
                let _ = lic.check_covers(&k.manifest, NOW);
            }
            if let Ok(request) = lic.dongle_key_request(&k.manifest.key_id)
                && let Ok(raw) = k.dongle_key.decrypt(&request)
            {
                let _ = lic.key_from_dongle(&k.manifest.key_id, &raw);
            }
        }
    }
}

/// A device code as typed (text) and a device key file (bytes): a code that
/// parses prints back to a code that parses to the same device.
pub fn device_code(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(code) = DeviceCode::from_str(text)
    {
        let again: DeviceCode = code.to_string().parse().expect("a printed device code parses");
        assert_eq!(again, code, "a device code changed when printed and parsed");
    }
    let k = keys();
    if let Ok(secret) = open_device_key(data, k.machine_id) {
        // Only the real sealed key opens; it must be the vectors' device.
        assert_eq!(secret.public_key(), k.device.public_key(), "another device key opened");
    }
}

/// A dongle attach record: canonical, then verified with the vector vendor key.
pub fn dongle_record(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(id) = DongleId::from_str(text)
    {
        assert_eq!(id.to_string().parse::<DongleId>().ok(), Some(id), "a dongle id changed when printed and parsed");
    }
    let Ok(record) = DongleRecord::parse(data) else { return };
    assert_eq!(record.to_bytes(), data, "a dongle record is not canonical");
    let _ = record.verify(&keys().vendor);
}

/// What a floating-license manager sends: a lent key and a lent lease
/// secret (opened against the vector floating license when the input
/// carries one), a lease id as text, a proof checked against a fixed
/// proof key (which must be refused: the fuzzer cannot know the MAC), and
/// the replay window fed the input as request numbers.
pub fn lease(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(id) = LeaseId::from_str(text)
    {
        assert_eq!(id.to_string().parse::<LeaseId>().ok(), Some(id), "a lease id changed when printed and parsed");
    }
    let floating: &[u8] = include_bytes!("../tests/floating-vectors/floating_ok.license");
    let license = License::parse(floating).expect("floating_ok.license parses");
    let k = keys();
    let code = k.device.device_code(k.machine_id);
    let lease = LeaseId([data.first().copied().unwrap_or(0); crate::lease::LEASE_ID_LEN]);
    if let Ok(lent) = LeaseKey::from_bytes(data) {
        assert_eq!(lent.to_bytes().as_slice(), data, "a lent key is not canonical");
        let _ = open_lent(&lent, &license, &lease, &k.manifest.key_id, &k.device, &code);
        let _ = open_lent_secret(&lent, &license, &lease, &k.device, &code);
    }
    let secret = LeaseSecret::from_bytes(&[7; 32]);
    let key = LeaseRoot::derive(&ContentKey::from_bytes(&[8; 32]), &license).proof_key(&lease, &secret);
    let nonce = [3; crate::lease::LEASE_NONCE_LEN];
    let n = u64::from(data.len() as u32);
    for what in [
        Proof::Heartbeat { seq: n },
        Proof::Release { seq: n },
        Proof::Renewed { ttl_ms: n },
        Proof::Granted { ttl_ms: n, renew_ms: n / 3 },
    ] {
        assert!(!check_proof(&key, what, &lease, &nonce, data), "a guessed proof was accepted");
    }
    // The replay window: a number accepted once is never fresh again.
    let mut seen = crate::lease::SeenSeqs::default();
    for pair in data.chunks_exact(2) {
        let seq = u64::from(u16::from_be_bytes([pair[0], pair[1]]));
        if seen.is_fresh(seq) {
            seen.accept(seq);
            assert!(!seen.is_fresh(seq), "{seq} is fresh after it was accepted");
        }
    }
    let _ = Release::from_str(std::str::from_utf8(data).unwrap_or(""));
}

/// The launcher's sealed last-seen record: only the device's own record
/// opens, and what opens seals back to the same bytes.
pub fn clock(data: &[u8]) {
    let k = keys();
    if let Ok(seen) = crate::clock::open_last_seen(&k.device, data) {
        assert_eq!(crate::clock::seal_last_seen(&k.device, seen.at_ms), data, "a last-seen record is not canonical");
    }
}
