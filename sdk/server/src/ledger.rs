//! The append-only, hash-chained billing ledger (one chain per vendor).
//!
//! An entry is appended in the same transaction as the license row it
//! records, so a license exists if and only if its entry does: a crash
//! before the commit leaves neither, after it both.
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use sealrun_format::ledger::{EntryFields, EntryKind, LedgerEntry};

use crate::ServerError;
use crate::service::{Conn, Service, blob, unix};

/// One ledger entry as exported (a line of `GET /v1/ledger`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryJson {
    /// Position in the vendor's chain, from 1.
    pub seq: u64,
    /// When it was appended (Unix seconds).
    pub at: u64,
    /// `license_issued`, `activation`, `deactivation` or `license_revoked`.
    pub kind: String,
    /// Product id.
    pub product: String,
    /// License id (hex).
    pub license_id: String,
    /// Fingerprint of the licensed device code (hex).
    pub device: String,
    /// Floating seats granted.
    pub seats: u32,
    /// The previous entry's hash (hex).
    pub prev_hash: String,
    /// This entry's hash (hex).
    pub hash: String,
}

impl From<&LedgerEntry> for EntryJson {
    fn from(e: &LedgerEntry) -> Self {
        let f = &e.fields;
        EntryJson {
            seq: f.seq,
            at: f.at,
            kind: f.kind.as_str().to_owned(),
            product: f.product.clone(),
            license_id: hex::encode(f.license_id),
            device: hex::encode(f.device),
            seats: f.seats,
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
        }
    }
}

impl EntryJson {
    /// The entry this line describes; `None` if a field is not what the
    /// export writes (unknown kind, wrong hex length).
    pub fn to_entry(&self) -> Option<LedgerEntry> {
        fn arr<const N: usize>(s: &str) -> Option<[u8; N]> {
            let mut out = [0u8; N];
            hex::decode_to_slice(s, &mut out).ok()?;
            Some(out)
        }
        Some(LedgerEntry {
            fields: EntryFields {
                seq: self.seq,
                at: self.at,
                kind: EntryKind::from_name(&self.kind)?,
                product: self.product.clone(),
                license_id: arr(&self.license_id)?,
                device: arr(&self.device)?,
                seats: self.seats,
            },
            prev_hash: arr(&self.prev_hash)?,
            hash: arr(&self.hash)?,
        })
    }
}

/// What to append.
pub(crate) struct Append<'a> {
    pub(crate) vendor: i64,
    pub(crate) kind: EntryKind,
    pub(crate) product: &'a str,
    pub(crate) license_id: [u8; 16],
    pub(crate) device: [u8; 32],
    pub(crate) seats: u32,
    pub(crate) at: i64,
}

/// Appends an entry inside the caller's transaction. The head row is
/// updated first: on PostgreSQL that locks it until commit, so concurrent
/// appends to one vendor's chain (from any instance) line up behind it.
pub(crate) async fn append(conn: &mut Conn, a: Append<'_>) -> Result<(), ServerError> {
    let head = sqlx::query("UPDATE ledger_heads SET seq = seq + 1 WHERE vendor_id = $1 RETURNING seq, hash")
        .bind(a.vendor)
        .fetch_one(&mut *conn)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev: [u8; 32] = blob(&head, "hash")?;
    let entry = LedgerEntry::after(
        prev,
        EntryFields {
            seq: unix(seq),
            at: unix(a.at),
            kind: a.kind,
            product: a.product.to_owned(),
            license_id: a.license_id,
            device: a.device,
            seats: a.seats,
        },
    );
    sqlx::query(
        "INSERT INTO ledger (vendor_id, seq, at, kind, product, license_id, device_fp, seats, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(a.vendor)
    .bind(seq)
    .bind(a.at)
    .bind(a.kind.as_str())
    .bind(a.product)
    .bind(a.license_id.to_vec())
    .bind(a.device.to_vec())
    .bind(i64::from(a.seats))
    .bind(prev.to_vec())
    .bind(entry.hash.to_vec())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE ledger_heads SET hash = $1 WHERE vendor_id = $2")
        .bind(entry.hash.to_vec())
        .bind(a.vendor)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Service {
    /// The vendor's whole chain, in order.
    pub async fn ledger(&self, vendor: i64) -> Result<Vec<LedgerEntry>, ServerError> {
        let rows = sqlx::query(
            "SELECT seq, at, kind, product, license_id, device_fp, seats, prev_hash, hash FROM ledger \
             WHERE vendor_id = $1 ORDER BY seq",
        )
        .bind(vendor)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(LedgerEntry {
                    fields: EntryFields {
                        seq: unix(r.try_get("seq")?),
                        at: unix(r.try_get("at")?),
                        kind: EntryKind::from_name(&kind).ok_or(ServerError::SecretUnreadable)?,
                        product: r.try_get("product")?,
                        license_id: blob(r, "license_id")?,
                        device: blob(r, "device_fp")?,
                        seats: u32::try_from(r.try_get::<i64, _>("seats")?).unwrap_or(u32::MAX),
                    },
                    prev_hash: blob(r, "prev_hash")?,
                    hash: blob(r, "hash")?,
                })
            })
            .collect()
    }
}
