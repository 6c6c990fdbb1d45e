//! Hardware keys (dongles): the dongle id and key, the attach record a
//! vendor writes onto a token, and licenses sealed to a dongle.
//!
//! The dongle key is an AES-256 key that lives inside a PKCS#11 token as a
//! sensitive, non-extractable object; the vendor keeps its own copy (in its
//! 0600 keystore, or sealed under the licensing server's master key) to issue
//! licenses. Everything a
//! token must decrypt is AES-256-GCM with a 96-bit nonce and a 128-bit tag,
//! the mechanism (`CKM_AES_GCM`) every current token offers. This crate
//! never talks to a token: it says what to decrypt ([`TokenDecrypt`]) and
//! checks what comes back.
//!
//! ```text
//! record:          magic "SEALDGR\x1a" | version u16 | body length u16 | body | signature (64)
//! sealed license:  magic "SEALDLC\x1a" | version u16 | dongle id (16) | product tag (16)
//!                  | nonce (12) | length u32 | AES-256-GCM(dongle key, license) (length bytes)
//! ```
//! The product tag lets a launcher tell which of its sealed licenses may be
//! for the package at hand without the token: it is a hash of the dongle id
//! and the product id, so it names no product to someone who does not
//! already know the product id.
//! ```text
//! ```
use core::fmt;
use core::str::FromStr;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::cursor::{Cursor, PutExt};
use crate::device::{DeviceCode, MACHINE_TAG_LEN};
use crate::issuer::{Issuer, LicenseSigner, decode_issuer, encode_issuer, verify_issued};
use crate::keys::{SIGNATURE_LEN, VendorPublicKey};
use crate::limits::{MAX_DONGLE_RECORD_BODY_LEN, MAX_LICENSE_FILE_LEN};
use crate::{Artifact, Error, Result, UnixTime};

/// Bytes of a dongle id.
pub const DONGLE_ID_LEN: usize = 16;
/// Bytes of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Magic bytes of a dongle record.
pub const DONGLE_RECORD_MAGIC: [u8; 8] = *b"SEALDGR\x1a";
/// The dongle record format version this build reads and writes.
pub const DONGLE_RECORD_VERSION: u16 = 1;
/// Magic bytes of a license sealed to a dongle.
pub const SEALED_LICENSE_MAGIC: [u8; 8] = *b"SEALDLC\x1a";
/// The sealed-license format version this build reads and writes.
pub const SEALED_LICENSE_VERSION: u16 = 1;
/// Bytes before a sealed license's ciphertext (all of them are its AAD).
pub const SEALED_LICENSE_HEADER_LEN: usize = 8 + 2 + DONGLE_ID_LEN + PRODUCT_TAG_LEN + NONCE_LEN + 4;
/// Bytes of a product tag.
pub const PRODUCT_TAG_LEN: usize = 16;

/// The product tag of `product` for licenses sealed to `dongle`.
pub fn product_tag(dongle: &DongleId, product: &str) -> [u8; PRODUCT_TAG_LEN] {
    use sha2::{Digest, Sha256};
    let d = Sha256::new_with_prefix(b"sealrun/v1/dongle-product-tag\0")
        .chain_update(dongle.0)
        .chain_update(product.as_bytes())
        .finalize();
    let mut tag = [0u8; PRODUCT_TAG_LEN];
    tag.copy_from_slice(&d[..PRODUCT_TAG_LEN]);
    tag
}
/// Largest sealed license file: the header and the largest license, encrypted.
pub const MAX_SEALED_LICENSE_FILE_LEN: u64 = SEALED_LICENSE_HEADER_LEN as u64 + MAX_LICENSE_FILE_LEN + TAG_LEN as u64;

/// A dongle's id: random, chosen at provisioning, written on the token and
/// named by every license for it. Shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DongleId(pub [u8; DONGLE_ID_LEN]);

impl DongleId {
    /// A fresh random id.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut id = [0u8; DONGLE_ID_LEN];
        rng.fill_bytes(&mut id);
        DongleId(id)
    }
}

impl fmt::Display for DongleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::hexid::write_hex(f, &self.0)
    }
}

impl fmt::Debug for DongleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DongleId({self})")
    }
}

impl FromStr for DongleId {
    type Err = Error;

    /// 32 hex digits; case does not matter, dashes and spaces are ignored.
    fn from_str(s: &str) -> Result<Self> {
        let digits: Vec<u8> = s.bytes().filter(|b| !matches!(b, b'-' | b' ')).collect();
        crate::hexid::parse_hex(&digits)
            .map(DongleId)
            .ok_or(Error::InvalidInput { field: "dongle id", problem: "is not 32 hex digits" })
    }
}

/// A dongle's AES-256 key. Zeroized on drop; never printed.
pub struct DongleKey(Zeroizing<[u8; 32]>);

impl DongleKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(k.as_mut());
        DongleKey(k)
    }

    /// The key from its bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        DongleKey(Zeroizing::new(*bytes))
    }

    /// The raw bytes, to import into a token or store encrypted.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Decrypts what a token would, in software (the vendor side and tests;
    /// the launcher always asks the token).
    pub fn decrypt(&self, request: &TokenDecrypt) -> Result<Zeroizing<Vec<u8>>> {
        let cipher = Aes256Gcm::new_from_slice(self.0.as_slice()).map_err(|_| Error::UnwrapFailed)?;
        cipher
            .decrypt(&Nonce::from(request.nonce), Payload { msg: &request.ciphertext, aad: &request.aad })
            .map(Zeroizing::new)
            .map_err(|_| Error::UnwrapFailed)
    }

    /// Encrypts `plaintext` under this key with a fresh nonce.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8], rng: &mut impl CryptoRng) -> ([u8; NONCE_LEN], Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        (nonce, self.encrypt(&nonce, aad, plaintext))
    }

    fn encrypt(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new_from_slice(self.0.as_slice()).expect("a 32-byte key is valid for AES-256");
        cipher
            .encrypt(&Nonce::from(*nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM encrypts any input below 64 GiB")
    }
}

impl fmt::Debug for DongleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DongleKey(..)")
    }
}

/// One AES-256-GCM decryption for the token to perform with the dongle key:
/// nonce, additional data, and ciphertext with its tag appended (the layout
/// `CKM_AES_GCM` takes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDecrypt {
    /// The 96-bit nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Additional authenticated data.
    pub aad: Vec<u8>,
    /// Ciphertext followed by the 128-bit tag.
    pub ciphertext: Vec<u8>,
}

const R: Artifact = Artifact::DongleRecord;

/// The attach record on a token: which dongle this is, which device it is
/// permitted on, and who says so (the vendor, or a certified issuing key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DongleRecord {
    /// The dongle's id.
    pub dongle: DongleId,
    /// The vendor key the record (and every license for the dongle) is under.
    pub vendor_key: VendorPublicKey,
    /// The one device the dongle may be used on.
    pub device: DeviceCode,
    /// When it was provisioned.
    pub issued_at: UnixTime,
    /// Who signed it.
    pub issuer: Issuer,
    signed: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
}

fn record_message(signed: &[u8]) -> Vec<u8> {
    let mut m = b"sealrun/v1/dongle-record\0".to_vec();
    m.extend_from_slice(signed);
    m
}

impl DongleRecord {
    /// Parses a record strictly. No signature is checked yet.
    pub fn parse(input: &[u8]) -> Result<DongleRecord> {
        let mut c = Cursor::new(input, R);
        c.magic_and_version(&DONGLE_RECORD_MAGIC, DONGLE_RECORD_VERSION)?;
        let len = c.u16()?;
        if len > MAX_DONGLE_RECORD_BODY_LEN {
            return Err(c.malformed("body length", "is larger than allowed"));
        }
        let body = c.bytes(usize::from(len))?;
        let signed_len = c.position();
        let signature = c.array()?;
        c.finish()?;
        let mut b = Cursor::new(body, R);
        let dongle = DongleId(b.array()?);
        let vendor_key = VendorPublicKey(b.array()?);
        let device = DeviceCode { machine_tag: b.array::<MACHINE_TAG_LEN>()?, public_key: b.array()? };
        let issued_at = b.u64()?;
        let issuer = decode_issuer(&mut b)?;
        b.finish().map_err(|_| Error::Malformed {
            artifact: R,
            field: "body",
            problem: "does not match its length",
        })?;
        Ok(DongleRecord {
            dongle,
            vendor_key,
            device,
            issued_at,
            issuer,
            signed: input[..signed_len].to_vec(),
            signature,
        })
    }

    /// Checks that the record was signed for `vendor` (the key the package
    /// and the license carry), directly or through a certified issuing key.
    pub fn verify(&self, vendor: &VendorPublicKey) -> Result<()> {
        if &self.vendor_key != vendor {
            return Err(Error::OtherVendor { licensed: self.vendor_key.short_id(), package: vendor.short_id() });
        }
        verify_issued(vendor, &self.issuer, self.issued_at, &record_message(&self.signed), &self.signature, R)
    }

    /// The record as bytes (as parsed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.signed.clone();
        v.extend_from_slice(&self.signature);
        v
    }
}

/// Makes the signed attach record for `dongle`, permitted on `device`.
pub fn make_record(
    dongle: DongleId,
    device: DeviceCode,
    issued_at: UnixTime,
    signer: &LicenseSigner<'_>,
) -> Result<Vec<u8>> {
    let (vendor, issuer, key) = signer.parts()?;
    let mut body = Vec::new();
    body.extend_from_slice(&dongle.0);
    body.extend_from_slice(&vendor.0);
    body.extend_from_slice(&device.machine_tag);
    body.extend_from_slice(&device.public_key);
    body.put_u64(issued_at);
    encode_issuer(&mut body, &issuer);
    let mut out = DONGLE_RECORD_MAGIC.to_vec();
    out.put_u16(DONGLE_RECORD_VERSION);
    out.put_u16(body.len() as u16);
    out.extend_from_slice(&body);
    let sig = key.sign(&record_message(&out));
    out.extend_from_slice(&sig);
    Ok(out)
}

const L: Artifact = Artifact::License;

/// A license sealed to a dongle: the whole license (terms and wrapped keys)
/// encrypted under the dongle key, so its terms are unreadable without the
/// token. Only the dongle id is in the clear, to pick the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedLicense {
    /// The dongle it is sealed to.
    pub dongle: DongleId,
    /// See [`product_tag`].
    pub product_tag: [u8; PRODUCT_TAG_LEN],
    nonce: [u8; NONCE_LEN],
    header: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl SealedLicense {
    /// Parses the envelope strictly (the contents need the token).
    pub fn parse(input: &[u8]) -> Result<SealedLicense> {
        let mut c = Cursor::new(input, L);
        c.magic_and_version(&SEALED_LICENSE_MAGIC, SEALED_LICENSE_VERSION)?;
        let dongle = DongleId(c.array()?);
        let product_tag = c.array()?;
        let nonce = c.array()?;
        let len = u64::from(c.u32()?);
        if len > MAX_LICENSE_FILE_LEN + TAG_LEN as u64 {
            return Err(c.malformed("sealed length", "is larger than any license"));
        }
        if len <= TAG_LEN as u64 {
            return Err(c.malformed("sealed length", "is too short to hold a license"));
        }
        let header = input[..c.position()].to_vec();
        let ciphertext = c.bytes(len as usize)?.to_vec();
        c.finish()?;
        Ok(SealedLicense { dongle, product_tag, nonce, header, ciphertext })
    }

    /// What the token must decrypt to reveal the license.
    pub fn decrypt_request(&self) -> TokenDecrypt {
        TokenDecrypt { nonce: self.nonce, aad: self.header.clone(), ciphertext: self.ciphertext.clone() }
    }

    /// Whether this may be a license for `product` (see [`product_tag`]).
    pub fn may_be_for(&self, product: &str) -> bool {
        self.product_tag == product_tag(&self.dongle, product)
    }

    /// The envelope as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.header.clone();
        v.extend_from_slice(&self.ciphertext);
        v
    }
}

/// Seals a signed dongle-bound license under the dongle key.
pub(crate) fn seal_license(
    dongle: DongleId,
    product: &str,
    key: &DongleKey,
    license: &[u8],
    rng: &mut impl CryptoRng,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut header = SEALED_LICENSE_MAGIC.to_vec();
    header.put_u16(SEALED_LICENSE_VERSION);
    header.extend_from_slice(&dongle.0);
    header.extend_from_slice(&product_tag(&dongle, product));
    header.extend_from_slice(&nonce);
    header.put_u32((license.len() + TAG_LEN) as u32);
    let ct = key.encrypt(&nonce, &header, license);
    header.extend_from_slice(&ct);
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{ContentKey, VendorSigningKey};
    use crate::license::{AnyLicense, Binding, Terms, certify_issuer, issue_for_dongle};
    use crate::release::ReleaseRange;
    use crate::{Release, device::DeviceSecret};

    fn rng() -> impl CryptoRng {
        rand_core::UnwrapErr(getrandom::SysRng)
    }

    fn terms(vendor: &VendorSigningKey, dongle: DongleId) -> Terms {
        Terms {
            license_id: [0; 16],
            vendor_key: vendor.public(),
            product: "com.example.app".into(),
            releases: ReleaseRange { min: Release::new(1, 0, 0), max: None },
            licensee: "Acme".into(),
            issued_at: 10,
            not_before: 10,
            expires: None,
            features: vec![],
            meters: vec![],
            binding: Binding::Dongle { dongle, count: 2 },
        }
    }

    #[test]
    fn dongle_ids_print_and_parse() {
        let id = DongleId([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!("AB".repeat(16).parse::<DongleId>().unwrap(), id);
        assert!("abc".parse::<DongleId>().is_err());
        assert!("zz".repeat(16).parse::<DongleId>().is_err());
    }

    #[test]
    fn record_round_trip_and_tamper() {
        let mut rng = rng();
        let vendor = VendorSigningKey::generate(&mut rng);
        let device = DeviceSecret::from_bytes(&[7; 32]).device_code(b"m");
        let id = DongleId::generate(&mut rng);
        let bytes = make_record(id, device, 5, &LicenseSigner::Vendor(&vendor)).unwrap();
        let r = DongleRecord::parse(&bytes).unwrap();
        assert_eq!((r.dongle, r.device, r.issued_at), (id, device, 5));
        r.verify(&vendor.public()).unwrap();
        assert_eq!(r.to_bytes(), bytes);
        let other = VendorSigningKey::generate(&mut rng);
        assert!(matches!(r.verify(&other.public()), Err(Error::OtherVendor { .. })));
        // Every byte of the signed part matters.
        for i in 10..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            let ok = DongleRecord::parse(&b).and_then(|r| r.verify(&vendor.public()));
            assert!(ok.is_err(), "flipping byte {i} went unnoticed");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(DongleRecord::parse(&long), Err(Error::TrailingData { .. })));
    }

    #[test]
    fn record_by_certified_issuer() {
        let mut rng = rng();
        let vendor = VendorSigningKey::generate(&mut rng);
        let issuer = VendorSigningKey::generate(&mut rng);
        let cert = certify_issuer(&vendor, issuer.public(), 100);
        let device = DeviceSecret::from_bytes(&[7; 32]).device_code(b"m");
        let signer = LicenseSigner::Issuer { key: &issuer, cert, vendor: vendor.public() };
        let ok = make_record(DongleId([1; 16]), device, 50, &signer).unwrap();
        DongleRecord::parse(&ok).unwrap().verify(&vendor.public()).unwrap();
        let late = make_record(DongleId([1; 16]), device, 101, &signer).unwrap();
        assert!(DongleRecord::parse(&late).unwrap().verify(&vendor.public()).is_err());
    }

    #[test]
    fn sealed_license_round_trip() {
        let mut rng = rng();
        let vendor = VendorSigningKey::generate(&mut rng);
        let id = DongleId::generate(&mut rng);
        let key = DongleKey::generate(&mut rng);
        let content = ContentKey::generate(&mut rng);
        let sealed = issue_for_dongle(
            terms(&vendor, id),
            &[(Release::new(1, 0, 0), &content)],
            &LicenseSigner::Vendor(&vendor),
            &key,
            &mut rng,
        )
        .unwrap();
        let AnyLicense::Sealed(env) = AnyLicense::parse(&sealed).unwrap() else { panic!("not sealed") };
        assert_eq!(env.dongle, id);
        assert!(env.may_be_for("com.example.app") && !env.may_be_for("com.example.other"));
        assert_eq!(env.to_bytes(), sealed);
        // The terms are not in the clear.
        assert!(!sealed.windows(15).any(|w| w == b"com.example.app"));
        let plain = key.decrypt(&env.decrypt_request()).unwrap();
        let license = env.open(&plain).unwrap();
        license.verify_signature(&vendor.public()).unwrap();
        assert_eq!(license.terms.binding, Binding::Dongle { dongle: id, count: 2 });
        let request = license.dongle_key_request(&content.id()).unwrap();
        let raw = key.decrypt(&request).unwrap();
        assert_eq!(license.key_from_dongle(&content.id(), &raw).unwrap().id(), content.id());
        // Another dongle's key opens nothing.
        let other = DongleKey::generate(&mut rng);
        assert_eq!(other.decrypt(&env.decrypt_request()), Err(Error::UnwrapFailed));
        // A flipped ciphertext byte fails as a whole.
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let env2 = SealedLicense::parse(&bad).unwrap();
        assert_eq!(key.decrypt(&env2.decrypt_request()), Err(Error::UnwrapFailed));
        // A device-bound unwrap of a dongle license fails coarsely.
        let secret = DeviceSecret::from_bytes(&[1; 32]);
        assert_eq!(license.unwrap_key(&content.id(), &secret).unwrap_err(), Error::UnwrapFailed);
    }

    #[test]
    fn envelope_for_another_dongle_is_refused() {
        let mut rng = rng();
        let vendor = VendorSigningKey::generate(&mut rng);
        let key = DongleKey::generate(&mut rng);
        let content = ContentKey::generate(&mut rng);
        let sealed = issue_for_dongle(
            terms(&vendor, DongleId([1; 16])),
            &[(Release::new(1, 0, 0), &content)],
            &LicenseSigner::Vendor(&vendor),
            &key,
            &mut rng,
        )
        .unwrap();
        let env = SealedLicense::parse(&sealed).unwrap();
        let inner = key.decrypt(&env.decrypt_request()).unwrap();
        let relabelled = seal_license(DongleId([2; 16]), "com.example.app", &key, &inner, &mut rng);
        let env = SealedLicense::parse(&relabelled).unwrap();
        let inner = key.decrypt(&env.decrypt_request()).unwrap();
        assert!(matches!(env.open(&inner), Err(Error::Malformed { field: "binding", .. })));
    }
}
