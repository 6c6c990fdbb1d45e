//! Wrapping content keys to a device with HPKE (RFC 9180): base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. The device
//! fingerprint is the HPKE `info`, so a wrap is only good for that device.
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::device::{DeviceCode, DeviceSecret};
use crate::keys::ContentKey;
use crate::{Error, Result};

type Kem = X25519HkdfSha256;

/// Bytes of the HPKE encapsulated key.
pub(crate) const ENC_LEN: usize = 32;
/// Bytes of a wrapped content key (32 key bytes plus a 16-byte tag).
pub(crate) const WRAPPED_LEN: usize = 48;

fn info(device: &DeviceCode) -> Vec<u8> {
    let mut v = b"sealrun/v1/content-key\0".to_vec();
    v.extend_from_slice(&device.fingerprint());
    v
}

/// Wraps `key` to `device`; `aad` binds the wrap to its license entry.
pub(crate) fn wrap_to_device(
    key: &ContentKey,
    device: &DeviceCode,
    aad: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<([u8; ENC_LEN], [u8; WRAPPED_LEN])> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&device.public_key)
        .map_err(|_| Error::InvalidInput { field: "device public key", problem: "is not a valid X25519 key" })?;
    let (enc, ct) = hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, Kem>(
        &OpModeS::Base,
        &pk,
        &info(device),
        key.as_bytes(),
        aad,
        rng,
    )
    .map_err(|_| Error::InvalidInput { field: "device public key", problem: "cannot receive a key" })?;
    let enc: [u8; ENC_LEN] = enc.to_bytes().as_slice().try_into().map_err(|_| Error::UnwrapFailed)?;
    let ct: [u8; WRAPPED_LEN] = ct.as_slice().try_into().map_err(|_| Error::UnwrapFailed)?;
    Ok((enc, ct))
}

/// Unwraps a content key with the device secret. Any failure is the one
/// coarse [`Error::UnwrapFailed`].
pub(crate) fn unwrap_on_device(
    enc: &[u8; ENC_LEN],
    wrapped: &[u8; WRAPPED_LEN],
    secret: &DeviceSecret,
    device: &DeviceCode,
    aad: &[u8],
) -> Result<ContentKey> {
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret.as_bytes()).map_err(|_| Error::UnwrapFailed)?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| Error::UnwrapFailed)?;
    let pt = Zeroizing::new(
        hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(&OpModeR::Base, &sk, &enc, &info(device), wrapped, aad)
            .map_err(|_| Error::UnwrapFailed)?,
    );
    let bytes: &[u8; 32] = pt.as_slice().try_into().map_err(|_| Error::UnwrapFailed)?;
    Ok(ContentKey::from_bytes(bytes))
}
