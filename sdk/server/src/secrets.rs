//! The server master key, secrets sealed under it at rest, and bearer tokens.
//!
//! Content keys and issuing keys are stored as AES-256-GCM-SIV ciphertext
//! under the master key, with the row they belong to as associated data, so
//! a ciphertext copied into another row (another vendor's, say) does not
//! open. Tokens and activation codes are stored as SHA-256 hashes only: they
//! are 120+ random bits, so a plain hash is enough and a database leak does
//! not reveal them.
use std::path::Path;

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use rand_core::Rng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::ServerError;

/// Operator tokens start with this, so a leaked one is recognisable (and
/// secret scanners can match it).
pub const ADMIN_TOKEN_PREFIX: &str = "sra_";
/// Vendor tokens start with this.
pub const VENDOR_TOKEN_PREFIX: &str = "srv_";

/// Environment variable that may hold the master key (64 hex digits)
/// instead of a file.
pub const MASTER_KEY_ENV: &str = "SEALRUN_SERVER_MASTER_KEY";

const MASTER_KEY_HEADER: &str = "sealrun-server-master-key-v1";
const NONCE_LEN: usize = 12;
/// Tag AES-GCM-SIV appends.
const TAG_LEN: usize = 16;

/// The key every stored secret is encrypted under. Zeroized on drop.
pub struct MasterKey {
    cipher: Aes256GcmSiv,
    check: [u8; 32],
}

impl MasterKey {
    /// A new random master key, as the text of its key file.
    pub fn generate_file_text() -> Zeroizing<String> {
        let mut k = Zeroizing::new([0u8; 32]);
        fill_random(k.as_mut());
        Zeroizing::new(format!("{MASTER_KEY_HEADER}\n{}\n", hex::encode(k.as_ref())))
    }

    /// Reads the key from `MASTER_KEY_ENV` if set, else from `file`.
    pub fn load(file: &Path) -> Result<MasterKey, ServerError> {
        if let Some(v) = std::env::var_os(MASTER_KEY_ENV) {
            let v = Zeroizing::new(v.into_string().map_err(|_| ServerError::BadMasterKey("the environment"))?);
            return Self::from_hex(v.trim()).ok_or(ServerError::BadMasterKey("the environment"));
        }
        let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|source| ServerError::Io {
            action: "cannot read the master key file",
            path: file.to_owned(),
            source,
        })?);
        let mut lines = text.lines();
        let ok = lines.next() == Some(MASTER_KEY_HEADER);
        let key = lines.next().filter(|_| ok).and_then(Self::from_hex);
        match (key, lines.next()) {
            (Some(k), None) => Ok(k),
            _ => Err(ServerError::BadMasterKey("the master key file")),
        }
    }

    fn from_hex(s: &str) -> Option<MasterKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(s, k.as_mut()).ok()?;
        Some(Self::from_bytes(&k))
    }

    /// The key from raw bytes.
    pub fn from_bytes(k: &[u8; 32]) -> MasterKey {
        let mut h = Sha256::new();
        h.update(b"sealrun-server/v1/master-key-check\0");
        h.update(k);
        MasterKey { cipher: Aes256GcmSiv::new(k.into()), check: h.finalize().into() }
    }

    /// A public value that identifies the key (stored in the database so a
    /// server started with the wrong key says so instead of failing later).
    pub fn check_value(&self) -> String {
        hex::encode(self.check)
    }

    /// Encrypts `secret` for the row described by `context`.
    pub fn seal(&self, context: &[u8], secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let ct = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: secret, aad: context })
            .expect("AES-GCM-SIV encryption of a short secret cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts a 32-byte secret sealed for `context`.
    pub fn open32(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<[u8; 32]>, ServerError> {
        if sealed.len() != NONCE_LEN + 32 + TAG_LEN {
            return Err(ServerError::SecretUnreadable);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| ServerError::SecretUnreadable)?;
        let pt = Zeroizing::new(
            self.cipher
                .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: context })
                .map_err(|_| ServerError::SecretUnreadable)?,
        );
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&pt);
        Ok(out)
    }
}

/// The system random number generator, as the format crate wants it.
pub fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Fills `buf` from the operating system's generator.
pub fn fill_random(buf: &mut [u8]) {
    rng().fill_bytes(buf);
}

/// A fresh bearer token: `prefix` and 160 random bits in lowercase base32.
pub fn new_token(prefix: &str) -> Zeroizing<String> {
    let mut raw = Zeroizing::new([0u8; 20]);
    fill_random(raw.as_mut());
    Zeroizing::new(format!("{prefix}{}", base32(raw.as_ref())))
}

/// How tokens and codes are stored: SHA-256 of their text.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Alphabet for tokens and codes: Crockford's base32 (no I, L, O, U), so a
/// code read aloud or typed from paper survives.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(CROCKFORD[((acc >> bits) & 31) as usize].to_ascii_lowercase() as char);
        }
    }
    if bits > 0 {
        out.push(CROCKFORD[((acc << (5 - bits)) & 31) as usize].to_ascii_lowercase() as char);
    }
    out
}

/// Characters of an activation code, without dashes: 25 × 5 = 125 bits.
pub const CODE_CHARS: usize = 25;

/// A new activation code: five groups of five Crockford base32 characters.
pub fn new_activation_code() -> Zeroizing<String> {
    let mut raw = Zeroizing::new([0u8; 16]);
    fill_random(raw.as_mut());
    let chars = Zeroizing::new(base32(raw.as_ref()).to_ascii_uppercase());
    let mut out = String::with_capacity(CODE_CHARS + 4);
    for (i, c) in chars.chars().take(CODE_CHARS).enumerate() {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    Zeroizing::new(out)
}

/// An activation code as typed, in its canonical form (upper case, no
/// dashes or spaces, with the letters people confuse mapped the Crockford
/// way: O→0, I/L→1). `None` when it cannot be a code.
pub fn normalize_code(typed: &str) -> Option<String> {
    let mut out = String::with_capacity(CODE_CHARS);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if CROCKFORD.contains(&(c as u8)) && c.is_ascii() => c,
            _ => return None,
        };
        out.push(c);
    }
    (out.len() == CODE_CHARS).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_in_their_row() {
        let k = MasterKey::from_bytes(&[9; 32]);
        let sealed = k.seal(b"content-key/1/2", &[5; 32]);
        assert_eq!(*k.open32(b"content-key/1/2", &sealed).unwrap(), [5; 32]);
        assert!(k.open32(b"content-key/1/3", &sealed).is_err());
        assert!(MasterKey::from_bytes(&[8; 32]).open32(b"content-key/1/2", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert!(k.open32(b"content-key/1/2", &flipped).is_err());
        assert!(k.open32(b"content-key/1/2", &sealed[1..]).is_err());
    }

    #[test]
    fn codes_normalize() {
        let c = new_activation_code();
        assert_eq!(c.len(), CODE_CHARS + 4);
        let n = normalize_code(&c).unwrap();
        assert_eq!(normalize_code(&c.to_lowercase().replace('-', " ")).unwrap(), n);
        assert_eq!(normalize_code("oooo-iiii-llll-0000-1111-222222"), None);
        assert_eq!(normalize_code("oooo0-iiii1-llll1-00000-11111").unwrap(), "0000011111111110000011111");
        assert_eq!(normalize_code("ABCDE-FGHJK-MNPQR-STVWX-YZ01U"), None);
        assert_eq!(normalize_code("short"), None);
    }

    #[test]
    fn tokens_are_distinct_and_hashed() {
        let a = new_token("srv_");
        let b = new_token("srv_");
        assert_ne!(*a, *b);
        assert!(a.starts_with("srv_") && a.len() == 4 + 32);
        assert_eq!(token_hash(&a).len(), 32);
    }
}
