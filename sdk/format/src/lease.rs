//! Content keys lent with the lease of a floating license.
//!
//! A site's license manager (`sealrun-floatd`) holds the floating license
//! and its content key. When a device checks out a seat, the manager wraps
//! the content key to that device exactly as a device license does (HPKE,
//! see `wrap.rs`), bound to the license id, the lease id and the key id. A
//! lent key opens only on that device, only for that lease: an eavesdropper
//! learns nothing, and a manager without the content key cannot lend one.
use core::fmt;
use core::str::FromStr;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::device::{DeviceCode, DeviceSecret};
use crate::keys::{ContentKey, KeyId};
use crate::license::{Binding, License};
use crate::wrap::{ENC_LEN, WRAPPED_LEN, unwrap_on_device, wrap_to_device};
use crate::{Artifact, Error, Result};

/// Bytes of a lease id.
pub const LEASE_ID_LEN: usize = 16;
/// Bytes of a [`LeaseKey`]: the HPKE encapsulated key and the wrapped key.
pub const LEASE_KEY_LEN: usize = ENC_LEN + WRAPPED_LEN;
/// Bytes of a lease nonce (fresh for every heartbeat and release).
pub const LEASE_NONCE_LEN: usize = 16;
/// Bytes of a proof (HMAC-SHA256).
pub const PROOF_LEN: usize = 32;

/// A lease's public id (shown by the manager's status, named to revoke).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub [u8; LEASE_ID_LEN]);

impl LeaseId {
    /// A fresh random id.
    pub fn generate(rng: &mut impl CryptoRng) -> LeaseId {
        let mut id = [0u8; LEASE_ID_LEN];
        rng.fill_bytes(&mut id);
        LeaseId(id)
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseId({self})")
    }
}

impl FromStr for LeaseId {
    type Err = Error;

    /// 32 lowercase hex digits, exactly as [`fmt::Display`] writes them.
    fn from_str(s: &str) -> Result<LeaseId> {
        let bad =
            || Error::Malformed { artifact: Artifact::LeaseKey, field: "lease id", problem: "is not 32 hex digits" };
        if s.len() != 2 * LEASE_ID_LEN || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad());
        }
        let mut id = [0u8; LEASE_ID_LEN];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(LeaseId(id))
    }
}

/// A content key wrapped to one device for one lease.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseKey {
    enc: [u8; ENC_LEN],
    wrapped: [u8; WRAPPED_LEN],
}

impl fmt::Debug for LeaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseKey(..)")
    }
}

impl LeaseKey {
    /// The key as bytes: encapsulated key, then the wrapped key.
    pub fn to_bytes(&self) -> [u8; LEASE_KEY_LEN] {
        let mut out = [0u8; LEASE_KEY_LEN];
        out[..ENC_LEN].copy_from_slice(&self.enc);
        out[ENC_LEN..].copy_from_slice(&self.wrapped);
        out
    }

    /// Reads [`LeaseKey::to_bytes`] output; any other length is refused.
    pub fn from_bytes(b: &[u8]) -> Result<LeaseKey> {
        if b.len() != LEASE_KEY_LEN {
            return Err(Error::Malformed {
                artifact: Artifact::LeaseKey,
                field: "length",
                problem: "is not the length of a lent key",
            });
        }
        let mut enc = [0u8; ENC_LEN];
        enc.copy_from_slice(&b[..ENC_LEN]);
        let mut wrapped = [0u8; WRAPPED_LEN];
        wrapped.copy_from_slice(&b[ENC_LEN..]);
        Ok(LeaseKey { enc, wrapped })
    }
}

fn lease_aad(license: &License, lease: &LeaseId, key_id: &KeyId) -> Vec<u8> {
    let mut aad = b"sealrun/v1/lease-key\0".to_vec();
    aad.extend_from_slice(&license.terms.license_id);
    aad.extend_from_slice(&lease.0);
    aad.extend_from_slice(&key_id.0);
    aad
}

/// Lends `key` (a content key of the floating `license`) to `device` for
/// `lease`.
pub fn lend(
    key: &ContentKey,
    license: &License,
    lease: &LeaseId,
    device: &DeviceCode,
    rng: &mut impl CryptoRng,
) -> Result<LeaseKey> {
    if !matches!(license.terms.binding, Binding::Floating { .. }) {
        return Err(Error::InvalidInput { field: "license", problem: "is not a floating license" });
    }
    let (enc, wrapped) = wrap_to_device(key, device, &lease_aad(license, lease, &key.id()), rng)?;
    Ok(LeaseKey { enc, wrapped })
}

/// Opens a key lent for `lease` under the floating `license` on this
/// device; it must be the content key `key_id`. Any failure is the coarse
/// [`Error::UnwrapFailed`].
pub fn open_lent(
    lent: &LeaseKey,
    license: &License,
    lease: &LeaseId,
    key_id: &KeyId,
    secret: &DeviceSecret,
    device: &DeviceCode,
) -> Result<ContentKey> {
    if !matches!(license.terms.binding, Binding::Floating { .. }) {
        return Err(Error::UnwrapFailed);
    }
    let key = unwrap_on_device(&lent.enc, &lent.wrapped, secret, device, &lease_aad(license, lease, key_id))?;
    if &key.id() != key_id {
        return Err(Error::UnwrapFailed);
    }
    Ok(key)
}

/// A lease's secret: known only to the license manager and the one device
/// the lease is for (it travels wrapped to that device, like a lent key).
/// Heartbeats and releases prove knowledge of it, and the manager's answer
/// to a heartbeat is authenticated with it, so whoever sits between them
/// can neither give the seat back nor pretend it was renewed.
pub struct LeaseSecret(Zeroizing<[u8; 32]>);

impl LeaseSecret {
    /// A fresh random secret.
    pub fn generate(rng: &mut impl CryptoRng) -> LeaseSecret {
        let mut s = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(s.as_mut());
        LeaseSecret(s)
    }

    /// The secret from its bytes (the manager's lease table).
    pub fn from_bytes(bytes: &[u8; 32]) -> LeaseSecret {
        LeaseSecret(Zeroizing::new(*bytes))
    }

    /// The raw bytes, to store.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for LeaseSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseSecret(..)")
    }
}

fn secret_aad(license: &License, lease: &LeaseId) -> Vec<u8> {
    let mut aad = b"sealrun/v1/lease-secret\0".to_vec();
    aad.extend_from_slice(&license.terms.license_id);
    aad.extend_from_slice(&lease.0);
    aad
}

/// Wraps a lease's secret to `device` (HPKE, as [`lend`] does, with its own
/// label so a wrapped secret can never pass for a wrapped key).
pub fn lend_secret(
    secret: &LeaseSecret,
    license: &License,
    lease: &LeaseId,
    device: &DeviceCode,
    rng: &mut impl CryptoRng,
) -> Result<LeaseKey> {
    let as_key = ContentKey::from_bytes(secret.as_bytes());
    let (enc, wrapped) = wrap_to_device(&as_key, device, &secret_aad(license, lease), rng)?;
    Ok(LeaseKey { enc, wrapped })
}

/// Opens a lease secret wrapped by [`lend_secret`] on this device. Any
/// failure is the coarse [`Error::UnwrapFailed`].
pub fn open_lent_secret(
    lent: &LeaseKey,
    license: &License,
    lease: &LeaseId,
    secret: &DeviceSecret,
    device: &DeviceCode,
) -> Result<LeaseSecret> {
    let key = unwrap_on_device(&lent.enc, &lent.wrapped, secret, device, &secret_aad(license, lease))?;
    Ok(LeaseSecret::from_bytes(key.as_bytes()))
}

/// What a proof is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The holder asks to renew.
    Heartbeat,
    /// The holder gives the seat back.
    Release,
    /// The manager renewed the lease for `ttl_ms` milliseconds.
    Renewed {
        /// The lease's time from now.
        ttl_ms: u64,
    },
}

fn proof_mac(secret: &LeaseSecret, what: Proof, lease: &LeaseId, nonce: &[u8; LEASE_NONCE_LEN]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"sealrun/v1/lease-proof\0");
    match what {
        Proof::Heartbeat => mac.update(&[1]),
        Proof::Release => mac.update(&[2]),
        Proof::Renewed { ttl_ms } => {
            mac.update(&[3]);
            mac.update(&ttl_ms.to_be_bytes());
        }
    }
    mac.update(&lease.0);
    mac.update(nonce);
    mac
}

/// HMAC-SHA256 under the lease secret of `what`, for `lease` and `nonce`.
pub fn prove(secret: &LeaseSecret, what: Proof, lease: &LeaseId, nonce: &[u8; LEASE_NONCE_LEN]) -> [u8; PROOF_LEN] {
    proof_mac(secret, what, lease, nonce).finalize().into_bytes().into()
}

/// Whether `proof` is [`prove`]'s output for these inputs (compared in
/// constant time).
pub fn check_proof(
    secret: &LeaseSecret,
    what: Proof,
    lease: &LeaseId,
    nonce: &[u8; LEASE_NONCE_LEN],
    proof: &[u8],
) -> bool {
    proof_mac(secret, what, lease, nonce).verify_slice(proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dongle::{DongleId, DongleKey};
    use crate::license::{Holder, LicenseSigner, SeatUnit, Terms, issue, issue_for_dongle};
    use crate::release::ReleaseRange;
    use crate::{Release, VendorSigningKey};

    fn rng() -> impl CryptoRng {
        rand_core::UnwrapErr(getrandom::SysRng)
    }

    fn terms(vendor: &VendorSigningKey, binding: Binding) -> Terms {
        Terms {
            license_id: [0; 16],
            vendor_key: vendor.public(),
            product: "com.example.app".into(),
            releases: ReleaseRange { min: Release::new(1, 0, 0), max: None },
            licensee: "Site".into(),
            issued_at: 10,
            not_before: 10,
            expires: None,
            features: vec![],
            binding,
        }
    }

    struct Setup {
        license: License,
        content: ContentKey,
        client: DeviceSecret,
        client_code: DeviceCode,
    }

    fn setup(unit: SeatUnit) -> Setup {
        let mut rng = rng();
        let vendor = VendorSigningKey::generate(&mut rng);
        let manager = DeviceSecret::generate(&mut rng);
        let content = ContentKey::generate(&mut rng);
        let binding = Binding::Floating { holder: Holder::Device(manager.device_code(b"manager")), seats: 3, unit };
        let bytes = issue(
            terms(&vendor, binding),
            &[(Release::new(1, 0, 0), &content)],
            &LicenseSigner::Vendor(&vendor),
            &mut rng,
        )
        .unwrap();
        let license = License::parse(&bytes).unwrap();
        license.verify_signature(&vendor.public()).unwrap();
        assert_eq!(license.terms.binding, binding);
        // The manager unwraps the key from its own license.
        let unwrapped = license.unwrap_key(&content.id(), &manager).unwrap();
        assert_eq!(unwrapped.as_bytes(), content.as_bytes());
        let client = DeviceSecret::generate(&mut rng);
        let client_code = client.device_code(b"client");
        Setup { license, content, client, client_code }
    }

    #[test]
    fn a_lent_key_opens_only_on_its_device_for_its_lease() {
        let s = setup(SeatUnit::Computer);
        let mut rng = rng();
        let lease = LeaseId::generate(&mut rng);
        let lent = lend(&s.content, &s.license, &lease, &s.client_code, &mut rng).unwrap();
        let lent = LeaseKey::from_bytes(&lent.to_bytes()).unwrap();
        let id = s.content.id();
        let key = open_lent(&lent, &s.license, &lease, &id, &s.client, &s.client_code).unwrap();
        assert_eq!(key.as_bytes(), s.content.as_bytes());

        let other_lease = LeaseId::generate(&mut rng);
        assert_eq!(
            open_lent(&lent, &s.license, &other_lease, &id, &s.client, &s.client_code).unwrap_err(),
            Error::UnwrapFailed
        );
        let other = DeviceSecret::generate(&mut rng);
        let other_code = other.device_code(b"client");
        assert_eq!(open_lent(&lent, &s.license, &lease, &id, &other, &other_code).unwrap_err(), Error::UnwrapFailed);
        // Another license (another id) cannot reuse the wrap.
        let s2 = setup(SeatUnit::Process);
        assert_eq!(
            open_lent(&lent, &s2.license, &lease, &id, &s.client, &s.client_code).unwrap_err(),
            Error::UnwrapFailed
        );
        let mut flipped = lent.to_bytes();
        flipped[40] ^= 1;
        let flipped = LeaseKey::from_bytes(&flipped).unwrap();
        assert_eq!(
            open_lent(&flipped, &s.license, &lease, &id, &s.client, &s.client_code).unwrap_err(),
            Error::UnwrapFailed
        );
        assert!(LeaseKey::from_bytes(&lent.to_bytes()[1..]).is_err());
    }

    #[test]
    fn device_licenses_do_not_lend() {
        let mut rng = rng();
        let vendor = VendorSigningKey::generate(&mut rng);
        let device = DeviceSecret::generate(&mut rng);
        let code = device.device_code(b"m");
        let content = ContentKey::generate(&mut rng);
        let bytes = issue(
            terms(&vendor, Binding::Device(code)),
            &[(Release::new(1, 0, 0), &content)],
            &LicenseSigner::Vendor(&vendor),
            &mut rng,
        )
        .unwrap();
        let license = License::parse(&bytes).unwrap();
        let lease = LeaseId::generate(&mut rng);
        assert!(lend(&content, &license, &lease, &code, &mut rng).is_err());
    }

    #[test]
    fn seats_are_bounded_and_dongles_can_hold_floating_licenses() {
        let mut rng = rng();
        let vendor = VendorSigningKey::generate(&mut rng);
        let content = ContentKey::generate(&mut rng);
        let dongle = DongleId([7; 16]);
        let dk = DongleKey::generate(&mut rng);
        let binding = Binding::Floating { holder: Holder::Dongle(dongle), seats: 5, unit: SeatUnit::Process };
        let sealed = issue_for_dongle(
            terms(&vendor, binding),
            &[(Release::new(1, 0, 0), &content)],
            &LicenseSigner::Vendor(&vendor),
            &dk,
            &mut rng,
        )
        .unwrap();
        let env = crate::dongle::SealedLicense::parse(&sealed).unwrap();
        let plain = dk.decrypt(&env.decrypt_request()).unwrap();
        let license = env.open(&plain).unwrap();
        assert_eq!(license.terms.binding, binding);
        let raw = dk.decrypt(&license.dongle_key_request(&content.id()).unwrap()).unwrap();
        assert_eq!(license.key_from_dongle(&content.id(), &raw).unwrap().as_bytes(), content.as_bytes());
        // A device-held floating license cannot be sealed, nor 0 seats issued.
        for seats in [0, crate::limits::MAX_FLOATING_SEATS + 1] {
            let b = Binding::Floating { holder: Holder::Dongle(dongle), seats, unit: SeatUnit::Computer };
            let r = issue_for_dongle(
                terms(&vendor, b),
                &[(Release::new(1, 0, 0), &content)],
                &LicenseSigner::Vendor(&vendor),
                &dk,
                &mut rng,
            );
            assert!(r.is_err(), "{seats} seats");
        }
    }

    #[test]
    fn lease_secrets_travel_to_their_device_only_and_prove_each_step() {
        let s = setup(SeatUnit::Computer);
        let mut rng = rng();
        let lease = LeaseId::generate(&mut rng);
        let secret = LeaseSecret::generate(&mut rng);
        let lent = lend_secret(&secret, &s.license, &lease, &s.client_code, &mut rng).unwrap();
        let opened = open_lent_secret(&lent, &s.license, &lease, &s.client, &s.client_code).unwrap();
        assert_eq!(opened.as_bytes(), secret.as_bytes());
        // A wrapped secret is not a lent key, and the other way round.
        assert!(open_lent(&lent, &s.license, &lease, &s.content.id(), &s.client, &s.client_code).is_err());
        let key = lend(&s.content, &s.license, &lease, &s.client_code, &mut rng).unwrap();
        assert!(open_lent_secret(&key, &s.license, &lease, &s.client, &s.client_code).is_err());
        let other = DeviceSecret::generate(&mut rng);
        assert!(open_lent_secret(&lent, &s.license, &lease, &other, &other.device_code(b"client")).is_err());

        let nonce = [9u8; LEASE_NONCE_LEN];
        let p = prove(&secret, Proof::Heartbeat, &lease, &nonce);
        assert!(check_proof(&secret, Proof::Heartbeat, &lease, &nonce, &p));
        assert!(!check_proof(&secret, Proof::Release, &lease, &nonce, &p), "a heartbeat proof does not release");
        assert!(!check_proof(&secret, Proof::Heartbeat, &lease, &[8; LEASE_NONCE_LEN], &p));
        assert!(!check_proof(&secret, Proof::Heartbeat, &LeaseId([1; 16]), &nonce, &p));
        assert!(!check_proof(&LeaseSecret::generate(&mut rng), Proof::Heartbeat, &lease, &nonce, &p));
        let r = prove(&secret, Proof::Renewed { ttl_ms: 30_000 }, &lease, &nonce);
        assert!(check_proof(&secret, Proof::Renewed { ttl_ms: 30_000 }, &lease, &nonce, &r));
        assert!(!check_proof(&secret, Proof::Renewed { ttl_ms: 86_400_000 }, &lease, &nonce, &r), "the ttl is bound");
        assert!(!check_proof(&secret, Proof::Renewed { ttl_ms: 30_000 }, &lease, &nonce, &r[..31]));
    }

    #[test]
    fn lease_ids_print_and_parse_canonically() {
        let id = LeaseId([0xa5; 16]);
        assert_eq!(id.to_string().parse::<LeaseId>().unwrap(), id);
        for bad in ["", "A5".repeat(16).as_str(), &"a5".repeat(15), &"a5".repeat(17), &format!("{}zz", "a5".repeat(15))]
        {
            assert!(bad.parse::<LeaseId>().is_err(), "{bad:?}");
        }
    }
}
