//! The append-only, hash-chained billing ledger (one chain per vendor).
//!
//! An entry is appended in the same transaction as the license row it
//! records, so a license exists if and only if its entry does: a crash
//! before the commit leaves neither, after it both.
//!
//! An entry's time is taken once the vendor's head row is locked, and never
//! before the previous entry's: an invoice that reads the chain under the
//! same lock ([`Service::locked_ledger`]) therefore sees every entry stamped
//! before it started, so no entry committed late can fall between two
//! months' invoices.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sealrun_format::ledger::{ChainHead, EntryFields, EntryKind, GENESIS_HASH, LedgerEntry};

use crate::chain::read_chain;
pub(crate) use crate::chain::{Append, append};
use crate::error::ServerError;
use crate::rows::unix;
use crate::service::Service;

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
    /// The activation code (its id) behind an activation, transfer or
    /// deactivation; absent otherwise and in entries from before codes were named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u64>,
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
            code: f.code,
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
                code: self.code,
            },
            prev_hash: arr(&self.prev_hash)?,
            hash: arr(&self.hash)?,
        })
    }
}

/// The operator-signed head that ends an export (`{"head": …}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeadJson {
    /// The vendor's name.
    pub vendor: String,
    /// Entries in the chain when it was signed.
    pub seq: u64,
    /// Hash of entry `seq` (hex).
    pub hash: String,
    /// When it was signed (Unix seconds).
    pub signed_at: u64,
    /// The operator's Ed25519 signature over the head (hex), by the key in
    /// `GET /v1/vendor` `operator_key`.
    pub signature: String,
}

/// The last line of an export.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeadLine {
    /// The signed head.
    pub head: HeadJson,
}

impl Service {
    /// The vendor's whole chain, in order.
    pub async fn ledger(&self, vendor: i64) -> Result<Vec<LedgerEntry>, ServerError> {
        let mut conn = self.db.pool().acquire().await?;
        read_chain(&mut conn, vendor).await
    }

    /// The vendor's chain read under its head's lock, and the time the lock
    /// was held: every entry stamped before that time is in it (an append
    /// holds the lock from its stamp to its commit), and every later one
    /// will be stamped at that time or after.
    pub async fn locked_ledger(&self, vendor: i64) -> Result<(Vec<LedgerEntry>, i64), ServerError> {
        let mut tx = self.db.write().await?;
        // A no-op update takes the row lock on PostgreSQL; on SQLite the
        // write transaction already excludes every other writer.
        sqlx::query("UPDATE ledger_heads SET seq = seq WHERE vendor_id = $1").bind(vendor).execute(tx.conn()).await?;
        let at = crate::time::now();
        let chain = read_chain(tx.conn(), vendor).await?;
        drop(tx);
        Ok((chain, at))
    }

    /// The head of `chain` signed by the operator key now.
    pub async fn signed_head(&self, vendor: i64, chain: &[LedgerEntry]) -> Result<HeadJson, ServerError> {
        let name = self.vendor(vendor).await?.name;
        let head = ChainHead {
            vendor: name.clone(),
            seq: chain.last().map_or(0, |e| e.fields.seq),
            hash: chain.last().map_or(GENESIS_HASH, |e| e.hash),
            signed_at: unix(crate::time::now()),
        };
        let sig = head.sign(&self.operator);
        Ok(HeadJson {
            vendor: name,
            seq: head.seq,
            hash: hex::encode(head.hash),
            signed_at: head.signed_at,
            signature: hex::encode(sig),
        })
    }
}
