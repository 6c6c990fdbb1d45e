//! Rows as the service reads and caches them, and the helpers that read
//! columns. A module of its own so that the files implementing the
//! service (catalog, vendors, licensing, ledger, batch) and the cache
//! (hot) share them without going through `service.rs`.
use sqlx::AnyConnection;
use sqlx::Row;

use sealrun_format::license::IssuerCert;
use sealrun_format::{ContentKey, Release, VendorPublicKey, VendorSigningKey};

use crate::error::ServerError;

/// A stored release row with its key decrypted.
#[derive(Clone)]
pub(crate) struct ReleaseRow {
    pub(crate) release: Release,
    pub(crate) key: ContentKey,
    pub(crate) package_sha256: Option<String>,
    pub(crate) package_len: Option<i64>,
}

/// The product row and owner for a product id.
#[derive(Clone)]
pub(crate) struct ProductRow {
    pub(crate) id: i64,
    pub(crate) vendor: i64,
    pub(crate) product: String,
}

/// A vendor's issuing key, ready to sign.
pub(crate) struct Issuer {
    pub(crate) key: VendorSigningKey,
    pub(crate) cert: IssuerCert,
    pub(crate) vendor_key: VendorPublicKey,
}

/// Reads an optional i64 column.
pub(crate) fn opt_i64(r: &sqlx::any::AnyRow, col: &str) -> Result<Option<i64>, ServerError> {
    Ok(r.try_get::<Option<i64>, _>(col)?)
}

/// Reads a blob column into a fixed array.
pub(crate) fn blob<const N: usize>(r: &sqlx::any::AnyRow, col: &str) -> Result<[u8; N], ServerError> {
    let v: Vec<u8> = r.try_get(col)?;
    v.try_into().map_err(|_| ServerError::SecretUnreadable)
}

/// Unix seconds as u64 for the formats (the clock is after 1970).
pub(crate) fn unix(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

/// Type of a connection the operation helpers take.
pub(crate) type Conn = AnyConnection;
