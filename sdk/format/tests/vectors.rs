//! File-based test vectors: one package (`*.sealed`) or license
//! (`*.license`) per file under `tests/vectors/`, each with its expected
//! outcome in `tests/vectors/EXPECTED`, run through every reader of the
//! format crate. `tests/vectors/PAIRS` lists package/license pairs that go
//! through the whole chain the launcher runs.
//!
//! The vector files are committed. To rewrite them from the fixed test keys
//! in `tests/vectors/keys/`:
//!
//! ```text
//! cargo test -p sealrun-format --test vectors -- --ignored regenerate_vectors
//! ```
//!
//! Randomness only affects nonces and license ids, so a regeneration changes
//! the bytes but not the outcomes.
use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use sealrun_format::device::DeviceSecret;
use sealrun_format::license::{self, Binding, Feature, License, LicenseSigner, Terms, certify_issuer};
use sealrun_format::package::{Capability, Header, Manifest, Package, PackageSpec, seal_to_vec};
use sealrun_format::release::ReleaseRange;
use sealrun_format::stream::{ChunkLayout, StreamSealer, TAG_LEN};
use sealrun_format::{Artifact, ContentKey, Error, Release, UnixTime, VendorPublicKey, VendorSigningKey};

// ---------------------------------------------------------------------------
// Fixed parameters of the vectors.

/// Product of `package_ok` and of every license unless a case says otherwise.
const PRODUCT: &str = "com.example.vectors";
/// Release of `package_ok`.
const RELEASE: Release = Release::new(1, 0, 0);
/// Module length: three 4 KiB chunks, the last one partial.
const MODULE_LEN: usize = 10_000;
/// Chunk size of the vector packages (4 KiB).
const CHUNK_LOG2: u8 = 12;
/// Licensee of the vector licenses.
const LICENSEE: &str = "Test Licensee GmbH";

const Y2000: UnixTime = 946_684_800; // 2000-01-01T00:00:00Z
const Y2001: UnixTime = 978_307_200; // 2001-01-01T00:00:00Z
const Y2025: UnixTime = 1_735_689_600; // 2025-01-01T00:00:00Z
const Y2030: UnixTime = 1_893_456_000; // 2030-01-01T00:00:00Z
const Y2099: UnixTime = 4_070_908_800; // 2099-01-01T00:00:00Z
const Y2100: UnixTime = 4_102_444_800; // 2100-01-01T00:00:00Z
/// The instant every check runs at: 2026-06-01T00:00:00Z.
const NOW: UnixTime = 1_780_272_000;

/// Magic and version (14 bytes) that precede a manifest or license body.
const PREFIX_LEN: usize = 8 + 2 + 4;
/// Ed25519 signature length.
const SIG_LEN: usize = 64;
/// Fill byte of decryption buffers, to see whether a refusal left data behind.
const SENTINEL: u8 = 0xA5;

/// Every outcome name `EXPECTED` and `PAIRS` may use.
const OUTCOMES: &[&str] = &[
    "ok",
    "not_sealrun",
    "unsupported_version",
    "truncated",
    "trailing_data",
    "malformed",
    "bad_signature",
    "decryption_failed",
    "unwrap_failed",
    "other_vendor",
    "wrong_product",
    "release_not_licensed",
    "no_key_for_package",
    "expired",
    "not_yet_valid",
];

/// The one mapping from the crate's error to an outcome name.
fn outcome_name(e: &Error) -> &'static str {
    match e {
        Error::NotSealrun(_) => "not_sealrun",
        Error::UnsupportedVersion { .. } => "unsupported_version",
        Error::Truncated { .. } => "truncated",
        Error::TrailingData { .. } => "trailing_data",
        Error::Malformed { .. } => "malformed",
        Error::BadSignature(_) => "bad_signature",
        Error::DecryptionFailed => "decryption_failed",
        Error::UnwrapFailed => "unwrap_failed",
        Error::OtherVendor { .. } => "other_vendor",
        Error::WrongProduct { .. } => "wrong_product",
        Error::ReleaseNotLicensed { .. } => "release_not_licensed",
        Error::NoKeyForPackage(_) => "no_key_for_package",
        Error::Expired(_) => "expired",
        Error::NotYetValid(_) => "not_yet_valid",
        Error::InvalidInput { .. } => "invalid_input",
        Error::DeviceCodeChecksum => "device_code_checksum",
        _ => "unknown_error",
    }
}

fn outcome(r: &Result<(), Error>) -> &'static str {
    r.as_ref().err().map_or("ok", outcome_name)
}

/// The artifact an error names, if it names one.
fn error_artifact(e: &Error) -> Option<Artifact> {
    match e {
        Error::NotSealrun(a) | Error::BadSignature(a) => Some(*a),
        Error::UnsupportedVersion { artifact, .. }
        | Error::Truncated { artifact, .. }
        | Error::TrailingData { artifact, .. }
        | Error::Malformed { artifact, .. } => Some(*artifact),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Files and keys.

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn read_vector(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn key_text(name: &str) -> String {
    let path = vectors_dir().join("keys").join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.trim().to_owned()
}

fn key32(name: &str) -> [u8; 32] {
    let bytes = hex::decode(key_text(name)).unwrap_or_else(|e| panic!("keys/{name}: {e}"));
    bytes.try_into().unwrap_or_else(|_| panic!("keys/{name} is not 32 bytes"))
}

/// The fixed test secrets of `tests/vectors/keys/`.
struct Keys {
    vendor_seed: [u8; 32],
    other_vendor_seed: [u8; 32],
    vendor: VendorSigningKey,
    other_vendor: VendorSigningKey,
    content: ContentKey,
    other_content: ContentKey,
    device: DeviceSecret,
    other_device: DeviceSecret,
    machine_id: Vec<u8>,
    other_machine_id: Vec<u8>,
}

impl Keys {
    fn load() -> Keys {
        let vendor_seed = key32("vendor.seed");
        let other_vendor_seed = key32("other-vendor.seed");
        Keys {
            vendor_seed,
            other_vendor_seed,
            vendor: VendorSigningKey::from_seed(&vendor_seed),
            other_vendor: VendorSigningKey::from_seed(&other_vendor_seed),
            content: ContentKey::from_bytes(&key32("content.key")),
            other_content: ContentKey::from_bytes(&key32("other-content.key")),
            device: DeviceSecret::from_bytes(&key32("device.secret")),
            other_device: DeviceSecret::from_bytes(&key32("other-device.secret")),
            machine_id: key_text("machine-id").into_bytes(),
            other_machine_id: key_text("other-machine-id").into_bytes(),
        }
    }
}

/// The module inside every vector package: byte `i` is `(31 i + i / 4096) mod 256`.
fn module() -> Vec<u8> {
    (0..MODULE_LEN).map(|i| (i * 31 + i / 4096) as u8).collect()
}

/// Reads a tab-separated table, skipping blank lines and `#` comments.
fn read_table(name: &str, columns: usize) -> Vec<Vec<String>> {
    let text = String::from_utf8(read_vector(name)).expect("tables are UTF-8");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(n, l)| {
            let row: Vec<String> = l.split('\t').map(str::to_owned).collect();
            assert_eq!(row.len(), columns, "{name} line {}: {l:?}", n + 1);
            assert!(
                OUTCOMES.contains(&row[columns - 1].as_str()),
                "{name} line {}: unknown outcome {:?}",
                n + 1,
                row[columns - 1]
            );
            row
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The readers, each call guarded against panics.

/// Runs one reader call; a panic becomes a problem of `label` and `None`.
fn guarded<T>(problems: &mut Vec<String>, label: &str, step: &str, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(_) => {
            problems.push(format!("{label}: {step} panicked"));
            None
        }
    }
}

/// What the readers check against: the keys, the module and `package_ok`'s
/// manifest (the package every license case is about).
struct Ctx {
    keys: Keys,
    module: Vec<u8>,
    manifest: Manifest,
}

impl Ctx {
    fn load() -> Ctx {
        let keys = Keys::load();
        let bytes = read_vector("package_ok.sealed");
        let manifest = Package::parse(&bytes).expect("package_ok.sealed parses").manifest().clone();
        assert_eq!(manifest.vendor_key, keys.vendor.public(), "package_ok vendor");
        assert_eq!(manifest.key_id, keys.content.id(), "package_ok content key");
        assert_eq!(manifest.product, PRODUCT);
        assert_eq!(manifest.release, RELEASE);
        Ctx { keys, module: module(), manifest }
    }
}

/// Package readers in order: `Package::parse`, `verify_signature`,
/// `Header::parse_prefix` consistency, `decrypt_into` with the content key.
/// Returns the error of the first failing step (or `None` if a reader
/// panicked). Every reader runs even after an earlier one failed, and the
/// readers must agree with each other; disagreements go to `problems`.
/// The streaming check over `bytes` fed in slices of 1, 7, 300 and 5000
/// bytes in turn (so every boundary falls somewhere odd).
fn stream_check(bytes: &[u8]) -> Result<Header, Error> {
    let mut check = sealrun_format::package::StreamCheck::new();
    let mut rest = bytes;
    for step in [1usize, 7, 300, 5000].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(step.min(rest.len()));
        check.update(now)?;
        rest = later;
    }
    check.finish()
}

fn package_readers(ctx: &Ctx, label: &str, bytes: &[u8], problems: &mut Vec<String>) -> Option<Result<(), Error>> {
    // The streaming check must accept exactly what parse + verify_signature accept.
    let streamed = guarded(problems, label, "StreamCheck", || stream_check(bytes))?;
    let whole = Package::parse(bytes).and_then(|p| p.verify_signature().map(|()| p.header().as_bytes().to_vec()));
    match (&streamed, &whole) {
        (Ok(h), Ok(b)) if h.as_bytes() == b.as_slice() => {}
        (Err(_), Err(_)) => {}
        _ => problems.push(format!(
            "{label}: StreamCheck gave {:?} but parse + verify gave {:?}",
            streamed.as_ref().map(|_| ()),
            whole.as_ref().map(|_| ())
        )),
    }
    let prefix = guarded(problems, label, "Header::parse_prefix", || Header::parse_prefix(bytes))?;
    let pkg = match guarded(problems, label, "Package::parse", || Package::parse(bytes))? {
        Ok(pkg) => pkg,
        Err(e) => {
            // The header reader must agree with the package reader: the same
            // error, or a good header whose announced length is wrong.
            let agrees = match &prefix {
                Err(pe) => *pe == e,
                Ok(h) => {
                    matches!(e, Error::Truncated { .. } | Error::TrailingData { .. })
                        && h.package_len() != bytes.len() as u64
                }
            };
            if !agrees {
                problems.push(format!("{label}: Package::parse gave {e:?} but Header::parse_prefix gave {prefix:?}"));
            }
            return Some(Err(e));
        }
    };
    let verified = guarded(problems, label, "Package::verify_signature", || pkg.verify_signature())?;
    match &prefix {
        Ok(h)
            if h.as_bytes() == pkg.header().as_bytes()
                && h.manifest == *pkg.manifest()
                && h.package_len() == bytes.len() as u64 => {}
        other => problems.push(format!("{label}: Header::parse_prefix disagrees with Package::parse: {other:?}")),
    }
    let len = usize::try_from(pkg.manifest().plaintext_len).expect("length fits");
    let mut out = vec![SENTINEL; len];
    let decrypted =
        guarded(problems, label, "Package::decrypt_into", || pkg.decrypt_into(&ctx.keys.content, &mut out))?;
    match &decrypted {
        Ok(()) => {
            if verified.is_err() {
                problems.push(format!("{label}: decrypt_into accepted a package whose signature does not verify"));
            }
            if out != ctx.module {
                problems.push(format!("{label}: decrypt_into succeeded but the module differs"));
            }
        }
        Err(_) => {
            if !(out.iter().all(|&b| b == 0) || out.iter().all(|&b| b == SENTINEL)) {
                problems.push(format!("{label}: decrypt_into failed but left data in the buffer"));
            }
        }
    }
    // The parallel reader must agree with the sequential one exactly.
    let mut par = vec![SENTINEL; len];
    let parallel = guarded(problems, label, "Package::decrypt_into_parallel", || {
        pkg.decrypt_into_parallel(&ctx.keys.content, &mut par, 3)
    })?;
    if parallel != decrypted {
        problems.push(format!("{label}: decrypt_into_parallel gave {parallel:?}, decrypt_into {decrypted:?}"));
    }
    if parallel.is_ok() && par != ctx.module {
        problems.push(format!("{label}: decrypt_into_parallel succeeded but the module differs"));
    }
    if parallel.is_err() && !(par.iter().all(|&b| b == 0) || par.iter().all(|&b| b == SENTINEL)) {
        problems.push(format!("{label}: decrypt_into_parallel failed but left data in the buffer"));
    }
    Some(verified.and(decrypted))
}

/// License readers in order: `License::parse`, `verify_signature` with
/// vendor A's key, `check_covers` of `package_ok` at [`NOW`], `unwrap_key`
/// of `package_ok`'s key with `device.secret`. Returns the error of the
/// first failing step; every reader runs.
fn license_readers(ctx: &Ctx, label: &str, bytes: &[u8], problems: &mut Vec<String>) -> Option<Result<(), Error>> {
    let lic = match guarded(problems, label, "License::parse", || License::parse(bytes))? {
        Ok(lic) => lic,
        Err(e) => return Some(Err(e)),
    };
    if lic.to_bytes() != bytes {
        problems.push(format!("{label}: License::to_bytes differs from the input"));
    }
    let vendor = ctx.keys.vendor.public();
    let verified = guarded(problems, label, "License::verify_signature", || lic.verify_signature(&vendor))?;
    let covered = guarded(problems, label, "License::check_covers", || lic.check_covers(&ctx.manifest, NOW))?;
    let unwrapped =
        guarded(problems, label, "License::unwrap_key", || lic.unwrap_key(&ctx.manifest.key_id, &ctx.keys.device))?;
    let unwrapped = unwrapped.map(|key| {
        if key.as_bytes() != ctx.keys.content.as_bytes() {
            problems.push(format!("{label}: unwrap_key returned a key other than content.key"));
        }
    });
    Some(verified.and(covered).and(unwrapped))
}

/// The whole launcher chain for one package and one license: the package
/// parses and verifies, the license verifies against the package's vendor
/// key, covers the package at [`NOW`], unwraps its key with `device.secret`,
/// and the module decrypts. Stops at the first failure.
fn pair_readers(
    ctx: &Ctx,
    label: &str,
    package: &[u8],
    license: &[u8],
    problems: &mut Vec<String>,
) -> Option<Result<(), Error>> {
    macro_rules! step {
        ($name:expr, $call:expr) => {
            match guarded(problems, label, $name, || $call)? {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            }
        };
    }
    let pkg = step!("Package::parse", Package::parse(package));
    step!("Package::verify_signature", pkg.verify_signature());
    let m = pkg.manifest();
    let lic = step!("License::parse", License::parse(license));
    step!("License::verify_signature", lic.verify_signature(&m.vendor_key));
    step!("License::check_covers", lic.check_covers(m, NOW));
    let key = step!("License::unwrap_key", lic.unwrap_key(&m.key_id, &ctx.keys.device));
    let mut out = vec![SENTINEL; usize::try_from(m.plaintext_len).expect("length fits")];
    step!("Package::decrypt_into", pkg.decrypt_into(&key, &mut out));
    if out != ctx.module {
        problems.push(format!("{label}: the decrypted module differs"));
    }
    Some(Ok(()))
}

fn assert_no_problems(problems: &[String]) {
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn all_vectors_through_every_reader() {
    let ctx = Ctx::load();
    let expected = read_table("EXPECTED", 2);
    let mut problems = Vec::new();

    // Every vector file is listed, and every listed file exists.
    let listed: BTreeSet<String> = expected.iter().map(|r| r[0].clone()).collect();
    assert_eq!(listed.len(), expected.len(), "EXPECTED lists a file twice");
    let present: BTreeSet<String> = fs::read_dir(vectors_dir())
        .expect("vectors dir")
        .map(|e| e.expect("dir entry").file_name().into_string().expect("UTF-8 name"))
        .filter(|n| !["keys", "README.md", "EXPECTED", "PAIRS"].contains(&n.as_str()))
        .collect();
    for n in present.difference(&listed) {
        problems.push(format!("{n} is in tests/vectors/ but not in EXPECTED"));
    }
    for n in listed.difference(&present) {
        problems.push(format!("{n} is in EXPECTED but not in tests/vectors/"));
    }

    let mut counts = [0usize; 2];
    for row in &expected {
        let (file, want) = (&row[0], &row[1]);
        let bytes = read_vector(file);
        let (got, artifact) = if file.ends_with(".sealed") {
            counts[0] += 1;
            (package_readers(&ctx, file, &bytes, &mut problems), Artifact::Package)
        } else if file.ends_with(".license") {
            counts[1] += 1;
            (license_readers(&ctx, file, &bytes, &mut problems), Artifact::License)
        } else {
            problems.push(format!("{file}: neither .sealed nor .license"));
            continue;
        };
        let Some(got) = got else { continue };
        if outcome(&got) != want {
            problems.push(format!("{file}: expected {want}, got {got:?}"));
        }
        if let Some(a) = got.as_ref().err().and_then(error_artifact)
            && a != artifact
        {
            problems.push(format!("{file}: the error names the {a}, not the {artifact}"));
        }
    }
    eprintln!("{} vectors checked: {} packages, {} licenses", expected.len(), counts[0], counts[1]);
    assert_no_problems(&problems);
}

#[test]
fn pairs_through_the_whole_chain() {
    let ctx = Ctx::load();
    let pairs = read_table("PAIRS", 3);
    let mut problems = Vec::new();
    for row in &pairs {
        let (package, license, want) = (&row[0], &row[1], &row[2]);
        let label = format!("{package} + {license}");
        let got = pair_readers(&ctx, &label, &read_vector(package), &read_vector(license), &mut problems);
        let Some(got) = got else { continue };
        if outcome(&got) != want {
            problems.push(format!("{label}: expected {want}, got {got:?}"));
        }
    }
    eprintln!("{} pairs checked", pairs.len());
    assert_no_problems(&problems);
}

/// The files the flip and truncation tests mutate.
const MUTATED: &[&str] = &["package_ok.sealed", "license_ok.license", "license_certified_issuer_ok.license"];

/// The readers that apply to the vector `name`.
fn readers_for(
    ctx: &Ctx,
    name: &str,
    label: &str,
    bytes: &[u8],
    problems: &mut Vec<String>,
) -> Option<Result<(), Error>> {
    if name.ends_with(".sealed") {
        package_readers(ctx, label, bytes, problems)
    } else {
        license_readers(ctx, label, bytes, problems)
    }
}

/// Flips one bit at a time in every byte of the [`MUTATED`] files (bit
/// `offset % 8`, or each of the eight with `all_bits`) and checks that no
/// reader accepts the result or panics. Returns the number of variants.
fn check_flips(all_bits: bool) -> usize {
    let ctx = Ctx::load();
    let mut problems = Vec::new();
    let mut count = 0;
    for name in MUTATED {
        let good = read_vector(name);
        for at in 0..good.len() {
            let bits = if all_bits { 0..8 } else { at % 8..at % 8 + 1 };
            for bit in bits {
                let mut bad = good.clone();
                bad[at] ^= 1 << bit;
                let label = format!("{name} with bit {bit} of byte {at} flipped");
                if let Some(Ok(())) = readers_for(&ctx, name, &label, &bad, &mut problems) {
                    problems.push(format!("{label}: accepted"));
                }
                count += 1;
            }
        }
    }
    assert_no_problems(&problems);
    count
}

#[test]
fn every_single_byte_flip_of_package_ok_is_refused() {
    let count = check_flips(false);
    eprintln!("{count} single-bit flips checked");
}

#[test]
#[ignore = "eight times the flips of the test above; about two minutes"]
fn every_bit_flip_is_refused() {
    let count = check_flips(true);
    eprintln!("{count} single-bit flips checked");
}

#[test]
fn every_truncation_is_refused() {
    let ctx = Ctx::load();
    let mut problems = Vec::new();
    let mut count = 0;
    for name in MUTATED {
        let good = read_vector(name);
        for len in 0..good.len() {
            let label = format!("{name} cut to {len} bytes");
            let bad = &good[..len];
            match readers_for(&ctx, name, &label, bad, &mut problems) {
                None => {}
                Some(Ok(())) => problems.push(format!("{label}: accepted")),
                // Below the magic length the readers say "not a Sealrun
                // file"; from there on, "truncated".
                Some(Err(e)) => {
                    let want = if len < 8 { "not_sealrun" } else { "truncated" };
                    if outcome_name(&e) != want {
                        problems.push(format!("{label}: expected {want}, got {e:?}"));
                    }
                }
            }
            count += 1;
        }
    }
    eprintln!("{count} truncations checked");
    assert_no_problems(&problems);
}

// ---------------------------------------------------------------------------
// The generator.

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn spec() -> PackageSpec {
    PackageSpec {
        product: PRODUCT.into(),
        release: RELEASE,
        display_name: "Sealrun Test Vectors".into(),
        kind: sealrun_format::package::AppKind::Console,
        capabilities: vec![Capability::Env("LANG".into()), Capability::Dir { writable: false, guest: "/data".into() }],
        chunk_size_log2: CHUNK_LOG2,
        plaintext_len: MODULE_LEN as u64,
        icon: None,
    }
}

fn terms(device: &DeviceSecret, machine_id: &[u8]) -> Terms {
    Terms {
        license_id: [0; 16],
        vendor_key: VendorPublicKey([0; 32]),
        product: PRODUCT.into(),
        releases: ReleaseRange { min: Release::new(1, 0, 0), max: Some(Release::new(1, 9, 9)) },
        licensee: LICENSEE.into(),
        issued_at: Y2025,
        not_before: Y2025,
        expires: Some(Y2030),
        features: vec![Feature::named("pro"), Feature::named("export")],
        meters: vec![],
        binding: Binding::Device(device.device_code(machine_id)),
    }
}

fn issue(terms: Terms, keys: &[(Release, &ContentKey)], signer: &LicenseSigner<'_>) -> Vec<u8> {
    license::issue(terms, keys, signer, &mut rng()).expect("license issues")
}

fn flipped(bytes: &[u8], at: usize, mask: u8) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at] ^= mask;
    v
}

fn with(bytes: &[u8], at: usize, new: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at..at + new.len()].copy_from_slice(new);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Byte offsets of the manifest fields in a package header (format v1,
/// see `package.rs`), checked against the parsed manifest.
struct ManifestAt {
    product: usize,
    display_name: usize,
    kind: usize,
    cipher_suite: usize,
    chunk_size: usize,
    nonce_prefix: usize,
    capabilities: usize,
}

impl ManifestAt {
    fn of(h: &Header) -> ManifestAt {
        let b = h.as_bytes();
        let m = &h.manifest;
        let product = PREFIX_LEN + 1;
        assert_eq!(&b[product..product + m.product.len()], m.product.as_bytes());
        let display = product + m.product.len() + 12 + 2;
        assert_eq!(&b[display..display + m.display_name.len()], m.display_name.as_bytes());
        let kind = display + m.display_name.len();
        let vendor = kind + 1;
        assert_eq!(b[vendor..vendor + 32], m.vendor_key.0);
        let cipher_suite = vendor + 32;
        let chunk_size = cipher_suite + 1;
        assert_eq!(b[chunk_size], m.chunk_size_log2);
        let plaintext_len = chunk_size + 1;
        assert_eq!(b[plaintext_len..plaintext_len + 8], m.plaintext_len.to_be_bytes());
        let nonce_prefix = plaintext_len + 8;
        assert_eq!(b[nonce_prefix..nonce_prefix + 7], m.nonce_prefix);
        let key_id = nonce_prefix + 7;
        assert_eq!(b[key_id..key_id + 32], m.key_id.0);
        let capabilities = key_id + 32;
        assert_eq!(b[capabilities] as usize, m.capabilities.len());
        ManifestAt { product, display_name: display, kind, cipher_suite, chunk_size, nonce_prefix, capabilities }
    }
}

/// A package cut into its header, chunks (each with its tag) and signature.
struct Parts {
    header: Header,
    chunks: Vec<Vec<u8>>,
    signature: Vec<u8>,
}

impl Parts {
    fn of(package: &[u8]) -> Parts {
        let pkg = Package::parse(package).expect("package parses");
        let header = pkg.header().clone();
        let layout = header.manifest.layout();
        let body = &package[header.as_bytes().len()..package.len() - SIG_LEN];
        let chunks: Vec<Vec<u8>> = (0..layout.chunk_count())
            .map(|i| {
                let start = layout.ciphertext_offset(i) as usize;
                let len = layout.plaintext_chunk_len(i) as usize + TAG_LEN;
                body[start..start + len].to_vec()
            })
            .collect();
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), body.len());
        Parts { header, chunks, signature: package[package.len() - SIG_LEN..].to_vec() }
    }

    fn join(&self) -> Vec<u8> {
        cat(&[self.header.as_bytes(), &self.chunks.concat(), &self.signature])
    }
}

/// The package signature by `seed` over `header` bytes and `chunks`,
/// computed here independently of the crate (format v1, `package.rs`).
fn package_signature(seed: &[u8; 32], header: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut digests = Sha256::new_with_prefix(b"sealrun/v1/chunks\0");
    for c in chunks {
        digests.update(Sha256::digest(c));
    }
    let msg = cat(&[b"sealrun/v1/package\0", header, &digests.finalize()]);
    SigningKey::from_bytes(seed).sign(&msg).to_bytes().to_vec()
}

/// A package with `chunks` under `header`, signed by `seed`.
fn signed_package(seed: &[u8; 32], header: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
    cat(&[header, &chunks.concat(), &package_signature(seed, header, chunks)])
}

/// A header with the manifest replaced by `manifest` (length fixed up).
fn header_with_manifest(manifest: &[u8]) -> Vec<u8> {
    cat(&[b"SEALPKG\x1a", &1u16.to_be_bytes(), &(manifest.len() as u32).to_be_bytes(), manifest])
}

/// Encrypts `module` under raw `header` bytes (which need not be a header
/// the crate would write) with `key`, sealing the chunks of `layout` in
/// order. The last-chunk flag follows `layout`, not the header.
fn encrypt_chunks(
    key: &ContentKey,
    header: &[u8],
    nonce_prefix: [u8; 7],
    layout: ChunkLayout,
    module: &[u8],
    count: u64,
) -> Vec<Vec<u8>> {
    let aad: [u8; 32] = Sha256::digest(header).into();
    let mut sealer = StreamSealer::new(key, nonce_prefix, layout, aad);
    (0..count)
        .map(|i| {
            let start = (i * layout.chunk_size()) as usize;
            let len = layout.plaintext_chunk_len(i) as usize;
            let mut buf = module[start..start + len].to_vec();
            sealer.seal_next(&mut buf).expect("chunk seals");
            buf
        })
        .collect()
}

/// Byte offsets of the fields of a license (format v1, see `license.rs`),
/// checked against the parsed license. Only for licenses with one key and
/// the vendor as issuer.
struct LicenseAt {
    license_id: usize,
    product: usize,
    licensee: usize,
    expires_flag: usize,
    expires: usize,
    features: usize,
    wrapped: usize,
}

impl LicenseAt {
    fn of(bytes: &[u8]) -> LicenseAt {
        let lic = License::parse(bytes).expect("license parses");
        let t = &lic.terms;
        assert_eq!(lic.keys.len(), 1);
        let license_id = PREFIX_LEN;
        assert_eq!(bytes[license_id..license_id + 16], t.license_id);
        let product = license_id + 16 + 32 + 1;
        assert_eq!(&bytes[product..product + t.product.len()], t.product.as_bytes());
        let mut at = product + t.product.len() + 12 + 1;
        if t.releases.max.is_some() {
            at += 12;
        }
        let licensee = at + 2;
        assert_eq!(&bytes[licensee..licensee + t.licensee.len()], t.licensee.as_bytes());
        let expires_flag = licensee + t.licensee.len() + 8 + 8;
        let expires = expires_flag + 1;
        assert_eq!(bytes[expires..expires + 8], t.expires.expect("expires").to_be_bytes());
        let features = expires + 8;
        let binding = features + 1 + t.features.iter().map(|f| 1 + f.name.len()).sum::<usize>();
        let key_entry = binding + 1 + 6 + 32 + 1;
        assert_eq!(bytes[key_entry + 12..key_entry + 44], lic.keys[0].key_id.0);
        let wrapped = key_entry + 12 + 32 + 32;
        assert_eq!(wrapped + 48 + 1 + SIG_LEN, bytes.len(), "issuer must be the vendor");
        LicenseAt { license_id, product, licensee, expires_flag, expires, features, wrapped }
    }
}

/// `license` with its signature replaced by one from `seed` over its bytes.
fn resigned_license(seed: &[u8; 32], license: &[u8]) -> Vec<u8> {
    let signed = &license[..license.len() - SIG_LEN];
    let msg = cat(&[b"sealrun/v1/license\0", signed]);
    cat(&[signed, &SigningKey::from_bytes(seed).sign(&msg).to_bytes()])
}

/// One vector: its file name, its bytes and its expected outcome.
type Case = (String, Vec<u8>, &'static str);

fn package_cases(k: &Keys) -> Vec<Case> {
    let module = module();
    let ok = seal_to_vec(spec(), &module, &k.content, &k.vendor, &mut rng()).expect("seals");
    let parts = Parts::of(&ok);
    assert_eq!(parts.chunks.len(), 3);
    assert_eq!(parts.join(), ok);
    let h = parts.header.as_bytes().to_vec();
    let hl = h.len();
    let at = ManifestAt::of(&parts.header);
    let layout = parts.header.manifest.layout();
    let prefix = parts.header.manifest.nonce_prefix;
    let [c0, c1, c2] = [&parts.chunks[0], &parts.chunks[1], &parts.chunks[2]];
    let sig = &parts.signature;
    // Our independent signature must be the crate's (Ed25519 is deterministic).
    assert_eq!(
        &package_signature(&k.vendor_seed, &h, &parts.chunks),
        sig,
        "package signature recomputed here differs from the crate's"
    );

    // The manifest with its capabilities in the wrong order: the sealer
    // sorts them (Dir /data before Env LANG), so swap the two entries.
    let manifest = &h[PREFIX_LEN..];
    let caps = at.capabilities - PREFIX_LEN;
    let sorted_caps: &[u8] = b"\x02\x01\x00\x05/data\x03\x00\x04LANG";
    assert_eq!(&manifest[caps..], sorted_caps);
    let unsorted = header_with_manifest(&cat(&[&manifest[..caps], b"\x02\x03\x00\x04LANG\x01\x00\x05/data"]));
    let duplicated =
        header_with_manifest(&cat(&[&manifest[..caps], b"\x03\x01\x00\x05/data\x01\x00\x05/data\x03\x00\x04LANG"]));
    let same_dir_twice =
        header_with_manifest(&cat(&[&manifest[..caps], b"\x03\x01\x00\x05/data\x02\x00\x05/data\x03\x00\x04LANG"]));
    let trailing_slash = header_with_manifest(&cat(&[&manifest[..caps], b"\x02\x01\x00\x06/data/\x03\x00\x04LANG"]));
    // Network requests (kinds 4 to 7), in order after the directory and
    // the variable; then each kind with a value it does not take.
    let capability = |tag: u8, value: &str| cat(&[&[tag], &(value.len() as u16).to_be_bytes(), value.as_bytes()]);
    let with_caps = |caps_: &[(u8, &str)]| {
        let entries: Vec<Vec<u8>> = caps_.iter().map(|(t, v)| capability(*t, v)).collect();
        let mut body = vec![caps_.len() as u8];
        entries.iter().for_each(|e| body.extend_from_slice(e));
        header_with_manifest(&cat(&[&manifest[..caps], &body]))
    };
    let base: [(u8, &str); 2] = [(1, "/data"), (3, "LANG")];
    let network =
        with_caps(&[base[0], base[1], (4, "api.example.com:443"), (5, "127.0.0.1:8080"), (6, "dns"), (7, "udp")]);
    let connect_uppercase = with_caps(&[base[0], base[1], (4, "API.example.com:443")]);
    let connect_no_port = with_caps(&[base[0], base[1], (4, "api.example.com")]);
    let listen_name = with_caps(&[base[0], base[1], (5, "localhost:8080")]);
    let dns_with_value = with_caps(&[base[0], base[1], (6, "udp")]);
    // "Sealrun Test Vectors" -> "Sealrun \u{202E}t Vectors" (same length).
    let display = at.display_name + "Sealrun ".len();
    assert_eq!(&h[display..display + 3], b"Tes");
    let bidi_name = with(&h, display, "\u{202E}".as_bytes());
    let reseal = |header: &[u8]| {
        let chunks = encrypt_chunks(&k.content, header, prefix, layout, &module, 3);
        signed_package(&k.vendor_seed, header, &chunks)
    };

    // A header for 8192 bytes (two chunks) whose chunks were sealed as the
    // first two of three: only the last-chunk flag tells them apart.
    let short_header = with(&h, at.chunk_size + 1, &8192u64.to_be_bytes());
    let short_chunks = encrypt_chunks(&k.content, &short_header, prefix, layout, &module, 2);
    let short_layout = ChunkLayout::new(CHUNK_LOG2, 8192);
    let short_proper = encrypt_chunks(&k.content, &short_header, prefix, short_layout, &module, 2);
    assert_ne!(short_chunks[1], short_proper[1], "last-chunk flag has no effect");

    // Chunks encrypted with other-content.key under a header that names
    // content.key: the key id check passes, the decryption must not.
    let forged_key_chunks = encrypt_chunks(&k.other_content, &h, prefix, layout, &module, 3);

    let manifest_len = |n: u32| with(&ok, 10, &n.to_be_bytes());
    let mid_sig = hl + c0.len() + c1.len() + c2.len() + SIG_LEN / 2;
    let name = |n: &str| format!("{n}.sealed");
    vec![
        (name("package_ok"), ok.clone(), "ok"),
        (name("package_bad_magic"), flipped(&ok, 0, 0x20), "not_sealrun"),
        (name("package_wasm_module"), cat(&[b"\0asm\x01\0\0\0", &module]), "not_sealrun"),
        (name("package_empty_file"), Vec::new(), "not_sealrun"),
        (name("package_magic_only"), h[..8].to_vec(), "truncated"),
        (name("package_version_2"), with(&ok, 8, &[0, 2]), "unsupported_version"),
        (name("package_version_0"), with(&ok, 8, &[0, 0]), "unsupported_version"),
        (name("package_header_only"), h.clone(), "truncated"),
        (name("package_truncated_mid_chunk"), ok[..hl + c0.len() + c1.len() / 2].to_vec(), "truncated"),
        (name("package_truncated_at_chunk_boundary_1"), ok[..hl + c0.len()].to_vec(), "truncated"),
        (name("package_truncated_at_chunk_boundary_2"), ok[..hl + c0.len() + c1.len()].to_vec(), "truncated"),
        (name("package_truncated_in_signature"), ok[..mid_sig].to_vec(), "truncated"),
        (name("package_trailing_byte"), cat(&[&ok, b"\0"]), "trailing_data"),
        (
            name("package_manifest_flip_product"),
            // "com.example.vectors" -> "com.dxample.vectors": still a valid id.
            flipped(&ok, at.product + 4, 0x01),
            "bad_signature",
        ),
        (name("package_manifest_len_too_big"), manifest_len(u32::MAX), "malformed"),
        // A manifest whose fields end before or after its declared length.
        (name("package_manifest_len_plus_one"), manifest_len((hl - PREFIX_LEN + 1) as u32), "malformed"),
        (name("package_manifest_len_minus_one"), manifest_len((hl - PREFIX_LEN - 1) as u32), "malformed"),
        (name("package_manifest_product_uppercase"), flipped(&ok, at.product, 0x20), "malformed"),
        // Kinds 2 and 3 are components (command, HTTP proxy): a byte
        // changed without resealing breaks the signature, resealed it is a
        // good package; 4 is no kind at all.
        (name("package_manifest_app_kind_2"), with(&ok, at.kind, &[2]), "bad_signature"),
        (name("package_component_command_ok"), reseal(&with(&h, at.kind, &[2])), "ok"),
        (name("package_component_http_proxy_ok"), reseal(&with(&h, at.kind, &[3])), "ok"),
        (name("package_manifest_app_kind_4"), reseal(&with(&h, at.kind, &[4])), "malformed"),
        (name("package_manifest_cipher_suite_2"), with(&ok, at.cipher_suite, &[2]), "malformed"),
        (name("package_manifest_chunk_size_2k"), with(&ok, at.chunk_size, &[11]), "malformed"),
        (name("package_manifest_capability_kind_9"), with(&ok, at.capabilities + 1, &[9]), "malformed"),
        (name("package_manifest_noncanonical_capabilities"), reseal(&unsorted), "malformed"),
        (name("package_manifest_duplicate_capability"), reseal(&duplicated), "malformed"),
        (name("package_manifest_same_dir_twice"), reseal(&same_dir_twice), "malformed"),
        (name("package_manifest_dir_trailing_slash"), reseal(&trailing_slash), "malformed"),
        (name("package_network_capabilities_ok"), reseal(&network), "ok"),
        (name("package_manifest_connect_uppercase"), reseal(&connect_uppercase), "malformed"),
        (name("package_manifest_connect_no_port"), reseal(&connect_no_port), "malformed"),
        (name("package_manifest_listen_name"), reseal(&listen_name), "malformed"),
        (name("package_manifest_dns_with_value"), reseal(&dns_with_value), "malformed"),
        (name("package_manifest_bidi_display_name"), reseal(&bidi_name), "malformed"),
        (name("package_chunk_flip_0"), flipped(&ok, hl + 100, 0x01), "bad_signature"),
        (name("package_chunk_flip_last"), flipped(&ok, hl + c0.len() + c1.len() + 100, 0x80), "bad_signature"),
        (name("package_tag_flip"), flipped(&ok, hl + c0.len() - 3, 0x04), "bad_signature"),
        (name("package_signature_flip"), flipped(&ok, ok.len() - 20, 0x10), "bad_signature"),
        (name("package_chunks_swapped"), cat(&[&h, c1, c0, c2, sig]), "bad_signature"),
        (name("package_chunk_duplicated"), cat(&[&h, c0, c0, c2, sig]), "bad_signature"),
        (name("package_chunk_dropped"), cat(&[&h, c0, c2, sig]), "truncated"),
        (name("package_nonce_prefix_flip"), flipped(&ok, at.nonce_prefix, 0x01), "bad_signature"),
        // Validly signed by vendor A, so only the STREAM layer can refuse them.
        (
            name("package_chunks_swapped_resigned"),
            signed_package(&k.vendor_seed, &h, &[c1.clone(), c0.clone(), c2.clone()]),
            "decryption_failed",
        ),
        (
            name("package_chunk_flip_0_resigned"),
            signed_package(&k.vendor_seed, &h, &[flipped(c0, 100, 0x01), c1.clone(), c2.clone()]),
            "decryption_failed",
        ),
        (
            name("package_chunk_dropped_resigned"),
            // Chunks 0 and 1 of the full stream under a header for 8192 bytes.
            signed_package(&k.vendor_seed, &short_header, &[c0.clone(), c1.clone()]),
            "decryption_failed",
        ),
        (
            name("package_truncated_at_chunk_boundary_resigned"),
            signed_package(&k.vendor_seed, &short_header, &short_chunks),
            "decryption_failed",
        ),
        (
            name("package_key_id_forged_resigned"),
            signed_package(&k.vendor_seed, &h, &forged_key_chunks),
            "decryption_failed",
        ),
        // Sealed with other-content.key: the key id does not match.
        (
            name("package_other_content_key"),
            seal_to_vec(spec(), &module, &k.other_content, &k.vendor, &mut rng()).expect("seals"),
            "unwrap_failed",
        ),
        (
            name("package_other_vendor_resigned"),
            seal_to_vec(spec(), &module, &k.content, &k.other_vendor, &mut rng()).expect("seals"),
            "ok",
        ),
        (name("package_license_bytes"), b"SEALLIC\x1a\x00\x01".to_vec(), "not_sealrun"),
    ]
}

fn license_cases(k: &Keys) -> Vec<Case> {
    let a = LicenseSigner::Vendor(&k.vendor);
    let key_a = [(RELEASE, &k.content)];
    let base = || terms(&k.device, &k.machine_id);
    let ok = issue(base(), &key_a, &a);
    let at = LicenseAt::of(&ok);
    let len = ok.len();
    assert_eq!(resigned_license(&k.vendor_seed, &ok), ok, "license signature recomputed here differs from the crate's");

    // The features in the wrong order ("export" < "pro" once sorted).
    let sorted_features: &[u8] = b"\x02\x06export\x03pro";
    assert_eq!(&ok[at.features..at.features + sorted_features.len()], sorted_features);
    let unsorted_features = resigned_license(&k.vendor_seed, &with(&ok, at.features, b"\x02\x03pro\x06export"));

    // The wrapped key of another license for the same device and key: only
    // the license id in the wrap's associated data differs.
    let other_ok = issue(base(), &key_a, &a);
    let entry = at.wrapped - 32..at.wrapped + 48;
    let foreign_wrap = resigned_license(&k.vendor_seed, &with(&ok, entry.start, &other_ok[entry]));

    let certified = |not_after| LicenseSigner::Issuer {
        key: &k.other_vendor,
        cert: certify_issuer(&k.vendor, k.other_vendor.public(), not_after),
        vendor: k.vendor.public(),
    };
    let forged = LicenseSigner::Issuer {
        key: &k.other_vendor,
        cert: certify_issuer(&k.other_vendor, k.other_vendor.public(), Y2030),
        vendor: k.vendor.public(),
    };

    let name = |n: &str| format!("{n}.license");
    vec![
        (name("license_ok"), ok.clone(), "ok"),
        (name("license_bad_magic"), flipped(&ok, 3, 0x01), "not_sealrun"),
        (name("license_version_2"), with(&ok, 8, &[0, 2]), "malformed"),
        (name("license_version_3"), with(&ok, 8, &[0, 3]), "unsupported_version"),
        (name("license_truncated"), ok[..len / 2].to_vec(), "truncated"),
        (name("license_truncated_in_signature"), ok[..len - 10].to_vec(), "truncated"),
        (name("license_trailing_byte"), cat(&[&ok, b"\0"]), "trailing_data"),
        (name("license_body_len_too_big"), with(&ok, 10, &u32::MAX.to_be_bytes()), "malformed"),
        (name("license_flip_license_id"), flipped(&ok, at.license_id + 5, 0x01), "bad_signature"),
        (
            // "com.example.vectors" -> "com.dxample.vectors".
            name("license_flip_product"),
            flipped(&ok, at.product + 4, 0x01),
            "bad_signature",
        ),
        (
            // "Test Licensee GmbH" -> "test Licensee GmbH".
            name("license_flip_licensee"),
            flipped(&ok, at.licensee, 0x20),
            "bad_signature",
        ),
        (
            // One second earlier or later: still after not_before.
            name("license_flip_expiry"),
            flipped(&ok, at.expires + 7, 0x01),
            "bad_signature",
        ),
        (name("license_flip_wrapped_key"), flipped(&ok, at.wrapped + 5, 0x01), "bad_signature"),
        (name("license_signature_flip"), flipped(&ok, len - 40, 0x02), "bad_signature"),
        (name("license_expiry_flag_2"), with(&ok, at.expires_flag, &[2]), "malformed"),
        (name("license_expiry_not_after_start"), with(&ok, at.expires, &Y2025.to_be_bytes()), "malformed"),
        (name("license_features_unsorted_resigned"), unsorted_features, "malformed"),
        (
            name("license_wrapped_key_flip_resigned"),
            resigned_license(&k.vendor_seed, &flipped(&ok, at.wrapped + 5, 0x01)),
            "unwrap_failed",
        ),
        (name("license_wrapped_key_from_other_license_resigned"), foreign_wrap, "unwrap_failed"),
        (name("license_other_vendor"), issue(base(), &key_a, &LicenseSigner::Vendor(&k.other_vendor)), "other_vendor"),
        (
            // Names vendor A, signed by the other vendor.
            name("license_resigned_by_other_vendor"),
            resigned_license(&k.other_vendor_seed, &ok),
            "bad_signature",
        ),
        (name("license_certified_issuer_ok"), issue(base(), &key_a, &certified(Y2030)), "ok"),
        (
            // Issued (2025-01-01) after the certificate lapsed.
            name("license_certified_issuer_lapsed"),
            issue(base(), &key_a, &certified(Y2025 - 1)),
            "bad_signature",
        ),
        (name("license_forged_issuer_cert"), issue(base(), &key_a, &forged), "bad_signature"),
        (
            name("license_other_product"),
            issue(Terms { product: "com.example.other".into(), ..base() }, &key_a, &a),
            "wrong_product",
        ),
        (
            name("license_other_release"),
            issue(
                Terms {
                    releases: ReleaseRange { min: Release::new(2, 0, 0), max: Some(Release::new(2, 9, 9)) },
                    ..base()
                },
                &[(Release::new(2, 0, 0), &k.content)],
                &a,
            ),
            "release_not_licensed",
        ),
        (name("license_other_content_key"), issue(base(), &[(RELEASE, &k.other_content)], &a), "no_key_for_package"),
        (
            // content.key, but filed under release 1.5.0 (inside the range).
            name("license_key_for_other_release"),
            issue(base(), &[(Release::new(1, 5, 0), &k.content)], &a),
            "no_key_for_package",
        ),
        (
            name("license_expired"),
            issue(Terms { issued_at: Y2000, not_before: Y2000, expires: Some(Y2001), ..base() }, &key_a, &a),
            "expired",
        ),
        (
            name("license_not_yet_valid"),
            issue(Terms { not_before: Y2099, expires: Some(Y2100), ..base() }, &key_a, &a),
            "not_yet_valid",
        ),
        (name("license_other_device"), issue(terms(&k.other_device, &k.machine_id), &key_a, &a), "unwrap_failed"),
        (name("license_other_machine"), issue(terms(&k.device, &k.other_machine_id), &key_a, &a), "ok"),
        (name("license_package_bytes"), b"SEALPKG\x1a\x00\x01".to_vec(), "not_sealrun"),
    ]
}

/// Comments written above a case in `EXPECTED`.
const NOTES: &[(&str, &str)] = &[
    (
        "package_other_vendor_resigned.sealed",
        "Sealed and signed by other-vendor: fine on its own; PAIRS checks that\n\
         vendor A's licenses do not unlock it.",
    ),
    (
        "license_version_2.license",
        "A version 1 body labelled version 2: once unsupported, now read as\n\
         version 2, whose feature entries it does not match (terms-vectors/\n\
         holds the version 2 cases).",
    ),
    (
        "license_other_machine.license",
        "device.secret's key with other-machine-id's tag. The format crate does\n\
         not compare machine tags (the launcher does, in launch.rs\n\
         check_license), so for these readers the license is ok.",
    ),
    (
        "package_chunks_swapped_resigned.sealed",
        "The *_resigned packages carry a valid vendor A signature over tampered\n\
         content, so only the STREAM layer (or the manifest checks) can refuse them.",
    ),
];

/// Package/license pairs for [`pairs_through_the_whole_chain`].
const PAIRS: &[(&str, &str, &str)] = &[
    ("package_ok", "license_ok", "ok"),
    ("package_ok", "license_certified_issuer_ok", "ok"),
    ("package_ok", "license_other_vendor", "other_vendor"),
    ("package_ok", "license_resigned_by_other_vendor", "bad_signature"),
    ("package_ok", "license_other_product", "wrong_product"),
    ("package_ok", "license_other_content_key", "no_key_for_package"),
    ("package_ok", "license_other_device", "unwrap_failed"),
    ("package_ok", "license_key_for_other_release", "no_key_for_package"),
    ("package_ok", "license_other_machine", "ok"),
    ("package_other_vendor_resigned", "license_ok", "other_vendor"),
    ("package_other_vendor_resigned", "license_certified_issuer_ok", "other_vendor"),
    ("package_other_vendor_resigned", "license_other_vendor", "ok"),
    ("package_other_content_key", "license_ok", "no_key_for_package"),
    ("package_other_content_key", "license_other_content_key", "ok"),
    ("package_key_id_forged_resigned", "license_ok", "decryption_failed"),
    ("package_chunks_swapped_resigned", "license_ok", "decryption_failed"),
    ("package_truncated_at_chunk_boundary_resigned", "license_ok", "decryption_failed"),
    ("package_chunks_swapped", "license_ok", "bad_signature"),
];

#[test]
#[ignore = "rewrites tests/vectors/; run by hand after a format change"]
fn regenerate_vectors() {
    let k = Keys::load();
    let mut cases = package_cases(&k);
    cases.extend(license_cases(&k));

    let dir = vectors_dir();
    let mut expected = String::from(
        "# Expected outcome of every vector file: FILE<TAB>OUTCOME, where OUTCOME\n\
         # is `ok` or the error kind of the first reader that refuses the file.\n\
         # Written by `regenerate_vectors` in tests/vectors.rs; see README.md.\n",
    );
    let mut names = BTreeSet::new();
    for (name, bytes, want) in &cases {
        assert!(names.insert(name.clone()), "{name} twice");
        assert!(OUTCOMES.contains(want), "{name}: unknown outcome {want}");
        fs::write(dir.join(name), bytes).expect("write vector");
        for (_, note) in NOTES.iter().filter(|(n, _)| n == name) {
            for line in note.lines() {
                expected.push_str(&format!("# {line}\n"));
            }
        }
        expected.push_str(&format!("{name}\t{want}\n"));
    }
    fs::write(dir.join("EXPECTED"), expected).expect("write EXPECTED");

    let mut pairs = String::from(
        "# Package and license pairs run through the whole launcher chain:\n\
         # PACKAGE<TAB>LICENSE<TAB>OUTCOME. Written by `regenerate_vectors`.\n",
    );
    for (p, l, want) in PAIRS {
        let (p, l) = (format!("{p}.sealed"), format!("{l}.license"));
        assert!(names.contains(&p) && names.contains(&l), "{p} + {l}");
        pairs.push_str(&format!("{p}\t{l}\t{want}\n"));
    }
    fs::write(dir.join("PAIRS"), pairs).expect("write PAIRS");
    eprintln!("wrote {} vectors to {}", cases.len(), dir.display());
}
