//! The ledger chain in the database: appending an entry under the
//! vendor's head lock, and reading a chain back. Kept apart from the
//! service's ledger operations (`ledger.rs`) so that the batcher, which
//! appends too, does not depend on the service.
use sqlx::Row;

use sealrun_format::ledger::{EntryFields, EntryKind, LedgerEntry};

use crate::error::ServerError;
use crate::rows::{Conn, blob, opt_i64, unix};

/// What to append.
pub(crate) struct Append<'a> {
    pub(crate) vendor: i64,
    pub(crate) kind: EntryKind,
    pub(crate) product: &'a str,
    pub(crate) license_id: [u8; 16],
    pub(crate) device: [u8; 32],
    pub(crate) seats: u32,
    pub(crate) code: Option<i64>,
}

/// The time to stamp the next entry with: now, or the last entry's time if
/// the clock went back (entries are in time order).
pub(crate) fn stamp(last: i64) -> i64 {
    crate::time::now().max(last)
}

/// Appends an entry inside the caller's transaction and returns it. The
/// head row is updated first: on PostgreSQL that locks it until commit, so
/// concurrent appends to one vendor's chain (from any instance) line up
/// behind it, and the entry is stamped only then.
pub(crate) async fn append(conn: &mut Conn, a: Append<'_>) -> Result<LedgerEntry, ServerError> {
    let head = sqlx::query("UPDATE ledger_heads SET seq = seq + 1 WHERE vendor_id = $1 RETURNING seq, hash, at")
        .bind(a.vendor)
        .fetch_one(&mut *conn)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev: [u8; 32] = blob(&head, "hash")?;
    let at = stamp(head.try_get("at")?);
    let entry = LedgerEntry::after(
        prev,
        EntryFields {
            seq: unix(seq),
            at: unix(at),
            kind: a.kind,
            product: a.product.to_owned(),
            license_id: a.license_id,
            device: a.device,
            seats: a.seats,
            code: a.code.map(unix),
        },
    );
    sqlx::query(
        "INSERT INTO ledger (vendor_id, seq, at, kind, product, license_id, device_fp, seats, prev_hash, hash, code_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(a.vendor)
    .bind(seq)
    .bind(at)
    .bind(a.kind.as_str())
    .bind(a.product)
    .bind(a.license_id.to_vec())
    .bind(a.device.to_vec())
    .bind(i64::from(a.seats))
    .bind(prev.to_vec())
    .bind(entry.hash.to_vec())
    .bind(a.code)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE ledger_heads SET hash = $1, at = $2 WHERE vendor_id = $3")
        .bind(entry.hash.to_vec())
        .bind(at)
        .bind(a.vendor)
        .execute(&mut *conn)
        .await?;
    Ok(entry)
}

/// Reads a vendor's chain on `conn`.
pub(crate) async fn read_chain(conn: &mut Conn, vendor: i64) -> Result<Vec<LedgerEntry>, ServerError> {
    let rows = sqlx::query(
        "SELECT seq, at, kind, product, license_id, device_fp, seats, code_id, prev_hash, hash FROM ledger \
         WHERE vendor_id = $1 ORDER BY seq",
    )
    .bind(vendor)
    .fetch_all(&mut *conn)
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
                    code: opt_i64(r, "code_id")?.map(unix),
                },
                prev_hash: blob(r, "prev_hash")?,
                hash: blob(r, "hash")?,
            })
        })
        .collect()
}
