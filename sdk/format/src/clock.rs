//! The launcher's sealed "last seen" time (launcher-private): the latest
//! wall-clock time at which this device accepted a time-limited license.
//!
//! ```text
//! magic "SEALTLS\x1a" (8) | version u16 = 1 | at_ms u64 | tag (32)
//! tag = HMAC-SHA256(k, "sealrun/v1/last-seen\0" ‖ magic ‖ version ‖ at_ms)
//! k   = HKDF-SHA256(salt = "sealrun/v1/last-seen", IKM = device secret,
//!                   info = "sealrun/v1/last-seen", L = 32)
//! ```
//!
//! The key comes from the device secret alone, which is this device: its
//! public half is in the device code, and the key file opens only on this
//! machine. So a record copied from another device, or one whose time was
//! edited, does not open. The tag is checked over the bytes exactly as
//! read, in constant time, and any failure is one coarse
//! [`Error::BadSignature`]. A record proves only that this device wrote
//! it: an old copy put back still opens (see `docs/format.md`).
use hkdf::Hkdf;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::cursor::{Cursor, PutExt};
use crate::device::DeviceSecret;
use crate::{Artifact, Error, Result};

/// Magic bytes of a last-seen record ("time last seen").
pub const LAST_SEEN_MAGIC: [u8; 8] = *b"SEALTLS\x1a";
/// Format version of the last-seen record.
pub const LAST_SEEN_VERSION: u16 = 1;
/// Bytes of the record's HMAC-SHA256 tag.
pub const LAST_SEEN_TAG_LEN: usize = 32;
/// Total size of a last-seen record: magic, version, time, tag.
pub const LAST_SEEN_LEN: usize = 8 + 2 + 8 + LAST_SEEN_TAG_LEN;

/// The KDF label (salt and info) and, with a NUL, the MAC input's prefix.
const LABEL: &[u8] = b"sealrun/v1/last-seen";
/// Bytes the tag covers: everything before it.
const SIGNED_LEN: usize = LAST_SEEN_LEN - LAST_SEEN_TAG_LEN;
const A: Artifact = Artifact::LastSeen;

/// An opened last-seen record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSeen {
    /// The latest time this device accepted a time-limited license, in
    /// Unix milliseconds (UTC).
    pub at_ms: u64,
}

fn mac(secret: &DeviceSecret, signed: &[u8]) -> Hmac<Sha256> {
    let mut k = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(LABEL), secret.as_bytes())
        .expand(LABEL, k.as_mut())
        .expect("32 bytes is a valid HKDF output length");
    let mut mac = <Hmac<Sha256>>::new_from_slice(k.as_ref()).expect("HMAC takes any key length");
    mac.update(LABEL);
    mac.update(b"\0");
    mac.update(signed);
    mac
}

/// The record of `at_ms` (Unix milliseconds) for the device with `secret`.
pub fn seal_last_seen(secret: &DeviceSecret, at_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(LAST_SEEN_LEN);
    out.extend_from_slice(&LAST_SEEN_MAGIC);
    out.put_u16(LAST_SEEN_VERSION);
    out.put_u64(at_ms);
    let tag = mac(secret, &out).finalize().into_bytes();
    out.extend_from_slice(&tag);
    debug_assert_eq!(out.len(), LAST_SEEN_LEN);
    out
}

/// Opens a last-seen record on the device with `secret`.
///
/// Errors, in the order checked: `NotSealrun` (other magic),
/// `UnsupportedVersion`, `Truncated` / `TrailingData` (not exactly
/// [`LAST_SEEN_LEN`] bytes), `BadSignature` (the tag does not verify: edited,
/// damaged, or written by another device).
pub fn open_last_seen(secret: &DeviceSecret, file: &[u8]) -> Result<LastSeen> {
    let mut c = Cursor::new(file, A);
    c.magic_and_version(&LAST_SEEN_MAGIC, LAST_SEEN_VERSION)?;
    let at_ms = c.u64()?;
    let tag = c.bytes(LAST_SEEN_TAG_LEN)?;
    c.finish()?;
    mac(secret, &file[..SIGNED_LEN]).verify_slice(tag).map_err(|_| Error::BadSignature(A))?;
    Ok(LastSeen { at_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_the_device_secret_that_sealed_it() {
        let secret = DeviceSecret::from_bytes(&[7; 32]);
        let file = seal_last_seen(&secret, 1_780_272_000_123);
        assert_eq!(file.len(), LAST_SEEN_LEN);
        assert_eq!(open_last_seen(&secret, &file), Ok(LastSeen { at_ms: 1_780_272_000_123 }));
        let other = DeviceSecret::from_bytes(&[8; 32]);
        assert_eq!(open_last_seen(&other, &file), Err(Error::BadSignature(A)));
    }

    /// The time is in the clear but cannot be edited: any other value under
    /// the same tag is refused.
    #[test]
    fn an_edited_time_is_refused() {
        let secret = DeviceSecret::from_bytes(&[7; 32]);
        let mut file = seal_last_seen(&secret, 5_000);
        file[10..18].copy_from_slice(&1_000u64.to_be_bytes());
        assert_eq!(open_last_seen(&secret, &file), Err(Error::BadSignature(A)));
    }
}
