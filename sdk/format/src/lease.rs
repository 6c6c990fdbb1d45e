//! Content keys lent with the lease of a floating license.
//!
//! A site's license manager (`sealrun-floatd`) holds the floating license
//! and its content key. When a device checks out a seat, the manager wraps
//! the content key to that device exactly as a device license does (HPKE,
//! see `wrap.rs`), bound to the license id, the lease id and the key id. A
//! lent key opens only on that device, only for that lease: an eavesdropper
//! learns nothing, and a manager without the content key cannot lend one.
//!
//! Every later step of the lease (the grant's terms, each renewal, the
//! release) is proven with an HMAC under the lease's [`ProofKey`], derived
//! from the content key and the lease's secret ([`LeaseRoot`]): only the
//! manager and the one workstation holding the lent key can make one.
use core::fmt;
use core::str::FromStr;

use hkdf::Hkdf;
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
        crate::hexid::write_hex(f, &self.0)
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
        // Lowercase only: the id is a key in the daemon's tables, and one
        // lease must have one spelling.
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        crate::hexid::parse_hex(s.as_bytes()).map(LeaseId).ok_or_else(bad)
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

/// A lease's secret, random per lease. It travels wrapped to the device
/// (like a lent key), which keeps it from eavesdroppers, but the wrap
/// proves nothing about who made it: anyone can wrap a secret to a public
/// device key. So the secret is never used alone; it salts the lease's
/// [`ProofKey`], which also needs the content key ([`LeaseRoot`]). The
/// secret makes each lease's key its own: another workstation that was
/// lent the same content key still cannot prove anything about this
/// lease.
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

/// 32 bytes of HKDF-SHA256 output.
fn hkdf32(salt: Option<&[u8]>, ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(salt, ikm).expand(info, out.as_mut()).expect("32 bytes is a valid HKDF output length");
    out
}

/// Derives every lease's proof key for one floating license and release:
/// HKDF-SHA256 of the content key, bound to the license id and the key id.
///
/// Why the content key: a lease secret travels wrapped to the device's
/// public key, and that key is public (it is in the device code), so
/// anyone between the daemon and the workstation can wrap a secret of
/// their own. The content key is held only by the daemon (it unwrapped it
/// from its own license) and by the workstation it was just lent to (it
/// opened it with its device key); a proxy has neither. A proof made under
/// a key derived from both the content key and the lease secret can
/// therefore come only from the daemon or from the workstation the lease
/// was granted to. (Whoever has the content key can decrypt the package
/// anyway and needs no seat.)
pub struct LeaseRoot(Zeroizing<[u8; 32]>);

impl LeaseRoot {
    /// The root for `key`, a content key of the floating `license`.
    pub fn derive(key: &ContentKey, license: &License) -> LeaseRoot {
        let mut info = b"sealrun/v2/lease-root\0".to_vec();
        info.extend_from_slice(&license.terms.license_id);
        info.extend_from_slice(&key.id().0);
        LeaseRoot(hkdf32(None, key.as_bytes(), &info))
    }

    /// The proof key of `lease`, whose secret is `secret`.
    pub fn proof_key(&self, lease: &LeaseId, secret: &LeaseSecret) -> ProofKey {
        let mut info = b"sealrun/v2/lease-proof-key\0".to_vec();
        info.extend_from_slice(&lease.0);
        ProofKey(hkdf32(Some(secret.as_bytes()), self.0.as_ref(), &info))
    }
}

impl fmt::Debug for LeaseRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseRoot(..)")
    }
}

/// The key every proof about one lease is made with
/// ([`LeaseRoot::proof_key`]): the manager keeps it in its lease table,
/// the workstation in memory for as long as it holds the seat.
pub struct ProofKey(Zeroizing<[u8; 32]>);

impl ProofKey {
    /// The key from its bytes (the manager's lease table).
    pub fn from_bytes(bytes: &[u8; 32]) -> ProofKey {
        ProofKey(Zeroizing::new(*bytes))
    }

    /// The raw bytes, to store.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProofKey(..)")
    }
}

/// What a proof is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The manager granted the lease for `ttl_ms`, to be renewed every
    /// `renew_ms` (the nonce is the checkout's).
    Granted {
        /// The lease's time from now.
        ttl_ms: u64,
        /// How often the holder renews.
        renew_ms: u64,
    },
    /// The holder asks to renew; `seq` grows with every request about the
    /// lease, so the manager can refuse a replayed one.
    Heartbeat {
        /// The request's number for this lease (from 1).
        seq: u64,
    },
    /// The holder gives the seat back.
    Release {
        /// The request's number for this lease (from 1).
        seq: u64,
    },
    /// The manager renewed the lease for `ttl_ms` milliseconds.
    Renewed {
        /// The lease's time from now.
        ttl_ms: u64,
    },
}

fn proof_mac(key: &ProofKey, what: Proof, lease: &LeaseId, nonce: &[u8; LEASE_NONCE_LEN]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"sealrun/v2/lease-proof\0");
    match what {
        Proof::Heartbeat { seq } => {
            mac.update(&[1]);
            mac.update(&seq.to_be_bytes());
        }
        Proof::Release { seq } => {
            mac.update(&[2]);
            mac.update(&seq.to_be_bytes());
        }
        Proof::Renewed { ttl_ms } => {
            mac.update(&[3]);
            mac.update(&ttl_ms.to_be_bytes());
        }
        Proof::Granted { ttl_ms, renew_ms } => {
            mac.update(&[4]);
            mac.update(&ttl_ms.to_be_bytes());
            mac.update(&renew_ms.to_be_bytes());
        }
    }
    mac.update(&lease.0);
    mac.update(nonce);
    mac
}

/// HMAC-SHA256 under the lease's proof key of `what`, for `lease` and
/// `nonce`.
pub fn prove(key: &ProofKey, what: Proof, lease: &LeaseId, nonce: &[u8; LEASE_NONCE_LEN]) -> [u8; PROOF_LEN] {
    proof_mac(key, what, lease, nonce).finalize().into_bytes().into()
}

/// Whether `proof` is [`prove`]'s output for these inputs (compared in
/// constant time).
pub fn check_proof(key: &ProofKey, what: Proof, lease: &LeaseId, nonce: &[u8; LEASE_NONCE_LEN], proof: &[u8]) -> bool {
    proof_mac(key, what, lease, nonce).verify_slice(proof).is_ok()
}

/// How many request numbers below the highest seen are remembered, so
/// that two requests overtaking each other are both accepted while any
/// replay is refused: a window as IPsec's anti-replay check keeps
/// (RFC 4303, section 3.4.3). A holder has at most two requests in flight
/// (its renewal thread and the one before the app starts).
pub const REPLAY_WINDOW: u64 = 64;

/// The request numbers a manager has accepted for one lease: the highest,
/// and which of the [`REPLAY_WINDOW`] below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeenSeqs {
    /// The highest number accepted (0: none yet).
    pub highest: u64,
    /// Bit `i` set: `highest - 1 - i` was accepted (or is too old to tell).
    pub below: u64,
}

impl SeenSeqs {
    /// After a restart: everything up to `highest` counts as seen.
    pub fn restored(highest: u64) -> SeenSeqs {
        SeenSeqs { highest, below: u64::MAX }
    }

    /// Whether `seq` is new (never accepted, not 0, not too old to tell).
    pub fn is_fresh(&self, seq: u64) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.highest {
            return true;
        }
        let back = self.highest - seq;
        back != 0 && back <= REPLAY_WINDOW && self.below & (1 << (back - 1)) == 0
    }

    /// Records `seq` as accepted (call only when [`SeenSeqs::is_fresh`]).
    pub fn accept(&mut self, seq: u64) {
        if seq > self.highest {
            let shift = seq - self.highest;
            // The old highest becomes bit `shift - 1`.
            self.below = if shift > REPLAY_WINDOW {
                0
            } else {
                // `shift` is 1..=64: a shift by 64 moves everything out.
                self.below.checked_shl(shift as u32).unwrap_or(0) | (1 << (shift - 1))
            };
            if self.highest == 0 {
                // Nothing below the first number was ever accepted, and
                // nothing below it can be: numbers start at 1.
                self.below = u64::MAX;
            }
            self.highest = seq;
        } else {
            let back = self.highest - seq;
            self.below |= 1 << (back - 1);
        }
    }
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
            meters: vec![],
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

        let root = LeaseRoot::derive(&s.content, &s.license);
        let key = root.proof_key(&lease, &secret);
        let nonce = [9u8; LEASE_NONCE_LEN];
        let p = prove(&key, Proof::Heartbeat { seq: 1 }, &lease, &nonce);
        assert!(check_proof(&key, Proof::Heartbeat { seq: 1 }, &lease, &nonce, &p));
        assert!(!check_proof(&key, Proof::Heartbeat { seq: 2 }, &lease, &nonce, &p), "the number is bound");
        assert!(
            !check_proof(&key, Proof::Release { seq: 1 }, &lease, &nonce, &p),
            "a heartbeat proof does not release"
        );
        assert!(!check_proof(&key, Proof::Heartbeat { seq: 1 }, &lease, &[8; LEASE_NONCE_LEN], &p));
        assert!(!check_proof(&key, Proof::Heartbeat { seq: 1 }, &LeaseId([1; 16]), &nonce, &p));
        let r = prove(&key, Proof::Renewed { ttl_ms: 30_000 }, &lease, &nonce);
        assert!(check_proof(&key, Proof::Renewed { ttl_ms: 30_000 }, &lease, &nonce, &r));
        assert!(!check_proof(&key, Proof::Renewed { ttl_ms: 86_400_000 }, &lease, &nonce, &r), "the ttl is bound");
        assert!(!check_proof(&key, Proof::Renewed { ttl_ms: 30_000 }, &lease, &nonce, &r[..31]));
        let g = prove(&key, Proof::Granted { ttl_ms: 30_000, renew_ms: 10_000 }, &lease, &nonce);
        assert!(check_proof(&key, Proof::Granted { ttl_ms: 30_000, renew_ms: 10_000 }, &lease, &nonce, &g));
        for forged in
            [Proof::Granted { ttl_ms: 3_600_000, renew_ms: 10_000 }, Proof::Granted { ttl_ms: 30_000, renew_ms: 1 }]
        {
            assert!(!check_proof(&key, forged, &lease, &nonce, &g), "{forged:?}");
        }
        assert!(!check_proof(&key, Proof::Renewed { ttl_ms: 30_000 }, &lease, &nonce, &g), "a grant is no renewal");
    }

    /// What a proxy between the manager and the workstation can do: it sees
    /// the device code (so it can wrap a lease secret of its own to the
    /// device, and the wrap opens) but not the content key. Every proof
    /// it can compute from what it has is refused by the workstation.
    #[test]
    fn a_secret_wrapped_by_someone_without_the_content_key_proves_nothing() {
        let s = setup(SeatUnit::Computer);
        let mut rng = rng();
        let lease = LeaseId::generate(&mut rng);
        let real = LeaseSecret::generate(&mut rng);
        let nonce = [5u8; LEASE_NONCE_LEN];
        // The proxy's own secret, validly wrapped to the public device code.
        let forged = LeaseSecret::generate(&mut rng);
        let lent = lend_secret(&forged, &s.license, &lease, &s.client_code, &mut rng).unwrap();
        let opened = open_lent_secret(&lent, &s.license, &lease, &s.client, &s.client_code).unwrap();
        assert_eq!(opened.as_bytes(), forged.as_bytes(), "the forged wrap opens: HPKE base mode proves no sender");
        // The workstation derives the proof key from the content key it
        // was lent; the proxy can only guess a content key.
        let workstation = LeaseRoot::derive(&s.content, &s.license).proof_key(&lease, &opened);
        let guessed = LeaseRoot::derive(&ContentKey::generate(&mut rng), &s.license).proof_key(&lease, &forged);
        let grant = Proof::Granted { ttl_ms: 3_600_000, renew_ms: 1_000 };
        assert!(!check_proof(&workstation, grant, &lease, &nonce, &prove(&guessed, grant, &lease, &nonce)));
        // Nor does the secret alone (the protocol before v2) make a key.
        let v1 = ProofKey::from_bytes(forged.as_bytes());
        assert!(!check_proof(&workstation, grant, &lease, &nonce, &prove(&v1, grant, &lease, &nonce)));
        // The manager's key for the real secret differs from the key the
        // forged secret gives, so the manager's renewals no longer check
        // out either: a swapped secret is noticed at once.
        let manager = LeaseRoot::derive(&s.content, &s.license).proof_key(&lease, &real);
        let renewed = Proof::Renewed { ttl_ms: 30_000 };
        assert!(!check_proof(&workstation, renewed, &lease, &nonce, &prove(&manager, renewed, &lease, &nonce)));
        // Roots are per license and per content key.
        let other = setup(SeatUnit::Computer);
        let a = LeaseRoot::derive(&s.content, &s.license).proof_key(&lease, &real);
        let b = LeaseRoot::derive(&s.content, &other.license).proof_key(&lease, &real);
        let c = LeaseRoot::derive(&other.content, &s.license).proof_key(&lease, &real);
        let d = LeaseRoot::derive(&s.content, &s.license).proof_key(&LeaseId([3; 16]), &real);
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), c.as_bytes());
        assert_ne!(a.as_bytes(), d.as_bytes());
    }

    #[test]
    fn the_replay_window_accepts_each_number_once_and_reordering_within_the_window() {
        let mut seen = SeenSeqs::default();
        assert!(!seen.is_fresh(0), "0 is never a request number");
        for seq in [1, 2, 3, 5, 4, 9, 6] {
            assert!(seen.is_fresh(seq), "{seq}");
            seen.accept(seq);
            assert!(!seen.is_fresh(seq), "{seq} twice");
        }
        for seq in 1..=6 {
            assert!(!seen.is_fresh(seq), "{seq} replayed");
        }
        assert!(seen.is_fresh(7) && seen.is_fresh(8) && seen.is_fresh(10));
        // A jump of exactly the window keeps the old highest; a longer one
        // forgets everything below, which then counts as too old.
        seen.accept(9 + REPLAY_WINDOW);
        assert!(!seen.is_fresh(9), "the old highest, 64 back");
        assert!(!seen.is_fresh(8), "too old to tell");
        assert!(seen.is_fresh(10));
        seen.accept(1_000);
        for seq in [10, 9 + REPLAY_WINDOW, 1_000 - REPLAY_WINDOW - 1] {
            assert!(!seen.is_fresh(seq), "{seq}");
        }
        assert!(seen.is_fresh(1_000 - REPLAY_WINDOW), "64 back, never seen");
        // After a restart nothing up to the stored highest is fresh.
        let restored = SeenSeqs::restored(40);
        assert!((0..=40).all(|s| !restored.is_fresh(s)));
        assert!(restored.is_fresh(41));
        // The first number accepted need not be 1, and nothing below it is
        // fresh afterwards.
        let mut late = SeenSeqs::default();
        late.accept(7);
        assert!((1..=7).all(|s| !late.is_fresh(s)));
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
