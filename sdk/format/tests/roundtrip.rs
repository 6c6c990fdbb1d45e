//! Round trips and refusals of packages and licenses built in memory.
use sealrun_format::device::DeviceSecret;
use sealrun_format::license::{self, Binding, Feature, Issuer, License, LicenseSigner, Terms, certify_issuer};
use sealrun_format::package::{AppKind, Capability, Package, PackageSpec, seal_to_vec};
use sealrun_format::release::ReleaseRange;
use sealrun_format::{Artifact, ContentKey, Error, Release, VendorPublicKey, VendorSigningKey};

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn spec(len: u64) -> PackageSpec {
    PackageSpec {
        product: "com.acme.tool".into(),
        release: Release::new(1, 0, 0),
        display_name: "Acme Tool".into(),
        kind: AppKind::Console,
        capabilities: vec![Capability::Env("LANG".into()), Capability::Dir { writable: false, guest: "/data".into() }],
        chunk_size_log2: 12,
        plaintext_len: len,
        icon: None,
    }
}

fn terms(device: &DeviceSecret) -> Terms {
    Terms {
        license_id: [0; 16],
        vendor_key: VendorPublicKey([0; 32]),
        product: "com.acme.tool".into(),
        releases: ReleaseRange { min: Release::new(1, 0, 0), max: Some(Release::new(1, 9, 9)) },
        licensee: "Jane Doe".into(),
        issued_at: 1_700_000_000,
        not_before: 1_700_000_000,
        expires: Some(1_800_000_000),
        features: vec![Feature::named("pro"), Feature::named("export")],
        meters: vec![],
        binding: Binding::Device(device.device_code(b"machine-a")),
    }
}

#[test]
fn package_round_trip_and_signature_covers_chunks() {
    let vendor = VendorSigningKey::generate(&mut rng());
    let key = ContentKey::generate(&mut rng());
    let module: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let sealed = seal_to_vec(spec(module.len() as u64), &module, &key, &vendor, &mut rng()).unwrap();
    let pkg = Package::parse(&sealed).unwrap();
    pkg.verify_signature().unwrap();
    assert_eq!(pkg.manifest().capabilities[0], Capability::Dir { writable: false, guest: "/data".into() });
    let mut out = vec![0u8; module.len()];
    pkg.decrypt_into(&key, &mut out).unwrap();
    assert_eq!(out, module);

    // A flipped ciphertext byte breaks the signature before any key is used.
    let mut bad = sealed.clone();
    let at = pkg.header().as_bytes().len() + 5000;
    bad[at] ^= 0x40;
    let pkg = Package::parse(&bad).unwrap();
    assert_eq!(pkg.verify_signature(), Err(Error::BadSignature(Artifact::Package)));
    let mut out = vec![1u8; module.len()];
    assert_eq!(pkg.decrypt_into(&key, &mut out), Err(Error::DecryptionFailed));
    assert!(out.iter().all(|&b| b == 0), "unauthenticated plaintext left behind");

    // The wrong content key is refused before decryption.
    let other = ContentKey::generate(&mut rng());
    let pkg = Package::parse(&sealed).unwrap();
    assert_eq!(pkg.decrypt_into(&other, &mut vec![0u8; module.len()]), Err(Error::UnwrapFailed));
}

#[test]
fn parallel_decryption_matches_sequential() {
    let vendor = VendorSigningKey::generate(&mut rng());
    let key = ContentKey::generate(&mut rng());
    for len in [1usize, 4096, 4097, 5 * 4096 + 7, 40 * 4096] {
        let module: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sealed = seal_to_vec(spec(len as u64), &module, &key, &vendor, &mut rng()).unwrap();
        let pkg = Package::parse(&sealed).unwrap();
        for threads in [1, 2, 3, 7, 64] {
            let mut out = vec![0u8; len];
            pkg.decrypt_into_parallel(&key, &mut out, threads).unwrap();
            assert_eq!(out, module, "len {len}, {threads} threads");
        }
        // A flipped byte in the last chunk is caught however the work is split.
        let mut bad = sealed.clone();
        let at = bad.len() - 64 - 3;
        bad[at] ^= 1;
        let pkg = Package::parse(&bad).unwrap();
        for threads in [2, 3] {
            let mut out = vec![7u8; len];
            assert!(pkg.decrypt_into_parallel(&key, &mut out, threads).is_err());
            assert!(out.iter().all(|&b| b == 0), "unauthenticated bytes left behind");
        }
    }
}

#[test]
fn package_length_errors() {
    let vendor = VendorSigningKey::generate(&mut rng());
    let key = ContentKey::generate(&mut rng());
    let sealed = seal_to_vec(spec(100), &[1u8; 100], &key, &vendor, &mut rng()).unwrap();
    assert!(matches!(Package::parse(&sealed[..sealed.len() - 1]), Err(Error::Truncated { .. })));
    let mut long = sealed.clone();
    long.push(0);
    assert!(matches!(Package::parse(&long), Err(Error::TrailingData { extra: 1, .. })));
    assert!(matches!(Package::parse(b"\0asm\x01\0\0\0"), Err(Error::NotSealrun(Artifact::Package))));
    let mut v2 = sealed.clone();
    v2[9] = 2;
    assert!(matches!(Package::parse(&v2), Err(Error::UnsupportedVersion { found: 2, .. })));
}

#[test]
fn license_round_trip_unwraps_only_on_its_device() {
    let vendor = VendorSigningKey::generate(&mut rng());
    let key = ContentKey::generate(&mut rng());
    let device = DeviceSecret::generate(&mut rng());
    let bytes =
        license::issue(terms(&device), &[(Release::new(1, 0, 0), &key)], &LicenseSigner::Vendor(&vendor), &mut rng())
            .unwrap();
    let lic = License::parse(&bytes).unwrap();
    assert_eq!(lic.to_bytes(), bytes);
    assert_eq!(lic.terms.feature_names(), ["export", "pro"]);
    lic.verify_signature(&vendor.public()).unwrap();
    assert_eq!(lic.unwrap_key(&key.id(), &device).unwrap().as_bytes(), key.as_bytes());

    let stranger = DeviceSecret::generate(&mut rng());
    assert!(matches!(lic.unwrap_key(&key.id(), &stranger), Err(Error::UnwrapFailed)));
    let other_vendor = VendorSigningKey::generate(&mut rng());
    assert!(matches!(lic.verify_signature(&other_vendor.public()), Err(Error::OtherVendor { .. })));

    for i in [20, 60, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[i] ^= 1;
        let refused = License::parse(&bad).and_then(|l| l.verify_signature(&vendor.public()));
        assert!(refused.is_err(), "flip at {i} accepted");
    }
}

#[test]
fn certified_issuer_chain() {
    let vendor = VendorSigningKey::generate(&mut rng());
    let server = VendorSigningKey::generate(&mut rng());
    let key = ContentKey::generate(&mut rng());
    let device = DeviceSecret::generate(&mut rng());
    let cert = certify_issuer(&vendor, server.public(), 1_750_000_000);
    let signer = LicenseSigner::Issuer { key: &server, cert, vendor: vendor.public() };
    let bytes = license::issue(terms(&device), &[(Release::new(1, 0, 0), &key)], &signer, &mut rng()).unwrap();
    let lic = License::parse(&bytes).unwrap();
    assert!(matches!(lic.issuer, Issuer::Certified(_)));
    lic.verify_signature(&vendor.public()).unwrap();

    // Issued after the certificate lapsed.
    let mut late = terms(&device);
    late.issued_at = 1_760_000_000;
    let bytes = license::issue(late, &[(Release::new(1, 0, 0), &key)], &signer, &mut rng()).unwrap();
    assert!(License::parse(&bytes).unwrap().verify_signature(&vendor.public()).is_err());

    // A certificate the vendor never made.
    let forged = certify_issuer(&server, server.public(), 1_750_000_000);
    let signer = LicenseSigner::Issuer { key: &server, cert: forged, vendor: vendor.public() };
    let bytes = license::issue(terms(&device), &[(Release::new(1, 0, 0), &key)], &signer, &mut rng()).unwrap();
    assert!(License::parse(&bytes).unwrap().verify_signature(&vendor.public()).is_err());
}

#[test]
fn license_issue_rejects_bad_terms() {
    let vendor = VendorSigningKey::generate(&mut rng());
    let key = ContentKey::generate(&mut rng());
    let device = DeviceSecret::generate(&mut rng());
    let mut t = terms(&device);
    t.product = "Not A Product".into();
    assert!(license::issue(t, &[(Release::new(1, 0, 0), &key)], &LicenseSigner::Vendor(&vendor), &mut rng()).is_err());
    let t = terms(&device);
    let outside = license::issue(t, &[(Release::new(2, 0, 0), &key)], &LicenseSigner::Vendor(&vendor), &mut rng());
    assert!(matches!(outside, Err(Error::InvalidInput { field: "content keys", .. })));
}

/// A PNG as the format sees one: the signature bytes, then anything.
fn png(len: usize) -> Vec<u8> {
    let mut icon = b"\x89PNG\r\n\x1a\n".to_vec();
    icon.resize(len, 0x42);
    icon
}

#[test]
fn issue7_an_icon_travels_in_the_manifest_unencrypted() {
    use sealrun_format::limits::MAX_ICON_LEN;
    use sealrun_format::package::Header;
    let vendor = VendorSigningKey::generate(&mut rng());
    let key = ContentKey::generate(&mut rng());
    let module = vec![7u8; 5000];
    for icon in [png(2000), png(MAX_ICON_LEN), b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec()] {
        let sealed =
            seal_to_vec(PackageSpec { icon: Some(icon.clone()), ..spec(5000) }, &module, &key, &vendor, &mut rng())
                .unwrap();
        let pkg = Package::parse(&sealed).unwrap();
        pkg.verify_signature().unwrap();
        assert_eq!(pkg.manifest().icon.as_deref(), Some(&icon[..]));
        // Readable without any key, from the header alone.
        assert_eq!(Header::parse_prefix(&sealed).unwrap().manifest.icon, Some(icon.clone()));
        let mut out = vec![0u8; module.len()];
        pkg.decrypt_into(&key, &mut out).unwrap();
        assert_eq!(out, module);
    }
    // The icon costs its bytes and three more (tag, length); without one
    // the manifest is what it always was.
    let header_len = |icon: Option<Vec<u8>>| {
        let sealed = seal_to_vec(PackageSpec { icon, ..spec(5000) }, &module, &key, &vendor, &mut rng()).unwrap();
        Header::parse_prefix(&sealed).unwrap().as_bytes().len()
    };
    assert_eq!(header_len(Some(png(2000))), header_len(None) + 3 + 2000);

    // The sealer refuses what the parser would.
    for (icon, problem) in [
        (vec![], "is empty or above 7 KiB"),
        (png(MAX_ICON_LEN + 1), "is empty or above 7 KiB"),
        (b"GIF89a.....".to_vec(), "is not a PNG or SVG image"),
    ] {
        let e = seal_to_vec(PackageSpec { icon: Some(icon), ..spec(5000) }, &module, &key, &vendor, &mut rng())
            .unwrap_err();
        assert_eq!(e, Error::InvalidInput { field: "icon", problem });
    }
}

#[test]
fn issue7_a_damaged_icon_is_refused_by_name() {
    use sealrun_format::package::ICON_TAG;
    let vendor = VendorSigningKey::generate(&mut rng());
    let key = ContentKey::generate(&mut rng());
    let module = vec![7u8; 5000];
    let icon = png(300);
    let sealed =
        seal_to_vec(PackageSpec { icon: Some(icon.clone()), ..spec(5000) }, &module, &key, &vendor, &mut rng())
            .unwrap();
    let at = sealed.windows(icon.len()).position(|w| w == icon).unwrap();
    assert_eq!(sealed[at - 3], ICON_TAG);
    // Not an image any more.
    let mut bad = sealed.clone();
    bad[at] = b'G';
    assert_eq!(
        Package::parse(&bad).err().unwrap(),
        Error::Malformed { artifact: Artifact::Package, field: "icon", problem: "is not a PNG or SVG image" }
    );
    // A length of zero.
    let mut bad = sealed.clone();
    bad[at - 2..at].copy_from_slice(&[0, 0]);
    assert_eq!(
        Package::parse(&bad).err().unwrap(),
        Error::Malformed { artifact: Artifact::Package, field: "icon", problem: "is empty or above 7 KiB" }
    );
    // Every damage is caught: by the parser or by the signature.
    for i in at - 3..at + icon.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        let refused = Package::parse(&bad).map_or(true, |p| p.verify_signature().is_err());
        assert!(refused, "a flip at byte {i} of the icon went unnoticed");
    }
}

#[test]
fn every_app_kind_round_trips_and_decrypts() {
    let (key, vendor) = (ContentKey::generate(&mut rng()), VendorSigningKey::generate(&mut rng()));
    let module = vec![7u8; 5000];
    for kind in [AppKind::Console, AppKind::ComponentCommand, AppKind::ComponentHttpProxy] {
        let sealed = seal_to_vec(PackageSpec { kind, ..spec(5000) }, &module, &key, &vendor, &mut rng()).unwrap();
        let package = Package::parse(&sealed).unwrap();
        package.verify_signature().unwrap();
        assert_eq!(package.manifest().kind, kind);
        assert_eq!(package.manifest().kind.is_component(), kind != AppKind::Console);
        let mut out = vec![0u8; 5000];
        package.decrypt_into(&key, &mut out).unwrap();
        assert_eq!(out, module);
    }
}

/// The largest terms every bound allows (longest names and values, the most
/// features, meters and keys, a floating binding, a certified issuer) still
/// fit in the largest license body: no license the SDK can issue is one
/// the launcher refuses for its size.
#[test]
fn the_largest_terms_fit_in_a_license() {
    use sealrun_format::license::{Holder, Meter, MeterPeriod, SeatUnit};
    use sealrun_format::limits::*;
    let vendor = VendorSigningKey::generate(&mut rng());
    let server = VendorSigningKey::generate(&mut rng());
    let device = DeviceSecret::generate(&mut rng());
    let name = |i: usize| format!("{i:02}{}", "f".repeat(MAX_FEATURE_LEN - 2));
    let keys: Vec<(Release, ContentKey)> =
        (0..MAX_WRAPPED_KEYS as u32).map(|i| (Release::new(1, i, 0), ContentKey::generate(&mut rng()))).collect();
    let keys: Vec<(Release, &ContentKey)> = keys.iter().map(|(r, k)| (*r, k)).collect();
    let product = format!("com.{}", "p".repeat(MAX_PRODUCT_ID_LEN - 4));
    let t = Terms {
        product,
        licensee: "L".repeat(MAX_LICENSEE_LEN),
        releases: ReleaseRange { min: Release::new(1, 0, 0), max: Some(Release::new(1, 999, 0)) },
        features: (0..MAX_FEATURES)
            .map(|i| Feature {
                name: name(i),
                value: Some("v".repeat(MAX_FEATURE_VALUE_LEN)),
                expires: Some(1_790_000_000),
            })
            .collect(),
        meters: (0..MAX_METERS)
            .map(|i| Meter { name: name(i), limit: MAX_METER_LIMIT, period: MeterPeriod::Month })
            .collect(),
        binding: Binding::Floating {
            holder: Holder::Device(device.device_code(b"m")),
            seats: MAX_FLOATING_SEATS,
            unit: SeatUnit::Process,
        },
        ..terms(&device)
    };
    let signer = LicenseSigner::Issuer {
        key: &server,
        cert: certify_issuer(&vendor, server.public(), 1_750_000_000),
        vendor: vendor.public(),
    };
    let bytes = license::issue(t.clone(), &keys, &signer, &mut rng()).unwrap();
    let body = u32::from_be_bytes(bytes[10..14].try_into().unwrap());
    assert_eq!(body, 16_253, "the largest body (docs/format.md gives this figure)");
    assert!(body <= MAX_LICENSE_BODY_LEN);
    let lic = License::parse(&bytes).unwrap();
    lic.verify_signature(&vendor.public()).unwrap();
    assert_eq!(lic.terms.features.len(), MAX_FEATURES);
    assert_eq!(lic.terms.meters, t.meters);

    // One more of each is refused when issuing, with the field named.
    let mut more = t.clone();
    more.meters.push(Meter { name: "zz".into(), limit: 1, period: MeterPeriod::Life });
    let e = license::issue(more, &keys, &signer, &mut rng()).unwrap_err();
    assert!(matches!(e, Error::InvalidInput { field: "meters", .. }), "{e}");
    let mut over = t;
    over.meters[0].limit = MAX_METER_LIMIT + 1;
    let e = license::issue(over, &keys, &signer, &mut rng()).unwrap_err();
    assert!(matches!(e, Error::InvalidInput { field: "meter limit", .. }), "{e}");
}

/// Two entries for one feature name, or for one meter, are refused: the
/// app could not tell which one holds.
#[test]
fn a_feature_or_meter_named_twice_is_refused() {
    use sealrun_format::license::{Meter, MeterPeriod};
    let vendor = VendorSigningKey::generate(&mut rng());
    let key = ContentKey::generate(&mut rng());
    let device = DeviceSecret::generate(&mut rng());
    let keys = [(Release::new(1, 0, 0), &key)];
    let mut t = terms(&device);
    t.features = vec![Feature::named("pro"), Feature { name: "pro".into(), value: Some("2".into()), expires: None }];
    let e = license::issue(t, &keys, &LicenseSigner::Vendor(&vendor), &mut rng()).unwrap_err();
    assert!(matches!(e, Error::InvalidInput { field: "features", .. }), "{e}");
    let mut t = terms(&device);
    let runs = |limit| Meter { name: "runs".into(), limit, period: MeterPeriod::Life };
    t.meters = vec![runs(5), runs(6)];
    let e = license::issue(t, &keys, &LicenseSigner::Vendor(&vendor), &mut rng()).unwrap_err();
    assert!(matches!(e, Error::InvalidInput { field: "meters", .. }), "{e}");
    // The same feature twice, exactly, is one feature.
    let mut t = terms(&device);
    t.features = vec![Feature::named("pro"), Feature::named("pro")];
    let bytes = license::issue(t, &keys, &LicenseSigner::Vendor(&vendor), &mut rng()).unwrap();
    assert_eq!(License::parse(&bytes).unwrap().terms.feature_names(), ["pro"]);
}

/// The spellings `--feature` and `--meter` take, and what they refuse.
#[test]
fn feature_and_meter_spellings() {
    use sealrun_format::license::{Meter, MeterPeriod};
    let f: Feature = "seats-per-project=25".parse().unwrap();
    assert_eq!((f.name.as_str(), f.value.as_deref(), f.expires), ("seats-per-project", Some("25"), None));
    assert_eq!("pro".parse::<Feature>().unwrap(), Feature::named("pro"));
    assert_eq!("tier=Gold plus".parse::<Feature>().unwrap().value.as_deref(), Some("Gold plus"));
    for bad in ["", "Pro", "pro=", "pro= x", "a=\u{7}"] {
        assert!(bad.parse::<Feature>().is_err(), "{bad:?} accepted");
    }
    let m: Meter = "runs=500/month".parse().unwrap();
    assert_eq!(m, Meter { name: "runs".into(), limit: 500, period: MeterPeriod::Month });
    assert_eq!(m.to_string(), "runs=500/month");
    let m: Meter = "exports=1000".parse().unwrap();
    assert_eq!((m.limit, m.period, m.to_string().as_str()), (1000, MeterPeriod::Life, "exports=1000"));
    assert_eq!("exports=1000/life".parse::<Meter>().unwrap(), m);
    assert_eq!("x=9007199254740991".parse::<Meter>().unwrap().limit, (1 << 53) - 1);
    for bad in [
        "exports",
        "exports=",
        "exports=0",
        "exports=01",
        "exports=-1",
        "exports=+5",
        "exports=1e3",
        "exports=9007199254740992",
        "exports=5/week",
        "Exports=5",
        "=5",
    ] {
        assert!(bad.parse::<Meter>().is_err(), "{bad:?} accepted");
    }
}
