//! File-based test vectors for hardware keys: dongle records (`*.record`)
//! and licenses sealed to a dongle (`*.license`), one case per file under
//! `tests/dongle-vectors/`, each with its expected outcome in `EXPECTED`,
//! run through every reader. The package they are checked against is
//! `tests/vectors/package_ok.sealed`, and the vendor, content and device
//! keys are those of `tests/vectors/keys/`; the dongle keys are in
//! `tests/dongle-vectors/keys/`.
//!
//! To rewrite the files (nonces and license ids change, outcomes do not):
//!
//! ```text
//! cargo test -p sealrun-format --test dongle_vectors -- --ignored regenerate_dongle_vectors
//! ```
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use ed25519_dalek::{Signer, SigningKey};

use common::{NOW, PRODUCT, Y2025, Y2026, Y2030, hex32, key_file};
use sealrun_format::device::{DeviceCode, DeviceSecret};
use sealrun_format::dongle::{DongleId, DongleKey, DongleRecord, SealedLicense, make_record};
use sealrun_format::license::AnyLicense;
use sealrun_format::license::{self, Binding, LicenseSigner, Terms, certify_issuer};
use sealrun_format::package::{Manifest, Package};
use sealrun_format::release::ReleaseRange;
use sealrun_format::{ContentKey, Error, Release, VendorPublicKey, VendorSigningKey};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dongle-vectors")
}

struct Keys {
    vendor_seed: [u8; 32],
    vendor: VendorSigningKey,
    other_vendor: VendorSigningKey,
    content: ContentKey,
    device: DeviceCode,
    other_device: DeviceCode,
    dongle: DongleId,
    other_dongle: DongleId,
    dongle_key: DongleKey,
    other_dongle_key: DongleKey,
    manifest: Manifest,
}

impl Keys {
    fn load() -> Keys {
        let shared = common::shared_key;
        let own = |n: &str| dir().join("keys").join(n);
        let vendor_seed = hex32(shared("vendor.seed"));
        let machine = key_file(shared("machine-id"));
        let other_machine = key_file(shared("other-machine-id"));
        let package = fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/package_ok.sealed"))
            .expect("package_ok.sealed");
        Keys {
            vendor_seed,
            vendor: VendorSigningKey::from_seed(&vendor_seed),
            other_vendor: VendorSigningKey::from_seed(&hex32(shared("other-vendor.seed"))),
            content: ContentKey::from_bytes(&hex32(shared("content.key"))),
            device: DeviceSecret::from_bytes(&hex32(shared("device.secret"))).device_code(machine.as_bytes()),
            other_device: DeviceSecret::from_bytes(&hex32(shared("other-device.secret")))
                .device_code(other_machine.as_bytes()),
            dongle: key_file(own("dongle.id")).parse().expect("dongle.id"),
            other_dongle: key_file(own("other-dongle.id")).parse().expect("other-dongle.id"),
            dongle_key: DongleKey::from_bytes(&hex32(own("dongle.key"))),
            other_dongle_key: DongleKey::from_bytes(&hex32(own("other-dongle.key"))),
            manifest: Package::parse(&package).expect("package_ok parses").manifest().clone(),
        }
    }
}

/// Outcome names, as in vectors.rs, plus `wrong_device` (the record's
/// device is not `device.secret`'s: the launcher refuses it).
fn outcome(r: &Result<(), Error>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(Error::NotSealrun(_)) => "not_sealrun",
        Err(Error::UnsupportedVersion { .. }) => "unsupported_version",
        Err(Error::Truncated { .. }) => "truncated",
        Err(Error::TrailingData { .. }) => "trailing_data",
        Err(Error::Malformed { .. }) => "malformed",
        Err(Error::BadSignature(_)) => "bad_signature",
        Err(Error::UnwrapFailed) => "unwrap_failed",
        Err(Error::OtherVendor { .. }) => "other_vendor",
        Err(Error::Expired(_)) => "expired",
        Err(Error::InvalidInput { field: "wrong device", .. }) => "wrong_device",
        Err(_) => "other_error",
    }
}

/// Record readers: parse, `to_bytes` round trip, `verify` with vendor A's
/// key, and the launcher's device check against `device.secret`.
fn record_readers(k: &Keys, bytes: &[u8]) -> Result<(), Error> {
    let r = DongleRecord::parse(bytes)?;
    assert_eq!(r.to_bytes(), bytes, "to_bytes differs from the input");
    r.verify(&k.vendor.public())?;
    if r.device != k.device {
        return Err(Error::InvalidInput { field: "wrong device", problem: "" });
    }
    Ok(())
}

/// Sealed-license readers, as the launcher with the dongle attached: parse
/// the envelope, the "token" (the dongle key) decrypts it, open, verify
/// with vendor A's key, check it covers `package_ok` at [`NOW`], and the
/// token decrypts the content key, which must be `content.key`.
fn sealed_readers(k: &Keys, bytes: &[u8]) -> Result<(), Error> {
    let AnyLicense::Sealed(s) = AnyLicense::parse(bytes)? else {
        return Err(Error::Malformed { artifact: sealrun_format::Artifact::License, field: "kind", problem: "plain" });
    };
    assert_eq!(s.to_bytes(), bytes, "to_bytes differs from the input");
    let plain = k.dongle_key.decrypt(&s.decrypt_request())?;
    let l = s.open(&plain)?;
    l.verify_signature(&k.manifest.vendor_key)?;
    l.check_covers(&k.manifest, NOW)?;
    let raw = k.dongle_key.decrypt(&l.dongle_key_request(&k.manifest.key_id)?)?;
    let key = l.key_from_dongle(&k.manifest.key_id, &raw)?;
    assert_eq!(key.as_bytes(), k.content.as_bytes(), "another content key came out");
    Ok(())
}

fn readers(k: &Keys, name: &str, bytes: &[u8]) -> Result<Result<(), Error>, String> {
    let run = || if name.ends_with(".record") { record_readers(k, bytes) } else { sealed_readers(k, bytes) };
    catch_unwind(AssertUnwindSafe(run)).map_err(|_| format!("{name}: a reader panicked"))
}

fn read_expected() -> Vec<(String, String)> {
    common::expected_outcomes(&dir())
}

#[test]
fn dongle_vectors_through_every_reader() {
    let k = Keys::load();
    let expected = read_expected();
    let listed: BTreeSet<&str> = expected.iter().map(|(f, _)| f.as_str()).collect();
    let present: BTreeSet<String> = fs::read_dir(dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !["keys", "EXPECTED"].contains(&n.as_str()))
        .collect();
    let present: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    assert_eq!(listed, present, "EXPECTED and the files in tests/dongle-vectors/ differ");
    let mut problems = Vec::new();
    for (name, want) in &expected {
        let bytes = fs::read(dir().join(name)).unwrap();
        match readers(&k, name, &bytes) {
            Ok(r) if outcome(&r) == want => {}
            Ok(r) => problems.push(format!("{name}: expected {want}, got {r:?}")),
            Err(p) => problems.push(p),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!("{} dongle vectors checked", expected.len());
}

/// Every single-bit flip (one bit per byte) and every truncation of the
/// good record and the good sealed license is refused, without a panic.
#[test]
fn every_flip_and_cut_of_the_good_dongle_vectors_is_refused() {
    let k = Keys::load();
    let mut count = 0;
    for name in ["record_ok.record", "sealed_ok.license"] {
        let good = fs::read(dir().join(name)).unwrap();
        assert_eq!(readers(&k, name, &good).unwrap(), Ok(()), "{name} itself is fine");
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 1 << (at % 8);
            let r = readers(&k, name, &bad).unwrap_or_else(|p| panic!("{p} (flip at {at})"));
            assert!(r.is_err(), "{name} with byte {at} flipped was accepted");
            let r = readers(&k, name, &good[..at]).unwrap_or_else(|p| panic!("{p} (cut at {at})"));
            assert!(r.is_err(), "{name} cut to {at} bytes was accepted");
            count += 2;
        }
    }
    eprintln!("{count} mutations refused");
}

// ---------------------------------------------------------------------------
// The generator.

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn terms(dongle: DongleId) -> Terms {
    Terms {
        license_id: [0; 16],
        vendor_key: VendorPublicKey([0; 32]),
        product: PRODUCT.into(),
        releases: ReleaseRange { min: Release::new(1, 0, 0), max: None },
        licensee: "Dongle Licensee".into(),
        issued_at: Y2025,
        not_before: Y2025,
        expires: Some(Y2030),
        features: vec![],
        meters: vec![],
        binding: Binding::Dongle { dongle, count: 2 },
    }
}

fn sealed(k: &Keys, t: Terms, signer: &LicenseSigner<'_>, key: &DongleKey) -> Vec<u8> {
    license::issue_for_dongle(t, &[(Release::new(1, 0, 0), &k.content)], signer, key, &mut rng()).expect("issues")
}

/// The signed license inside a sealed one.
fn inner(k: &Keys, sealed: &[u8]) -> Vec<u8> {
    let s = SealedLicense::parse(sealed).unwrap();
    k.dongle_key.decrypt(&s.decrypt_request()).unwrap().to_vec()
}

/// Seals `license` to `dongle` under `key` for `product` (the envelope
/// layout of docs/format.md section 6c, written out here).
fn envelope(dongle: DongleId, product: &str, key: &DongleKey, license: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).unwrap();
    let mut h = b"SEALDLC\x1a\x00\x01".to_vec();
    h.extend_from_slice(&dongle.0);
    h.extend_from_slice(&sealrun_format::dongle::product_tag(&dongle, product));
    h.extend_from_slice(&nonce);
    h.extend_from_slice(&((license.len() + 16) as u32).to_be_bytes());
    let c = aes_gcm::Aes256Gcm::new_from_slice(key.as_bytes()).unwrap();
    let ct = c.encrypt(&aes_gcm::Nonce::from(nonce), Payload { msg: license, aad: &h }).unwrap();
    h.extend_from_slice(&ct);
    h
}

/// Re-signs a license (body changed) with `seed`.
fn resign(seed: &[u8; 32], license: &[u8]) -> Vec<u8> {
    let signed = &license[..license.len() - 64];
    let mut msg = b"sealrun/v1/license\0".to_vec();
    msg.extend_from_slice(signed);
    [signed, &SigningKey::from_bytes(seed).sign(&msg).to_bytes()].concat()
}

/// Re-signs a record (body changed) with `seed`.
fn resign_record(seed: &[u8; 32], record: &[u8]) -> Vec<u8> {
    let signed = &record[..record.len() - 64];
    let mut msg = b"sealrun/v1/dongle-record\0".to_vec();
    msg.extend_from_slice(signed);
    [signed, &SigningKey::from_bytes(seed).sign(&msg).to_bytes()].concat()
}

fn flipped(b: &[u8], at: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    v[at] ^= 1;
    v
}

type Case = (&'static str, Vec<u8>, &'static str);

fn record_cases(k: &Keys) -> Vec<Case> {
    let vendor = LicenseSigner::Vendor(&k.vendor);
    let ok = make_record(k.dongle, k.device, Y2026, &vendor).unwrap();
    // Body offsets: 12 = start of body (magic 8, version 2, length 2).
    let body = 12;
    let issuer = k.other_vendor.public();
    let cert = certify_issuer(&k.vendor, issuer, Y2030);
    let certified = LicenseSigner::Issuer { key: &k.other_vendor, cert, vendor: k.vendor.public() };
    let mut issuer_kind_2 = ok.clone();
    let kind_at = ok.len() - 64 - 1;
    issuer_kind_2[kind_at] = 2;
    let mut long_body = ok.clone();
    long_body[10..12].copy_from_slice(&600u16.to_be_bytes());
    vec![
        ("record_ok.record", ok.clone(), "ok"),
        ("record_bad_magic.record", [b"SEALDGX\x1a", &ok[8..]].concat(), "not_sealrun"),
        ("record_version_2.record", [&ok[..8], &[0, 2][..], &ok[10..]].concat(), "unsupported_version"),
        ("record_truncated.record", ok[..ok.len() - 1].to_vec(), "truncated"),
        ("record_trailing_byte.record", [&ok[..], &[0][..]].concat(), "trailing_data"),
        ("record_body_len_too_big.record", long_body, "malformed"),
        ("record_flip_dongle_id.record", flipped(&ok, body), "bad_signature"),
        ("record_flip_device.record", flipped(&ok, body + 16 + 32), "bad_signature"),
        ("record_flip_signature.record", flipped(&ok, ok.len() - 1), "bad_signature"),
        ("record_issuer_kind_2_resigned.record", resign_record(&k.vendor_seed, &issuer_kind_2), "malformed"),
        (
            "record_other_vendor.record",
            make_record(k.dongle, k.device, Y2026, &LicenseSigner::Vendor(&k.other_vendor)).unwrap(),
            "other_vendor",
        ),
        ("record_certified_ok.record", make_record(k.dongle, k.device, Y2026, &certified).unwrap(), "ok"),
        (
            "record_certified_lapsed.record",
            make_record(k.dongle, k.device, Y2030 + 1, &certified).unwrap(),
            "bad_signature",
        ),
        ("record_other_device.record", make_record(k.dongle, k.other_device, Y2026, &vendor).unwrap(), "wrong_device"),
        ("record_license_bytes.record", b"SEALLIC\x1a\x00\x01".to_vec(), "not_sealrun"),
    ]
}

fn sealed_cases(k: &Keys) -> Vec<Case> {
    let vendor = LicenseSigner::Vendor(&k.vendor);
    let ok = sealed(k, terms(k.dongle), &vendor, &k.dongle_key);
    let inner_ok = inner(k, &ok);
    let mut expired = terms(k.dongle);
    expired.expires = Some(Y2026);
    let mut too_long = ok.clone();
    too_long[54..58].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut too_short = ok.clone();
    too_short[54..58].copy_from_slice(&16u32.to_be_bytes());
    // A device license, sealed as if it were a dongle license.
    let device_terms = Terms { binding: Binding::Device(k.device), ..terms(k.dongle) };
    let device_license =
        license::issue(device_terms, &[(Release::new(1, 0, 0), &k.content)], &vendor, &mut rng()).unwrap();
    // The content-key blob inside, flipped and re-signed: only the key
    // decryption can notice.
    let blob_at = inner_ok.len() - 64 - 1 - 10;
    let key_flip = resign(&k.vendor_seed, &flipped(&inner_ok, blob_at));
    // Count 0, re-signed: the count sits right after the dongle id.
    let count_at = inner_ok.windows(16).position(|w| w == k.dongle.0).unwrap() + 16;
    let mut count_0 = inner_ok.clone();
    count_0[count_at..count_at + 4].copy_from_slice(&[0; 4]);
    vec![
        ("sealed_ok.license", ok.clone(), "ok"),
        ("sealed_bad_magic.license", [b"SEALDLX\x1a", &ok[8..]].concat(), "not_sealrun"),
        ("sealed_version_2.license", [&ok[..8], &[0, 2][..], &ok[10..]].concat(), "unsupported_version"),
        ("sealed_truncated.license", ok[..ok.len() - 1].to_vec(), "truncated"),
        ("sealed_trailing_byte.license", [&ok[..], &[0][..]].concat(), "trailing_data"),
        ("sealed_length_too_big.license", too_long, "malformed"),
        ("sealed_length_tag_only.license", too_short, "malformed"),
        ("sealed_flip_ciphertext.license", flipped(&ok, ok.len() - 20), "unwrap_failed"),
        ("sealed_flip_nonce.license", flipped(&ok, 42), "unwrap_failed"),
        ("sealed_other_dongle_key.license", sealed(k, terms(k.dongle), &vendor, &k.other_dongle_key), "unwrap_failed"),
        (
            "sealed_for_other_product.license",
            envelope(k.dongle, "com.example.other", &k.dongle_key, &inner_ok),
            "malformed",
        ),
        ("sealed_relabelled_dongle.license", envelope(k.other_dongle, PRODUCT, &k.dongle_key, &inner_ok), "malformed"),
        (
            "sealed_device_license_inside.license",
            envelope(k.dongle, PRODUCT, &k.dongle_key, &device_license),
            "malformed",
        ),
        ("sealed_expired.license", sealed(k, expired, &vendor, &k.dongle_key), "expired"),
        (
            "sealed_signed_by_other_vendor.license",
            envelope(k.dongle, PRODUCT, &k.dongle_key, &resign(&hex_seed(&k.other_vendor), &inner_ok)),
            "bad_signature",
        ),
        (
            "sealed_key_blob_flip_resigned.license",
            envelope(k.dongle, PRODUCT, &k.dongle_key, &key_flip),
            "unwrap_failed",
        ),
        (
            "sealed_count_0_resigned.license",
            envelope(k.dongle, PRODUCT, &k.dongle_key, &resign(&k.vendor_seed, &count_0)),
            "malformed",
        ),
        ("sealed_plain_license_bytes.license", inner_ok.clone(), "malformed"),
    ]
}

fn hex_seed(k: &VendorSigningKey) -> [u8; 32] {
    *k.to_seed()
}

#[test]
#[ignore = "rewrites tests/dongle-vectors/; run by hand after a format change"]
fn regenerate_dongle_vectors() {
    let k = Keys::load();
    let mut cases = record_cases(&k);
    cases.extend(sealed_cases(&k));
    let mut expected = String::from(
        "# Expected outcome of every dongle vector: FILE<TAB>OUTCOME (see dongle_vectors.rs).\n\
         # Written by `regenerate_dongle_vectors`.\n",
    );
    let mut names = BTreeSet::new();
    for (name, bytes, want) in &cases {
        assert!(names.insert(*name), "{name} twice");
        fs::write(dir().join(name), bytes).unwrap();
        expected.push_str(&format!("{name}\t{want}\n"));
    }
    fs::write(dir().join("EXPECTED"), expected).unwrap();
    eprintln!("wrote {} dongle vectors", cases.len());
}
