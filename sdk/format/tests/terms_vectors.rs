//! File-based test vectors for the license terms of format version 2
//! (features with a value or an expiry of their own, and meters), one case
//! per file under `tests/terms-vectors/`, each with its expected outcome in
//! `EXPECTED`, run through every reader. The package is
//! `tests/vectors/package_ok.sealed`; the vendor, content and device keys
//! are those of `tests/vectors/keys/`. Version 1 licenses are the vectors
//! of `tests/vectors/`, which this version still reads unchanged.
//!
//! To rewrite the files (HPKE randomness and license ids change, outcomes
//! do not):
//!
//! ```text
//! cargo test -p sealrun-format --test terms_vectors -- --ignored regenerate_terms_vectors
//! ```
mod common;

use std::fs;
use std::path::PathBuf;

use common::{NOW, PRODUCT, Y2025, Y2030, hex32, key_file, outcome, resigned};
use sealrun_format::device::{DeviceCode, DeviceSecret};
use sealrun_format::license::{self, Binding, Feature, License, LicenseSigner, Meter, MeterPeriod, Terms};
use sealrun_format::package::{Manifest, Package};
use sealrun_format::release::ReleaseRange;
use sealrun_format::{ContentKey, Error, Release, UnixTime, VendorPublicKey, VendorSigningKey};

/// 2026-03-01T00:00:00Z: the `beta` feature's own expiry, before [`NOW`].
const BETA_ENDS: UnixTime = 1_772_323_200;
/// 2027-03-01T00:00:00Z: the `preview` feature's own expiry, after [`NOW`].
const PREVIEW_ENDS: UnixTime = 1_803_859_200;
/// The `exports` meter's limit: an unusual number, easy to find in the bytes.
const EXPORTS: u64 = 777_777;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/terms-vectors")
}

struct Keys {
    vendor_seed: [u8; 32],
    vendor: VendorSigningKey,
    content: ContentKey,
    secret: DeviceSecret,
    device: DeviceCode,
    manifest: Manifest,
}

impl Keys {
    fn load() -> Keys {
        let shared = common::shared_key;
        let vendor_seed = hex32(shared("vendor.seed"));
        let machine = key_file(shared("machine-id"));
        let secret = DeviceSecret::from_bytes(&hex32(shared("device.secret")));
        let package = fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/package_ok.sealed"))
            .expect("package_ok.sealed");
        Keys {
            vendor_seed,
            vendor: VendorSigningKey::from_seed(&vendor_seed),
            content: ContentKey::from_bytes(&hex32(shared("content.key"))),
            device: secret.device_code(machine.as_bytes()),
            secret,
            manifest: Package::parse(&package).expect("package_ok parses").manifest().clone(),
        }
    }
}

/// The launcher's readers: parse, `to_bytes` round trip, the vendor
/// signature, the package's terms, unwrapping on the device; then the
/// terms as the app will see them.
fn readers(k: &Keys, bytes: &[u8]) -> Result<License, Error> {
    let l = License::parse(bytes)?;
    assert_eq!(l.to_bytes(), bytes, "to_bytes differs from the input");
    assert_eq!(u16::from_be_bytes([bytes[8], bytes[9]]), l.terms.format_version(), "written in its own version");
    l.verify_signature(&k.vendor.public())?;
    l.check_covers(&k.manifest, NOW)?;
    l.unwrap_key(&k.manifest.key_id, &k.secret)?;
    Ok(l)
}

fn good_terms(device: DeviceCode) -> Terms {
    Terms {
        license_id: [0; 16],
        vendor_key: VendorPublicKey([0; 32]),
        product: PRODUCT.into(),
        releases: ReleaseRange { min: Release::new(1, 0, 0), max: None },
        licensee: "Vector Customer".into(),
        issued_at: Y2025,
        not_before: Y2025,
        expires: Some(Y2030),
        features: vec![
            Feature { name: "beta".into(), value: None, expires: Some(BETA_ENDS) },
            Feature::named("pro"),
            Feature { name: "preview".into(), value: Some("Q1 build".into()), expires: Some(PREVIEW_ENDS) },
            Feature { name: "seats-per-project".into(), value: Some("25".into()), expires: None },
        ],
        meters: vec![
            Meter { name: "runs".into(), limit: 500, period: MeterPeriod::Month },
            Meter { name: "exports".into(), limit: EXPORTS, period: MeterPeriod::Life },
        ],
        binding: Binding::Device(device),
    }
}

/// Where `needle` starts in `bytes`.
fn find(bytes: &[u8], needle: &[u8]) -> usize {
    bytes.windows(needle.len()).position(|w| w == needle).expect("the needle is in the license")
}

/// `bytes` with `new` written at `at` (same length).
fn with(bytes: &[u8], at: usize, new: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at..at + new.len()].copy_from_slice(new);
    v
}

/// `bytes` with `range` replaced by `new` (any length), the body length
/// fixed to match.
fn spliced(bytes: &[u8], range: std::ops::Range<usize>, new: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.splice(range, new.iter().copied());
    let body = (v.len() - 14 - 64) as u32;
    v[10..14].copy_from_slice(&body.to_be_bytes());
    v
}

/// One vector: file name without extension, bytes, expected outcome.
type Case = (String, Vec<u8>, &'static str);

fn cases(k: &Keys) -> Vec<Case> {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let keys = [(Release::new(1, 0, 0), &k.content)];
    let signer = LicenseSigner::Vendor(&k.vendor);
    let mut issue = |t: Terms| license::issue(t, &keys, &signer, &mut rng).expect("issue");
    let ok = issue(good_terms(k.device));
    let seed = &k.vendor_seed;

    // Each feature entry: name, a flag byte (bit 0 value, bit 1 expiry),
    // the value, the expiry. Sorted: beta, preview, pro, seats-per-project.
    let beta = find(&ok, b"\x04beta\x02");
    let preview_value = find(&ok, b"\x08Q1 build") + 1;
    let pro_flags = find(&ok, b"\x03pro\x00") + 4;
    // Meters after the features: count, then name, limit u64, period.
    let meters = find(&ok, b"\x02\x07exports");
    let exports_limit = meters + 9;
    let runs_period = find(&ok, b"\x04runs") + 5 + 8;

    let plain = Terms { features: vec![Feature::named("pro")], meters: vec![], ..good_terms(k.device) };
    let v1 = issue(plain);
    // The same terms spelled as version 2: a flag byte of 0 after the
    // feature name, no meters.
    let v1_pro = find(&v1, b"\x01\x03pro") + 5;
    let v1_as_v2 = resigned(seed, &spliced(&with(&v1, 8, &[0, 2]), v1_pro..v1_pro, &[0, 0]));

    let mut upper = good_terms(k.device);
    upper.features[0].expires = None;
    upper.features[0].value = Some("x".repeat(128));
    let longest_value = issue(upper);

    vec![
        ("terms_ok".into(), ok.clone(), "ok"),
        ("terms_plain_features_written_as_v1".into(), v1.clone(), "ok"),
        ("terms_longest_feature_value".into(), longest_value, "ok"),
        ("terms_plain_features_as_v2_resigned".into(), v1_as_v2, "malformed"),
        ("terms_v2_relabelled_v1_resigned".into(), resigned(seed, &with(&ok, 8, &[0, 1])), "malformed"),
        ("terms_version_3".into(), with(&ok, 8, &[0, 3]), "unsupported_version"),
        ("terms_flip_feature_value".into(), with(&ok, preview_value, b"R"), "bad_signature"),
        ("terms_flip_meter_limit".into(), with(&ok, exports_limit + 7, &[(EXPORTS as u8) ^ 1]), "bad_signature"),
        ("terms_feature_flag_bit_2_resigned".into(), resigned(seed, &with(&ok, beta + 5, &[0x06])), "malformed"),
        (
            "terms_feature_value_control_char_resigned".into(),
            resigned(seed, &with(&ok, preview_value + 2, b"\n")),
            "malformed",
        ),
        (
            "terms_feature_expiry_not_after_start_resigned".into(),
            resigned(seed, &with(&ok, beta + 6, &Y2025.to_be_bytes())),
            "malformed",
        ),
        (
            // pro gains a value flag: the next byte (the next feature's name
            // length) is read as its value.
            "terms_feature_flags_misread_resigned".into(),
            resigned(seed, &with(&ok, pro_flags, &[1])),
            "malformed",
        ),
        (
            "terms_meter_limit_0_resigned".into(),
            resigned(seed, &with(&ok, exports_limit, &0u64.to_be_bytes())),
            "malformed",
        ),
        (
            "terms_meter_limit_over_max_resigned".into(),
            resigned(seed, &with(&ok, exports_limit, &(1u64 << 53).to_be_bytes())),
            "malformed",
        ),
        ("terms_meter_period_3_resigned".into(), resigned(seed, &with(&ok, runs_period, &[3])), "malformed"),
        ("terms_meter_count_17_resigned".into(), resigned(seed, &with(&ok, meters, &[17])), "malformed"),
        (
            // "exports" renamed "zxports": after "runs" now.
            "terms_meters_unsorted_resigned".into(),
            resigned(seed, &with(&ok, meters + 2, b"z")),
            "malformed",
        ),
        ("terms_truncated".into(), ok[..ok.len() - 20].to_vec(), "truncated"),
        ("terms_trailing_byte".into(), [&ok[..], &[0]].concat(), "trailing_data"),
    ]
}

fn expected() -> Vec<(String, String)> {
    common::expected_outcomes(&dir())
}

#[test]
fn every_terms_vector_gives_its_expected_outcome() {
    let k = Keys::load();
    let exp = expected();
    assert!(exp.len() >= 19, "the vector list is complete");
    for (file, want) in &exp {
        let bytes = fs::read(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(outcome(&readers(&k, &bytes).map(|_| ())), want, "{file}");
    }
    common::assert_every_file_listed(&dir(), &exp);
}

/// The good file reads as the terms it was issued with, and the app's
/// view of them follows the features' own expiries.
#[test]
fn the_good_terms_read_back_as_issued() {
    let k = Keys::load();
    let l = readers(&k, &fs::read(dir().join("terms_ok.license")).unwrap()).unwrap();
    let t = &l.terms;
    let mut want = good_terms(k.device);
    want.features.sort();
    want.meters.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(t.features, want.features);
    assert_eq!(t.meters, want.meters);
    assert_eq!(t.format_version(), 2);
    assert!(t.has_feature("pro", NOW));
    assert!(!t.has_feature("beta", NOW), "beta ended on its own before NOW");
    assert!(t.has_feature("beta", BETA_ENDS - 1));
    assert!(t.has_feature("preview", NOW) && !t.has_feature("preview", PREVIEW_ENDS));
    assert!(!t.has_feature("enterprise", NOW));
    assert_eq!(t.feature("seats-per-project").and_then(|f| f.value.as_deref()), Some("25"));
    assert_eq!(t.meter("exports").map(|m| (m.limit, m.period)), Some((EXPORTS, MeterPeriod::Life)));
    assert_eq!(t.meter("runs").map(|m| (m.limit, m.period)), Some((500, MeterPeriod::Month)));
    let v1 = fs::read(dir().join("terms_plain_features_written_as_v1.license")).unwrap();
    assert_eq!(&v1[8..10], &[0, 1], "terms version 1 can carry are written as version 1");
}

/// Every single-bit flip and every cut of the good file is refused.
#[test]
fn every_flip_and_cut_of_the_good_file_is_refused() {
    let k = Keys::load();
    let ok = fs::read(dir().join("terms_ok.license")).unwrap();
    for i in 0..ok.len() * 8 {
        let mut v = ok.clone();
        v[i / 8] ^= 1 << (i % 8);
        assert!(readers(&k, &v).is_err(), "bit {i}");
    }
    for len in 0..ok.len() {
        assert!(readers(&k, &ok[..len]).is_err(), "cut at {len}");
    }
}

#[test]
#[ignore = "rewrites tests/terms-vectors; run by hand"]
fn regenerate_terms_vectors() {
    let k = Keys::load();
    let mut expected = String::from(
        "# Expected outcome of every license-terms (version 2) vector: FILE<TAB>OUTCOME\n\
         # (see terms_vectors.rs). Written by `regenerate_terms_vectors`.\n",
    );
    fs::create_dir_all(dir()).unwrap();
    for (name, bytes, want) in cases(&k) {
        fs::write(dir().join(format!("{name}.license")), bytes).unwrap();
        expected.push_str(&format!("{name}.license\t{want}\n"));
    }
    fs::write(dir().join("EXPECTED"), expected).unwrap();
}
