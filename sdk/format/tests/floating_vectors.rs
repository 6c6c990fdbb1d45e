//! File-based test vectors for floating licenses (`*.license`, held by the
//! license manager's device) and the keys it lends with a lease (`*.key`),
//! one case per file under `tests/floating-vectors/`, each with its
//! expected outcome in `EXPECTED`, run through every reader. The package is
//! `tests/vectors/package_ok.sealed`; the vendor, content and device keys
//! are those of `tests/vectors/keys/` (`device.secret` is the manager's
//! host, `other-device.secret` the workstation that checks out a seat).
//!
//! To rewrite the files (HPKE randomness and license ids change, outcomes
//! do not):
//!
//! ```text
//! cargo test -p sealrun-format --test floating_vectors -- --ignored regenerate_floating_vectors
//! ```
mod common;

use std::fs;
use std::path::PathBuf;

use common::{NOW, PRODUCT, Y2026, hex32, key_file, outcome, resigned};
use sealrun_format::device::{DeviceCode, DeviceSecret};
use sealrun_format::lease::{LeaseId, LeaseKey, lend, open_lent};
use sealrun_format::license::{self, Binding, Holder, License, LicenseSigner, SeatUnit, Terms};
use sealrun_format::package::{Manifest, Package};
use sealrun_format::release::ReleaseRange;
use sealrun_format::{ContentKey, Error, Release, VendorPublicKey, VendorSigningKey};

/// The lease every lent key is for.
const LEASE: LeaseId = LeaseId([0x5e; 16]);
/// Seats of the good license: an unusual number, easy to find in the bytes.
const SEATS: u32 = 77_777;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/floating-vectors")
}

struct Keys {
    vendor_seed: [u8; 32],
    vendor: VendorSigningKey,
    content: ContentKey,
    host_secret: DeviceSecret,
    host: DeviceCode,
    client_secret: DeviceSecret,
    client: DeviceCode,
    manifest: Manifest,
}

impl Keys {
    fn load() -> Keys {
        let shared = common::shared_key;
        let vendor_seed = hex32(shared("vendor.seed"));
        let machine = key_file(shared("machine-id"));
        let other_machine = key_file(shared("other-machine-id"));
        let host_secret = DeviceSecret::from_bytes(&hex32(shared("device.secret")));
        let client_secret = DeviceSecret::from_bytes(&hex32(shared("other-device.secret")));
        let package = fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/package_ok.sealed"))
            .expect("package_ok.sealed");
        Keys {
            vendor_seed,
            vendor: VendorSigningKey::from_seed(&vendor_seed),
            content: ContentKey::from_bytes(&hex32(shared("content.key"))),
            host: host_secret.device_code(machine.as_bytes()),
            host_secret,
            client: client_secret.device_code(other_machine.as_bytes()),
            client_secret,
            manifest: Package::parse(&package).expect("package_ok parses").manifest().clone(),
        }
    }
}

/// The license manager's readers: parse, `to_bytes` round trip, the
/// vendor signature, the package's terms, and unwrapping on the host.
fn license_readers(k: &Keys, bytes: &[u8]) -> Result<License, Error> {
    let l = License::parse(bytes)?;
    assert_eq!(l.to_bytes(), bytes, "to_bytes differs from the input");
    l.verify_signature(&k.vendor.public())?;
    l.check_covers(&k.manifest, NOW)?;
    if !matches!(l.terms.binding, Binding::Floating { .. }) {
        return Err(Error::InvalidInput { field: "binding", problem: "is not floating" });
    }
    l.unwrap_key(&k.manifest.key_id, &k.host_secret)?;
    Ok(l)
}

/// The workstation's readers for a lent key: its length, then opening it
/// for [`LEASE`] under the good license on the client device.
fn lease_readers(k: &Keys, license: &License, bytes: &[u8]) -> Result<(), Error> {
    let lent = LeaseKey::from_bytes(bytes)?;
    assert_eq!(lent.to_bytes().as_slice(), bytes);
    let key = open_lent(&lent, license, &LEASE, &k.manifest.key_id, &k.client_secret, &k.client)?;
    assert_eq!(key.as_bytes(), k.content.as_bytes());
    Ok(())
}

fn terms(holder: DeviceCode, seats: u32, unit: SeatUnit) -> Terms {
    Terms {
        license_id: [0; 16],
        vendor_key: VendorPublicKey([0; 32]),
        product: PRODUCT.into(),
        releases: ReleaseRange { min: Release::new(1, 0, 0), max: None },
        licensee: "Vector Site".into(),
        issued_at: Y2026,
        not_before: Y2026,
        expires: None,
        features: vec![],
        meters: vec![],
        binding: Binding::Floating { holder: Holder::Device(holder), seats, unit },
    }
}

/// Where the floating binding (kind byte) starts in `license`.
fn binding_at(k: &Keys, license: &[u8]) -> usize {
    let mut needle = vec![3u8];
    needle.extend_from_slice(&k.host.machine_tag);
    needle.extend_from_slice(&k.host.public_key);
    needle.extend_from_slice(&SEATS.to_be_bytes());
    license.windows(needle.len()).position(|w| w == needle).expect("the binding is in the license")
}

/// One vector: file name without extension, bytes, expected outcome.
type Case = (String, Vec<u8>, &'static str);

/// The license vectors and the lent-key vectors.
fn cases(k: &Keys) -> (Vec<Case>, Vec<Case>) {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let keys = [(Release::new(1, 0, 0), &k.content)];
    let signer = LicenseSigner::Vendor(&k.vendor);
    let issue = |t: Terms, rng: &mut rand_core::UnwrapErr<getrandom::SysRng>| {
        license::issue(t, &keys, &signer, rng).expect("issue")
    };
    let ok = issue(terms(k.host, SEATS, SeatUnit::Computer), &mut rng);
    let at = binding_at(k, &ok);
    let (seats_at, unit_at) = (at + 39, at + 43);
    let with = |offset: usize, bytes: &[u8]| {
        let mut v = ok.clone();
        v[offset..offset + bytes.len()].copy_from_slice(bytes);
        v
    };
    let mut flipped_seats = ok.clone();
    flipped_seats[seats_at + 3] ^= 1;
    let licenses = vec![
        ("floating_ok".to_owned(), ok.clone(), "ok"),
        ("floating_per_process_ok".into(), issue(terms(k.host, 3, SeatUnit::Process), &mut rng), "ok"),
        ("floating_flip_seats".into(), flipped_seats, "bad_signature"),
        (
            "floating_seats_0_resigned".into(),
            resigned(&k.vendor_seed, &with(seats_at, &0u32.to_be_bytes())),
            "malformed",
        ),
        (
            "floating_seats_over_limit_resigned".into(),
            resigned(&k.vendor_seed, &with(seats_at, &100_001u32.to_be_bytes())),
            "malformed",
        ),
        ("floating_unit_3_resigned".into(), resigned(&k.vendor_seed, &with(unit_at, &[3])), "malformed"),
        ("floating_binding_kind_5_resigned".into(), resigned(&k.vendor_seed, &with(at, &[5])), "malformed"),
        ("floating_truncated".into(), ok[..ok.len() - 20].to_vec(), "truncated"),
        ("floating_trailing_byte".into(), [&ok[..], &[0]].concat(), "trailing_data"),
        (
            "floating_held_by_other_host".into(),
            issue(terms(k.client, 3, SeatUnit::Computer), &mut rng),
            "unwrap_failed",
        ),
    ];
    let good = License::parse(&ok).expect("ok parses");
    let lent = lend(&k.content, &good, &LEASE, &k.client, &mut rng).expect("lend").to_bytes();
    let mut flipped = lent;
    flipped[60] ^= 0x80;
    let other_lease = lend(&k.content, &good, &LeaseId([0x77; 16]), &k.client, &mut rng).expect("lend").to_bytes();
    let to_host = lend(&k.content, &good, &LEASE, &k.host, &mut rng).expect("lend").to_bytes();
    let leases = vec![
        ("lease_ok".to_owned(), lent.to_vec(), "ok"),
        ("lease_flip_wrapped".into(), flipped.to_vec(), "unwrap_failed"),
        ("lease_for_other_lease".into(), other_lease.to_vec(), "unwrap_failed"),
        ("lease_for_other_device".into(), to_host.to_vec(), "unwrap_failed"),
        ("lease_truncated".into(), lent[..79].to_vec(), "malformed"),
        ("lease_trailing_byte".into(), [&lent[..], &[0]].concat(), "malformed"),
        ("lease_empty".into(), Vec::new(), "malformed"),
    ];
    (licenses, leases)
}

fn expected() -> Vec<(String, String)> {
    common::expected_outcomes(&dir())
}

#[test]
fn every_floating_vector_gives_its_expected_outcome() {
    let k = Keys::load();
    let good = License::parse(&fs::read(dir().join("floating_ok.license")).unwrap()).unwrap();
    let exp = expected();
    assert!(exp.len() >= 17, "the vector list is complete");
    for (file, want) in &exp {
        let bytes = fs::read(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = if file.ends_with(".license") {
            outcome(&license_readers(&k, &bytes).map(|_| ()))
        } else {
            outcome(&lease_readers(&k, &good, &bytes))
        };
        assert_eq!(got, want, "{file}");
    }
    common::assert_every_file_listed(&dir(), &exp);
}

/// Every single-bit flip and every cut of the good files is refused.
#[test]
fn every_flip_and_cut_of_the_good_files_is_refused() {
    let k = Keys::load();
    let ok = fs::read(dir().join("floating_ok.license")).unwrap();
    let good = License::parse(&ok).unwrap();
    let lent = fs::read(dir().join("lease_ok.key")).unwrap();
    let mut n = 0;
    for i in 0..ok.len() * 8 {
        let mut v = ok.clone();
        v[i / 8] ^= 1 << (i % 8);
        assert!(license_readers(&k, &v).is_err(), "bit {i} of the license");
        n += 1;
    }
    for i in 0..lent.len() * 8 {
        let mut v = lent.clone();
        v[i / 8] ^= 1 << (i % 8);
        assert!(lease_readers(&k, &good, &v).is_err(), "bit {i} of the lent key");
        n += 1;
    }
    for len in 0..ok.len() {
        assert!(license_readers(&k, &ok[..len]).is_err());
        n += 1;
    }
    for len in 0..lent.len() {
        assert!(lease_readers(&k, &good, &lent[..len]).is_err());
        n += 1;
    }
    assert!(n > 2000, "{n} mutations");
}

#[test]
#[ignore = "rewrites tests/floating-vectors; run by hand"]
fn regenerate_floating_vectors() {
    let k = Keys::load();
    let (licenses, leases) = cases(&k);
    let mut expected = String::from(
        "# Expected outcome of every floating vector: FILE<TAB>OUTCOME (see floating_vectors.rs).\n\
         # Written by `regenerate_floating_vectors`.\n",
    );
    for (name, bytes, want) in &licenses {
        fs::write(dir().join(format!("{name}.license")), bytes).unwrap();
        expected.push_str(&format!("{name}.license\t{want}\n"));
    }
    for (name, bytes, want) in &leases {
        fs::write(dir().join(format!("{name}.key")), bytes).unwrap();
        expected.push_str(&format!("{name}.key\t{want}\n"));
    }
    fs::write(dir().join("EXPECTED"), expected).unwrap();
}
