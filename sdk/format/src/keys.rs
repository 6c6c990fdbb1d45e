//! Key types. Secrets zeroize on drop and never print their bytes.
use core::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{Artifact, Error, Result};

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// The vendor's Ed25519 signing key: signs packages, licenses and issuer
/// certificates. Zeroized on drop.
pub struct VendorSigningKey(SigningKey);

impl VendorSigningKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        VendorSigningKey(SigningKey::from_bytes(&seed))
    }

    /// The key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        VendorSigningKey(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for storage in a 0600 key file.
    pub fn to_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public(&self) -> VendorPublicKey {
        VendorPublicKey(self.0.verifying_key().to_bytes())
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(msg).to_bytes()
    }
}

impl fmt::Debug for VendorSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VendorSigningKey({})", self.public())
    }
}

/// An Ed25519 public key (a vendor key or a certified issuing key).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VendorPublicKey(pub [u8; 32]);

impl VendorPublicKey {
    /// Verifies `sig` over `msg` with the strict rules (no small-order keys,
    /// canonical `s`), so a valid signature cannot be altered into another
    /// valid one.
    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8; SIGNATURE_LEN], what: Artifact) -> Result<()> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| Error::BadSignature(what))?;
        key.verify_strict(msg, &Signature::from_bytes(sig)).map_err(|_| Error::BadSignature(what))
    }

    /// A short fingerprint for people: the first 8 bytes of SHA-256, in hex.
    pub fn short_id(&self) -> String {
        crate::hexid::to_hex(&Sha256::digest(self.0)[..8])
    }
}

impl fmt::Display for VendorPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::hexid::write_hex(f, &self.0)
    }
}

impl fmt::Debug for VendorPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VendorPublicKey({self})")
    }
}

/// The 256-bit content key of one product release. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ContentKey([u8; 32]);

impl ContentKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut k = ContentKey([0u8; 32]);
        rng.fill_bytes(&mut k.0);
        k
    }

    /// The key from its bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        ContentKey(*bytes)
    }

    /// The raw bytes, for wrapping and for the vendor's keystore.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public identifier of this key: a one-way derivation that packages
    /// and licenses carry, so a mismatch is reported before any decryption.
    pub fn id(&self) -> KeyId {
        let mut out = [0u8; 32];
        self.derive(b"sealrun/v1/content-key-id", &mut out);
        KeyId(out)
    }

    /// Derives a subkey for one purpose (HKDF-SHA256, `info` names it).
    pub fn derive(&self, info: &[u8], out: &mut [u8]) {
        Hkdf::<Sha256>::new(None, &self.0)
            .expand(info, out)
            .expect("HKDF output lengths used here are far below the limit");
    }
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentKey(id {})", self.id())
    }
}

/// Public identifier of a content key (see [`ContentKey::id`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl fmt::Display for KeyId {
    /// The first 8 bytes: enough to tell keys apart in messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::hexid::write_hex(f, &self.0[..8])
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}
