//! Device identity: the device code, the device fingerprint and the sealed
//! device key file.
//!
//! A device is a machine ID plus an X25519 key pair made on first run. The
//! raw machine ID never leaves the machine: only a Sealrun-specific tag derived
//! from it (HMAC-SHA256 keyed by the machine ID) appears in device codes.
use core::fmt;
use core::str::FromStr;

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::cursor::Cursor;
use crate::{Artifact, Error, Result};

/// Bytes of the machine tag in a device code.
pub const MACHINE_TAG_LEN: usize = 6;
/// Bytes of the device code checksum: a typo slips through with
/// probability 2^-16.
const CHECKSUM_LEN: usize = 2;
/// Bytes a device code encodes: tag, public key, checksum (40 = 64 base32 chars).
const CODE_BYTES: usize = MACHINE_TAG_LEN + 32 + CHECKSUM_LEN;
/// Text prefix of a version-1 device code.
pub const DEVICE_CODE_PREFIX: &str = "SR1";
/// Characters per group when a device code is printed.
const GROUP: usize = 4;
/// Crockford's base32 alphabet: no I, L, O or U, so it reads well aloud.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The Sealrun-specific tag of a machine ID (the same for every vendor; a
/// one-way HMAC, so the raw ID cannot be recovered from it).
pub fn machine_tag(machine_id: &[u8]) -> [u8; MACHINE_TAG_LEN] {
    let mut mac = <Hmac<Sha256>>::new_from_slice(machine_id).expect("HMAC takes any key length");
    mac.update(b"sealrun/v1/machine-tag");
    let full = mac.finalize().into_bytes();
    let mut tag = [0u8; MACHINE_TAG_LEN];
    tag.copy_from_slice(&full[..MACHINE_TAG_LEN]);
    tag
}

/// What identifies a device to a vendor: its machine tag and public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceCode {
    /// App-specific tag of the machine ID.
    pub machine_tag: [u8; MACHINE_TAG_LEN],
    /// The device's X25519 public key.
    pub public_key: [u8; 32],
}

impl DeviceCode {
    /// The fingerprint bound into every key wrapped to this device.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"sealrun/v1/device-fingerprint\0");
        h.update(self.machine_tag);
        h.update(self.public_key);
        h.finalize().into()
    }

    fn checksum(tag: &[u8], pk: &[u8]) -> [u8; CHECKSUM_LEN] {
        let d = Sha256::new_with_prefix(b"sealrun/v1/device-code\0").chain_update(tag).chain_update(pk).finalize();
        [d[0], d[1]]
    }
}

impl fmt::Display for DeviceCode {
    /// `SR1-XXXX-XXXX-…`: 64 base32 characters in groups of four.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; CODE_BYTES];
        raw[..6].copy_from_slice(&self.machine_tag);
        raw[6..38].copy_from_slice(&self.public_key);
        raw[38..].copy_from_slice(&Self::checksum(&self.machine_tag, &self.public_key));
        f.write_str(DEVICE_CODE_PREFIX)?;
        let mut acc: u64 = 0;
        let mut bits = 0;
        let mut n = 0;
        for byte in raw {
            acc = (acc << 8) | u64::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                if n % GROUP == 0 {
                    f.write_str("-")?;
                }
                let c = ALPHABET[((acc >> bits) & 31) as usize];
                write!(f, "{}", c as char)?;
                n += 1;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceCode({self})")
    }
}

impl FromStr for DeviceCode {
    type Err = Error;

    /// Parses a device code as people type it: case does not matter, dashes
    /// and spaces are ignored, and O/I/L are read as 0/1/1.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |problem| Error::Malformed { artifact: Artifact::DeviceCode, field: "code", problem };
        let s = s.trim();
        // Generous room for separators; anything longer is not a device code.
        if s.len() > 4 * CODE_BYTES {
            return Err(bad("is far too long to be a device code"));
        }
        let rest = s
            .get(..DEVICE_CODE_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(DEVICE_CODE_PREFIX))
            .map(|_| &s[DEVICE_CODE_PREFIX.len()..])
            .ok_or(bad("does not start with SR1- (copy it exactly as `sealrun id` prints it)"))?;
        let mut raw = Vec::with_capacity(CODE_BYTES);
        let mut acc: u64 = 0;
        let mut bits = 0;
        let mut chars = 0;
        for c in rest.chars() {
            if c == '-' || c == ' ' {
                continue;
            }
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            let v = ALPHABET
                .iter()
                .position(|&a| a as char == c)
                .ok_or(bad("contains a character that is not in a device code"))?;
            acc = (acc << 5) | v as u64;
            bits += 5;
            chars += 1;
            if bits >= 8 {
                bits -= 8;
                raw.push((acc >> bits) as u8);
            }
        }
        if chars != CODE_BYTES * 8 / 5 {
            return Err(bad("has the wrong number of characters (it should be 64 after SR1-)"));
        }
        let tag: [u8; 6] = raw[..6].try_into().expect("length checked");
        let pk: [u8; 32] = raw[6..38].try_into().expect("length checked");
        if raw[38..] != Self::checksum(&tag, &pk) {
            return Err(Error::DeviceCodeChecksum);
        }
        Ok(DeviceCode { machine_tag: tag, public_key: pk })
    }
}

/// The device's X25519 secret key. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DeviceSecret([u8; 32]);

impl DeviceSecret {
    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut s = DeviceSecret([0u8; 32]);
        rng.fill_bytes(&mut s.0);
        s
    }

    /// The key from its bytes.
    pub fn from_bytes(b: &[u8; 32]) -> Self {
        DeviceSecret(*b)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A name only this device can compute, for `label` and `data`
    /// (HMAC-SHA256 under a key derived from the secret): for things on
    /// this machine that other local users must not be able to guess.
    /// Reveals nothing about the secret.
    pub fn local_name(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        use hmac::digest::KeyInit;
        use hmac::{Hmac, Mac};
        let mut k = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(b"sealrun/v1/local-name"), &self.0)
            .expand(label, k.as_mut())
            .expect("32 bytes is a valid HKDF output length");
        let mut mac = <Hmac<Sha256>>::new_from_slice(k.as_ref()).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// The matching public key.
    pub fn public_key(&self) -> [u8; 32] {
        PublicKey::from(&StaticSecret::from(self.0)).to_bytes()
    }

    /// The device code of this key on the machine with `machine_id`.
    pub fn device_code(&self, machine_id: &[u8]) -> DeviceCode {
        DeviceCode { machine_tag: machine_tag(machine_id), public_key: self.public_key() }
    }
}

/// Magic bytes of a sealed device key file.
pub const DEVICE_KEY_MAGIC: [u8; 8] = *b"SEALDEV\x1a";
/// Format version of the sealed device key file.
pub const DEVICE_KEY_VERSION: u16 = 1;
/// Total size of a sealed device key file: magic, version, nonce, key, tag.
pub const DEVICE_KEY_FILE_LEN: usize = 8 + 2 + 12 + 32 + 16;

fn machine_seal_cipher(machine_id: &[u8]) -> Aes256GcmSiv {
    let mut k = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(b"sealrun/v1/device-key-seal"), machine_id)
        .expand(b"sealrun/v1/device-key-seal", k.as_mut())
        .expect("32 bytes is a valid HKDF output length");
    let k: &[u8; 32] = &k;
    Aes256GcmSiv::new(k.into())
}

/// Seals a device secret to a machine ID, for the 0600 key file.
pub fn seal_device_key(secret: &DeviceSecret, machine_id: &[u8], rng: &mut impl CryptoRng) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(DEVICE_KEY_FILE_LEN);
    out.extend_from_slice(&DEVICE_KEY_MAGIC);
    out.extend_from_slice(&DEVICE_KEY_VERSION.to_be_bytes());
    out.extend_from_slice(&nonce);
    let ct = machine_seal_cipher(machine_id)
        .encrypt(&Nonce::from(nonce), Payload { msg: secret.as_bytes(), aad: &out[..10] })
        .expect("AES-GCM-SIV encrypts 32 bytes");
    out.extend_from_slice(&ct);
    out
}

/// Opens a sealed device key file on the machine with `machine_id`.
///
/// Fails with [`Error::UnwrapFailed`] when the file was sealed on another
/// machine (or the machine ID changed) or was altered.
pub fn open_device_key(file: &[u8], machine_id: &[u8]) -> Result<DeviceSecret> {
    let mut c = Cursor::new(file, Artifact::DeviceKey);
    if c.array::<8>()? != DEVICE_KEY_MAGIC {
        return Err(Error::NotSealrun(Artifact::DeviceKey));
    }
    let version = c.u16()?;
    if version != DEVICE_KEY_VERSION {
        return Err(Error::UnsupportedVersion {
            artifact: Artifact::DeviceKey,
            found: version,
            supported: DEVICE_KEY_VERSION,
        });
    }
    let nonce = c.array::<12>()?;
    let ct = c.bytes(48)?;
    c.finish()?;
    let pt = Zeroizing::new(
        machine_seal_cipher(machine_id)
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: &file[..10] })
            .map_err(|_| Error::UnwrapFailed)?,
    );
    let key: [u8; 32] = pt.as_slice().try_into().map_err(|_| Error::UnwrapFailed)?;
    Ok(DeviceSecret(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> DeviceCode {
        DeviceSecret::from_bytes(&[5; 32]).device_code(b"machine-a")
    }

    #[test]
    fn device_code_round_trips_and_reads_loosely() {
        let c = code();
        let s = c.to_string();
        assert!(s.starts_with("SR1-"));
        assert_eq!(s.len(), 3 + 16 * 5);
        assert_eq!(s.parse::<DeviceCode>().unwrap(), c);
        let loose = s.to_lowercase().replace('-', " ").replace('0', "o");
        assert_eq!(loose.parse::<DeviceCode>().unwrap(), c);
    }

    #[test]
    fn device_code_catches_typos() {
        let s = code().to_string();
        let mut typo: Vec<char> = s.chars().collect();
        typo[10] = if typo[10] == 'A' { 'B' } else { 'A' };
        let typo: String = typo.into_iter().collect();
        assert_eq!(typo.parse::<DeviceCode>(), Err(Error::DeviceCodeChecksum));
        assert!(s[..s.len() - 1].parse::<DeviceCode>().is_err());
        assert!("XR1-0000".parse::<DeviceCode>().is_err());
    }

    #[test]
    fn device_key_is_bound_to_the_machine() {
        let secret = DeviceSecret::from_bytes(&[9; 32]);
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let file = seal_device_key(&secret, b"machine-a", &mut rng);
        assert_eq!(file.len(), DEVICE_KEY_FILE_LEN);
        assert_eq!(open_device_key(&file, b"machine-a").unwrap().public_key(), secret.public_key());
        assert!(matches!(open_device_key(&file, b"machine-b"), Err(Error::UnwrapFailed)));
        let mut flipped = file.clone();
        flipped[30] ^= 1;
        assert!(matches!(open_device_key(&flipped, b"machine-a"), Err(Error::UnwrapFailed)));
    }
}
