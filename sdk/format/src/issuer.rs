//! Who signs licenses and dongle records: the vendor key itself, or an
//! issuing key (a license server's) the vendor certified until a date.
use crate::cursor::{Cursor, PutExt};
use crate::keys::{SIGNATURE_LEN, VendorPublicKey, VendorSigningKey};
use crate::{Artifact, Error, Result, UnixTime};

const A: Artifact = Artifact::License;

/// A vendor's certificate for an issuing key (e.g. a license server's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuerCert {
    /// The certified issuing key.
    pub issuer_key: VendorPublicKey,
    /// Licenses issued after this instant are not accepted.
    pub not_after: UnixTime,
    /// The vendor key's signature over the two fields above.
    pub signature: [u8; SIGNATURE_LEN],
}

fn cert_message(vendor: &VendorPublicKey, issuer: &VendorPublicKey, not_after: UnixTime) -> Vec<u8> {
    let mut m = b"sealrun/v1/issuer-cert\0".to_vec();
    m.extend_from_slice(&vendor.0);
    m.extend_from_slice(&issuer.0);
    m.put_u64(not_after);
    m
}

/// Length of an encoded [`IssuerCert`]: key, expiry, signature.
pub const ISSUER_CERT_LEN: usize = 32 + 8 + SIGNATURE_LEN;

impl IssuerCert {
    /// Checks that `vendor` made this certificate.
    pub fn verify(&self, vendor: &VendorPublicKey) -> Result<()> {
        vendor.verify(&cert_message(vendor, &self.issuer_key, self.not_after), &self.signature, A)
    }

    /// The certificate as bytes: issuing key, `not_after` (u64 BE), signature.
    pub fn to_bytes(&self) -> [u8; ISSUER_CERT_LEN] {
        let mut out = [0u8; ISSUER_CERT_LEN];
        out[..32].copy_from_slice(&self.issuer_key.0);
        out[32..40].copy_from_slice(&self.not_after.to_be_bytes());
        out[40..].copy_from_slice(&self.signature);
        out
    }

    /// Reads [`IssuerCert::to_bytes`] output (no signature check).
    pub fn from_bytes(b: &[u8; ISSUER_CERT_LEN]) -> IssuerCert {
        let mut key = [0u8; 32];
        key.copy_from_slice(&b[..32]);
        let mut na = [0u8; 8];
        na.copy_from_slice(&b[32..40]);
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(&b[40..]);
        IssuerCert { issuer_key: VendorPublicKey(key), not_after: u64::from_be_bytes(na), signature }
    }
}

/// Certifies `issuer` to sign licenses for `vendor` until `not_after`.
pub fn certify_issuer(vendor: &VendorSigningKey, issuer: VendorPublicKey, not_after: UnixTime) -> IssuerCert {
    let signature = vendor.sign(&cert_message(&vendor.public(), &issuer, not_after));
    IssuerCert { issuer_key: issuer, not_after, signature }
}

/// Verifies `signature` over `msg` by the signer `issuer` names, for a
/// document issued at `issued_at` under `vendor`.
pub(crate) fn verify_issued(
    vendor: &VendorPublicKey,
    issuer: &Issuer,
    issued_at: UnixTime,
    msg: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    artifact: Artifact,
) -> Result<()> {
    let signer = match issuer {
        Issuer::Vendor => *vendor,
        Issuer::Certified(cert) => {
            vendor.verify(&cert_message(vendor, &cert.issuer_key, cert.not_after), &cert.signature, artifact)?;
            if issued_at > cert.not_after {
                return Err(Error::BadSignature(artifact));
            }
            cert.issuer_key
        }
    };
    signer.verify(msg, signature, artifact)
}

/// Reads an issuer: kind 0 (the vendor) or 1 (a certificate follows).
pub(crate) fn decode_issuer(c: &mut Cursor<'_>) -> Result<Issuer> {
    match c.u8()? {
        0 => Ok(Issuer::Vendor),
        1 => Ok(Issuer::Certified(IssuerCert {
            issuer_key: VendorPublicKey(c.array()?),
            not_after: c.u64()?,
            signature: c.array()?,
        })),
        _ => Err(c.malformed("issuer", "has an unknown kind")),
    }
}

/// Writes an issuer as [`decode_issuer`] reads it.
pub(crate) fn encode_issuer(b: &mut Vec<u8>, issuer: &Issuer) {
    match issuer {
        Issuer::Vendor => b.put_u8(0),
        Issuer::Certified(cert) => {
            b.put_u8(1);
            b.extend_from_slice(&cert.to_bytes());
        }
    }
}

/// Who signed a license.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    /// The vendor key itself.
    Vendor,
    /// An issuing key certified by the vendor key.
    Certified(IssuerCert),
}

/// Who signs a new license.
pub enum LicenseSigner<'a> {
    /// The vendor key itself.
    Vendor(&'a VendorSigningKey),
    /// An issuing key with its certificate.
    Issuer {
        /// The issuing key.
        key: &'a VendorSigningKey,
        /// Its certificate from the vendor key.
        cert: IssuerCert,
        /// The vendor key that made the certificate.
        vendor: VendorPublicKey,
    },
}

impl LicenseSigner<'_> {
    /// The vendor key, the issuer as recorded, and the key that signs.
    pub(crate) fn parts(&self) -> Result<(VendorPublicKey, Issuer, &VendorSigningKey)> {
        let (vendor, issuer, key) = match self {
            LicenseSigner::Vendor(k) => (k.public(), Issuer::Vendor, *k),
            LicenseSigner::Issuer { key, cert, vendor } => (*vendor, Issuer::Certified(*cert), *key),
        };
        if let Issuer::Certified(cert) = issuer
            && cert.issuer_key != key.public()
        {
            return Err(Error::InvalidInput { field: "issuing key", problem: "is not the key its certificate names" });
        }
        Ok((vendor, issuer, key))
    }
}
